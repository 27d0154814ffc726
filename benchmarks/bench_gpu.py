"""The engine against a bare PyTorch loop with the same model, optimiser, batches and DataLoader: images/s and
the share of time spent waiting for data. Meant for a GPU box; `--smoke` runs it in seconds on a CPU (the test
suite does, so the script keeps working where CI has no GPU).

    .venv/bin/python benchmarks/bench_gpu.py                         # MobileNetV2 on the demo digits, 224 px
    .venv/bin/python benchmarks/bench_gpu.py --image-size 128 --batch-size 128 --steps 300
    .venv/bin/python benchmarks/bench_gpu.py --smoke                 # tiny CNN, a few steps, CPU
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(data, spec, t, device: torch.device, steps: int, workers: int, same_step: bool = False) -> dict:
    """What a person would write by hand: the same DataLoader plans and batches, then forward, backward and a
    plain AdamW step. same_step: the engine's own step instead (fused AdamW, gradients clipped as the run's
    settings say), so the difference left is the engine's bookkeeping alone."""
    from core.strategies import get_strategy
    from core.train.loader import batches, plans
    from core.train.loop import amp_dtype, optimizer
    from core.train.setup import seed_everything

    seed_everything(t.seed)
    model = spec.build(len(data.classes)).to(device)
    groups = get_strategy(t.strategy).prepare(model, t, spec.modality)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = optimizer(groups, device) if same_step else torch.optim.AdamW(groups, lr=groups[0]["lr"])
    clip = [p for g in groups for p in g["params"]] if same_step and t.max_grad_norm else None
    amp = amp_dtype(device) if t.amp else None
    train = data.idx("train")
    model.train()
    done, waited, examples = 0, 0.0, 0
    start = None
    while done < steps:
        gen = torch.Generator().manual_seed(done)
        order = train[torch.randperm(len(train), generator=gen)]
        made = batches(plans(order, t.batch_size, gen, data.inputs, t.augment, False), data.inputs, True, workers,
                       device.type == "cuda")
        while done < steps:
            w = time.perf_counter()
            got = next(made, None)
            if got is None:
                break
            plan, inputs = got
            if start is not None:
                waited += time.perf_counter() - w
            x = inputs["pixel_values"].to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = data.y[plan.idx].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = torch.nn.functional.cross_entropy(model(pixel_values=x).float(), y)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(clip, t.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done == 3:  # after warm-up
                _sync(device)
                start, waited, examples = time.perf_counter(), 0.0, 0
            elif start is not None:
                examples += len(plan.idx)
    _sync(device)
    wall = time.perf_counter() - start
    return {"steps_per_s": (done - 3) / wall, "images_per_s": examples / wall, "data_wait_share": waited / wall}


def engine(home: Path, source: str, overrides: dict, steps: int) -> dict:
    from core.config import RunConfig
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore
    from core.train.trainer import Trainer

    datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
    cfg = RunConfig.from_dict({"data": {"source": source}, "train": {**overrides, "max_steps": steps, "epochs": 1000,
                                                                     "baseline": False, "blend": False,
                                                                     "early_stopping_patience": 0, "hflip": True}})
    from core.data.datasets import open_source

    rec = runs.create(cfg, open_source(datasets, source).id)
    st = Trainer(cfg, rec, runs, datasets).run()
    assert st["status"] == "completed", st.get("reason")
    ev = [e for e in rec.events() if e["kind"] == "step"]
    t = [e["time"] for e in ev]
    skip = 3 if len(ev) > 6 else 1
    wall = t[-1] - t[skip]
    per = [e["data"] for e in ev[skip + 1:]]
    return {"steps_per_s": (ev[-1]["step"] - ev[skip]["step"]) / wall,
            "images_per_s": sum(p["examples_per_s"] for p in per) / max(1, len(per)),
            "data_wait_share": sum(p["data_wait_share"] for p in per) / max(1, len(per))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny CNN, a few steps, on whatever device there is")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    from core.backbones import get_backbone
    from core.config import RunConfig
    from core.data.datasets import DatasetStore
    from core.train.setup import load_run_data, pick_device

    backbone = "tiny-cnn" if args.smoke else "mobilenet_v2"
    steps = 8 if args.smoke else args.steps
    size = 32 if args.smoke else args.image_size
    source = str(ROOT / "assets" / "demo" / "digits")
    overrides = {"backbone": backbone, "strategy": "full", "image_size": size, "batch_size": args.batch_size,
                 "loader_workers": args.workers}
    device = pick_device("auto")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cfg = RunConfig.from_dict({"data": {"source": source}, "train": {**overrides}})
        data = load_run_data(cfg, DatasetStore(home / "datasets"))
        workers = args.workers if args.workers is not None else data.inputs.loader_workers(True)
        bare = bare_loop(data, get_backbone(backbone), cfg.train, device, steps, workers)
        same = bare_loop(data, get_backbone(backbone), cfg.train, device, steps, workers, same_step=True)
        ours = engine(home, source, overrides, steps)
    out = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "backbone": backbone,
           "image_size": size, "batch_size": args.batch_size, "loader_workers": workers, "bare": bare,
           "bare_same_step": same, "engine": ours,
           "engine_vs_bare_steps": ours["steps_per_s"] / bare["steps_per_s"],
           "engine_vs_same_step_bare": ours["steps_per_s"] / same["steps_per_s"]}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
