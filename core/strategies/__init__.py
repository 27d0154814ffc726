"""The strategy registry: each strategy is registered once, with its name, title, reason and settings class.
Config validation, the CLI's choices and flags, the Train form and the tests all read it."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from ..settings import build
from .auto import AUTO
from .base import NoSettings, Strategy, count_params, decay_split, freeze_frozen_norms, group_lr, set_trainable
from .builtin import CONTRASTIVE, DIFFERENTIAL, FROZEN, FULL, PARTIAL
from .lora import ADALORA, IA3_, LOHA, LOKR, LORA
from .prompt import PROMPT

REGISTRY: Registry[Strategy] = Registry("strategy")


def register_strategy(s: Strategy) -> Strategy:
    """Add a strategy (a duplicate name is refused)."""
    return REGISTRY.register(s.name, s)


def get_strategy(name: str) -> Strategy:
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
        if strategy != name and not REGISTRY.get(strategy).planned and values:
            keys = ", ".join(f"{name}.{k}" for k in values)
            raise ConfigError(f"{keys} only applies to the {name} strategy, and this run trains '{strategy}'.")
        build(s.settings, values, name)  # validates (unknown keys named, bounds, types)
        out[name] = dict(values)
    return {k: v for k, v in out.items() if v}


def settings_fields(name: str) -> list:
    return list(fields(REGISTRY.get(name).settings))


for _s in (AUTO, FROZEN, LORA, PARTIAL, DIFFERENTIAL, FULL, LOHA, LOKR, IA3_, ADALORA, PROMPT, CONTRASTIVE):
    register_strategy(_s)

__all__ = ["Strategy", "NoSettings", "REGISTRY", "register_strategy", "get_strategy", "strategy_names",
           "check_strategy_args", "settings_fields", "count_params", "decay_split", "freeze_frozen_norms", "group_lr",
           "set_trainable"]
