"""The blend: the network averaged with the baseline's kind of model (TF-IDF for text, a probe on pretrained
features for images), the network's share chosen on validation with the best weights (see core.predict.blend),
or, where the network is a head solved on cached features, on out-of-fold predictions over training +
validation (core.train.crossfit).
What it decides (the partner and the share) becomes part of the run's one predictor."""
from __future__ import annotations

import time

from ...fsutil import atomic_write_json
from ...modalities.base import LinearView
from ...predict.blend import describe_partner, save_partner
from ...runs.folder import RunFolder
from ..crossfit import CrossFit, fold_scores, partner_outputs
from ..events import Callback


class Blend(Callback):
    order = -10  # after the best weights are back, before the test evaluation

    def __init__(self, data, view: LinearView, folder: RunFolder | None, crossfit: CrossFit | None = None):
        self.data, self.view, self.folder, self.crossfit = data, view, folder, crossfit

    def on_fit_end(self, ctx):
        d, st, cf = self.data, ctx.state, self.crossfit
        val = d.idx("val")
        if (not len(val) and ctx.cfg.blend_weight is None) or \
                (ctx.control.status or "completed") not in ("completed", "stopped"):
            return
        ctx.emit("progress", fraction=0.0, message=f"Fitting the {self.view.name} model to blend with")
        rows = d.idx("train").numpy()
        partner = self.view.partner(rows, d.targets.truth[rows], len(d.classes), ctx.cfg.seed)
        if cf is not None and cf.net is not None:  # the network is a solved head: decide on every row it has
            ctx.emit("progress", fraction=0.5, message=f"Choosing the blend's share on {cf.describe()}")
            started = time.perf_counter()
            truth = d.targets.truth[cf.rows]
            other = partner_outputs(self.view, partner, cf, d.targets.truth, len(d.classes), ctx.cfg.seed)
            other = other.reshape(cf.net.shape)  # values: one column, as the network gives them
            w, scores = d.task.blend_weight(cf.net, other, truth, d.meta, fixed=ctx.cfg.blend_weight)
            metric = scores.get("metric", "macro_f1")  # what the share was chosen on
            scores["crossfit"] = {"rows": len(cf.rows), "folds": len(cf.folds), "metric": metric, **{
                name: fold_scores(d.task, truth, out, cf, d.meta, metric)
                for name, out in (("network_only", cf.net), ("partner_only", other),
                                  ("blend", w * cf.net + (1 - w) * other))},
                                  "seconds": round(time.perf_counter() - started, 1)}
        else:
            w, scores = d.task.blend_weight(ctx.predict(val), partner.predict(*self.view.inputs(val.numpy())),
                                            d.targets.truth[val.numpy()], d.meta, fixed=ctx.cfg.blend_weight)
        info = {"network_weight": w, "partner": describe_partner(partner, d.task.estimator),
                ("val_mae" if scores.get("metric") == "mae" else "val_macro_f1"): scores}
        st.results["blend"], st.results["partner"] = info, partner
        if self.folder is not None:
            if w < 1.0:
                save_partner(partner, self.folder.partner_dir)
            atomic_write_json(self.folder.blend_file, info)
