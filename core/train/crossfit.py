"""Decisions from the whole training part. On a few hundred examples the validation split holds 30-60 of them,
too few to choose between close settings. Where the run's network is a head solved on cached features (seconds
a fit), its regularisation and the blend's share are chosen from out-of-fold predictions over the training and
validation rows together (k-fold cross-fitting). The head that predicts is still the one solved on the
training rows, and the test split is never read. Each choice keeps its spread over the folds."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

MAX_ROWS = 2000  # training + validation rows; above them the validation split is large enough to decide on
FOLDS = 5


@dataclass
class CrossFit:
    rows: np.ndarray  # the training rows, then the validation rows
    folds: list[tuple[np.ndarray, np.ndarray]]  # (fitted on, held out): positions into rows
    net: np.ndarray | None = None  # the network's out-of-fold outputs at the chosen setting, per row
    facts: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{len(self.folds)} folds of the {len(self.rows)} training and validation examples"


def folds_for(data, seed: int) -> CrossFit | None:
    """Folds over training + validation, stratified by class; None where cross-fitting does not apply (several
    labels per example, no validation rows, more rows than MAX_ROWS, a class with one example)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    train, val = data.idx("train").numpy(), data.idx("val").numpy()
    rows = np.concatenate([train, val])
    if data.task.several or not len(val) or len(rows) > MAX_ROWS:
        return None
    if data.task.has_classes:
        y = data.targets.truth[rows]
        k = int(min(FOLDS, np.bincount(y)[np.unique(y)].min()))
        if k < 2:
            return None
        split = StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, y)
    else:
        split = KFold(FOLDS, shuffle=True, random_state=seed).split(rows)
    return CrossFit(rows, [(a, b) for a, b in split])


def fold_scores(task, truth: np.ndarray, out: np.ndarray, cf: CrossFit, meta: dict, metric: str) -> list[float]:
    """The metric on each fold's held-out rows."""
    return [float(task.evaluate(truth[held], out[held], meta)[metric]) for _, held in cf.folds]


def choose_head(task, x: np.ndarray, y: np.ndarray, truth: np.ndarray, meta: dict, out_dim: int, monitor: str,
                cf: CrossFit) -> dict[str, np.ndarray]:
    """The head's regularisation from out-of-fold predictions over training + validation, and its out-of-fold
    outputs. The baseline's own strength (the first) is kept unless another beats it on the folds by more than
    the standard error of their paired differences: close scores on a few hundred examples are noise. Arrays
    only: the result is remembered per dataset version (core.train.features)."""
    strengths = task.head_strengths or (None,)
    sign = -1.0 if monitor in task.lower_is_better else 1.0
    scores, spread, outs = [], [], []
    for s in strengths:
        out = None
        for fit, held in cf.folds:
            w, b = task.linear_head(x[cf.rows[fit]], y[cf.rows[fit]], meta, out_dim, strength=s)
            part = task.outputs(torch.from_numpy(x[cf.rows[held]] @ w.T + b), meta).numpy()
            out = np.zeros((len(cf.rows), part.shape[1]), dtype=np.float32) if out is None else out
            out[held] = part
        scores.append(float(task.evaluate(truth[cf.rows], out, meta)[monitor]))
        spread.append(fold_scores(task, truth[cf.rows], out, cf, meta, monitor))
        outs.append(out)
    best = max(range(len(strengths)), key=lambda i: sign * scores[i])
    gain = sign * (np.array(spread[best]) - np.array(spread[0]))
    if best and gain.mean() <= gain.std(ddof=1) / np.sqrt(len(gain)):
        best = 0
    return {"strengths": np.array([np.nan if s is None else s for s in strengths]), "scores": np.array(scores),
            "fold_scores": np.array(spread), "chosen": np.array([best]), "oof": outs[best]}


def head_facts(fit: dict[str, np.ndarray], cf: CrossFit, monitor: str) -> dict[str, Any]:
    """What the run's status records of the head's choice."""
    i = int(fit["chosen"][0])
    strength = float(fit["strengths"][i])
    return {"rows": len(cf.rows), "folds": len(cf.folds), "metric": monitor,
            "strength": None if np.isnan(strength) else strength,
            "tried": [{"strength": None if np.isnan(s) else float(s), "score": float(sc),
                       "folds": [float(v) for v in f]}
                      for s, sc, f in zip(fit["strengths"], fit["scores"], fit["fold_scores"])]}


def spread(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f} over folds" if values else ""


def head_note(facts: dict[str, Any], cf: CrossFit) -> str | None:
    """One sentence on the head's regularisation; None where there was none to choose (the estimator's own)."""
    if len(facts["tried"]) < 2:
        return None
    tried = {t["strength"]: t for t in facts["tried"]}
    chosen = tried[facts["strength"]]
    metric = facts["metric"].replace("macro_f1", "macro-F1").replace("_", " ")
    others = ", ".join(f"C={s:g}: {t['score']:.3f}" for s, t in tried.items() if s != facts["strength"])
    return (f"The head's regularisation (C={facts['strength']:g}) was chosen on out-of-fold predictions over "
            f"{cf.describe()}: {metric} {chosen['score']:.3f} ({spread(chosen['folds'])}); {others}.")


def partner_outputs(view, partner, cf: CrossFit, truth: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """The blend partner's out-of-fold outputs over the same folds, fitted with the settings `partner` chose on
    the training rows (no nested search per fold)."""
    out = None
    for fit, held in cf.folds:
        p = view.partner(cf.rows[fit], truth[cf.rows[fit]], n_classes, seed, like=partner)
        part = np.asarray(p.predict(*view.inputs(cf.rows[held])))
        out = np.zeros((len(cf.rows),) + part.shape[1:], dtype=np.float64) if out is None else out
        out[held] = part
    return out
