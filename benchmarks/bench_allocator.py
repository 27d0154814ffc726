"""Training speed on a CPU with the host allocator tuned (core.train.allocator) against glibc's defaults: the same
run (real backbone, real data, same seed) in two fresh processes each, one with tuning switched off.

    .venv/bin/python benchmarks/bench_allocator.py            # MobileNetV2 at 128 and 224 px, MiniLM (~6 min)

Prints each run's steady examples/s (the median of the logged step rates after the first epoch), its peak RSS, the
kernel's share of its CPU time, and the ratio tuned / default.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
CASES = [("MobileNetV2 full, 128 px", "digits", dict(backbone="mobilenet_v2", image_size=128)),
         ("MobileNetV2 full, 224 px", "digits", dict(backbone="mobilenet_v2", image_size=224)),
         ("MiniLM full, 128 tokens", "reviews.csv", dict(backbone="all-MiniLM-L6-v2", max_length=128))]

CHILD = """
import json, resource, statistics, sys, tempfile
from pathlib import Path
import core.train.allocator as A
if not {tuned}:
    A._tuned = False  # glibc's defaults, as before the allocator was tuned
from core.config import DataConfig, RunConfig, TrainConfig
from core.data.datasets import DatasetStore
from core.runs.store import RunStore
from core.train.trainer import Trainer
h = Path(tempfile.mkdtemp())
d, r = DatasetStore(h / 'd'), RunStore(h / 'r')
cfg = RunConfig(data=DataConfig(source={source!r}),
                train=TrainConfig(strategy='full', epochs=2, batch_size=32, early_stopping_patience=0,
                                  baseline=False, blend=False, seed=0, **{train!r}))
rec = r.create(cfg, d.ingest(cfg.data.source).dataset.id)
st = Trainer(cfg, rec, r, d).run()
rates = [e['data']['examples_per_s'] for e in map(json.loads, open(rec.events_file))
         if e['kind'] == 'step' and e['epoch'] >= 1]
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"status": st["status"], "tuned": A.tune_allocator(), "rate": statistics.median(rates),
                  "rss_mb": u.ru_maxrss / 1024, "sys_share": u.ru_stime / (u.ru_utime + u.ru_stime)}}))
"""


def child(source: Path, train: dict, tuned: bool) -> dict:
    code = CHILD.format(tuned=tuned, source=str(source), train=train)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    for name, source, train in CASES:
        # default, tuned, default, tuned: the best of two each, so drift on a shared machine evens out
        runs = {False: [], True: []}
        for tuned in (False, True, False, True):
            runs[tuned].append(child(DEMO / source, train, tuned))
        best = {k: max(v, key=lambda r: r["rate"]) for k, v in runs.items()}
        d, t = best[False], best[True]
        print(f"{name}: default {d['rate']:.1f} ex/s (kernel {d['sys_share']:.0%} of CPU time, peak "
              f"{d['rss_mb']:.0f} MB); tuned {t['rate']:.1f} ex/s (kernel {t['sys_share']:.0%}, peak "
              f"{t['rss_mb']:.0f} MB); speed ratio {t['rate'] / d['rate']:.2f}, memory ratio "
              f"{t['rss_mb'] / d['rss_mb']:.2f}")


if __name__ == "__main__":
    main()
