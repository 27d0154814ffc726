import io
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.images import open_rgb
from core.predict import Predictor, export_folder, read_zip_images, to_csv_bytes
from core.tables import guess_columns, read_table
from studio.runs import pick_run
from studio.services import guard

st.title("Predict & export")
rec = pick_run(only_with_model=True)
if rec is None:
    st.stop()


@st.cache_resource(show_spinner="Loading the model", max_entries=4)
def predictor(run_dir: str, mtime: float) -> Predictor:
    return Predictor(run_dir)


def probs_chart(classes, p) -> None:
    s = pd.Series(p, index=classes).sort_values(ascending=False).head(10)
    st.bar_chart(s.rename("probability"), horizontal=True, x_label="probability", height=40 + 28 * len(s))


with guard("Loading the model"):
    ck = rec.dir / "checkpoints"
    pred = predictor(str(rec.dir), max((p.stat().st_mtime for p in ck.rglob("*.safetensors")), default=0))

    st.subheader("Try it")
    if pred.modality == "text":
        text = st.text_area("Text to classify", placeholder="Type or paste a text…")
        if text.strip():
            p = pred.predict_texts([text])[0]
            st.markdown(f"Prediction: **{pred.classes[p.argmax()]}** ({p.max():.0%})")
            probs_chart(pred.classes, p)
    else:
        img = st.file_uploader("Image to classify", type=["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"])
        if img is not None:
            probs, errs = pred.predict_images([img.getvalue()])
            if errs[0]:
                st.error(f"{img.name}: {errs[0]}.")
            else:
                c1, c2 = st.columns([1, 2])
                c1.image(open_rgb(img.getvalue()), width=200)
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
    st.caption("A folder with model.safetensors (LoRA merged), labels, config and a README with a load-and-predict example.")
    if st.button("Prepare export (zip)"):
        with tempfile.TemporaryDirectory() as tmp:
            out = export_folder(rec.dir, Path(tmp) / f"model-{rec.id}")
            data = shutil.make_archive(str(Path(tmp) / "export"), "zip", out)
            st.session_state["export_zip"] = (rec.id, Path(data).read_bytes())
    if st.session_state.get("export_zip", (None,))[0] == rec.id:
        st.download_button("Download model folder (zip)", st.session_state["export_zip"][1],
                           file_name=f"model-{rec.id}.zip", mime="application/zip")
