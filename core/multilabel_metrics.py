"""Metrics for several labels per example (scikit-learn's multi-label metrics on 0/1 indicator matrices): micro-
and macro-F1, per-label precision/recall/F1/support with each label's 2x2 confusion, subset accuracy, Hamming loss
and mean average precision; per-label thresholds tuned for F1; the paired comparison with a baseline."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)


def decide(probs: np.ndarray, thresholds: list[float] | np.ndarray | None) -> np.ndarray:
    """0/1 per label: the probability at or above the label's threshold (0.5 where none was tuned)."""
    probs = np.nan_to_num(np.asarray(probs, dtype=np.float64))
    t = np.full(probs.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    return (probs >= t).astype(np.int8)


def evaluate_sets(truth: np.ndarray, probs: np.ndarray, labels: list[str],
                  thresholds: list[float] | None = None) -> dict[str, Any]:
    truth = np.asarray(truth, dtype=np.int8).reshape(-1, len(labels))
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(labels))
    pred = decide(probs, thresholds)
    n = len(truth)
    out: dict[str, Any] = {"n": int(n), "classes": list(labels), "thresholds": None if thresholds is None
                           else [float(t) for t in thresholds]}
    if not n:
        return {**out, "micro_f1": 0.0, "macro_f1": 0.0, "subset_accuracy": 0.0, "hamming_loss": 0.0, "map": 0.0,
                "loss": 0.0, "per_class": {}, "label_confusion": {}, "most_confused": []}
    p, r, f, s = precision_recall_fscore_support(truth, pred, average=None, zero_division=0)
    present = truth.sum(0) > 0
    ap = [float(average_precision_score(truth[:, j], probs[:, j])) if present[j] else None
          for j in range(len(labels))]
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    bce = -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped)).mean()
    cms = multilabel_confusion_matrix(truth, pred)
    out.update({
        "micro_f1": float(f1_score(truth, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth[:, present], pred[:, present], average="macro", zero_division=0))
        if present.any() else 0.0,
        "subset_accuracy": float((pred == truth).all(1).mean()),
        "hamming_loss": float(hamming_loss(truth, pred)),
        "map": float(np.mean([a for a in ap if a is not None])) if any(a is not None for a in ap) else 0.0,
        "loss": float(bce),
        "per_class": {str(c): {"precision": float(p[j]), "recall": float(r[j]), "f1-score": float(f[j]),
                               "support": float(s[j]), "average_precision": ap[j],
                               "false_positives": int(cms[j][0, 1]), "false_negatives": int(cms[j][1, 0])}
                      for j, c in enumerate(labels)},
        # each label's 2x2: [[true negatives, false positives], [false negatives, true positives]]
        "label_confusion": {str(c): cms[j].tolist() for j, c in enumerate(labels)},
        "labels_per_example": {"true": float(truth.sum(1).mean()), "predicted": float(pred.sum(1).mean())},
    })
    out["most_confused"] = _missed(truth, pred, labels)
    out["error_pairs"] = error_pairs(truth, pred, labels)
    return out


def error_pairs(truth: np.ndarray, pred: np.ndarray, labels: list[str], top: int = 10) -> list[dict[str, Any]]:
    """The errors that come together: how often an example missing one label was given another it does not
    have instead (a mix-up between two labels, as a confusion matrix shows for one label per example)."""
    missed, added = ((truth == 1) & (pred == 0)).astype(np.int64), ((truth == 0) & (pred == 1)).astype(np.int64)
    both = missed.T @ added  # [missed label, added label]
    rows = [{"missed": str(labels[i]), "given instead": str(labels[j]), "count": int(both[i, j])}
            for i, j in zip(*np.nonzero(both))]
    return sorted(rows, key=lambda r: -r["count"])[:top]


def _missed(truth: np.ndarray, pred: np.ndarray, labels: list[str], top: int = 10) -> list[dict[str, Any]]:
    """The labels most often missed (false negatives) and most often added (false positives), by count."""
    fn, fp = ((truth == 1) & (pred == 0)).sum(0), ((truth == 0) & (pred == 1)).sum(0)
    rows = [{"label": str(labels[j]), "missed": int(fn[j]), "added": int(fp[j])} for j in range(len(labels))
            if fn[j] or fp[j]]
    return sorted(rows, key=lambda r: -(r["missed"] + r["added"]))[:top]


