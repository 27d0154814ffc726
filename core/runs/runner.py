"""Starting runs, all through one lifecycle (core.runs.lifecycle): a page's run is queued and started by the
studio's dispatcher in a worker process (core.runs.worker); a command's run — `finetune-studio train` or
`resume`, a search trial — is queued the same way and trained by that command when its turn comes (run_here).
Both wait in the same queue for the same devices, hold the run's lease while they train, and stop on the same
request. A worker that dies (killed, out of memory, crashed) fails its run with a plain reason; the server keeps
serving. Workers outlive the server: a restarted server leaves the live ones training, marks the dead ones
interrupted, and starts the queued runs in order. The UI never touches a worker: it holds a run id and reads
the run folder."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..config import RunConfig
from ..data.datasets import DatasetStore
from ..errors import RunError
from ..fsutil import atomic_write_json, read_json
from ..train.events import Callback, Control
from ..train.setup import check_split, open_run
from ..train.trainer import Trainer
from .folder import RunFolder
from .lifecycle import Entry, Lease, claim, describe_owner, owner, refuse_if_owned, visible_devices
from .store import RunStore

log = logging.getLogger("finetune_studio")
WAIT_S = 0.5


def prepare_run(cfg: RunConfig, datasets: DatasetStore, runs: RunStore, owner: str | None) -> RunFolder:
    """Everything checked before a run folder exists: the data loads, the backbone exists and fits it (the
    data's default backbone when none is named), the split can be made; then the folder, recording the dataset
    version."""
    opened = open_run(cfg, datasets, owner=owner)
    ds = opened.ds
    check_split(opened)  # a split the data cannot give is refused before a run exists
    for attr in ("source", "test_source"):  # a path as given from any folder: the config replays from anywhere
        given = getattr(cfg.data, attr)
        if given and Path(given).exists():
            setattr(cfg.data, attr, str(Path(given).resolve()))
    if not Path(cfg.data.source).exists():
        cfg.data.source = ds.id
    rec = runs.create(cfg, ds.id, owner=owner)
    if opened.test_ds is not None:
        runs.set_status(rec, "queued", test_dataset=opened.test_ds.id)
    return rec


# --------------------------------------------------------------------------- stopping
class StopRequests(Callback):
    """Watches the run's control file (a cheap stat per step and per progress message): Stop from a page or
    `finetune-studio stop` reaches whichever process trains the run."""
    order = -20

    def __init__(self, rec: RunFolder, control: Control):
        self.path, self.control, self.mtime = rec.control_file, control, 0.0

    def _check(self) -> None:
        try:
            m = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if m == self.mtime:
            return
        self.mtime = m
        try:
            ask = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return
        if ask.get("stop"):
            self.control.stop(ask.get("status", "stopped"), ask.get("reason", "Stopped by the user."))

    def on_step_end(self, ctx, loss):
        self._check()

    def on_event(self, ctx, ev):
        if ev.kind == "progress":
            self._check()


def request_stop(rec: RunFolder, reason: str = "Stopped by the user.") -> None:
    atomic_write_json(rec.control_file, {"stop": True, "status": "stopped", "reason": reason, "asked": time.time()})


def stop(runs: RunStore, rec: RunFolder) -> str:
    """Stop a run wherever it trains: a queued one leaves the queue at once; a running one stops at its next
    step. Returns what happened, in words."""
    with runs.queue.locked():
        st = runs.reconcile(rec)
        e = runs.queue.get(rec.id)
        if st.get("status") == "queued" and (e is None or e.state == "queued"):
            runs.queue.drop(rec.id)
            runs.set_status(rec, "stopped", reason="Stopped before it started.", finished=time.time())
            return "stopped before it started"
    if st.get("status") == "running":
        request_stop(rec)
        return "asked to stop at its next step"
    raise RunError(f"Run {rec.id} is {st.get('status', 'unknown')}: there is nothing to stop.")


# --------------------------------------------------------------------------- queueing
def run_settings(rec: RunFolder) -> dict[str, Any]:
    """The run's settings as its config.json holds them (read raw: a config an older version wrote answers)."""
    return (read_json(rec.config_file, {}) or {}).get("train", {})


def enqueue(runs: RunStore, rec: RunFolder, runner: str, resume: bool = False) -> Entry:
    t = run_settings(rec)
    e = Entry(rec.id, time.time(), runner, need=max(1, int(t.get("processes") or 1)),
              device=str(t.get("device") or "auto"), resume=resume)
    runs.queue.put(e)
    runs.set_status(rec, "queued", queued_at=e.queued_at, resume=resume, reason="")
    return e


def check_resumable(runs: RunStore, rec: RunFolder) -> None:
    st = runs.reconcile(rec)
    if st.get("status") == "completed":
        raise RunError(f"Run {rec.id} already completed; nothing to resume.")
    refuse_if_owned(rec)
    if runs.queue.get(rec.id) is not None:
        raise RunError(f"Run {rec.id} is already queued.")


def death_reason(code: int | None, status: dict[str, Any], batch_size: Any = None) -> str:
    """Why a worker ended without recording an outcome, in words a person can act on."""
    bs = status.get("batch_size") or batch_size
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


def launch(rec: RunFolder, devices: list[str], datasets_root: Path, resume: bool, lease_held: bool = False
           ) -> subprocess.Popen:
    """A worker process (under torchrun when the run trains with several processes), in its own session: it
    outlives the process that started it."""
    procs = max(1, int(run_settings(rec).get("processes") or 1))
    worker = ["-m", "core.runs.worker", str(rec.dir), "--datasets", str(datasets_root)]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] if procs > 1 else []
    cmd = [sys.executable, *launcher, *worker] + (["--resume"] if resume else []) + \
        (["--lease-held"] if lease_held else [])
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": _root_on_path()}
    gpus = [d.split(":")[1] for d in devices if d.startswith("cuda:")]
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    with open(rec.worker_log, "ab") as log_file:
        return subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def _root_on_path() -> str:
    """Workers import core from this checkout even when the server was started from elsewhere."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])


# --------------------------------------------------------------------------- a command's own runs
def wait_turn(runs: RunStore, rec: RunFolder, control: Control, say: Callable[[str], None]) -> list[str] | None:
    """Wait in the queue until this run is next and its devices are free; they are then its own. None when it
    was stopped while waiting."""
    devices, said = visible_devices(), None
    while True:
        with runs.queue.locked():
            for e in runs.queue.entries():  # whoever died while ahead of us leaves the queue
                if e.run_id != rec.id:
                    runs.reconcile(RunFolder(runs.root / e.run_id))
            got = claim(runs.queue, rec.id, devices)
        if got is not None:
            return got
        if rec.status.get("status") != "queued" or runs.queue.get(rec.id) is None:
            return None  # stopped from a page or `finetune-studio stop` while it waited
        if control.should_stop:
            stop(runs, rec)
            return None
        ahead = runs.queue.position(rec.id)
        busy = [e.run_id for e in runs.queue.entries() if e.state == "running"]
        note = (f"Waiting for a free device: {ahead - 1} run(s) queued ahead" if ahead else "Waiting") + \
            (f"; training now: {', '.join(busy)}" if busy else "")
        if note != said:
            say(note)
            said = note
        time.sleep(WAIT_S)


def run_here(runs: RunStore, datasets: DatasetStore, rec: RunFolder, *, resume: bool = False, kind: str = "cli",
             control: Control | None = None, callbacks: list[Callback] = (),
             say: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Queue the run and train it in this process when its turn comes (the CLI, a search trial). The lease is
    this process's from now until the run ends, so a second owner is refused and a kill -9 leaves a resumable
    run; Stop (a page, `finetune-studio stop`, Ctrl-C through control) ends it like any run."""
    control = control or Control()
    lease = Lease.take(rec, kind)
    if lease is None:
        refuse_if_owned(rec)
        raise RunError(f"Run {rec.id} is owned by another process.")
    try:
        enqueue(runs, rec, "self", resume)
        devices = wait_turn(runs, rec, control, say)
        if devices is None:
            return rec.status
        rec.control_file.unlink(missing_ok=True)
        if max(1, int(run_settings(rec).get("processes") or 1)) > 1:
            return _run_distributed(runs, rec, devices, datasets, resume, control)
        device = devices[0] if devices and devices[0] != "cpu" else None
        trainer = Trainer(rec.config, rec, runs, datasets, control=control,
                          callbacks=[*callbacks, StopRequests(rec, control)], device=device)
        return trainer.run(resume=resume)
    finally:
        runs.queue.drop(rec.id)
        lease.release()


def _run_distributed(runs: RunStore, rec: RunFolder, devices: list[str], datasets: DatasetStore, resume: bool,
                     control: Control) -> dict[str, Any]:
    """Several processes (DistributedDataParallel) under torchrun, this command holding the lease and waiting;
    Ctrl-C becomes a stop request the ranks agree on."""
    proc = launch(rec, devices, datasets.root, resume, lease_held=True)
    asked = False
    while proc.poll() is None:
        if control.should_stop and not asked:
            request_stop(rec, control.reason)
            asked = True
        time.sleep(WAIT_S)
    st = rec.status
    if st.get("status") in ("queued", "running"):
        st = runs.set_status(rec, "failed", reason=death_reason(proc.returncode, st, run_settings(rec).get("batch_size")),
                             finished=time.time())
    return st


def owner_line(rec: RunFolder) -> str | None:
    """Who trains the run now, in words (None: nobody)."""
    info = owner(rec)
    return describe_owner(info) if info else None
