"""Multi-label classification: any number of labels per example ("billing; urgent"). The head gives one logit per
label, read through a sigmoid; binary cross-entropy trains it (per-label positive weights with class weighting,
focal loss optional); each label's decision threshold is tuned on validation once the best weights are back and
saved with the predictor. Metrics: micro- and macro-F1, mAP, subset accuracy, Hamming loss, per label."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..linear import fold_standardisation, logistic, standardisation
from ..multilabel_metrics import decide, evaluate_sets, paired_sets, tune_thresholds
from ..portable import join_labels
from .base import Targets, Task

SEPARATORS = (";", "|", ",")


def split_label(value: Any, sep: str) -> tuple[str, ...]:
    """One cell of the label column as a sorted set of labels ("urgent; billing" -> ("billing", "urgent"))."""
    return tuple(sorted({p.strip() for p in str(value).split(sep) if p.strip()}))


def detect_separator(labels: list[Any]) -> str | None:
    """The separator of a label column holding several labels per row, or None (one label per row).

    A separator counts when at least 2 rows (and 1 %) hold it and the labels it splits into are no more than the
    distinct cells: tags combine ("a;b", "a", "b"), while class names that merely contain a comma ("Paris, TX")
    split into more names than there were classes."""
    cells = [str(v) for v in labels]
    distinct = set(cells)
    for sep in SEPARATORS:
        holding = sum(sep in c for c in cells)
        if holding < max(2, 0.01 * len(cells)):
            continue
        parts = {p for c in distinct for p in split_label(c, sep)}
        if parts and len(parts) <= len(distinct):
            return sep
    return None


def separator_for(labels: list[Any], task: str) -> str | None:
    """The label_sep a run's config takes for the task a person chose: the detected separator for multi-label,
    'none' where they chose one class per cell although the cells look combined (so nothing switches it)."""
    sep = detect_separator(labels)
    if task == "multilabel":
        return sep
    return "none" if sep and task == "classification" else None


def label_counts(cells: dict[str, int], sep: str) -> dict[str, int]:
    """Examples per label from examples per distinct cell ({"a; b": 3, "a": 2} -> {"a": 5, "b": 3}), most first."""
    out: dict[str, int] = {}
    for cell, k in cells.items():
        for label in split_label(cell, sep):
            out[label] = out.get(label, 0) + int(k)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def cooccurrence(rows: list[tuple[str, ...]], labels: list[str]) -> np.ndarray:
    """How many examples carry both labels of each pair (the diagonal: each label's own count)."""
    pos = {c: i for i, c in enumerate(labels)}
    m = np.zeros((len(rows), len(labels)), dtype=np.int64)
    for r, row in enumerate(rows):
        for c in row:
            if c in pos:
                m[r, pos[c]] = 1
    return m.T @ m


def without_labels(cells: list[Any], drop: set[str], sep: str) -> list[str]:
    """The label cells with some labels taken out, written back with the same separator ('' where none is left)."""
    glue = f"{sep} " if sep in ";," else sep
    return [glue.join(c for c in split_label(v, sep) if c not in drop) for v in cells]


def resolve_separator(labels: list[Any], sep: str | None) -> str | None:
    """The separator a run reads with: the one given, or the one the data shows ('none': one label per row)."""
    if sep == "none":
        return None
    return sep or detect_separator(labels)


def read_task(task: str, sep: str | None, labels: list[Any], name: str) -> tuple[str, str | None]:
    """The task and separator a run reads its label column with: several labels in a row make it multi-label
    (unless label_sep is 'none'); a run asked to be multi-label on data with one label per row is refused."""
    if task == "regression" or sep == "none":
        return task, sep
    found = resolve_separator(labels, sep)
    if found is None:
        if task == "multilabel":
            raise DataError(f"{name}: no row holds several labels (separated by "
                            f"{', '.join(repr(s) for s in SEPARATORS)}); train a classifier, or give the separator.")
        return task, sep
    return "multilabel", found


def from_before_multilabel(data: dict[str, Any]) -> dict[str, Any]:
    """A classification config written before multi-label existed read one class per cell; a replay does too."""
    if data.get("task") == "classification" and "label_sep" not in data:
        return {**data, "label_sep": "none"}
    return data


def _parts(cell: str) -> set[str]:
    return {p.strip() for sep in SEPARATORS for p in cell.split(sep)} | {cell.strip()}


class MultiLabel(Task):
    name = "multilabel"
    title = "Multi-label classification"
    metrics = ("map", "micro_f1", "macro_f1", "loss")  # mAP does not depend on thresholds, tuned only at the end
    lower_is_better = frozenset({"loss"})
    losses = ("bce", "focal")
    headline = ("micro_f1", "macro_f1")
    summary = ("map", "subset_accuracy", "hamming_loss", "per_class")
    event_keys = ("micro_f1", "macro_f1", "map", "loss")
    estimator = "one-vs-rest logistic regression"
    split_suffix = "-multilabel"
    has_classes = True
    several = True
    blends = False

    # ------------------------------------------------------------------ labels
    def read_labels(self, labels, sep):
        if not sep:
            sep = detect_separator(labels)
        if not sep:
            raise DataError("No row holds several labels (separated by ';', '|' or ','): train a classifier, or give "
                            "the separator (CLI: --label-sep).")
        return [split_label(v, sep) for v in labels]

    def label_names(self, labels):
        return {c for row in labels for c in row}

    def _matrix(self, labels: list[tuple[str, ...]], classes: list[str]) -> np.ndarray:
        pos = {c: i for i, c in enumerate(classes)}
        m = np.zeros((len(labels), len(classes)), dtype=np.int8)
        for r, row in enumerate(labels):
            for c in row:
                m[r, pos[c]] = 1
        return m

    def targets(self, labels, train_rows, name="the data"):
        classes = sorted(self.label_names(labels))
        if len(classes) < 2:
            raise DataError(f"{name}: only one label ({', '.join(classes) or 'none'}); multi-label classification "
                            "needs at least two.")
        m = self._matrix(labels, classes)
        return Targets(torch.from_numpy(m.astype(np.float32)), m, classes)

    def targets_from_meta(self, labels, meta):
        classes = list(meta["classes"])
        rows = [row if isinstance(row, tuple) else split_label(row, meta.get("label_sep") or ";") for row in labels]
        unknown = sorted(self.label_names(rows) - set(classes))
        if unknown:
            raise DataError(f"Label(s) never seen in training: {', '.join(unknown[:10])}.")
        m = self._matrix(rows, classes)
        keep = {k: meta[k] for k in ("label_sep", "thresholds") if k in meta}
        return Targets(torch.from_numpy(m.astype(np.float32)), m, classes, extra=keep)

    def out_dim(self, targets):
        return len(targets.classes)

    # ------------------------------------------------------------------ training
    def loss_fn(self, t, targets, train_idx, device):
        kind = self.loss_name(t)
        pos_weight = None
        if t.class_weighting == "balanced":  # rare labels count as much as common ones, capped against noise
            y = targets.y[train_idx]
            pos = y.sum(0).clamp(min=1)
            pos_weight = ((len(y) - pos) / pos).clamp(1.0, 50.0).to(device)

        def fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits, y = logits.float(), y.float()
            if t.label_smoothing:
                y = y * (1 - t.label_smoothing) + t.label_smoothing / 2
            bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="none")
            if kind == "focal":  # Lin et al. 2017: confident, right answers weigh less
                p = torch.sigmoid(logits)
                pt = p * y + (1 - p) * (1 - y)
                bce = (1 - pt) ** t.focal_gamma * bce
            return bce.mean()
        return fn

    def outputs(self, logits, targets_meta):
        return torch.sigmoid(logits.float())

    def evaluate(self, truth, out, meta):
        return evaluate_sets(truth, out, meta["classes"], meta.get("thresholds"))

    def attributed(self, logits):
        return logits  # each label's logit is already its log-odds

    # ------------------------------------------------------------------ the linear models
    def _fit(self, x, y: np.ndarray, max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """One logistic regression per label (coefficients, intercepts); a label that is always or never present
        in these rows gets a constant logit."""
        coef, bias = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
        for j in range(y.shape[1]):
            col = y[:, j]
            if col.min() == col.max():
                bias[j] = 30.0 if col[0] else -30.0
                continue
            clf = logistic(max_iter).fit(x, col)
            coef[j], bias[j] = clf.coef_[0], clf.intercept_[0]
        return coef, bias

    def _probs(self, coef, bias, x) -> np.ndarray:
        z = np.asarray(x @ coef.T) + bias
        return 1 / (1 + np.exp(-np.clip(z, -60, 60)))

    def baseline_predict(self, x_train, y_train, x_test, meta):
        """One-vs-rest logistic regression, each label's threshold tuned out of fold on the training rows and
        folded into its probability (p' = sigmoid(logit p - logit t)), so 0.5 is its decision point as for the
        network with its tuned thresholds."""
        from sklearn.model_selection import KFold  # scikit-learn takes a second to import; fits are rare

        y = np.asarray(y_train)
        oof = np.full(y.shape, 0.5)
        if len(y) >= 6:
            for tr, te in KFold(3, shuffle=True, random_state=0).split(y):
                oof[te] = self._probs(*self._fit(x_train[tr], y[tr]), x_train[te])
        thr = np.asarray(tune_thresholds(y, oof))
        p = self._probs(*self._fit(x_train, y), x_test)
        logit = np.log(np.clip(p, 1e-9, 1 - 1e-9)) - np.log1p(-np.clip(p, 1e-9, 1 - 1e-9))
        return 1 / (1 + np.exp(-(logit - np.log(thr / (1 - thr)))))

    def blend_weight(self, net, partner, truth, meta, fixed=None):
        return 1.0, {"metric": "map", "note": "no blend for multi-label runs"}

    def linear_head(self, x, y, meta, out_dim, strength=None):
        mean, scale = standardisation(x)
        coef, bias = self._fit((x - mean) / scale, np.asarray(y).astype(np.int8), max_iter=5000)
        return fold_standardisation(coef, bias, mean, scale)

    # ------------------------------------------------------------------ predictions
    def point(self, out, meta=None):
        return decide(out, (meta or {}).get("thresholds"))

    def compare(self, truth, out, base_out, meta, seed=0):
        base = np.asarray(base_out)
        base = base if base.dtype.kind in "iub" else decide(base, None)  # the baseline's own cut-offs are folded in
        return paired_sets(truth, self.point(out, meta), base, seed=seed)

    def prediction_columns(self, truth, out, meta):
        classes = meta["classes"]
        cols: dict[str, Any] = {}
        if truth is not None:
            pred = self.point(out, meta)
            t = np.asarray(truth)
            clipped = np.clip(out, 1e-7, 1 - 1e-7)
            cols.update({"true": join_labels(t, meta), "pred": join_labels(pred, meta),
                         "missed": join_labels(t & (1 - pred), meta), "added": join_labels(pred & (1 - t), meta),
                         "correct": (pred == t).all(1),
                         "loss": -(t * np.log(clipped) + (1 - t) * np.log(1 - clipped)).mean(1)})
        for j, c in enumerate(classes):
            cols[f"p:{c}"] = out[:, j]
        return cols

    def prediction_table(self, out, meta):
        ok = np.isfinite(out).all(1) if len(out) else np.zeros(0, bool)
        names = join_labels(self.point(np.nan_to_num(out), meta), meta)
        cols: dict[str, Any] = {"prediction": [n if good else "" for n, good in zip(names, ok)]}
        for j, c in enumerate(meta["classes"]):
            cols[f"p:{c}"] = out[:, j]
        return cols

    def explain_target(self, row, classes):
        """A mistake's most confident wrong label (given wrongly, else missed), or the label the model is surest
        of; an explanation of any other label is asked for by name."""
        p = np.array([float(row.get(f"p:{c}", 0.0)) for c in classes])
        for key, pick in (("added", np.argmax), ("missed", np.argmin)):
            cell = row.get(key)
            names = [c for c in classes if isinstance(cell, str) and c in _parts(cell)]
            if names:
                at = [classes.index(n) for n in names]
                return at[int(pick(p[at]))]
        return int(np.argmax(p))

    def strata(self, labels, sep=None):
        rows = [r if isinstance(r, tuple) else split_label(r, sep or ";") for r in labels]
        return self._matrix(rows, sorted(self.label_names(rows)))


MULTILABEL = MultiLabel()
