"""Hyperparameter search with Optuna: a TPE sampler proposes settings, a median pruner stops a trial whose
validation score after an epoch trails the trials before it at that epoch. The study lives in the run store
(studies.db, SQLite), so a second command with the same study name resumes it. Every trial is an ordinary run
of the store on the same saved split — its own folder, events and checkpoints, listed in Runs — and trials are
ranked by the validation score only: the test split stays unseen until a person looks at the winner."""
from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from ..config import RunConfig, TrainConfig
from ..errors import ConfigError
from ..runs.folder import RunFolder
from ..runs.worker import StopRequests
from .events import Callback, Control
from .setup import open_run
from .trainer import Trainer

STUDIES = "studies.db"
DEFAULT_TRIALS = 20  # trials a search adds when not told (CLI and Search page alike)
LORA_RANK = "lora_r"  # the one strategy setting searched: LoRA's rank, through strategy_args


def storage_url(runs_root: Path) -> str:
    return f"sqlite:///{Path(runs_root) / STUDIES}"


def default_space(modality: str, n_train: int, strategies: list[str] | None = None) -> dict[str, Any]:
    """What to search, filled from the data: fewer epochs and smaller batches for small data; the input size
    (max length or image size) that applies to this modality. Categorical: a list; numeric: low/high(/log)."""
    def applies(name: str) -> bool:
        scope = next(f for f in fields(TrainConfig) if f.name == name).metadata.get("scope")
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


def check_space(space: dict[str, Any]) -> dict[str, Any]:
    """The space as given, refused with the entry's name when a setting does not exist or a range is wrong."""
    known = {f.name for f in fields(TrainConfig)} | {LORA_RANK}
    if not isinstance(space, dict) or not space:
        raise ConfigError("The search space should be a JSON object of setting: choices or {low, high}.")
    for name, spec in space.items():
        if name not in known:
            raise ConfigError(f"Search space: {name!r} is not a training setting.")
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"Search space: {name!r} has no choices.")
        elif isinstance(spec, dict):
            lo, hi = spec.get("low"), spec.get("high")
            if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or lo > hi:
                raise ConfigError(f"Search space: {name!r} needs numbers low <= high, got {spec}.")
            if spec.get("log") and lo <= 0:
                raise ConfigError(f"Search space: {name!r} on a log scale needs low > 0.")
        else:
            raise ConfigError(f"Search space: {name!r} should be a list of choices or {{low, high}}.")
    return space


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    ints = {f.name for f in fields(TrainConfig) if f.type in ("int", "int | None")} | {LORA_RANK}
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if name == LORA_RANK and out.get("strategy", "lora") != "lora":
            continue  # a rank only means something to LoRA trials (TPE handles the conditional space)
        if isinstance(spec, list):
            out[name] = trial.suggest_categorical(name, spec)
        elif name in ints:
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


class Pruning(Callback):
    """Reports each validation score to the trial; stops the run when the pruner says the trial is behind."""

    def __init__(self, trial):
        self.trial, self.best, self.pruned = trial, -math.inf, False

    def on_event(self, ctx, ev):
        if ev.kind != "eval" or ev.data.get("split") != "val":
            return
        value = float(ev.data["epoch_metric"])
        self.best = max(self.best, value)
        self.trial.report(value, ctx.state.epoch)
        if self.trial.should_prune():
            self.pruned = True
            ctx.control.stop("stopped", f"Pruned by the search after epoch {ctx.state.epoch + 1}: its validation "
                                        "score trailed the median of earlier trials at that epoch.")


