"""Background runs in their own processes, one per device, fed from a queue kept in the run store.

The studio's dispatcher thread starts a worker process (core.runs.worker) per run — one at a time per GPU, one on
CPU — watches it, and records how it ended. A worker that dies (killed, out of memory, crashed) fails its run
with a plain reason; the server keeps serving. Workers outlive the server: a restarted server re-attaches to
those still training, marks the dead ones "interrupted at step k", and starts the queued runs in order.
The UI never touches a worker: it holds a run id and reads the run folder.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import access
from ..config import RunConfig
from ..data.datasets import DatasetStore
from ..errors import RunError
from ..fsutil import read_json
from ..train.setup import open_run
from .folder import RunFolder
from .store import ACTIVE, FINAL, RunStore, pid_alive
from .worker import request_stop

STALE_S = 300  # a worker that has not written its status for this long is not trusted to be alive


def prepare_run(cfg: RunConfig, datasets: DatasetStore, runs: RunStore, owner: str | None) -> RunFolder:
    """Everything checked before a run folder exists: the data loads, the backbone exists and fits it (the
    data's default backbone when none is named)."""
    ds = open_run(cfg, datasets, owner=owner).ds
    if not Path(cfg.data.source).exists():
        cfg.data.source = ds.id
    return runs.create(cfg, ds.id, owner=owner)


def visible_devices() -> list[str]:
    """FTS_DEVICES (e.g. "cuda:0,cuda:1" or "cpu"), else every visible GPU, else the CPU."""
    if os.environ.get("FTS_DEVICES"):
        return [d.strip() for d in os.environ["FTS_DEVICES"].split(",") if d.strip()]
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # no usable CUDA runtime: the CPU it is
        n = 0
    return [f"cuda:{i}" for i in range(n)] or ["cpu"]


def is_worker(pid: int | None) -> bool:
    """A live process that is one of our workers (a reused pid is not)."""
    if not pid_alive(pid):
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    return b"core.runs.worker" in cmd or b"torchrun" in cmd or b"torch.distributed.run" in cmd


def death_reason(code: int | None, status: dict[str, Any]) -> str:
    """Why a worker ended without recording an outcome, in words a person can act on."""
    bs = status.get("batch_size") or _train_setting(RunFolder(status.get("dir", "")), "batch_size")
    smaller = f" batch size {max(1, int(bs) // 2)}" if bs else " a smaller batch size"
    if code is not None and code < 0:
        sig = -code
        if sig == signal.SIGKILL:
            return (f"The training process was killed (signal 9) at step {status.get('step', 0)} — most likely the "
                    f"machine ran out of memory. Try{smaller}, a smaller image size or max length, or the frozen or "
                    "LoRA strategy; resume continues from the last checkpoint.")
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        return (f"The training process crashed ({name}) at step {status.get('step', 0)}. Details are in "
                "worker.log in the run folder; resume continues from the last checkpoint.")
    return (f"The training process exited unexpectedly (code {code}) at step {status.get('step', 0)}. Details are "
            "in worker.log in the run folder.")


@dataclass
class Active:
    run_id: str
    devices: list[str]  # the GPUs (or the CPU) it holds
    proc: subprocess.Popen | None = None  # a worker this server started
    pid: int | None = None  # a worker a previous server started (re-attached)


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
            st = self.run.status
            if st.get("status") in FINAL and not self.manager.is_active(self.id):
                return st
            time.sleep(0.5)
        return self.run.status


class RunManager:
    """Process-wide: a queue in the run store and a worker process per device."""

    def __init__(self, runs: RunStore, datasets: DatasetStore, devices: list[str] | None = None,
                 poll_s: float = 0.5, scan_s: float = 2.0):
        self.runs, self.datasets, self.poll, self.scan_s = runs, datasets, poll_s, scan_s
        self._scanned = 0.0
        self.devices = devices or visible_devices()
        self.active: dict[str, Active] = {}
        self._lock = threading.RLock()
        self._wake, self._halt = threading.Event(), threading.Event()
        self._dispatch_lock = self._claim_dispatch()
        self.interrupted = self._adopt()
        self._thread = threading.Thread(target=self._loop, name="fts-dispatch", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ what pages call
    def submit(self, cfg: RunConfig, owner: str | None = None) -> RunHandle:
        """Validate, record, queue; returns at once. owner: the studio user starting it (see core.access)."""
        rec = prepare_run(cfg, self.datasets, self.runs, owner)
        self.runs.set_status(rec, "queued", queued_at=time.time())
        self._wake.set()
        return RunHandle(rec, self)

    def resume(self, run_id: str, owner: str | None = None) -> RunHandle:
        rec = self.runs.get(run_id, viewer=owner)
        if not access.can_change(rec.dir, owner):
            raise RunError(f"Run {run_id} belongs to someone else: only its owner can resume it.")
        st = rec.status.get("status")
        if st == "completed":
            raise RunError(f"Run {run_id} already completed.")
        if st in ACTIVE or self.is_active(run_id):
            raise RunError(f"Run {run_id} is already active.")
        self.runs.set_status(rec, "queued", reason="", resume=True, queued_at=time.time())
        self._wake.set()
        return RunHandle(rec, self)

    def handle(self, run_id: str) -> RunHandle | None:
        try:
            return RunHandle(self.runs.get(run_id), self)
        except RunError:
            return None

    def queued(self) -> list[RunFolder]:
        recs = []
        for d in self.runs.root.iterdir():
            st = RunFolder(d).status if d.is_dir() else None
            if st and st.get("status") == "queued":
                recs.append((st.get("queued_at") or st.get("created") or 0, d.name))
        return [RunFolder(self.runs.root / rid) for _, rid in sorted(recs)]

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to start; None when not waiting."""
        ids = [r.id for r in self.queued()]
        return ids.index(run_id) + 1 if run_id in ids else None

    def is_active(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self.active

    def free_devices(self) -> list[str]:
        with self._lock:
            used = {d for a in self.active.values() for d in a.devices}
        return [d for d in self.devices if d not in used]

    def stop(self, run_id: str, owner: str | None = None) -> bool:
        rec = self.runs.get(run_id)
        if not access.can_change(rec.dir, owner):
            raise RunError(f"Run {run_id} belongs to someone else: only its owner can stop it.")
        st = rec.status
        if st.get("status") == "queued":
            self.runs.set_status(rec, "stopped", reason="Stopped before it started.")
            return True
        if st.get("status") != "running":
            return False
        request_stop(rec.dir)  # honoured at the next step, by this server's worker or one it re-attached to
        return True

    def shutdown(self, timeout: float = 10, stop_runs: bool = False) -> None:
        """Stop dispatching. Workers go on (they outlive the server) unless stop_runs."""
        if stop_runs:
            with self._lock:
                active = list(self.active)
            for rid in active:
                self.stop(rid)
        self._halt.set()
        self._wake.set()
        self._thread.join(timeout)
        if stop_runs:
            deadline = time.time() + timeout
            for a in list(self.active.values()):
                if a.proc is not None:
                    try:
                        a.proc.wait(max(0.1, deadline - time.time()))
                    except subprocess.TimeoutExpired:
                        os.killpg(a.proc.pid, signal.SIGKILL)
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

    def _adopt(self) -> list[str]:
        """Re-attach to workers still training; runs whose worker is gone are interrupted, with the step."""
        out = []
        for d in self.runs.root.iterdir():
            st = RunFolder(d).status if d.is_dir() else None
            if not st or st.get("status") != "running":
                continue
            pid = st.get("pid")
            fresh = time.time() - st.get("heartbeat", st.get("updated", 0)) < STALE_S
            if is_worker(pid) and fresh:  # still training: its devices stay taken
                held = [x for x in st.get("devices", []) if x in self.devices] or self.free_devices()[:1]
                self.active[d.name] = Active(d.name, held, pid=pid)
                continue
            rec = RunFolder(d)
            self.runs.set_status(rec, "interrupted", reason=f"Interrupted at step {st.get('step', 0)}: the training "
                                 "process stopped while the server was down. Resume continues from the last "
                                 "checkpoint.")
            out.append(d.name)
        return out

    def _loop(self) -> None:
        woken = True
        while not self._halt.is_set():
            try:
                self._tick(woken)
            except Exception:  # the dispatcher must outlive any one odd run folder
                import logging
                import traceback

                logging.getLogger("finetune_studio").error("dispatcher: %s", traceback.format_exc())
            woken = self._wake.wait(self.poll)
            self._wake.clear()

    def _tick(self, woken: bool = True) -> None:
        """Watch the workers (cheap: a poll of each process); look at the queue when woken (a submit, a finished
        run) or every few seconds (runs queued by another process), not on every tick: a training worker on the
        same cores should not pay for the dispatcher's curiosity."""
        with self._lock:
            for a in list(self.active.values()):
                self._check(a)
            if self._dispatch_lock is None or not self.free_devices():
                return
            if not woken and time.time() - self._scanned < self.scan_s:
                return
            self._scanned = time.time()
            for rec in self.queued():  # strictly in order: a run waiting for two GPUs is not overtaken
                need = self._needs(rec)
                free = self.free_devices()
                if len(free) < need:
                    break
                self._start(free[:need], rec)

    def _needs(self, rec: RunFolder) -> int:
        """GPUs a run takes (its processes); on a CPU-only machine every run takes the one CPU slot."""
        procs = _train_setting(rec, "processes") or 1
        return min(int(procs), len(self.devices)) if self.devices[0].startswith("cuda") else 1

    def _start(self, devices: list[str], rec: RunFolder) -> None:
        rec.control_file.unlink(missing_ok=True)
        st = rec.status
        procs = _train_setting(rec, "processes") or 1
        worker = ["-m", "core.runs.worker", str(rec.dir), "--datasets", str(self.datasets.root)]
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] if procs > 1 else []
        cmd = [sys.executable, *launcher, *worker] + (["--resume"] if st.get("resume") else [])
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": _root_on_path()}
        gpus = [d.split(":")[1] for d in devices if d.startswith("cuda:")]
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        log = open(rec.worker_log, "ab")
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)  # its own session: it outlives the server
        except OSError as e:
            self.runs.set_status(rec, "failed", reason=f"Could not start the training process: {e}.")
            return
        finally:
            log.close()
        self.runs.set_status(rec, "running", resume=False, devices=devices, worker_pid=proc.pid, pid=proc.pid,
                             heartbeat=time.time(), started=time.time(), reason="")
        self.active[rec.id] = Active(rec.id, devices, proc=proc)

    def _check(self, a: Active) -> None:
        rec = RunFolder(self.runs.root / a.run_id)
        if a.proc is not None:
            code = a.proc.poll()
            if code is None:
                return
        elif is_worker(a.pid):
            return
        else:
            code = None
        st = rec.status
        if st.get("status") in ACTIVE:  # it died before it could say how it ended
            reason = death_reason(code, {**st, "dir": str(rec.dir)}) if a.proc is not None else \
                f"Interrupted at step {st.get('step', 0)}: the training process stopped. Resume continues from " \
                "the last checkpoint."
            self.runs.set_status(rec, "failed" if a.proc is not None else "interrupted", reason=reason,
                                 finished=time.time())
        self.active.pop(a.run_id, None)
        self._wake.set()


def _root_on_path() -> str:
    """Workers import core from this checkout even when the server was started from elsewhere."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])


def _train_setting(rec: RunFolder, name: str):
    """A setting as the run's config.json holds it (read raw: a config an older version wrote still answers)."""
    return (read_json(rec.config_file, {}) or {}).get("train", {}).get(name)
