"""The blend: the network averaged with the baseline's kind of model (TF-IDF for text, a probe on pretrained
features for images), the network's share chosen on validation with the best weights (see core.predict.blend).
What it decides (the partner and the share) becomes part of the run's one predictor."""
from __future__ import annotations

from ...fsutil import atomic_write_json
from ...modalities.base import LinearView
from ...predict.blend import describe_partner, save_partner
from ...runs.folder import RunFolder
from ..events import Callback


class Blend(Callback):
    order = -10  # after the best weights are back, before the test evaluation

    def __init__(self, data, view: LinearView, folder: RunFolder | None):
        self.data, self.view, self.folder = data, view, folder

    def on_fit_end(self, ctx):
        d, st = self.data, ctx.state
        val = d.idx("val")
        if (not len(val) and ctx.cfg.blend_weight is None) or \
                (ctx.control.status or "completed") not in ("completed", "stopped"):
            return
        ctx.emit("progress", fraction=0.0, message=f"Fitting the {self.view.name} model to blend with")
        rows = d.idx("train").numpy()
        partner = self.view.partner(rows, d.targets.truth[rows], len(d.classes), ctx.cfg.seed)
        w, scores = d.task.blend_weight(ctx.predict(val), partner.predict(*self.view.inputs(val.numpy())),
                                        d.targets.truth[val.numpy()], d.meta, fixed=ctx.cfg.blend_weight)
        info = {"network_weight": w, "partner": describe_partner(partner, d.task.estimator),
                ("val_mae" if scores.get("metric") == "mae" else "val_macro_f1"): scores}
        st.results["blend"], st.results["partner"] = info, partner
        if self.folder is not None:
            if w < 1.0:
                save_partner(partner, self.folder.partner_dir)
            atomic_write_json(self.folder.blend_file, info)
