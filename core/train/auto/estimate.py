"""What a plan costs on this device: a short forward pass and a few real training steps of the candidate on a
few real examples, scaled to the data and the epochs."""
from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from ...backbones import BackboneSpec
from ...data.rundata import RunData
from ...strategies import get_strategy
from ..loop import optimizer


def time_forward(model, batch: dict[str, torch.Tensor], device: torch.device, repeats: int = 2) -> float:
    """Seconds for one forward pass of this batch (the best of a few, after a warm-up)."""
    model.eval()
    batch = {k: v.to(device) for k, v in batch.items()}
    best = math.inf
    with torch.no_grad():
        model.features(**batch)
        for _ in range(repeats):
            t = time.perf_counter()
            model.features(**batch)
            best = min(best, time.perf_counter() - t)
    return best


def time_step(model, groups, batch: dict[str, torch.Tensor], device: torch.device, repeats: int = 2) -> float:
    """Seconds for one training step on this batch (forward, backward, AdamW), after a warm-up."""
    model.train()
    opt = optimizer(groups, device, lr=1e-9)
    batch = {k: v.to(device) for k, v in batch.items()}
    best = math.inf
    for i in range(repeats + 1):
        t = time.perf_counter()
        out = model(**batch)
        out.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def speeds(spec: BackboneSpec, t, strategy: str, sample: list, device: torch.device, data: RunData
           ) -> tuple[float, float]:
    """(seconds of forward pass per example, seconds of training step per example) on this device."""
    model = spec.build(data.task.out_dim(data.targets), pooling=t.pooling, keep_layers=t.keep_layers).to(device)
    pre = data.modality.preprocessor(spec, t)
    batch, ok, _ = pre.batch(sample)
    if batch is None:
        return 0.0, 0.0
    fwd = time_forward(model, batch, device) / len(ok)
    step = 0.0
    if not get_strategy(strategy).fits_head:
        groups = get_strategy(strategy).prepare(model, replace(t, strategy=strategy, strategy_args={}), spec.modality)
        step = time_step(model, groups, batch, device) / len(ok)
    del model
    return fwd, step


TAIL_S = 15.0  # every plan's fixed part: the baseline, the partner's fit, the test and saving
CROSSFIT_S = 40.0  # a solved head's cross-fitting (core.train.crossfit): 24-27 s on the digit sets (1,280 features, 10 classes)


def estimate(strategy_trains: bool, n_rows: int, n_train: int, n_val: int, epochs: int, batch_size: int,
             s_forward_each: float, s_step_each: float, crossfit: bool = False, mirrored: int = 0) -> float:
    """Seconds for a plan: the forward passes it needs over every row (pretrained features for the frozen head
    and the blend's partner) and over the mirrored images whose check decides flips (core.train.checks.mirror),
    a solved head's cross-fitting, then, if the backbone trains, its steps and each epoch's validation."""
    total = (n_rows + mirrored) * s_forward_each + (CROSSFIT_S if crossfit and not strategy_trains else 0.0)
    if strategy_trains:
        steps = epochs * math.ceil(n_train / batch_size)
        total += steps * s_step_each * batch_size + epochs * n_val * s_forward_each
    return total * 1.1 + TAIL_S
