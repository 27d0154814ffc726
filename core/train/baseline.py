"""The scikit-learn side of a run: out-of-fold label checks, the mirror probe, TF-IDF features, and the sentence
that compares a run with its baseline (the baseline itself is the task's estimator on the modality's linear
view, core.train.plan: TF-IDF or pretrained features, logistic or ridge regression)."""
from __future__ import annotations

import numpy as np
from scipy.sparse import hstack
from sklearn.linear_model import LogisticRegression


def out_of_fold(x, y: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each example's class probabilities from a model that never saw it (k-fold), for label checking."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    k = int(min(folds, np.bincount(y, minlength=n_classes)[np.unique(y)].min()))
    if k < 2:
        return np.full((len(y), n_classes), np.nan)
    clf = LogisticRegression(C=2.0, max_iter=2000, class_weight="balanced")
    probs = np.zeros((len(y), n_classes))
    present = np.unique(y)
    probs[:, present] = cross_val_predict(clf, x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                                          method="predict_proba")
    return probs


def mirror_check(features: np.ndarray, mirrored: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0,
                 folds: int = 5) -> dict | None:
    """Whether left-right mirroring keeps an image's class, from probes on pretrained features: each fold's
    probe labels its held-out images as they are and mirrored. Flipping is ruled out when mirrored images
    lose at least two points of accuracy and the loss is significant (one-sided sign test on the examples
    that change, p < 0.01). None when there are too few examples per class to tell."""
    from scipy.stats import binomtest
    from sklearn.model_selection import StratifiedKFold

    from ..predict.blend import ProbeModel

    counts = np.bincount(y, minlength=n_classes)
    k = int(min(folds, counts[counts > 0].min())) if len(y) else 0
    if k < 2 or len(y) < 20:
        return None
    right, right_m = np.zeros(len(y), bool), np.zeros(len(y), bool)
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(features, y):
        probe = ProbeModel.fit(features[tr], y[tr], n_classes)
        right[te] = probe.predict_proba(features[te]).argmax(1) == y[te]
        right_m[te] = probe.predict_proba(mirrored[te]).argmax(1) == y[te]
    lost, gained = int((right & ~right_m).sum()), int((~right & right_m).sum())
    p = binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue if lost + gained else 1.0
    acc, acc_m = float(right.mean()), float(right_m.mean())
    return {"n": int(len(y)), "accuracy": acc, "mirrored_accuracy": acc_m, "p_value": float(p),
            "flip": not (acc - acc_m >= 0.02 and p < 0.01)}


def suspects(probs: np.ndarray, y: np.ndarray, p_given_below: float = 0.15, confidence_above: float = 0.7) -> np.ndarray:
    """Positions whose given label the out-of-fold model confidently contradicts, most suspicious first."""
    p_given = probs[np.arange(len(y)), y]
    flag = (p_given < p_given_below) & (probs.max(1) >= confidence_above) & np.isfinite(p_given)
    pos = np.flatnonzero(flag)
    return pos[np.argsort(p_given[pos])]


def text_features(texts: list[str], fit_rows: np.ndarray):
    from ..predict.blend import vectorizers

    word, char = vectorizers([texts[i] for i in fit_rows])
    return hstack([word.transform(texts), char.transform(texts)]).tocsr()


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
