"""Data larger than memory, every core used: a real image set expanded to 100k images on disk, one epoch of a
frozen and of a full MobileNetV2 run, with peak memory, cache-building speed, loader wait and the engine's
speed against a bare loop with the same DataLoader; then a second run on the same dataset version.

    .venv/bin/python benchmarks/bench_scale.py                 # 100k images (~40 min on 2 CPU cores)
    .venv/bin/python benchmarks/bench_scale.py --images 20000  # quicker

The images are augmented copies (shift, rotation, contrast, noise) of the 400 MNIST digits bundled with the
studio, written as PNG files in class folders, then brought in as a user would (ingest, audit, split).
Training reads them at 64 px (the digits are 28 px). Memory is read from /proc while the run trains: the
training process's peak RSS, and the peak total of it and its loader workers counted by proportional set size
(pages the forked workers share with it counted once).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "assets" / "demo" / "digits"


def _write(args) -> int:
    out, files, copies, seed = args
    rng = np.random.default_rng(seed)
    n = 0
    for f in files:
        img = Image.open(f).convert("L")
        for k in range(copies):
            a = img.rotate(float(rng.uniform(-12, 12)), translate=tuple(rng.integers(-2, 3, 2)), fillcolor=0)
            arr = np.asarray(a, dtype=np.float32) * rng.uniform(0.7, 1.1) + rng.normal(0, 8, a.size[::-1])
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(out / f.parent.name / f"{f.stem}_{k}.png")
            n += 1
    return n


def expand(dst: Path, total: int) -> Path:
    """Augmented copies of the demo digits, one folder per class, `total` images in all."""
    if dst.is_dir() and sum(1 for _ in dst.rglob("*.png")) >= total:
        return dst
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(DEMO.rglob("*.png"))
    copies = -(-total // len(files))
    for c in {f.parent.name for f in files}:
        (dst / c).mkdir(parents=True, exist_ok=True)
    chunks = [(dst, files[i::8], copies, i) for i in range(8)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        made = sum(pool.map(_write, chunks))
    print(f"wrote {made:,} images to {dst}", flush=True)
    return dst


def cache_speed(ds, n: int, size: int = 64) -> dict:
    """Images per second decoding into the store, with one process and with every core."""
    import tempfile

    import torch

    from core.modalities.image import ImagePrep
    from core.train.cache import build_pixels

    prep = ImagePrep(size, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    paths = ds.inputs()[:n]
    out = {}
    for workers in (1, os.cpu_count() or 1):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            build_pixels(paths, prep, Path(tmp) / "p.u8", workers=workers)
            out[workers] = n / (time.perf_counter() - t)
    cores = max(out)
    return {"images": n, "one_core_per_s": round(out[1], 1), "all_cores_per_s": round(out[cores], 1),
            "cores": cores, "speedup": round(out[cores] / out[1], 2)}


def peak_rss_mb(pid: int, stop: threading.Event, seen: dict) -> None:
    """Memory of a process and its children, sampled until stop: the main process's RSS, and the total of
    proportional set sizes (PSS: pages shared by forked loader workers counted once, not once per process)."""
    while not stop.is_set():
        total, own = 0, 0
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            kids = []
        for p in [str(pid), *kids]:
            try:
                for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                    if line.startswith("Rss:") and p == str(pid):
                        own = int(line.split()[1])
            except OSError:
                pass
        seen["peak_mb"] = max(seen.get("peak_mb", 0), total / 1024)
        seen["main_rss_mb"] = max(seen.get("main_rss_mb", 0), own / 1024)
        time.sleep(0.2)


def train(home: Path, ds_id: str, strategy: str, extra: dict) -> dict:
    """One epoch in a worker process (as the studio runs it), its peak memory watched from outside."""
    from core.config import RunConfig
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore

    datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
    cfg = RunConfig.from_dict({"data": {"source": ds_id, "val_fraction": 0.05, "test_fraction": 0.05},
                               "train": {"backbone": "mobilenet_v2", "strategy": strategy, "epochs": 1,
                                         "image_size": 64, "batch_size": 64, "baseline": False, "blend": False,
                                         "hflip": True, "early_stopping_patience": 0, **extra}})
    rec = runs.create(cfg, ds_id)
    t = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "core.runs.worker", str(rec.dir), "--datasets", str(datasets.root)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    stop, seen = threading.Event(), {}
    watcher = threading.Thread(target=peak_rss_mb, args=(proc.pid, stop, seen), daemon=True)
    watcher.start()
    proc.wait()
    stop.set()
    st = rec.status
    ev = rec.events()
    steps = [e for e in ev if e["kind"] == "step"]
    progress = [e["data"]["message"] for e in ev if e["kind"] == "progress"]
    out = {"status": st["status"], "reason": st.get("reason", ""), "wall_s": round(time.time() - t, 1),
           "peak_memory_mb": round(seen.get("peak_mb", 0)), "peak_main_rss_mb": round(seen.get("main_rss_mb", 0)),
           "test": st.get("test"),
           "reused": [m for m in progress if m.startswith("Reusing")],
           "plan_s": round((steps[0]["time"] if steps else time.time()) - t, 1)}
    if len(steps) > 10:
        later = steps[5:]
        out["steps_per_s"] = round((len(later) - 1) / (later[-1]["time"] - later[0]["time"]), 3)
        out["data_wait_share"] = round(float(np.mean([e["data"]["data_wait_share"] for e in later])), 4)
        out["images_per_s"] = round(float(np.mean([e["data"]["examples_per_s"] for e in later])), 1)
    return out


PARTS = ("cache", "frozen", "full", "engine")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "fts-bench-scale"))
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS),
                    help="measure these parts again; the saved figures of the others are kept")
    args = ap.parse_args()
    work = Path(args.work)
    import shutil

    from core.data.datasets import DatasetStore

    folder = expand(work / f"digits-{args.images}", args.images)
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)  # a first run is a first run: no cache from an earlier benchmark
    t = time.time()
    ds = DatasetStore(home / "datasets").ingest(folder).dataset
    print(f"ingest of {len(ds.items):,} images: {time.time() - t:.0f} s", flush=True)
    out = ROOT / "benchmarks" / "results" / "scale.json"
    result = json.loads(out.read_text()) if set(args.only) != set(PARTS) and out.is_file() else {}
    result["images"] = len(ds.items)
    if "cache" in args.only:
        result["cache_build"] = cache_speed(ds, min(20_000, len(ds.items)))
        print(json.dumps(result["cache_build"]), flush=True)
    runs = (("frozen, first run", "frozen"), ("frozen, second run", "frozen"), ("full", "full"))
    for name, strategy in runs:
        if strategy in args.only:
            result[name] = train(home, ds.id, strategy, {})
            print(name, json.dumps(result[name]), flush=True)
    if "engine" in args.only:
        result["engine_vs_bare"] = engine_vs_bare(home, ds.id)
        print(json.dumps(result["engine_vs_bare"]), flush=True)
    out.write_text(json.dumps(result, indent=1))


def engine_vs_bare(home: Path, ds_id: str, steps: int = 60, rounds: int = 6) -> dict:
    """Steps per second of the engine and of bare loops with the same model, settings and DataLoader: one as a
    person writes it (plain AdamW, no clipping), one with the engine's own step (fused AdamW, clipped), so the
    second ratio is the engine's bookkeeping alone. This shared 2-core VM drifts by ±10 % within minutes, so
    the three are taken in turns, in alternating order, and the ratio is the median of the rounds' ratios."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_gpu import bare_loop, engine

    from core.backbones import get_backbone
    from core.config import RunConfig
    from core.data.datasets import DatasetStore
    from core.train.setup import load_run_data, pick_device

    overrides = {"backbone": "mobilenet_v2", "strategy": "full", "image_size": 64, "batch_size": 64}
    cfg = RunConfig.from_dict({"data": {"source": ds_id, "val_fraction": 0.05, "test_fraction": 0.05},
                               "train": overrides})
    data = load_run_data(cfg, DatasetStore(home / "datasets"))
    workers = data.inputs.loader_workers(True)
    seen: dict[str, list[float]] = {"bare": [], "same": [], "engine": []}
    for r in range(rounds):
        for name in (list(seen) if r % 2 == 0 else list(seen)[::-1]):
            if name == "engine":
                got = engine(home, ds_id, overrides, steps)
            else:
                got = bare_loop(data, get_backbone("mobilenet_v2"), cfg.train, pick_device("cpu"), steps, workers,
                                same_step=name == "same")
            seen[name].append(got["steps_per_s"])
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in seen.items()), flush=True)
    ratio = np.array(seen["engine"]) / np.array(seen["bare"])
    same = np.array(seen["engine"]) / np.array(seen["same"])
    return {"steps_per_s": {k: [round(x, 3) for x in v] for k, v in seen.items()},
            "ratio": round(float(np.median(ratio)), 3), "ratio_range": [round(float(ratio.min()), 3),
                                                                        round(float(ratio.max()), 3)],
            "ratio_same_step": round(float(np.median(same)), 3),
            "ratio_same_step_range": [round(float(same.min()), 3), round(float(same.max()), 3)],
            "loader_workers": workers, "steps_per_round": steps}


if __name__ == "__main__":
    main()
