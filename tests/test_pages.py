"""Every page through Streamlit's AppTest, including the error paths."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_text_csv

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def at(home):
    from studio.services import _services

    _services.clear()  # a fresh process-wide manager per test home
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    assert not app.exception
    return app


def errors(app):
    return [e.value for e in app.error]


def test_every_page_renders_without_data(at):
    for page in ["pages/explore.py", "pages/train.py", "pages/monitor.py", "pages/evaluate.py",
                 "pages/predict.py", "pages/runs.py", "pages/search.py", "pages/review.py"]:
        at.switch_page(page).run()
        assert not at.exception, page
        assert not errors(at), page


def test_text_flow_through_every_page(at, tmp_path):
    at.button(key="demo_reviews").click().run()
    assert not at.exception and not errors(at)
    assert [m.value for m in at.metric][:2] == ["400", "2"]

    at.switch_page("pages/explore.py").run()
    assert not at.exception and not errors(at)
    assert "Exact duplicates" in [m.label for m in at.metric]

    at.switch_page("pages/train.py").run()
    at.selectbox[0].select_index(0).run()  # all-MiniLM-L6-v2
    at.radio(key="strategy").set_value("frozen").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and not errors(at)

    from studio.services import services

    rid = services().runs.list()[0]["id"]
    h = services().manager.handle(rid)
    assert h.wait(180)["status"] == "completed"

    at.switch_page("pages/monitor.py").run()
    assert not at.exception and not errors(at)
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception and not errors(at)
    assert "Test accuracy" in [m.label for m in at.metric]
    at.switch_page("pages/predict.py").run()
    at.text_area[0].input("An absolute triumph, moving and funny.").run()
    assert not at.exception and any("Prediction:" in m.value for m in at.markdown)
    at.switch_page("pages/runs.py").run()
    assert not at.exception and not errors(at)


def test_invalid_backbone_is_refused_before_launch(at):
    at.button(key="demo_reviews").click().run()
    at.switch_page("pages/train.py").run()
    at.selectbox[0].set_value("Other: a torchvision model or Hugging Face id").run()
    at.text_input(key="backbone_typed").input("resnet-9000").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    msg = " ".join(errors(at))
    assert "Unknown backbone 'resnet-9000'" in msg and "Available offline" in msg


def test_fix_duplicates_creates_new_version(at, tmp_path, monkeypatch):
    import pandas as pd

    from studio.services import services

    p = make_text_csv(tmp_path / "t.csv", per_class=10)
    df = pd.read_csv(p)
    pd.concat([df, df.head(3)]).to_csv(p, index=False)
    ds = services().datasets.ingest(p).dataset
    at.session_state["dataset_id"] = ds.id
    at.switch_page("pages/explore.py").run()
    assert [m.value for m in at.metric if m.label == "Exact duplicates"] == ["3"]
    next(b for b in at.button if b.label == "Drop exact duplicates").click().run()
    assert not at.exception
    assert at.session_state["dataset_id"] != ds.id
    assert [m.value for m in at.metric if m.label == "Exact duplicates"] == ["0"]


def test_search_page_offers_the_settings_the_cli_uses(at):
    """The Search page's defaults are the engine's: trials to add and the space filled from the data."""
    import json

    from core.train.search import DEFAULT_TRIALS, default_space

    at.button(key="demo_reviews").click().run()
    at.switch_page("pages/search.py").run()
    assert not at.exception and not errors(at)
    assert at.number_input(key="search_trials").value == DEFAULT_TRIALS
    default = default_space("text", int(400 * 0.8))
    boxes = {c.label: c.value for c in at.checkbox}
    assert {"Learning rate", "Epochs", "Batch size", "LoRA rank", "Max tokens"} <= set(boxes)  # labelled, not keyed
    assert all(boxes[k] for k in ("Learning rate", "Epochs"))
    strategies = next(m for m in at.multiselect if m.value and "full" in m.value)
    assert strategies.value == default["strategy"]
    next(t for t in at.toggle if t.label.startswith("Edit as written")).set_value(True).run()
    space = json.loads(next(t for t in at.text_area if t.label.startswith("What to search")).value)
    assert space == default  # the same space as the CLI takes it
    next(t for t in at.toggle if t.label.startswith("Edit as written")).set_value(False).run()
    next(c for c in at.checkbox if c.label == "Epochs").uncheck().run()
    at.number_input(key=f"sp_hi_{at.session_state['dataset_id']}_lr").set_value(1e-3).run()
    next(t for t in at.toggle if t.label.startswith("Edit as written")).set_value(True).run()
    space = json.loads(next(t for t in at.text_area if t.label.startswith("What to search")).value)
    assert "epochs" not in space and space["lr"] == {**default["lr"], "high": 1e-3}  # what the form set
    assert any(b.label == "Start search" for b in at.button)


def test_the_train_page_leads_with_how_long_and_the_budget_it_names_is_the_one_that_runs(at):
    """The default view is a few controls; Quick, Balanced and Thorough are budgets in the run's own config."""
    import json

    from core.train.auto.choose import EFFORT

    at.button(key="demo_reviews").click().run()
    at.switch_page("pages/train.py").run()
    assert not at.exception and not errors(at)
    simple, advanced = (next(t for t in at.tabs if t.label == n) for n in ("Simple", "Advanced"))
    kinds = ("radio", "button", "text_input", "selectbox", "multiselect", "number_input", "checkbox", "toggle",
             "slider", "text_area", "expander")

    def count(where):
        return sum(len(getattr(where, k)) for k in kinds)
    assert count(at.main) - count(advanced) + len(at.tabs) <= 8  # what shows before Advanced is opened

    def config():
        return json.loads(next(c.value for c in at.code if c.language == "json"))

    for effort, (minutes, _) in EFFORT.items():
        at.radio(key="effort").set_value(effort).run()
        cfg = config()
        budget = cfg["train"]["budget_minutes"]
        assert (budget or EFFORT["balanced"][0]["cpu"]) == minutes["cpu"], effort  # None: the device's default
        assert ("budget_minutes" in cfg["chosen"]) == (budget is not None)  # auto keeps a budget asked for
        assert any(f"fits {minutes['cpu']:g} minutes" in c.value for c in at.caption[:1]), effort
    at.radio(key="strategy").set_value("frozen").run()
    assert at.radio(key="effort").disabled and config()["train"]["budget_minutes"] is None
    assert "its epochs set the time" in at.caption[0].value


