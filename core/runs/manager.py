"""The studio's dispatcher: one per server process, it starts the queue's studio runs in worker processes
(core.runs.worker) and watches them; pages hold a RunHandle and read the run folder."""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from .. import access
from ..config import RunConfig
from ..data.datasets import DatasetStore
from ..errors import RunError
from .folder import RunFolder
from .lifecycle import FINAL, Entry, claim, visible_devices
from .runner import check_resumable, death_reason, enqueue, launch, prepare_run, run_settings, stop
from .store import RunStore

log = logging.getLogger("finetune_studio")


class RunHandle:
    """What a page or a test holds for a run: its status and events, read from the run folder."""

    def __init__(self, run: RunFolder, manager: "RunManager"):
        self.run, self.manager = run, manager

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def status(self) -> dict[str, Any]:
        return self.run.status

    def events_since(self, n: int) -> list[dict[str, Any]]:
        return self.run.events(n)

    def stop(self) -> None:
        self.manager.stop(self.id)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.time() + timeout
        while deadline is None or time.time() < deadline:
            st = self.manager.runs.reconcile(self.run)
            if st.get("status") in FINAL and not self.manager.is_active(self.id):
                return st
            time.sleep(0.5)
        return self.run.status


@dataclass
class Child:
    run_id: str
    proc: subprocess.Popen


class RunManager:
    """Process-wide: starts the queue's studio runs in worker processes and watches them."""

    def __init__(self, runs: RunStore, datasets: DatasetStore, devices: list[str] | None = None,
                 poll_s: float = 0.5, scan_s: float = 2.0):
        self.runs, self.datasets, self.poll, self.scan_s = runs, datasets, poll_s, scan_s
        self._scanned = 0.0
        self.devices = devices or visible_devices()
        self.children: dict[str, Child] = {}
        self._lock = threading.RLock()
        self._wake, self._halt = threading.Event(), threading.Event()
        self._dispatch_lock = self._claim_dispatch()
        self.interrupted = self._settle_all()
        self._thread = threading.Thread(target=self._loop, name="fts-dispatch", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ what pages call
    def submit(self, cfg: RunConfig, owner: str | None = None) -> RunHandle:
        """Validate, record, queue; returns at once. owner: the studio user starting it (see core.access)."""
        rec = prepare_run(cfg, self.datasets, self.runs, owner)
        enqueue(self.runs, rec, "studio")
        self._wake.set()
        return RunHandle(rec, self)

    def resume(self, run_id: str, owner: str | None = None) -> RunHandle:
        rec = self.runs.get(run_id, viewer=owner)
        if not access.can_change(rec.dir, owner):
            raise RunError(f"Run {run_id} belongs to someone else: only its owner can resume it.")
        with self.runs.queue.locked():
            check_resumable(self.runs, rec)
            enqueue(self.runs, rec, "studio", resume=True)
        self._wake.set()
        return RunHandle(rec, self)

    def handle(self, run_id: str) -> RunHandle | None:
        try:
            return RunHandle(self.runs.get(run_id), self)
        except RunError:
            return None

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to start; None when not waiting."""
        return self.runs.queue.position(run_id)

    def is_active(self, run_id: str) -> bool:
        return self.runs.queue.get(run_id) is not None or run_id in self.children

    def stop(self, run_id: str, owner: str | None = None) -> bool:
        rec = self.runs.get(run_id)
        if not access.can_change(rec.dir, owner):
            raise RunError(f"Run {run_id} belongs to someone else: only its owner can stop it.")
        try:
            stop(self.runs, rec)
        except RunError:
            return False
        return True

    def shutdown(self, timeout: float = 10, stop_runs: bool = False) -> None:
        """Stop dispatching. Workers go on (they outlive the server) unless stop_runs."""
        if stop_runs:
            for rid in list(self.children):
                self.stop(rid)
        self._halt.set()
        self._wake.set()
        self._thread.join(timeout)
        if stop_runs:
            deadline = time.time() + timeout
            for c in list(self.children.values()):
                try:
                    c.proc.wait(max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    os.killpg(c.proc.pid, signal.SIGKILL)
        if self._dispatch_lock is not None:
            self._dispatch_lock.close()

    # ------------------------------------------------------------------ the dispatcher
    def _claim_dispatch(self):
        """One server dispatches a run store's queue; another on the same store only watches."""
        f = open(self.runs.root / ".dispatch.lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return None
        return f

    def _settle_all(self) -> list[str]:
        """Runs left queued or running by processes that are gone read as interrupted; live ones go on."""
        out = []
        for rec in self.runs.folders():
            before = rec.status.get("status")
            if before in ("queued", "running") and self.runs.reconcile(rec).get("status") == "interrupted":
                out.append(rec.id)
        return out

    def _loop(self) -> None:
        woken = True
        while not self._halt.is_set():
            try:
                self._tick(woken)
            except Exception:  # the dispatcher must outlive any one odd run folder
                log.error("dispatcher: %s", traceback.format_exc())
            woken = self._wake.wait(self.poll)
            self._wake.clear()

    def _tick(self, woken: bool = True) -> None:
        """Watch this server's workers (cheap: a poll of each process); look at the queue when woken (a submit, a
        finished run) or every few seconds (runs queued by another process), not on every tick: a training
        worker on the same cores should not pay for the dispatcher's curiosity."""
        with self._lock:
            for c in list(self.children.values()):
                self._check(c)
            if self._dispatch_lock is None:
                return
            if not woken and time.time() - self._scanned < self.scan_s:
                return
            self._scanned = time.time()
            with self.runs.queue.locked():
                entries = self.runs.queue.entries()
                for e in entries:
                    self.runs.reconcile(RunFolder(self.runs.root / e.run_id))
                head = next((e for e in self.runs.queue.entries() if e.state == "queued"), None)
                if head is None or head.runner != "studio":
                    return  # the head's own command claims it
                devices = claim(self.runs.queue, head.run_id, self.devices)
                if devices is None:
                    return
            self._start(head, devices)

    def _start(self, e: Entry, devices: list[str]) -> None:
        rec = RunFolder(self.runs.root / e.run_id)
        rec.control_file.unlink(missing_ok=True)
        try:
            proc = launch(rec, devices, self.datasets.root, e.resume)
        except OSError as err:
            self.runs.queue.drop(e.run_id)
            self.runs.set_status(rec, "failed", reason=f"Could not start the training process: {err}.")
            return
        self.runs.set_status(rec, "running", resume=False, devices=devices, worker_pid=proc.pid, pid=proc.pid,
                             heartbeat=time.time(), started=time.time(), reason="")
        self.children[e.run_id] = Child(e.run_id, proc)
        self._wake.set()  # another device may be free for the next run

    def _check(self, c: Child) -> None:
        code = c.proc.poll()
        if code is None:
            return
        rec = RunFolder(self.runs.root / c.run_id)
        st = rec.status
        if st.get("status") in ("queued", "running"):  # it died before it could say how it ended
            self.runs.set_status(rec, "failed", reason=death_reason(code, st, run_settings(rec).get("batch_size")),
                                 finished=time.time())
        self.runs.queue.drop(c.run_id)
        self.children.pop(c.run_id, None)
        self._wake.set()
