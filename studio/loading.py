"""Turning what a user brings (uploads, demo sets, server folders) into datasets, with progress."""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath

import streamlit as st

from core.data.datasets import Dataset, data_root
from core.errors import DataError

from .identity import current_user
from .services import ASSETS, MAX_UPLOAD_MB, services

DEMOS = {
    "digits": ("Handwritten digits (400 images, 10 classes)", ASSETS / "demo" / "digits"),
    "reviews": ("Movie reviews, fresh vs rotten (400 texts)", ASSETS / "demo" / "reviews.csv"),
}


def _session_dir() -> Path:
    """Each browser session uploads into its own folder, so users never see each other's files."""
    sid = st.session_state.setdefault("upload_session", uuid.uuid4().hex)
    d = services().datasets.root.parent / "uploads" / sid
    d.mkdir(parents=True, exist_ok=True)
    return d


def progress_bar(label: str):
    bar = st.progress(0.0, text=label)

    def cb(frac: float, msg: str) -> None:
        bar.progress(min(max(frac, 0.0), 1.0), text=msg)
    return bar, cb


def load_path(path: Path, name: str | None = None, text_col: str | None = None,
              label_col: str | None = None) -> Dataset:
    bar, cb = progress_bar(f"Loading {name or path.name}")
    try:
        res = services().datasets.ingest(path, text_col=text_col, label_col=label_col, name=name, progress=cb,
                                         owner=current_user())
    finally:
        bar.empty()
    return res.dataset


def load_demo(key: str) -> Dataset:
    title, path = DEMOS[key]
    return load_path(path, name=f"demo: {path.name}")


def save_upload(uploaded) -> Path:
    size = uploaded.size
    if size > MAX_UPLOAD_MB * 2**20:
        raise DataError(f"{uploaded.name}: {size / 2**20:.0f} MB is over the {MAX_UPLOAD_MB} MB upload limit.")
    name = Path(uploaded.name).name or "upload"
    dst = _session_dir() / f"{uuid.uuid4().hex[:8]}-{name}"
    with open(dst, "wb") as f:
        shutil.copyfileobj(uploaded, f)
    return dst


def save_directory(files: list) -> Path:
    """A directory upload, rebuilt on disk with its relative paths (nothing may climb out)."""
    root = Path(tempfile.mkdtemp(prefix="dir-", dir=_session_dir()))
    total = 0
    for f in files:
        rel = PurePosixPath(f.name.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"{f.name}: path climbs out of the folder; upload rejected.")
        total += f.size
        if total > MAX_UPLOAD_MB * 2**20:
            raise DataError(f"The folder is over the {MAX_UPLOAD_MB} MB upload limit.")
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "wb") as out:
            shutil.copyfileobj(f, out)
    return root


def server_path(text: str) -> Path:
    root = data_root()
    if root is None:
        raise DataError("Server folders are off on this studio; its administrator can turn them on (README, 'Sharing a server').")
    p = (root / text).resolve() if not os.path.isabs(text) else Path(text).resolve()
    if p != root and root not in p.parents:
        raise DataError(f"{text}: outside the allowed data folder {root}.")
    if not p.exists():
        raise DataError(f"{text}: not found under {root}.")
    return p
