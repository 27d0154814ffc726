"""Evaluation returns data (scikit-learn metrics); plotting lives elsewhere."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, log_loss, roc_auc_score


def evaluate(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Metrics for integer targets and [n, C] probabilities."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs):
        probs = probs / probs.sum(1, keepdims=True)
    labels = list(range(len(classes)))
    pred = probs.argmax(1)
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)) if len(y_true) else 0.0,
        "loss": float(log_loss(y_true, probs, labels=labels)) if len(y_true) else 0.0,
        "confusion": confusion_matrix(y_true, pred, labels=labels).tolist(),
        "classes": list(classes),
    }
    rep = classification_report(y_true, pred, labels=labels, target_names=[str(c) for c in classes],
                                output_dict=True, zero_division=0)
    out["per_class"] = {str(c): {k: float(v) for k, v in rep[str(c)].items()} for c in classes}
    out["roc_auc"] = _auc(y_true, probs, len(classes))
    out["most_confused"] = most_confused(np.array(out["confusion"]), classes)
    return out


def bootstrap_macro_f1(y: np.ndarray, preds: list[np.ndarray], n_classes: int, resamples: int = 1000,
                       seed: int = 0, max_rows: int = 20_000) -> list[np.ndarray]:
    """Macro-F1 (over the classes present) of each prediction vector on the same bootstrap resamples of the
    rows: one array of `resamples` scores per vector, paired, so differences between them are meaningful.

    Resamples are drawn as multiplicity matrices (one matrix product per vector rather than a Python loop), in
    chunks so memory stays bounded; beyond `max_rows` a fixed random sample of rows stands in for the rest,
    which widens the interval a little (conservative) and keeps the cost flat."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), max_rows, replace=False)) if len(y) > max_rows else np.arange(len(y))
    present = np.unique(y[rows])
    onehot_y = np.eye(n_classes)[y[rows]][:, present]
    onehots = [np.eye(n_classes)[np.asarray(p)[rows]][:, present] for p in preds]
    out: list[list[np.ndarray]] = [[] for _ in preds]
    for start in range(0, resamples, 100):
        m = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)),
                            size=min(100, resamples - start)).astype(np.float64)
        n_true = m @ onehot_y
        for k, p in enumerate(onehots):
            tp, n_pred = m @ (p * onehot_y), m @ p
            denom = n_pred + n_true
            out[k].append(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0).mean(1))
    return [np.concatenate(o) for o in out]


