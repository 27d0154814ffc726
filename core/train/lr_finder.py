"""Learning-rate range test (Smith 2015, as in fastai's lr_find): raise the learning rate exponentially over a
few dozen steps on a throwaway copy of the model and suggest one where the loss falls fastest.

It runs the training loop itself (core.train.loop) with the run's own loss (class weights, focal loss, label
smoothing), batches, augmentation and mixed precision. What it sweeps is the base rate — the `lr` setting —
with every parameter group at its strategy's multiple of it (the head's 10x of differential and partial,
LoRA's floor for the new head), so the suggestion is the value to put in `lr`."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import torch

from ..config import RunConfig
from ..data.datasets import DatasetStore
from ..errors import ConfigError
from ..modalities import FeatureInputs
from ..strategies import get_strategy, group_lr
from .events import Callback, Parts
from .features import Features
from .loop import Learner, amp_dtype, optimizer
from .setup import attach_inputs, build_model, device_for, open_run, run_data


class RangeTest(Callback):
    order = -100  # sets the rates itself, in place of the schedule

    def __init__(self, start: float, end: float, steps: int, progress: Callable[[float, str], None]):
        self.start, self.steps, self.progress = start, steps, progress
        self.mult = (end / start) ** (1 / max(1, steps - 1))
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self._avg, self._best = 0.0, math.inf

    def base(self, step: int) -> float:
        return self.start * self.mult ** step

    def on_batch(self, ctx, batch):
        lr = self.base(ctx.state.step)
        for g in ctx.parts.optimizer.param_groups:
            g["lr"] = group_lr(g, lr)
        return batch

    def on_step_end(self, ctx, loss):
        i = ctx.state.step - 1
        if loss is None:
            return
        if not math.isfinite(loss):
            ctx.control.stop("completed", "The loss stopped being finite.")
            return
        self._avg = 0.9 * self._avg + 0.1 * loss
        smooth = self._avg / (1 - 0.9 ** (i + 1))
        self.lrs.append(self.base(i))
        self.losses.append(smooth)
        self._best = min(self._best, smooth)
        self.progress((i + 1) / self.steps, f"Trying learning rate {self.base(i):.1e}")
        if (smooth > 4 * self._best and i > 10) or i + 1 >= self.steps:
            ctx.control.stop("completed", "Range test done.")


def find_lr(cfg: RunConfig, datasets: DatasetStore, start: float = 1e-7, end: float = 1.0, steps: int = 60,
            progress: Callable[[float, str], None] | None = None, callbacks: list[Callback] = ()) -> dict[str, Any]:
    progress = progress or (lambda f, m: None)
    if get_strategy(cfg.train.strategy).planned:
        raise ConfigError("The range test needs a concrete strategy: 'auto' picks its own learning rate. "
                          "Choose a strategy first.")
    cfg = RunConfig.from_dict(cfg.to_dict())  # the caller's config keeps its empty backbone
    opened = open_run(cfg, datasets, progress)
    t, spec, dev = cfg.train, opened.spec, device_for(cfg)
    data = run_data(opened)
    attach_inputs(data, spec, t, progress)
    model, groups, strategy = build_model(spec, data, t, dev)
    inputs = data.inputs
    if strategy.frozen_backbone:  # the backbone never changes: its features once, as training does
        inputs = FeatureInputs(torch.from_numpy(Features(model, data, spec, t, dev, progress).pretrained()).to(dev))
    train_idx = data.idx("train")
    per_epoch = max(1, math.ceil(len(train_idx) / t.batch_size / t.grad_accum))
    t = replace(t, epochs=max(1, math.ceil(steps / per_epoch)), max_steps=steps, early_stopping_patience=0,
                log_every=1)
    test = RangeTest(start, end, steps, progress)
    opt = optimizer(groups, dev)
    scaler = torch.amp.GradScaler("cuda") if t.amp and amp_dtype(dev) == torch.float16 else None
    learner = Learner(Parts(model, opt, scaler, model), inputs, data.y, train_idx, t,
                      data.task.loss_fn(t, data.targets, train_idx, dev), lambda z: z, data.task.out_dim(data.targets),
                      dev, [test, *callbacks])
    learner.state.total_steps = steps
    learner.fit()
    return {"lrs": test.lrs, "losses": test.losses, "suggestion": suggest(test.lrs, test.losses)}


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The LR of steepest loss descent, ignoring the noisy start and the blow-up at the end."""
    if len(lrs) < 8:
        return None
    lo, hi = 3, int(np.argmin(losses)) + 1
    if hi - lo < 3:
        return float(lrs[max(0, hi - 1)] / 10)
    grad = np.gradient(np.asarray(losses[lo:hi]), np.log10(lrs[lo:hi]))
    return float(lrs[lo + int(np.argmin(grad))])
