"""Learning-rate range test."""
import numpy as np

from core.lr_finder import find_lr, suggest
from tests.helpers import config


def test_suggest_picks_steepest_descent():
    lrs = list(np.logspace(-6, 0, 40))
    x = np.log10(lrs)
    losses = list(2 - 1.5 / (1 + np.exp(-(x + 3) * 4)) + np.where(x > -1, (x + 1) * 10, 0))
    s = suggest(lrs, losses)
    assert 10 ** -3.5 < s < 10 ** -2.5


def test_find_lr_runs_and_keeps_group_ratios(stores, image_dir):
    datasets, _ = stores
    res = find_lr(config(image_dir, "tiny-cnn", "differential", batch_size=8), datasets, steps=30)
    assert len(res["lrs"]) >= 10 and res["lrs"] == sorted(res["lrs"])
    assert all(np.isfinite(res["losses"]))
    assert res["suggestion"] is None or res["lrs"][0] <= res["suggestion"] <= res["lrs"][-1]


def test_audit_is_cached_beside_the_version(stores, text_csv):
    from core.audit import cached_audit

    datasets, _ = stores
    ds = datasets.ingest(text_csv).dataset
    a = cached_audit(ds)
    assert (ds.dir / "audit.json").is_file()
    b = cached_audit(ds)
    assert a.summary() == b.summary() and a.group_ids == b.group_ids
