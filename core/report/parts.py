"""The parts of a run's report that differ by task: the curves, the results table, the task's own sections
(confusion matrix and per-class table; predicted against true and residuals) and the gallery of mistakes."""
from __future__ import annotations

import base64
import html
import io
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # labels are people's class names, never TeX
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..data.images import open_rgb
from ..multilabel_metrics import per_label_table
from ..predict.explain import Explanation, explain_rows, overlay, tokens_html, worst_rows
from ..runs.changes import summary

NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1", "mae": "MAE", "rmse": "RMSE",
         "r2": "R²"}


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


def _listed(names: list[str], most: int = 12) -> str:
    shown = ", ".join(f"<b>{html.escape(str(n))}</b>" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def what_it_does(task, res: dict, noun: str) -> str:
    """One sentence a person who never trained a model reads: what goes in, what comes out ('an image')."""
    thing = ("an " if noun[:1] in "aeiou" else "a ") + noun
    if task.several:
        return (f"<p>Given {thing}, it says which of {len(res['classes'])} labels apply, any number of them: "
                f"{_listed(res['classes'])}, with how sure it is of each.</p>")
    if task.has_classes:
        return (f"<p>Given {thing}, it says which of {len(res['classes'])} classes it belongs to: "
                f"{_listed(res['classes'])}, with how sure it is.</p>")
    return f"<p>Given {thing}, it estimates a number.</p>"


def how_good(task, res: dict, base: dict | None) -> str:
    """The test score as a count of examples, beside the simple model anyone could have trained."""
    n = res["n"]
    if task.several:
        out = (f"<p>On <b>{n:,}</b> test examples it never saw while training, it gave exactly the right set of "
               f"labels to <b>{round(res['subset_accuracy'] * n):,}</b> ({res['subset_accuracy']:.0%}). Label by "
               f"label, its F1 score is {res['micro_f1']:.2f} over all labels given and {res['macro_f1']:.2f} "
               "averaged over labels, so that rare labels count as much as common ones (1 is perfect).</p>")
        if base:
            out += (f"<p>A simple model trained on the same examples ({html.escape(base['name'])}): exact sets "
                    f"{round(base['subset_accuracy'] * n):,} ({base['subset_accuracy']:.0%}), F1 "
                    f"{base['micro_f1']:.2f} and {base['macro_f1']:.2f}.</p>")
        return out
    if task.has_classes:
        right = round(res["accuracy"] * n)
        out = (f"<p>On <b>{n:,}</b> test examples it never saw while training, it was right on <b>{right:,}</b> "
               f"({res['accuracy']:.0%}). Averaged over classes, so that rare classes count as much as common "
               f"ones, its F1 score is {res['macro_f1']:.2f} (1 is perfect).</p>")
        if base:
            out += (f"<p>A simple model trained on the same examples ({html.escape(base['name'])}) was right on "
                    f"{round(base['accuracy'] * n):,} ({base['accuracy']:.0%}), F1 {base['macro_f1']:.2f}.</p>")
        return out
    out = (f"<p>On <b>{n:,}</b> test examples it never saw while training, its estimates are off by "
           f"<b>{res['mae']:.3g}</b> on average; the values themselves vary by about {res['target_std']:.3g}.</p>")
    if base:
        out += f"<p>A simple model trained on the same examples ({html.escape(base['name'])}) is off by {base['mae']:.3g}.</p>"
    return out


def where_it_fails(task, res: dict) -> str:
    """The weakest classes in words (how many of each it finds, how often it is right when it names one) and
    the mix-ups it makes most; for values, whether it leans high or low."""
    if not task.has_classes:
        lean = "too high" if res["bias"] > 0 else "too low"
        return (f"<p>On average its estimates are {abs(res['bias']):.3g} {lean}. The plots show where it is "
                "furthest off; the examples follow.</p>")
    per = [(c, v) for c, v in res["per_class"].items() if isinstance(v, dict) and v.get("support")]
    if task.several:
        weakest = sorted(per, key=lambda cv: cv[1]["f1-score"])[:3]
        items = [f"<li><b>{html.escape(str(c))}</b>: it finds {v['recall']:.0%} of the examples that have it "
                 f"({round(v['recall'] * v['support'])} of {int(v['support'])}); when it gives it, it is right "
                 f"{v['precision']:.0%} of the time.</li>" for c, v in weakest]
        errs = [f"<li><b>{html.escape(m['label'])}</b>: missed {m['missed']} time{'s' if m['missed'] != 1 else ''}, "
                f"given wrongly {m['added']} time{'s' if m['added'] != 1 else ''}</li>" for m in res["most_confused"][:4]]
        return ((f"<p>Its weakest labels:</p><ul>{''.join(items)}</ul>" if items else "")
                + (f"<p>The labels it gets wrong most often:</p><ul>{''.join(errs)}</ul>" if errs else
                   "<p>It made no mistake on the test examples.</p>"))
    weakest = sorted(per, key=lambda cv: cv[1]["recall"])[:3]
    items = [f"<li><b>{html.escape(str(c))}</b>: it finds {v['recall']:.0%} of the real ones "
             f"({round(v['recall'] * v['support'])} of {int(v['support'])}); when it says {html.escape(str(c))} it "
             f"is right {v['precision']:.0%} of the time.</li>" for c, v in weakest]
    mixups = [f"<li>takes <b>{html.escape(m['true'])}</b> for <b>{html.escape(m['pred'])}</b> "
              f"{m['count']} time{'s' if m['count'] != 1 else ''}</li>" for m in res["most_confused"][:3]]
    return ((f"<p>Its weakest classes:</p><ul>{''.join(items)}</ul>" if items else "")
            + (f"<p>Its most common mix-ups:</p><ul>{''.join(mixups)}</ul>" if mixups else
               "<p>It made no mistake on the test examples.</p>"))


def summary_numbers(task, res: dict) -> str:
    if task.several:
        return (f"test micro-F1 <b>{res['micro_f1']:.3f}</b>, macro-F1 <b>{res['macro_f1']:.3f}</b>, "
                f"exact sets {res['subset_accuracy']:.1%}, mAP {res['map']:.3f}")
    if task.has_classes:
        return (f"test accuracy <b>{res['accuracy']:.1%}</b>, macro-F1 <b>{res['macro_f1']:.3f}</b>"
                + (f" · ROC-AUC {res['roc_auc']:.3f}" if res.get("roc_auc") is not None else ""))
    return f"test MAE <b>{res['mae']:.4g}</b>, RMSE <b>{res['rmse']:.4g}</b>, R² <b>{res['r2']:.3f}</b>"


def task_sections(task, res: dict, preds: pd.DataFrame) -> dict[str, str]:
    if task.several:
        return {"Per label": table(per_label_table(res)), "Errors by label": _label_errors(res)}
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


def subsections(parts: dict[str, str]) -> str:
    return "".join(f"<h3>{html.escape(k)}</h3>{v}" for k, v in parts.items())


def _confusion(res: dict[str, Any]) -> str:
    cm, classes = np.asarray(res["confusion"]), res["classes"]
    n = len(classes)
    fig, ax = plt.subplots(figsize=(min(10, 0.55 * n + 3), min(9, 0.5 * n + 2.6)))
    sns.heatmap(cm, annot=n <= 20, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes, ax=ax, square=True)
    ax.set(xlabel="predicted", ylabel="true", title="Test confusion matrix")
    fig.tight_layout()
    return png(fig)


def _label_errors(res: dict[str, Any]) -> str:
    """Each label's misses and wrong additions side by side: where the errors are, at a glance."""
    labels = res["classes"]
    cm = np.array([res["label_confusion"][c] for c in labels])  # [[tn, fp], [fn, tp]] per label
    fig, ax = plt.subplots(figsize=(6, min(9, 0.35 * len(labels) + 1.6)))
    y = np.arange(len(labels))
    ax.barh(y - 0.2, cm[:, 1, 0], height=0.4, color="#E45756", label="missed")
    ax.barh(y + 0.2, cm[:, 0, 1], height=0.4, color="#F58518", label="given wrongly")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set(xlabel="test examples", title="Errors by label")
    ax.legend()
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


def changes(ch: dict) -> str:
    """A continued run against its parent: the sentence, per-class recall, the examples fixed and broken."""
    out = f"<h3>What changed since run {html.escape(str(ch['parent']))}</h3><p>{html.escape(summary(ch))}</p>"
    if ch.get("per_class"):
        out += table(pd.DataFrame(ch["per_class"]).rename(columns={"parent_recall": "recall before",
                                                                  "child_recall": "recall now"}))
    for key in ("fixed", "broken"):
        rows = pd.DataFrame(ch.get(key) or [])
        if len(rows):
            keep = [c for c in ("input", "file", "true", "pred_parent", "pred") if c in rows.columns]
            out += f"<h4>{key.capitalize()} (first {len(rows)})</h4>" + table(
                rows[keep].rename(columns={"true": "label", "pred_parent": "before", "pred": "now"}))
    return out


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


def mistakes(task, preds: pd.DataFrame, max_items: int, cached: dict | None = None,
             predictor: Callable[[], Any] | None = None) -> str:
    """The worst test examples with what decided them: read from the explanations the run made when it ended
    (cached), else made now with predictor() (None: shown without explanations)."""
    worst = worst_rows(preds, task.has_classes, max_items)
    if task.has_classes and worst.empty:
        return "<p>No test example was misclassified.</p>"
    images = "file" in preds.columns
    raws = [open_rgb(r["file"]) if images else str(r["input"]) for _, r in worst.iterrows()]
    whys = explain_rows(worst, raws, cached, predictor)
    cards = []
    for (_, r), raw, why in zip(worst.iterrows(), raws, whys):
        cap = f"true <b>{html.escape(fmt(r['true']))}</b> → predicted <b>{html.escape(fmt(r['pred']))}</b>" + \
            (f" ({r['confidence']:.0%})" if "confidence" in r else "")
        if task.several and why:  # which of the labels the shading is about, and what went wrong with it
            label = [c[2:] for c in preds.columns if c.startswith("p:")][why.target]
            how = "gave" if label in str(r.get("added", "")) else "missed" if label in str(r.get("missed", "")) \
                else "gave"
            cap += f"<div class='muted'>Why it {how} <b>{html.escape(label)}</b> ({r[f'p:{label}']:.0%})</div>"
        if images:
            body = thumb(raw.resize((112, 112))) + (explanation_html(why, raw) if why else "")
            cards.append(f'<div class="card">{body}<div>{cap}</div></div>')
        else:
            text = explanation_html(why) if why else f"<p>{html.escape(raw)}</p>"
            cards.append(f'<div class="card wide"><div>{cap}</div>{text}</div>')
    towards = "the label named" if task.several else "the predicted class" if task.has_classes else "a higher value"
    note = ("Heat shows where each part of the model looked for its answer." if images else
            f"Green words pushed towards {towards}, red against it.") if any(whys) else ""
    return f"<p class='muted'>{note}</p><div class='gallery'>{''.join(cards)}</div>"
