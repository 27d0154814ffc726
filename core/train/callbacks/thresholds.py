"""Each label's decision threshold for a multi-label run, tuned for F1 on validation with the best weights
(labels with too few positives there keep 0.5) and saved in labels.json: the test evaluation, the predictor,
every export and `predict` read the same thresholds."""
from __future__ import annotations

from ...fsutil import atomic_write_json
from ...multilabel_metrics import tune_thresholds
from ...runs.folder import RunFolder
from ..events import Callback


class Thresholds(Callback):
    order = -5  # after the best weights are back, before the test evaluation

    def __init__(self, data, folder: RunFolder | None, labels: dict):
        self.data, self.folder, self.labels = data, folder, labels

    def on_fit_end(self, ctx):
        d, st = self.data, ctx.state
        val = d.idx("val")
        if (ctx.control.status or "completed") not in ("completed", "stopped"):
            return
        thresholds = tune_thresholds(d.targets.truth[val.numpy()], ctx.predict(val)) if len(val) else \
            [0.5] * len(d.classes)
        d.targets.extra["thresholds"] = thresholds
        st.results["thresholds"] = dict(zip(d.classes, thresholds))
        if self.folder is not None:
            atomic_write_json(self.folder.labels_file, {**self.labels, **d.meta})
