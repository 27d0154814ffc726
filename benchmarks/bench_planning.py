"""What `auto`'s planning costs on this device, against timing every candidate as it did before: each candidate
built and timed (forward pass, and a few training steps where it trains) beside plan_auto as it runs now (a
frozen plan reuses its backbone's forward timing; the time spent is taken from the budget).

    .venv/bin/python benchmarks/bench_planning.py                   # reviews, 10 min budget (~4 min on 2 cores)
    .venv/bin/python benchmarks/bench_planning.py --budget 2 --rounds 3

Both are taken in turns, in alternating order (this shared VM drifts within minutes); the ratio is the median of
the rounds' ratios. The plan chosen and the time it says it spent are printed too.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "assets" / "demo" / "reviews.csv"))
    ap.add_argument("--budget", type=float, default=10.0, help="minutes")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    import core.train.auto as auto
    from core.backbones import get_backbone
    from core.config import RunConfig
    from core.data.datasets import DatasetStore
    from core.train.auto.candidates import candidates
    from core.train.setup import load_run_data, pick_device

    home = Path(tempfile.mkdtemp(prefix="bench-planning-"))
    store = DatasetStore(home / "datasets")
    ds = store.ingest(args.data).dataset
    cfg = RunConfig.from_dict({"data": {"source": ds.id}, "train": {"strategy": "auto",
                                                                     "budget_minutes": args.budget}})
    cfg.chosen = ["budget_minutes"]
    data = load_run_data(cfg, store)
    spec, device = get_backbone(cfg.train.backbone), pick_device("cpu")
    cands = candidates(spec.modality, False, spec.name, False)
    sample = [data.files[i] for i in data.idx("train")[:8].tolist()]

    def every_candidate() -> float:
        t0 = time.perf_counter()
        for backbone, strategy in cands:
            cand = get_backbone(backbone)
            t, _ = auto.resolve_for(cfg, data, cand, strategy, crossfit=False)
            auto.speeds(cand, t, strategy, sample, device, data)
        return time.perf_counter() - t0

    choice = None

    def planned() -> float:
        nonlocal choice
        t0 = time.perf_counter()
        _, _, choice = auto.plan_auto(cfg, data, spec, device, lambda f, m: None)
        return time.perf_counter() - t0

    seen: dict[str, list[float]] = {"every candidate timed": [], "plan_auto": []}
    for r in range(args.rounds):
        for name, fn in (list(zip(seen, (every_candidate, planned))))[:: 1 if r % 2 == 0 else -1]:
            seen[name].append(fn())
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in seen.items()), flush=True)
    ratios = [a / b for a, b in zip(seen["every candidate timed"], seen["plan_auto"])]
    print(f"candidates: {', '.join(f'{s} {b}' for b, s in cands)}")
    print(f"timed by plan_auto: {sum('estimate_s' in c for c in choice.considered)} rows considered, "
          f"{sum('skipped' in c for c in choice.considered)} skipped")
    print(f"plan: {choice.line()}")
    print(f"every candidate timed / plan_auto: {statistics.median(ratios):.2f}x "
          f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
