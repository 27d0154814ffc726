"""One training run in its own process: `python -m core.runs.worker RUN_DIR --datasets DIR`. It holds the run's
lease while it trains (the studio's dispatcher started it, core.runs.runner, or a command that keeps the lease
itself: --lease-held), writes only to the run folder, and leaves the queue when it ends. A stop is asked for
with a file beside the run (control.json) or SIGTERM, and honoured within a step."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ..data.datasets import DatasetStore
from ..train import distributed as D
from ..train.events import Control
from ..train.trainer import Trainer
from .lifecycle import Lease
from .runner import StopRequests
from .store import RunStore


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="core.runs.worker")
    ap.add_argument("run_dir")
    ap.add_argument("--datasets", required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--lease-held", action="store_true", help="The process that started this one holds the lease.")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    runs = RunStore(run_dir.parent)
    rec = runs.open_dir(run_dir)
    control = Control()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: control.stop())
    D.init_from_env()  # several processes under torchrun; alone: nothing
    lease = None
    if D.is_main() and not args.lease_held:
        lease = Lease.take(rec, "worker")
        if lease is None:
            print(f"Run {rec.id} is owned by another process; this worker leaves it alone.", file=sys.stderr)
            return 1
    try:  # a stop asked for before this process got going is honoured: the dispatcher cleared older ones
        trainer = Trainer(rec.config, rec, runs, DatasetStore(Path(args.datasets)), control=control,
                          callbacks=[StopRequests(rec, control)])
        st = trainer.run(resume=args.resume)
        return 0 if st.get("status") in ("completed", "stopped", "diverged", "failed") else 1
    finally:
        if lease is not None:
            runs.queue.drop(rec.id)
            lease.release()
        D.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
