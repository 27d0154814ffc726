"""Continuing a finished run (train.init_from): the child starts from the parent's weights, keeps its settings
unless changed, matches classes by name, is refused when it cannot fit, and says what changed on the test split."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.backbones import get_backbone
from core.errors import RunError
from core.fsutil import read_json
from core.runs.changes import summary, what_changed
from core.runs.folder import RunFolder
from core.train.parent import load_parent
from tests.helpers import config, train


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    from tests.conftest import make_text_csv
    from tests.helpers import stores_at

    home = tmp_path_factory.mktemp("continue")
    s = stores_at(home)
    csv = make_text_csv(home / "topics.csv")
    rec, st, _ = train(s, config(csv, "tiny-text", "full", epochs=3, lr=3e-3))
    assert st["status"] == "completed"
    return s, csv, rec


def test_a_child_starts_from_its_parents_weights_and_says_what_changed(parent):
    s, csv, rec = parent
    # a learning rate too small to move a weight: the child predicts exactly as its parent did
    child, st, _ = train(s, config(csv, "tiny-text", "full", epochs=1, lr=1e-12, init_from=rec.id))
    assert st["status"] == "completed" and st["parent"] == rec.id
    assert any(f"Started from run {rec.id}'s trained weights" in n for n in st["notes"])
    a, b = (pd.read_parquet(r.test_predictions) for r in (rec, child))
    assert (a["pred"] == b["pred"]).all() and np.allclose(a["confidence"], b["confidence"], atol=1e-4)
    changes = read_json(child.parent_changes_file)
    assert changes["n"] == len(a) and changes["vs_parent"]["verdict"] == "same" and changes["fixed"] == []
    assert st["vs_parent"] == summary(changes) and "the same prediction on every one" in st["vs_parent"]
    # a fresh run with the same settings starts elsewhere: the parent's weights, not the seed, made the match
    fresh, _, _ = train(s, config(csv, "tiny-text", "full", epochs=1, lr=1e-12))
    assert not np.allclose(pd.read_parquet(fresh.test_predictions)["confidence"], a["confidence"], atol=1e-4)


def test_auto_continuing_a_run_trains_what_the_parent_ran_with_its_settings(parent):
    s, csv, rec = parent
    cfg = config(csv, "tiny-text", "auto", epochs=1, init_from=rec.id, max_steps=2)
    cfg.choose("epochs", "max_steps")
    child, st, _ = train(s, cfg)
    ran = child.resolved_config.train
    assert st["status"] == "completed" and (ran.strategy, ran.backbone, ran.lr) == ("full", "tiny-text", 3e-3)
    assert ran.epochs == 1  # what the child set itself is its own
    assert any(f"Continues run {rec.id}" in n for n in st["notes"])


def test_a_child_of_another_shape_or_a_parent_without_weights_is_refused(parent, tmp_path):
    s, csv, rec = parent
    _, st, _ = train(s, config(csv, "tiny-text", "lora", epochs=1, init_from=rec.id))
    assert st["status"] == "failed" and "different model shape" in st["reason"] and "strategy" in st["reason"]
    _, st, _ = train(s, config(csv, "tiny-text", "full", epochs=1, init_from="r-none"))
    assert st["status"] == "failed" and "No run 'r-none'" in st["reason"]
    empty = s[1].create(config(csv, "tiny-text", "full"), rec.status["dataset"])
    _, st, _ = train(s, config(csv, "tiny-text", "full", epochs=1, init_from=empty.id))
    assert st["status"] == "failed" and "no saved weights" in st["reason"]


def test_classes_are_matched_by_name(parent):
    _, _, rec = parent
    theirs = rec.status["classes"]
    spec = get_backbone("tiny-text")
    model = spec.build(3)
    before = model.state_dict()["head.1.weight"].clone()
    mine = [theirs[2], "brand-new", theirs[0]]
    note = load_parent(model, rec, mine)
    from safetensors.torch import load_file

    saved = load_file(str(rec.weights))["head.1.weight"]
    w = model.state_dict()["head.1.weight"]
    assert torch.equal(w[0], saved[2]) and torch.equal(w[2], saved[0]) and torch.equal(w[1], before[1])
    assert "never saw start untrained: brand-new" in note and f"left out: {theirs[1]}" in note


def _fake_run(root, rid, rows):
    d = RunFolder(root / rid)
    d.eval_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(d.test_predictions, index=False)
    return d


def test_what_changed_judges_both_by_the_childs_labels_and_counts_fixed_and_broken(tmp_path):
    rows = [str(i) for i in range(6)]
    inputs = [f"text {i}" for i in range(6)]
    p = _fake_run(tmp_path, "p", {"row": rows, "input": inputs, "true": list("aabbaa"), "pred": list("abbbaa")})
    # row 5 relabelled a→b; the child fixes rows 1 and 5 and breaks row 2; row 3 is another example now
    c = _fake_run(tmp_path, "c", {"row": rows, "input": inputs[:3] + ["other"] + inputs[4:],
                                  "true": list("aabbab"), "pred": list("aaabab")})
    ch = what_changed(p, c)
    assert ch["n"] == 5 and ch["relabelled"] == 1
    assert [r["row"] for r in ch["fixed"]] == ["1", "5"] and [r["row"] for r in ch["broken"]] == ["2"]
    assert ch["vs_parent"]["fixed"] == 2 and ch["vs_parent"]["broken"] == 1
    assert "1 of them with a corrected label" in summary(ch) and "2 example(s) fixed, 1 broken" in summary(ch)
    far = _fake_run(tmp_path, "f", {"row": ["9"], "input": ["x"], "true": ["a"], "pred": ["a"]})
    assert "share no test example" in summary(what_changed(p, far))
    with pytest.raises(RunError, match="no test predictions"):
        what_changed(p, RunFolder(tmp_path / "none"))


def test_the_cli_continues_a_run_on_its_own_data_and_split_and_evaluate_says_what_changed(parent, capsys):
    from core.cli import main

    s, _, rec = parent
    home = s[0].root.parent
    assert main(["--home", str(home), "train", "--init-from", str(rec.dir), "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed" and out["parent"] == rec.id and "test examples both runs" in out["vs_parent"]
    child = s[1].get(out["run_id"])
    cfg = child.config
    assert cfg.train.init_from == rec.id and cfg.data.source == rec.status["dataset"]  # the very version it trained on
    assert {"init_from", "epochs"} <= set(cfg.chosen) and cfg.train.lr == rec.config.train.lr
    assert child.status["sizes"] == rec.status["sizes"]
    assert main(["--home", str(home), "evaluate", out["run_id"], "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["parent"] == rec.id and ev["vs_parent"]["n"] == rec.status["sizes"]["test"]
    assert "fixed" not in ev["vs_parent"]  # the example lists stay in the run folder


def test_evaluate_shows_what_changed_and_continues_a_run_and_the_report_says_it(parent, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core.report.html import build_report
    from studio.services import _services
    from tests.helpers import wait_for

    s, csv, rec = parent
    child, st, _ = train(s, config(csv, "tiny-text", "full", epochs=1, lr=1e-2, init_from=rec.id))
    html = build_report(child, s[0].get(st["dataset"]), explain=False)
    assert f"What changed since run {rec.id}" in html and "recall before" in html

    monkeypatch.setenv("FTS_HOME", str(s[0].root.parent))
    _services.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()
    at.session_state["run_id"] = child.id  # as Monitor leaves it
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception and not at.error
    shown = " ".join(m.value for m in [*at.success, *at.info, *at.error, *at.warning])
    assert f"Continued from run {rec.id}" in shown and "test examples both runs were judged on" in shown
    before = {r["id"] for r in s[1].list()}
    at.number_input(key=f"continue_epochs_{child.id}").set_value(1).run()
    at.button(key=f"continue_{child.id}").click().run()
    assert not at.exception and not at.error
    new = wait_for(lambda: [r for r in s[1].list() if r["id"] not in before], timeout=30)
    grandchild = s[1].get(new[0]["id"])
    assert grandchild.config.train.init_from == child.id and grandchild.config.train.epochs == 1
    assert wait_for(lambda: grandchild.status.get("status") in ("completed", "failed"), timeout=120)
    assert grandchild.status["status"] == "completed" and grandchild.status["parent"] == child.id
