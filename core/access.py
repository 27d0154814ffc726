"""Who may see and change a dataset version or a run on a shared server.

Each item folder may hold `access.json`: {"owners": [...], "shared": bool}. A viewer of None is the
single-user studio (or the CLI): it sees and changes everything. Items without the file were made outside the
studio's private mode (the CLI, older versions) and are visible to everyone; only a viewer of None changes them.
Dataset versions are content-addressed, so two people loading the same file share one version: both are owners,
and neither can alter it (versions are immutable), so ownership only decides who sees it.
"""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import StudioError
from .fsutil import atomic_write_json, read_json

FILE = "access.json"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".access.lock", "a+") as f:  # read-modify-write by concurrent sessions
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read(folder: Path) -> dict[str, Any] | None:
    return read_json(Path(folder) / FILE)


def grant(folder: Path, owner: str | None) -> None:
    """Add an owner (no-op for the single-user viewer None)."""
    if owner is None:
        return
    folder = Path(folder)
    with _locked(folder):
        acc = read(folder) or {"owners": [], "shared": False}
        if owner not in acc["owners"]:
            acc["owners"].append(owner)
            atomic_write_json(folder / FILE, acc)


def can_see(folder: Path, viewer: str | None) -> bool:
    if viewer is None:
        return True
    acc = read(folder)
    return acc is None or acc.get("shared", False) or viewer in acc.get("owners", [])


def can_change(folder: Path, viewer: str | None) -> bool:
    if viewer is None:
        return True
    acc = read(folder)
    return acc is not None and viewer in acc.get("owners", [])


def is_shared(folder: Path) -> bool:
    acc = read(folder)
    return acc is None or bool(acc.get("shared"))


def set_shared(folder: Path, viewer: str | None, shared: bool) -> None:
    folder = Path(folder)
    if not can_change(folder, viewer):
        raise StudioError(f"{folder.name} belongs to someone else: only its owners can share or unshare it.")
    with _locked(folder):
        acc = read(folder) or {"owners": [], "shared": False}
        acc["shared"] = bool(shared)
        atomic_write_json(folder / FILE, acc)