def tune_thresholds(truth: np.ndarray, probs: np.ndarray, floor: int = 5) -> list[float]:
    """Each label's threshold that maximises its F1 on these rows (validation or out-of-fold); of the cut-offs
    that reach it (on a few hundred rows a whole range does), the one nearest 0.5, so a threshold moves only as
    far as the evidence asks. 0.5 for a label with fewer than `floor` positives here, where a tuned cut-off is
    noise."""
    truth, probs = np.asarray(truth), np.nan_to_num(np.asarray(probs, dtype=np.float64))
    out = []
    for j in range(truth.shape[1]):
        y, p = truth[:, j].astype(bool), probs[:, j]
        if y.sum() < floor:
            out.append(0.5)
            continue
        levels = np.unique(p)
        if len(levels) > 512:  # many rows: cut-offs between quantiles are as fine as F1 can tell apart
            levels = np.unique(np.quantile(p, np.linspace(0, 1, 513)))
        cuts = np.unique(np.clip(np.concatenate([(levels[:-1] + levels[1:]) / 2, [0.5]]), 0.05, 0.95))
        given = p[None, :] >= cuts[:, None]
        tp = (given & y).sum(1)
        f1 = 2 * tp / (given.sum(1) + y.sum())
        best = cuts[f1 >= f1.max() - 1e-12]
        out.append(float(best[np.argmin(np.abs(best - 0.5))]))
    return out


def _counts(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return ((truth == 1) & (pred == 1)).astype(float), ((truth == 0) & (pred == 1)).astype(float), \
        ((truth == 1) & (pred == 0)).astype(float)


def bootstrap_f1(truth: np.ndarray, preds: list[np.ndarray], resamples: int = 2000, seed: int = 0,
                 chunk: int = 200) -> list[tuple[np.ndarray, np.ndarray]]:
    """(micro-F1, macro-F1) of each 0/1 prediction matrix on the same bootstrap resamples of the rows (paired)."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    parts = [_counts(truth, p) for p in preds]
    out: list[tuple[list, list]] = [([], []) for _ in preds]
    for start in range(0, resamples, chunk):
        m = rng.multinomial(n, np.full(n, 1 / n), size=min(chunk, resamples - start)).astype(np.float64)
        for k, (tp, fp, fn) in enumerate(parts):
            TP, FP, FN = m @ tp, m @ fp, m @ fn  # resamples x labels
            micro = 2 * TP.sum(1) / np.maximum(2 * TP.sum(1) + FP.sum(1) + FN.sum(1), 1e-12)
            seen = (m @ truth) > 0
            per = np.where(seen, 2 * TP / np.maximum(2 * TP + FP + FN, 1e-12), np.nan)
            out[k][0].append(micro)
            out[k][1].append(np.nanmean(np.where(seen.any(1, keepdims=True), per, 0), 1))
    return [(np.concatenate(a), np.concatenate(b)) for a, b in out]


def paired_sets(truth: np.ndarray, pred: np.ndarray, base_pred: np.ndarray, level: float = 0.95,
                resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The model against the baseline on the same test rows: micro-F1 difference with a paired bootstrap
    interval (the verdict) and the macro-F1 difference with its own; examples whose whole label set each gets
    right that the other misses."""
    truth, pred, base_pred = (np.asarray(a, dtype=np.int8) for a in (truth, pred, base_pred))
    exact, base_exact = (pred == truth).all(1), (base_pred == truth).all(1)
    micro = float(f1_score(truth, pred, average="micro", zero_division=0)
                  - f1_score(truth, base_pred, average="micro", zero_division=0))
    present = truth.sum(0) > 0
    macro = float(f1_score(truth[:, present], pred[:, present], average="macro", zero_division=0)
                  - f1_score(truth[:, present], base_pred[:, present], average="macro", zero_division=0)) \
        if present.any() else 0.0
    out: dict[str, Any] = {"n": int(len(truth)), "metric": "micro_f1", "micro_f1_diff": micro,
                           "macro_f1_diff": macro, "level": level,
                           "fixed": int((exact & ~base_exact).sum()), "broken": int((~exact & base_exact).sum())}
    if np.array_equal(pred, base_pred) or not len(truth):
        return {**out, "low": 0.0, "high": 0.0, "verdict": "same"}
    (a_mi, a_ma), (b_mi, b_ma) = bootstrap_f1(truth, [pred, base_pred], resamples, seed)
    q = [(1 - level) / 2, (1 + level) / 2]
    low, high = (float(v) for v in np.nanquantile(a_mi - b_mi, q))
    m_low, m_high = (float(v) for v in np.nanquantile(a_ma - b_ma, q))
    verdict = "better" if low > 0 else "worse" if high < 0 else "within_noise"
    return {**out, "macro_low": m_low, "macro_high": m_high, "low": low, "high": high, "verdict": verdict}


def per_label_table(res: dict[str, Any]) -> pd.DataFrame:
    """One row per label as people read it: threshold, precision, recall, F1, examples with it, AP, and the
    counts of wrong additions and misses (the report and the Evaluate page show this same table)."""
    table = pd.DataFrame(res["per_class"]).T.rename(columns={"f1-score": "F1", "average_precision": "AP",
                                                             "false_positives": "given wrongly",
                                                             "false_negatives": "missed"})
    for col in ("support", "given wrongly", "missed"):
        table[col] = table[col].astype(int)
    if res.get("thresholds"):
        table.insert(0, "threshold", res["thresholds"])
    return table
