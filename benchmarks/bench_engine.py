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
from core.data.datasets import DatasetStore
from core.runs.store import RunStore
from core.train.events import Callback
from core.train.trainer import Trainer

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


class StepClock(Callback):
    def __init__(self):
        self.times = []
        self.features_from = None
        self.last_epoch_end = None

    def on_event(self, ev, trainer):
        if ev.kind == "step":
            self.times.append(time.perf_counter())
        if ev.kind == "epoch_start":
            self.times.append(None)
        if ev.kind == "progress" and "features" in ev.data["message"] and self.features_from is None:
            self.features_from = time.perf_counter()
        if ev.kind == "epoch_end":
            self.last_epoch_end = time.perf_counter()


def engine(home: Path, strategy: str, epochs: int, backbone: str = "mobilenet_v2", image_size: int = 128):
    datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
    cfg = RunConfig(data=DataConfig(source=str(DEMO / "digits")),
                    train=TrainConfig(backbone=backbone, strategy=strategy, epochs=epochs, batch_size=32,
                                      image_size=image_size, early_stopping_patience=0, augment=False,
                                      baseline=False))
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


def peak_rss(strategy: str) -> float:
    """Peak RSS (MB) of a fresh process training MiniLM for 10 steps with this strategy."""
    import json
    import subprocess
    import sys

    code = f"""
import resource, tempfile, json
from pathlib import Path
from core.config import DataConfig, RunConfig, TrainConfig
from core.data.datasets import DatasetStore
from core.runs.store import RunStore
from core.train.trainer import Trainer
h = Path(tempfile.mkdtemp())
d, r = DatasetStore(h / 'd'), RunStore(h / 'r')
cfg = RunConfig(data=DataConfig(source={str(DEMO / 'reviews.csv')!r}),
                train=TrainConfig(backbone='all-MiniLM-L6-v2', strategy={strategy!r}, epochs=1, batch_size=32,
                                  max_steps=10, baseline=False, max_length=128))
rec = r.create(cfg, d.ingest(cfg.data.source).dataset.id)
import torch, transformers, peft, sklearn  # libraries resident before training starts
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
st = Trainer(cfg, rec, r, d).run()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rss": peak, "delta": peak - before, "status": st["status"]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tr, clock, _ = engine(Path(tmp) / "a", "full", epochs=3)
        eng = steady_rate(clock.times)
        # the bare loop runs on both sides of a second engine run, so drift on a shared machine evens out
        bare = bare_loop(tr, 30)
        _, clock2, _ = engine(Path(tmp) / "a2", "full", epochs=3)
        eng = max(eng, steady_rate(clock2.times))
        bare = max(bare, bare_loop(tr, 30))
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
        _, clock10, _ = engine(Path(tmp) / "c", "frozen", epochs=10)
        ten = clock10.last_epoch_end - clock10.features_from
        print(f"frozen: one feature pass {feature_pass:.2f}s; 10 epochs including their one feature pass and 10 "
              f"validations {ten:.2f}s; ratio {ten / feature_pass:.2f} (target <= 1.3)")
    full, lora = peak_rss("full"), peak_rss("lora")
    print(f"MiniLM peak RSS, 10 steps at batch 32: full {full['rss']:.0f} MB, LoRA {lora['rss']:.0f} MB "
          f"(ratio {lora['rss'] / full['rss']:.2f}); growth during training: full {full['delta']:.0f} MB, "
          f"LoRA {lora['delta']:.0f} MB (ratio {lora['delta'] / max(full['delta'], 1):.2f})")


if __name__ == "__main__":
    main()
