"""A person's own test file against the training data: exact and near repeats inflate the scores."""
from __future__ import annotations

from typing import Any, Callable

from ...config import RunConfig
from ...data.audit import cross_duplicates


def report_test_overlap(cfg: RunConfig, ds, test_ds, previous: dict[str, Any], report: Callable[..., None]
                 ) -> set[int] | None:
    """Counted and reported; the repeating test rows are returned when they are to be dropped."""
    if test_ds is None:
        return None
    found = previous.get("test_overlap") or cross_duplicates(ds, test_ds)
    report(test_overlap={**found, "dropped": cfg.data.test_overlap == "drop"})
    return set(found["test_rows"]) if cfg.data.test_overlap == "drop" else None
