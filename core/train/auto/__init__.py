"""'auto' planned against a time budget, in four steps: the candidate plans best first (candidates), each costed
from speeds measured on this device with a few real examples (estimate), the first that fits the budget chosen
(choose), and the settings it resolves to with the one line that says why (settings, explain). A backbone the
person chose is kept, and so is every other setting they chose."""
from __future__ import annotations

from dataclasses import replace
import time
from typing import Callable

import numpy as np
import torch

from ...backbones import BackboneSpec, get_backbone
from ...config import RunConfig, TrainConfig
from ...data.rundata import RunData
from ...strategies import get_strategy
from ..checks.mirror import probe_rows
from ..crossfit import folds_for
from .candidates import candidates
from .choose import MARGIN, Choice, budget_seconds, fits, minutes
from .estimate import TAIL_S, estimate, speeds
from .settings import LARGE_BACKBONE_M, recommend, resolve_auto

Progress = Callable[[float, str], None]
MIN_EPOCHS = 2  # a plan that trains is cut to no fewer epochs than this to fit its budget; below, the next plan

__all__ = ["plan_auto", "resolve_for", "resolve_auto", "recommend", "budget_seconds", "Choice", "LARGE_BACKBONE_M"]


def resolve_for(cfg: RunConfig, data: RunData, spec: BackboneSpec, strategy: str | None = None,
                epochs_cap: int | None = None, *, crossfit: bool) -> tuple[TrainConfig, str]:
    """The settings 'auto' gives this data with this backbone (and the budget's strategy, when chosen)."""
    tr = data.split == "train"
    items = [x for x, keep in zip(data.files, tr) if keep]
    truth = data.targets.truth[tr]
    counts = None if not data.task.has_classes else truth.sum(0).tolist() if data.task.several else \
        np.bincount(truth.astype(np.int64)).tolist()  # examples per class (multi-label: positives per label)
    facts = data.modality.auto_facts(data.ds, items)
    t = replace(cfg.train, backbone=spec.name)
    return resolve_auto(t, int(tr.sum()), spec.modality, counts, params_m=spec.params_m, chosen=cfg.user_set(),
                        strategy=strategy, task=data.task, epochs_cap=epochs_cap,
                        crossfit=crossfit, **facts)


def spent_since(started: float) -> float:
    return time.time() - started


def plan_auto(cfg: RunConfig, data: RunData, spec: BackboneSpec, device: torch.device, progress: Progress,
              started: float | None = None) -> tuple[TrainConfig, str, Choice]:
    """The resolved settings, the reason shown to the person, and the choice with what else was considered.
    started: when the run began (time.time()); the budget is the whole run's, so the time spent loading the data
    and timing candidates is not the plan's to spend."""
    limit = budget_seconds(cfg.train, device)
    started = time.time() if started is None else started
    n_rows, n_train, n_val = len(data.split), int((data.split == "train").sum()), int((data.split == "val").sum())
    sample = [data.files[i] for i in data.idx("train")[:8].tolist()]
    cands = candidates(spec.modality, device.type == "cuda", spec.name, "backbone" in cfg.user_set(),
                       trains_only=bool(cfg.train.teacher))
    considered, pick, timed, took = [], None, {}, 0.0
    crossfit = folds_for(data, cfg.train.seed) is not None
    for i, (backbone, strategy) in enumerate(cands):
        last = i == len(cands) - 1
        if not last and (limit - spent_since(started)) * MARGIN < took + TAIL_S:
            # timing this one would take about as long as the last did, leaving no room for any plan
            considered.append({"backbone": backbone, "strategy": strategy, "skipped": "no budget left to time it"})
            continue
        cand = get_backbone(backbone)
        t, why = resolve_for(cfg, data, cand, strategy, crossfit=crossfit)
        progress(i / len(cands), f"Planning against the {minutes(limit)} budget: timing {strategy} {backbone}")
        trains = not get_strategy(strategy).fits_head
        # a frozen plan's cost is its forward pass, the same as a trained plan's of that backbone and input
        key = (backbone, t.pooling, t.keep_layers, t.max_length, t.image_size)
        clock = spent_since(started)
        if trains or key not in timed:
            fwd, step = speeds(cand, t, strategy, sample, device, data)
            timed[key] = fwd
        else:
            fwd, step = timed[key], 0.0
        spent = spent_since(started)
        took, left = spent - clock, limit - spent
        mirrored = probe_rows(data, t, get_strategy(strategy))

        def cost(epochs: int) -> float:
            return estimate(trains, n_rows, n_train, n_val, epochs, t.batch_size, fwd, step, crossfit, mirrored)

        est, wanted = cost(t.epochs), t.epochs
        if trains and not fits(est, left) and "epochs" not in cfg.user_set():
            # fewer epochs of a plan that trains, before a plan that does not: the budget buys what it can
            fitting = next((e for e in range(t.epochs - 1, MIN_EPOCHS - 1, -1) if fits(cost(e), left)), None)
            if fitting is not None:
                considered.append({"backbone": backbone, "strategy": strategy, "epochs": t.epochs,
                                   "estimate_s": round(est, 1)})
                t, why = resolve_for(cfg, data, cand, strategy, epochs_cap=fitting, crossfit=crossfit)
                est = cost(fitting)
        considered.append({"backbone": backbone, "strategy": strategy, "epochs": t.epochs if trains else None,
                           "estimate_s": round(est, 1)})
        if fits(est, left) or last:
            pick = (t, why, est, wanted if trains and "epochs" not in cfg.user_set() else None, spent)
            break
    t, why, est, room, spent = pick
    choice = Choice(t.backbone, t.strategy, est, limit, considered,
                    None if get_strategy(t.strategy).fits_head else t.epochs, room, spent)  # a solved head takes no epochs
    return t, f"Plan: {choice.line()}. {why}", choice
