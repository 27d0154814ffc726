"""Learning-rate range test."""
import numpy as np
import pytest

from core.train.events import Callback
from core.train.lr_finder import find_lr, suggest
from tests.helpers import config


def test_suggest_picks_steepest_descent():
    lrs = list(np.logspace(-6, 0, 40))
    x = np.log10(lrs)
    losses = list(2 - 1.5 / (1 + np.exp(-(x + 3) * 4)) + np.where(x > -1, (x + 1) * 10, 0))
    s = suggest(lrs, losses)
    assert 10 ** -3.5 < s < 10 ** -2.5


class Rates(Callback):
    order = 50  # after the range test has set this step's rates

    def __init__(self):
        self.seen = []

    def on_batch(self, ctx, batch):
        self.seen.append({g["name"]: g["lr"] for g in ctx.parts.optimizer.param_groups})
        return batch


@pytest.mark.parametrize("strategy,head_ratio", [("differential", 10.0), ("partial", 10.0), ("full", 1.0)])
def test_the_swept_rate_is_the_base_rate_and_groups_keep_their_ratios(stores, image_dir, strategy, head_ratio):
    """The suggestion is applied as `lr`; the range test must therefore sweep `lr` itself, with the head at
    head_lr_mult x lr as in training (it used to sweep the head, so training ran at 10x the tested rate)."""
    datasets, _ = stores
    rates = Rates()
    res = find_lr(config(image_dir, "tiny-cnn", strategy, batch_size=8), datasets, steps=20, callbacks=[rates])
    assert len(res["lrs"]) >= 10 and res["lrs"] == sorted(res["lrs"])
    assert all(np.isfinite(res["losses"]))
    assert res["suggestion"] is None or res["lrs"][0] <= res["suggestion"] <= res["lrs"][-1]
    for swept, groups in zip(res["lrs"], rates.seen):
        top = groups.get("depth0", groups.get("group0", groups.get("encoder")))
        assert top == pytest.approx(swept) and groups["head"] == pytest.approx(swept * head_ratio)
        if strategy == "differential":
            assert groups["depth1"] == pytest.approx(swept * 0.8)


def test_lora_head_keeps_its_floor_in_the_range_test(stores, text_csv):
    datasets, _ = stores
    rates = Rates()
    res = find_lr(config(text_csv, "tiny-text", "lora", batch_size=8), datasets, steps=12, callbacks=[rates])
    for swept, groups in zip(res["lrs"], rates.seen):
        assert groups["lora"] == pytest.approx(swept) and groups["head"] == pytest.approx(max(swept, 1e-3))


def test_the_range_test_uses_the_runs_own_loss(stores, image_dir):
    datasets, _ = stores
    plain = find_lr(config(image_dir, "tiny-cnn", "full", batch_size=8), datasets, steps=10)
    smoothed = find_lr(config(image_dir, "tiny-cnn", "full", batch_size=8, label_smoothing=0.4,
                              class_weighting="balanced", loss="focal"), datasets, steps=10)
    assert plain["losses"][0] != pytest.approx(smoothed["losses"][0])


def test_audit_is_cached_beside_the_version(stores, text_csv):
    from core.data.audit import cached_audit

    datasets, _ = stores
    ds = datasets.ingest(text_csv).dataset
    a = cached_audit(ds)
    assert (ds.dir / "audit.json").is_file()
    b = cached_audit(ds)
    assert a.summary() == b.summary() and a.group_ids == b.group_ids
