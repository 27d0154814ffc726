"""Warm-up then cosine/linear/constant: every parameter group at its initial rate times the schedule's factor
for the current step. Groups added mid-run (gradual unfreezing) simply join."""
from __future__ import annotations

from ..events import Callback
from ..loop import schedule_fn


class Schedule(Callback):
    order = -100  # before anything that reads the rate

    def __init__(self, kind: str, warmup_ratio: float):
        self.kind, self.warmup_ratio, self.f, self.total, self.warm = kind, warmup_ratio, None, 0, None

    def _apply(self, ctx) -> None:
        factor = self.f(ctx.state.step)
        for g in ctx.parts.optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
            g["lr"] = g["initial_lr"] * factor

    def on_fit_start(self, ctx):
        self.total = ctx.state.total_steps
        self.f = schedule_fn(self.kind, self.total, self.warmup_ratio)
        self.warm = int(self.total * self.warmup_ratio)
        self._apply(ctx)

    def on_epoch_start(self, ctx):
        if ctx.state.total_steps != self.total:  # the epochs were re-fitted to the time budget: a new horizon,
            self.total = ctx.state.total_steps  # the warm-up already done kept as it was
            self.f = schedule_fn(self.kind, self.total, self.warmup_ratio, self.warm)
        self._apply(ctx)

    def on_step_end(self, ctx, loss):
        self._apply(ctx)
