"""Validation every epoch (which picks the best epoch), the test evaluation at the end (with the blend and the
paired comparison with the baseline), and — on the main process only — the files they leave in eval/."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from ...errors import RunError
from ...fsutil import atomic_write_json
from ...portable import open_rgb
from ...predict.explain import explain, target_of, to_json, worst_rows
from ...runs.folder import RunFolder
from .. import distributed as D
from ..events import Callback


class Validation(Callback):
    def __init__(self, data, monitor: str):
        self.data, self.monitor, self.idx = data, monitor, data.idx("val")

    def on_validate(self, ctx):
        task, st = self.data.task, ctx.state
        res = task.evaluate(self.data.targets.truth[self.idx.numpy()], ctx.predict(self.idx), self.data.meta)
        res["epoch"] = st.epoch + 1
        metric = task.score(res, self.monitor)
        st.improved = metric > st.best_metric
        if st.improved:
            st.best_metric, st.best_epoch = metric, st.epoch
        st.results["val"] = res
        ctx.emit("eval", split="val", epoch_metric=metric, improved=st.improved,
                 **{k: res[k] for k in task.event_keys})


class TestEvaluation(Callback):
    """The test split, once, with the best weights, through the run's own predictor (the network, the blend's
    partner and its share): the numbers a run reports are those of the model it hands over. Where a partner
    takes part, each part's own test scores are kept beside (network alone, partner alone)."""

    def __init__(self, data, baseline_pred: np.ndarray | None, seed: int, folder: RunFolder | None,
                 predictor: Callable[[Any, float], Any], features: Callable[[], np.ndarray | None]):
        self.data, self.baseline_pred, self.seed, self.folder = data, baseline_pred, seed, folder
        self.predictor, self.features = predictor, features

    def on_fit_end(self, ctx):
        st, task, idx = ctx.state, self.data.task, self.data.idx("test")
        diverged = ctx.control.status == "diverged"
        if not len(idx) or (diverged and not st.results.get("has_best")):
            return
        blend = st.results.get("blend") or {}
        pred = self.predictor(st.results.get("partner"), float(blend.get("network_weight", 1.0)))
        got = self._predict(pred, idx)
        out = got["outputs"]
        truth = self.data.targets.truth[idx.numpy()]
        res = task.evaluate(truth, out, self.data.meta)
        res["epoch"] = st.epoch + 1
        res["vs_baseline"] = self._vs_baseline(truth, out)
        res["predictor"] = pred.describe()
        if pred.partner is not None:
            if got["network"] is None:  # no share in the predictions; its own scores are still worth knowing
                got["network"] = self._predict(self.predictor(None, 1.0), idx)["outputs"]
            res["parts"] = {name: {k: v for k, v in task.evaluate(truth, got[name], self.data.meta).items()
                                   if k in task.headline} for name in ("network", "partner")}
        st.results["test"], st.results["test_out"] = res, out
        ctx.emit("eval", split="test", **{k: res[k] for k in task.event_keys})

    def _predict(self, pred, idx) -> dict[str, Any]:
        """Each process predicts its share of the test rows (raw inputs, as any prediction); all gather."""
        mine = idx[D.rank()::D.world()]
        feats = self.features()
        got = pred.predict([self.data.files[i] for i in mine.tolist()],
                           features=None if feats is None else feats[mine.numpy()], parts=True)
        bad = [e for e in got["errors"] if e]
        if bad:
            raise RunError(f"A test input could not be read for the test evaluation: {bad[0]}.")
        return {k: D.gather_rows(idx, got[k]) if isinstance(got[k], np.ndarray) else got[k]
                for k in ("outputs", "network", "partner")}

    def _vs_baseline(self, truth: np.ndarray, out: np.ndarray) -> dict[str, Any] | None:
        """Paired with the baseline's predictions on the same rows (kept from the plan, or read back after a
        resume)."""
        base = self.baseline_pred
        path = self.folder.baseline_predictions if self.folder else None
        if base is None and path is not None and path.is_file():
            base = np.load(path, allow_pickle=False)
        if base is None or len(base) != len(truth):
            return None
        return self.data.task.compare(truth, out, base, self.data.meta, seed=self.seed)

class EvalFiles(Callback):
    """eval/val.json every epoch; eval/test.json and the test predictions (with inputs, for Evaluate) at the end."""
    order = 1

    def __init__(self, data, folder: RunFolder):
        self.data, self.folder = data, folder

    def on_validate(self, ctx):
        atomic_write_json(self.folder.result_file("val"), ctx.state.results["val"])

    def on_fit_end(self, ctx):
        res = ctx.state.results.get("test")
        if res is None:
            return
        atomic_write_json(self.folder.result_file("test"), res)
        idx = self.data.idx("test").tolist()
        d = self.data
        cols = d.task.prediction_columns(d.targets.truth[idx], ctx.state.results["test_out"], d.meta)
        df = pd.DataFrame({"row": [str(d.source_rows[i]) for i in idx], "input": [d.display[i] for i in idx],
                           **cols, **({"file": [d.files[i] for i in idx]} if d.modality.file_inputs else {})})
        df.to_parquet(self.folder.test_predictions, index=False)


class ExplainMistakes(Callback):
    """The worst test mistakes explained with the model still in memory when the run ends, so the report reads
    them instead of loading the model and running Integrated Gradients per example. It spends at most a tenth of
    the run's own time (at least SECONDS): a search trial stays a trial; what it leaves, the report explains."""
    order = 2  # after EvalFiles has written the test predictions
    SECONDS = 1.0

    def __init__(self, data, folder: RunFolder, predictor: Callable[[Any, float], Any]):
        self.data, self.folder, self.predictor = data, folder, predictor

    def on_fit_end(self, ctx):
        st = ctx.state
        if st.results.get("test") is None or not self.folder.test_predictions.is_file():
            return
        if ctx.control.status == "stopped":  # a person waiting for the stop
            return
        worst = worst_rows(pd.read_parquet(self.folder.test_predictions), self.data.task.has_classes)
        if worst.empty:
            return
        blend = st.results.get("blend") or {}
        pred = self.predictor(st.results.get("partner"), float(blend.get("network_weight", 1.0)))
        ctx.emit("progress", fraction=0.99, message=f"Explaining the {len(worst)} worst test example(s) for the report")
        idx, files = self.data.idx("test").numpy(), self.data.files
        deadline = time.time() + max(self.SECONDS, (time.time() - st.started) / 10)
        rows, done = [], []
        for i, (_, r) in zip(worst.index, worst.iterrows()):
            if time.time() > deadline:
                break
            raw = open_rgb(files[idx[i]]) if self.data.modality.file_inputs else files[idx[i]]
            try:
                done.append(to_json(explain(pred, raw, target_of(pred, r))))
            # a model Captum cannot take apart (its hooks assert; shapes raise): the report tries and says so,
            # and the run keeps its result
            except (ValueError, RuntimeError, AssertionError, TypeError):
                break
            rows.append(str(r["row"]))
        atomic_write_json(self.folder.explanations_file, {"rows": rows, "explained": done})
