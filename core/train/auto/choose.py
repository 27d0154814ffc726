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
SAID_SPENT = 0.05  # the line names the time spent before the plan once it is this share of the budget or more
MARGIN = 0.85  # an estimate must fit in this share of what the budget has left: measured speeds vary


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
    spent_s: float = 0.0  # the run's seconds before the plan starts: loading the data and timing the candidates

    def line(self) -> str:
        ran = f"{self.strategy} {self.backbone}"
        spent = (f" after {minutes(self.spent_s)} loading the data and timing the plans"
                 if self.spent_s >= SAID_SPENT * self.budget_s else "")
        if self.estimate_s + self.spent_s > self.budget_s:  # nothing considered fits: the quickest runs, and says so
            return (f"{ran}, the quickest plan considered, estimated {minutes(self.estimate_s)}{spent}: over "
                    f"the {minutes(self.budget_s)} budget")
        if spent:
            return (f"{ran}, estimated {minutes(self.estimate_s)} of the {minutes(self.budget_s - self.spent_s)} "
                    f"left of the {minutes(self.budget_s)} budget{spent}")
        return f"{ran}, estimated {minutes(self.estimate_s)} of the {minutes(self.budget_s)} budget"

    def facts(self) -> dict[str, Any]:
        """What the run's status records about the choice."""
        return {"choice": self.line(), "estimate_s": round(self.estimate_s, 1), "budget_s": self.budget_s,
                "spent_s": round(self.spent_s, 1),
                "considered": self.considered,
                "planned": {"strategy": self.strategy, "backbone": self.backbone, "epochs": self.epochs}}


def fits(estimate_s: float, budget_s: float) -> bool:
    return estimate_s <= budget_s * MARGIN
