"""'auto': a concrete strategy and settings from the data, with the one-line reason shown to the user."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import TrainConfig

LARGE_BACKBONE_M = 300  # millions of weights; above this, auto trains LoRA adapters instead of every weight
WORDS = {"epochs": "epochs", "class_weighting": "class weighting", "label_smoothing": "label smoothing",
         "max_length": "text length", "image_size": "image size", "blend": "blending", "strategy": "strategy"}


def recommend(n_examples: int, modality: str) -> tuple[str, str]:
    """(strategy, one-line reason) for this much data."""
    if n_examples < 1000:
        return "frozen", f"{n_examples} examples is small: a frozen backbone (or LoRA) learns fast and rarely overfits."
    if n_examples < 10_000:
        return "differential", f"{n_examples:,} examples: enough to adapt every layer, with lower layers moving slower."
    return "full", f"{n_examples:,} examples: enough data to fine-tune every weight."


def resolve_auto(cfg: "TrainConfig", n_train: int, modality: str, class_counts: list[int] | None,
                 text_lengths: list[int] | None = None, image_side: int | None = None,
                 params_m: float = 0.0, chosen: set[str] | None = None) -> tuple["TrainConfig", str]:
    """A concrete config for strategy 'auto', from the data, and the one-line reason shown to the user.
    Settings the person chose (`chosen`; by default those that differ from their defaults) are never changed,
    and the reason says which were kept. class_counts is None for regression.

    Measured on five real datasets (benchmarks/README.md): on a few hundred examples a frozen backbone, and even
    a full fine-tune, can lose to the scikit-learn baseline; a full fine-tune whose predictions are averaged with
    the baseline-style linear model beat it on four once the network's share was chosen pessimistically (see
    core.blend.best_weight) and tied on the fifth; images also get label smoothing and, where mirroring changes
    the class, no flips (decided by the plan)."""
    from ..config import TrainConfig

    defaults = TrainConfig()
    if chosen is None:
        chosen = {k for k in WORDS if getattr(cfg, k) != getattr(defaults, k)}
    picks: dict = {"strategy": "full"}
    if modality == "text":
        picks["epochs"] = 6 if n_train < 1000 else 4 if n_train < 10_000 else 3
    else:
        picks["epochs"] = 12 if n_train < 1000 else 8 if n_train < 10_000 else 4
    if params_m >= LARGE_BACKBONE_M:
        # gradients and Adam state for every weight of a large model need ~4x its size in memory, and a small
        # dataset cannot move that many weights well; low-rank adapters keep both in check
        picks["strategy"] = "lora"
    picks["blend"] = True
    notes = []
    if class_counts and max(class_counts) / max(1, min(class_counts)) >= 3:
        picks["class_weighting"] = "balanced"
        notes.append(f"classes are imbalanced ({max(class_counts) / max(1, min(class_counts)):.0f}:1), so rarer "
                     "ones are weighted up")
    if modality == "text" and text_lengths:
        p90 = sorted(text_lengths)[int(0.9 * (len(text_lengths) - 1))]
        if p90 > 600:  # characters, roughly 128+ tokens
            picks["max_length"] = 256
            notes.append("long texts, so up to 256 tokens are read")
    if modality == "image" and image_side and image_side <= 64:
        picks["image_size"] = 128  # upsampling tiny images to 224 costs 3x the time and helps nothing
        notes.append(f"small images ({image_side} px), so they are read at 128 px")
    if modality == "image" and class_counts:
        picks["label_smoothing"] = 0.1  # as in torchvision's own training recipes; keeps a small fine-tune humble
        notes.append("label smoothing 0.1")
    kept = [k for k in picks if k in chosen and k != "strategy"]
    changes = {k: v for k, v in picks.items() if k not in chosen or k == "strategy"}
    # settings given for a strategy auto did not pick would be ignored; drop them from the resolved config
    changes["strategy_args"] = {k: v for k, v in cfg.strategy_args.items() if k == changes["strategy"]}
    out = replace(cfg, **changes)
    notes = [n for n in notes if not any(WORDS[k] in n for k in kept)]
    return out, _reason(out, n_train, params_m, modality, notes, kept, cfg)


def _reason(out: "TrainConfig", n_train: int, params_m: float, modality: str, notes: list[str], kept: list[str],
            asked: "TrainConfig") -> str:
    if out.strategy == "lora":
        why = (f"{n_train:,} training examples on a large backbone ({params_m:,.0f}M weights): LoRA adapters "
               f"train beside the frozen weights ({_epochs(out.epochs)}, early stopping)")
    else:
        why = f"{n_train:,} training examples: every weight fine-tunes ({_epochs(out.epochs)}, early stopping)"
    if out.blend:
        why += (", then blends with a fast linear model " + ("on TF-IDF" if modality == "text" else
                "on the pretrained features") + ", trusting the network as far as validation shows it helps")
    for n in notes:
        why += f"; {n}"
    if kept:
        why += "; kept as you set them: " + ", ".join(f"{WORDS[k]} {_show(getattr(asked, k))}" for k in kept)
    return why + "."


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _show(v) -> str:
    return "off" if v is False else "on" if v is True else str(v)
