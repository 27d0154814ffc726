"""The model card every export carries (README.md, in the Hugging Face model-card layout): what the model predicts,
the data it learned from (the dataset version, its sizes, class balance and the fixes that made it), the method
as it ran (backbone, strategy, epochs, the blend's parts and shares), test scores beside the baseline with the
paired verdict, per-class scores, what limits it, and how to run it. Every statement is read from the run's own
record and the export's own report."""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..metrics import comparison
from ..modalities import get_modality
from ..runs.folder import RunFolder
from ..strategies import get_strategy
from ..tasks import from_meta
from ..train.callbacks.guards import describe_refit

RARE_TEST_SUPPORT = 10  # test examples a class needs before its scores say much


def _lineage(ds, datasets) -> list[str]:
    """The fixes that made this version, oldest first (each a derived version of its parent)."""
    out, seen = [], set()
    while ds is not None and ds.id not in seen:
        seen.add(ds.id)
        if ds.manifest.get("change"):
            out.append(f"{ds.manifest['change']} (version {ds.id})")
        ds = datasets.find(ds.manifest.get("parent")) if ds.manifest.get("parent") else None
    return out[::-1]


def _data(run: RunFolder, datasets, status: dict[str, Any]) -> list[str]:
    ds = datasets.find(status.get("dataset")) if datasets is not None else None
    sizes = status.get("sizes") or {}
    lines = [f"- Dataset version `{status.get('dataset', 'unknown')}`"
             + (f" ({ds.manifest.get('name')}, {ds.manifest.get('rows', 0):,} examples)" if ds is not None else "")]
    if sizes:
        lines.append(f"- Split: {sizes.get('train', 0):,} training, {sizes.get('val', 0):,} validation, "
                     f"{sizes.get('test', 0):,} test examples (stratified; duplicates kept on one side)")
    if ds is not None and ds.manifest.get("classes"):
        balance = ", ".join(f"{c}: {n:,}" for c, n in sorted(ds.manifest["classes"].items(), key=lambda kv: -kv[1]))
        lines.append(f"- Examples per label: {balance}")
        fixes = _lineage(ds, datasets)
        lines.append("- Fixes applied before training: " + ("; ".join(fixes) if fixes else "none"))
    if status.get("test_overlap"):
        o = status["test_overlap"]
        lines.append(f"- Own test file: {len(o.get('test_rows', []))} example(s) repeated training data"
                     + (" and were left out" if o.get("dropped") else " and were kept (scores may be inflated)"))
    return lines


def _method(run: RunFolder, status: dict[str, Any], report: dict[str, Any]) -> list[str]:
    cfg = run.resolved_config
    t = cfg.train
    d = report.get("predictor") or status.get("predictor") or {}
    lines = [f"- Backbone: `{t.backbone}`; strategy: {get_strategy(t.strategy).title.lower()}"
             + (f" (first {t.keep_layers} layers)" if t.keep_layers else ""),
             f"- Trained {status.get('epoch', '?')} of up to {t.epochs} epoch(s); the best on validation was epoch "
             f"{status.get('best_epoch', '?')}; {status.get('trainable_params', 0):,} of "
             f"{status.get('total_params', 0):,} weights trained"]
    if refit := describe_refit(status.get("replanned"), t.budget_minutes):
        lines.append(f"- {refit}")
    if status.get("auto"):
        lines.append(f"- Chosen by auto: {status['auto']}")
    if d.get("sentence"):
        lines.append(f"- As it predicts: {d['sentence']}")
    if t.teacher:
        lines.append(f"- Distilled from run `{t.teacher}`")
    return lines


def _evaluation(run: RunFolder, status: dict[str, Any], task) -> list[str]:
    test, base = status.get("test") or {}, status.get("baseline")
    if not test:
        return ["No test evaluation: the run stopped before it or had no test split."]
    n = (run.result("test") or {}).get("n", "?")
    rows = [("This model", test)] + ([(f"Baseline ({base['name']})", base)] if base else [])
    for name, scores in (status.get("parts") or {}).items():
        rows.append((f"{name.capitalize()} alone", scores))
    keys = list(task.headline)
    lines = [f"On {n} test examples the run never trained or chose settings on:", "",
             "| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines += ["| " + name + " | " + " | ".join(f"{s.get(k, float('nan')):.3f}" for k in keys) + " |"
              for name, s in rows]
    verdict = comparison(status)
    if verdict:
        lines += ["", verdict]
    res = run.result("test") or {}
    per_class = res.get("per_class")
    if per_class and task.several:  # each label's threshold travels with the model: predict.py applies it
        cut = dict(zip(res.get("classes", []), res.get("thresholds") or []))
        lines += ["", "Per label (given at or above its threshold, tuned on validation):", "",
                  "| label | threshold | precision | recall | F1 | test examples with it |", "|---|---|---|---|---|---|"]
        lines += [f"| {c} | {cut.get(c, 0.5):.3f} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1-score']:.3f} | "
                  f"{int(v['support'])} |" for c, v in per_class.items()]
    elif per_class:
        lines += ["", "Per class:", "", "| class | precision | recall | F1 | test examples |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1-score']:.3f} | {int(v['support'])} |"
                  for c, v in per_class.items()]
    return lines


