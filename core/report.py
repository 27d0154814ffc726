"""One self-contained HTML file per run, for showing a domain expert what the model learned and where it
fails: data and audit, settings in plain words, curves, baseline vs model, confusion matrix, per-class
table, and a gallery of errors with saliency. Figures are inlined, so it opens offline anywhere."""
from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
# labels are people's class names, never TeX: "$5-$10" must print as written (mathtext would fail on it)
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .baseline import comparison  # noqa: E402
from .errors import RunError  # noqa: E402
from .store import RunRecord  # noqa: E402
from .strategies import get_strategy  # noqa: E402

SECTIONS = ("Summary", "Data", "Settings", "Training curves", "Results", "Confusion matrix", "Per class",
            "Mistakes")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _img(pil) -> str:
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return f'<img class="thumb" alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _curves(events: list[dict[str, Any]]) -> str:
    steps = [(e["step"], e["data"]["loss"]) for e in events if e["kind"] == "step"]
    val = [(e["epoch"] + 1, e["data"]["accuracy"], e["data"]["macro_f1"]) for e in events
           if e["kind"] == "eval" and e["data"].get("split") == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    if steps:
        axes[0].plot(*zip(*steps), color="#4C78A8")
    axes[0].set(title="Training loss", xlabel="step", ylabel="loss")
    if val:
        ep, acc, f1 = zip(*val)
        axes[1].plot(ep, acc, marker="o", label="accuracy")
        axes[1].plot(ep, f1, marker="o", label="macro-F1")
        axes[1].legend()
    axes[1].set(title="Validation", xlabel="epoch", ylabel="score", ylim=(0, 1.02))
    fig.tight_layout()
    return _png(fig)


def _confusion(res: dict[str, Any]) -> str:
    cm, classes = np.asarray(res["confusion"]), res["classes"]
    n = len(classes)
    fig, ax = plt.subplots(figsize=(min(10, 0.55 * n + 3), min(9, 0.5 * n + 2.6)))
    sns.heatmap(cm, annot=n <= 20, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes, ax=ax, square=True)
    ax.set(xlabel="predicted", ylabel="true", title="Test confusion matrix")
    fig.tight_layout()
    return _png(fig)


def _settings_in_words(cfg, status: dict[str, Any]) -> str:
    t = cfg.train
    s = get_strategy(t.strategy)
    lr = f"{t.lr:.0e}" if t.lr else "the strategy's default"
    parts = [
        f"Backbone <b>{html.escape(t.backbone)}</b>, adapted with <b>{html.escape(s.title.lower())}</b>: {html.escape(s.why)}",
        f"{status.get('trainable_params', 0):,} of {status.get('total_params', 0):,} weights were trained.",
        f"Up to {t.epochs} epochs in batches of {t.batch_size}, AdamW at learning rate {lr} with a {t.schedule} "
        f"schedule after {t.warmup_ratio:.0%} warm-up; weight decay {t.weight_decay}.",
        ("Rarer classes weighted up. " if t.class_weighting == "balanced" else "") +
        (f"Training stops early when validation {t.monitor} has not improved for {t.early_stopping_patience} "
         "epochs. " if t.early_stopping_patience else "") +
        f"The best epoch on validation ({status.get('best_epoch', '?')}) is the model evaluated here.",
        f"Seed {t.seed}; split {1 - cfg.data.val_fraction - cfg.data.test_fraction:.0%} train / "
        f"{cfg.data.val_fraction:.0%} validation / {cfg.data.test_fraction:.0%} test, stratified, with duplicates "
        "kept on one side.",
    ]
    return "<ul>" + "".join(f"<li>{p}</li>" for p in parts) + "</ul>"


def _table(df: pd.DataFrame) -> str:
    return df.to_html(classes="tbl", border=0, float_format=lambda v: f"{v:.3f}", escape=True)


def _mistakes(rec: RunRecord, preds: pd.DataFrame, max_items: int, explain: bool) -> str:
    wrong = preds[preds["true"] != preds["pred"]].sort_values("loss", ascending=False).head(max_items)
    if wrong.empty:
        return "<p>No test example was misclassified.</p>"
    pred = None
    if explain:
        from .predict import Predictor

        pred = Predictor(rec.dir)
    cards = []
    for _, r in wrong.iterrows():
        cap = (f"true <b>{html.escape(str(r['true']))}</b> → predicted <b>{html.escape(str(r['pred']))}</b> "
               f"({r['confidence']:.0%})")
        if "file" in preds.columns:
            from .images import open_rgb

            img = open_rgb(r["file"])
            body = _img(img.resize((112, 112)))
            if pred is not None:
                from .explain import gradcam, overlay

                body += _img(overlay(img, gradcam(pred, img, target=pred.classes.index(r["pred"]))[0]).resize((112, 112)))
            cards.append(f'<div class="card">{body}<div>{cap}</div></div>')
        else:
            text = html.escape(str(r["input"]))
            if pred is not None:
                from .explain import token_attributions, tokens_html

                text = tokens_html(token_attributions(pred, str(r["input"]), target=pred.classes.index(r["pred"])))
            cards.append(f'<div class="card wide"><div>{cap}</div><p>{text}</p></div>')
    note = ("Heat shows where the model looked for its (wrong) answer." if "file" in preds.columns else
            "Green words pushed towards the predicted class, red against it.") if pred is not None else ""
    return f"<p class='muted'>{note}</p><div class='gallery'>{''.join(cards)}</div>"


def build_report(rec: RunRecord, dataset=None, max_errors: int = 12, explain: bool = True) -> str:
    status = rec.status
    res = rec.result("test")
    if res is None:
        raise RunError(f"Run {rec.id} has no test evaluation yet; a report needs one.")
    cfg = rec.resolved_config
    preds_path = rec.dir / "eval" / "test_predictions.parquet"
    preds = pd.read_parquet(preds_path) if preds_path.is_file() else pd.DataFrame()
    base = status.get("baseline")
    title = html.escape(cfg.name or rec.id)

    data_html = "<p>Dataset details unavailable.</p>"
    if dataset is not None:
        m = dataset.manifest
        counts = pd.Series(m["classes"]).sort_values(ascending=False).rename("examples").to_frame()
        audit = ""
        audit_path = dataset.dir / "audit.json"
        if audit_path.is_file():
            import json

            a = json.loads(audit_path.read_text(encoding="utf-8"))
            exact = sum(len(g) - 1 for g in a["exact_groups"])
            audit = (f"<p>Audit: {exact} exact duplicate(s), {len(a['near_groups'])} near-duplicate group(s), "
                     f"{len(a['conflicts'])} label conflict(s). Duplicate groups were kept inside one split.</p>")
        data_html = (f"<p>{m['rows']:,} {dataset.modality}s in {len(m['classes'])} classes "
                     f"(version <code>{dataset.id}</code>"
                     + (f", derived: {html.escape(m.get('change', ''))}" if m.get("parent") else "") + ").</p>"
                     + audit + _table(counts))

    t = status.get("test") or {}
    results = [("Fine-tuned model", t.get("accuracy"), t.get("macro_f1"))]
    if base:
        results.append((f"Baseline: {base['name']}", base["accuracy"], base["macro_f1"]))
    res_df = pd.DataFrame(results, columns=["model", "test accuracy", "test macro-F1"]).set_index("model")
    verdict = ""
    if base and t:
        d = t["macro_f1"] - base["macro_f1"]
        how = (f"beats the baseline</b> by {d:.3f}" if d > 0 else "ties with the baseline</b>" if d == 0 else
               f"falls short of the baseline</b> by {-d:.3f}")
        verdict = f"<p><b>The fine-tuned model {how} macro-F1 on the same {res['n']} test examples.</p>"
        if status.get("vs_baseline"):  # the verdict the test set can back, with its interval
            verdict = f"<p><b>{html.escape(comparison(status))}</b></p>"
    from .blend import describe

    if describe(status):
        verdict += f"<p>{html.escape(describe(status))}</p>"
    per_class = pd.DataFrame(res["per_class"]).T.rename(columns={"f1-score": "F1"})
    per_class["support"] = per_class["support"].astype(int)
    asked = rec.config.train.strategy
    shown = cfg.train.strategy if asked == cfg.train.strategy else f"{asked} → {cfg.train.strategy}"
    summary = (f"<p>{html.escape(str(cfg.train.backbone))} · {html.escape(shown)} · "
               f"status <b>{html.escape(str(status.get('status')))}</b> · test accuracy "
               f"<b>{res['accuracy']:.1%}</b>, macro-F1 <b>{res['macro_f1']:.3f}</b> on {res['n']} held-out examples"
               + (f" · ROC-AUC {res['roc_auc']:.3f}" if res.get("roc_auc") is not None else "") + ".</p>")
    sections = {
        "Summary": summary,
        "Data": data_html,
        "Settings": _settings_in_words(cfg, status),
        "Training curves": _curves(rec.events()),
        "Results": verdict + _table(res_df),
        "Confusion matrix": _confusion(res) + (
            "<p>Most confused: " + ", ".join(f"{html.escape(m['true'])} → {html.escape(m['pred'])} ({m['count']})"
                                             for m in res["most_confused"][:5]) + "</p>" if res["most_confused"] else ""),
        "Per class": _table(per_class),
        "Mistakes": _mistakes(rec, preds, max_errors, explain) if len(preds) else "<p>No predictions saved.</p>",
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


def write_report(rec: RunRecord, out: str | Path, dataset=None, explain: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(rec, dataset, explain=explain), encoding="utf-8")
    return out
