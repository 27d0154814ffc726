"""Keeps status.json current (progress, heartbeat) so other processes and a restarted server can tell."""
from __future__ import annotations

import time

from ..events import Callback


class StatusHeartbeat(Callback):
    order = 50

    def __init__(self, store, record, every_s: float = 2.0):
        self.store, self.record, self.every, self.last = store, record, every_s, 0.0

    def on_event(self, ctx, ev):
        if ev.kind == "run_end":
            return
        now = time.time()
        if ev.kind in ("epoch_end", "run_start") or now - self.last >= self.every:
            self.last = now
            extra = {"message": ev.data["message"]} if ev.kind == "progress" else {}
            if ctx is not None:  # the plan's progress comes before the loop has a state
                extra.update(step=ctx.state.step, epoch=ctx.state.epoch, total_steps=ctx.state.total_steps)
            self.store.set_status(self.record, "running", heartbeat=now, **extra)
