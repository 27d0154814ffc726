"""Audit speed: 100k texts and 10k images (decode included), and how near-duplicate search grows.

    .venv/bin/python benchmarks/bench_audit.py [--texts 100000] [--images 10000]

Prints wall times and the growth ratio time(4n)/time(n) of the near-duplicate search: ~4 is linear,
~16 would be quadratic.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.data.audit import audit
from core.data.datasets import DatasetStore
from core.data.near import image_near_pairs, text_near_pairs


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20000)])
    lens = rng.integers(8, 40, n)
    out = [" ".join(rng.choice(vocab, k)) for k in lens]
    for i in range(0, n, 50):  # 2% near duplicates
        words = out[i].split()
        words[0] = "edited"
        out[(i + 7) % n] = " ".join(words)
    return out


def timed(fn, *a):
    t = time.perf_counter()
    r = fn(*a)
    return time.perf_counter() - t, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(Path(tmp) / "datasets")
        n = args.texts
        t = texts(n)
        csv = Path(tmp) / "t.csv"
        pd.DataFrame({"text": t, "label": [f"c{i % 5}" for i in range(n)]}).to_csv(csv, index=False)
        t_ing, res = timed(store.ingest, csv)
        t_aud, rep = timed(audit, res.dataset)
        print(f"texts  n={n:>7,}: ingest {t_ing:6.1f}s  audit {t_aud:6.1f}s  total {t_ing + t_aud:6.1f}s "
              f"(budget 30s)  near groups {len(rep.near_groups):,}")

        small = texts(n // 4, seed=1)
        big = texts(n, seed=1)
        t1, _ = timed(text_near_pairs, small)
        t4, _ = timed(text_near_pairs, big)
        print(f"text near-duplicate search: n={n // 4:,} {t1:.2f}s, 4n={n:,} {t4:.2f}s, ratio {t4 / t1:.2f} (linear 4, quadratic 16)")

        m = args.images
        root = Path(tmp) / "imgs"
        rng = np.random.default_rng(0)
        base = (rng.random((m // 10, 12, 12, 3)) * 255).astype(np.uint8)
        for i in range(m):
            d = root / f"class{i % 10}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(base[i % len(base)]).resize((320 + i % 64, 240)).save(d / f"{i}.jpg", quality=90)
        t_ing, res = timed(store.ingest, root)
        t_aud, rep = timed(audit, res.dataset)
        print(f"images n={m:>7,}: ingest+decode {t_ing:6.1f}s  audit {t_aud:6.1f}s  total {t_ing + t_aud:6.1f}s "
              f"(budget 60s)  near groups {len(rep.near_groups):,}")

        h = rng.integers(-2**63, 2**63 - 1, 4 * m * 10, dtype=np.int64)
        t1, _ = timed(image_near_pairs, h[: m * 10])
        t4, _ = timed(image_near_pairs, h)
        print(f"image near-duplicate search: n={m * 10:,} {t1:.2f}s, 4n={4 * m * 10:,} {t4:.2f}s, ratio {t4 / t1:.2f}")


if __name__ == "__main__":
    main()
