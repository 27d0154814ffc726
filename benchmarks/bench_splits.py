"""`auto` against the baseline over several different train/validation/test splits of the same data: how much
of a single split's difference is the luck of that split.

    .venv/bin/python benchmarks/bench_splits.py --datasets conventions reviews --seeds 0 1 2 3 4

For each dataset and split seed, one `auto` run (which trains the baseline on the same split); printed per
split, then the mean and standard deviation of auto − baseline in macro-F1 and on how many splits auto is
ahead, level or behind. Results go to benchmarks/results/splits.{md,json}.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from bench_quality import DATASETS, RESULTS, run_one, workspace  # same datasets, settings and runs


def summary(name: str, rows: list[dict]) -> str:
    d = np.array([r["auto"] - r["baseline"] for r in rows])
    ahead, level = int((d > 1e-9).sum()), int((np.abs(d) <= 1e-9).sum())
    return (f"| {name} | {len(rows)} | {np.mean([r['baseline'] for r in rows]):.3f} | "
            f"{np.mean([r['auto'] for r in rows]):.3f} | {d.mean():+.3f} ± {d.std(ddof=1) if len(d) > 1 else 0:.3f} | "
            f"{ahead} / {level} / {len(d) - ahead - level} | "
            f"{', '.join(_share(r['network_weight']) for r in rows)} |")


def _share(w: float | None) -> str:
    return "–" if w is None else f"{w:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["conventions", "optdigits"],
                    choices=list(DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = ap.parse_args()
    out = {}
    with workspace(args.datasets) as (home, datasets):
        for name, backbone, source, settings in datasets:
            out[name] = []
            for seed in args.seeds:
                one = run_one(home, source, backbone, "auto", baseline=True, split_seed=seed, **settings)
                r = {"split_seed": seed, "auto": one["macro_f1"], "baseline": one["baseline"]["macro_f1"],
                     "network_weight": one["network_weight"], "vs_baseline": one["vs_baseline"],
                     "wall_s": one["wall_s"]}
                out[name].append(r)
                print(f"{name:11s} split {seed}: auto {r['auto']:.3f} baseline {r['baseline']:.3f} "
                      f"(network share {r['network_weight']}) {r['wall_s']:.0f}s", flush=True)
    table = ["| dataset | splits | baseline (mean) | auto (mean) | auto − baseline (mean ± sd) | "
             "auto ahead / level / behind | network share per split |", "|---|---|---|---|---|---|---|"]
    table += [summary(name, rows) for name, rows in out.items()]
    print("\n".join(table))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "splits.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "splits.md").write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
