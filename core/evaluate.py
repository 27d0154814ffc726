"""Evaluation returns data (scikit-learn metrics); plotting lives elsewhere."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix, f1_score,
                             log_loss, roc_auc_score)


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


def top_losses(y_true: np.ndarray, probs: np.ndarray, k: int = 20) -> np.ndarray:
    """Row positions of the k examples with the highest loss."""
    p = np.clip(np.asarray(probs)[np.arange(len(y_true)), y_true], 1e-12, 1)
    return np.argsort(np.log(p))[:k]
