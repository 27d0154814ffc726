"""finetune-studio: the studio and the headless engine from one command."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .errors import StudioError

EXIT_USAGE = 2


class CliError(StudioError):
    pass


def _out(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    else:
        for k, v in obj.items():
            print(f"{k}: {v}")


def _stores(args):
    from .datasets import DatasetStore, home
    from .store import RunStore

    base = Path(args.home) if getattr(args, "home", None) else home()
    runs = RunStore(Path(args.runs_dir) if getattr(args, "runs_dir", None) else base / "runs")
    return DatasetStore(base / "datasets"), runs


def cmd_app(args) -> int:
    app = Path(__file__).resolve().parent.parent / "app.py"
    if not app.is_file():
        raise CliError(f"Studio entry point not found at {app}; install from the repository (pip install -e .).")
    if args.demo:
        os.environ.setdefault("FTS_DEMO", "1")
    argv = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
            # headless: no first-run e-mail prompt, no browser launch on a server; the URL is printed
            "--server.headless", "false" if args.open else "true", "--browser.gatherUsageStats", "false",
            "--server.maxUploadSize", os.environ.get("FTS_MAX_UPLOAD_MB", "200"),
            "--server.enableXsrfProtection", "true", "--client.toolbarMode", "minimal"]
    print(f"Fine-Tune Studio: http://localhost:{args.port}", flush=True)
    os.chdir(app.parent)  # picks up .streamlit/config.toml
    os.execv(sys.executable, argv)
    return 0


def cmd_backbones(args) -> int:
    from .backbones import list_backbones

    rows = [s.to_json() for s in list_backbones(include_hidden=args.all)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:<22} {r['modality']:<6} {'offline' if r['offline'] else 'download':<9} {r['description']}")
    return 0


def cmd_audit(args) -> int:
    from .audit import cached_audit

    datasets, _ = _stores(args)
    ds = datasets.ingest(args.path, text_col=args.text_col, label_col=args.label_col).dataset
    rep = cached_audit(ds)
    out = {"dataset_id": ds.id, "modality": ds.modality, **rep.summary(), "bad": ds.manifest.get("bad", []),
           "notes": ds.manifest.get("notes", [])}
    _out(out, args.json)
    return 0


def _config_from_args(args):
    from .config import DataConfig, RunConfig, TrainConfig

    if args.config:
        cfg = RunConfig.load(args.config)
    else:
        if not args.data:
            raise CliError("Give --data PATH (or --config RUN_DIR/config.json).")
        cfg = RunConfig(data=DataConfig(source=args.data, text_col=args.text_col, label_col=args.label_col,
                                        test_source=args.test_data),
                        train=TrainConfig(backbone=args.backbone or "mobilenet_v2",
                                          strategy=args.strategy or "frozen"))
    t = cfg.train
    for k in ("epochs", "lr", "batch_size", "seed", "max_steps"):
        v = getattr(args, k)
        if v is not None:
            setattr(t, k, v)
    if args.backbone and args.config:
        t.backbone = args.backbone
    if args.strategy and args.config:
        t.strategy = args.strategy
    if args.pooling:
        t.pooling = args.pooling
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set or []:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise CliError(f"--set {item!r}: expected KEY=VALUE with KEY one of: {', '.join(sorted(fields))}.")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # a bare word, such as a strategy or schedule name
        setattr(t, key, value)
    try:
        t.__post_init__()
    except TypeError:
        raise CliError(f"--set {' '.join(args.set or [])}: a value has the wrong type (numbers unquoted, "
                       "true/false, or a name).") from None
    return cfg


def _run_foreground(trainer, resume: bool = False) -> dict[str, Any]:
    """Ctrl-C stops at the next step (status 'stopped'), like the Stop button."""
    prev = signal.signal(signal.SIGINT, lambda *_: trainer.control.stop())
    try:
        return trainer.run(resume=resume)
    finally:
        signal.signal(signal.SIGINT, prev)


def _train_summary(rec, st: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": rec.id, "run_dir": str(rec.dir), "status": st.get("status"), "reason": st.get("reason", ""),
            "trainable_params": st.get("trainable_params"), "total_params": st.get("total_params"),
            "test": st.get("test"), "baseline": st.get("baseline"),
            "vs_baseline": st.get("vs_baseline"), "best_epoch": st.get("best_epoch"),
            **({"blend": st["blend"]} if st.get("blend") else {}),
            **({"auto": st["auto"], "resolved_strategy": st.get("resolved_strategy")} if st.get("auto") else {}),
            "elapsed_s": st.get("elapsed_s")}


def cmd_train(args) -> int:
    from . import distributed as D
    from .backbones import get_backbone
    from .datasets import open_source
    from .store import RunRecord
    from .trainer import Trainer

    cfg = _config_from_args(args)
    datasets, runs = _stores(args)
    D.init_from_env()  # under torchrun: join the group; alone: nothing
    try:
        get_backbone(cfg.train.backbone)
        rid = None
        if D.is_main():  # rank 0 ingests and creates the run; the others wait, then share it
            ds = open_source(datasets, cfg.data.source, cfg.data.text_col, cfg.data.label_col, owner=args.owner)
            if not Path(cfg.data.source).exists():
                cfg.data.source = ds.id
            rid = runs.create(cfg, ds.id, owner=args.owner).id
        rid = D.broadcast(rid)
        rec = RunRecord(rid, runs.root / rid)
        cfg = D.broadcast(cfg)
        st = _run_foreground(Trainer(cfg, rec, runs, datasets))
        if not D.is_main():
            return 0
        _out(_train_summary(rec, rec.status), args.json)
        return 0 if st.get("status") in ("completed", "stopped") else 1
    finally:
        D.shutdown()


def cmd_lr_find(args) -> int:
    from .lr_finder import find_lr

    datasets, _ = _stores(args)
    res = find_lr(_config_from_args(args), datasets)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"suggested learning rate: {res['suggestion']:.2e}" if res["suggestion"] else
              "no clear suggestion (too few steps before the loss diverged)")
    return 0


def cmd_resume(args) -> int:
    from .trainer import Trainer

    datasets, runs = _stores(args)
    rec = runs.open_dir(args.run_dir)
    if rec.status.get("status") == "completed":
        raise CliError(f"{rec.dir} already completed; nothing to resume.")
    st = _run_foreground(Trainer(rec.config, rec, runs, datasets), resume=True)
    _out(_train_summary(rec, st), args.json)
    return 0 if st.get("status") in ("completed", "stopped") else 1


def cmd_evaluate(args) -> int:
    from .baseline import comparison
    from .store import RunStore

    rec = RunStore(Path(args.run_dir).parent).open_dir(args.run_dir)
    res = rec.result("test")
    if res is None:
        raise CliError(f"{rec.dir} has no test evaluation (status: {rec.status.get('status', 'unknown')}).")
    out = {"run_id": rec.id, "status": rec.status.get("status"), "test": {k: res[k] for k in
           ("n", "accuracy", "macro_f1", "roc_auc", "loss")}, "per_class": res["per_class"],
           "most_confused": res["most_confused"], "val": rec.result("val"),
           "baseline": rec.status.get("baseline"), "vs_baseline": rec.status.get("vs_baseline"),
           "verdict": comparison(rec.status)}
    _out(out, args.json)
    return 0


def _train_args(t: argparse.ArgumentParser) -> None:
    t.add_argument("--data")
    t.add_argument("--test-data")
    t.add_argument("--text-col")
    t.add_argument("--label-col")
    t.add_argument("--config", help="A run's config.json to replay.")
    t.add_argument("--backbone")
    t.add_argument("--strategy", choices=["auto", "full", "frozen", "partial", "differential", "lora"])
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--max-steps", type=int)
    t.add_argument("--pooling", choices=["mean", "cls"], help="Text: 'cls' exports a transformers folder too.")
    t.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="Any other training setting, e.g. --set "
                   "label_smoothing=0.1 class_weighting=balanced (names as in the run's config.json).")
    t.add_argument("--runs-dir")
    t.add_argument("--owner", help="The studio user the run and its data belong to (their login e-mail or proxy "
                   "user name); without it a CLI run is visible to everyone using the studio on this home.")
    t.add_argument("--json", action="store_true")


def cmd_export(args) -> int:
    from .export import export

    rep = export(args.run_dir, args.out, args.format, datasets=_stores(args)[0])
    _out(rep, args.json)
    return 0


def cmd_predict(args) -> int:
    from .images import is_image_name
    from .predict import Predictor, read_zip_images
    from .tables import guess_columns, read_table

    pred = Predictor(args.export_dir)
    src = Path(args.input)
    if not src.exists():
        raise CliError(f"{src}: not found.")
    errors = None
    if src.is_dir():
        files = sorted(f for f in src.rglob("*") if f.is_file() and is_image_name(f.name))
        names = [str(f.relative_to(src)) for f in files]
        probs, errors = pred.predict_images([str(f) for f in files])
    elif src.suffix.lower() == ".zip":
        members = read_zip_images(src.read_bytes())
        names = [n for n, _ in members]
        probs, errors = pred.predict_images([b for _, b in members])
    elif is_image_name(src.name):
        names = [src.name]
        probs, errors = pred.predict_images([str(src)])
    else:
        df = read_table(src).df
        col = args.text_col or (df.columns[0] if len(df.columns) == 1 else guess_columns(df, src.name)[0])
        names = df[col].astype(str).tolist()
        if pred.modality == "image":
            base = src.parent
            probs, errors = pred.predict_images([str(base / n) for n in names])
        else:
            probs = pred.predict_texts(names)
    table = pred.table(names, probs, errors)
    rows = []
    for r, p in zip(table.to_dict("records"), probs):
        rows.append({"input": r["input"], "prediction": r["prediction"] or None,
                     "confidence": None if r["prediction"] == "" else float(r["confidence"]),
                     "probabilities": {c: float(v) for c, v in zip(pred.classes, p)} if r["prediction"] else None,
                     **({"error": r["error"]} if r.get("error") else {})})
    if args.json:
        print(json.dumps({"classes": pred.classes, "predictions": rows}, indent=2))
    else:
        for r in rows:
            print(f"{r['prediction'] or 'ERROR'}\t{(r['confidence'] or 0):.3f}\t{r['input']}")
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    datasets, runs = _stores(args)
    rec = runs.open_dir(args.run_dir)
    out = write_report(rec, args.out, datasets.find(rec.status.get("dataset")), explain=not args.no_saliency)
    print(str(out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finetune-studio", description=__doc__)
    p.add_argument("--home", help="Studio data folder (default: $FTS_HOME or ~/.finetune-studio).")
    sub = p.add_subparsers(dest="cmd", required=True)

    a = sub.add_parser("app", help="Launch the studio in the browser.")
    a.add_argument("--port", type=int, default=8501)
    a.add_argument("--headless", action="store_true", help="Serve only (the default).")
    a.add_argument("--open", action="store_true", help="Also open a browser window on this machine.")
    a.add_argument("--demo", action="store_true", help="Offer the bundled demo data on the Data page.")
    a.set_defaults(fn=cmd_app)

    b = sub.add_parser("backbones", help="List backbones and whether they work offline.")
    b.add_argument("--json", action="store_true")
    b.add_argument("--all", action="store_true", help="Include the tiny test backbones.")
    b.set_defaults(fn=cmd_backbones)

    au = sub.add_parser("audit", help="Profile and audit a dataset: duplicates, conflicts, leakage.")
    au.add_argument("path")
    au.add_argument("--text-col")
    au.add_argument("--label-col")
    au.add_argument("--json", action="store_true")
    au.set_defaults(fn=cmd_audit)

    t = sub.add_parser("train", help="Train headless (or replay a run with --config).")
    lf = sub.add_parser("lr-find", help="Learning-rate range test: suggests a learning rate.")
    for sp in (t, lf):
        _train_args(sp)
    t.set_defaults(fn=cmd_train)
    lf.set_defaults(fn=cmd_lr_find)

    r = sub.add_parser("resume", help="Resume an interrupted or stopped run from its last checkpoint.")
    r.add_argument("run_dir")
    r.add_argument("--json", action="store_true")
    r.set_defaults(fn=cmd_resume)

    x = sub.add_parser("export", help="Export a run: folder, ONNX (parity-checked) or INT8.")
    x.add_argument("run_dir")
    x.add_argument("--format", choices=["folder", "onnx", "int8"], default="folder")
    x.add_argument("--out", required=True)
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_export)

    pr = sub.add_parser("predict", help="Predict with an exported model (or a run folder).")
    pr.add_argument("export_dir")
    pr.add_argument("input", help="A text table (CSV/TSV), an image, a folder of images or a zip.")
    pr.add_argument("--text-col")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_predict)

    rp = sub.add_parser("report", help="Write a self-contained HTML report of a run.")
    rp.add_argument("run_dir")
    rp.add_argument("--out", required=True)
    rp.add_argument("--no-saliency", action="store_true", help="Skip Grad-CAM / word attributions (faster).")
    rp.set_defaults(fn=cmd_report)

    e = sub.add_parser("evaluate", help="Print a run's test evaluation.")
    e.add_argument("run_dir")
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except StudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except Exception as e:  # one line, never a traceback; FTS_DEBUG=1 shows it
        if os.environ.get("FTS_DEBUG"):
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (set FTS_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