def test_monitor_shows_what_auto_planned_beside_what_ran_with_a_refit(at):
    """The epochs the budget re-fitted (core.train.callbacks.Budget) are in the plan's 'ran' column."""
    from core.config import DataConfig, RunConfig, TrainConfig
    from studio.services import services

    s = services()
    source = str(Path(APP).parent / "assets" / "demo" / "reviews.csv")
    ds = s.datasets.ingest(source).dataset
    rec = s.runs.create(RunConfig(data=DataConfig(source=source), train=TrainConfig(strategy="auto")), ds.id)
    s.runs.set_status(rec, "completed", auto="Plan: full all-MiniLM-L6-v2.", resolved_strategy="full",
                      resolved_backbone="all-MiniLM-L6-v2", run_s=420.0, epoch=6, best_epoch=5,
                      plan={"choice": "", "estimate_s": 300.0, "budget_s": 600.0, "considered": [],
                            "planned": {"strategy": "full", "backbone": "all-MiniLM-L6-v2", "epochs": 3}},
                      replanned={"after_epoch": 1, "planned": 3, "epochs": 6, "epoch_s": 41.7})
    at.query_params["run"] = rec.id
    at.switch_page("pages/monitor.py").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "planned" in d.value.columns)
    epochs = table.set_index(table.columns[0]).loc["epochs"]
    assert epochs["planned"] == "3" and epochs["ran"] == "6 (best 5; re-fitted to 6 after epoch 1 at 42 s an epoch)"
    assert table.set_index(table.columns[0]).loc["time"].tolist() == ["5.0 min of 10 min", "7.0 min"]
