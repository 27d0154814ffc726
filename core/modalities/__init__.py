"""The modality registry: what an input is (core.modalities.base.Modality). Images and text are registered
here; datasets, the plan, prediction and the pages look a modality up by name."""
from __future__ import annotations

from ..registry import Registry
from .base import FeatureInputs, Inputs, Modality
from .image import IMAGE
from .text import TEXT

REGISTRY: Registry[Modality] = Registry("modality")


def register_modality(m: Modality) -> Modality:
    return REGISTRY.register(m.name, m)


def get_modality(name: str) -> Modality:
    return REGISTRY.get(name)


def modality_names() -> list[str]:
    return REGISTRY.names()


register_modality(IMAGE)
register_modality(TEXT)

__all__ = ["Inputs", "FeatureInputs", "Modality", "REGISTRY", "register_modality", "get_modality", "modality_names"]
