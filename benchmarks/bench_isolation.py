"""What isolation costs, and what Monitor costs as a run grows.

    .venv/bin/python benchmarks/bench_isolation.py

1. Steps per second of the same run in a worker process (core.runs.worker, started by the dispatcher) and in the
   server's own process (core.train.trainer directly): the ratio should be ~1 (target >= 0.97). Each is measured from
   the run's own step events, skipping the first steps (warm-up), best of two.
2. One Monitor refresh (read what is new in events.jsonl, build the chart tables) on runs of 1k, 10k and 100k
   steps with 20 new events since the last refresh, against re-reading the whole log as Monitor used to.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def steps_per_s(events: list[dict], skip: int = 5) -> float:
    t = [e["time"] for e in events if e["kind"] == "step"][skip:]
    return (len(t) - 1) / (t[-1] - t[0])


def isolation() -> dict:
    from core.config import RunConfig
    from core.data.datasets import DatasetStore
    from core.runs.manager import RunManager
    from core.runs.store import RunStore
    from core.train.trainer import Trainer

    cfg = {"data": {"source": str(ROOT / "assets" / "demo" / "digits")},
           "train": {"backbone": "mobilenet_v2", "strategy": "full", "epochs": 2, "image_size": 96,
                     "batch_size": 32, "baseline": False, "early_stopping_patience": 0, "hflip": True}}
    out = {"in_process": [], "worker": []}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
        mgr = RunManager(runs, datasets, devices=["cpu"])
        try:
            for _ in range(2):
                rec = runs.create(RunConfig.from_dict(cfg), datasets.ingest(cfg["data"]["source"]).dataset.id)
                Trainer(RunConfig.from_dict(cfg), rec, runs, datasets).run()
                out["in_process"].append(steps_per_s(rec.events()))
                h = mgr.submit(RunConfig.from_dict(cfg))
                assert h.wait(900)["status"] == "completed", h.status.get("reason")
                out["worker"].append(steps_per_s(h.run.events()))
        finally:
            mgr.shutdown(stop_runs=True)
    best_in, best_w = max(out["in_process"]), max(out["worker"])
    return {"in_process_steps_per_s": round(best_in, 3), "worker_steps_per_s": round(best_w, 3),
            "ratio": round(best_w / best_in, 3), "all": out}


def monitor_refresh() -> dict:
    from core.runs.eventlog import EventTail
    from core.train.events import read_events
    from studio.charts import curves, curves_from_tail

    def event(kind, step, **data):
        return json.dumps({"kind": kind, "epoch": step // 1000, "step": step, "data": data, "time": time.time()})

    def step_line(i):
        return event("step", i, loss=1.0 / (1 + i), lr=1e-3, total_steps=10**6, eta_s=1.0, elapsed_s=i / 10)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1_000, 10_000, 100_000):
            path = Path(tmp) / f"events-{n}.jsonl"
            lines = []
            for i in range(1, n + 1):
                lines.append(step_line(i))
                if i % 1000 == 0:
                    lines.append(event("eval", i, split="val", accuracy=0.9, macro_f1=0.9, loss=0.3,
                                       confusion=[[1, 0], [0, 1]], epoch_metric=0.9, improved=True))
            path.write_text("\n".join(lines) + "\n")
            tail = EventTail(path).refresh()
            times, old = [], []
            for r in range(5):
                with open(path, "a") as f:
                    f.write("\n".join(step_line(n + r * 20 + k) for k in range(20)) + "\n")
                t = time.perf_counter()
                curves_from_tail(tail.refresh())
                times.append(time.perf_counter() - t)
                t = time.perf_counter()
                curves(read_events(path))
                old.append(time.perf_counter() - t)
            rows[n] = {"refresh_ms": round(1000 * min(times), 2), "reread_ms": round(1000 * min(old), 1),
                       "points_drawn": len(tail.steps)}
    return rows


def main() -> None:
    iso = isolation()
    print(f"steps/s in a worker process {iso['worker_steps_per_s']} vs in-process {iso['in_process_steps_per_s']}: "
          f"ratio {iso['ratio']} (target >= 0.97)")
    mon = monitor_refresh()
    for n, r in mon.items():
        print(f"Monitor refresh on a run of {n:,} steps: {r['refresh_ms']} ms (whole-log re-read: {r['reread_ms']} ms; "
              f"{r['points_drawn']} points drawn)")
    base = mon[1_000]["refresh_ms"]
    print(f"refresh cost 100k ÷ 1k steps: {mon[100_000]['refresh_ms'] / base:.2f} (flat means it does not grow)")
    out = ROOT / "benchmarks" / "results" / "isolation.json"
    out.write_text(json.dumps({"isolation": iso, "monitor": mon}, indent=1))


if __name__ == "__main__":
    main()
