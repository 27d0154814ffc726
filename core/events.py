"""The trainer emits typed events; metric history, checkpoints, logs and the UI feed are callbacks."""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trainer import Trainer

EVENT_KINDS = ("run_start", "progress", "epoch_start", "step", "eval", "epoch_end", "checkpoint", "warning",
               "run_end")


@dataclass
class Event:
    kind: str
    epoch: int = 0
    step: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        assert self.kind in EVENT_KINDS, self.kind

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=float)


class Control:
    """The one way to stop a run: the Stop button, early stopping and the NaN guard all set it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.should_stop = False
        self.status: str | None = None
        self.reason = ""

    def stop(self, status: str = "stopped", reason: str = "Stopped by the user.") -> None:
        with self._lock:
            if not self.should_stop:
                self.should_stop, self.status, self.reason = True, status, reason


class Callback:
    order = 0

    def on_event(self, ev: Event, trainer: "Trainer") -> None:
        pass


class JsonlLog(Callback):
    """Every event as one JSON line; the UI and a restarted server read history from here."""
    order = 100

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_event(self, ev, trainer):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(ev.to_json() + "\n")


class MemoryFeed(Callback):
    """Events kept in memory for `events_since(n)` polling; thread-safe append-only list."""
    order = 100

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def on_event(self, ev, trainer):
        with self._lock:
            self.events.append(ev)

    def since(self, n: int) -> list[Event]:
        with self._lock:
            return self.events[n:]


class NanGuard(Callback):
    order = -10

    def on_event(self, ev, trainer):
        if ev.kind == "step" and not math.isfinite(ev.data.get("loss", 0.0)):
            trainer.control.stop("diverged", f"Training diverged at step {ev.step} (loss is {ev.data['loss']}). "
                                             "Lower the learning rate (try 10x smaller) and start again.")


class EarlyStopping(Callback):
    order = -5

    def __init__(self, patience: int):
        self.patience = patience

    def on_event(self, ev, trainer):
        if ev.kind == "eval" and ev.data.get("split") == "val" and self.patience:
            last = trainer.state.epoch + 1 >= trainer.t.epochs  # the run ends anyway: no early stop to report
            if not last and trainer.state.epoch - trainer.state.best_epoch >= self.patience:
                trainer.control.stop("completed", f"Early stopping: no validation improvement for "
                                                  f"{self.patience} epoch(s).")


def read_events(path: Path, since: int = 0) -> list[dict[str, Any]]:
    """Events from a run's log; a half-written last line (crash mid-write) is skipped."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i < since:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    except FileNotFoundError:
        pass
    return out
