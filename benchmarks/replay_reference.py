"""Runs recorded before an engine change, replayed after it: the same config must give the same numbers.

    .venv/bin/python benchmarks/replay_reference.py --record   # once, on the old engine
    .venv/bin/python benchmarks/replay_reference.py            # on the new engine: compares, exit 1 on a change

Each case is a real config (tiny backbones on the test suite's generated data, and the real offline
MobileNetV2 / MiniLM on the demo sets); what is compared: every step's loss, every validation score, and the
test metrics and confusion matrix. On CPU these are deterministic for a given seed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT / "benchmarks" / "results" / "replay_reference.json"
DEMO = ROOT / "assets" / "demo"

# (name, data maker, train settings); data makers are the test suite's deterministic generators
CASES = [
    ("tiny-cnn full, mixup, grad accum", "images", dict(backbone="tiny-cnn", strategy="full", epochs=2, batch_size=8,
                                                       mixup_alpha=0.2, grad_accum=2, early_stopping_patience=0)),
    ("tiny-cnn partial, gradual unfreezing", "images", dict(backbone="tiny-cnn", strategy="partial", epochs=3,
                                                            batch_size=8, unfreeze_last=0, unfreeze_every=1,
                                                            early_stopping_patience=0)),
    ("tiny-text lora", "texts", dict(backbone="tiny-text", strategy="lora", epochs=2, batch_size=8, seed=3,
                                     early_stopping_patience=0)),
    ("tiny-text full, focal, smoothing, balanced", "texts", dict(backbone="tiny-text", strategy="full", epochs=2,
                                                                 batch_size=8, loss="focal", label_smoothing=0.1,
                                                                 class_weighting="balanced")),
    ("tiny-text auto", "texts", dict(backbone="tiny-text", strategy="auto", epochs=2)),
    ("tiny-cnn differential", "images", dict(backbone="tiny-cnn", strategy="differential", epochs=2, batch_size=8)),
    ("mobilenet_v2 frozen, digits", "digits", dict(backbone="mobilenet_v2", strategy="frozen", epochs=3,
                                                   image_size=96)),
    ("mobilenet_v2 differential, digits, 12 steps", "digits", dict(backbone="mobilenet_v2", strategy="differential",
                                                                   epochs=1, image_size=64, max_steps=12)),
    ("MiniLM full, reviews, 10 steps", "reviews", dict(backbone="all-MiniLM-L6-v2", strategy="full", epochs=1,
                                                       max_steps=10, max_length=64)),
]


def _data(kind: str, tmp: Path) -> str:
    from tests.conftest import make_image_folder, make_text_csv

    if kind == "images":
        return str(make_image_folder(tmp / "colours"))
    if kind == "texts":
        return str(make_text_csv(tmp / "topics.csv"))
    return str(DEMO / ("digits" if kind == "digits" else "reviews.csv"))


def run_case(kind: str, settings: dict, tmp: Path) -> dict:
    from core.config import RunConfig
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore
    from core.train.trainer import Trainer

    home = Path(tempfile.mkdtemp(dir=tmp))
    datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
    # as a config.json written then would be read now (settings that moved are migrated)
    cfg = RunConfig.from_dict({"data": {"source": _data(kind, tmp)}, "train": dict(settings)})
    ds = datasets.ingest(cfg.data.source).dataset
    rec = runs.create(cfg, ds.id)
    st = Trainer(cfg, rec, runs, datasets).run()
    events = rec.events()
    test = rec.result("test") or {}
    return {"status": st["status"],
            "step_losses": [e["data"]["loss"] for e in events if e["kind"] == "step"],
            "val": [{k: e["data"][k] for k in ("accuracy", "macro_f1", "loss")} for e in events
                    if e["kind"] == "eval" and e["data"].get("split") == "val"],
            "test": {k: test.get(k) for k in ("accuracy", "macro_f1", "loss", "confusion")}}


def _close(a, b, tol: float = 1e-6) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    return a == b


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--only", nargs="*", help="case names (substrings) to run")
    args = ap.parse_args()
    ref = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {}
    out, bad = dict(ref), []
    with tempfile.TemporaryDirectory() as t:
        for name, kind, settings in CASES:
            if args.only and not any(s in name for s in args.only):
                continue
            got = run_case(kind, settings, Path(t))
            if args.record:
                out[name] = {"settings": settings, **got}
                print(f"recorded {name}: {got['status']}, test macro-F1 {got['test']['macro_f1']}")
                continue
            want = ref.get(name)
            differ = [k for k in ("status", "step_losses", "val", "test") if want is None or not _close(want[k], got[k])]
            same = not differ
            print(f"{'same' if same else 'CHANGED'}  {name}: test macro-F1 {got['test']['macro_f1']} "
                  f"(recorded {want and want['test']['macro_f1']})" + (f"; differs in {', '.join(differ)}" if differ
                                                                      else ""))
            if not same:
                bad.append(name)
    if args.record:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(json.dumps(out, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
