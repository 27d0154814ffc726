"""Hyperparameter search with Optuna: a TPE sampler proposes settings, a median pruner stops a trial whose
validation score after an epoch trails the trials before it at that epoch. The study lives on Optuna's storage
(core.train.search.study): a second command with the same study name resumes it, and any number of search
processes — on one machine or several sharing a database — fill one study. Every trial is an ordinary run of
the store on the same saved split, queued and trained through the one run lifecycle (core.runs.runner), so it
waits its turn for a device, can be stopped from its Monitor page, and is listed in Runs. Trials are ranked by
the validation score only: the test split stays unseen until a person looks at the winner."""
from __future__ import annotations

import math
import os
import socket
import time
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from ...config import RunConfig
from ...errors import ConfigError, StudioError
from ...runs.runner import run_here
from ..events import Callback, Control
from ..setup import open_run
from .space import LORA_RANK, check_space, combinations, default_space, space_from_json, suggest, trial_config
from .study import STUDIES, counted, fail_dead_trials, open_study, storage_url, studies, summary

DEFAULT_TRIALS = 20  # trials a search adds when not told (CLI and Search page alike)
ATTEMPTS = 50  # proposals tried before a search says its space holds nothing new

__all__ = ["search", "DEFAULT_TRIALS", "default_space", "check_space", "space_from_json", "suggest", "trial_config",
           "studies", "summary", "storage_url", "STUDIES", "LORA_RANK"]


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


def _seen(st: optuna.Study, me: int) -> list[dict[str, Any]]:
    """The settings other trials (any process's, finished or running) have taken."""
    return [t.params for t in counted(st) if t.number != me and t.state != TrialState.WAITING]


def _propose(st: optuna.Study, space: dict[str, Any]) -> tuple[optuna.Trial, dict[str, Any]]:
    """A trial with settings no trial has tried yet (proposals that repeat one are recorded as repeats and not
    run); once the space holds nothing new, a repeat is run rather than nothing."""
    exhausted = len({tuple(sorted(p.items())) for p in _seen(st, -1)}) >= combinations(space)
    for _ in range(ATTEMPTS):
        trial = st.ask()
        params = suggest(trial, space)
        repeat = None if exhausted else next((p for p in _seen(st, trial.number) if p == params), None)
        if repeat is None:
            return trial, params
        trial.set_user_attr("repeat_of", params)
        st.tell(trial, state=TrialState.FAIL)
    return trial, params


def search(base: RunConfig, datasets, runs, trials: int, timeout: float | None = None, study: str | None = None,
           space: dict[str, Any] | None = None, owner: str | None = None, control: Control | None = None,
           progress: Callable[[float, str], None] | None = None, storage: str | None = None) -> dict[str, Any]:
    """Add `trials` trials to the study (until `timeout` seconds pass, or a Stop); returns its summary."""
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"A search adds at least one trial; got {trials!r}.")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"The timeout is the seconds after which no new trial starts; it must be above 0, got "
                          f"{timeout!r}. Leave it out for no limit.")
    progress = progress or (lambda f, m: None)
    control = control or Control()
    base = RunConfig.from_dict(base.to_dict())
    ds = open_run(base, datasets, owner=owner).ds
    ds_id, base.data.source = ds.id, ds.id  # every trial reads the same saved dataset version and split
    n_train = int(len(ds.items) * (1 - base.data.val_fraction - base.data.test_fraction))
    space = check_space(space or default_space(ds.modality, n_train))
    name, url = study or f"search-{ds_id}", storage or storage_url(runs.root)
    probe = open_study(name, url, {"dataset": ds_id, "task": base.data.task}, space, None)
    # a resumed or second search process must not replay the first one's random draws
    seed = (base.train.seed * 1_000_003 + len(probe.trials) * 7919 + os.getpid()) % 2**32
    st = open_study(name, url, {"dataset": ds_id, "task": base.data.task}, space,
                    optuna.samplers.TPESampler(seed=seed))
    failed = fail_dead_trials(st, runs.root)
    if failed:
        progress(0.0, f"Trials {', '.join(map(str, failed))} were left running by a search that ended; marked failed")
    started, made = time.time(), 0
    while made < trials and not control.should_stop and (timeout is None or time.time() - started < timeout):
        trial, params = _propose(st, space)
        made += 1
        _run_trial(st, trial, params, base, name, runs, datasets, ds_id, owner, control)
        progress(made / trials, f"Trial {trial.number}: {_line(params)}")
    return summary(name, url, runs.root)


def _run_trial(st, trial, params, base, name, runs, datasets, ds_id, owner, control) -> None:
    try:
        cfg = trial_config(base, params, f"{name} · trial {trial.number}")
        rec = runs.create(cfg, ds_id, owner=owner)
    except StudioError as e:  # settings that do not go together: this trial fails with why, the search goes on
        trial.set_user_attr("status", "failed")
        trial.set_user_attr("reason", str(e))
        st.tell(trial, state=TrialState.FAIL)
        return
    trial.set_user_attr("run_id", rec.id)
    trial.set_user_attr("host", socket.gethostname())
    pruning, ctl = Pruning(trial), Control()
    status = run_here(runs, datasets, rec, kind="search", control=ctl, callbacks=[pruning, _Follow(control, ctl)])
    trial.set_user_attr("status", status.get("status"))
    if status.get("test"):
        trial.set_user_attr("test", status["test"])
    if pruning.pruned:
        st.tell(trial, state=TrialState.PRUNED)
    elif status.get("status") != "completed" or not math.isfinite(pruning.best):
        trial.set_user_attr("reason", status.get("reason") or status.get("status"))
        st.tell(trial, state=TrialState.FAIL)
    else:
        st.tell(trial, pruning.best)
