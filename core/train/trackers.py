"""Optional mirrors of a run to MLflow or TensorBoard, as ordinary callbacks, when those are installed."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .events import Callback

TRACKERS = ("tensorboard", "mlflow")


def available(name: str) -> bool:
    mod = {"tensorboard": "tensorboard", "mlflow": "mlflow"}[name]
    return importlib.util.find_spec(mod) is not None


class TensorBoard(Callback):
    order = 90

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.w = SummaryWriter(log_dir=str(log_dir))

    def on_event(self, ctx, ev):
        d = ev.data
        if ev.kind == "step":
            self.w.add_scalar("train/loss", d["loss"], ev.step)
            self.w.add_scalar("train/lr", d["lr"], ev.step)
        elif ev.kind == "eval":
            for k, v in scores(d).items():
                self.w.add_scalar(f"{d['split']}/{k}", v, ev.epoch + 1)
        elif ev.kind == "run_end":
            self.w.close()


def scores(data: dict) -> dict[str, float]:
    """An evaluation event's numbers, whatever the task (accuracy, micro-F1, MAE...): flags and tables left out."""
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k != "epoch_metric"}


class MLflow(Callback):
    order = 90

    def __init__(self, run_name: str, params: dict):
        import mlflow

        self.mlflow = mlflow
        self.run = mlflow.start_run(run_name=run_name)
        mlflow.log_params({k: v for k, v in params.items() if v is not None and not isinstance(v, (list, dict))})

    def on_event(self, ctx, ev):
        d = ev.data
        if ev.kind == "step":
            self.mlflow.log_metrics({"train_loss": d["loss"], "lr": d["lr"]}, step=ev.step)
        elif ev.kind == "eval":
            self.mlflow.log_metrics({f"{d['split']}_{k}": v for k, v in scores(d).items()}, step=ev.epoch + 1)
        elif ev.kind == "run_end":
            self.mlflow.set_tag("status", d.get("status"))
            self.mlflow.end_run()


def build(names: list[str], run_dir: Path, run_name: str, params: dict) -> tuple[list[Callback], list[str]]:
    """The trackers asked for that are installed, and a note for each that is not."""
    cbs, notes = [], []
    for n in names:
        if not available(n):
            notes.append(f"{n} is not installed; the run is not mirrored there (pip install {n}).")
        elif n == "tensorboard":
            cbs.append(TensorBoard(run_dir / "tensorboard"))
        else:
            cbs.append(MLflow(run_name, params))
    return cbs, notes
