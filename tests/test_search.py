"""Hyperparameter search: Optuna trials are runs of the store, pruned on validation, in a study that a second
command resumes; the best trial's config replays to the same score."""
import json

import pytest

from core.settings import ConfigError
from core.train.search import check_space, default_space, trial_config
from tests.conftest import make_text_csv
from tests.helpers import config
from tests.test_cli import cli

SPACE = {"lr": {"low": 1e-5, "high": 0.3, "log": True}, "epochs": {"low": 1, "high": 3},
         "batch_size": [8, 16], "weight_decay": {"low": 1e-4, "high": 0.1, "log": True}}


def test_search_prunes_resumes_and_its_best_config_replays(tmp_path):
    data = make_text_csv(tmp_path / "topics.csv", per_class=20)
    args = ["--data", str(data), "--backbone", "tiny-text", "--strategy", "full", "--space", json.dumps(SPACE),
            "--study", "topics", "--json"]
    code, out, err = cli("search", "--trials", "10", *args, home=tmp_path / "h")
    assert code == 0, err
    res = json.loads(out)
    assert len(res["trials"]) == 10 and res["counts"]["pruned"] >= 1, res["counts"]
    pruned = next(t for t in res["trials"] if t["state"] == "pruned")
    assert pruned["run_id"] and 1 <= pruned["epochs_reported"]
    assert set(res["importances"]) <= set(SPACE) and res["importances"]
    code, out, err = cli("search", "--trials", "2", *args, home=tmp_path / "h")  # the same study, resumed
    again = json.loads(out)
    assert code == 0 and len(again["trials"]) == 12 and again["trials"][:10] == res["trials"]
    best = again["best"]
    code, out, err = cli("train", "--config", best["config"], "--json", home=tmp_path / "h")
    assert code == 0, err
    replay = json.loads(out)
    assert replay["test"] == best["test"]  # same split, same seed, same settings: the same model
    code, out, err = cli("search", "--trials", "1", *args[:6], "--study", "topics", "--space", '{"lr": [0.1]}',
                         home=tmp_path / "h")
    assert code == 2 and "another search space" in err


def test_space_is_filled_from_the_data_and_checked_by_name():
    text, image = default_space("text", 300), default_space("image", 50_000)
    assert "max_length" in text and "image_size" not in text and "image_size" in image
    assert max(text["batch_size"]) <= 300 // 4 and text["epochs"]["high"] > image["epochs"]["high"]
    for bad, msg in (({"colour": [1]}, "not a training setting"), ({"lr": {"low": 0, "high": 1, "log": True}}, "low > 0"),
                     ({"lr": {"low": 1, "high": 0}}, "low <= high"), ({"epochs": []}, "no choices")):
        with pytest.raises(ConfigError, match=msg):
            check_space(bad)


def test_a_trial_sets_lora_rank_through_its_strategy_settings():
    cfg = trial_config(config("x.csv", "tiny-text", "auto"), {"strategy": "lora", "lr": 1e-3, "lora_r": 4}, "t")
    assert cfg.train.strategy == "lora" and cfg.train.strategy_args["lora"]["r"] == 4
    assert {"strategy", "lr", "strategy_args"} <= cfg.user_set()


def test_stop_on_a_trials_monitor_stops_that_trial_and_the_search_goes_on(stores, tmp_path):
    import threading
    import time

    from core.runs.runner import request_stop
    from core.train.search import search

    datasets, runs = stores
    base = config(make_text_csv(tmp_path / "t.csv", per_class=20), "tiny-text", "full")
    stopped = []

    def stop_first_trial():
        deadline = time.time() + 120
        while time.time() < deadline and not stopped:
            for r in runs.list():
                if r["status"] == "running":
                    request_stop(runs.get(r["id"]))  # what Monitor's Stop does
                    stopped.append(r["id"])
                    return
            time.sleep(0.05)
    threading.Thread(target=stop_first_trial, daemon=True).start()
    res = search(base, datasets, runs, trials=2, study="stoppable", space={"epochs": [15], "lr": [1e-3]})
    first, second = res["trials"]
    assert stopped == [first["run_id"]] and first["state"] == "fail"
    assert runs.get(first["run_id"]).status["status"] == "stopped"
    assert second["state"] == "complete"


def test_stopping_the_search_stops_the_trial_in_progress_and_keeps_the_study(stores, tmp_path):
    import threading
    import time

    from core.train.events import Control
    from core.train.search import search

    datasets, runs = stores
    control = Control()

    def stop_when_training():
        while not any(r["status"] == "running" for r in runs.list()):
            time.sleep(0.05)
        time.sleep(0.5)
        control.stop()  # what Cancel on the Search page (SIGINT to the search) does
    threading.Thread(target=stop_when_training, daemon=True).start()
    res = search(config(make_text_csv(tmp_path / "t.csv", per_class=20), "tiny-text", "full"), datasets, runs,
                 trials=3, study="stopped", space={"epochs": [200]}, control=control)
    first = res["trials"][0]
    # stopped while training, or (on a loaded machine) still preparing, which the reason then adds
    assert runs.get(first["run_id"]).status["reason"].startswith("The search was stopped.")
    assert not any(t["state"] == "complete" for t in res["trials"])  # no new trial started after the stop


