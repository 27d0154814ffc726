"""Crash-safe file writes: temp file in the same folder, fsync, rename."""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: the process's umask, which temp files (mode 600, folders 700) do not follow


def follow_umask(path: Path, folder: bool = False) -> None:
    """Give a temp file or folder the mode a plain open()/mkdir() would have: exports and data are shared."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_UMASK)


def temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh folder beside its final place (renamed into it once complete), with the user's usual mode."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    follow_umask(path, folder=True)
    return path


class DiskFullError(OSError):
    """Raised when a write fails for lack of space; what was there before is untouched."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    """Call writer(tmp_path), then move tmp_path over path. On failure path keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    follow_umask(tmp_path)
    try:
        writer(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(e.errno, f"disk full while writing {path.name}") from e
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def atomic_replace_dir(src: Path, dst: Path) -> None:
    """Swap a fully written folder into place; an older dst is removed only after the swap."""
    old = dst.with_name(f".{dst.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    _fsync_dir(dst.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return default
