"""What each task looks like on Evaluate and Monitor: headline numbers, the main chart, and where the model
goes wrong. Pages ask TASK_VIEWS[task name]."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.metrics import comparison
from core.multilabel_metrics import per_label_table

from . import charts


def delta_color(status: dict, delta: float, higher_is_better: bool = True) -> str:
    """A difference's colour follows the paired verdict, never its sign alone: green only where the test set
    shows the model better, red only where it shows it worse, grey where it cannot tell them apart (or where a
    single number moved against the verdict)."""
    verdict = (status.get("vs_baseline") or {}).get("verdict")
    good = (delta > 0) == higher_is_better
    if verdict == "better" and good and delta:
        return "normal" if higher_is_better else "inverse"  # green
    if verdict == "worse" and not good and delta:
        return "normal" if higher_is_better else "inverse"  # red
    return "off"


def verdict_box(status: dict, text: str) -> None:
    """The paired verdict in the colour of what it says."""
    verdict = (status.get("vs_baseline") or {}).get("verdict")
    box = {"better": st.success, "worse": st.error}.get(verdict, st.info)
    box(text, icon={"better": ":material/trending_up:", "worse": ":material/trending_down:"}.get(
        verdict, ":material/drag_handle:"))


def overlap_note(status: dict) -> None:
    o = status.get("test_overlap")
    if not o or not (o.get("exact") or o.get("near")):
        return
    n = o["exact"] + o["near"]
    if o.get("dropped"):
        st.info(f"{n} example(s) of your test file repeated training examples ({o['exact']} exactly, {o['near']} "
                "nearly) and were left out of the test set.", icon=":material/content_copy:")
    else:
        st.warning(f"{n} of {o['test_rows_total']} test example(s) repeat training examples ({o['exact']} exactly, "
                   f"{o['near']} nearly): the scores below are inflated by them. Train again with 'Leave these out of "
                   "the test set' on the Train page, or `--test-overlap drop` on the CLI.",
                   icon=":material/content_copy:")


class ClassificationView:
    def headline(self, res: dict, status: dict) -> None:
        base = status.get("baseline")
        c = st.columns(4)
        d_acc = res["accuracy"] - base["accuracy"] if base else 0.0
        d_f1 = res["macro_f1"] - base["macro_f1"] if base else 0.0
        c[0].metric("Test accuracy", f"{res['accuracy']:.1%}",
                    delta=f"{d_acc * 100:+.1f} pts vs baseline" if base else None,
                    delta_color=delta_color(status, d_acc))
        c[1].metric("Macro-F1", f"{res['macro_f1']:.3f}", delta=f"{d_f1:+.3f} vs baseline" if base else None,
                    delta_color=delta_color(status, d_f1))
        c[2].metric("ROC-AUC", f"{res['roc_auc']:.3f}" if res.get("roc_auc") is not None else "–")
        c[3].metric("Test examples", res["n"])

    def baseline_numbers(self, base: dict) -> str:
        return f"accuracy {base['accuracy']:.1%} · macro-F1 {base['macro_f1']:.3f}"

    def baseline_line(self, base: dict, status: dict) -> str:
        return f"Baseline: {base['name']} on the same split — {self.baseline_numbers(base)}. " + (comparison(status) or "")

    def overview(self, res: dict, preds: pd.DataFrame | None = None) -> None:
        """Per class, and the pairs most often confused (the clickable matrix is with the mistakes below)."""
        left, right = st.columns([3, 2])
        with left:
            st.markdown("**Per class**")
            pc = pd.DataFrame(res["per_class"]).T.rename(columns={"f1-score": "F1"})
            pc["support"] = pc["support"].astype(int)
            st.dataframe(pc.style.format({"precision": "{:.2f}", "recall": "{:.2f}", "F1": "{:.2f}"}),
                         width="stretch")
        with right:
            if res["most_confused"]:
                st.markdown("**Most confused pairs**")
                st.dataframe(pd.DataFrame(res["most_confused"]), hide_index=True, width="stretch")

    def mistakes(self, res: dict, preds: pd.DataFrame, show) -> None:
        """Click a cell of the confusion matrix to see its test examples (the most confused pair to start with),
        then the top losses: the most confident mistakes."""
        classes = res["classes"]
        wrong = preds[preds["true"] != preds["pred"]]
        pairs = wrong.groupby(["true", "pred"]).size().sort_values(ascending=False)
        picked = st.session_state.get("cell_picked")
        cell = tuple(picked) if picked else (pairs.index[0] if len(pairs) else (classes[0], classes[0]))
        left, right = st.columns([3, 2])
        with left:
            st.caption("Click a cell to see its examples (off the diagonal: the mistakes).")
            event = st.altair_chart(charts.confusion_chart(res["confusion"], classes, cell), on_select="rerun",
                                    selection_mode="cell", key="confusion_cells")
        chosen = (event.selection.get("cell") or [None])[0] if event is not None else None
        if chosen and (chosen["true"], chosen["predicted"]) != cell:
            st.session_state["cell_picked"] = [chosen["true"], chosen["predicted"]]
            st.rerun()
        t, p = cell
        with right:
            st.markdown(f"**{t}** predicted as **{p}**")
            st.caption(f"{int(((preds['true'] == t) & (preds['pred'] == p)).sum())} test example(s)"
                       + (" — correct" if t == p else " — mistakes"))
        show(preds[(preds["true"] == t) & (preds["pred"] == p)].sort_values("confidence", ascending=False), "cell")
        st.subheader("Top losses")
        st.caption("The test examples the model got most confidently wrong: often label errors or genuinely hard "
                   "cases.")
        show(wrong.sort_values("loss", ascending=False), "top")

    def target_of(self, pred, row: Any) -> int | None:
        return pred.classes.index(row["pred"])

    def live_metrics(self) -> tuple[list[str], str]:
        return ["val accuracy", "val macro-F1"], "score"

    def final_line(self, t: dict, base: dict | None) -> str:
        vs = f" (baseline {base['macro_f1']:.3f})" if base else ""
        return f"Test accuracy {t['accuracy']:.1%} · macro-F1 {t['macro_f1']:.3f}{vs}"


class RegressionView:
    def headline(self, res: dict, status: dict) -> None:
        base = status.get("baseline")
        c = st.columns(4)
        d = {k: res[k] - base[k] if base else 0.0 for k in ("mae", "rmse", "r2")}
        c[0].metric("Test MAE", f"{res['mae']:.4g}", delta=f"{d['mae']:+.3g} vs baseline" if base else None,
                    delta_color=delta_color(status, d["mae"], higher_is_better=False))
        c[1].metric("RMSE", f"{res['rmse']:.4g}", delta=f"{d['rmse']:+.3g} vs baseline" if base else None,
                    delta_color=delta_color(status, d["rmse"], higher_is_better=False))
        c[2].metric("R²", f"{res['r2']:.3f}", delta=f"{d['r2']:+.3f} vs baseline" if base else None,
                    delta_color=delta_color(status, d["r2"]))
        c[3].metric("Spearman", f"{res['spearman']:.3f}" if res.get("spearman") == res.get("spearman") else "–")

    def baseline_numbers(self, base: dict) -> str:
        return f"MAE {base['mae']:.4g} · RMSE {base['rmse']:.4g} · R² {base['r2']:.3f}"

    def baseline_line(self, base: dict, status: dict) -> str:
        return f"Baseline: {base['name']} on the same split — {self.baseline_numbers(base)}. " + (comparison(status) or "")

    def overview(self, res: dict, preds: pd.DataFrame | None = None) -> None:
        if preds is None or preds.empty:
            return
        left, right = st.columns(2)
        with left:
            st.pyplot(charts.predicted_vs_true(preds["true"], preds["pred"]), clear_figure=True)
        with right:
            st.pyplot(charts.residuals(preds["true"], preds["pred"]), clear_figure=True)
        st.caption(f"Mean residual (bias) {res['bias']:+.3g}; the targets' standard deviation is "
                   f"{res['target_std']:.3g}, so an MAE well under it means the model tells examples apart.")

    def mistakes(self, res: dict, preds: pd.DataFrame, show) -> None:
        st.caption("The test examples the model is furthest off on, with their inputs: often label errors, or cases "
                   "unlike the training data.")
        show(preds.sort_values("error_abs", ascending=False), "largest")

    def target_of(self, pred, row: Any) -> int:
        return 0  # the one output: explanations show what pushed the value up (green) or down (red)

    def live_metrics(self) -> tuple[list[str], str]:
        return ["val MAE", "val RMSE"], "error"

    def final_line(self, t: dict, base: dict | None) -> str:
        vs = f" (baseline {base['mae']:.4g})" if base else ""
        return f"Test MAE {t['mae']:.4g} · RMSE {t['rmse']:.4g} · R² {t['r2']:.3f}{vs}"


class MultiLabelView:
    """Several labels per example: scores label by label and over whole sets; each label's misses and wrong
    additions one click away."""

    def headline(self, res: dict, status: dict) -> None:
        base = status.get("baseline")
        c = st.columns(4)
        d = {k: res[k] - base[k] if base else 0.0 for k in ("micro_f1", "macro_f1", "subset_accuracy")}
        c[0].metric("Test micro-F1", f"{res['micro_f1']:.3f}", delta=f"{d['micro_f1']:+.3f} vs baseline" if base else
                    None, delta_color=delta_color(status, d["micro_f1"]),
                    help="F1 over every label given and every label due, pooled: common labels weigh most.")
        c[1].metric("Macro-F1", f"{res['macro_f1']:.3f}", delta=f"{d['macro_f1']:+.3f} vs baseline" if base else None,
                    delta_color=delta_color(status, d["macro_f1"]),
                    help="F1 of each label, averaged: a rare label counts as much as a common one.")
        c[2].metric("Exact label sets", f"{res['subset_accuracy']:.1%}",
                    delta=f"{d['subset_accuracy'] * 100:+.1f} pts vs baseline" if base else None,
                    delta_color=delta_color(status, d["subset_accuracy"]),
                    help="Test examples given exactly their labels, no more and no fewer.")
        c[3].metric("mAP", f"{res['map']:.3f}", help="Mean average precision over labels: how well each label's "
                                                     "probabilities rank its examples, whatever the threshold.")

    def baseline_numbers(self, base: dict) -> str:
        return f"micro-F1 {base['micro_f1']:.3f} · macro-F1 {base['macro_f1']:.3f}"

    def baseline_line(self, base: dict, status: dict) -> str:
        return f"Baseline: {base['name']} on the same split — {self.baseline_numbers(base)}. " + (comparison(status) or "")

    def overview(self, res: dict, preds: pd.DataFrame | None = None) -> None:
        st.markdown("**Per label**")
        pl = per_label_table(res)
        st.dataframe(pl.style.format({k: "{:.2f}" for k in ("threshold", "precision", "recall", "F1", "AP")},
                                     na_rep="–"), width="stretch")
        st.caption(f"Labels per example: {res['labels_per_example']['true']:.2f} given, "
                   f"{res['labels_per_example']['predicted']:.2f} predicted. Hamming loss {res['hamming_loss']:.3f} "
                   "(the share of label decisions that are wrong). Each label is given at or above its threshold, "
                   "tuned on validation.")
        if res.get("error_pairs"):
            st.markdown("**Errors that come together**: an example missing one label, given another instead")
            st.dataframe(pd.DataFrame(res["error_pairs"]), hide_index=True)

    def mistakes(self, res: dict, preds: pd.DataFrame, show) -> None:
        """Click a label to see the test examples it was given wrongly and those it missed (the label with the
        most errors to start with), then the top losses."""
        labels = res["classes"]
        errors = pd.DataFrame([{"label": c, "given wrongly": v["false_positives"], "missed": v["false_negatives"]}
                               for c, v in res["per_class"].items()])
        errors = errors.assign(errors=errors["missed"] + errors["given wrongly"]).sort_values(
            "errors", ascending=False, kind="stable").reset_index(drop=True)
        st.caption("Click a label to see its errors.")
        event = st.dataframe(errors, hide_index=True, width="stretch", on_select="rerun",
                             selection_mode="single-row", key="label_errors")
        rows = event.selection.rows if event is not None else []
        label = errors["label"].iloc[rows[0]] if rows else errors["label"].iloc[0] if len(errors) else labels[0]
        has = {k: preds[k].map(lambda cell: label in _labels_in(cell)) for k in ("added", "missed")}
        a, m = st.columns(2)
        with a:
            st.markdown(f"**Given *{label}* wrongly** ({int(has['added'].sum())})")
            show(preds[has["added"]].sort_values(f"p:{label}", ascending=False), "added")
        with m:
            st.markdown(f"**Missed *{label}*** ({int(has['missed'].sum())})")
            show(preds[has["missed"]].sort_values(f"p:{label}"), "missed")
        st.subheader("Top losses")
        st.caption("The test examples whose labels the model got most confidently wrong: often label errors or "
                   "genuinely hard cases.")
        show(preds[~preds["correct"]].sort_values("loss", ascending=False), "top")

    def target_of(self, pred, row: Any) -> int | None:
        return pred.task.explain_target(row, pred.classes)

    def live_metrics(self) -> tuple[list[str], str]:
        return ["val micro-F1", "val macro-F1", "val mAP"], "score"

    def final_line(self, t: dict, base: dict | None) -> str:
        vs = f" (baseline {base['micro_f1']:.3f})" if base else ""
        return f"Test micro-F1 {t['micro_f1']:.3f}{vs} · macro-F1 {t['macro_f1']:.3f}"


def _labels_in(cell: Any) -> set[str]:
    return {p.strip() for sep in (";", "|", ",") for p in str(cell or "").split(sep)}


TASK_VIEWS: dict[str, Any] = {"classification": ClassificationView(), "regression": RegressionView(),
                              "multilabel": MultiLabelView()}
