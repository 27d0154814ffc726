"""One run set-up, wherever a run's model meets its data: training (core.train.plan), the learning-rate range test,
a search before its trials, and the studio's check before a run is queued. It opens the data, names the backbone
(the data's default when none is given) and checks that they fit; then, when a model is wanted, splits the rows,
picks the device, seeds and builds the model with its strategy's parameter groups."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..backbones import BackboneSpec, Classifier, get_backbone
from ..config import RunConfig
from ..data.datasets import Dataset, DatasetStore
from ..data.rundata import RunData, check_backbone, load_rows, open_data
from ..modalities import Modality, get_modality
from ..strategies import Strategy, get_strategy
from . import distributed as D

Progress = Callable[[float, str], None]


def pick_device(pref: str) -> torch.device:
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(pref)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Opened:
    """A run's data opened and its backbone named and checked; cfg.train.backbone is filled in."""
    cfg: RunConfig
    ds: Dataset
    test_ds: Dataset | None
    spec: BackboneSpec

    @property
    def modality(self) -> Modality:
        return get_modality(self.ds.modality)


def open_run(cfg: RunConfig, datasets: DatasetStore, progress: Progress | None = None,
             owner: str | None = None) -> Opened:
    """The data (ingested now if given as a path) and the backbone that reads it. cfg is changed in place: a
    missing backbone becomes the data's default."""
    ds, test_ds = open_data(cfg, datasets, progress or (lambda f, m: None), owner)
    if not cfg.train.backbone:
        cfg.train.backbone = get_modality(ds.modality).default_backbone
    spec = get_backbone(cfg.train.backbone)
    check_backbone(spec, ds)
    return Opened(cfg, ds, test_ds, spec)


def run_data(opened: Opened, drop_test_rows: set[int] | None = None) -> RunData:
    return load_rows(opened.cfg, (opened.ds, opened.test_ds), drop_test_rows)


def device_for(cfg: RunConfig) -> torch.device:
    return pick_device(D.device_for_rank(cfg.train.device))


def build_model(spec: BackboneSpec, data: RunData, t: Any, device: torch.device
                ) -> tuple[Classifier, list[dict[str, Any]], Strategy]:
    """The model as this run's settings shape it, seeded, its strategy's parameter groups prepared, on device."""
    strategy = get_strategy(t.strategy)
    seed_everything(t.seed)
    model = spec.build(data.task.out_dim(data.targets), pooling=t.pooling, keep_layers=t.keep_layers)
    groups = strategy.prepare(model, t, spec.modality)
    if t.gradient_checkpointing and hasattr(getattr(model.encoder, "model", None), "gradient_checkpointing_enable"):
        model.encoder.model.gradient_checkpointing_enable()
    model.to(device)
    return model, groups, strategy


def load_run_data(cfg: RunConfig, datasets: DatasetStore, progress: Progress | None = None) -> RunData:
    """A run's rows, split and model inputs as its settings shape them (no model)."""
    opened = open_run(cfg, datasets, progress)
    return run_data(opened).attach_inputs(opened.spec, cfg.train, progress)
