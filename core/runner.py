"""Background runs: one worker thread per device, a FIFO queue for the rest, handles to poll and stop.

The UI never touches the thread: it holds a run id, calls handle methods, and reads the run folder.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import access
from .config import RunConfig
from .datasets import DatasetStore, open_source
from .errors import RunError
from .events import Control, MemoryFeed
from .store import FINAL, RunRecord, RunStore
from .trainer import Trainer


def prepare_run(cfg: RunConfig, datasets: DatasetStore, runs: RunStore, owner: str | None) -> RunRecord:
    """Everything checked before a run folder exists: the data loads, the backbone exists and fits it (the
    data's default backbone when none is named)."""
    from pathlib import Path

    from .backbones import get_backbone
    from .modalities import get_modality
    from .rundata import check_backbone

    ds = open_source(datasets, cfg.data.source, cfg.data.text_col, cfg.data.label_col, owner=owner)
    if not cfg.train.backbone:
        cfg.train.backbone = get_modality(ds.modality).default_backbone
    check_backbone(get_backbone(cfg.train.backbone), ds)
    if not Path(cfg.data.source).exists():
        cfg.data.source = ds.id
    return runs.create(cfg, ds.id, owner=owner)


@dataclass
class RunHandle:
    run: RunRecord
    resume: bool = False
    control: Control = field(default_factory=Control)
    feed: MemoryFeed = field(default_factory=MemoryFeed)
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.run.id

    def stop(self) -> None:
        self.control.stop("stopped", "Stopped by the user.")

    @property
    def status(self) -> dict[str, Any]:
        return self.run.status

    def events_since(self, n: int) -> list[Any]:
        return self.feed.since(n)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        self.done.wait(timeout)
        return self.run.status


class RunManager:
    """Process-wide: maps run id -> handle and feeds one worker per device from a FIFO queue."""

    def __init__(self, runs: RunStore, datasets: DatasetStore, workers: int = 1):
        self.runs, self.datasets = runs, datasets
        self._queue: queue.Queue[RunHandle | None] = queue.Queue()
        self._handles: dict[str, RunHandle] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self.interrupted = runs.mark_interrupted(live=set())
        self._threads = [threading.Thread(target=self._work, name=f"fts-worker-{i}", daemon=True)
                         for i in range(workers)]
        for th in self._threads:
            th.start()

    def submit(self, cfg: RunConfig, owner: str | None = None) -> RunHandle:
        """Validate, record, queue; returns at once. owner: the studio user starting it (see core.access)."""
        return self._enqueue(RunHandle(prepare_run(cfg, self.datasets, self.runs, owner)))

    def resume(self, run_id: str, owner: str | None = None) -> RunHandle:
        rec = self.runs.get(run_id, viewer=owner)
        if not access.can_change(rec.dir, owner):
            raise RunError(f"Run {run_id} belongs to someone else: only its owner can resume it.")
        with self._lock:
            h = self._handles.get(run_id)
            if h and not h.done.is_set():
                raise RunError(f"Run {run_id} is already active.")
        st = rec.status.get("status")
        if st == "completed":
            raise RunError(f"Run {run_id} already completed.")
        self.runs.set_status(rec, "queued", reason="")
        return self._enqueue(RunHandle(rec, resume=True))

    def _enqueue(self, h: RunHandle) -> RunHandle:
        with self._lock:
            self._handles[h.id] = h
            self._order.append(h.id)
        self._queue.put(h)
        return h

    def handle(self, run_id: str) -> RunHandle | None:
        with self._lock:
            return self._handles.get(run_id)

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to start; None when not waiting."""
        with self._lock:
            waiting = [r for r in self._order if self._handles[r].run.status.get("status") == "queued"]
        return waiting.index(run_id) + 1 if run_id in waiting else None

    def stop(self, run_id: str, owner: str | None = None) -> bool:
        h = self.handle(run_id)
        if h is None or h.done.is_set():
            return False
        if not access.can_change(h.run.dir, owner):
            raise RunError(f"Run {run_id} belongs to someone else: only its owner can stop it.")
        h.stop()
        if h.run.status.get("status") == "queued":
            self.runs.set_status(h.run, "stopped", reason="Stopped before it started.")
        return True

    def _work(self) -> None:
        while True:
            h = self._queue.get()
            if h is None:
                return
            try:
                if h.control.should_stop or h.run.status.get("status") in FINAL:
                    continue
                cfg = RunConfig.load(h.run.dir)
                trainer = Trainer(cfg, h.run, self.runs, self.datasets, control=h.control, callbacks=[h.feed])
                h.result = trainer.run(resume=h.resume)
            except Exception as e:  # a broken config file: the run fails, the worker lives on
                self.runs.set_status(h.run, "failed", reason=f"Could not start: {e}")
            finally:
                with self._lock:
                    if h.id in self._order:
                        self._order.remove(h.id)
                h.done.set()

    def shutdown(self, timeout: float = 10) -> None:
        for h in list(self._handles.values()):
            h.stop()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.time() + timeout
        for th in self._threads:
            th.join(max(0.0, deadline - time.time()))
