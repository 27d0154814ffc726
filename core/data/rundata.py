"""Everything a run needs about its data, built once: rows, split, targets, then model inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..modalities import Inputs, Modality, get_modality
from ..tasks import Targets, Task, get_task
from .datasets import Dataset, DatasetStore, open_source
from .split import dataset_split

Progress = Callable[[float, str], None]


@dataclass
class RunData:
    ds: Dataset
    modality: Modality
    task: Task
    targets: Targets
    split: np.ndarray  # 'train'/'val'/'test' per row
    display: list[str]  # what a person sees for each row (text or image path)
    source_rows: list[Any]
    files: list[str]  # texts, or absolute image paths
    labels: list[Any]  # the label column as the task reads it (multi-label: a tuple per row)
    test_ds: Dataset | None = None
    inputs: Inputs | None = None  # attached once the settings that shape them are final

    @property
    def y(self) -> torch.Tensor:
        return self.targets.y

    @property
    def classes(self) -> list[str]:
        return self.targets.classes

    @property
    def meta(self) -> dict[str, Any]:
        return self.targets.meta()

    def idx(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.flatnonzero(self.split == name))

    def attach_inputs(self, spec, t, progress: Progress | None = None) -> "RunData":
        pre = self.modality.preprocessor(spec, t)
        cache = self.modality.cache_file(self.ds.dir, pre) if self.test_ds is None else None  # per dataset version
        self.inputs = self.modality.build_inputs(pre, self.files, cache, progress, t)
        return self


def open_data(cfg, datasets: DatasetStore, progress: Progress, owner: str | None = None
              ) -> tuple[Dataset, Dataset | None]:
    d = cfg.data
    ds = open_source(datasets, d.source, d.text_col, d.label_col, progress, owner=owner)
    test_ds = None
    if d.test_source:
        test_ds = open_source(datasets, d.test_source, d.text_col, d.label_col, progress, owner=owner)
        if test_ds.modality != ds.modality:
            raise DataError(f"The test data holds {test_ds.modality}s but the training data {ds.modality}s.")
    return ds, test_ds


def check_backbone(spec, ds: Dataset) -> None:
    if spec.modality != ds.modality:
        raise ConfigError(f"Backbone {spec.name} is for {spec.modality}s but the dataset holds {ds.modality}s. "
                          f"Pick a {ds.modality} backbone.")


def run_split(cfg, ds: Dataset, test_ds: Dataset | None) -> np.ndarray:
    """The dataset's split as this run's settings ask for it (a file of the user's own is then the test split)."""
    d = cfg.data
    return dataset_split(ds, val=d.val_fraction, test=0.0 if test_ds else d.test_fraction, seed=d.split_seed,
                         rare_policy=d.rare_policy, task=d.task, label_sep=d.label_sep)


def load_rows(cfg, opened: tuple[Dataset, Dataset | None], drop_test_rows: set[int] | None = None) -> RunData:
    """Rows of the dataset (and of the user's own test file, which then is the whole test split), split and
    turned into targets; no model inputs yet."""
    d = cfg.data
    ds, test_ds = opened
    task, modality = get_task(d.task), get_modality(ds.modality)
    split = run_split(cfg, ds, test_ds)
    labels = task.read_labels(ds.items["label"].tolist(), d.label_sep)
    items = ds.inputs()
    display = ds.displays()
    rows: list[Any] = list(range(len(ds.items)))
    if test_ds is not None:
        keep = [i for i in range(len(test_ds.items)) if i not in (drop_test_rows or set())]
        if not keep:
            raise DataError("Every example of the test file repeats a training example; nothing is left to test on.")
        given = task.read_labels(test_ds.items["label"].tolist(), d.label_sep)
        test_labels = [given[i] for i in keep]
        if task.has_classes:
            unseen = sorted(task.label_names(test_labels) - task.label_names(labels))
            if unseen:
                raise DataError(f"The test data has label(s) never seen in training: {', '.join(unseen[:10])}.")
        test_inputs = test_ds.inputs()
        labels += test_labels
        items += [test_inputs[i] for i in keep]
        shown = test_ds.displays()
        display += [shown[i] for i in keep]
        rows += [f"test:{i}" for i in keep]
        split = np.concatenate([split, np.full(len(keep), "test", dtype=object)])
    targets = task.targets(labels, np.flatnonzero(split == "train"), ds.manifest.get("name", ds.id))
    if task.several:
        targets.extra["label_sep"] = d.label_sep
    return RunData(ds, modality, task, targets, split, display, rows, items, labels, test_ds)
