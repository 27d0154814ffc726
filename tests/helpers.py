import time

from core.config import DataConfig, RunConfig, TrainConfig
from core.train.events import Callback
from core.train.trainer import Trainer


def config(source, backbone="tiny-cnn", strategy="full", **train) -> RunConfig:
    train.setdefault("epochs", 2)
    train.setdefault("batch_size", 8)
    train.setdefault("early_stopping_patience", 0)
    return RunConfig(data=DataConfig(source=str(source)), train=TrainConfig(backbone=backbone, strategy=strategy, **train))


def train(stores, cfg, callbacks=(), control=None, resume_rec=None):
    datasets, runs = stores
    if resume_rec is None:
        ds = datasets.ingest(cfg.data.source).dataset
        rec = runs.create(cfg, ds.id)
    else:
        rec = resume_rec
    tr = Trainer(cfg, rec, runs, datasets, control=control, callbacks=list(callbacks))
    status = tr.run(resume=resume_rec is not None)
    return rec, status, tr


class Record(Callback):
    def __init__(self):
        self.events = []

    def on_event(self, ctx, ev):
        self.events.append(ev)

    def kinds(self):
        out = []
        for e in self.events:
            if e.kind != "progress" and (not out or out[-1] != e.kind):
                out.append(e.kind)
        return out


class At(Callback):
    """Runs fn(ctx) when an event of this kind comes at or after the given optimiser step (once)."""

    def __init__(self, step, fn, kind="step"):
        self.step, self.fn, self.kind, self.done = step, fn, kind, False

    def on_event(self, ctx, ev):
        if ev.kind == self.kind and ev.step >= self.step and not self.done:
            self.done = True
            self.fn(ctx)


def wait_for(pred, timeout=180, every=0.2):
    """pred()'s first truthy value, polled until the timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError("timed out")


def stores_at(home):
    """A dataset store and a run store under one studio home (for module-scoped fixtures)."""
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore

    return DatasetStore(home / "datasets"), RunStore(home / "runs")
