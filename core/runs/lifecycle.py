"""One lifecycle for every run, whoever starts it — a page, `finetune-studio train` or `resume`, a search trial:
created, queued, leased, heart-beaten, stopped and finished through this module and core.runs.runner.

- The lease: a lock file in the run folder held by the process that owns the run (the command that queued it,
  or the worker the studio started). The kernel drops it when that process dies, kill -9 included, so a run
  whose owner is gone reads as interrupted, and resumable, on the next look. Its content names the owner.
- The queue: one small entry per queued or running run in the store's .queue folder. One device's queue counts
  every run on it: runs start strictly in the order they were queued, each when the devices it needs are free.
  A run is started either by the studio's dispatcher (a worker process) or by the command that queued it
  ('self'); both claim their turn here, under one lock, so neither overtakes the other.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import RunError
from ..fsutil import atomic_write_json, read_json
from .folder import RunFolder

STARTING_S = 120  # a run handed to a worker that has not taken its lease yet counts as alive for this long
ACTIVE = ("queued", "running")
FINAL = ("completed", "stopped", "diverged", "failed", "interrupted")


def visible_devices() -> list[str]:
    """FTS_DEVICES (e.g. "cuda:0,cuda:1" or "cpu"), else every visible GPU, else the CPU."""
    if os.environ.get("FTS_DEVICES"):
        return [d.strip() for d in os.environ["FTS_DEVICES"].split(",") if d.strip()]
    try:
        import torch  # the device count is the one thing here that needs it

        n = torch.cuda.device_count()
    except Exception:  # no usable CUDA runtime: the CPU it is
        n = 0
    return [f"cuda:{i}" for i in range(n)] or ["cpu"]


# --------------------------------------------------------------------------- leases
_HELD: dict[str, "Lease"] = {}  # leases this process holds, by path


class Lease:
    """The lock a run's owner holds for as long as it lives: a POSIX record lock (lockf), which belongs to the
    process alone — processes it forks (data loader workers) do not keep it alive — and which the kernel drops
    when the process dies, however it dies."""

    def __init__(self, fh, path: Path, info: dict[str, Any]):
        self.fh, self.path, self.info = fh, path, info

    @classmethod
    def take(cls, rec: RunFolder, kind: str) -> "Lease | None":
        """Held by this process from now on (None: another process holds it)."""
        key = str(rec.lease_file.resolve())
        if key in _HELD:
            return None  # held here already, by another part of this process
        fh = open(rec.lease_file, "a+")
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "kind": kind, "since": time.time()}
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(info))
        fh.flush()
        lease = _HELD[key] = cls(fh, rec.lease_file, info)
        return lease

    def release(self) -> None:
        _HELD.pop(str(self.path.resolve()), None)
        try:
            fcntl.lockf(self.fh, fcntl.LOCK_UN)
        finally:
            self.fh.close()


def owner(rec: RunFolder) -> dict[str, Any] | None:
    """Who holds the run's lease now (None: nobody alive does)."""
    path = rec.lease_file
    mine = _HELD.get(str(path.resolve()))
    if mine is not None:  # never probed from here: closing a file of a lock this process holds would drop it
        return mine.info
    if not path.is_file():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: read who holds it
            fh.seek(0)
            try:
                return json.loads(fh.read() or "{}") or {"kind": "unknown"}
            except json.JSONDecodeError:
                return {"kind": "unknown"}
        fcntl.lockf(fh, fcntl.LOCK_UN)
        return None


def describe_owner(info: dict[str, Any]) -> str:
    kinds = {"cli": "a finetune-studio command", "worker": "a studio worker", "search": "a search"}
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return (f"{kinds.get(info.get('kind'), 'another process')} (pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, since {since})")


def refuse_if_owned(rec: RunFolder) -> None:
    info = owner(rec)
    if info is not None:
        raise RunError(f"Run {rec.id} is already being trained by {describe_owner(info)}; stop it first "
                       f"(finetune-studio stop {rec.id}, or Stop on its Monitor page).")


