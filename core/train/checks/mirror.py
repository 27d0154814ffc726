"""Mirror training images only if mirroring keeps their meaning. Probes on pretrained features (5-fold, over
training and validation rows) classify each held-out image as it is and mirrored: most digits, text and anything
with a left and right lose accuracy mirrored; classes that look alike either way (0, 1, 8; most objects
photographed from the side) do not."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ...predict.blend import fit_probe


def mirror_check(features: np.ndarray, mirrored: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0,
                 folds: int = 5) -> dict | None:
    """Whether left-right mirroring keeps an image's class, from probes on pretrained features: each fold's
    probe labels its held-out images as they are and mirrored. Flipping is ruled out when mirrored images
    lose at least two points of accuracy and the loss is significant (one-sided sign test on the examples
    that change, p < 0.01). None when there are too few examples per class to tell."""
    from scipy.stats import binomtest
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    k = int(min(folds, counts[counts > 0].min())) if len(y) else 0
    if k < 2 or len(y) < 20:
        return None
    right, right_m = np.zeros(len(y), bool), np.zeros(len(y), bool)
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(features, y):
        probe = fit_probe(features[tr], y[tr], n_classes)
        right[te] = probe.predict(features=features[te]).argmax(1) == y[te]
        right_m[te] = probe.predict(features=mirrored[te]).argmax(1) == y[te]
    lost, gained = int((right & ~right_m).sum()), int((~right & right_m).sum())
    p = binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue if lost + gained else 1.0
    acc, acc_m = float(right.mean()), float(right_m.mean())
    return {"n": int(len(y)), "accuracy": acc, "mirrored_accuracy": acc_m, "p_value": float(p),
            "flip": not (acc - acc_m >= 0.02 and p < 0.01)}


PROBE_ROWS = 2000  # bounds the extra feature passes on big datasets


def decides(data, t, strategy) -> bool:
    """Whether this run decides mirroring itself: images that train augmented, mirroring left to the studio."""
    return data.modality.mixable and t.augment and t.hflip is None and not strategy.frozen_backbone


def probe_rows(data, t, strategy) -> int:
    """The mirrored images the check reads (each one forward pass of the pretrained backbone); 0 where it does
    not run. What a plan's time estimate counts (core.train.auto.estimate)."""
    if not (decides(data, t, strategy) and data.task.has_classes):
        return 0
    return min(PROBE_ROWS, int((data.split == "train").sum() + (data.split == "val").sum()))


def decide_mirroring(plan, previous: dict[str, Any]) -> None:
    """Sets hflip in the plan's settings (when the person left it to the studio) and says why."""
    t, data = plan.cfg.train, plan.data
    if not decides(data, t, plan.strategy):
        return
    check = previous.get("flip_check")  # resumed: decided at the start
    if check is None and data.task.has_classes:
        rows = torch.cat([data.idx("train"), data.idx("val")]).numpy()
        if len(rows) > PROBE_ROWS:
            rows = np.sort(np.random.default_rng(t.seed).choice(rows, PROBE_ROWS, replace=False))
        note = "Checking whether mirrored images keep their class"
        done = plan.features.computed
        seen = done[rows] if done is not None else plan.features.of(torch.from_numpy(rows), note=note)
        check = mirror_check(seen, plan.features.of(torch.from_numpy(rows), mirror=True, note=note),
                             data.targets.truth[rows], len(data.classes), t.seed)
    plan.cfg.train = replace(t, hflip=True if check is None else check["flip"])
    if check is None:
        return
    plan.facts["flip_check"] = check
    if not check["flip"]:
        note = (f"mirrored images lose their class (held-out accuracy of a probe on pretrained features "
                f"{check['accuracy']:.2f}, mirrored {check['mirrored_accuracy']:.2f}), so training images "
                f"are not flipped")
        if plan.auto_reason:
            plan.auto_reason = plan.auto_reason.rstrip(".") + "; " + note + "."
            plan.facts["auto"] = plan.auto_reason
        plan.notes.append(note[0].upper() + note[1:] + ".")
