import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.images import open_rgb
from core.explain import gradcam, overlay, token_attributions, tokens_html
from core.export import export
from core.predict import read_zip_images, to_csv_bytes
from core.tables import guess_columns, read_table
from studio.entry import through_app
from studio.runs import pick_run
from studio.services import guard, predictor, services

through_app()

st.title("Predict & export")
rec = pick_run(only_with_model=True)
if rec is None:
    st.stop()


def probs_chart(classes, p) -> None:
    s = pd.Series(p, index=classes).sort_values(ascending=False).head(10)
    st.bar_chart(s.rename("probability"), horizontal=True, x_label="probability", height=40 + 28 * len(s))


with guard("Loading the model"):
    pred = predictor(rec.dir)

    st.subheader("Try it")
    if pred.modality == "text":
        text = st.text_area("Text to classify", placeholder="Type or paste a text…")
        if text.strip():
            p = pred.predict_texts([text])[0]
            st.markdown(f"Prediction: **{pred.classes[p.argmax()]}** ({p.max():.0%})")
            probs_chart(pred.classes, p)
            ts = token_attributions(pred, text)
            st.markdown("**Why** (Integrated Gradients; green pushed towards "
                        f"*{pred.classes[ts.target]}*, red against):")
            st.markdown(tokens_html(ts), unsafe_allow_html=True)
    else:
        img = st.file_uploader("Image to classify", type=["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"])
        if img is not None:
            probs, errs = pred.predict_images([img.getvalue()])
            if errs[0]:
                st.error(f"{img.name}: {errs[0]}.")
            else:
                c1, c2 = st.columns([1, 2])
                picture = open_rgb(img.getvalue())
                heat, _ = gradcam(pred, picture)
                c1.image(picture, width=200, caption="your image")
                c1.image(overlay(picture, heat), width=200, caption="where the model looked (Grad-CAM)")
                p = probs[0]
                c2.markdown(f"Prediction: **{pred.classes[p.argmax()]}** ({p.max():.0%})")
                with c2:
                    probs_chart(pred.classes, p)

    st.subheader("Predict a whole file")
    kinds = ["csv", "tsv", "txt"] if pred.modality == "text" else ["zip"]
    batch = st.file_uploader("CSV/TSV with a text column" if pred.modality == "text" else "Zip of images", type=kinds,
                             key="batch_file")
    if batch is not None:
        if pred.modality == "text":
            table = read_table(batch.getvalue(), batch.name)
            cols = list(table.df.columns)
            try:
                guess = guess_columns(table.df, batch.name)[0]
            except Exception:
                guess = cols[0]
            col = st.selectbox("Text column", cols, index=cols.index(guess))
            texts = table.df[col].astype(str).tolist()
            bar = st.progress(0.0, text="Predicting")
            out = []
            for s in range(0, len(texts), 256):
                out.append(pred.predict_texts(texts[s:s + 256]))
                bar.progress(min(1.0, (s + 256) / len(texts)), text=f"Predicted {min(len(texts), s + 256):,}/{len(texts):,}")
            bar.empty()
            import numpy as np
            df = pred.table(texts, np.concatenate(out))
        else:
            members = read_zip_images(batch.getvalue())
            probs, errs = pred.predict_images([b for _, b in members])
            df = pred.table([n for n, _ in members], probs, errs)
        st.dataframe(df.head(200), hide_index=True, width="stretch")
        st.download_button("Download predictions (CSV)", to_csv_bytes(df), file_name=f"predictions-{rec.id}.csv",
                           mime="text/csv")

    st.subheader("Export the model")
    st.caption("A folder with model.safetensors (LoRA merged), labels, config and a README with a load-and-predict "
               "example; optionally ONNX (checked against PyTorch on this run's test inputs) and INT8 for CPU.")
    fmt = st.radio("Format", ["folder", "onnx", "int8"], horizontal=True,
                   format_func={"folder": "Folder (safetensors)", "onnx": "+ ONNX", "int8": "+ ONNX + INT8"}.get)
    if st.button("Prepare export (zip)"):
        with st.spinner("Exporting and checking"), tempfile.TemporaryDirectory() as tmp:
            report = export(rec.dir, Path(tmp) / f"model-{rec.id}", fmt, datasets=services().datasets)
            data = shutil.make_archive(str(Path(tmp) / "export"), "zip", report["out"])
            st.session_state["export_zip"] = (rec.id, fmt, Path(data).read_bytes(), report)
    saved = st.session_state.get("export_zip")
    if saved and saved[0] == rec.id:
        report = saved[3]
        hf = report.get("hf") or {}
        if hf.get("written"):
            st.caption(f"Includes hf/: loads with transformers' AutoModelForSequenceClassification "
                       f"(logits match to {hf['max_abs_logit_diff']:.1e}).")
        elif pred.modality == "text":
            st.caption(f"No transformers folder: {hf.get('why', '')}.")
        if "onnx" in report:
            o = report["onnx"]
            st.caption(f"ONNX: largest logit difference from PyTorch {o['max_abs_logit_diff']:.1e} on "
                       f"{o['checked_on']} test inputs; {o['size_mb']} MB.")
        if "int8" in report:
            q = report["int8"]
            wide = q.get("all_rows")
            st.caption(f"INT8: {q['size_mb']} MB ({q['size_ratio']:.0%} of fp32), {q['speedup_vs_fp32_onnx']}x the "
                       f"speed of fp32 ONNX on CPU, test accuracy {q['accuracy_change_points']:+.1f} points"
                       + (f" ({wide['accuracy_change_points']:+.2f} points over {wide['checked_on']:,} labelled rows "
                          "of the dataset)." if wide else "."))
        st.download_button(f"Download model ({saved[1]}, zip)", saved[2], file_name=f"model-{rec.id}-{saved[1]}.zip",
                           mime="application/zip")
