"""Regression on real data through the CLI, as a user runs it: test MAE/RMSE/R² beside the baseline's, with the
paired comparison, and wall time.

    .venv/bin/pip install vaderSentiment   # carries the VADER lexicon (its ratings are the text target)
    .venv/bin/python benchmarks/bench_regression.py

Text: the VADER sentiment lexicon shipped in the `vaderSentiment` package — 7,500 English words, emoticons and
slang, each with the mean valence ten human raters gave it (-4 to +4). Images: no PyPI package ships images with
a numeric target, so the bundled MNIST digits are used with the digit's value as the number to predict (a target
derived from the class labels, said so in the table)."""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def vader_csv(dst: Path) -> Path:
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None:
        sys.exit("pip install vaderSentiment  (the lexicon is the dataset)")
    src = Path(spec.submodule_search_locations[0]) / "vader_lexicon.txt"
    with open(src, encoding="utf-8") as f, open(dst, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["text", "rating"])
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                w.writerow([parts[0], parts[1]])
    return dst


def run(home: Path, data: Path, label: str, strategy: str, extra: list[str]) -> dict:
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), "train", "--data", str(data),
                        "--label-col", label, "--task", "regression", "--strategy", strategy, "--json", *extra],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{data.name} {strategy}: {p.stderr.strip()}")
    return {**json.loads(p.stdout), "wall_s": round(time.time() - t, 1)}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        vader = vader_csv(tmp / "vader.csv")
        # the digits table lists absolute paths into the repository's demo folder: copy it beside the table
        import shutil

        shutil.copytree(ROOT / "assets" / "demo" / "digits", tmp / "digits")
        digits = tmp / "digits.csv"
        with open(digits, "w", newline="", encoding="utf-8") as out:
            w = csv.writer(out)
            w.writerow(["path", "value"])
            for f in sorted((tmp / "digits").rglob("*.png")):
                w.writerow([f.relative_to(tmp).as_posix(), f.parent.name])
        cases = [("VADER lexicon (text)", vader, "rating", "frozen", ["--backbone", "all-MiniLM-L6-v2"]),
                 ("VADER lexicon (text)", vader, "rating", "auto", ["--backbone", "all-MiniLM-L6-v2"]),
                 ("digits, value as the target (images, derived)", digits, "value", "frozen",
                  ["--backbone", "mobilenet_v2", "--image-size", "128"]),
                 ("digits, value as the target (images, derived)", digits, "value", "auto",
                  ["--backbone", "mobilenet_v2"])]
        for name, data, label, strategy, extra in cases:
            r = run(home, data, label, strategy, extra)
            rows.append({"dataset": name, "strategy": strategy + (f" → {r['resolved_strategy']}"
                                                                  if r.get("resolved_strategy") else ""),
                         "test": r["test"], "baseline": r["baseline"], "vs_baseline": r["vs_baseline"],
                         "wall_s": r["wall_s"]})
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "regression.json").write_text(json.dumps(rows, indent=1))
    lines = ["| dataset | model | MAE | RMSE | R² | MAE vs baseline (paired 95% interval) | wall time |",
             "|---|---|---|---|---|---|---|"]
    done = set()
    for r in rows:
        b = r["baseline"]
        if r["dataset"] not in done:
            done.add(r["dataset"])
            lines.append(f"| {r['dataset']} | baseline: {b['name']} | {b['mae']:.3f} | {b['rmse']:.3f} | "
                         f"{b['r2']:.3f} | — | (inside each run) |")
        t, c = r["test"], r["vs_baseline"]
        lines.append(f"| {r['dataset']} | {r['strategy']} | {t['mae']:.3f} | {t['rmse']:.3f} | {t['r2']:.3f} | "
                     f"{c['mae_diff']:+.3f} ({c['low']:+.3f} … {c['high']:+.3f}, {c['verdict'].replace('_', ' ')}) | "
                     f"{r['wall_s']:.0f} s |")
    (OUT / "regression.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
