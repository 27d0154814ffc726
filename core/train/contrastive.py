"""Contrastive encoder tuning in the SetFit manner (Tunstall et al. 2022, for sentence encoders; the same pairs
tune an image encoder): the encoder first learns to put examples of one class close together and examples of
different classes apart, from pairs drawn with a budget linear in the data (each training example meets a few
of its own class and as many of others, never all pairs), with a cosine-similarity loss; then a head is solved
to convergence on the tuned features. Few examples per class go a long way, because every pair is a lesson."""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..modalities import FeatureInputs
from . import distributed as D


def draw_pairs(y: np.ndarray, per_example: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, same) positions into y: for each example, per_example partners, half of its class (where the
    class has another example) and half of others. Drawn with replacement: linear in the data."""
    by_class = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    left, right, same = [], [], []
    half = max(1, per_example // 2)
    for i, c in enumerate(y):
        mine, others = by_class[c], np.flatnonzero(y != c)
        if len(mine) > 1:
            pos = rng.choice(mine[mine != i], size=half)
            left += [i] * half
            right += pos.tolist()
            same += [1.0] * half
        if len(others):
            neg = rng.choice(others, size=half)
            left += [i] * half
            right += neg.tolist()
            same += [0.0] * half
    order = rng.permutation(len(left))
    return np.asarray(left)[order], np.asarray(right)[order], np.asarray(same, dtype=np.float32)[order]


def tune(plan) -> np.ndarray:
    """Tune plan.model's encoder on pairs of training rows; returns the tuned features of every row, which the
    run then reads (its head is solved on them). What it did goes into the run's status (plan.facts)."""
    data, model, t = plan.data, plan.model, plan.cfg.train
    if not (data.task.has_classes and not data.task.several):
        raise ConfigError(f"Contrastive tuning pairs examples of one class against others: it needs one class per "
                          f"example, and this is a {data.task.title.lower()} run. Choose frozen or full.")
    if D.world() > 1:
        raise ConfigError("Contrastive tuning runs in one process: train it without --processes.")
    s = t.settings_for("contrastive")
    train = data.idx("train").numpy()
    rng = np.random.default_rng(t.seed)
    left, right, same = draw_pairs(data.targets.y.numpy()[train], s.pairs_per_example, rng)
    left, right = train[left], train[right]
    torch.manual_seed(t.seed)
    params = [p for p in model.encoder.parameters()]
    for p in params:
        p.requires_grad_(True)
    lr = plan.strategy.lr(t, data.modality.name)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=t.weight_decay)
    bs = t.batch_size
    steps = math.ceil(len(left) / bs) * s.pair_epochs
    warm = max(1, int(steps * t.warmup_ratio))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / warm, max(0.0, (steps - k) / (steps - warm + 1))))
    inputs, device = data.inputs, plan.device
    model.train()
    started, losses, step = time.perf_counter(), [], 0
    for _ in range(s.pair_epochs):
        for b in range(0, len(left), bs):
            a = {k: v.to(device) for k, v in inputs.batch(torch.as_tensor(left[b:b + bs])).items()}
            c = {k: v.to(device) for k, v in inputs.batch(torch.as_tensor(right[b:b + bs])).items()}
            target = torch.as_tensor(same[b:b + bs], device=device)
            loss = F.mse_loss(F.cosine_similarity(model.features(**a), model.features(**c)), target)
            loss.backward()
            if t.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            plan.progress(step / steps, f"Contrastive tuning: step {step:,} of {steps:,} ({len(left):,} pairs)")
    for p in params:
        p.requires_grad_(False)
    plan.tuned_params = sum(p.numel() for p in params)
    feats = plan.features.of(torch.arange(len(inputs)), note="Features of the tuned encoder", model=model)
    data.inputs = FeatureInputs(torch.from_numpy(feats).to(device))
    plan.notes.append(f"The encoder was tuned on {len(left):,} pairs of training examples (same class or not, "
                      f"{s.pairs_per_example} per example, {s.pair_epochs} pass), then a head was solved on its "
                      "features.")
    plan.facts["contrastive"] = {"pairs": int(len(left)), "steps": step,
                                 "seconds": round(time.perf_counter() - started, 1),
                                 "loss_first": round(float(np.mean(losses[:10])), 4),
                                 "loss_last": round(float(np.mean(losses[-10:])), 4)}
    return feats
