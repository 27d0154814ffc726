"""Events out, control in. The loop emits typed events (the UI, the CLI and the report read them from
events.jsonl); callbacks hook the loop's steps with a narrow context (config, state, control, run folder), as
transformers' TrainerCallback(args, state, control) does; the Stop button, early stopping and the guards all
stop a run through the one Control."""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..config import TrainConfig
    from ..runs.folder import RunFolder

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


class StoppedWhilePlanning(Exception):
    """A Stop that arrived before the first training step (features, a tuned encoder, a solved head): the run
    ends there instead of when its loop would first look."""


class Control:
    """The one way to stop a run: the Stop button, early stopping and the guards all set it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.should_stop = False
        self.status: str | None = None
        self.reason = ""

    def stop(self, status: str = "stopped", reason: str = "Stopped by the user.") -> None:
        with self._lock:
            if not self.should_stop:
                self.should_stop, self.status, self.reason = True, status, reason


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0  # optimiser steps done
    total_steps: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    batch_size: int = 0
    grad_accum: int = 1
    improved: bool = False  # the last validation was the best so far
    train_loss: float = math.nan  # mean loss of the last epoch
    started: float = field(default_factory=time.time)
    steps_at_start: int = 0  # a resumed run's ETA counts only the steps it ran itself
    results: dict[str, Any] = field(default_factory=dict)  # what the run reports at the end (test, blend, ...)
    micro: int = 0  # micro-batches done in this epoch
    epoch_losses: list[float] = field(default_factory=list)  # step losses so far in this epoch
    gen: Any = None  # this epoch's generator (order and augmentation)
    gen_after: Any = None  # its state after the last batch trained on (saved with an in-epoch checkpoint)
    epoch_complete: bool = False  # the last epoch ran through all its batches
    resume_micro: int = 0  # an in-epoch resume: micro-batches of this epoch already done
    resume_gen: Any = None  # ... and the generator's state at that point
    extra: dict[str, Any] = field(default_factory=dict)  # callbacks' own state that a checkpoint must keep


@dataclass
class Parts:
    """What checkpointing and the range test touch: the model (and its DDP wrapper), optimiser and scaler."""
    model: Any
    optimizer: Any = None
    scaler: Any = None
    train_model: Any = None
    rewrap: Callable[[], None] = lambda: None


@dataclass
class Context:
    cfg: "TrainConfig"  # this run's resolved settings; read-only but for the epochs the time budget re-fits
    state: TrainState
    control: Control
    folder: "RunFolder | None"
    parts: Parts
    emit: Callable[..., None]
    predict: Callable[["torch.Tensor"], "np.ndarray"]  # outputs for rows, gathered across ranks
    main: bool = True


class Callback:
    """Hooks around the loop's steps; each is a no-op unless overridden. Lower `order` runs first."""
    order = 0

    def on_fit_start(self, ctx: Context) -> None: ...
    def on_epoch_start(self, ctx: Context) -> None: ...
    def on_batch(self, ctx: Context, batch: Any) -> Any:
        return batch
    def on_loss(self, ctx: Context, batch: Any, logits: Any, loss: Any) -> Any:
        """The training loss of a batch, which a callback may add to (distillation)."""
        return loss
    def on_optimizer_step(self, ctx: Context) -> None:
        """Right after the optimiser's step, while the gradients are still there."""
    def on_step_end(self, ctx: Context, loss: float | None) -> None:
        """After each step; loss is the mean since the last read, or None when it was not read at this step."""
    def on_epoch_cut(self, ctx: Context) -> None:
        """A stop ended the epoch inside it: no validation; a resume continues from this step."""
    def on_validate(self, ctx: Context) -> None: ...
    def on_epoch_end(self, ctx: Context) -> None: ...
    def on_fit_end(self, ctx: Context) -> None: ...
    def on_error(self, ctx: Context, exc: BaseException) -> bool:
        """True when handled and the epoch should be retried."""
        return False
    def on_event(self, ctx: Context, ev: Event) -> None: ...


class JsonlLog(Callback):
    """Every event as one JSON line; the UI and a restarted server read history from here."""
    order = 100

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_event(self, ctx, ev):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(ev.to_json() + "\n")


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
