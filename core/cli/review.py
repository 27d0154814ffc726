"""review and relabel: the expert's loop from the command line. `review RUN` lists the examples most worth a look;
`relabel RUN --decisions FILE` records decisions from a CSV (row, decision, label) and makes the new version."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from ..data.review import DECISIONS, decide, new_version
from ..errors import DataError
from ..runs.review import run_dataset, run_queue
from .common import emit, run_of


def cmd_review(args) -> int:
    datasets, _, rec = run_of(args, args.run)
    ds, queue = run_queue(rec, datasets)
    shown = queue.head(args.limit)
    if args.json:
        emit({"run_id": rec.id, "dataset": ds.id, "examples": shown.drop(columns=["reasons"]).to_dict("records")},
             True)
    else:
        print(f"{len(queue)} example(s) of {ds.id} worth a look (first {len(shown)}); row = position in the version")
        print(shown[["pos", "label", "predicted", "confidence", "decision", "why", "input"]].to_string(index=False,
                                                                                                     max_colwidth=60))
    return 0


def cmd_relabel(args) -> int:
    datasets, _, rec = run_of(args, args.run)
    ds = run_dataset(rec, datasets)
    try:
        table = pd.read_csv(args.decisions, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{args.decisions}: not a readable CSV ({e}).") from None
    missing = {"row", "decision"} - set(table.columns)
    if missing:
        raise DataError(f"{args.decisions}: needs the columns row, decision (and label to relabel); missing "
                        f"{', '.join(sorted(missing))}.")
    for i, r in table.iterrows():
        if not str(r["row"]).strip().isdigit():
            raise DataError(f"{args.decisions} line {i + 2}: row {r['row']!r} is not a row number of {ds.id}.")
        try:
            decide(ds, int(r["row"]), str(r["decision"]).strip(), r.get("label") or None, args.who)
        except DataError as e:
            raise DataError(f"{args.decisions} line {i + 2}: {e}") from None
    new, made = new_version(datasets, ds, args.who)
    emit({**made, "next": f"finetune-studio train --init-from {rec.id} --data {new.id}"}, args.json)
    if not args.json:
        print(f"Continue the run on it: finetune-studio train --init-from {rec.id} --data {new.id}", file=sys.stderr)
    return 0


def add_review_commands(sub: argparse._SubParsersAction) -> None:
    rv = sub.add_parser("review", help="List the examples of a run's data most worth an expert's look.")
    rv.add_argument("run", help="The run's id or folder.")
    rv.add_argument("--limit", type=int, default=50)
    rv.add_argument("--json", action="store_true")
    rv.set_defaults(fn=cmd_review)
    rl = sub.add_parser("relabel", help="Record decisions from a CSV and make the new dataset version from them.")
    rl.add_argument("run", help="The run whose data was reviewed (its id or folder).")
    rl.add_argument("--decisions", required=True,
                    help=f"CSV with columns row, decision ({', '.join(DECISIONS)}) and label (for relabel); row as "
                         "`review` lists it.")
    rl.add_argument("--who", default="", help="Who made the decisions (recorded with each).")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(fn=cmd_relabel)
