"""The blend: the network averaged with the baseline's kind of model (TF-IDF for text, a probe on pretrained
features for images), the network's share chosen on validation with the best weights (see core.predict.blend)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...fsutil import atomic_write_json
from ...predict.blend import blend
from ...runs.folder import RunFolder
from ..events import Callback


@dataclass
class BlendModel:
    partner: Any
    weight: float
    view: Any
    modality: Any

    def apply(self, out: np.ndarray, idx: torch.Tensor) -> np.ndarray:
        if self.weight >= 1:
            return out
        return blend(out, self.partner.predict_proba(self.modality.partner_inputs(self.view, idx.numpy())), self.weight)


class Blend(Callback):
    order = -10  # after the best weights are back, before the test evaluation

    def __init__(self, data, view, partner_name: str, folder: RunFolder | None):
        self.data, self.view, self.name, self.folder = data, view, partner_name, folder

    def on_fit_end(self, ctx):
        d, st = self.data, ctx.state
        val = d.idx("val")
        if not len(val) or (ctx.control.status or "completed") not in ("completed", "stopped"):
            return
        ctx.emit("progress", fraction=0.0, message=f"Fitting the {self.name} model to blend with")
        rows = d.idx("train").numpy()
        partner = d.modality.partner(self.view, rows, d.targets.truth[rows], d.meta)
        w, scores = d.task.blend_weight(ctx.predict(val),
                                        partner.predict_proba(d.modality.partner_inputs(self.view, val.numpy())),
                                        d.targets.truth[val.numpy()], d.meta)
        name = partner.describe(d.task.estimator) if hasattr(partner, "describe") else self.name
        info = {"network_weight": w, "partner": name,
                ("val_mae" if scores.get("metric") == "mae" else "val_macro_f1"): scores}
        st.results["blend"], st.results["blend_model"] = info, BlendModel(partner, w, self.view, d.modality)
        if self.folder is not None:
            if w < 1.0:
                partner.save(self.folder.partner_dir)
            atomic_write_json(self.folder.blend_file, info)
