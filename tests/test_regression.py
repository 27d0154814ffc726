"""Regression through every seam: targets, loss, metrics, baseline, auto and blend, export, predict, report,
the paired comparison, for text and for images (a table of image paths with a number)."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.cli import main
from tests.helpers import config, train

WORDS = ["awful", "bad", "poor", "dull", "okay", "fine", "good", "great", "superb", "brilliant"]


def text_numbers(path, n=160, seed=0):
    """Sentences whose number follows the words in them (plus noise): learnable, and a line TF-IDF can draw."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = rng.integers(0, len(WORDS), 3)
        rows.append({"text": " ".join(WORDS[j] for j in k) + f" note {i}",
                     "score": round(float(k.mean() + rng.normal(0, 0.3)), 3)})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def image_numbers(root, n=60, seed=0):
    """Grey squares whose brightness is the target, listed in a table of paths."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        level = float(rng.uniform(20, 235))
        arr = np.clip(level + rng.normal(0, 8, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / "img" / f"{i}.png")
        rows.append({"path": f"img/{i}.png", "brightness": round(level, 2)})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def test_text_regression_end_to_end(stores, tmp_path):
    src = text_numbers(tmp_path / "scores.csv")
    cfg = config(src, "tiny-text", "full", epochs=6, lr=3e-3, batch_size=16)
    cfg.data.task, cfg.data.label_col = "regression", "score"
    rec, st, _ = train(stores, cfg)
    assert st["status"] == "completed", st.get("reason")
    assert set(st["test"]) == {"mae", "rmse", "r2"} and set(st["baseline"]) >= {"mae", "rmse", "r2", "name"}
    assert st["baseline"]["name"] == "TF-IDF + ridge regression" and st["baseline"]["r2"] > 0.5
    vs = st["vs_baseline"]
    assert vs["metric"] == "mae" and vs["low"] <= vs["mae_diff"] <= vs["high"]
    res = rec.result("test")
    assert {"mae", "rmse", "r2", "spearman"} <= set(res) and "confusion" not in res
    preds = pd.read_parquet(rec.dir / "eval" / "test_predictions.parquet")
    assert {"true", "pred", "error", "error_abs"} <= set(preds.columns)
    assert np.allclose(preds["error_abs"].mean(), res["mae"])
    events = rec.events()
    val = [e for e in events if e["kind"] == "eval" and e["data"].get("split") == "val"]
    assert all("mae" in e["data"] and "rmse" in e["data"] for e in val)
    labels = json.loads((rec.dir / "labels.json").read_text())
    assert labels["task"] == "regression" and len(labels["scale"]) == 2


def test_auto_blends_a_regression_with_ridge_on_tfidf(stores, tmp_path):
    src = text_numbers(tmp_path / "scores.csv")
    cfg = config(src, "tiny-text", "auto", epochs=2)
    cfg.data.task, cfg.data.label_col = "regression", "score"
    rec, st, tr = train(stores, cfg)
    assert st["status"] == "completed" and "blends" in st["auto"] and "label smoothing" not in st["auto"]
    assert tr.cfg.train.label_smoothing == 0.0 and tr.cfg.train.class_weighting == "none"
    assert "val_mae" in st["blend"] and 0.0 <= st["blend"]["network_weight"] <= 1.0
    from core.predict.predictor import Predictor

    preds = pd.read_parquet(rec.dir / "eval" / "test_predictions.parquet")
    out = Predictor(rec.dir).predict(preds["input"].tolist())[0][:, 0]
    np.testing.assert_allclose(out, preds["pred"].to_numpy(), atol=1e-4)  # the blend travels with the run


def test_image_regression_from_a_table_of_paths_exports_and_predicts_numbers(stores, tmp_path, capsys):
    src = image_numbers(tmp_path / "bright")
    cfg = config(src, "tiny-cnn", "full", epochs=8, lr=1e-2, batch_size=8)
    cfg.data.task, cfg.data.label_col = "regression", "brightness"
    rec, st, _ = train(stores, cfg)
    assert st["status"] == "completed" and st["baseline"]["name"] == "ridge regression on pretrained features"
    out = tmp_path / "exp"
    assert main(["export", str(rec.dir), "--format", "onnx", "--out", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["parity"]["max_abs_diff"] < 1e-4 and "accuracy" not in rep["parity"]
    assert main(["predict", str(out), str(tmp_path / "bright" / "img"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert "classes" not in got and isinstance(got["predictions"][0]["prediction"], float)
    assert main(["report", str(rec.dir), "--out", str(tmp_path / "r.html"), "--no-saliency"]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "Predicted against true" in html and "Residuals" in html and "Confusion matrix" not in html


def test_a_label_that_is_not_a_number_is_named(stores, tmp_path):
    src = text_numbers(tmp_path / "scores.csv")
    df = pd.read_csv(src)
    df["score"] = df["score"].astype(object)
    df.loc[7, "score"] = "about five"
    df.to_csv(src, index=False)
    cfg = config(src, "tiny-text", "full", epochs=1)
    cfg.data.task, cfg.data.label_col = "regression", "score"
    _, st, _ = train(stores, cfg)
    assert st["status"] == "failed" and "'about five'" in st["reason"] and "not" in st["reason"]


def test_the_cli_trains_a_regression_and_reports_both_sides(tmp_path, capsys):
    src = text_numbers(tmp_path / "scores.csv")
    code = main(["--home", str(tmp_path / "h"), "train", "--data", str(src), "--label-col", "score", "--task",
                 "regression", "--backbone", "tiny-text", "--strategy", "frozen", "--epochs", "2", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and {"mae", "rmse", "r2"} <= set(r["test"]) and {"mae", "rmse", "r2"} <= set(r["baseline"])
    assert main(["evaluate", r["run_dir"], "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["task"] == "regression" and "mae" in ev["test"] and "the baseline" in ev["verdict"]


@pytest.mark.parametrize("monitor,ok", [("rmse", True), ("macro_f1", False)])
def test_a_monitor_the_task_does_not_have_is_refused(stores, tmp_path, monitor, ok):
    src = text_numbers(tmp_path / "scores.csv")
    cfg = config(src, "tiny-text", "frozen", epochs=1, monitor=monitor)
    cfg.data.task, cfg.data.label_col = "regression", "score"
    _, st, _ = train(stores, cfg)
    assert (st["status"] == "completed") == ok
    if not ok:
        assert "monitor 'macro_f1' does not apply to regression" in st["reason"]
