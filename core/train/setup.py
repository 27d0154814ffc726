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
from ..data.rundata import RunData, check_backbone, load_rows, open_data, run_split
from ..errors import ConfigError
from ..modalities import Modality, get_modality
from ..strategies import Strategy, get_strategy
from ..tasks.multilabel import read_task
from . import distributed as D
from .allocator import tune_allocator

Progress = Callable[[float, str], None]


def pick_device(pref: str) -> torch.device:
    """The device a model runs on; on a CPU the host allocator is tuned for training first (core.train.allocator)."""
    device = _device(pref)
    if device.type == "cpu":
        tune_allocator()
    return device


def _device(pref: str) -> torch.device:
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(pref)


def check_device(t: Any) -> None:
    """The device and process count asked for exist on this machine: said before a run is queued, not found by
    torch mid-run (or never, by a queue waiting for a GPU that is not there)."""
    pref, procs = str(t.device), int(t.processes or 1)
    if pref.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(f"Device '{pref}': PyTorch sees no CUDA GPU on this machine (torch {torch.__version__}, "
                              f"{build}). Choose device 'auto' or 'cpu'.")
        if ":" in pref and int(pref.split(":")[1]) >= n:
            raise ConfigError(f"Device '{pref}': this machine has {n} GPU(s), cuda:0 to cuda:{n - 1}.")
        if procs > n:
            raise ConfigError(f"{procs} processes on CUDA take one GPU each; this machine has {n}.")
    elif pref == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("Device 'mps': Apple's GPU is not available here. Choose device 'auto' or 'cpu'.")
    elif pref == "auto" and torch.cuda.is_available() and procs > torch.cuda.device_count():
        raise ConfigError(f"{procs} processes take one GPU each; this machine has {torch.cuda.device_count()}. "
                          "Ask for fewer, or device 'cpu' (gloo processes on the CPU).")


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
    check_device(cfg.train)
    ds, test_ds = open_data(cfg, datasets, progress or (lambda f, m: None), owner)
    read_as(cfg, ds)
    if not cfg.train.backbone:
        cfg.train.backbone = get_modality(ds.modality).default_backbone
    spec = get_backbone(cfg.train.backbone)
    check_backbone(spec, ds)
    return Opened(cfg, ds, test_ds, spec)


def read_as(cfg: RunConfig, ds: Dataset) -> None:
    """A label column with several labels per row (found by core.tasks.multilabel.detect_separator) is read as
    multi-label, its separator written into the config, so a replay reads it the same way; label_sep 'none'
    keeps one class per cell. The run's notes say which."""
    d = cfg.data
    d.task, d.label_sep = read_task(d.task, d.label_sep, ds.items["label"].tolist(), ds.manifest.get("name", ds.id))


def check_split(opened: Opened) -> None:
    """The split the run will use (made once and kept with the dataset version), so a refusal comes up front."""
    run_split(opened.cfg, opened.ds, opened.test_ds)


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


def attach_inputs(data: RunData, spec: BackboneSpec, t: Any, progress: Progress | None = None) -> list[str]:
    """The model inputs, once the settings are brought within what the backbone can read (t changed in place);
    returns what was changed, in words."""
    notes = data.modality.fit_to_backbone(spec, t, get_strategy(t.strategy).positions_taken(t))
    data.attach_inputs(spec, t, progress)
    return notes


def load_run_data(cfg: RunConfig, datasets: DatasetStore, progress: Progress | None = None) -> RunData:
    """A run's rows, split and model inputs as its settings shape them (no model)."""
    opened = open_run(cfg, datasets, progress)
    data = run_data(opened)
    attach_inputs(data, opened.spec, cfg.train, progress)
    return data
