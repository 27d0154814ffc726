"""What each modality looks like on a page: how one input is asked for and explained, how a file of them is
uploaded, how examples are shown. Pages ask VIEWS[modality name], never compare names themselves."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.data.images import open_rgb
from core.predict.explain import explain, overlay, tokens_html
from core.data.tables import TABLE_TYPES


def fmt(v: Any) -> str:
    """A class name as is; a number to four significant digits."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def probs_chart(classes: list[str], p) -> None:
    s = pd.Series(p, index=classes).sort_values(ascending=False).head(10)
    st.bar_chart(s.rename("probability"), horizontal=True, x_label="probability", height=40 + 28 * len(s))


def explained_label(pred, out, key: str) -> int | None:
    """Several labels: which one to explain (the surest first); None: the prediction itself."""
    if not pred.task.several:
        return None
    order = list(np.argsort(-np.nan_to_num(out)))
    return int(st.selectbox("Explain the label", order, format_func=lambda j: f"{pred.classes[j]} ({out[j]:.0%})",
                            key=key))


def show_explanation(pred, expl, image=None) -> None:
    """Why, part by part: each part of the predictor with a share, named, with that share; a network with no share
    is said to have none rather than explained."""
    towards = f"*{pred.classes[expl.target]}*" if pred.task.has_classes else "a higher value"
    st.markdown(f"**Why** (towards {towards}):")
    if pred.partner is not None and pred.network_weight <= 0:
        st.caption(f"The network ({pred.describe()['network']}) was trained, but the blend gave it no share in "
                   "the predictions; what decides is shown here.")
    for part in expl.parts:
        st.caption(f"{part.name}: {part.share:.0%} of the prediction")
        if part.heat is not None:
            st.image(overlay(image, part.heat), width=200, caption="where it looked (Grad-CAM)")
        else:
            st.markdown(tokens_html(part.words, part.scores), unsafe_allow_html=True)
        if part.note:
            st.caption(part.note)


def show_prediction(pred, out) -> None:
    """One prediction: the class and its probabilities, every label with its probability and threshold, or the
    value."""
    row = pred.table(["input"], out[None, :])
    if pred.task.several:
        thresholds = pred.meta.get("thresholds") or [0.5] * len(pred.classes)
        st.markdown(f"Labels: **{row['prediction'].iloc[0] or 'none'}**")
        table = pd.DataFrame({"label": pred.classes, "probability": out, "threshold": thresholds,
                              "given": out >= np.asarray(thresholds)}).sort_values("probability", ascending=False)
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "probability": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1),
            "threshold": st.column_config.NumberColumn(format="%.2f",
                                                       help="Given at or above this probability (tuned on "
                                                            "validation for this label)")})
    elif pred.task.has_classes:
        st.markdown(f"Prediction: **{row['prediction'].iloc[0]}** ({row['confidence'].iloc[0]:.0%})")
        probs_chart(pred.classes, out)
    else:
        st.markdown(f"Prediction: **{row['prediction'].iloc[0]:.4g}**")


