"""The data path for large collections, on small data: images decoded once into a store (in parallel, byte for
byte what one process writes), read from memory or from disk, by the loop or by loader workers (the same
batches, so the same model), and what a second run on the same dataset version reuses."""
import re

import numpy as np
import pytest
import torch

from tests.helpers import Record, config, train


def _progress(rec: Record) -> list[str]:
    return [e.data["message"] for e in rec.events if e.kind == "progress"]


def test_decoding_in_parallel_writes_the_same_store_and_a_bad_file_stays_black(tmp_path, image_dir):
    from core.modalities.image import ImagePrep
    from core.train.cache import PixelStore, build_pixels

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    paths = sorted(str(p) for p in image_dir.rglob("*.png")) + [str(bad)]
    prep = ImagePrep(32, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    seen = []
    build_pixels(paths, prep, tmp_path / "one.u8", workers=1, chunk=7)
    build_pixels(paths, prep, tmp_path / "two.u8", progress=lambda f, m: seen.append(m), workers=2, chunk=7)
    assert (tmp_path / "one.u8").read_bytes() == (tmp_path / "two.u8").read_bytes()
    assert seen[-1] == f"Decoding images {len(paths)}/{len(paths)} (2 processes)"
    disk, memory = (PixelStore(tmp_path / "two.u8", len(paths), 32, in_memory=m) for m in (False, True))
    rows = np.array([len(paths) - 1, 3, 0, 3])
    assert np.array_equal(disk.rows(rows), memory.rows(rows))
    assert not disk.rows([len(paths) - 1]).any() and disk.rows([0]).any()


def test_disk_store_with_loader_workers_trains_the_same_model_as_memory_without(stores, image_dir, monkeypatch):
    import core.train.cache

    results = []
    for in_memory_bytes, workers in ((2**40, 0), (0, 2)):
        monkeypatch.setattr(core.train.cache, "IN_MEMORY_BYTES", in_memory_bytes)
        rec_cb = Record()
        rec, st, tr = train(stores, config(image_dir, epochs=2, loader_workers=workers, hflip=True), [rec_cb])
        assert st["status"] == "completed", st.get("reason")
        where = next(m for m in _progress(rec_cb) if "images at" in m)
        assert ("read from disk" in where) == (in_memory_bytes == 0), where
        losses = [e.data["loss"] for e in rec_cb.events if e.kind == "step"]
        results.append((losses, {k: v.clone() for k, v in tr.plan.model.state_dict().items()}))
    (loss_a, w_a), (loss_b, w_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert all(torch.allclose(w_a[k].float(), w_b[k].float(), atol=1e-5) for k in w_a)


def test_a_second_run_reuses_images_features_and_the_fits_on_them(stores, image_dir):
    first, second, other_split = Record(), Record(), Record()
    _, st1, _ = train(stores, config(image_dir, strategy="frozen", baseline=True), [first])
    _, st2, _ = train(stores, config(image_dir, strategy="frozen", baseline=True), [second])
    cfg = config(image_dir, strategy="frozen", baseline=True)
    cfg.data.split_seed = 1
    _, st3, _ = train(stores, cfg, [other_split])
    assert not [m for m in _progress(first) if m.startswith("Reusing")]
    reused = [re.sub(r" (from )?an earlier.*", "", m) for m in _progress(second) if m.startswith("Reusing")]
    assert reused == ["Reusing the decoded images", "Reusing tiny-cnn features of 48 examples",
                      "Reusing the baseline", "Reusing the label check", "Reusing the head"], reused
    assert st2["test"] == st1["test"] and st2["baseline"] == st1["baseline"]
    # another split: the images and features are the same, the fits on them are not
    again = [m for m in _progress(other_split) if m.startswith("Reusing")]
    assert len(again) == 2 and "Fitting the head to convergence on the cached features" in _progress(other_split)
    assert st3["status"] == "completed" and "message" not in st3  # no stale "Computing features 48/48"


def test_a_kept_result_is_found_by_what_it_read_and_the_code_that_computed_it(tmp_path):
    from core.train.cache import code_key, content_key, remembered

    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    key = content_key(np.ones(4), "C=2")
    first, hit_first = remembered(tmp_path, "fit", key, compute)
    again, hit_again = remembered(tmp_path, "fit", key, compute)
    assert (hit_first, hit_again) == (False, True) and len(calls) == 1 and np.array_equal(first["x"], again["x"])
    assert len({key, content_key(np.ones(4, dtype=np.float32), "C=2"), content_key(np.ones(4), "C=3"),
                content_key(np.ones((2, 2)), "C=2")}) == 4
    ns: dict = {}
    exec("def f(x):\n    return x + 1\n\ndef g(x):\n    return x + 2\n", ns)  # no source file to read
    assert code_key(ns["f"]) != code_key(ns["g"])
