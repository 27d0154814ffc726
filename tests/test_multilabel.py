"""Multi-label classification through every seam: the separator found in the data, iterative stratification,
the metrics and thresholds, the CLI's report, prediction, export, and the real offline backbones end to end."""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.data.split import make_split
from core.multilabel_metrics import evaluate_sets, paired_sets, tune_thresholds
from core.tasks.multilabel import MULTILABEL, detect_separator, label_counts
from tests.conftest import ROOT
from tests.helpers import config, train

TOPICS = {"billing": ["invoice", "charge", "refund", "payment"], "urgent": ["asap", "immediately", "emergency", "now"],
          "shipping": ["parcel", "delivery", "courier", "tracking"], "account": ["password", "login", "profile", "signin"]}
FILL = ["the", "my", "please", "help", "with", "about", "issue", "hello", "thanks", "team"]


def tickets(path, n=240, seed=0, sep="; ", noise=0.0):
    """Support tickets with one or two tags each; each tag brings its own words (with noise, some of them are
    left out: a ticket may carry a tag it has no word for, as real ones do)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        tags = sorted(rng.choice(list(TOPICS), int(rng.integers(1, 3)), replace=False))
        words = [w for t in tags for w in rng.choice(TOPICS[t], 2) if rng.random() >= noise] + list(rng.choice(FILL, 4))
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" ticket {i}", "tags": sep.join(tags)})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def tagged_images(root, n=72, seed=0):
    """A colour (red or blue) and, on some, a white bar and/or a black frame: tags 'red'/'blue', 'bar', 'frame'."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        colour = ["red", "blue"][i % 2]
        bar, frame = bool(i // 2 % 2), bool(i // 4 % 2)
        arr = np.clip(np.array(COLOURS[colour]) + rng.normal(0, 12, (64, 64, 3)), 0, 255)
        if bar:
            arr[26:38, 6:58] = 255
        if frame:
            arr[:6], arr[-6:], arr[:, :6], arr[:, -6:] = 0, 0, 0, 0
        Image.fromarray(arr.astype(np.uint8)).save(root / "img" / f"{i}.png")
        rows.append({"path": f"img/{i}.png", "tags": "|".join([colour] + ["bar"] * bar + ["frame"] * frame)})
    pd.DataFrame(rows).to_csv(root / "tags.csv", index=False)
    return root / "tags.csv"


# --------------------------------------------------------------------------- reading the labels
def test_the_separator_is_found_only_where_labels_combine():
    assert detect_separator(["a; b", "a", "b", "b; c", "c"] * 5) == ";"
    assert detect_separator(["x|y", "y", "x"] * 3) == "|"
    # class names that contain a comma split into more names than there were classes: one label per row
    assert detect_separator(["Paris, TX", "Paris, France", "Rome"] * 10) is None
    assert detect_separator(["cat", "dog"] * 20) is None
    assert detect_separator(["a;b"] + ["a", "b"] * 200) is None  # one row in 401 is a typo, not a format
    assert MULTILABEL.read_labels(["urgent; billing", " billing ;", "a|b"], ";") == [
        ("billing", "urgent"), ("billing",), ("a|b",)]
    assert label_counts({"a; b": 3, "a": 2}, ";") == {"a": 5, "b": 3}


def test_iterative_stratification_puts_every_label_in_every_split_and_keeps_groups_whole():
    rng = np.random.default_rng(1)
    n, labels = 300, 6
    y = (rng.random((n, labels)) < [0.5, 0.3, 0.2, 0.1, 0.06, 0.04]).astype(np.int8)
    y[y.sum(1) == 0, 0] = 1
    groups = np.arange(n)
    groups[10:20] = 10  # a duplicate group of ten rows
    split = make_split(y, groups, 0.15, 0.15, seed=0)
    for name in ("train", "val", "test"):
        assert y[split == name].sum(0).min() >= 1, name  # the rarest label (about 12 rows) is in all three
    assert len(set(split[10:20])) == 1
    share = {s: (split == s).mean() for s in ("train", "val", "test")}
    assert abs(share["test"] - 0.15) < 0.05 and abs(share["val"] - 0.15) < 0.05


# --------------------------------------------------------------------------- metrics and thresholds
def test_set_metrics_agree_with_scikit_learn_and_thresholds_are_tuned_per_label():
    from sklearn.metrics import f1_score, hamming_loss

    rng = np.random.default_rng(0)
    truth = (rng.random((200, 3)) < 0.4).astype(np.int8)
    # label 2's probabilities sit low: 0.5 misses most of it, a tuned threshold does not
    probs = np.clip(truth * [0.8, 0.7, 0.3] + rng.normal(0, 0.08, truth.shape) + [0.1, 0.1, 0.0], 0, 1)
    res = evaluate_sets(truth, probs, ["a", "b", "c"])
    pred = (probs >= 0.5).astype(int)
    assert np.isclose(res["micro_f1"], f1_score(truth, pred, average="micro"))
    assert np.isclose(res["macro_f1"], f1_score(truth, pred, average="macro"))
    assert np.isclose(res["hamming_loss"], hamming_loss(truth, pred))
    assert res["label_confusion"]["c"][1][0] == res["per_class"]["c"]["false_negatives"] > 0
    t = tune_thresholds(truth, probs)
    assert t[2] < 0.3
    tuned = evaluate_sets(truth, probs, ["a", "b", "c"], t)
    assert tuned["per_class"]["c"]["f1-score"] > res["per_class"]["c"]["f1-score"] + 0.3
    same = paired_sets(truth, pred, pred)
    assert same["verdict"] == "same" and same["micro_f1_diff"] == 0
    better = paired_sets(truth, truth, pred)
    assert better["verdict"] == "better" and better["low"] > 0 and better["fixed"] > 0 == better["broken"]


# --------------------------------------------------------------------------- the CLI, end to end
def cli(home, *args):
    return subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_cli_detects_several_labels_and_reports_label_scores_on_test_and_baseline(tmp_path):
    data = tickets(tmp_path / "tags.csv")
    home = tmp_path / "home"
    got = cli(home, "train", "--data", data, "--label-col", "tags", "--backbone", "tiny-text", "--strategy", "full",
              "--epochs", "3", "--lr", "3e-3", "--json")
    assert got.returncode == 0, got.stderr
    st = json.loads(got.stdout)
    assert st["task"] == "multilabel" and st["status"] == "completed"
    for part in ("test", "baseline"):
        assert {"micro_f1", "macro_f1", "per_class"} <= set(st[part]), part
        assert set(st[part]["per_class"]) == set(TOPICS)
        assert {"precision", "recall", "f1-score", "support"} <= set(st[part]["per_class"]["billing"])
    assert st["baseline"]["name"] == "TF-IDF + one-vs-rest logistic regression"
    assert st["baseline"]["micro_f1"] > 0.8  # each tag has its own words: a linear model reads them
    assert st["vs_baseline"]["metric"] == "micro_f1" and st["vs_baseline"]["low"] <= st["vs_baseline"]["high"]
    assert any("separated by ';'" in n for n in st["notes"])
    run = st["run_dir"]
    labels = json.loads((Path(run) / "labels.json").read_text())
    assert labels["task"] == "multilabel" and labels["label_sep"] == ";" and len(labels["thresholds"]) == 4
    assert json.loads((Path(run) / "config.json").read_text())["data"]["task"] == "multilabel"  # a replay reads it the same way

    new = tmp_path / "new.csv"
    pd.DataFrame({"text": ["refund my payment asap immediately", "login password profile"]}).to_csv(new, index=False)
    pred = cli(home, "predict", st["run_id"], new)
    assert pred.returncode == 0, pred.stderr
    table = pd.read_csv(io.StringIO(pred.stdout))
    assert {f"p:{c}" for c in TOPICS} <= set(table.columns)
    for _, row in table.iterrows():  # the labels shown are exactly those at or above their thresholds
        shown = {p.strip() for p in str(row["prediction"] if isinstance(row["prediction"], str) else "").split(";")
                 if p.strip()}
        assert shown == {c for c, t in zip(labels["classes"], labels["thresholds"]) if row[f"p:{c}"] >= t}

    out = tmp_path / "onnx"
    exp = cli(home, "export", st["run_id"], "--out", out, "--format", "onnx", "--json")
    assert exp.returncode == 0, exp.stderr
    parity = json.loads(exp.stdout)["parity"]
    assert parity["same_label"] == parity["rows"] and parity["max_abs_diff"] < 1e-4
    assert json.loads((out / "predictor.json").read_text())["labels"]["thresholds"] == labels["thresholds"]
    report = cli(home, "report", st["run_id"], "--out", tmp_path / "r.html")
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert "Per label" in page and "which of 4 labels apply" in page and "micro-F1" in page


def test_one_label_per_cell_is_kept_when_asked(tmp_path, stores):
    data = tickets(tmp_path / "tags.csv", n=120)
    cfg = config(data, "tiny-text", "full", epochs=1)
    cfg.data.label_col, cfg.data.label_sep = "tags", "none"
    rec, st, _ = train(stores, cfg)
    assert st["status"] == "completed" and st["task"] == "classification"
    assert "accuracy" in st["test"] and "; " in " ".join(json.loads((rec.dir / "labels.json").read_text())["classes"])


# --------------------------------------------------------------------------- the real offline backbones
@pytest.mark.slow
def test_minilm_learns_label_sets_frozen_and_with_lora(tmp_path, stores):
    data = tickets(tmp_path / "tags.csv", n=200)
    for strategy, extra in (("frozen", {}), ("lora", {"lr": 2e-3})):
        cfg = config(data, "all-MiniLM-L6-v2", strategy, epochs=3, batch_size=16, **extra)
        cfg.data.label_col = "tags"
        rec, st, _ = train(stores, cfg)
        assert st["status"] == "completed", st.get("reason")
        assert st["task"] == "multilabel" and st["test"]["micro_f1"] > 0.7, (strategy, st["test"])
        assert set(st["thresholds"]) == set(TOPICS)
        preds = pd.read_parquet(rec.dir / "eval" / "test_predictions.parquet")
        assert {"true", "pred", "missed", "added", "loss"} <= set(preds.columns)


@pytest.mark.slow
def test_mobilenet_tags_images_from_a_table_of_paths(tmp_path, stores):
    data = tagged_images(tmp_path / "tagged")
    cfg = config(data, "mobilenet_v2", "frozen", epochs=1)
    cfg.data.label_col = "tags"
    rec, st, _ = train(stores, cfg)
    assert st["status"] == "completed", st.get("reason")
    assert st["task"] == "multilabel" and set(st["test"]["per_class"]) == {"red", "blue", "bar", "frame"}
    assert st["test"]["per_class"]["red"]["f1-score"] > 0.9 and st["test"]["map"] > 0.7
    from core.predict.export import export

    out = export(rec.dir, tmp_path / "int8", "int8", datasets=stores[0])
    assert out["parity"]["rows"] > 0 and out["int8"]["all_rows"]["checked_on"] == 72


def test_the_audit_compares_label_sets_not_how_they_were_written(tmp_path, stores):
    from core.data.audit import audit

    rows = [("same text about a refund", "a; b"), ("same text about a refund", "b;a"),
            ("another text about x", "a; c"), ("another text about x", "c")]
    rows += [(f"filler text number {i}", ["a", "b; c", "c"][i % 3]) for i in range(30)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(tmp_path / "t.csv", index=False)
    rep = audit(stores[0].ingest(str(tmp_path / "t.csv")).dataset)
    assert [sorted(c["labels"]) for c in rep.conflicts] == [["a; c", "c"]]


def test_one_0_1_column_per_label_reads_as_label_sets_and_a_stray_value_is_named(tmp_path, stores):
    df = pd.DataFrame({"text": [f"ticket number {i}" for i in range(6)], "billing": [1, 0, 1, 1, 0, 0],
                       "urgent": ["yes", "no", "yes", "no", "no", "yes"], "shipping": [0, 1, 0, 0, 0, 1]})
    df.to_csv(tmp_path / "flags.csv", index=False)
    ds = stores[0].ingest(str(tmp_path / "flags.csv"), text_col="text", label_col="billing,urgent,shipping").dataset
    # the row with no label set is left out, as an empty label is (said below)
    assert ds.items["label"].tolist() == ["billing; urgent", "shipping", "billing; urgent", "billing",
                                          "urgent; shipping"]
    assert "1 row(s) with an empty label were dropped" in " ".join(ds.manifest["notes"])
    df.loc[3, "urgent"] = "maybe"
    df.to_csv(tmp_path / "bad.csv", index=False)
    from core.errors import DataError

    with pytest.raises(DataError, match="column 'urgent' should hold 0/1.*line 5 holds 'maybe'"):
        stores[0].ingest(str(tmp_path / "bad.csv"), text_col="text", label_col="billing,urgent,shipping")


def test_a_config_written_before_multi_label_replays_one_class_per_cell():
    from core.config import RunConfig

    old = RunConfig.from_dict({"data": {"source": "tags.csv", "task": "classification"}, "train": {}})
    assert old.data.label_sep == "none"  # as it trained then, whatever the cells hold
    new = RunConfig.from_dict({"data": {"source": "tags.csv", "task": "classification", "label_sep": None}})
    assert new.data.label_sep is None and RunConfig.from_dict(old.to_dict()).data.label_sep == "none"
