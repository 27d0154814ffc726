"""A person's own test file against the training data: exact and near repeats inflate the scores."""
from __future__ import annotations

from typing import Any, Callable

from ...config import RunConfig
from ...data.audit import cross_duplicates


def report_test_overlap(cfg: RunConfig, ds, test_ds, previous: dict[str, Any], report: Callable[..., None]
                        ) -> tuple[set[int] | None, str | None]:
    """Counted and reported; (the repeating test rows when they are to be dropped, a note when they stay)."""
    if test_ds is None:
        return None, None
    found = previous.get("test_overlap") or cross_duplicates(ds, test_ds)
    drop = cfg.data.test_overlap == "drop"
    report(test_overlap={**found, "dropped": drop})
    if drop:
        return set(found["test_rows"]), None
    return None, overlap_note(found)


def overlap_note(found: dict[str, Any], advice: bool = True) -> str | None:
    """advice: say how to leave them out (the Train page shows its own box for it instead)."""
    total, repeats = found["test_rows_total"], found["exact"] + found["near"]
    if not repeats:
        return None
    share = repeats / max(1, total)
    what = "Every test example" if repeats == total else f"{repeats:,} of {total:,} test examples ({share:.0%})"
    return (f"{what} repeat{'s' if repeats in (1, total) else ''} a training example "
            f"({found['exact']:,} exactly, {found['near']:,} nearly): the test scores partly measure memory, not "
            "new data." + (" Leave them out of the test (Train page: the box under the test file; CLI: "
                           "--test-overlap drop), or test on data collected apart." if advice else ""))
