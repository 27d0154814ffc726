"""Classification: one label per example; the head gives one logit per class."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..linear import LOGISTIC_C, fold_standardisation, logistic, out_of_fold, standardisation
from ..metrics import evaluate, paired_comparison
from ..predict.blend import best_weight
from .base import Targets, Task


class Classification(Task):
    name = "classification"
    title = "Classification"
    metrics = ("macro_f1", "accuracy", "loss")
    lower_is_better = frozenset({"loss"})
    losses = ("ce", "focal")
    headline = ("accuracy", "macro_f1")
    event_keys = ("accuracy", "macro_f1", "loss", "confusion")
    estimator = "logistic regression"
    has_classes = True
    head_strengths = (LOGISTIC_C, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)

    def targets(self, labels, train_rows, name="the data"):
        classes = sorted(set(labels))
        pos = {c: i for i, c in enumerate(classes)}
        idx = np.array([pos[v] for v in labels], dtype=np.int64)
        return Targets(torch.from_numpy(idx), idx, classes)

    def targets_from_meta(self, labels, meta):
        pos = {c: i for i, c in enumerate(meta["classes"])}
        unknown = sorted(set(labels) - set(pos))
        if unknown:
            raise DataError(f"Label(s) never seen in training: {', '.join(map(str, unknown[:10]))}.")
        idx = np.array([pos[v] for v in labels], dtype=np.int64)
        return Targets(torch.from_numpy(idx), idx, list(meta["classes"]))

    def out_dim(self, targets):
        return len(targets.classes)

    def loss_fn(self, t, targets, train_idx, device):
        kind = self.loss_name(t)
        weight = None
        if t.class_weighting == "balanced":
            counts = torch.bincount(targets.y[train_idx], minlength=len(targets.classes)).float().clamp(min=1)
            weight = (counts.sum() / (len(counts) * counts)).to(device)

        def fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = logits.float()
            if kind == "focal":
                ce = F.cross_entropy(logits, y, weight=weight, reduction="none", label_smoothing=t.label_smoothing)
                pt = torch.exp(-F.cross_entropy(logits, y, reduction="none"))
                return ((1 - pt) ** t.focal_gamma * ce).mean()
            return F.cross_entropy(logits, y, weight=weight, label_smoothing=t.label_smoothing)
        return fn

    def outputs(self, logits, targets_meta):
        return torch.softmax(logits.float(), -1)

    def evaluate(self, truth, out, meta):
        return evaluate(truth, out, meta["classes"])

    def attributed(self, logits):
        """Each class's log-odds against the rest, log p / (1 - p). A raw logit can be constant (a two-class head
        solved by scikit-learn keeps one class's row at zero, so that class's explanation came out blank) and a
        probability saturates at a confident prediction; the log-odds moves with the evidence for either."""
        n = logits.shape[1]
        if n < 2:
            return logits
        own = torch.eye(n, dtype=torch.bool, device=logits.device)
        others = logits.unsqueeze(1).expand(-1, n, -1).masked_fill(own, float("-inf"))
        return logits - torch.logsumexp(others, -1)

    def baseline_predict(self, x_train, y_train, x_test, meta):
        clf = logistic().fit(x_train, y_train)
        probs = np.zeros((x_test.shape[0], len(meta["classes"])))
        probs[:, clf.classes_] = clf.predict_proba(x_test)
        return probs

    def blend_weight(self, net, partner, truth, meta, fixed=None):
        return best_weight(net, partner, truth, meta["classes"], fixed=fixed)

    def linear_head(self, x, y, meta, out_dim, strength=None):
        mean, scale = standardisation(x)
        clf = logistic(max_iter=5000, c=strength or LOGISTIC_C).fit((x - mean) / scale, y)
        coef, b = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row; softmax over [0, z] is its sigmoid
            coef, b = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, b[0]])
        w, bias = fold_standardisation(coef, b, mean, scale)
        weight, out_b = np.zeros((out_dim, x.shape[1])), np.full(out_dim, -30.0)  # classes absent from training
        weight[clf.classes_], out_b[clf.classes_] = w, bias
        return weight, out_b

    def point(self, out, meta=None):
        return np.asarray(out).argmax(1)

    def compare(self, truth, out, base_out, meta, seed=0):
        base = np.asarray(base_out)
        return paired_comparison(truth, self.point(out), base if base.ndim == 1 else self.point(base),
                                 meta["classes"], seed=seed)

    def prediction_columns(self, truth, out, meta):
        classes = meta["classes"]
        cols: dict[str, Any] = {}
        if truth is not None:
            p_true = out[np.arange(len(truth)), truth]
            cols.update({"true": [classes[i] for i in truth], "pred": [classes[i] for i in out.argmax(1)],
                         "confidence": out.max(1), "p_true": p_true,
                         "loss": -np.log(np.clip(p_true, 1e-12, 1))})
        for j, c in enumerate(classes):
            cols[f"p:{c}"] = out[:, j]
        return cols

    def out_of_fold(self, x, truth, meta, seed):
        return out_of_fold(x, truth, len(meta["classes"]), seed=seed)

    def prediction_table(self, out, meta):
        classes = meta["classes"]
        ok = np.isfinite(out).all(1) if len(out) else np.zeros(0, bool)
        safe = np.nan_to_num(out)
        cols: dict[str, Any] = {"prediction": [classes[int(i)] if good else "" for i, good in zip(safe.argmax(1), ok)],
                                "confidence": np.where(ok, safe.max(1) if len(out) else 0.0, np.nan)}
        for j, c in enumerate(classes):
            cols[f"p:{c}"] = out[:, j]
        return cols

    def explain_target(self, row, classes):
        return classes.index(row["pred"])

    def strata(self, labels, sep=None):
        return np.asarray(labels).astype(str)


CLASSIFICATION = Classification()
