import html

import pandas as pd
import streamlit as st

from core.baseline import comparison
from core.blend import describe as blend_line
from core.explain import gradcam, overlay, token_attributions, tokens_html
from core.images import open_rgb
from studio import charts
from studio.entry import through_app
from studio.runs import pick_run, report_download
from studio.services import guard, predictor, set_dataset

through_app()

st.title("Evaluate")
rec = pick_run(only_with_model=True)
if rec is None:
    st.stop()
res = rec.result("test")
if res is None:
    st.info("This run has no test evaluation (it stopped before finishing an epoch, or there is no test split).")
    st.stop()
pred_path = rec.dir / "eval" / "test_predictions.parquet"
preds = pd.read_parquet(pred_path) if pred_path.is_file() else pd.DataFrame()
modality = "image" if "file" in preds.columns else "text"

base = rec.status.get("baseline")
# a difference the test set cannot resolve is shown grey, not as a green or red win
tone = "off" if (rec.status.get("vs_baseline") or {}).get("verdict") in ("within_noise", "same") else "normal"
c = st.columns(4)
c[0].metric("Test accuracy", f"{res['accuracy']:.1%}",
            delta=f"{(res['accuracy'] - base['accuracy']) * 100:+.1f} pts vs baseline" if base else None,
            delta_color=tone)
c[1].metric("Macro-F1", f"{res['macro_f1']:.3f}",
            delta=f"{res['macro_f1'] - base['macro_f1']:+.3f} vs baseline" if base else None,
            delta_color=tone)
c[2].metric("ROC-AUC", f"{res['roc_auc']:.3f}" if res.get("roc_auc") is not None else "–")
c[3].metric("Test examples", res["n"])
with guard("Writing the report"):
    report_download(rec, "evaluate")
if base:
    st.caption(f"Baseline: {base['name']} on the same split — accuracy {base['accuracy']:.1%}, "
               f"macro-F1 {base['macro_f1']:.3f}. " + (comparison(rec.status) or ""))
if blend_line(rec.status):
    st.caption(blend_line(rec.status) + " Explanations below show the network's side.")

left, right = st.columns([3, 2])
with left:
    st.pyplot(charts.confusion_heatmap(res["confusion"], res["classes"], "Test confusion matrix"), clear_figure=True)
with right:
    st.markdown("**Per class**")
    pc = pd.DataFrame(res["per_class"]).T.rename(columns={"f1-score": "F1"})
    pc["support"] = pc["support"].astype(int)
    st.dataframe(pc.style.format({"precision": "{:.2f}", "recall": "{:.2f}", "F1": "{:.2f}"}),
                 width="stretch")
    if res["most_confused"]:
        st.markdown("**Most confused pairs**")
        st.dataframe(pd.DataFrame(res["most_confused"]), hide_index=True, width="stretch")


def show_examples(df: pd.DataFrame, n: int = 12, key: str = "") -> None:
    if df.empty:
        st.caption("No examples here.")
        return
    df = df.head(n)
    why = st.toggle("Show why (Grad-CAM)" if modality == "image" else "Show why (word attributions)", key=f"why{key}",
                    help="What the model looked at for its prediction: heat on the image, or words shaded by how "
                         "much they pushed towards (green) or against (red) the predicted class.")
    pred = predictor(rec.dir) if why else None
    if modality == "image":
        cols = st.columns(6)
        for i, (_, r) in enumerate(df.iterrows()):
            picture = r["file"]
            if pred is not None:
                img = open_rgb(r["file"])
                picture = overlay(img, gradcam(pred, img, target=pred.classes.index(r["pred"]))[0])
            cols[i % 6].image(picture, width=110,
                              caption=f"true {r['true']} → {r['pred']} ({r['confidence']:.0%})")
    else:
        show = df[["input", "true", "pred", "confidence", "p_true"]].rename(
            columns={"p_true": "p(true class)", "pred": "predicted"})
        st.dataframe(show, hide_index=True, width="stretch",
                     column_config={"confidence": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1),
                                    "p(true class)": st.column_config.NumberColumn(format="%.3f")})
        if pred is not None:
            for _, r in df.head(5).iterrows():
                ts = token_attributions(pred, r["input"], target=pred.classes.index(r["pred"]))
                st.markdown(f"true **{html.escape(r['true'])}** → predicted **{html.escape(r['pred'])}**: "
                            + tokens_html(ts), unsafe_allow_html=True)


sus_path = rec.dir / "eval" / "suspect_labels.parquet"
if sus_path.is_file():
    n_sus = len(pd.read_parquet(sus_path))
    st.subheader("Suspect labels")
    st.caption(f"{n_sus} training/validation example(s) whose label a model that never saw them confidently "
               "contradicts." if n_sus else "No training label is confidently contradicted.")
    if n_sus and st.button("Open them in Explore to relabel or drop", icon=":material/flag:"):
        set_dataset(rec.status.get("dataset"))
        st.session_state["open_suspects"] = True
        st.switch_page("pages/explore.py")

st.subheader("Look at the mistakes")
if len(preds):
    s1, s2 = st.columns(2)
    classes = res["classes"]
    wrong = preds[preds["true"] != preds["pred"]]
    pairs = wrong.groupby(["true", "pred"]).size().sort_values(ascending=False)
    default_t, default_p = (pairs.index[0] if len(pairs) else (classes[0], classes[-1]))
    t = s1.selectbox("True class (row of the matrix)", classes, index=classes.index(default_t))
    p = s2.selectbox("Predicted class (column)", classes, index=classes.index(default_p))
    cell = preds[(preds["true"] == t) & (preds["pred"] == p)].sort_values("confidence", ascending=False)
    st.caption(f"{len(cell)} test example(s) of **{t}** predicted as **{p}**.")
    with guard("Explaining these examples"):
        show_examples(cell, key="cell")
    st.subheader("Top losses")
    st.caption("The examples the model got most confidently wrong: often label errors or genuinely hard cases.")
    with guard("Explaining these examples"):
        show_examples(preds.sort_values("loss", ascending=False), key="top")
