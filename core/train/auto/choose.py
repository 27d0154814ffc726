"""The budget a run plans against, and the plan chosen within it: the first candidate (best first) whose estimate
fits. A budget is the whole run's: data, plan, training, the blend and the test."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_MINUTES = {"cpu": 10.0, "gpu": 30.0}
# the three choices the Train page leads with: time budgets on a CPU and on a GPU, and what the time buys
EFFORT = {
    "quick": ({"cpu": 3.0, "gpu": 10.0}, "a first answer: mostly the pretrained model's features with a fitted head"),
    "balanced": (DEFAULT_MINUTES, "room to fine-tune a small model on most datasets"),
    "thorough": ({"cpu": 30.0, "gpu": 90.0}, "room for larger models and more epochs"),
}
MARGIN = 0.85  # an estimate must fit in this share of the budget: speeds vary, and the plan itself takes time


def minutes(s: float) -> str:
    return f"{s / 60:.1f} min" if s < 600 else f"{s / 60:.0f} min"


def budget_seconds(t, device: torch.device) -> float:
    m = t.budget_minutes if t.budget_minutes is not None else DEFAULT_MINUTES["gpu" if device.type == "cuda" else "cpu"]
    return 60.0 * m


@dataclass
class Choice:
    backbone: str
    strategy: str
    estimate_s: float
    budget_s: float
    considered: list[dict[str, Any]]
    epochs: int | None = None
    room: int | None = None  # the epochs the data calls for, which the run may grow to if it runs faster than estimated

    def line(self) -> str:
        if self.estimate_s > self.budget_s:  # nothing considered fits: the quickest runs, and says it will overrun
            return (f"{self.strategy} {self.backbone}, the quickest plan considered, estimated "
                    f"{minutes(self.estimate_s)}: over the {minutes(self.budget_s)} budget")
        return (f"{self.strategy} {self.backbone}, estimated {minutes(self.estimate_s)} of the "
                f"{minutes(self.budget_s)} budget")

    def facts(self) -> dict[str, Any]:
        """What the run's status records about the choice."""
        return {"choice": self.line(), "estimate_s": round(self.estimate_s, 1), "budget_s": self.budget_s,
                "considered": self.considered,
                "planned": {"strategy": self.strategy, "backbone": self.backbone, "epochs": self.epochs}}


def fits(estimate_s: float, budget_s: float) -> bool:
    return estimate_s <= budget_s * MARGIN
