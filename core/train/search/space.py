"""What a search varies: filled from the data by default, or given as JSON; every entry checked against the
setting it names (its type, choices and bounds), so a bad value is refused by name before any study exists."""
from __future__ import annotations

import json
import math
from dataclasses import fields
from typing import Any

from ...config import RunConfig, TrainConfig
from ...errors import ConfigError
from ...settings import check
from ...strategies import get_strategy

LORA_RANK = "lora_r"  # the one strategy setting searched: LoRA's rank, through strategy_args
_FIELDS = {f.name: f for f in fields(TrainConfig)}


def default_space(modality: str, n_train: int, strategies: list[str] | None = None) -> dict[str, Any]:
    """What to search, filled from the data: fewer epochs and smaller batches for small data; the input size
    (max length or image size) that applies to this modality. Categorical: a list; numeric: low/high(/log)."""
    def applies(name: str) -> bool:
        scope = _FIELDS[name].metadata.get("scope")
        return scope is None or modality in scope

    small = n_train < 2000
    space: dict[str, Any] = {
        "strategy": strategies or ["full", "lora", "differential", "frozen"],
        "lr": {"low": 1e-5, "high": 3e-3, "log": True},
        "epochs": {"low": 2, "high": 8 if small else 4},
        "weight_decay": {"low": 1e-4, "high": 0.1, "log": True},
        "batch_size": [b for b in (8, 16, 32) if b <= max(8, n_train // 4)] if small else [16, 32, 64],
        LORA_RANK: [4, 8, 16],
        "max_length": [64, 128, 256],
        "image_size": [160, 224],
    }
    return {k: v for k, v in space.items() if k == LORA_RANK or applies(k)}


def _check_value(name: str, value: Any) -> None:
    if name == LORA_RANK:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 512:
            raise ConfigError(f"Search space: {name}: a LoRA rank is a whole number from 1 to 512, got {value!r}.")
        return
    try:
        check(TrainConfig, _FIELDS[name], value, "train")
        if name == "strategy" and get_strategy(value).planned:
            raise ConfigError(f"'{value}' plans a strategy itself; search concrete ones")
    except ConfigError as e:
        raise ConfigError(f"Search space: {name}: {e}") from None


def check_space(space: dict[str, Any]) -> dict[str, Any]:
    """The space as given, refused with the entry's name when a setting does not exist, a range is wrong, or a
    value is not one the setting takes."""
    known = set(_FIELDS) - {"strategy_args"} | {LORA_RANK}
    if not isinstance(space, dict) or not space:
        raise ConfigError("The search space should be a JSON object of setting: choices or {low, high}.")
    for name, spec in space.items():
        if name not in known:
            raise ConfigError(f"Search space: {name!r} is not a training setting.")
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"Search space: {name!r} has no choices.")
            for v in spec:
                _check_value(name, v)
        elif isinstance(spec, dict):
            lo, hi = spec.get("low"), spec.get("high")
            if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or lo > hi:
                raise ConfigError(f"Search space: {name!r} needs numbers low <= high, got {spec}.")
            if spec.get("log") and lo <= 0:
                raise ConfigError(f"Search space: {name!r} on a log scale needs low > 0.")
            for v in (lo, hi):
                _check_value(name, int(v) if _is_int(name) else float(v))
        else:
            raise ConfigError(f"Search space: {name!r} should be a list of choices or {{low, high}}.")
    return space


def _is_int(name: str) -> bool:
    return name == LORA_RANK or _FIELDS[name].type in ("int", "int | None")


def combinations(space: dict[str, Any]) -> float:
    """How many distinct settings the space holds (infinite with a continuous range)."""
    n = 1.0
    for name, spec in space.items():
        if isinstance(spec, list):
            n *= len(spec)
        elif _is_int(name):
            n *= int(spec["high"]) - int(spec["low"]) + 1
        else:
            return math.inf
    return n


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if name == LORA_RANK and out.get("strategy", "lora") != "lora":
            continue  # a rank only means something to LoRA trials (TPE handles the conditional space)
        if isinstance(spec, list):
            out[name] = trial.suggest_categorical(name, spec)
        elif _is_int(name):
            out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            out[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return out


def trial_config(base: RunConfig, params: dict[str, Any], name: str) -> RunConfig:
    d = base.to_dict()
    train = {**d["train"], **{k: v for k, v in params.items() if k != LORA_RANK}}
    if LORA_RANK in params:
        train["strategy_args"] = {**(train.get("strategy_args") or {}), "lora": {"r": params[LORA_RANK]}}
    cfg = RunConfig.from_dict({**d, "train": train, "name": name})
    # what the search set counts as the person's choice: auto keeps it
    cfg.choose(*(k for k in params if k != LORA_RANK), *(["strategy_args"] if LORA_RANK in params else []))
    return cfg


def space_from_json(text: str) -> dict[str, Any]:
    try:
        return check_space(json.loads(text))
    except json.JSONDecodeError as e:
        raise ConfigError(f"The search space is not valid JSON (line {e.lineno}: {e.msg}).") from None
