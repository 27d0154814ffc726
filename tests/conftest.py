import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suite never touches the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # test processes run side by side, one per core: each computes on one thread (and so do the training and CLI
    # processes they start), instead of every process spreading over every core and all of them waiting
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FTS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def stores(home):
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore

    return DatasetStore(home / "datasets"), RunStore(home / "runs")


WORDS = {"sports": "match goal team score league coach player season win stadium",
         "tech": "software chip computer code cloud data network server app device",
         "food": "recipe cook taste dinner bake flavour kitchen meal spice bread"}


def make_text_csv(path: Path, per_class: int = 40, seed: int = 0) -> Path:
    """Three clearly separable topics, unique sentences."""
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        w = words.split()
        for i in range(per_class):
            rows.append({"text": " ".join(rng.choices(w, k=8)) + f" item{i}", "label": label})
    rng.shuffle(rows)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def make_findings_csv(path: Path, seed: int = 0) -> Path:
    """Topics with every audit finding at once: exact duplicates, near duplicates, the same text under two
    labels, and labels flipped to another topic (which the label check flags as suspects)."""
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        w = words.split()
        rows += [{"text": " ".join(rng.choices(w, k=9)) + f" note{label}{i}", "label": label} for i in range(40)]
    rows += [dict(rows[i]) for i in (0, 41, 82)]  # exact duplicates
    rows += [{"text": rows[i]["text"] + " again", "label": rows[i]["label"]} for i in (5, 46)]  # near duplicates
    rows += [{"text": rows[i]["text"], "label": "tech" if rows[i]["label"] != "tech" else "food"}
             for i in (10, 90)]  # the same text, another label
    for i in (15, 20, 55, 60, 95):  # flipped: a sports text called food, and so on
        rows[i]["label"] = {"sports": "food", "tech": "sports", "food": "tech"}[rows[i]["label"]]
    rng.shuffle(rows)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def make_image_folder(root: Path, per_class: int = 16, size: int = 24, seed: int = 0) -> Path:
    """Colour classes with noise: learnable by a tiny CNN in a few steps."""
    rng = np.random.default_rng(seed)
    for label, rgb in COLOURS.items():
        d = root / label
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            arr[rng.integers(0, size), :, :] = rng.integers(0, 255)  # make every file unique
            Image.fromarray(arr).save(d / f"{label}_{i}.png")
    return root


@pytest.fixture
def text_csv(tmp_path):
    return make_text_csv(tmp_path / "topics.csv")


@pytest.fixture
def image_dir(tmp_path):
    return make_image_folder(tmp_path / "colours")
