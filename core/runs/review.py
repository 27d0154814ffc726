"""A finished run's review queue: its out-of-fold suspects and test predictions on the very dataset version it
trained on (core.data.review does the rest)."""
from __future__ import annotations

import pandas as pd

from ..data.datasets import Dataset, DatasetStore
from ..data.review import review_queue
from ..errors import RunError
from .folder import RunFolder


def run_dataset(run: RunFolder, datasets: DatasetStore) -> Dataset:
    ds_id = run.status.get("dataset")
    if not ds_id or not datasets.exists(ds_id):
        raise RunError(f"Run {run.id}'s dataset version {ds_id!r} is not in this studio home.")
    return datasets.get(ds_id)


def run_queue(run: RunFolder, datasets: DatasetStore) -> tuple[Dataset, pd.DataFrame]:
    ds = run_dataset(run, datasets)
    read = lambda p: pd.read_parquet(p) if p.is_file() else None  # noqa: E731
    return ds, review_queue(ds, read(run.suspects_file), read(run.test_predictions), read(run.unsure_file))