class TextViews:
    why_label = "Show why (word attributions)"
    shows_files = False

    def preview(self, ds) -> None:
        st.dataframe(ds.items[["text", "label"]].head(20), width="stretch", hide_index=True)

    def profile(self, ds) -> None:
        from . import charts

        st.pyplot(charts.length_hist(ds.items["text"].str.len()), clear_figure=True)

    def rows(self, ds, rows: list[int], captions: list[str] | None = None) -> None:
        """Some rows of the dataset, as a person reads them."""
        st.dataframe(pd.DataFrame({"row": rows, "input": [ds.display(i)[:160] for i in rows],
                                   "label": ds.items["label"].iloc[rows].tolist()}), hide_index=True, width="stretch")
    batch_types = list(TABLE_TYPES)
    batch_label = "A table with a text column (CSV, TSV, JSON Lines, Parquet or Excel)"

    def try_one(self, pred) -> None:
        text = st.text_area("Text to classify" if pred.task.has_classes else "Text to score",
                            placeholder="Type or paste a text…")
        if not text.strip():
            return
        out, errors = pred.predict([text])
        if errors[0]:
            st.error(f"Cannot predict this: {errors[0]}.")
            return
        show_prediction(pred, out[0])
        show_explanation(pred, explain(pred, text, explained_label(pred, out[0], "why_label_text")))

    def batch_items(self, upload) -> tuple[list[str], list[Any]]:
        from core.data.tables import guess_columns, read_table

        table = read_table(upload.getvalue(), upload.name)
        cols = list(table.df.columns)
        try:
            guess = guess_columns(table.df, upload.name)[0]
        except Exception:
            guess = cols[0]
        col = st.selectbox("Text column", cols, index=cols.index(guess))
        texts = table.df[col].astype(str).tolist()
        return texts, texts

    explain_limit = 5  # explained on request at most (Integrated Gradients is seconds a text on a CPU)

    def raw(self, row: pd.Series) -> Any:
        return str(row["input"])

    def examples(self, df: pd.DataFrame, explained: list | None = None) -> None:
        show = df[[c for c in ("input", "true", "pred", "missed", "added", "confidence", "p_true", "error_abs")
                   if c in df.columns]]
        st.dataframe(show.rename(columns={"p_true": "p(true class)", "pred": "predicted", "added": "given wrongly"}),
                     hide_index=True,
                     width="stretch",
                     column_config={"confidence": st.column_config.ProgressColumn(format="%.2f", min_value=0,
                                                                                   max_value=1),
                                    "p(true class)": st.column_config.NumberColumn(format="%.3f")})
        for (_, r), expl in zip(df.iterrows(), explained or []):
            if expl is None:
                continue
            st.markdown(f"true **{html.escape(fmt(r['true']))}** → predicted **{html.escape(fmt(r['pred']))}**")
            for part in expl.parts:
                st.markdown(f"<small>{html.escape(part.name)} ({part.share:.0%}):</small> "
                            + tokens_html(part.words, part.scores), unsafe_allow_html=True)


class ImageViews:
    why_label = "Show why (Grad-CAM)"
    shows_files = True

    def preview(self, ds) -> None:
        sample = ds.items.groupby("label").head(1).head(12)
        cols = st.columns(min(6, len(sample)))
        for i, (_, row) in enumerate(sample.iterrows()):
            cols[i % len(cols)].image(str(ds.dir.parent / row["path"]), caption=f"{row['label']}", width=96)

    def profile(self, ds) -> None:
        sizes = ds.items.groupby(["width", "height"]).size().rename("images").reset_index()
        st.markdown("**Image sizes**")
        st.dataframe(sizes.sort_values("images", ascending=False).head(8), hide_index=True, width="stretch")
        st.markdown("**Colour modes** (all converted to RGB): " +
                    ", ".join(f"{k} ({v})" for k, v in ds.items["mode"].value_counts().items()))

    def rows(self, ds, rows: list[int], captions: list[str] | None = None) -> None:
        cols = st.columns(min(8, max(1, len(rows))))
        for j, (col, i) in enumerate(zip(cols, rows[:8])):
            col.image(str(ds.dir.parent / ds.items["path"].iloc[i]), width=80,
                      caption=captions[j] if captions else ds.items["label"].iloc[i])
    batch_types = ["zip"]
    batch_label = "A zip of images"

    def try_one(self, pred) -> None:
        img = st.file_uploader("Image to classify" if pred.task.has_classes else "Image to score",
                               type=list(pred.modality.upload_types))
        if img is None:
            return
        out, errors = pred.predict([img.getvalue()])
        if errors[0]:
            st.error(f"{img.name}: {errors[0]}.")
            return
        c1, c2 = st.columns([1, 2])
        picture = open_rgb(img.getvalue())
        c1.image(picture, width=200, caption="your image")
        with c2:
            show_prediction(pred, out[0])
        show_explanation(pred, explain(pred, picture, explained_label(pred, out[0], "why_label_image")), picture)

    def batch_items(self, upload) -> tuple[list[str], list[Any]]:
        from core.predict.predictor import read_zip_images

        members = read_zip_images(upload.getvalue())
        return [n for n, _ in members], [b for _, b in members]

    explain_limit = None

    def raw(self, row: pd.Series) -> Any:
        return open_rgb(row["file"])

    def examples(self, df: pd.DataFrame, explained: list | None = None) -> None:
        cols = st.columns(6)
        for i, (_, r) in enumerate(df.iterrows()):
            expl = explained[i] if explained else None
            picture = overlay(open_rgb(r["file"]), expl.parts[0].heat) if expl and expl.parts[0].heat is not None \
                else r["file"]
            caption = f"true {fmt(r['true'])} → {fmt(r['pred'])}" + (f" ({r['confidence']:.0%})" if "confidence" in r
                                                                    else "")
            cols[i % 6].image(picture, width=110, caption=caption)


VIEWS = {"text": TextViews(), "image": ImageViews()}
