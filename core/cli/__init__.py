"""finetune-studio: the studio and the headless engine from one command.

Exit codes: 0 done; 2 something to fix on your side (one plain line on stderr says what, and what to do next);
1 a fault in the studio itself (the line says where the details were written); 130 interrupted."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..backbones import list_backbones
from ..data.audit import cached_audit
from ..errors import StudioError
from ..fsutil import read_json
from ..metrics import comparison
from ..predict import serve
from ..predict.export import FORMATS, export
from ..predict.files import predict_path
from ..predict.predictor import to_csv_bytes
from ..report.html import write_report
from .args import CliError
from .common import EXIT_USAGE, Parser, emit, home_of, run_of, stores
from .review import add_review_commands
from .runs import add_run_commands


def cmd_app(args) -> int:
    app = Path(__file__).resolve().parents[2] / "app.py"
    if not app.is_file():
        raise CliError(f"Studio entry point not found at {app}; install from the repository (pip install -e .).")
    if args.demo:
        os.environ.setdefault("FTS_DEMO", "1")
    if args.home:
        os.environ["FTS_HOME"] = str(home_of(args))
    argv = [sys.executable, "-m", "studio.serve", "run", str(app), "--server.port", str(args.port),
            # headless: no first-run e-mail prompt, no browser launch on a server; the URL is printed
            "--server.headless", "false" if args.open else "true", "--browser.gatherUsageStats", "false",
            "--server.maxUploadSize", os.environ.get("FTS_MAX_UPLOAD_MB", "200"),
            "--server.enableXsrfProtection", "true", "--client.toolbarMode", "minimal"]
    print(f"Fine-Tune Studio: http://localhost:{args.port}", flush=True)
    os.chdir(app.parent)  # picks up .streamlit/config.toml
    os.execv(sys.executable, argv)
    return 0


def cmd_backbones(args) -> int:
    rows = [s.to_json() for s in list_backbones(include_hidden=args.all)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:<22} {r['modality']:<6} {'offline' if r['offline'] else 'download':<9} {r['description']}")
    return 0


def cmd_audit(args) -> int:
    datasets, _ = stores(args)
    ds = datasets.ingest(args.path, text_col=args.text_col, label_col=args.label_col).dataset
    rep = cached_audit(ds)
    out = {"dataset_id": ds.id, "modality": ds.modality, **rep.summary(), "bad": ds.manifest.get("bad", []),
           "notes": ds.manifest.get("notes", [])}
    emit(out, args.json)
    return 0


def _scalars(res: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if res is None else {k: v for k, v in res.items() if not isinstance(v, (list, dict)) and k != "epoch"}


def cmd_evaluate(args) -> int:
    """Scores, per class and the most confused pairs; never the confusion matrix (2,000 classes: 4 million
    cells; `report` draws it, the run folder keeps it)."""
    _, _, rec = run_of(args, args.run_dir)
    res = rec.result("test")
    if res is None:
        raise CliError(f"{rec.dir} has no test evaluation (status: {rec.status.get('status', 'unknown')}).")
    summary = {"run_id": rec.id, "status": rec.status.get("status"), "task": rec.status.get("task", "classification"),
               "test": _scalars(res), **{k: res[k] for k in ("per_class", "most_confused") if k in res},
               "val": _scalars(rec.result("val")), "baseline": rec.status.get("baseline"),
               "vs_baseline": rec.status.get("vs_baseline"), "verdict": comparison(rec.status),
               "test_overlap": rec.status.get("test_overlap")}
    if rec.parent_changes_file.is_file():  # a continued run: against its parent, without the example lists
        changes = read_json(rec.parent_changes_file)
        summary.update(parent=changes.get("parent"), what_changed=rec.status.get("vs_parent"),
                       vs_parent={k: v for k, v in changes.items() if k not in ("fixed", "broken")})
    emit(summary, args.json)
    return 0


def cmd_export(args) -> int:
    datasets, _, rec = run_of(args, args.run_dir)
    rep = export(rec.dir, args.out, args.format, datasets=datasets, force=args.force)
    emit(rep, args.json)
    return 0


def cmd_predict(args) -> int:
    model = args.export_dir
    if not Path(model).is_dir() and not Path(model).exists():  # a run id of this home, as every other command takes
        model = run_of(args, model)[2].dir
    table, skipped = predict_path(model, args.input, args.text_col)
    failed = int((table["error"] != "").sum())
    if args.json:
        rows = []
        for r in json.loads(table.to_json(orient="records")):
            probs = {k[2:]: r.pop(k) for k in list(r) if k.startswith("p:")}
            rows.append({**r, **({"probabilities": probs} if probs and r.get("prediction") not in ("", None) else {}),
                         "error": r.get("error") or None})
        classes = [c[2:] for c in table.columns if c.startswith("p:")]
        print(json.dumps({**({"classes": classes} if classes else {}), "predictions": rows, "skipped": skipped},
                         indent=2, ensure_ascii=False))
    elif args.out:
        Path(args.out).write_bytes(to_csv_bytes(table))
    else:
        sys.stdout.write(to_csv_bytes(table).decode("utf-8"))
    for s in skipped:
        print(f"skipped {s['item']}: {s['reason']}", file=sys.stderr)
    if failed:
        print(f"error: {failed} of {len(table)} input(s) could not be predicted; their reasons are in the 'error' "
              "column.", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_serve(args) -> int:
    serve.run(args.model_dir, args.host, args.port, args.max_body_mb, args.max_batch)
    return 0


def cmd_report(args) -> int:
    datasets, _, rec = run_of(args, args.run_dir)
    out = write_report(rec, args.out, datasets.find(rec.status.get("dataset")), explain=not args.no_saliency)
    print(str(out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="finetune-studio", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", help="Studio data folder (default: $FTS_HOME or ~/.finetune-studio).")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)

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

    add_run_commands(sub)
    add_review_commands(sub)

    x = sub.add_parser("export", help="Export a run: folder, ONNX (parity-checked) or INT8.")
    x.add_argument("run_dir")
    x.add_argument("--format", choices=FORMATS, default="folder")
    x.add_argument("--out", required=True, help="A new or empty folder.")
    x.add_argument("--force", action="store_true", help="Replace what the --out folder holds.")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_export)

    pr = sub.add_parser("predict", help="Predict with an exported model (or a run folder).")
    pr.add_argument("export_dir", help="An exported model folder, a run folder, or a run id of this home.")
    pr.add_argument("input", help="A table (CSV/TSV/JSON Lines/Parquet/Excel), an image, a folder of images or a zip.")
    pr.add_argument("--text-col", help="The table's input column (asked when it is not obvious).")
    pr.add_argument("--out", help="Write the predictions CSV here instead of to standard output.")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_predict)

    sv = sub.add_parser("serve", help="Serve a run's (or an export's) predictor over HTTP: POST /predict, GET /health.")
    sv.add_argument("model_dir", help="A run folder, or an exported model folder (any format).")
    sv.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-body-mb", type=float, default=serve.MAX_BODY_MB, help="Largest request accepted.")
    sv.add_argument("--max-batch", type=int, default=serve.MAX_BATCH, help="Most inputs in one request.")
    sv.set_defaults(fn=cmd_serve)

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


def _log_fault(args) -> Path | None:
    """The traceback of a fault in the studio, kept where the user can find and send it."""
    for base in (getattr(args, "home", None), os.environ.get("FTS_HOME"), Path.home() / ".finetune-studio", "/tmp"):
        if not base:
            continue
        try:
            d = Path(base).expanduser() / "logs"
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(traceback.format_exc(), encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage mistake already explained in one line
        return int(e.code or 0)
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
        where = _log_fault(args)
        print(f"error: unexpected {type(e).__name__} in the studio itself: {e}. "
              + (f"The details are in {where}; please include that file when reporting it." if where else
                 "Run again with FTS_DEBUG=1 to see the details."), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
