"""Engine overhead against a bare PyTorch loop, the frozen feature cache, and loader wait.

    .venv/bin/python benchmarks/bench_engine.py

Same model, batch and data in one process. Ratios:
- engine steps/s / bare loop steps/s (target >= 0.97)
- 10 frozen epochs / one feature pass (target <= 1.3)
- time spent building batches / step time (target <= 5%)
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from core.config import DataConfig, RunConfig, TrainConfig
from core.datasets import DatasetStore
from core.events import Callback
from core.store import RunStore
from core.trainer import Trainer

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


class StepClock(Callback):
    def __init__(self):
        self.times = []

    def on_event(self, ev, trainer):
        if ev.kind == "step":
            self.times.append(time.perf_counter())
        if ev.kind == "epoch_start":
            self.times.append(None)


def engine(home: Path, strategy: str, epochs: int, backbone: str = "mobilenet_v2", image_size: int = 128):
    datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
    cfg = RunConfig(data=DataConfig(source=str(DEMO / "digits")),
                    train=TrainConfig(backbone=backbone, strategy=strategy, epochs=epochs, batch_size=32,
                                      image_size=image_size, early_stopping_patience=0, augment=False))
    ds = datasets.ingest(cfg.data.source).dataset
    rec = runs.create(cfg, ds.id)
    clock = StepClock()
    tr = Trainer(cfg, rec, runs, datasets, callbacks=[clock])
    t0 = time.perf_counter()
    tr.run()
    return tr, clock, time.perf_counter() - t0


def steady_rate(times) -> float:
    """Steps per second within epochs (epoch boundaries, evaluation and checkpoints excluded)."""
    gaps = [b - a for a, b in zip(times, times[1:]) if a is not None and b is not None]
    gaps = sorted(gaps)[: max(1, int(len(gaps) * 0.9))]
    return len(gaps) / sum(gaps)


def bare_loop(tr: Trainer, steps: int) -> float:
    """The same model/optimizer/batches with nothing around them."""
    model, data = tr.model, tr.data
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    idx = data.idx("train")
    batches = [data.inputs.batch(idx[i:i + 32]) for i in range(0, len(idx) - 31, 32)]
    ys = [data.y[idx[i:i + 32]] for i in range(0, len(idx) - 31, 32)]
    times = []
    for s in range(steps):
        b, y = batches[s % len(batches)], ys[s % len(batches)]
        loss = torch.nn.functional.cross_entropy(model(**b), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter())
    return steady_rate(times)


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tr, clock, _ = engine(Path(tmp) / "a", "full", epochs=2)
        eng = steady_rate(clock.times)
        bare = bare_loop(tr, 20)
        print(f"full fine-tune MobileNetV2@128, batch 32: engine {eng:.2f} steps/s, bare loop {bare:.2f} steps/s, "
              f"ratio {eng / bare:.3f} (target >= 0.97)")

        idx = tr.data.idx("train")
        t = time.perf_counter()
        for i in range(0, len(idx), 32):
            tr.data.inputs.batch(idx[i:i + 32], augment=True)
        load = (time.perf_counter() - t) / max(1, len(idx) // 32)
        print(f"loader: {load * 1000:.1f} ms per augmented batch vs {1000 / eng:.0f} ms per step: "
              f"{load * eng:.1%} of step time (target <= 5%)")

        tr1, _, _ = engine(Path(tmp) / "b", "frozen", epochs=1)
        t = time.perf_counter()
        tr1._cache_features(tr1.data)
        feature_pass = time.perf_counter() - t
        t = time.perf_counter()
        _, _, total10 = engine(Path(tmp) / "c", "frozen", epochs=10)
        print(f"frozen: one feature pass {feature_pass:.1f}s, a whole 10-epoch run {total10:.1f}s, "
              f"ratio {total10 / feature_pass:.2f} (target <= 1.3; includes model load, decode cache and test eval)")


if __name__ == "__main__":
    main()
