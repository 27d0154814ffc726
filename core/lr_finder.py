"""Learning-rate range test (Smith 2015, as in fastai's lr_find): raise the LR exponentially over a few
dozen steps on a throwaway copy of the model and suggest one where the loss falls fastest."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import get_backbone
from .batches import iterate
from .config import RunConfig
from .datasets import DatasetStore
from .strategies import get_strategy
from .trainer import load_run_data, pick_device, seed_everything


def find_lr(cfg: RunConfig, datasets: DatasetStore, start: float = 1e-7, end: float = 1.0, steps: int = 60,
            progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    progress = progress or (lambda f, m: None)
    t = cfg.train
    spec = get_backbone(t.backbone)
    data = load_run_data(cfg, datasets, spec, progress)
    seed_everything(t.seed)
    model = spec.build(len(data.classes), pooling=cfg.train.pooling)
    groups = get_strategy(t.strategy).prepare(model, t, spec.modality)
    dev = pick_device(t.device)
    model.to(dev).train()
    base = max(g["lr"] for g in groups)
    scale = [g["lr"] / base for g in groups]  # keep each group's ratio (differential, head multipliers)
    opt = torch.optim.AdamW(groups, lr=start)
    train_idx = data.idx("train")
    gen = torch.Generator().manual_seed(t.seed)
    mult = (end / start) ** (1 / max(1, steps - 1))
    lrs, losses = [], []
    avg, best = 0.0, math.inf
    batches = iter(())
    for i in range(steps):
        idx = next(batches, None)
        if idx is None:
            batches = iterate(train_idx, t.batch_size, shuffle=True, gen=gen)
            idx = next(batches)
        lr = start * mult ** i
        for g, s in zip(opt.param_groups, scale):
            g["lr"] = lr * s
        b = {k: v.to(dev) for k, v in data.inputs.batch(idx).items()}
        loss = F.cross_entropy(model(**b).float(), data.y[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        v = float(loss.detach())
        if not math.isfinite(v):
            break
        avg = 0.9 * avg + 0.1 * v
        smooth = avg / (1 - 0.9 ** (i + 1))
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        progress((i + 1) / steps, f"Trying learning rate {lr:.1e}")
        if smooth > 4 * best and i > 10:
            break
    return {"lrs": lrs, "losses": losses, "suggestion": suggest(lrs, losses)}


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The LR of steepest loss descent, ignoring the noisy start and the blow-up at the end."""
    if len(lrs) < 8:
        return None
    lo, hi = 3, int(np.argmin(losses)) + 1
    if hi - lo < 3:
        return float(lrs[max(0, hi - 1)] / 10)
    grad = np.gradient(np.asarray(losses[lo:hi]), np.log10(lrs[lo:hi]))
    return float(lrs[lo + int(np.argmin(grad))])
