"""'auto' planned against a time budget: the plan expected to score best that this device can finish in time.

Candidates are tried in order of expected quality (best first, from benchmarks/README.md); each is costed from
speeds measured here — a short forward pass, and a few real training steps where the plan trains the backbone —
and the first whose estimate fits the budget is chosen. A budget is the whole run's: data, plan, training, the
blend and the test. The chosen plan and its estimate are stated before the run starts, the time taken after.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

DEFAULT_MINUTES = {"cpu": 10.0, "gpu": 30.0}
MARGIN = 0.85  # an estimate must fit in this share of the budget: speeds vary, and the plan itself takes time

# Expected quality, best first, per modality and device class (benchmarks/README.md, "auto against a budget"):
# on a CPU a frozen larger encoder (features once, head solved, blended with TF-IDF + its embeddings) beat full
# fine-tuning of the small one on the text sets; with a GPU, fine-tuning the larger encoder is affordable.
CANDIDATES: dict[tuple[str, bool], list[tuple[str, str]]] = {
    ("text", True): [("all-mpnet-base-v2", "full"), ("all-mpnet-base-v2", "lora"), ("all-MiniLM-L6-v2", "full"),
                     ("all-mpnet-base-v2", "frozen"), ("all-MiniLM-L6-v2", "frozen")],
    ("text", False): [("all-mpnet-base-v2", "full"), ("all-mpnet-base-v2", "frozen"), ("all-MiniLM-L6-v2", "full"),
                      ("all-MiniLM-L6-v2", "frozen")],
    ("image", True): [("mobilenet_v2", "full"), ("mobilenet_v2", "frozen")],
    ("image", False): [("mobilenet_v2", "full"), ("mobilenet_v2", "frozen")],
}


@dataclass
class Choice:
    backbone: str
    strategy: str
    estimate_s: float
    budget_s: float
    considered: list[dict[str, Any]]

    def line(self) -> str:
        return (f"{self.strategy} {self.backbone}, estimated {_minutes(self.estimate_s)} of the "
                f"{_minutes(self.budget_s)} budget")


def _minutes(s: float) -> str:
    return f"{s / 60:.1f} min" if s < 600 else f"{s / 60:.0f} min"


def budget_seconds(t, device: torch.device) -> float:
    minutes = t.budget_minutes if t.budget_minutes is not None else DEFAULT_MINUTES[
        "gpu" if device.type == "cuda" else "cpu"]
    return 60.0 * minutes


def candidates(modality: str, gpu: bool, backbone: str | None, fixed_backbone: bool,
               available: Callable[[str], bool]) -> list[tuple[str, str]]:
    """The plans to consider: the list for this modality and device, or, when the person chose the backbone,
    that backbone's full fine-tune and frozen head (best first)."""
    if fixed_backbone or (modality, gpu) not in CANDIDATES:
        return [(backbone, "full"), (backbone, "frozen")]
    out = [(b, s) for b, s in CANDIDATES[(modality, gpu)] if available(b)]
    return out or [(backbone, "full"), (backbone, "frozen")]


def time_forward(model, batch: dict[str, torch.Tensor], device: torch.device, repeats: int = 2) -> float:
    """Seconds for one forward pass of this batch (the best of a few, after a warm-up)."""
    model.eval()
    batch = {k: v.to(device) for k, v in batch.items()}
    best = math.inf
    with torch.no_grad():
        model.features(**batch)
        for _ in range(repeats):
            t = time.perf_counter()
            model.features(**batch)
            best = min(best, time.perf_counter() - t)
    return best


def time_step(model, groups, batch: dict[str, torch.Tensor], device: torch.device, repeats: int = 2) -> float:
    """Seconds for one training step on this batch (forward, backward, AdamW), after a warm-up."""
    from .loop import optimizer

    model.train()
    opt = optimizer(groups, device, lr=1e-9)
    batch = {k: v.to(device) for k, v in batch.items()}
    best = math.inf
    for i in range(repeats + 1):
        t = time.perf_counter()
        out = model(**batch)
        out.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def estimate(strategy_trains: bool, n_rows: int, n_train: int, n_val: int, epochs: int, batch_size: int,
             s_forward_each: float, s_step_each: float) -> float:
    """Seconds for a plan: the forward passes it needs over every row (pretrained features for the frozen head
    and the blend's partner), then, if the backbone trains, its steps and each epoch's validation."""
    total = n_rows * s_forward_each
    if strategy_trains:
        steps = epochs * math.ceil(n_train / batch_size)
        total += steps * s_step_each * batch_size + epochs * n_val * s_forward_each
    return total * 1.1 + 15.0  # the baseline, the partner's fit, the test and saving
