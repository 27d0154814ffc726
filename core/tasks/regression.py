"""Regression: a number per example. The head gives one value; training sees targets standardised on the
training rows (so a learning rate means the same whatever the units), predictions come back in the label's
units. Metrics: MAE, RMSE, R² and Spearman's rank correlation."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..linear import fold_standardisation, ridge, standardisation
from ..metrics import paired_mae
from ..predict.blend import best_weight_values
from .base import Targets, Task


def _numbers(labels: list[str], name: str) -> np.ndarray:
    values = np.empty(len(labels), dtype=np.float64)
    bad = []
    for i, v in enumerate(labels):
        try:
            values[i] = float(str(v).strip())
        except ValueError:
            bad.append((i, v))
            continue
        if not np.isfinite(values[i]):
            bad.append((i, v))
    if bad:
        shown = ", ".join(f"row {i + 1}: {v!r}" for i, v in bad[:5])
        raise DataError(f"{name}: regression needs a number in every label; {len(bad)} are not ({shown}). Fix or "
                        "drop those rows, or train a classifier.")
    return values


class Regression(Task):
    name = "regression"
    title = "Regression"
    metrics = ("rmse", "mae", "r2", "spearman", "loss")
    lower_is_better = frozenset({"rmse", "mae", "loss"})
    losses = ("mse", "huber")
    headline = ("mae", "rmse", "r2")
    event_keys = ("mae", "rmse", "r2", "spearman", "loss")
    estimator = "ridge regression"
    split_suffix = "-regression"

    def targets(self, labels, train_rows, name="the data"):
        values = _numbers(labels, name)
        fit = values[train_rows] if len(train_rows) else values
        mean, std = float(fit.mean()), float(fit.std()) or 1.0
        return Targets(torch.from_numpy(((values - mean) / std).astype(np.float32)), values, [], (mean, std))

    def targets_from_meta(self, labels, meta):
        values = _numbers(labels, "the data")
        mean, std = meta["scale"]
        return Targets(torch.from_numpy(((values - mean) / std).astype(np.float32)), values, [], (mean, std))

    def out_dim(self, targets):
        return 1

    def loss_fn(self, t, targets, train_idx, device):
        kind = self.loss_name(t)

        def fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            pred = logits.float()[:, 0]
            return F.smooth_l1_loss(pred, y) if kind == "huber" else F.mse_loss(pred, y)
        return fn

    def outputs(self, logits, targets_meta):
        mean, std = targets_meta["scale"]
        return logits.float()[:, :1] * std + mean

    def evaluate(self, truth, out, meta):
        from scipy.stats import spearmanr

        truth, pred = np.asarray(truth, dtype=np.float64), np.asarray(out, dtype=np.float64).reshape(-1)
        err = pred - truth
        n = len(truth)
        ss_tot = float(((truth - truth.mean()) ** 2).sum()) if n else 0.0
        rho = spearmanr(truth, pred).statistic if n > 2 and np.ptp(pred) > 0 and np.ptp(truth) > 0 else float("nan")
        return {"n": int(n), "mae": float(np.abs(err).mean()) if n else 0.0,
                "rmse": float(np.sqrt((err ** 2).mean())) if n else 0.0,
                "r2": float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
                "spearman": float(rho), "loss": float((err ** 2).mean()) if n else 0.0,
                "bias": float(err.mean()) if n else 0.0, "target_mean": float(truth.mean()) if n else 0.0,
                "target_std": float(truth.std()) if n else 0.0}

    def baseline_predict(self, x_train, y_train, x_test, meta):
        model = ridge().fit(x_train, y_train)
        return model.predict(x_test).reshape(-1, 1)

    def blend_weight(self, net, partner, truth, meta, fixed=None):
        return best_weight_values(self.point(net), self.point(partner), np.asarray(truth, dtype=np.float64),
                                  fixed=fixed)

    def linear_head(self, x, y, meta, out_dim, strength=None):
        mean, scale = standardisation(x)
        reg = ridge().fit((x - mean) / scale, y)  # y: standardised targets
        w, b = fold_standardisation(np.asarray(reg.coef_).reshape(1, -1), np.atleast_1d(reg.intercept_), mean, scale)
        return w, b

    def point(self, out, meta=None):
        return np.asarray(out, dtype=np.float64).reshape(len(out), -1)[:, 0]

    def compare(self, truth, out, base_out, meta, seed=0):
        return paired_mae(np.asarray(truth, dtype=np.float64), self.point(out), np.asarray(base_out).reshape(-1),
                          seed=seed)

    def prediction_columns(self, truth, out, meta):
        pred = self.point(out)
        cols: dict[str, Any] = {"pred": pred}
        if truth is not None:
            cols = {"true": np.asarray(truth, dtype=np.float64), "pred": pred, "error": pred - truth,
                    "error_abs": np.abs(pred - truth)}
        return cols

    def prediction_table(self, out, meta):
        return {"prediction": self.point(out) if len(out) else np.zeros(0)}

    def strata(self, labels, sep=None):
        """Quantile bins of the target (quintiles from 20 rows): every split gets low, middle and high values."""
        values = _numbers(list(labels), "the labels")
        if np.ptp(values) == 0:
            raise DataError(f"Every target is {values[0]:g}: there is nothing to learn. Regression needs targets "
                            "that vary.")
        bins = max(1, min(5, len(values) // 4))  # small data: fewer bins, each with a row for every split
        edges = np.unique(np.quantile(values, np.arange(1, bins) / bins))
        return np.array([f"bin{b}" for b in np.digitize(values, edges)], dtype=object)


REGRESSION = Regression()
