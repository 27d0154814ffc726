"""What 'auto' sets from the data: a concrete strategy, epochs, and the settings each kind of input and label
balance calls for. Settings the person chose are never changed."""
from __future__ import annotations

from dataclasses import replace

from ...config import TrainConfig
from ...modalities import get_modality
from ...tasks import Task
from ...tasks.classification import CLASSIFICATION
from .explain import WORDS, reason

LARGE_BACKBONE_M = 300  # millions of weights; above this, auto trains LoRA adapters instead of every weight


def recommend(n_examples: int, modality: str) -> tuple[str, str]:
    """(strategy, one-line reason) for this much data."""
    if n_examples < 1000:
        return "frozen", f"{n_examples} examples is small: a frozen backbone (or LoRA) learns fast and rarely overfits."
    if n_examples < 10_000:
        return "differential", f"{n_examples:,} examples: enough to adapt every layer, with lower layers moving slower."
    return "full", f"{n_examples:,} examples: enough data to fine-tune every weight."


def resolve_auto(cfg: TrainConfig, n_train: int, modality: str, class_counts: list[int] | None,
                 text_lengths: list[int] | None = None, image_side: int | None = None,
                 params_m: float = 0.0, chosen: set[str] | None = None,
                 strategy: str | None = None, task: Task = CLASSIFICATION,
                 epochs_cap: int | None = None, crossfit: bool = False) -> tuple[TrainConfig, str]:
    """A concrete config for strategy 'auto', from the data, and the one-line reason shown to the user.
    Settings the person chose (`chosen`; by default those that differ from their defaults) are never changed,
    and the reason says which were kept. class_counts is None for regression; for several labels per example, each
    label's positives. epochs_cap: the epochs the time budget allows (core.train.auto.plan_auto), said when fewer
    than the data calls for. crossfit: a solved head would make its choices on out-of-fold predictions
    (core.train.crossfit), said in the reason.

    Measured on five real datasets (benchmarks/README.md): on a few hundred examples a frozen backbone, and even
    a full fine-tune, can lose to the scikit-learn baseline, so every plan is blended with the baseline-style
    linear model: the better of the two alone on validation is kept unless a blend beats it with confidence
    (core.predict.blend.best_weight); images also get label smoothing and, where mirroring changes the class, no
    flips (decided by the plan)."""
    defaults = TrainConfig()
    if chosen is None:
        chosen = {k for k in WORDS if getattr(cfg, k) != getattr(defaults, k)}
    kind = get_modality(modality)
    picks: dict = {"strategy": "full"}
    per_kind, kind_notes = kind.auto_picks(n_train, {"text_lengths": text_lengths, "image_side": image_side},
                                           class_counts is not None)
    picks["epochs"] = per_kind.pop("epochs")
    if params_m >= LARGE_BACKBONE_M:
        # gradients and Adam state for every weight of a large model need ~4x its size in memory, and a small
        # dataset cannot move that many weights well; low-rank adapters keep both in check
        picks["strategy"] = "lora"
    if strategy:  # the budget planner's choice (core.train.auto.choose)
        picks["strategy"] = strategy
    picks["blend"] = task.blends  # a task the blend does not apply to is never planned with one
    notes = []
    if epochs_cap is not None and epochs_cap < picks["epochs"] and "epochs" not in chosen:
        notes.append(f"{epochs_cap} of the {picks['epochs']} epochs this data calls for fit the time budget")
        picks["epochs"] = epochs_cap
    noun = "labels" if task.several else "classes"  # multi-label: counts of each label's positives
    if class_counts and max(class_counts) / max(1, min(class_counts)) >= 3:
        picks["class_weighting"] = "balanced"
        notes.append(f"{noun} are imbalanced ({max(class_counts) / max(1, min(class_counts)):.0f}:1), so rarer "
                     "ones are weighted up")
    picks.update(per_kind)
    notes += kind_notes
    kept = [k for k in picks if k in chosen and k != "strategy"]
    changes = {k: v for k, v in picks.items() if k not in chosen or k == "strategy"}
    # settings given for a strategy auto did not pick would be ignored; drop them from the resolved config
    changes["strategy_args"] = {k: v for k, v in cfg.strategy_args.items() if k == changes["strategy"]}
    out = replace(cfg, **changes)
    notes = [n for n in notes if not any(WORDS[k] in n for k in kept)]
    return out, reason(out, n_train, params_m, kind.partner_phrase, notes, kept, cfg, crossfit)
