"""Mixing training images: MixUp (Zhang et al. 2018) blends each batch with a shuffled copy of itself; CutMix
(Yun et al. 2019) pastes a patch of the partner image in. The loss mixes the two targets by the same weight
(for CutMix, the share of the image that is the original's)."""
from __future__ import annotations

import torch

from ..events import Callback


def cutmix(x: torch.Tensor, perm: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """x with a box of its partner images pasted in (the box drawn from the global generator), and the share of
    each image that is still its own."""
    h, w = x.shape[-2:]
    cut = (1 - lam) ** 0.5
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(0, h, (1,))), int(torch.randint(0, w, (1,)))
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
    return out, 1 - (y2 - y1) * (x2 - x1) / (h * w)


class Mix(Callback):
    def __init__(self, mixup_alpha: float, cutmix_alpha: float = 0.0, prob: float = 1.0):
        self.mixup, self.cutmix, self.prob = mixup_alpha, cutmix_alpha, prob

    def on_batch(self, ctx, batch):
        x = batch.inputs.get("pixel_values")
        if x is None or (self.mixup <= 0 and self.cutmix <= 0):
            return batch
        if self.prob < 1 and float(torch.rand(1)) >= self.prob:
            return batch
        use_cut = self.cutmix > 0 and (self.mixup <= 0 or float(torch.rand(1)) < 0.5)
        alpha = self.cutmix if use_cut else self.mixup
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = batch.perm if batch.perm is not None else torch.randperm(len(batch.y), generator=batch.gen)
        if use_cut:
            mixed, lam = cutmix(x, perm, lam)
        else:
            mixed = lam * x + (1 - lam) * x[perm]
        batch.inputs = {**batch.inputs, "pixel_values": mixed}
        batch.mix = (perm, lam)
        return batch


MixUp = Mix  # the name it had when it did MixUp alone
