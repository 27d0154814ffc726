"""One self-contained HTML file per run, written for a domain expert rather than an engineer: what the model does,
how good it is against a simple model on the same examples, where it fails (in words, then the confusion matrix
and per-class table), its worst mistakes with what decided them; the data and how it was trained come last.
Figures are inlined, so it opens offline anywhere."""
from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.audit import cached_audit
from ..errors import RunError
from ..fsutil import read_json
from ..metrics import comparison
from ..modalities import get_modality
from ..predict.blend import describe
from ..predict.explain import WORST
from ..predict.predictor import Predictor
from ..runs.folder import RunFolder
from ..strategies import get_strategy
from ..tasks import from_meta
from ..tasks.multilabel import label_counts
from ..train.callbacks.distill import comparison_table
from ..train.callbacks.guards import describe_refit
from . import parts as P

SECTIONS = ("What it does", "How good it is", "Where it fails", "Its worst mistakes", "The data",
            "How it was trained")  # "What changed" too, for a run continued from another


def _settings_in_words(cfg, status: dict[str, Any]) -> str:
    t = cfg.train
    s = get_strategy(t.strategy)
    lr = f"{t.lr:.0e}" if t.lr else "the strategy's default"
    parts = [
        f"Backbone <b>{html.escape(t.backbone)}</b>, adapted with <b>{html.escape(s.title.lower())}</b>: {html.escape(s.why)}",
        f"{status.get('trainable_params', 0):,} of {status.get('total_params', 0):,} weights were trained.",
        f"Up to {t.epochs} epochs in batches of {t.batch_size}, AdamW at learning rate {lr} with a {t.schedule} "
        f"schedule after {t.warmup_ratio:.0%} warm-up; weight decay {t.weight_decay}."
        + (f" {refit}" if (refit := describe_refit(status.get("replanned"), t.budget_minutes)) else ""),
        ("Rarer classes weighted up. " if t.class_weighting == "balanced" else "") +
        (f"Training stops early when validation {t.monitor or 'score'} has not improved for {t.early_stopping_patience} "
         "epochs. " if t.early_stopping_patience else "") +
        f"The best epoch on validation ({status.get('best_epoch', '?')}) is the model evaluated here.",
        f"Seed {t.seed}; split {1 - cfg.data.val_fraction - cfg.data.test_fraction:.0%} train / "
        f"{cfg.data.val_fraction:.0%} validation / {cfg.data.test_fraction:.0%} test, stratified, with duplicates "
        "kept on one side.",
    ]
    return "<ul>" + "".join(f"<li>{p}</li>" for p in parts) + "</ul>"


def build_report(rec: RunFolder, dataset=None, max_errors: int = WORST, explain: bool = True) -> str:
    status = rec.status
    res = rec.result("test")
    if res is None:
        raise RunError(f"Run {rec.id} has no test evaluation yet; a report needs one.")
    cfg = rec.resolved_config
    task = from_meta(read_json(rec.labels_file, {}) or {})
    preds_path = rec.test_predictions
    preds = pd.read_parquet(preds_path) if preds_path.is_file() else pd.DataFrame()
    base = status.get("baseline")
    described = status.get("predictor") or {}
    title = html.escape(cfg.name or described.get("title") or rec.id)

    data_html = "<p>Dataset details unavailable.</p>"
    if dataset is not None:
        m = dataset.manifest
        classes = m["classes"]
        if task.several and cfg.data.label_sep:  # the manifest counts each distinct cell; a person, each label
            classes = label_counts(classes, cfg.data.label_sep)
        counts = pd.Series(classes).sort_values(ascending=False).rename("examples").to_frame()
        counts = counts if task.has_classes else counts.head(0)
        a = cached_audit(dataset).summary()  # read back: the audit ran when the data was explored or split
        audit = (f"<p>Audit: {a['exact_duplicates']} exact duplicate(s), {a['near_duplicate_groups']} near-duplicate "
                 f"group(s), {a['label_conflicts']} label conflict(s). Duplicate groups were kept inside one "
                 "split.</p>")
        groups = (f"with {len(classes)} labels" if task.several else f"in {len(classes)} classes" if task.has_classes
                  else f"with {len(classes)} distinct values")
        data_html = (f"<p>{m['rows']:,} {dataset.modality}s {groups} "
                     f"(version <code>{dataset.id}</code>"
                     + (f", derived: {html.escape(m.get('change', ''))}" if m.get("parent") else "") + ").</p>"
                     + audit + (P.table(counts) if len(counts) else ""))

    t = status.get("test") or {}
    verdict = f"<p><b>{html.escape(comparison(status))}</b></p>" if base and t and comparison(status) else ""
    if describe(status):
        verdict += f"<p>{html.escape(describe(status))}</p>"
    asked = rec.config.train.strategy
    shown = cfg.train.strategy if asked == cfg.train.strategy else f"{asked} → {cfg.train.strategy}"
    modality = (dataset.modality if dataset is not None else None) or status.get("modality") or "text"
    does = (P.what_it_does(task, res, get_modality(modality).noun)
            + (f"<p>{html.escape(described['sentence'])}</p>" if described.get("sentence") else "")
            + f"<p class='muted'>{html.escape(str(cfg.train.backbone))} · {html.escape(shown)} · status "
              f"{html.escape(str(status.get('status')))} · {P.summary_numbers(task, res)}</p>")
    cached = read_json(rec.explanations_file) if explain else None
    sections = {
        "What it does": does,
        "How good it is": P.how_good(task, res, base) + verdict
        + P.results_table(task, t, base, described.get("title"), status.get("parts")) + _distillation(status),
        **({"What changed": P.changes(read_json(rec.parent_changes_file))} if rec.parent_changes_file.is_file()
           else {}),
        "Where it fails": P.where_it_fails(task, res) + P.subsections(P.task_sections(task, res, preds)),
        "Its worst mistakes": P.mistakes(task, preds, max_errors, cached, (lambda: Predictor(rec.dir)) if explain
                                         else None) if len(preds) else "<p>No predictions saved.</p>",
        "The data": data_html,
        "How it was trained": _settings_in_words(cfg, status) + "<h3>Training curves</h3>"
        + P.curves(rec.events(), task),
    }
    body = "".join(f'<section id="{k.lower().replace(" ", "-")}"><h2>{k}</h2>{v}</section>' for k, v in sections.items())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · Fine-Tune Studio report</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
h1{{margin-bottom:0}} h2{{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}}
.muted{{color:#666}} .tbl{{border-collapse:collapse}} .tbl td,.tbl th{{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}}
.gallery{{display:flex;flex-wrap:wrap;gap:12px}} .card{{border:1px solid #e3e3e3;border-radius:6px;padding:6px;font-size:.85em;max-width:240px}}
.card.wide{{max-width:100%;width:100%}} .thumb{{width:112px;height:112px;margin-right:4px}} img{{max-width:100%}}
</style></head><body>
<h1>{title}</h1><p class="muted">Run <code>{rec.id}</code> · report made {time.strftime('%Y-%m-%d %H:%M')}</p>
{body}</body></html>"""


def write_report(rec: RunFolder, out: str | Path, dataset=None, explain: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(rec, dataset, explain=explain), encoding="utf-8")
    return out


def _distillation(status: dict) -> str:
    if not status.get("distillation"):
        return ""
    d = status["distillation"]
    return (f"<h3>Student and teacher</h3><p>Distilled from run <code>{html.escape(d['teacher']['run'])}</code>; "
            "both scored on the same test rows, speed measured on the machine that trained the student.</p>"
            + P.table(pd.DataFrame(comparison_table(d))))
