"""Zip uploads, inspected in full before a byte is written, then extracted under streaming caps."""
from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from ..errors import DataError


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 100_000
    max_total_bytes: int = 4 * 1024**3
    max_entry_bytes: int = 512 * 1024**2
    max_ratio: float = 200.0  # uncompressed / compressed, per entry and overall


DEFAULT_LIMITS = ZipLimits()


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in name:
        return "has a NUL byte in its name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "climbs out of the archive with '..'"
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "is a symbolic link"
    return None


def inspect_zip(path: Path, limits: ZipLimits = DEFAULT_LIMITS, name: str | None = None) -> list[zipfile.ZipInfo]:
    """Every entry checked first; any unsafe one rejects the whole archive."""
    name = name or Path(path).name
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{name}: not a valid zip archive.") from None
    with zf:
        infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise DataError(f"{name}: {len(infos):,} entries is over the {limits.max_entries:,}-entry limit.")
    total = 0
    compressed = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise DataError(f"{name}: encrypted (password-protected) zips are not supported; "
                            f"'{info.filename}' is encrypted. Re-zip without a password.")
        why = _unsafe_reason(info)
        if why:
            raise DataError(f"{name}: rejected, entry '{info.filename}' {why}. Nothing was extracted.")
        if info.file_size > limits.max_entry_bytes:
            raise DataError(f"{name}: entry '{info.filename}' would be {human(info.file_size)}, "
                            f"over the {human(limits.max_entry_bytes)} per-file limit.")
        if info.compress_size and info.file_size / info.compress_size > limits.max_ratio and info.file_size > 1 << 20:
            raise DataError(f"{name}: entry '{info.filename}' expands {info.file_size / info.compress_size:.0f}x "
                            "(zip bomb protection). Nothing was extracted.")
        total += info.file_size
        compressed += info.compress_size
    if total > limits.max_total_bytes:
        raise DataError(f"{name}: would expand to {human(total)}, over the {human(limits.max_total_bytes)} limit.")
    return infos


def extract_zip(path: Path, dest: Path, limits: ZipLimits = DEFAULT_LIMITS,
                progress: Callable[[float, str], None] | None = None, name: str | None = None) -> Path:
    """Extract into dest (created fresh). Sizes are counted while streaming, so a lying header stops too."""
    name = name or Path(path).name
    infos = inspect_zip(path, limits, name)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for i, info in enumerate(infos):
                target = (root / info.filename.replace("\\", "/")).resolve()
                if root not in target.parents and target != root:
                    raise DataError(f"{name}: entry '{info.filename}' points outside the extraction folder.")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                entry_bytes = 0
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        entry_bytes += len(chunk)
                        written += len(chunk)
                        if entry_bytes > limits.max_entry_bytes or written > limits.max_total_bytes:
                            raise DataError(f"{name}: stopped at '{info.filename}': expands past the size limit "
                                            "(zip bomb protection).")
                        out.write(chunk)
                if progress and (i % 50 == 0 or i == len(infos) - 1):
                    progress((i + 1) / len(infos), info.filename)
    except DataError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise DataError(f"{name}: the archive is damaged ({e}).") from None
    return dest