# --------------------------------------------------------------------------- the queue
@dataclass
class Entry:
    run_id: str
    queued_at: float
    runner: str  # "studio" (the dispatcher starts a worker) or "self" (the process that queued it)
    need: int = 1  # devices (GPUs, or the one CPU slot)
    device: str = "auto"  # what the run asked for: auto, cpu, cuda, cuda:N, mps
    state: str = "queued"  # queued, running
    devices: list[str] = field(default_factory=list)
    started: float = 0.0
    resume: bool = False


class Queue:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / ".queue"
        self.dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.json"

    def get(self, run_id: str) -> Entry | None:
        d = read_json(self._path(run_id))
        try:
            return Entry(**d) if d else None
        except TypeError:  # written by another version
            return None

    def entries(self) -> list[Entry]:
        out = [e for e in (self.get(p.stem) for p in self.dir.glob("*.json")) if e is not None]
        return sorted(out, key=lambda e: (e.queued_at, e.run_id))

    def put(self, e: Entry) -> None:
        atomic_write_json(self._path(e.run_id), asdict(e))

    def drop(self, run_id: str) -> None:
        self._path(run_id).unlink(missing_ok=True)

    def position(self, run_id: str) -> int | None:
        """1 for the next run to start; None when not waiting."""
        waiting = [e.run_id for e in self.entries() if e.state == "queued"]
        return waiting.index(run_id) + 1 if run_id in waiting else None

    def alive(self, e: Entry) -> bool:
        """Its owner lives; a studio run waits for the dispatcher, or was just handed to a worker."""
        rec = RunFolder(self.root / e.run_id)
        if not rec.is_run():
            return False
        if owner(rec) is not None:
            return True
        if e.runner == "studio":
            return e.state == "queued" or time.time() - e.started < STARTING_S
        return False


def needs_slot(device: str, devices: list[str]) -> bool:
    """A run on the CPU of a machine whose queue is its GPUs takes no GPU."""
    return not (device in ("cpu", "mps") and device not in devices)


def pick(e: Entry, devices: list[str], entries: list[Entry]) -> list[str] | None:
    """The devices this run would take now (an empty list: none needed), or None while they are busy."""
    if not needs_slot(e.device, devices):
        return []
    busy = {d for x in entries if x.state == "running" for d in x.devices}
    free = [d for d in devices if d not in busy]
    if e.device in devices:
        return [e.device] if e.device in free else None
    usable = [d for d in free if d.startswith("cuda")] if e.device == "cuda" else free
    need = e.need if any(d.startswith("cuda") for d in devices) else 1  # CPU processes share the one CPU slot
    return usable[:need] if len(usable) >= need else None


def claim(queue: Queue, run_id: str, devices: list[str]) -> list[str] | None:
    """Call under queue.locked(): this run's devices if it is next in line and they are free now (it is then
    running); else None. Strictly in order: a run waiting for two GPUs is not overtaken."""
    entries = queue.entries()
    waiting = [e for e in entries if e.state == "queued" and needs_slot(e.device, devices)]
    me = queue.get(run_id)
    if me is None or me.state != "queued":
        return None
    if needs_slot(me.device, devices) and (not waiting or waiting[0].run_id != run_id):
        return None
    got = pick(me, devices, entries)
    if got is None:
        return None
    me.state, me.devices, me.started = "running", got, time.time()
    queue.put(me)
    return got


def reconcile(rec: RunFolder, queue: Queue, mark) -> dict[str, Any]:
    """The run's status as it truly is: a queued or running run whose owner is gone reads as interrupted (and
    leaves the queue); mark(rec, status, reason) records it. Returns the status."""
    st = rec.status
    if st.get("status") not in ACTIVE:
        return st
    e = queue.get(rec.id)
    if e is not None and queue.alive(e):
        return st
    if e is None and owner(rec) is not None:
        return st  # trained by a process that keeps no queue entry (a torchrun rank, an older version)
    queue.drop(rec.id)
    if st.get("status") == "running":
        reason = (f"Interrupted at step {st.get('step', 0)}: the process training it ended without finishing. "
                  "Resume continues from the last checkpoint.")
    else:
        reason = "The process that queued it ended before its turn came. Resume starts it."
    return mark(rec, "interrupted", reason)
