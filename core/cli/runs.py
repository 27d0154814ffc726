"""The commands that start, stop and list runs, through the studio's one run lifecycle (core.runs.runner)."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..runs.folder import RunFolder
from ..runs.lifecycle import Lease
from ..runs.runner import StopRequests, check_resumable, enqueue, owner_line, prepare_run, run_here, stop, wait_turn
from ..train import distributed as D
from ..train.events import Control
from ..train.lr_finder import find_lr
from ..train.search import DEFAULT_TRIALS, search, space_from_json
from ..train.trainer import Trainer
from .args import add_train_arguments, config_from_args
from .common import emit, run_of, stores


def _here(runs, datasets, rec, resume: bool = False) -> dict[str, Any]:
    """The run trained by this command through the studio's one lifecycle: it waits its turn in the queue,
    holds the run's lease, and stops on Ctrl-C, `finetune-studio stop` or the Monitor page's Stop."""
    control = Control()
    prev = signal.signal(signal.SIGINT, lambda *_: control.stop())  # at the next step, like the Stop button
    try:
        return run_here(runs, datasets, rec, resume=resume, kind="cli", control=control,
                        say=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        signal.signal(signal.SIGINT, prev)


def _ranks(runs, datasets, cfg, owner: str | None) -> tuple[Any, dict[str, Any]]:
    """Under a torchrun the person started: rank 0 creates the run, holds its lease and waits its turn; every
    rank trains; rank 0 leaves the queue at the end."""
    lease, rec = None, None
    if D.is_main():
        rec = prepare_run(cfg, datasets, runs, owner)
        lease = Lease.take(rec, "cli")
        enqueue(runs, rec, "self")
        wait_turn(runs, rec, Control(), lambda m: print(m, file=sys.stderr, flush=True))
    rid = D.broadcast(rec.id if rec else None)
    rec, cfg = RunFolder(runs.root / rid), D.broadcast(cfg)
    control = Control()
    prev = signal.signal(signal.SIGINT, lambda *_: control.stop())
    try:
        return rec, Trainer(cfg, rec, runs, datasets, control=control, callbacks=[StopRequests(rec, control)]).run()
    finally:
        signal.signal(signal.SIGINT, prev)
        if lease is not None:
            runs.queue.drop(rec.id)
            lease.release()


def _train_summary(rec, st: dict[str, Any]) -> dict[str, Any]:
    keys = ("test", "baseline", "vs_baseline", "best_epoch", "test_overlap", "blend", "auto", "resolved_strategy",
            "resolved_backbone", "plan", "task", "run_s", "predictor", "parts", "world_size", "notes",
            "parent", "vs_parent", "thresholds", "contrastive", "head_first", "replanned")
    return {"run_id": rec.id, "run_dir": str(rec.dir), "status": st.get("status"), "reason": st.get("reason", ""),
            "trainable_params": st.get("trainable_params"), "total_params": st.get("total_params"),
            **{k: st[k] for k in keys if st.get(k) is not None}, "elapsed_s": st.get("elapsed_s")}


def cmd_train(args) -> int:
    parent = None
    if getattr(args, "train__init_from", None):
        parent = run_of(args, args.train__init_from)[2]
        same = parent.dir.resolve().parent == stores(args)[1].root.resolve()
        args.train__init_from = parent.id if same else str(parent.dir.resolve())  # found again by the run itself
    cfg = config_from_args(args, parent)  # checked before anything is written
    datasets, runs = stores(args)
    if D.init_from_env():  # under torchrun: every rank joins
        try:
            rec, st = _ranks(runs, datasets, cfg, args.owner)
            if D.is_main():
                emit(_train_summary(rec, rec.status), args.json)
            return 0 if st.get("status") in ("completed", "stopped") else 1
        finally:
            D.shutdown()
    rec = prepare_run(cfg, datasets, runs, args.owner)
    st = _here(runs, datasets, rec)
    emit(_train_summary(rec, st), args.json)
    return 0 if st.get("status") in ("completed", "stopped") else 1


def cmd_search(args) -> int:
    datasets, runs = stores(args)
    space = None
    if args.space:
        text = Path(args.space[1:]).read_text(encoding="utf-8") if args.space.startswith("@") else args.space
        space = space_from_json(text)
    control = Control()
    prev = signal.signal(signal.SIGINT, lambda *_: control.stop())  # Ctrl-C: the trial in progress stops, then the search
    try:
        res = search(config_from_args(args), datasets, runs, args.trials, args.timeout, args.study, space,
                     args.owner, control, progress=None if args.json else lambda f, m: print(m, flush=True),
                     storage=args.storage)
    finally:
        signal.signal(signal.SIGINT, prev)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        c = res["counts"]
        print(f"study {res['study']}: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed")
        if "best" in res:
            b = res["best"]
            print(f"best: trial {b['number']} (validation {b['value']:.4f}), run {b['run_id']}; replay it with\n"
                  f"  finetune-studio train --config {b['config']}")
    return 0 if "best" in res else 1


def cmd_resume(args) -> int:
    datasets, runs, rec = run_of(args, args.run_dir)
    with runs.queue.locked():
        check_resumable(runs, rec)
    st = _here(runs, datasets, rec, resume=True)
    emit(_train_summary(rec, st), args.json)
    return 0 if st.get("status") in ("completed", "stopped") else 1


def cmd_stop(args) -> int:
    _, runs, rec = run_of(args, args.run)
    what = stop(runs, rec)
    if args.wait and "next step" in what:
        deadline = time.time() + args.wait
        while time.time() < deadline and runs.reconcile(rec).get("status") in ("queued", "running"):
            time.sleep(0.2)
    st = runs.reconcile(rec)
    emit({"run_id": rec.id, "status": st.get("status"), "action": what}, args.json)
    return 0


def cmd_runs(args) -> int:
    runs = stores(args)[1]
    rows = runs.list(viewer=args.owner) if args.owner else runs.list()
    out = [{"run_id": r["id"], "status": r["status"], "name": r.get("name") or "", "dataset": r.get("dataset"),
            "backbone": r.get("backbone"), "strategy": r.get("strategy"), "created": r.get("created"),
            "test": r.get("test"), "owner": owner_line(RunFolder(runs.root / r["id"]))} for r in rows]
    for w in runs.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    for r in out:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"] or 0))
        score = f"macro-F1 {r['test']['macro_f1']:.3f}" if (r["test"] or {}).get("macro_f1") is not None else ""
        print(f"{r['run_id']}  {r['status']:<11} {when}  {r['strategy'] or ''} {r['backbone'] or ''}  {score}  "
              f"{r['name']}".rstrip())
    return 0


def cmd_lr_find(args) -> int:
    datasets, _ = stores(args)
    res = find_lr(config_from_args(args), datasets)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"suggested learning rate: {res['suggestion']:.2e}" if res["suggestion"] else
              "no clear suggestion (too few steps before the loss diverged)")
    return 0


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    """train, lr-find, search, resume, stop, runs."""
    t = sub.add_parser("train", help="Train headless (or replay a run with --config).")
    lf = sub.add_parser("lr-find", help="Learning-rate range test: suggests a value for lr.")
    for sp in (t, lf):
        add_train_arguments(sp)
    t.set_defaults(fn=cmd_train)
    lf.set_defaults(fn=cmd_lr_find)

    se = sub.add_parser("search", help="Hyperparameter search (Optuna, pruned); trials are runs, the study resumes.")
    add_train_arguments(se)
    se.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help="Trials to add to the study.")
    se.add_argument("--timeout", type=float, help="Seconds after which no new trial starts.")
    se.add_argument("--study", help="Study name (default: search-<dataset id>); the same name resumes it.")
    se.add_argument("--space", help="The search space as JSON, or @file.json (default: filled from the data).")
    se.add_argument("--storage", help="Where the study lives: any SQLAlchemy URL (postgresql://…, mysql://…), so "
                                      "search processes on several machines fill one study. Default: a SQLite file "
                                      "in the run store.")
    se.set_defaults(fn=cmd_search)

    r = sub.add_parser("resume", help="Resume an interrupted or stopped run from its last checkpoint.")
    r.add_argument("run_dir", help="The run's folder, or its id.")
    r.add_argument("--json", action="store_true")
    r.set_defaults(fn=cmd_resume)

    so = sub.add_parser("stop", help="Stop a run wherever it trains (a page's, a command's, a search trial's).")
    so.add_argument("run", help="The run's id or folder.")
    so.add_argument("--wait", type=float, default=30, help="Seconds to wait for it to stop (0: do not wait).")
    so.add_argument("--json", action="store_true")
    so.set_defaults(fn=cmd_stop)

    ls = sub.add_parser("runs", help="List the runs of this studio home, newest first.")
    ls.add_argument("--owner", help="Only the runs this studio user may see.")
    ls.add_argument("--json", action="store_true", help="One object per run: run_id, status, name, ...")
    ls.set_defaults(fn=cmd_runs)
