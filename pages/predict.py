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
    st.caption("A folder with model.safetensors (adapters merged), labels, config and a README with a load-and-predict "
               "example; optionally ONNX (checked against PyTorch on this run's test inputs) and INT8 for CPU.")
    fmt = st.radio("Format", list(FORMATS), horizontal=True, key="export_format",
                   format_func={"folder": "Folder (safetensors)", "onnx": "+ ONNX", "int8": "+ ONNX + INT8"}.get)
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
        if "onnx" in report:
            o = report["onnx"]
            st.caption(f"ONNX: largest logit difference from PyTorch {o['max_abs_logit_diff']:.1e} on "
                       f"{o['checked_on']} test inputs; {o['size_mb']} MB.")
        if "int8" in report:
            q = report["int8"]
            wide = q.get("all_rows")
            st.caption(f"INT8: {q['size_mb']} MB ({q['size_ratio']:.0%} of fp32), {q['speedup_vs_fp32_onnx']}x the "
                       f"speed of fp32 ONNX on CPU" + (f", test accuracy {q['accuracy_change_points']:+.1f} points"
                                                       if "accuracy_change_points" in q else "")
                       + (f" ({wide['accuracy_change_points']:+.2f} points over {wide['checked_on']:,} labelled rows "
                          "of the dataset)." if wide else "."))
            if q.get("warning"):
                st.warning(q["warning"])
        if data is None:
            st.success(f"Exported to {report['out']}: {', '.join(report['files'])}.")
        else:
            st.download_button(f"Download model ({fmt}, zip)", data, file_name=f"model-{rec.id}-{fmt}.zip",
                               mime="application/zip", key="dl_model")
