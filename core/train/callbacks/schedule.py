"""Warm-up then cosine/linear/constant: every parameter group at its initial rate times the schedule's factor
for the current step. Groups added mid-run (gradual unfreezing) simply join."""
from __future__ import annotations

from ..events import Callback
from ..loop import schedule_fn


class Schedule(Callback):
    order = -100  # before anything that reads the rate

    def __init__(self, kind: str, warmup_ratio: float):
        self.kind, self.warmup_ratio, self.f = kind, warmup_ratio, None

    def _apply(self, ctx) -> None:
        factor = self.f(ctx.state.step)
        for g in ctx.parts.optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
            g["lr"] = g["initial_lr"] * factor

    def on_fit_start(self, ctx):
        self.f = schedule_fn(self.kind, ctx.state.total_steps, self.warmup_ratio)
        self._apply(ctx)

    def on_epoch_start(self, ctx):
        self._apply(ctx)

    def on_step_end(self, ctx, loss):
        self._apply(ctx)
