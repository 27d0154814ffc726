"""One training run in its own process: `python -m core.runs.worker RUN_DIR --datasets DIR`. It writes only to the
run folder (as the CLI does); the studio's dispatcher (core.runs.runner) starts it, watches it, and reads what it
writes. A stop is asked for with a file beside the run (control.json) or SIGTERM, and honoured within a step."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from ..data.datasets import DatasetStore
from ..fsutil import atomic_write_json
from ..train import distributed as D
from ..train.events import Callback, Control
from ..train.trainer import Trainer
from .folder import RunFolder
from .store import RunStore


class StopRequests(Callback):
    """Watches the run's control file (a cheap stat per step and per progress message)."""
    order = -20

    def __init__(self, run_dir: Path, control):
        self.path, self.control, self.mtime = RunFolder(run_dir).control_file, control, 0.0

    def _check(self) -> None:
        try:
            m = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if m == self.mtime:
            return
        self.mtime = m
        try:
            ask = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return
        if ask.get("stop"):
            self.control.stop(ask.get("status", "stopped"), ask.get("reason", "Stopped by the user."))

    def on_step_end(self, ctx, loss):
        self._check()

    def on_event(self, ctx, ev):
        if ev.kind == "progress":
            self._check()


def request_stop(run_dir: Path, reason: str = "Stopped by the user.") -> None:
    atomic_write_json(RunFolder(run_dir).control_file, {"stop": True, "status": "stopped", "reason": reason,
                                                "asked": time.time()})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="core.runs.worker")
    ap.add_argument("run_dir")
    ap.add_argument("--datasets", required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    runs = RunStore(run_dir.parent)
    rec = runs.open_dir(run_dir)
    control = Control()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: control.stop())
    D.init_from_env()  # several processes under torchrun; alone: nothing
    try:  # a stop asked for before this process got going is honoured: the dispatcher cleared older ones
        trainer = Trainer(rec.config, rec, runs, DatasetStore(Path(args.datasets)), control=control,
                          callbacks=[StopRequests(run_dir, control)])
        st = trainer.run(resume=args.resume)
        return 0 if st.get("status") in ("completed", "stopped", "diverged", "failed") else 1
    finally:
        D.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
