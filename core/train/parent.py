"""Continuing from a finished run (train.init_from): the new run starts from the parent's trained weights, with its
backbone and method, on this run's data — a corrected version of the same data, or the same data for more epochs.
Classes are matched by name: a class the parent never saw starts with an untrained row of the head."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from ..backbones import Classifier
from ..config import RunConfig
from ..errors import ConfigError, RunError
from ..runs.folder import RunFolder
from ..strategies import get_strategy

# what decides the shape of the weights: a child differing in one of these cannot start from the parent's
SHAPE = ("backbone", "strategy", "pooling", "keep_layers")
OWN = ("init_from", "teacher", "device", "processes", "budget_minutes")  # this run's own, never inherited
HEAD = ("head.1.weight", "head.1.bias")


def inherit(cfg: RunConfig, parent: RunFolder) -> str | None:
    """'auto' continuing a run continues what the parent ran: every setting it trained with, except those this run
    sets itself, in place of a new plan. Returns the sentence that says so, or None when the method was set."""
    if not get_strategy(cfg.train.strategy).planned:
        return None
    ran, mine = parent.resolved_config.train, cfg.user_set()
    for f in fields(ran):
        if f.name not in mine and f.name not in OWN:
            setattr(cfg.train, f.name, getattr(ran, f.name))
    return (f"Continues run {parent.id}: {get_strategy(ran.strategy).title.lower()} of {ran.backbone} with its "
            "settings, from its trained weights.")


def check_parent(parent: RunFolder, cfg: RunConfig, task: str, modality: str) -> None:
    """Refused up front: a parent with no weights, of another task or kind of input, or of another shape."""
    st = parent.status
    if parent.weights is None:
        raise RunError(f"Run {parent.id} has no saved weights to continue from (status {st.get('status')}): "
                       "continue from a run that finished at least one epoch.")
    if st.get("task", "classification") != task or st.get("modality", modality) != modality:
        raise ConfigError(f"Run {parent.id} learned {st.get('task')} on {st.get('modality')}s; this run is {task} on "
                          f"{modality}s. Continue from a run of the same kind.")
    ran = parent.resolved_config.train
    differ = [f"{n}: {getattr(ran, n)!r} there, {getattr(cfg.train, n)!r} here" for n in SHAPE
              if getattr(ran, n) != getattr(cfg.train, n)]
    if ran.strategy_args.get(ran.strategy, {}) != cfg.train.strategy_args.get(cfg.train.strategy, {}):
        differ.append("the method's own settings")
    if differ:
        raise ConfigError(f"Run {parent.id} cannot be continued with a different model shape ({'; '.join(differ)}). "
                          "Leave these as the parent had them, or start a new run.")


def load_parent(model: Classifier, parent: RunFolder, classes: list[str] | None) -> str:
    """The parent's weights into model (already shaped by the same strategy); the head's rows follow the class
    names. Returns what was carried over, in words."""
    state: dict[str, Any] = load_file(str(parent.weights))
    own = model.state_dict()
    theirs = parent.status.get("classes") if classes is not None else None
    new: list[str] = []
    if theirs is not None and list(theirs) != list(classes):
        for key in HEAD:
            rows = own[key].clone()
            for i, c in enumerate(classes):
                if c in theirs:
                    rows[i] = state[key][theirs.index(c)]
                else:
                    new.append(c)
            state[key] = rows
        new = sorted(set(new))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"Run {parent.id}'s weights do not fit this model ({len(missing)} missing, "
                          f"{len(unexpected)} unexpected, e.g. {(missing or unexpected)[0]}).")
    dropped = sorted(set(theirs or []) - set(classes or []))
    out = f"Started from run {parent.id}'s trained weights"
    if new:
        out += f"; class(es) it never saw start untrained: {', '.join(new)}"
    if dropped:
        out += f"; its class(es) no longer in the data are left out: {', '.join(dropped)}"
    return out + "."


def continued_config(parent: RunFolder, source: str | None = None) -> RunConfig:
    """A run continuing parent: its settings as asked and its split settings, on the very dataset version it
    trained on (or source: a newer version of it), starting from its weights."""
    loaded, st = parent.config, parent.status
    d = loaded.to_dict()
    d.update(name="", chosen=sorted(loaded.user_set() | {"init_from"}))
    d["train"]["init_from"] = parent.id
    d["data"].update({k: st[v] for k, v in (("source", "dataset"), ("test_source", "test_dataset")) if st.get(v)})
    if source:
        d["data"]["source"] = source
    return RunConfig.from_dict(d)


def parent_of(runs, ref: str) -> RunFolder:
    """A run given by id in this store, or by its folder."""
    if Path(ref).is_dir():
        return runs.open_dir(ref)
    return runs.get(ref)