def _search_proc(home, data, study, trials, *extra):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "core.cli", "--home", str(home), "search", "--data", str(data),
                             "--backbone", "tiny-text", "--strategy", "full", "--space", json.dumps(SPACE),
                             "--study", study, "--trials", str(trials), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
                            start_new_session=True)


def _distinct(trials):
    return len({json.dumps(t["params"], sort_keys=True) for t in trials})


def test_two_search_processes_fill_one_study_without_repeating_a_trial(tmp_path):
    """Optuna's storage shared by two workers (here two processes on one machine; the same holds for several
    machines on one database): every trial is run once, none is lost, none is repeated."""
    data = make_text_csv(tmp_path / "topics.csv", per_class=15)
    home = tmp_path / "h"
    code, out, err = cli("search", "--trials", "1", "--data", str(data), "--backbone", "tiny-text", "--strategy",
                         "full", "--space", json.dumps(SPACE), "--study", "shared", "--json", home=home)
    # the dataset ingested and the study made once, before the two workers race (the trial's own outcome is
    # the sampler's draw: a learning rate near 0.3 may diverge, and then the study has no best yet)
    assert code in (0, 1) and json.loads(out)["study"] == "shared", err
    a, b = _search_proc(home, data, "shared", 4), _search_proc(home, data, "shared", 4)
    for p in (a, b):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    from core.train.search.study import storage_url, summary

    # read after both ended: either worker's own summary may show the other's trial still running
    res = summary("shared", storage_url(home / "runs"), home / "runs")
    assert len(res["trials"]) == 9 and _distinct(res["trials"]) == 9
    assert not any(t["state"] == "running" for t in res["trials"])


def test_a_killed_search_resumes_to_its_count_with_no_repeat_and_nothing_left_running(tmp_path):
    import os
    import signal
    import time

    from core.runs.store import RunStore

    data = make_text_csv(tmp_path / "topics.csv", per_class=15)
    home = tmp_path / "h"
    slow = {**SPACE, "epochs": {"low": 40, "high": 60}}
    p = _search_proc(home, data, "killed", 3, "--space", json.dumps(slow))
    runs = RunStore(home / "runs")
    deadline = time.time() + 120
    while time.time() < deadline and not any(r["status"] == "running" for r in runs.list()):
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(p.pid, signal.SIGKILL)  # mid-trial
    p.wait(10)
    code, out, err = cli("search", "--trials", "2", "--data", str(data), "--backbone", "tiny-text", "--strategy",
                         "full", "--space", json.dumps(slow), "--study", "killed", "--json", home=home)
    assert code == 0, err
    res = json.loads(out)
    states = [t["state"] for t in res["trials"]]
    assert "running" not in states and states[0] == "fail"  # the killed trial: failed, not running for ever
    assert len(res["trials"]) == 3 and _distinct(res["trials"]) == 3
    assert runs.get(res["trials"][0]["run_id"]).status["status"] == "interrupted"


def test_a_study_is_bound_to_its_data_and_bad_counts_are_refused(tmp_path):
    data = make_text_csv(tmp_path / "a.csv", per_class=15)
    other = make_text_csv(tmp_path / "b.csv", per_class=15, seed=3)
    base = ["--backbone", "tiny-text", "--strategy", "full", "--space", '{"epochs": [1], "lr": [0.001]}',
            "--study", "bound", "--json"]
    assert cli("search", "--trials", "1", "--data", str(data), *base, home=tmp_path / "h")[0] == 0
    code, out, err = cli("search", "--trials", "1", "--data", str(other), *base, home=tmp_path / "h")
    assert code == 2 and "searches dataset version ds-" in err
    for flag, value, words in (("--trials", "0", "at least one trial"), ("--timeout", "0", "must be above 0")):
        code, out, err = cli("search", flag, value, "--data", str(data), *base, home=tmp_path / "h")
        assert code == 2 and words in err
    code, out, err = cli("search", "--trials", "1", "--data", str(data), "--study", "bad", "--space",
                         '{"batch_size": [8, 0]}', home=tmp_path / "h")
    assert code == 2 and "Search space: batch_size" in err and "between 1 and" in err


def test_a_trial_whose_settings_are_refused_fails_with_why_and_the_search_goes_on(stores, tmp_path, monkeypatch):
    """Settings that do not go together are refused when the trial's config is made: that trial is marked
    failed with the reason (never left running), and the next trial runs."""
    import core.train.search as searching
    from core.train.search import search

    made = []

    def refuse_first(base, params, name):
        made.append(name)
        if len(made) == 1:
            raise ConfigError("lr 0.001 does not go with this strategy (for the test).")
        return trial_config(base, params, name)

    monkeypatch.setattr(searching, "trial_config", refuse_first)
    datasets, runs = stores
    base = config(make_text_csv(tmp_path / "t.csv", per_class=20), "tiny-text", "full", epochs=1)
    res = search(base, datasets, runs, trials=2, study="refusing", space={"lr": [1e-3]})
    first, second = res["trials"]
    assert first["state"] == "fail" and "does not go with this strategy" in first["reason"]
    assert second["state"] == "complete" and res["counts"]["running"] == 0
