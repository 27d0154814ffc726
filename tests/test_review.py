"""The expert's review loop: the queue of examples worth a look, decisions saved as made (a restart keeps them), a
new version that records each change and keeps every example in its split, and a run continued on it."""
import json

import numpy as np
import pandas as pd
import pytest

from core.data.datasets import DatasetStore
from core.data.review import decide, decisions, new_version, review_queue, version_changes
from core.data.split import dataset_split
from core.errors import DataError
from core.runs.review import run_queue
from tests.helpers import config, train


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """A run on data with every finding (flipped labels, conflicts, duplicates)."""
    from tests.conftest import make_findings_csv
    from tests.helpers import stores_at

    home = tmp_path_factory.mktemp("review")
    s = stores_at(home)
    csv = make_findings_csv(home / "findings.csv")
    rec, st, _ = train(s, config(csv, "tiny-text", "full", epochs=3, lr=3e-3))
    assert st["status"] == "completed"
    return s, rec, home


def test_the_queue_lists_doubted_labels_mistakes_and_conflicts_with_why(reviewed):
    s, rec, _ = reviewed
    ds, queue = run_queue(rec, s[0])
    reasons = set(",".join(queue["reasons"]).split(","))
    assert "conflict" in reasons and reasons & {"suspect", "error"}  # flipped labels: doubted, or mistaken on test
    conflicts = queue[queue["reasons"].str.contains("conflict")]
    assert len(conflicts) >= 4  # two texts, each under two labels
    for _, r in queue.iterrows():
        assert r["label"] == ds.items["label"].iloc[r["pos"]] and r["input"] == ds.display(r["pos"]) and r["why"]
    for reason in ("error", "suspect"):
        flagged = queue[queue["reasons"].str.contains(reason)]
        assert (flagged["predicted"] != flagged["label"]).all()
    # the least-sure training examples come from a model that never saw them, and are not test examples
    oof = pd.read_parquet(rec.unsure_file)
    tested = set(pd.read_parquet(rec.test_predictions)["row"].astype(int))
    assert len(oof) and not set(oof["row"]) & tested
    assert list(oof["confidence"]) == sorted(oof["confidence"]) and (oof["confidence"] < 1 / 2 + 1 / 6).all()
    unsure = queue[queue["reasons"].str.split(",").apply(lambda rs: "unsure_oof" in rs)]
    assert set(unsure["pos"]) <= set(oof["row"]) and len(unsure)
    # most reasons first, then most confident
    assert list(queue["reasons"].str.count(",")) == sorted(queue["reasons"].str.count(","), reverse=True)


def test_decisions_are_saved_as_made_and_survive_a_restart(reviewed, tmp_path):
    s, rec, home = reviewed
    ds = s[0].get(rec.status["dataset"])
    ds.review_file.unlink(missing_ok=True)
    decide(ds, 3, "accept", who="dr. a")
    decide(ds, 3, "relabel", "food", who="dr. b")  # a later decision replaces the earlier
    with open(ds.review_file, "a", encoding="utf-8") as f:
        f.write('{"pos": 4, "decis')  # a write cut short by a crash
    again = DatasetStore(home / "datasets").get(ds.id)  # a restarted server
    made = decisions(again)
    assert list(made) == [3] and made[3]["decision"] == "relabel" and made[3]["label"] == "food"
    assert made[3]["who"] == "dr. b" and made[3]["when"] > 0
    assert review_queue(again).pipe(lambda q: q.empty or True)
    for bad, match in (((ds, 3, "maybe"), "Unknown decision"), ((ds, 10_000, "remove"), "not an example"),
                       ((ds, 3, "relabel"), "a new label is needed")):
        with pytest.raises(DataError, match=match):
            decide(*bad)
    ds.review_file.unlink()


def test_a_new_version_records_each_change_and_keeps_every_example_in_its_split(reviewed):
    s, rec, _ = reviewed
    ds = s[0].get(rec.status["dataset"])
    ds.review_file.unlink(missing_ok=True)
    with pytest.raises(DataError, match="nothing to make a new version of"):
        new_version(s[0], ds)
    d = rec.config.data
    before = dataset_split(ds, val=d.val_fraction, test=d.test_fraction, seed=d.split_seed, rare_policy=d.rare_policy)
    test_rows = [int(i) for i in np.flatnonzero(before == "test")]
    other = {c: next(x for x in ds.classes if x != c) for c in ds.classes}
    changes = {test_rows[0]: ("relabel", other[ds.items["label"].iloc[test_rows[0]]]),
               5: ("relabel", other[ds.items["label"].iloc[5]]), test_rows[1]: ("remove", None),
               7: ("ambiguous", None), 9: ("accept", None)}
    for pos, (what, label) in changes.items():
        decide(ds, pos, what, label, who="dr. a")
    new, made = new_version(s[0], ds, "dr. a")
    assert (made["relabel"], made["remove"], made["ambiguous"], made["rows"]) == (2, 1, 1, len(ds.items) - 2)
    assert new.manifest["parent"] == ds.id and "2 relabelled, 1 removed" in new.manifest["change"]
    log = version_changes(new)
    assert log["parent"] == ds.id and {c["pos"] for c in log["changes"]} == set(changes) - {9}
    assert all(c["who"] == "dr. a" and c["when"] and "was" in c for c in log["changes"])
    kept = [i for i in range(len(ds.items)) if i not in (test_rows[1], 7)]
    assert new.items["label"].iloc[kept.index(5)] == changes[5][1]
    after = dataset_split(new, val=d.val_fraction, test=d.test_fraction, seed=d.split_seed, rare_policy=d.rare_policy)
    assert list(after) == [before[i] for i in kept]  # every example in the split it was in
    ds.review_file.unlink()


def test_the_cli_reviews_relabels_and_continues_on_the_new_version(reviewed, tmp_path, capsys):
    from core.cli import main

    s, rec, home = reviewed
    assert main(["--home", str(home), "review", rec.id, "--json", "--limit", "5"]) == 0
    listed = json.loads(capsys.readouterr().out)["examples"]
    assert 0 < len(listed) <= 5 and all("why" in e for e in listed)
    wrong = [e for e in listed if e["predicted"] and e["predicted"] != e["label"]][:2]
    rows = [{"row": e["pos"], "decision": "relabel", "label": e["predicted"]} for e in wrong]
    rows.append({"row": listed[-1]["pos"], "decision": "remove", "label": ""})
    pd.DataFrame(rows).to_csv(tmp_path / "decisions.csv", index=False)
    assert main(["--home", str(home), "relabel", rec.id, "--decisions", str(tmp_path / "decisions.csv"),
                 "--who", "dr. a", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["relabel"] == len(wrong) and made["remove"] == 1 and made["next"].endswith(made["dataset"])
    assert main(["--home", str(home), "train", "--init-from", rec.id, "--data", made["dataset"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    child = s[1].get(out["run_id"])
    assert out["status"] == "completed" and out["parent"] == rec.id and child.status["dataset"] == made["dataset"]
    changes = json.loads(child.parent_changes_file.read_text())
    removed_from_test = int(listed[-1]["pos"] in [int(r) for r in pd.read_parquet(rec.test_predictions)["row"]])
    assert changes["n"] == rec.status["sizes"]["test"] - removed_from_test  # the same test examples, by content
    bad = tmp_path / "bad.csv"
    bad.write_text("row,decision\nx,remove\n")
    assert main(["--home", str(home), "relabel", rec.id, "--decisions", str(bad)]) != 0
    assert "line 2: row 'x' is not a row number" in capsys.readouterr().err
