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

    from core.runs.worker import request_stop
    from core.train.search import search

    datasets, runs = stores
    base = config(make_text_csv(tmp_path / "t.csv", per_class=20), "tiny-text", "full")
    stopped = []

    def stop_first_trial():
        deadline = time.time() + 120
        while time.time() < deadline and not stopped:
            for r in runs.list():
                if r["status"] == "running":
                    request_stop(runs.get(r["id"]).dir)  # what Monitor's Stop does
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
    assert runs.get(first["run_id"]).status["reason"] == "The search was stopped."
    assert not any(t["state"] == "complete" for t in res["trials"])  # no new trial started after the stop
