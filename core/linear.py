"""Linear models on features, one estimator wherever the studio fits one: the baseline, the frozen strategy's
solved head, the blend partner and the out-of-fold label check all standardise the same way and use the same
logistic regression."""
from __future__ import annotations

import numpy as np


LOGISTIC_C = 2.0  # the baseline's inverse regularisation strength


def logistic(max_iter: int = 2000, c: float = LOGISTIC_C):
    from sklearn.linear_model import LogisticRegression  # scikit-learn takes a second to import; fits are rare

    return LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced")


def ridge():
    """Ridge regression, its strength chosen by efficient leave-one-out."""
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=np.logspace(-2, 3, 12))


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales. A column whose spread is float noise next to the widest one (a near-constant
    feature) keeps scale 1: dividing by its noise would give it weights of 1e8 that any rounding (INT8 export,
    another BLAS) turns into garbage predictions."""
    mean, scale = x.mean(0), x.std(0)
    floor = 1e-3 * float(scale.max()) if scale.size else 0.0
    return mean, np.where(scale > floor, scale, 1.0)


def fold_standardisation(coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray, scale: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """w·((x - mean) / scale) + b as w'·x + b'."""
    w = coef / scale
    return w, intercept - w @ mean


def out_of_fold(x, y: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each example's class probabilities from a model that never saw it (k-fold), for label checking."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    k = int(min(folds, np.bincount(y, minlength=n_classes)[np.unique(y)].min()))
    if k < 2:
        return np.full((len(y), n_classes), np.nan)
    clf = logistic()
    probs = np.zeros((len(y), n_classes))
    present = np.unique(y)
    probs[:, present] = cross_val_predict(clf, x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                                          method="predict_proba")
    return probs


def least_sure(confidence: np.ndarray, n_classes: int) -> np.ndarray:
    """Positions whose top class probability is nearer chance than certainty (below 0.75 with two classes, 0.55
    with ten), least sure first: the examples uncertainty sampling would put before an expert."""
    confidence = np.asarray(confidence, dtype=float)
    pos = np.flatnonzero(np.isfinite(confidence) & (confidence < (1 + 1 / max(n_classes, 2)) / 2))
    return pos[np.argsort(confidence[pos], kind="stable")]


def suspects(probs: np.ndarray, y: np.ndarray, p_given_below: float = 0.15, confidence_above: float = 0.7) -> np.ndarray:
    """Positions whose given label the out-of-fold model confidently contradicts, most suspicious first."""
    p_given = probs[np.arange(len(y)), y]
    flag = (p_given < p_given_below) & (probs.max(1) >= confidence_above) & np.isfinite(p_given)
    pos = np.flatnonzero(flag)
    return pos[np.argsort(p_given[pos])]