def _limitations(run: RunFolder, status: dict[str, Any]) -> list[str]:
    out = []
    per_class = (run.result("test") or {}).get("per_class") or {}
    rare = [c for c, v in per_class.items() if v.get("support", 0) < RARE_TEST_SUPPORT]
    if rare:
        out.append(f"- Few test examples for {', '.join(rare)} (under {RARE_TEST_SUPPORT} each): their scores could "
                   "move a lot on other data.")
    n = (run.result("test") or {}).get("n", 0)
    if n and n < 100:
        out.append(f"- The test set has {n} examples: differences of a few points are within noise (see the paired "
                   "verdict above).")
    if run.suspects_file.is_file():
        k = len(pd.read_parquet(run.suspects_file))
        if k:
            out.append(f"- {k} training example(s) have labels a model that never saw them confidently contradicts "
                       "(suspect labels); they were left in.")
    out.append("- It knows only the labels it was trained on; an input unlike the training data still gets one of "
               "them, with a confidence that may be high.")
    return out


def _how(fmt: str, report: dict[str, Any], task, modality) -> list[str]:
    if fmt == "folder":
        ex = modality.readme_example
        hf = (report.get("hf") or {}).get("readme")
        return ["In the studio's own format (needs Fine-Tune Studio installed):", "", "```python",
                "from core.predict.predictor import Predictor", 'p = Predictor("path/to/this/folder")',
                f"outputs, errors = p.predict({ex})   # {modality.readme_kind}",
                f"print(p.table({ex}, outputs, errors))", "```"] + ([hf] if hf else [])
    out = ["No torch and no studio needed: Python 3.9+ and the packages in requirements.txt.", "", "```bash",
           "python -m venv .venv && .venv/bin/pip install -r requirements.txt",
           ".venv/bin/python predict.py INPUT --json   # a CSV with the training input column, an image, or a folder",
           "```", "", "Each input gives one JSON line: its file name or row, the `label`"
           + (" (every label at or above its threshold, joined) and each label's `probabilities`." if task.several
              else " and the class `probabilities`." if task.has_classes else " (the predicted value).")]
    p = report.get("parity") or {}
    if p:
        out += ["", f"Checked when exported: {p['compared']}; " + (
            f"{p.get('same_label', p['rows'])} of {p['rows']} labels the same, " if task.has_classes else "")
            + f"largest difference {p['max_abs_diff']:.1e}."]
    return out


def model_card(run: RunFolder, datasets, fmt: str, report: dict[str, Any]) -> str:
    status = run.status
    task = from_meta({"task": status.get("task", "classification")})
    d = report.get("predictor") or status.get("predictor") or {}
    cfg = run.resolved_config
    pipeline = f"{status.get('modality', 'text')}-classification"  # the Hub files regression models there too
    classes = status.get("classes") or []
    front = ["---", f"pipeline_tag: {pipeline}", "tags:", "- finetune-studio", f"- {cfg.train.backbone}",
             f"- {cfg.train.strategy}", f"- {'onnx' if fmt != 'folder' else 'safetensors'}", "---", ""]
    title = cfg.name or d.get("title") or cfg.train.backbone
    what = (f"Any number of {len(classes)} labels per input, each with its probability: {', '.join(classes)}."
            if task.several else f"One of {len(classes)} labels per input: {', '.join(classes)}." if task.has_classes
            else "A number per input.")
    sections = [f"# {title}", "", d.get("sentence", ""), "", "## What it predicts", "", what, "",
                "## Training data", "", *_data(run, datasets, status), "", "## Method", "",
                *_method(run, status, report), "", "## Evaluation", "", *_evaluation(run, status, task), "",
                "## Limitations", "", *_limitations(run, status), "", "## How to use", "", *_how(fmt, report, task, get_modality(status.get("modality", "text"))),
                "", f"Exported from run `{run.id}` by Fine-Tune Studio ({fmt} format)."]
    return "\n".join(front + sections) + "\n"
