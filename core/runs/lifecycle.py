"""One lifecycle for every run, whoever starts it — a page, `finetune-studio train` or `resume`, a search trial:
created, queued, leased, heart-beaten, stopped and finished through this module.

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
from typing import Any, Callable, Iterator

from ..errors import RunError
from ..fsutil import atomic_write_json, read_json
from .folder import RunFolder

STARTING_S = 120  # a run handed to a worker that has not taken its lease yet counts as alive for this long
ACTIVE = ("queued", "running")


# --------------------------------------------------------------------------- leases
class Lease:
    """The lock a run's owner holds for as long as it lives."""

    def __init__(self, fh, path: Path):
        self.fh, self.path = fh, path

    @classmethod
    def take(cls, rec: RunFolder, kind: str) -> "Lease | None":
        """Held by this process from now on (None: someone else holds it)."""
        path = rec.lease_file
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(owner_info(kind)))
        fh.flush()
        return cls(fh, path)

    def release(self) -> None:
        try:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
        finally:
            self.fh.close()

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def owner_info(kind: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "kind": kind, "since": time.time()}


def owner(rec: RunFolder) -> dict[str, Any] | None:
    """Who holds the run's lease now (None: nobody alive does)."""
    path = rec.lease_file
    if not path.is_file():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: read who
            fh.seek(0)
            try:
                return json.loads(fh.read() or "{}") or {"kind": "unknown"}
            except json.JSONDecodeError:
                return {"kind": "unknown"}
        fcntl.flock(fh, fcntl.LOCK_UN)
        return None


def describe_owner(info: dict[str, Any]) -> str:
    kinds = {"cli": "the finetune-studio command", "worker": "a studio worker", "search": "a search"}
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"{kinds.get(info.get('kind'), 'another process')} (pid {info.get('pid', '?')} on " \
           f"{info.get('host', '?')}, since {since})"


# --------------------------------------------------------------------------- the queue
@dataclass
class Entry:
    run_id: str
    queued_at: float
    runner: str  # "studio" (the dispatcher starts a worker) or "self" (the process that queued it)
    need: int = 1  # devices (GPUs, or the one CPU slot)
    device: str = "auto"  # what the run asked for: auto, cpu, cuda, cuda:N
    state: str = "queued"  # queued, running
    devices: list[str] = field(default_factory=list)
    started: float = 0.0


class Queue:
    def __init__(self, root: Path, devices: list[str]):
        self.dir = Path(root) / ".queue"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root, self.devices = Path(root), devices

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

    def entries(self) -> list[Entry]:
        out = []
        for p in self.dir.glob("*.json"):
            d = read_json(p)
            if d:
                try:
                    out.append(Entry(**d))
                except TypeError:
                    p.unlink(missing_ok=True)
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
        rec = RunFolder(self.root / e.run_id)
        if not rec.is_run():
            return False
        if owner(rec) is not None:
            return True
        # handed to a worker that has not taken its lease yet; a queued studio run waits for the dispatcher
        return (e.state == "running" and time.time() - e.started < STARTING_S) or \
            (e.state == "queued" and e.runner == "studio")

    def free(self, entries: list[Entry]) -> list[str]:
        busy = {d for e in entries if e.state == "running" for d in e.devices}
        return [d for d in self.devices if d not in busy]

    def pick(self, e: Entry, free: list[str]) -> list[str] | None:
        """The devices this run would take now, or None."""
        if e.device not in ("auto", "cuda") and e.device in self.devices:
            return [e.device] if e.device in free else None
        usable = [d for d in free if d.startswith("cuda")] if e.device == "cuda" else free
        return usable[:e.need] if len(usable) >= e.need else None


def settle(queue: Queue, mark: Callable[[str, str, str], None]) -> None:
    """Entries whose owner is gone leave the queue, their runs marked (status, reason) by mark()."""
    for e in queue.entries():
        if queue.alive(e):
            continue
        queue.drop(e.run_id)
        rec = RunFolder(queue.root / e.run_id)
        if not rec.is_run():
            continue
        st = rec.status
        if e.state == "running" and st.get("status") == "running":
            mark(e.run_id, "interrupted", f"Interrupted at step {st.get('step', 0)}: the process training it "
                                          "ended without finishing. Resume continues from the last checkpoint.")
        elif e.state == "queued" and st.get("status") == "queued":
            mark(e.run_id, "interrupted", "The command that queued it ended before its turn came. Resume "
                                          "starts it.")


def claim(queue: Queue, run_id: str) -> list[str] | None:
    """This run's devices if it is next in line and they are free now (it is then running); else None."""
    entries = queue.entries()
    waiting = [e for e in entries if e.state == "queued"]
    if not waiting or waiting[0].run_id != run_id:
        return None
    e = waiting[0]
    devices = queue.pick(e, queue.free(entries))
    if devices is None:
        return None
    e.state, e.devices, e.started = "running", devices, time.time()
    queue.put(e)
    return devices


def refuse_if_owned(rec: RunFolder) -> None:
    info = owner(rec)
    if info is not None:
        raise RunError(f"Run {rec.id} is already being trained by {describe_owner(info)}; stop it first "
                       f"(finetune-studio stop {rec.id}, or Stop on its Monitor page).")
