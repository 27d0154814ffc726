"""The parts of a run's report that differ by task: the curves, the results table, the task's own sections
(confusion matrix and per-class table; predicted against true and residuals) and the gallery of mistakes."""
from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # labels are people's class names, never TeX
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..data.images import open_rgb
from ..predict.explain import Explanation, explain, overlay, tokens_html

NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "mae": "MAE", "rmse": "RMSE", "r2": "R²"}


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def thumb(pil) -> str:
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return f'<img class="thumb" alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def table(df: pd.DataFrame) -> str:
    return df.to_html(classes="tbl", border=0, float_format=lambda v: f"{v:.3f}", escape=True)


def fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def curves(events: list[dict[str, Any]], task) -> str:
    steps = [(e["step"], e["data"]["loss"]) for e in events if e["kind"] == "step"]
    keys = [k for k in task.headline if k in NAMES][:2]
    val = [e for e in events if e["kind"] == "eval" and e["data"].get("split") == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    if steps:
        axes[0].plot(*zip(*steps), color="#4C78A8")
    axes[0].set(title="Training loss", xlabel="step", ylabel="loss")
    for k in keys:
        pts = [(e["epoch"] + 1, e["data"][k]) for e in val if k in e["data"]]
        if pts:
            axes[1].plot(*zip(*pts), marker="o", label=NAMES[k])
    if val:
        axes[1].legend()
    axes[1].set(title="Validation", xlabel="epoch", ylabel="score" if task.has_classes else "error")
    if task.has_classes:
        axes[1].set_ylim(0, 1.02)
    fig.tight_layout()
    return png(fig)


def results_table(task, t: dict, base: dict | None, title: str | None = None, parts: dict | None = None) -> str:
    """The model as it predicts (named from what it holds), each of its parts alone, and the baseline."""
    keys = list(task.headline)
    rows = [(f"This model: {title}" if title else "This model", *[t.get(k) for k in keys])]
    for name, scores in (parts or {}).items():
        rows.append((f"{name.capitalize()} alone", *[scores.get(k) for k in keys]))
    if base:
        rows.append((f"Baseline: {base['name']}", *[base.get(k) for k in keys]))
    return table(pd.DataFrame(rows, columns=["model", *[f"test {NAMES.get(k, k)}" for k in keys]]).set_index("model"))


def summary_numbers(task, res: dict) -> str:
    if task.has_classes:
        return (f"test accuracy <b>{res['accuracy']:.1%}</b>, macro-F1 <b>{res['macro_f1']:.3f}</b>"
                + (f" · ROC-AUC {res['roc_auc']:.3f}" if res.get("roc_auc") is not None else ""))
    return f"test MAE <b>{res['mae']:.4g}</b>, RMSE <b>{res['rmse']:.4g}</b>, R² <b>{res['r2']:.3f}</b>"


def task_sections(task, res: dict, preds: pd.DataFrame) -> dict[str, str]:
    if task.has_classes:
        per_class = pd.DataFrame(res["per_class"]).T.rename(columns={"f1-score": "F1"})
        per_class["support"] = per_class["support"].astype(int)
        confused = ("<p>Most confused: " + ", ".join(f"{html.escape(m['true'])} → {html.escape(m['pred'])} "
                                                     f"({m['count']})" for m in res["most_confused"][:5]) + "</p>"
                    if res["most_confused"] else "")
        return {"Confusion matrix": _confusion(res) + confused, "Per class": table(per_class)}
    if preds.empty:
        return {}
    return {"Predicted against true": _scatter(preds), "Residuals": _residuals(preds, res)}


def _confusion(res: dict[str, Any]) -> str:
    cm, classes = np.asarray(res["confusion"]), res["classes"]
    n = len(classes)
    fig, ax = plt.subplots(figsize=(min(10, 0.55 * n + 3), min(9, 0.5 * n + 2.6)))
    sns.heatmap(cm, annot=n <= 20, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes, ax=ax, square=True)
    ax.set(xlabel="predicted", ylabel="true", title="Test confusion matrix")
    fig.tight_layout()
    return png(fig)


def _scatter(preds: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.scatter(preds["true"], preds["pred"], s=12, alpha=0.6, color="#4C78A8", edgecolors="none")
    lo, hi = float(min(preds["true"].min(), preds["pred"].min())), float(max(preds["true"].max(), preds["pred"].max()))
    ax.plot([lo, hi], [lo, hi], color="#E45756", lw=1, ls="--")
    ax.set(xlabel="true value", ylabel="predicted value", title="Test: predicted against true (dashed: perfect)")
    fig.tight_layout()
    return png(fig)


def _residuals(preds: pd.DataFrame, res: dict) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.histplot(preds["pred"] - preds["true"], bins=40, ax=ax, color="#72B7B2")
    ax.axvline(0, color="#E45756", lw=1, ls="--")
    ax.set(xlabel="predicted − true", ylabel="examples", title="Residuals")
    fig.tight_layout()
    return png(fig) + f"<p>Mean residual (bias) {res['bias']:+.3g}; target standard deviation {res['target_std']:.3g}.</p>"


def explanation_html(expl: Explanation, image: Any = None) -> str:
    """Each part of the predictor that decided, with its share: heat over the image, or shaded words."""
    out = []
    for part in expl.parts:
        head = f"<div class='muted'>{html.escape(part.name)} ({part.share:.0%} of the prediction)</div>"
        if part.heat is not None:
            body = thumb(overlay(image, part.heat).resize((112, 112)))
        else:
            body = f"<p>{tokens_html(part.words, part.scores)}</p>"
        out.append(head + body + (f"<div class='muted'>{html.escape(part.note)}</div>" if part.note else ""))
    return "".join(out)


def mistakes(pred, task, preds: pd.DataFrame, max_items: int) -> str:
    """The worst test examples with what decided them (pred: a loaded Predictor, or None to skip)."""
    if task.has_classes:
        worst = preds[preds["true"] != preds["pred"]].sort_values("loss", ascending=False).head(max_items)
        if worst.empty:
            return "<p>No test example was misclassified.</p>"
    else:
        worst = preds.sort_values("error_abs", ascending=False).head(max_items)
    images = "file" in preds.columns
    cards = []
    for _, r in worst.iterrows():
        cap = f"true <b>{html.escape(fmt(r['true']))}</b> → predicted <b>{html.escape(fmt(r['pred']))}</b>" + \
            (f" ({r['confidence']:.0%})" if "confidence" in r else "")
        target = pred.classes.index(r["pred"]) if pred is not None and task.has_classes else 0
        if images:
            img = open_rgb(r["file"])
            body = thumb(img.resize((112, 112)))
            if pred is not None:
                body += explanation_html(explain(pred, img, target), img)
            cards.append(f'<div class="card">{body}<div>{cap}</div></div>')
        else:
            text = f"<p>{html.escape(str(r['input']))}</p>"
            if pred is not None:
                text = explanation_html(explain(pred, str(r["input"]), target))
            cards.append(f'<div class="card wide"><div>{cap}</div>{text}</div>')
    towards = "the predicted class" if task.has_classes else "a higher value"
    note = ("Heat shows where each part of the model looked for its answer." if images else
            f"Green words pushed towards {towards}, red against it.") if pred is not None else ""
    return f"<p class='muted'>{note}</p><div class='gallery'>{''.join(cards)}</div>"
