"""What a task is: the targets it reads from labels, the head's size, the loss, the metrics, the baseline's
estimator, the comparison with the baseline and what a prediction returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError


@dataclass
class Targets:
    y: torch.Tensor  # what the loss sees per row: a class index, or a standardised value
    truth: np.ndarray  # what metrics compare against: class indices, or values in the data's units
    classes: list[str] = field(default_factory=list)  # classification only
    scale: tuple[float, float] | None = None  # regression: (mean, std) of the training targets
    extra: dict[str, Any] = field(default_factory=dict)  # multi-label: the separator, and thresholds once tuned

    def meta(self) -> dict[str, Any]:
        """What labels.json keeps so a prediction reads the same way later."""
        return {"classes": self.classes, **({"scale": list(self.scale)} if self.scale else {}), **self.extra}


class Task:
    name = ""
    title = ""
    metrics: tuple[str, ...] = ()  # monitor choices; the first is the default
    lower_is_better: frozenset[str] = frozenset()
    losses: tuple[str, ...] = ()  # the first is the default
    headline: tuple[str, ...] = ()  # the numbers a run's status and the runs table carry
    summary: tuple[str, ...] = ()  # what the baseline's summary keeps beyond the headline
    event_keys: tuple[str, ...] = ()  # what each validation event carries (Monitor's curves)
    estimator = ""  # the baseline's estimator, in words
    split_suffix = ""  # saved splits of other tasks are kept apart
    has_classes = False
    several = False  # any number of labels per example (one probability per label, not a distribution)
    blends = True  # the blend with the baseline's kind of model applies
    # the solved head's regularisation strengths cross-fitting chooses from (core.train.crossfit); the first is
    # the baseline's own. Empty: the estimator chooses its own (ridge: leave-one-out)
    head_strengths: tuple[float, ...] = ()

    def read_labels(self, labels: list[Any], sep: str | None) -> list[Any]:
        """The label column as this task reads it (multi-label: a tuple of labels per row)."""
        return labels

    def label_names(self, labels: list[Any]) -> set[str]:
        """Every label name these rows use (a test file's are checked against training's)."""
        return set(labels)

    def targets(self, labels: list[Any], train_rows: np.ndarray, name: str = "the data") -> Targets:
        raise NotImplementedError

    def targets_from_meta(self, labels: list[str], meta: dict[str, Any]) -> Targets:
        """Targets for rows read later (a resumed run, a prediction file) in the units of the saved run."""
        raise NotImplementedError

    def out_dim(self, targets: Targets) -> int:
        raise NotImplementedError

    def loss_fn(self, t, targets: Targets, train_idx: torch.Tensor, device: torch.device) -> Callable:
        raise NotImplementedError

    def outputs(self, logits: torch.Tensor, targets_meta: dict[str, Any]) -> torch.Tensor:
        """Per-row outputs in the data's terms: class probabilities, or values in the label's units."""
        raise NotImplementedError

    def evaluate(self, truth: np.ndarray, out: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def attributed(self, logits: torch.Tensor) -> torch.Tensor:
        """What an explanation attributes, per output: the head's raw output unless the task says otherwise."""
        return logits

    def score(self, res: dict[str, Any], monitor: str) -> float:
        """The monitored metric as 'higher is better'."""
        return -res[monitor] if monitor in self.lower_is_better else res[monitor]

    def monitor(self, t) -> str:
        m = t.monitor or self.metrics[0]
        if m not in self.metrics:
            raise ConfigError(f"monitor {m!r} does not apply to {self.name}; choose one of: {', '.join(self.metrics)}.")
        return m

    def loss_name(self, t) -> str:
        name = t.loss or self.losses[0]
        if name not in self.losses:
            raise ConfigError(f"loss {name!r} does not apply to {self.name}; choose one of: {', '.join(self.losses)}.")
        return name

    def baseline_predict(self, x_train, y_train: np.ndarray, x_test, meta: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def compare(self, truth: np.ndarray, out: np.ndarray, base_out: np.ndarray, meta: dict[str, Any],
                seed: int = 0) -> dict[str, Any]:
        raise NotImplementedError

    def blend_weight(self, net: np.ndarray, partner: np.ndarray, truth: np.ndarray, meta: dict[str, Any],
                     fixed: float | None = None) -> tuple[float, dict[str, Any]]:
        """The network's share in w*net + (1-w)*partner, the better part alone unless a blend beats it with confidence on held-out outputs (validation, or
        out-of-fold over training + validation: core.train.crossfit; see core.predict.blend),
        or the fixed share a person set, scored."""
        raise NotImplementedError

    def linear_head(self, x: np.ndarray, y: np.ndarray, meta: dict[str, Any], out_dim: int,
                    strength: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A linear head solved to convergence on standardised features (the baseline's own estimator, at one of
        head_strengths when given), folded back into raw feature space: (weight [out_dim, features], bias)."""
        raise NotImplementedError

    def prediction_columns(self, truth: np.ndarray, out: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        """Columns of a predictions table (eval/test_predictions.parquet, batch prediction)."""
        raise NotImplementedError

    def out_of_fold(self, x, truth: np.ndarray, meta: dict[str, Any], seed: int) -> np.ndarray | None:
        """Each row's class probabilities from a model that never saw it (k-fold), which checks the labels and
        finds what is least sure; None where the task has no such check."""
        return None

    def prediction_table(self, out: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        """Columns for predictions of new inputs: 'prediction' (and 'confidence' where it means something) and
        every output; rows of unreadable inputs (NaN outputs) have an empty prediction."""
        raise NotImplementedError

    def strata(self, labels: np.ndarray, sep: str | None = None) -> np.ndarray:
        """What a stratified split balances across train, validation and test: one stratum per row, or (several
        labels per row) a 0/1 matrix that iterative stratification balances label by label."""
        raise NotImplementedError

    def point(self, out: np.ndarray, meta: dict[str, Any] | None = None) -> np.ndarray:
        """One prediction per row (the class index, the value, or the 0/1 row of labels) from outputs."""
        raise NotImplementedError

    def explain_target(self, row: Any, classes: list[str]) -> int:
        """The output an example's explanation is about, from its row of a prediction table."""
        return 0
