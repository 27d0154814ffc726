"""The one-line reason 'auto' gives for its plan, in words a domain expert reads."""
from __future__ import annotations

from ...config import TrainConfig
from ...strategies import get_strategy

WORDS = {"epochs": "epochs", "class_weighting": "class weighting", "label_smoothing": "label smoothing",
         "max_length": "text length", "image_size": "image size", "blend": "blending", "strategy": "strategy"}


def reason(out: TrainConfig, n_train: int, params_m: float, partner: str, notes: list[str], kept: list[str],
           asked: TrainConfig, crossfit: bool = False) -> str:
    """The one line shown before the run: what will train, for how long, and why. crossfit: a solved head's
    choices are made on out-of-fold predictions (core.train.crossfit.folds_for found folds)."""
    fits_head = get_strategy(out.strategy).fits_head
    crossfit = crossfit and fits_head
    if fits_head:
        why = (f"{n_train:,} training examples: the backbone stays frozen, its features are computed once and a "
               "head is solved on them" + (", its regularisation chosen on out-of-fold predictions over the training "
                                           "and validation examples" if crossfit else ""))
    elif out.strategy == "lora":
        why = (f"{n_train:,} training examples on a large backbone ({params_m:,.0f}M weights): LoRA adapters "
               f"train beside the frozen weights ({_epochs(out.epochs)}, early stopping)")
    else:
        why = f"{n_train:,} training examples: every weight fine-tunes ({_epochs(out.epochs)}, early stopping)"
    if out.blend:
        why += (f", then keeps it or a fast linear model {partner}, whichever "
                f"{'those predictions rank' if crossfit else 'validation ranks'} higher, or blends the two where the "
                "blend beats that with confidence")
    for n in notes:
        why += f"; {n}"
    if kept:
        why += "; kept as you set them: " + ", ".join(f"{WORDS[k]} {_show(getattr(asked, k))}" for k in kept)
    return why + "."


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _show(v) -> str:
    return "off" if v is False else "on" if v is True else str(v)
