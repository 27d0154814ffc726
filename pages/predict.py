import shutil
import tempfile
from pathlib import Path

import streamlit as st

from core.predict.export import FORMATS, check_target, export
from core.predict.predictor import to_csv_bytes
from studio.entry import through_app
from studio.jobs import job_panel, start_job
from studio.runs import pick_run
from studio.services import exports_root, guard, predictor, services
from studio.views import VIEWS

through_app()

st.title("Predict & export")
rec = pick_run(only_with_model=True)
if rec is None:
    st.stop()

with guard("Loading the model"):
    pred = predictor(rec.dir)
    view = VIEWS[pred.modality.name]

    st.subheader("Try it")
    view.try_one(pred)

    st.subheader("Predict a whole file")
    batch = st.file_uploader(view.batch_label, type=view.batch_types, key="batch_file")
    if batch is not None:
        names, items = view.batch_items(batch)
        if st.button(f"Predict {len(items):,} input(s)", key="predict_file", icon=":material/play_arrow:"):
            def work(progress, cancelled, p=pred):
                outs, errs = [], []
                for s in range(0, len(items), 64):
                    o, e = p.predict(items[s:s + 64])
                    outs.append(o)
                    errs += e
                    progress(min(1.0, (s + 64) / len(items)), f"Predicted {min(len(items), s + 64):,}/{len(items):,}")
                import numpy as np

                return p.table(names, np.concatenate(outs), errs)
            start_job("predict", work, label="Predicting the file", context=(rec.id, batch.file_id))
        df = job_panel("predict", context=(rec.id, batch.file_id))
        if df is not None:
            failed = int((df["error"] != "").sum())
            if failed:
                st.warning(f"{failed} of {len(df)} input(s) could not be predicted; the 'error' column says why.")
            st.dataframe(df.head(200), hide_index=True, width="stretch")
            st.download_button("Download predictions (CSV)", to_csv_bytes(df), file_name=f"predictions-{rec.id}.csv",
                               mime="text/csv", key="dl_predictions")

    st.subheader("Export the model")
    st.caption("Every export holds only the parts this model predicts with, and a model card (README.md) saying "
               "what it predicts, from which data, how it scored and where it is weak. ONNX and INT8 run without "
               "this studio and without torch (python predict.py INPUT), checked against the studio on this run's "
               "test rows before you get them.")
    fmt = st.radio("Format", list(FORMATS), horizontal=True, key="export_format",
                   format_func={"folder": "Studio folder", "onnx": "Standalone (ONNX)",
                                "int8": "Standalone, INT8 (smaller, CPU)"}.get)
    where = st.radio("Deliver", ["zip", "server"], horizontal=True, key="export_where",
                     format_func={"zip": "as a zip to download", "server": "into a folder on the server"}.get)
    target, force = None, False
    if where == "server":
        root = exports_root()
        sub = st.text_input(f"Folder under {root}", value=f"model-{rec.id}", key="export_folder")
        target = (root / sub).resolve()
        if root not in target.parents:
            st.error(f"{sub}: outside {root}.")
            target = None
        elif target.is_dir() and any(target.iterdir()):
            st.warning(f"{target} already holds files ({', '.join(sorted(p.name for p in target.iterdir())[:5])}).")
            force = st.checkbox("Replace what is there", key="export_force")
    if st.button("Prepare export", key="prepare_export", disabled=where == "server" and target is None):
        run_dir, datasets = rec.dir, services().datasets

        def work(progress, cancelled):
            if target is not None:
                return export(run_dir, target, fmt, datasets=datasets, force=force, progress=progress), None
            with tempfile.TemporaryDirectory() as tmp:
                report = export(run_dir, Path(tmp) / f"model-{rec.id}", fmt, datasets=datasets, progress=progress)
                data = shutil.make_archive(str(Path(tmp) / "export"), "zip", report["out"])
                return report, Path(data).read_bytes()
        if target is not None:
            check_target(target, force, how="tick 'Replace what is there'")  # refused before any work
        start_job("export", work, label="Export", context=(rec.id, fmt, where))
    done = job_panel("export", context=(rec.id, fmt, where))
    if done is not None:
        report, data = done
        hf = report.get("hf") or {}
        if hf.get("written"):
            st.caption(f"Includes hf/: loads with transformers' AutoModelForSequenceClassification "
                       f"(logits match to {hf['max_abs_logit_diff']:.1e}).")
        elif hf.get("why"):
            st.caption(f"No transformers folder: {hf['why']}.")
        if report.get("parity"):
            p = report["parity"]
            same = f"{p['same_label']} of {p['rows']} labels the same, " if "same_label" in p else ""
            st.caption(f"Checked: {p['compared']}; {same}largest probability difference {p['max_abs_diff']:.1e}.")
        q = report.get("int8") or {}
        if q.get("all_rows"):
            w = q["all_rows"]
            st.caption(f"INT8 ({q['calibration']}): accuracy {w['fp32_accuracy']:.1%} → {w['int8_accuracy']:.1%} "
                       f"over {w['checked_on']:,} labelled rows of the dataset ({w['accuracy_change_points']:+.2f} "
                       "points).")
        if q.get("warning"):
            st.warning(q["warning"])
        size = f"{report['size_mb']:,.1f} MB: {', '.join(report['files'])}"
        if data is None:
            st.success(f"Exported to {report['out']} ({size}).")
        else:
            st.caption(f"The folder holds {size}.")
            st.download_button(f"Download model ({fmt}, zip)", data, file_name=f"model-{rec.id}-{fmt}.zip",
                               mime="application/zip", key="dl_model")
