"""A study on Optuna's own storage: by default a SQLite file in the run store, or any SQLAlchemy URL
(PostgreSQL, MySQL), so search processes on several machines fill one study — the scale-out path for search is
Optuna's engine, not ours. A study is bound to the dataset version and task it searches; trials whose process
died are marked failed when a search next opens it."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ...errors import ConfigError
from ...runs.folder import RunFolder
from ...runs.lifecycle import owner

STUDIES = "studies.db"
STARTING_S = 600  # a running trial with no run yet (its process died between asking and starting) is stale after


def storage_url(runs_root: Path) -> str:
    return f"sqlite:///{Path(runs_root) / STUDIES}"


def storage(url: str) -> optuna.storages.RDBStorage:
    """SQLite waits for another process's write instead of failing at once."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def open_study(name: str, url: str, bound: dict[str, Any], space: dict[str, Any], sampler) -> optuna.Study:
    """The study, created or resumed; refused when it searches other data, another task or another space."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.create_study(study_name=name, storage=storage(url), load_if_exists=True, direction="maximize",
                             sampler=sampler,
                             pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))
    for key, what in (("dataset", "dataset version"), ("task", "task")):
        was = st.user_attrs.get(key)
        if was is not None and was != bound[key]:
            raise ConfigError(f"Study {name!r} searches {what} {was}, and this search is on {bound[key]}: a study "
                              "compares trials on one dataset and split. Name a new study (--study).")
    saved = st.user_attrs.get("space")
    if saved is not None and saved != space:
        raise ConfigError(f"Study {name!r} was started with another search space; resume it with the same space "
                          "or name a new study.")
    for key, value in {**bound, "space": space}.items():
        if st.user_attrs.get(key) != value:
            st.set_user_attr(key, value)
    return st


def fail_dead_trials(st: optuna.Study, runs_root: Path) -> list[int]:
    """Trials left running by a search process that died: failed, so the study's counts and best are true."""
    done = []
    for t in st.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        rid = t.user_attrs.get("run_id")
        rec = RunFolder(Path(runs_root) / rid) if rid else None
        if rec is not None and rec.is_run():
            if owner(rec) is not None:
                continue
        elif t.datetime_start and time.time() - t.datetime_start.timestamp() < STARTING_S:
            continue
        st.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        done.append(t.number)
    return done


def studies(url: str) -> list[str]:
    try:
        return sorted(optuna.study.get_all_study_names(storage(url)))
    except Exception:  # no study written yet
        return []


def counted(st: optuna.Study) -> list:
    """The trials that count: a proposal that repeated an earlier setting and was not run is left out."""
    return [t for t in st.get_trials(deepcopy=False) if not t.user_attrs.get("repeat_of")]


def summary(name: str, url: str, runs_root: Path) -> dict[str, Any]:
    """A study's trials, its best trial (value, settings, run, config) and the settings' importances."""
    st = optuna.load_study(study_name=name, storage=storage(url))
    trials = counted(st)
    rows = [{"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
             "run_id": t.user_attrs.get("run_id"), "test": t.user_attrs.get("test"),
             "reason": t.user_attrs.get("reason"),  # why a trial failed
             "epochs_reported": len(t.intermediate_values), "host": t.user_attrs.get("host"),
             "seconds": round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
             if t.datetime_complete and t.datetime_start else None} for t in trials]
    out: dict[str, Any] = {"study": name, "storage": url if not url.startswith("sqlite") else url.split("///")[-1],
                           "space": st.user_attrs.get("space"), "dataset": st.user_attrs.get("dataset"),
                           "trials": rows, "counts": {s: sum(r["state"] == s for r in rows)
                                                      for s in ("complete", "pruned", "fail", "running")}}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: t.value)
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
