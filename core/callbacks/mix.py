"""MixUp (Zhang et al. 2018): each training batch is blended with a shuffled copy of itself; the loss mixes
the two sets of targets with the same weight."""
from __future__ import annotations

import torch

from ..events import Callback


class MixUp(Callback):
    def __init__(self, alpha: float):
        self.alpha = alpha

    def on_batch(self, ctx, batch):
        x = batch.inputs.get("pixel_values")
        if x is None or self.alpha <= 0:
            return batch
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        perm = batch.perm if batch.perm is not None else torch.randperm(len(batch.y), generator=batch.gen)
        batch.inputs = {**batch.inputs, "pixel_values": lam * x + (1 - lam) * x[perm]}
        batch.mix = (perm, lam)
        return batch
