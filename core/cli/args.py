"""Training flags generated from the config's own fields (as transformers' HfArgumentParser does), and a run
config built from them with the settings the person chose recorded, so 'auto' never overrides them."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import DataConfig, RunConfig, TrainConfig
from ..errors import ConfigError, StudioError
from ..runs.folder import RunFolder
from ..settings import add_arguments, build, parse_text
from ..strategies import REGISTRY as STRATEGIES
from ..train.parent import continued_config


class CliError(StudioError):
    pass


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="A run's config.json to replay (flags given with it override its settings).")
    data = p.add_argument_group("data (names as in config.json's \"data\")")
    add_arguments(data, DataConfig, dest_prefix="data__", section="data")
    train = p.add_argument_group("training (names as in config.json's \"train\")")
    add_arguments(train, TrainConfig, dest_prefix="train__", section="train")
    for s in STRATEGIES:
        if fields(s.settings):
            g = p.add_argument_group(f"{s.name} strategy")
            add_arguments(g, s.settings, prefix=f"{s.name}_", dest_prefix=f"strategy__{s.name}__", section=s.name)
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="Any training setting by its config.json name, e.g. "
                   "--set label_smoothing=0.1 class_weighting=balanced lora.r=16.")
    p.add_argument("--runs-dir")
    p.add_argument("--owner", help="The studio user the run and its data belong to (their login e-mail or proxy user "
                   "name); without it a CLI run is visible to everyone using the studio on this home.")
    p.add_argument("--json", action="store_true")


def _given(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}


def _apply_set(items: list[str], train: dict[str, Any], strategy_args: dict) -> None:
    known = {f.name: f for f in fields(TrainConfig)}
    for item in items:
        key, sep, raw = item.partition("=")
        name, _, sub = key.partition(".")
        if sep and sub and name in STRATEGIES:
            f = next((x for x in fields(STRATEGIES.get(name).settings) if x.name == sub), None)
            if f is None:
                raise CliError(f"--set {item!r}: the {name} strategy has no setting {sub!r}; it has: "
                               f"{', '.join(x.name for x in fields(STRATEGIES.get(name).settings))}.")
            strategy_args.setdefault(name, {})[sub] = parse_text(STRATEGIES.get(name).settings, f, raw, name)
        elif sep and key in known and key != "strategy_args":
            train[key] = parse_text(TrainConfig, known[key], raw, "train")
        else:
            raise CliError(f"--set {item!r}: expected KEY=VALUE with KEY one of: "
                           f"{', '.join(sorted(k for k in known if k != 'strategy_args'))} (or STRATEGY.SETTING).")


def _recorded_data(d: dict[str, Any], status: dict[str, Any], given: dict[str, Any]) -> None:
    """A replayed run's data path that no longer exists: the dataset version that run trained on, said."""
    for attr, key in (("source", "dataset"), ("test_source", "test_dataset")):
        path, recorded = d.get(attr), status.get(key)
        if attr in given or not path or not recorded or Path(path).exists() or str(path).startswith("ds-"):
            continue
        d[attr] = recorded
        print(f"note: {path} no longer exists; replaying on the dataset version it was read into, {recorded}.",
              file=sys.stderr)


def config_from_args(args: argparse.Namespace, parent: RunFolder | None = None) -> RunConfig:
    """parent: the run --init-from continues; without --config its settings and split are the base, on the very
    dataset version it trained on unless --data names another."""
    data, train = _given(args, "data__"), _given(args, "train__")
    strategy_args: dict[str, dict[str, Any]] = {}
    for key, value in _given(args, "strategy__").items():
        name, _, setting = key.partition("__")
        strategy_args.setdefault(name, {})[setting] = value
    _apply_set(args.set or [], train, strategy_args)
    if args.config:
        given = Path(args.config)
        loaded = RunConfig.load(RunFolder(given).config_file if given.is_dir() else given)
        base = loaded.to_dict()
        base["chosen"] = sorted(loaded.user_set())  # an earlier version's config: its own rule, made explicit
        _recorded_data(base["data"], RunFolder(given if given.is_dir() else given.parent).status, data)
    elif parent is not None:
        continued = continued_config(parent)
        base = {**continued.to_dict(), "chosen": sorted(continued.user_set())}
    else:
        if not data.get("source"):
            raise CliError("Give --data PATH (or --config RUN_DIR/config.json).")
        base = {"data": {}, "train": {}, "chosen": []}
    base["data"].update(data)
    base["train"].update(train)
    merged = {k: dict(v) for k, v in base["train"].get("strategy_args", {}).items()}
    for name, values in strategy_args.items():
        merged.setdefault(name, {}).update(values)
    base["train"]["strategy_args"] = merged
    cfg = RunConfig(data=build(DataConfig, base["data"], "data"), train=build(TrainConfig, base["train"], "train"),
                    name=base.get("name", ""), chosen=base.get("chosen"))
    cfg.choose(*train, *(["strategy_args"] if strategy_args else []))
    return cfg


__all__ = ["CliError", "ConfigError", "add_train_arguments", "config_from_args"]
