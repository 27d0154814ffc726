"""Two users on one server: each sees and changes only their own datasets and runs, unless shared on purpose."""
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import access
from core.data.datasets import open_source
from core.errors import DataError, RunError, StudioError
from core.runs.manager import RunManager
from tests.conftest import make_text_csv
from tests.helpers import config

APP = str(Path(__file__).resolve().parents[1] / "app.py")
ANN, BOB = "ws:" + "a" * 32, "ws:" + "b" * 32


def test_datasets_are_seen_only_by_their_owners(stores, tmp_path):
    datasets, _ = stores
    csv = make_text_csv(tmp_path / "t.csv")
    ds = datasets.ingest(csv, owner=ANN).dataset
    assert access.can_see(ds.dir, ANN) and not access.can_see(ds.dir, BOB)
    with pytest.raises(DataError, match="No dataset"):
        open_source(datasets, ds.id, owner=BOB)
    # the same content brought by Bob is the same immutable version: both own it, neither can alter it
    assert datasets.ingest(csv, owner=BOB).dataset.id == ds.id
    assert access.can_see(ds.dir, BOB) and access.read(ds.dir)["owners"] == [ANN, BOB]
    fixed = datasets.derive(ds, ds.items.head(60), "drop half", owner=ANN)
    assert not access.can_see(fixed.dir, BOB)
    access.set_shared(fixed.dir, ANN, True)
    assert access.can_see(fixed.dir, BOB) and not access.can_change(fixed.dir, BOB)
    with pytest.raises(StudioError, match="belongs to someone else"):
        access.set_shared(fixed.dir, BOB, False)


def test_a_new_version_is_owned_the_moment_it_appears(stores, tmp_path, monkeypatch):
    """The version folder is renamed into place with its owners already inside: no instant where its id
    would show it to anyone."""
    import os

    datasets, _ = stores
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name.startswith("ds-"):
            seen.append(access.read(Path(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    ds = datasets.ingest(make_text_csv(tmp_path / "t.csv"), owner=ANN).dataset
    datasets.derive(ds, ds.items.head(30), "drop most", owner=BOB)
    assert [a["owners"] for a in seen] == [[ANN], [BOB]]


def test_runs_are_private_until_shared_and_read_only_for_others(stores, image_dir):
    datasets, runs = stores
    mgr = RunManager(runs, datasets)
    try:
        a = mgr.submit(config(image_dir, epochs=300), owner=ANN)
        assert [r["id"] for r in runs.list(viewer=ANN)] == [a.id]
        assert runs.list(viewer=BOB) == []
        with pytest.raises(RunError, match="No run"):
            runs.get(a.id, viewer=BOB)
        with pytest.raises(RunError, match="belongs to someone else"):
            mgr.stop(a.id, owner=BOB)
        access.set_shared(a.run.dir, ANN, True)
        assert [r["id"] for r in runs.list(viewer=BOB)] == [a.id]
        with pytest.raises(RunError, match="belongs to someone else"):
            mgr.stop(a.id, owner=BOB)
        deadline = time.time() + 120
        while a.status.get("status") != "running" and time.time() < deadline:
            time.sleep(0.2)
        assert mgr.stop(a.id, owner=ANN)
        assert a.wait(60)["status"] == "stopped"
        with pytest.raises(RunError, match="belongs to someone else"):
            mgr.resume(a.id, owner=BOB)
        # a run on a dataset Bob cannot see is refused as if the dataset were missing
        with pytest.raises(DataError, match="No dataset"):
            mgr.submit(config(a.run.status["dataset"]), owner=BOB)
        assert runs.list(viewer=None)  # the CLI and the single-user studio see everything
    finally:
        mgr.shutdown(stop_runs=True)


def _session(workspace: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["workspace"] = workspace  # what the browser's cookie carries
    app.run()
    assert not app.exception
    return app


def test_two_browser_sessions_do_not_see_each_other(home, tmp_path):
    from studio.services import _services, services

    _services.clear()
    ann, bob = _session("a" * 32), _session("b" * 32)
    ann.button(key="demo_reviews").click().run()
    ds_id = ann.session_state["dataset_id"]
    ann.switch_page("pages/train.py").run()
    ann.radio(key="strategy").set_value("frozen").run()
    next(b for b in ann.button if b.label == "Start training").click().run()
    assert not ann.exception
    rid = services().runs.list()[0]["id"]
    assert services().manager.handle(rid).wait(180)["status"] == "completed"

    bob.switch_page("pages/runs.py").run()
    assert any("No runs yet" in i.value for i in bob.info)
    bob.query_params["ds"], bob.query_params["run"] = ds_id, rid  # Ann's link, pasted by Bob
    bob.switch_page("pages/evaluate.py").run()
    assert not bob.exception and not bob.metric  # nothing of Ann's is shown
    assert any("No runs yet" in i.value for i in bob.info)
    bob.switch_page("pages/explore.py").run()
    assert any("No dataset loaded yet" in i.value for i in bob.info)
    ann.switch_page("pages/data.py").run()
    ann.toggle(key=f"share_{ds_id}").set_value(True).run()
    bob.query_params["ds"] = ds_id
    bob.switch_page("pages/explore.py").run()  # the link works once Ann shares the dataset
    assert not bob.exception and not any("No dataset loaded yet" in i.value for i in bob.info)
    assert "Exact duplicates" in [m.label for m in bob.metric]

    ann.switch_page("pages/runs.py").run()
    assert "shared" in ann.dataframe[0].value.columns
    ann.toggle(key=f"share_{rid}").set_value(True).run()
    assert access.is_shared(services().runs.root / rid)

    bob.switch_page("pages/evaluate.py").run()
    assert not bob.exception and "Test accuracy" in [m.label for m in bob.metric]
    bob.switch_page("pages/monitor.py").run()
    assert any(b.label == "Stop" and b.disabled for b in bob.button)
    assert any("Shared with you by its owner" in c.value for c in bob.caption)
