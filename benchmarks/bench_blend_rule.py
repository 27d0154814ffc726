"""The blend's share rule against the rule before it, on the same runs: each run's validation and test outputs of
the network alone and of its linear partner alone are recorded once, then each rule picks a share from the
validation outputs and is scored on the test outputs.

    .venv/bin/python benchmarks/bench_blend_rule.py reviews:auto:0 digits:auto:0 reviews:full:1   # dataset:strategy:split seed

Rules: `better part` (core.predict.blend.best_weight: whichever part scores higher alone on validation, moved off
only where a blend's gain over it is positive at the 10th percentile of bootstraps), `vs partner` (the rule before
it: the share whose gain over the partner alone is largest at that percentile), the network alone, the partner
alone, and an even blend. Datasets and splits are bench_quality's; a fixed strategy runs with blend on. For a
solved head (`frozen`), validation here means the out-of-fold outputs its share is chosen on.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as B  # noqa: E402  (the datasets, splits and run helper of the quality table)

import core.tasks.classification as C  # noqa: E402
from core.metrics import bootstrap_macro_f1  # noqa: E402
from core.train.callbacks import evaluation as E  # noqa: E402

WEIGHTS = [float(w) for w in np.round(np.linspace(1.0, 0.0, 11), 2)]


def vs_partner(net: np.ndarray, partner: np.ndarray, y: np.ndarray) -> float:
    """The rule before: the share whose macro-F1 gain over the partner alone is largest at the 10th percentile of
    500 validation bootstraps (ties go to the network)."""
    scored = bootstrap_macro_f1(y, [partner.argmax(1)] + [(w * net + (1 - w) * partner).argmax(1) for w in WEIGHTS],
                                net.shape[1], 500, 0)
    gain = {w: float(np.quantile(f - scored[0], 0.1)) for w, f in zip(WEIGHTS, scored[1:])}
    return max(WEIGHTS, key=lambda w: (round(gain[w], 4), w))


def better_part(net: np.ndarray, partner: np.ndarray, y: np.ndarray) -> float:
    return C.best_weight(net, partner, y, [str(i) for i in range(net.shape[1])])[0]


RULES = {"network alone": lambda n, p, y: 1.0, "partner alone": lambda n, p, y: 0.0, "even": lambda n, p, y: 0.5,
         "vs partner (before)": vs_partner, "better part (now)": better_part}


def record(cases: list[tuple[str, str, int]]) -> list[tuple[str, dict]]:
    """Each case run once; its parts' outputs taken where the run decides the share and where it tests."""
    seen: dict = {}
    choose = C.Classification.blend_weight

    def blend_weight(self, net, partner, truth, meta, fixed=None):
        seen.update(val_net=np.asarray(net), val_partner=np.asarray(partner), val_y=np.asarray(truth))
        return choose(self, net, partner, truth, meta, fixed)

    test = E.TestEvaluation.on_fit_end

    def on_fit_end(self, ctx):
        idx = self.data.idx("test")
        seen["test_net"] = self._predict(self.predictor(None, 1.0), idx)["outputs"]
        seen["test_partner"] = self._predict(self.predictor(ctx.state.results["partner"], 0.0), idx)["outputs"]
        seen["test_y"] = self.data.targets.truth[idx.numpy()]
        return test(self, ctx)

    C.Classification.blend_weight, E.TestEvaluation.on_fit_end = blend_weight, on_fit_end
    out = []
    with B.workspace(sorted({c[0] for c in cases})) as (home, datasets):
        datasets = {name: (backbone, source, settings) for name, backbone, source, settings in datasets}
        for name, strategy, seed in cases:
            backbone, source, settings = datasets[name]
            seen.clear()
            started = time.perf_counter()
            row = B.run_one(home, source, backbone, strategy, baseline=True, split_seed=seed,
                            **{**settings, **({} if strategy.startswith("auto") else {"blend": True})})
            label = f"{name} {strategy} (split {seed}: {row['resolved']})"
            print(f"{label}: {time.perf_counter() - started:.0f} s", flush=True)
            out.append((label, dict(seen)))
    return out


def main() -> None:
    cases = [(a, b, int(c)) for a, b, c in (arg.split(":") for arg in sys.argv[1:])]
    if not cases:
        sys.exit(__doc__)
    runs = record(cases)
    print("\n| run | validation rows | test rows | " + " | ".join(RULES) + " |")
    print("|---|---|---|" + "---|" * len(RULES))
    scores: dict[str, list[float]] = {r: [] for r in RULES}
    for label, d in runs:
        cells = []
        for rule, pick in RULES.items():
            w = pick(d["val_net"], d["val_partner"], d["val_y"])
            s = f1_score(d["test_y"], (w * d["test_net"] + (1 - w) * d["test_partner"]).argmax(1), average="macro")
            scores[rule].append(s)
            cells.append(f"{s:.3f} (share {w:.1f})")
        print(f"| {label} | {len(d['val_y'])} | {len(d['test_y'])} | " + " | ".join(cells) + " |")
    print("| mean | | | " + " | ".join(f"{np.mean(v):.3f}" for v in scores.values()) + " |")
    now, before = np.array(scores["better part (now)"]), np.array(scores["vs partner (before)"])
    print(f"\nbetter part − vs partner: mean {np.mean(now - before):+.3f}; higher on {(now > before + 1e-9).sum()}, "
          f"lower on {(now < before - 1e-9).sum()}, equal on {(abs(now - before) <= 1e-9).sum()} of {len(now)} runs")


if __name__ == "__main__":
    main()
