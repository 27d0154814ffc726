"""What every command shares: plain usage errors, output as text or JSON, the studio's stores."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..data.datasets import DatasetStore, home
from ..runs.folder import RunFolder
from ..runs.store import RunStore
from .args import CliError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """Usage mistakes as one plain line and exit code 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def emit(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    else:
        for k, v in obj.items():
            print(f"{k}: {v}")


def home_of(args) -> Path:
    base = Path(args.home).expanduser() if getattr(args, "home", None) else home()
    if base.exists() and not base.is_dir():
        raise CliError(f"--home {base} is a file; give a folder for the studio's data (it is created if missing).")
    return base


def stores(args):
    base = home_of(args)
    runs = RunStore(Path(args.runs_dir) if getattr(args, "runs_dir", None) else base / "runs")
    return DatasetStore(base / "datasets"), runs


def run_of(args, ref: str) -> tuple[DatasetStore, RunStore, RunFolder]:
    """A run given by its folder or by its id in this studio home. A folder brings its own home (the run store's
    parent, when it holds the datasets) unless --home says otherwise: a run's data is found where it was made."""
    if Path(ref).is_dir():
        runs = RunStore(Path(ref).resolve().parent)
        own = runs.root.parent / "datasets"
        datasets = stores(args)[0] if getattr(args, "home", None) or not own.is_dir() else DatasetStore(own)
        return datasets, runs, runs.open_dir(ref)
    datasets, runs = stores(args)
    return datasets, runs, runs.get(ref)