def paired_comparison(y: np.ndarray, pred: np.ndarray, base_pred: np.ndarray, classes: list[str],
                      level: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The model against the baseline on the same test rows: the macro-F1 difference with a paired bootstrap
    interval, how many examples each gets right that the other misses, and a verdict: 'better' or 'worse'
    only when the interval excludes zero, else 'within_noise'; 'same' when every prediction agrees."""
    y, pred, base_pred = np.asarray(y), np.asarray(pred), np.asarray(base_pred)
    labels = list(range(len(classes)))
    diff = float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)
                 - f1_score(y, base_pred, labels=labels, average="macro", zero_division=0))
    out: dict[str, Any] = {"n": int(len(y)), "macro_f1_diff": diff, "level": level,
                           "fixed": int(((pred == y) & (base_pred != y)).sum()),
                           "broken": int(((pred != y) & (base_pred == y)).sum())}
    if np.array_equal(pred, base_pred):
        return {**out, "low": 0.0, "high": 0.0, "verdict": "same"}
    a, b = bootstrap_macro_f1(y, [pred, base_pred], len(classes), resamples, seed)
    low, high = (float(q) for q in np.quantile(a - b, [(1 - level) / 2, (1 + level) / 2]))
    verdict = "better" if low > 0 else "worse" if high < 0 else "within_noise"
    return {**out, "low": low, "high": high, "verdict": verdict}


def bootstrap_means(values: list[np.ndarray], resamples: int = 2000, seed: int = 0, chunk: int = 100) -> list[np.ndarray]:
    """The mean of each per-row vector over the same bootstrap resamples of the rows (paired)."""
    rng = np.random.default_rng(seed)
    n = len(values[0])
    out: list[list[np.ndarray]] = [[] for _ in values]
    for start in range(0, resamples, chunk):
        m = rng.multinomial(n, np.full(n, 1 / n), size=min(chunk, resamples - start)).astype(np.float64) / n
        for k, v in enumerate(values):
            out[k].append(m @ v)
    return [np.concatenate(o) for o in out]


def paired_mae(truth: np.ndarray, pred: np.ndarray, base_pred: np.ndarray, level: float = 0.95,
               resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Regression against the baseline on the same test rows: the MAE difference (model minus baseline, so
    negative is better) with a paired bootstrap interval, how many examples each gets closer, and a verdict only
    where the interval excludes zero."""
    err, base_err = np.abs(pred - truth), np.abs(base_pred - truth)
    diff = float(err.mean() - base_err.mean()) if len(truth) else 0.0
    out: dict[str, Any] = {"n": int(len(truth)), "metric": "mae", "mae_diff": diff, "level": level,
                           "closer": int((err < base_err).sum()), "farther": int((err > base_err).sum())}
    if np.allclose(pred, base_pred, rtol=0, atol=1e-9) or not len(truth):
        return {**out, "low": 0.0, "high": 0.0, "verdict": "same"}
    (d,) = bootstrap_means([err - base_err], resamples, seed)
    low, high = (float(q) for q in np.quantile(d, [(1 - level) / 2, (1 + level) / 2]))
    verdict = "better" if high < 0 else "worse" if low > 0 else "within_noise"
    return {**out, "low": low, "high": high, "verdict": verdict}


def _auc(y: np.ndarray, probs: np.ndarray, k: int) -> float | None:
    present = np.unique(y)
    if len(present) < 2:
        return None
    try:
        if k == 2:
            return float(roc_auc_score(y, probs[:, 1]))
        if len(present) < k:
            return None
        return float(roc_auc_score(y, probs, multi_class="ovr", labels=list(range(k))))
    except ValueError:
        return None


def most_confused(cm: np.ndarray, classes: list[str], top: int = 10) -> list[dict[str, Any]]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    idx = np.dstack(np.unravel_index(np.argsort(-off, axis=None), off.shape))[0]
    return [{"true": str(classes[i]), "pred": str(classes[j]), "count": int(off[i, j])}
            for i, j in idx[:top] if off[i, j] > 0]


def _examples(k: int) -> str:
    return f"{k:,} test example" + ("" if k == 1 else "s")


def comparison(status: dict) -> str | None:
    """One sentence for a domain expert: is the model better than the baseline on this test set, or could
    the difference be luck of the split (paired bootstrap interval)?"""
    c, base, t = status.get("vs_baseline"), status.get("baseline"), status.get("test")
    if not (base and t):
        return None
    if not c:  # runs from before the comparison was recorded
        return f"Macro-F1 {t['macro_f1'] - base['macro_f1']:+.3f} against the baseline ({base['name']})."
    n = c["n"]
    if c["verdict"] == "same":
        return f"Makes the same prediction as the baseline on all {n:,} test examples."
    interval = f"{c['level']:.0%} bootstrap interval {c['low']:+.3g} to {c['high']:+.3g}"
    if c.get("metric") == "mae":
        change = f"mean absolute error {c['mae_diff']:+.3g}"
        swaps = (f"it is closer to the truth than the baseline on {_examples(c['closer'])}, farther on "
                 f"{c['farther']:,}")
    elif c.get("metric") == "micro_f1":  # several labels per example: right means the whole set of labels
        interval = f"{c['level']:.0%} bootstrap interval {c['low']:+.3f} to {c['high']:+.3f}"
        change = f"micro-F1 {c['micro_f1_diff']:+.3f} (macro-F1 {c['macro_f1_diff']:+.3f})"
        swaps = (f"it gives the exact set of labels on {_examples(c['fixed'])} where the baseline does not, and "
                 f"misses it on {c['broken']:,} where the baseline does not")
    else:
        interval = f"{c['level']:.0%} bootstrap interval {c['low']:+.3f} to {c['high']:+.3f}"
        change = f"macro-F1 {c['macro_f1_diff']:+.3f}"
        swaps = (f"it gets {_examples(c['fixed'])} right that the baseline gets wrong, and {c['broken']:,} wrong "
                 f"that the baseline gets right")
    if c["verdict"] == "better":
        return f"Better than the baseline: {change} ({interval}); {swaps}."
    if c["verdict"] == "worse":
        return f"Worse than the baseline: {change} ({interval}); {swaps}."
    return (f"Not distinguishable from the baseline on {n:,} test examples: {change} ({interval}); {swaps}. "
            "A larger test set would tell them apart.")
