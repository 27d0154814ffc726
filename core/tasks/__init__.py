"""The task registry: what the labels mean (core.tasks.base.Task). Classification, regression and multi-label
classification are registered here; config validation, the CLI and the pages read the names from it."""
from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Targets, Task
from .classification import CLASSIFICATION
from .multilabel import MULTILABEL
from .regression import REGRESSION

REGISTRY: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    return REGISTRY.register(task.name, task)


def get_task(name: str) -> Task:
    return REGISTRY.get(name)


def task_names() -> list[str]:
    return REGISTRY.names()


def metric_names() -> list[str]:
    return sorted({m for t in REGISTRY for m in t.metrics})


def from_meta(meta: dict[str, Any]) -> Task:
    """The task of a saved run or export (labels.json); runs made before regression existed are classifiers."""
    return get_task(meta.get("task", "classification"))



register_task(CLASSIFICATION)
register_task(REGRESSION)
register_task(MULTILABEL)

__all__ = ["Targets", "Task", "REGISTRY", "register_task", "get_task", "task_names", "metric_names", "from_meta"]
