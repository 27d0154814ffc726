"""The strategy registry: each strategy is registered once, with its name, title, reason and settings class.
Config validation, the CLI's choices and flags, the Train form and the tests all read it."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..registry import Registry
from ..settings import ConfigError, build
from .auto import LARGE_BACKBONE_M, recommend, resolve_auto
from .base import NoSettings, Strategy, count_params, decay_split, freeze_frozen_norms, group_lr, set_trainable

REGISTRY: Registry[Strategy] = Registry("strategy")


def register_strategy(s: Strategy) -> Strategy:
    """Add a strategy (a duplicate name is refused)."""
    return REGISTRY.register(s.name, s)


def get_strategy(name: str) -> Strategy:
    if name == "auto":
        raise ConfigError("'auto' is resolved from the data when the run is planned (resolve_auto).")
    return REGISTRY.get(name)


def strategy_names() -> list[str]:
    return REGISTRY.names()


def check_strategy_args(strategy: str, args: Any) -> dict[str, dict[str, Any]]:
    """strategy_args is {strategy: {setting: value}}: every name registered, every value valid. Settings for a
    strategy other than the run's would be silently ignored, so they are refused (auto may pick any)."""
    if not isinstance(args, dict):
        raise ConfigError("train.strategy_args must map strategy names to their settings.")
    out = {}
    for name, values in args.items():
        s = REGISTRY.get(name)
        if strategy not in ("auto", name) and values:
            keys = ", ".join(f"{name}.{k}" for k in values)
            raise ConfigError(f"{keys} only applies to the {name} strategy, and this run trains '{strategy}'.")
        build(s.settings, values, name)  # validates (unknown keys named, bounds, types)
        out[name] = dict(values)
    return {k: v for k, v in out.items() if v}


def settings_fields(name: str) -> list:
    return list(fields(REGISTRY.get(name).settings))


from .builtin import DIFFERENTIAL, FROZEN, FULL, PARTIAL  # noqa: E402
from .lora import ADALORA, IA3_, LOHA, LOKR, LORA  # noqa: E402
from .prompt import PROMPT  # noqa: E402

for _s in (FROZEN, LORA, PARTIAL, DIFFERENTIAL, FULL, LOHA, LOKR, IA3_, ADALORA, PROMPT):
    register_strategy(_s)

__all__ = ["Strategy", "NoSettings", "REGISTRY", "register_strategy", "get_strategy", "strategy_names",
           "check_strategy_args", "settings_fields", "resolve_auto", "recommend", "count_params", "decay_split",
           "freeze_frozen_norms", "group_lr", "set_trainable", "LARGE_BACKBONE_M"]