def search(base: RunConfig, datasets, runs, trials: int, timeout: float | None = None, study: str | None = None,
           space: dict[str, Any] | None = None, owner: str | None = None, control: Control | None = None,
           progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    import optuna

    progress = progress or (lambda f, m: None)
    control = control or Control()
    base = RunConfig.from_dict(base.to_dict())
    ds = open_run(base, datasets, owner=owner).ds
    ds_id, base.data.source = ds.id, ds.id  # every trial reads the same saved dataset version and split
    n_train = int(len(ds.items) * (1 - base.data.val_fraction - base.data.test_fraction))
    space = check_space(space or default_space(ds.modality, n_train))
    name = study or f"search-{ds_id}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.create_study(study_name=name, storage=storage_url(runs.root), load_if_exists=True,
                             direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.train.seed),
                             pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))
    saved = st.user_attrs.get("space")
    if saved is not None and saved != space:
        raise ConfigError(f"Study {name!r} was started with another search space; resume it with the same space "
                          "or name a new study.")
    st.set_user_attr("space", space)
    st.set_user_attr("base", base.to_dict())
    done_before = len(st.trials)

    def objective(trial) -> float:
        if control.should_stop:
            st.stop()
            raise optuna.TrialPruned()
        params = suggest(trial, space)
        cfg = trial_config(base, params, f"{name} · trial {trial.number}")
        rec = runs.create(cfg, ds_id, owner=owner)
        trial.set_user_attr("run_id", rec.id)
        progress((trial.number - done_before) / trials, f"Trial {trial.number}: {_line(params)}")
        pruning, ctl = Pruning(trial), Control()
        # Stop on the trial's own Monitor page works as for any run (its control file); the search's Stop too
        status = Trainer(cfg, rec, runs, datasets, control=ctl,
                         callbacks=[pruning, StopRequests(rec.dir, ctl), _Follow(control, ctl)]).run()
        trial.set_user_attr("status", status.get("status"))
        if status.get("test"):
            trial.set_user_attr("test", status["test"])
        if pruning.pruned:
            raise optuna.TrialPruned()
        if status.get("status") != "completed" or not math.isfinite(pruning.best):
            raise TrialFailed(status.get("reason") or status.get("status"))
        return pruning.best

    st.optimize(objective, n_trials=trials, timeout=timeout, catch=(TrialFailed,))
    return summary(name, runs.root)


class TrialFailed(RuntimeError):
    """A trial's run ended without a validation score (failed or diverged): recorded, the search goes on."""


class _Follow(Callback):
    """The search's Stop (or Ctrl-C) stops the trial in progress too, within a step."""

    def __init__(self, outer: Control, inner: Control):
        self.outer, self.inner = outer, inner  # the inner one directly: progress events come before the loop

    def _check(self) -> None:
        if self.outer.should_stop:
            self.inner.stop(reason="The search was stopped.")

    def on_step_end(self, ctx, loss):
        self._check()

    def on_event(self, ctx, ev):
        if ev.kind == "progress":
            self._check()


def _line(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def studies(runs_root: Path) -> list[str]:
    import optuna

    if not (Path(runs_root) / STUDIES).is_file():
        return []
    return sorted(optuna.study.get_all_study_names(storage_url(runs_root)))


def summary(name: str, runs_root: Path) -> dict[str, Any]:
    """A study's trials, its best trial (value, settings, run, config) and the settings' importances."""
    import optuna

    st = optuna.load_study(study_name=name, storage=storage_url(runs_root))
    rows = [{"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
             "run_id": t.user_attrs.get("run_id"), "test": t.user_attrs.get("test"),
             "epochs_reported": len(t.intermediate_values),
             "seconds": round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
             if t.datetime_complete and t.datetime_start else None} for t in st.trials]
    out: dict[str, Any] = {"study": name, "storage": storage_url(runs_root), "space": st.user_attrs.get("space"),
                           "trials": rows, "counts": {s: sum(r["state"] == s for r in rows)
                                                      for s in ("complete", "pruned", "fail", "running")}}
    complete = [t for t in st.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = st.best_trial
        rid = best.user_attrs.get("run_id")
        out["best"] = {"number": best.number, "value": best.value, "params": best.params, "run_id": rid,
                       "test": best.user_attrs.get("test"),
                       "config": str(RunFolder(Path(runs_root) / rid).config_file) if rid else None}
    out["importances"] = {}
    if len(complete) >= 2:
        try:
            fixed = {k for k, v in (out["space"] or {}).items() if isinstance(v, list) and len(v) == 1}
            out["importances"] = {k: float(v) for k, v in optuna.importance.get_param_importances(st).items()
                                  if k not in fixed}  # a setting held at one value explains nothing
        except (RuntimeError, ValueError) as e:  # one value everywhere, or a single distinct setting
            out["importances_note"] = str(e)
    return out


def space_from_json(text: str) -> dict[str, Any]:
    try:
        return check_space(json.loads(text))
    except json.JSONDecodeError as e:
        raise ConfigError(f"The search space is not valid JSON (line {e.lineno}: {e.msg}).") from None
