"""The frozen strategy's head, solved to convergence on the cached features (L-BFGS, the baseline's own
estimator) rather than stepped for a few epochs: it never ends short of a linear model on the same features.
The loop then only validates it once; epochs do not apply."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..linear import fold_standardisation, standardisation
from .crossfit import CrossFit, choose_head, folds_for, head_facts, head_note


def _fit(plan, tuned: np.ndarray | None = None, crossfit: CrossFit | None = None) -> dict[str, np.ndarray]:
    """The run's head set to the linear model solved on the training rows' pretrained features (or those of an
    encoder tuned first: never remembered, they are this run's own); with `crossfit`, at the regularisation
    out-of-fold predictions over training + validation choose (core.train.crossfit)."""
    data, head, t = plan.data, plan.model.head[-1], plan.cfg.train
    train = data.idx("train").numpy()
    x, y = plan.features.pretrained() if tuned is None else tuned, data.targets.y.numpy()
    monitor = data.task.monitor(t)

    def solve() -> dict[str, np.ndarray]:
        out, strength = {}, None
        if crossfit is not None:
            plan.progress(0.0, f"Choosing the head's regularisation on {crossfit.describe()}")
            out = choose_head(data.task, x, y, data.targets.truth, data.meta, head.out_features, monitor, crossfit)
            strength = float(out["strengths"][int(out["chosen"][0])])
            strength = None if np.isnan(strength) else strength
        plan.progress(0.0, "Fitting the head to convergence on the cached features")
        w, b = data.task.linear_head(x[train], y[train], data.meta, head.out_features, strength=strength)
        return {"w": w, "b": b, **out}

    if tuned is not None:
        fit = solve()
    else:
        folds = None if crossfit is None else (crossfit.rows, [f[1] for f in crossfit.folds], t.seed, monitor)
        fit, reused = plan.features.remembered("head", x, solve, train, y[train], data.meta, head.out_features, folds,
                                               code=(data.task.linear_head, standardisation, fold_standardisation,
                                                     choose_head))
        if reused:
            plan.progress(1.0, "Reusing the head an earlier run solved on the same features, rows and labels")
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(fit["w"], dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(fit["b"], dtype=head.bias.dtype))
    return fit


def solve_head(plan) -> None:
    """A strategy that solves its head: on the pretrained features, or on those of the encoder it tunes first
    (Strategy.tuned_features: contrastive pairs)."""
    tuned = plan.strategy.tuned_features(plan)
    cf = folds_for(plan.data, plan.cfg.train.seed) if tuned is None else None  # tuned features are this fit's own
    started = time.perf_counter()
    fit = _fit(plan, tuned, cf)
    if cf is not None:
        cf.net = fit["oof"]
        cf.facts = {**head_facts(fit, cf, plan.data.task.monitor(plan.cfg.train)),
                    "seconds": round(time.perf_counter() - started, 1)}
        plan.crossfit = cf
        plan.facts["crossfit"] = {"head": cf.facts}
        note = head_note(cf.facts, cf)
        plan.notes.extend([note] if note else [])
    plan.cfg.train = replace(plan.cfg.train, epochs=1)
    if tuned is None:
        plan.notes.append("The head was solved to convergence on the backbone's cached features (L-BFGS); no "
                          "training steps were needed.")


def head_first(plan) -> bool:
    """LP-FT (Kumar et al., ICLR 2022): a strategy that updates the backbone starts from the head a linear probe
    solves, not a random one (Strategy.starts_from_solved_head says where; Strategy.fixes_norms where the loop
    then keeps BatchNorm's running statistics)."""
    if not plan.strategy.starts_from_solved_head(plan.cfg.train):
        return False
    _fit(plan)
    temp = _temperature(plan)
    t = plan.cfg.train
    norms = (" BatchNorm layers keep the running statistics the head was fitted under"
             + (", and the rate is a third of the strategy's default." if t.lr is None else ".")
             if plan.strategy.fixes_norms(t) else "")
    plan.notes.append("Fine-tuning starts from a head fitted to convergence on the pretrained features (LP-FT)"
                      + (f", its outputs softened {temp:.2g}x to the confidence validation supports." if temp > 1
                         else ".") + norms)
    return True


def _temperature(plan) -> float:
    """A head solved on a few hundred examples separates them with near-certainty, and a head that is never
    wrong on the training rows passes almost no gradient to the backbone: its outputs are divided by the
    temperature (>= 1) that fits the validation rows best (Guo et al. 2017), the direction kept."""
    data, head = plan.data, plan.model.head[-1]
    val = data.idx("val")
    if not data.task.has_classes or len(val) < 10:
        return 1.0
    x = torch.as_tensor(plan.features.pretrained()[val.numpy()], dtype=head.weight.dtype, device=head.weight.device)
    y = data.targets.y[val].to(head.weight.device)
    with torch.no_grad():
        z = head(x)
        if data.task.several:
            def loss(t: float) -> float:
                return float(F.binary_cross_entropy_with_logits(z / t, y.float()))
        else:
            def loss(t: float) -> float:
                return float(F.cross_entropy(z / t, y.long()))
        temp = float(min(np.geomspace(1.0, 50.0, 60), key=loss))
        head.weight.div_(temp)
        head.bias.div_(temp)
    return temp
