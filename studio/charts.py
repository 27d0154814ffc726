"""Figures from core results (matplotlib/seaborn). No Streamlit here either."""
from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # class names are shown as written, never read as TeX
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def class_balance(counts: dict[str, int], noun: str = "class"):
    s = pd.Series(counts).sort_values(ascending=False)
    fig, ax = plt.subplots(figsize=(7, max(2.2, 0.32 * len(s) + 1)))
    sns.barplot(x=s.values, y=[str(i) for i in s.index], ax=ax, color="#4C78A8", orient="h")
    ax.set_xlabel("examples")
    ax.set_ylabel(noun)
    ax.set_title(f"Examples per {noun}")
    for i, v in enumerate(s.values):
        ax.text(v, i, f" {v}", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def cooccurrence_heatmap(m, labels: list[str]):
    """Examples carrying both labels of a pair; the diagonal holds each label's own count."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(min(10, 0.5 * n + 3), min(9, 0.45 * n + 2.4)))
    sns.heatmap(m, annot=n <= 15, fmt="d", cmap="Purples", xticklabels=labels, yticklabels=labels, ax=ax,
                square=True, cbar=False)
    ax.set_title("Labels that come together (examples with both)")
    fig.tight_layout()
    return fig


def labels_per_example(sizes: pd.Series):
    fig, ax = plt.subplots(figsize=(7, 2.4))
    counts = sizes.value_counts().sort_index()
    ax.bar(counts.index.astype(str), counts.values, color="#72B7B2")
    ax.set(xlabel="labels on one example", ylabel="examples", title="Labels per example")
    fig.tight_layout()
    return fig


def length_hist(lengths: pd.Series):
    fig, ax = plt.subplots(figsize=(7, 2.8))
    sns.histplot(lengths, bins=40, ax=ax, color="#72B7B2")
    ax.set_xlabel("characters per text")
    ax.set_ylabel("texts")
    ax.set_title("Text length")
    fig.tight_layout()
    return fig


def confusion_heatmap(cm: list[list[int]], classes: list[str], title: str = "Confusion matrix"):
    cm = np.asarray(cm)
    n = len(classes)
    size = min(10, max(4, 0.55 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(cm, annot=n <= 20, fmt="d", cmap="Blues", cbar=True, xticklabels=classes, yticklabels=classes,
                ax=ax, square=True, linewidths=0.5, linecolor="white")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    plt.setp(ax.get_yticklabels(), rotation=0)
    fig.tight_layout()
    return fig


def confusion_chart(cm: list[list[int]], classes: list[str], selected: tuple[str, str] | None = None):
    """The confusion matrix as a chart a person can click: each cell selects its examples (a point selection
    named 'cell' over true and predicted class). The selected cell is outlined."""
    import altair as alt

    cells = pd.DataFrame([{"true": t, "predicted": p, "count": int(cm[i][j]), "diagonal": i == j}
                          for i, t in enumerate(classes) for j, p in enumerate(classes)])
    cells["picked"] = [selected == (t, p) for t, p in zip(cells["true"], cells["predicted"])]
    cells["dark"] = cells["count"] > 0.55 * max(1, int(cells["count"].max()))  # where black text would not read
    pick = alt.selection_point(name="cell", fields=["true", "predicted"], on="click", clear=False)
    side = min(560, 80 + 46 * len(classes))
    base = alt.Chart(cells).encode(x=alt.X("predicted:N", sort=classes, title="predicted"),
                                   y=alt.Y("true:N", sort=classes, title="true"))
    rect = base.mark_rect(stroke="black", cursor="pointer").encode(
        color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"), legend=None),
        strokeWidth=alt.when("datum.picked").then(alt.value(3)).otherwise(alt.value(0)),
        tooltip=["true", "predicted", "count"]).add_params(pick)
    text = base.mark_text(fontSize=12, fontWeight="bold").encode(
        text="count:Q", color=alt.when("datum.dark").then(alt.value("white"))
        .when("datum.count > 0 && !datum.diagonal").then(alt.value("#b00020")).otherwise(alt.value("#333")))
    # drawn as SVG: each cell is an element of the page (a browser test, or assistive technology, can find it)
    return (rect + text).properties(width=side, height=side, usermeta={"embedOptions": {"renderer": "svg"}})


METRIC_NAMES = {"macro_f1": "macro-F1", "micro_f1": "micro-F1", "map": "mAP", "accuracy": "accuracy", "loss": "loss", "mae": "MAE", "rmse": "RMSE",
                "r2": "R²", "spearman": "Spearman"}


def predicted_vs_true(truth, pred, title: str = "Test: predicted against true"):
    truth, pred = np.asarray(truth, dtype=float), np.asarray(pred, dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.scatter(truth, pred, s=12, alpha=0.6, color="#4C78A8", edgecolors="none")
    lo, hi = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="#E45756", lw=1, ls="--", label="perfect")
    ax.set(xlabel="true value", ylabel="predicted value", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def residuals(truth, pred, title: str = "Test residuals (predicted − true)"):
    err = np.asarray(pred, dtype=float) - np.asarray(truth, dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    sns.histplot(err, bins=40, ax=ax, color="#72B7B2")
    ax.axvline(0, color="#E45756", lw=1, ls="--")
    ax.set(xlabel="residual", ylabel="examples", title=title)
    fig.tight_layout()
    return fig


def target_hist(values, title: str = "Target values"):
    fig, ax = plt.subplots(figsize=(7, 2.8))
    sns.histplot(np.asarray(values, dtype=float), bins=40, ax=ax, color="#4C78A8")
    ax.set(xlabel="value", ylabel="examples", title=title)
    fig.tight_layout()
    return fig


def curves(events: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Tables for line charts from a run's events: per step (loss, lr) and per epoch (every validation metric
    the task reports, named 'val <metric>')."""
    steps = pd.DataFrame([{"step": e["step"], "train loss": e["data"]["loss"], "learning rate": e["data"]["lr"]}
                          for e in events if e["kind"] == "step"])
    ev = [e for e in events if e["kind"] == "eval" and e["data"].get("split") == "val"]
    epochs = pd.DataFrame([{"epoch": e["epoch"] + 1, **{f"val {METRIC_NAMES[k]}": v for k, v in e["data"].items()
                                                        if k in METRIC_NAMES and isinstance(v, (int, float))}}
                           for e in ev])
    ends = {e["epoch"] + 1: e["data"]["train_loss"] for e in events if e["kind"] == "epoch_end"}
    if len(epochs):
        epochs["train loss"] = epochs["epoch"].map(ends)
    return {"steps": steps, "epochs": epochs}


def curves_from_tail(tail) -> dict[str, pd.DataFrame]:
    """The same tables from a run's EventTail (thinned steps, one row per epoch)."""
    ev = [e for e in tail.evals if e["data"].get("split") == "val"]
    epochs = pd.DataFrame([{"epoch": e["epoch"] + 1, **{f"val {METRIC_NAMES[k]}": v for k, v in e["data"].items()
                                                        if k in METRIC_NAMES and isinstance(v, (int, float))}}
                           for e in ev])
    if len(epochs):
        epochs["train loss"] = epochs["epoch"].map(tail.epoch_ends)
    return {"steps": pd.DataFrame(tail.steps), "epochs": epochs}


def lr_curve(res: dict[str, Any]):
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(res["lrs"], res["losses"], color="#4C78A8")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("smoothed loss")
    ax.set_title("Learning-rate range test")
    if res.get("suggestion"):
        ax.axvline(res["suggestion"], color="#E45756", ls="--", label=f"suggested {res['suggestion']:.1e}")
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def study_history(trials: list[dict[str, Any]], metric: str = "validation score"):
    """Each trial's validation score (pruned trials at their last reported epoch are left out) and the best so far."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    pruned = [t["number"] for t in trials if t["state"] == "pruned"]
    if done:
        xs, ys = [t["number"] for t in done], [t["value"] for t in done]
        ax.scatter(xs, ys, color="#4C78A8", label="complete", zorder=3)
        ax.step(xs, np.maximum.accumulate(ys), where="post", color="#E45756", label="best so far")
    for x in pruned:
        ax.axvline(x, color="#BBBBBB", lw=1, ls=":")
    if pruned:
        ax.plot([], [], color="#BBBBBB", ls=":", label="pruned")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("Search history")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def importances(values: dict[str, float]):
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(values) + 1.0))
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="#4C78A8")
    ax.set_xlabel("importance (share of the score's variation)")
    ax.set_title("Which settings mattered")
    fig.tight_layout()
    return fig
