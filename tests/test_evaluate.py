"""The paired comparison with the baseline: a verdict only where the test set can resolve it."""
import numpy as np

from core.metrics import bootstrap_macro_f1, comparison, paired_comparison

CLASSES = ["a", "b", "c"]


def _preds(y: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    p = y.copy()
    p[wrong] = (y[wrong] + 1) % 3
    return p


def test_a_clear_gain_is_better_and_one_example_is_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    base = _preds(y, rng.random(400) < 0.35)
    model = _preds(y, rng.random(400) < 0.10)
    c = paired_comparison(y, model, base, CLASSES)
    assert c["verdict"] == "better" and 0 < c["low"] < c["macro_f1_diff"] < c["high"]
    assert c["fixed"] > c["broken"] and c["n"] == 400
    assert paired_comparison(y, base, model, CLASSES)["verdict"] == "worse"
    one_more = base.copy()
    one_more[np.flatnonzero(base != y)[0]] = y[np.flatnonzero(base != y)[0]]
    close = paired_comparison(y, one_more, base, CLASSES)
    assert close["verdict"] == "within_noise" and close["low"] <= 0 < close["high"] and close["fixed"] == 1
    same = paired_comparison(y, base, base.copy(), CLASSES)
    assert same["verdict"] == "same" and same["macro_f1_diff"] == 0.0


def test_bootstrap_scores_are_paired_and_bounded_in_memory():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 50_000)  # above max_rows: a fixed sample of rows stands in
    p = _preds(y, rng.random(len(y)) < 0.2)
    a, b = bootstrap_macro_f1(y, [p, p], 3, resamples=250)
    assert a.shape == (250,) and np.array_equal(a, b)  # same resamples for both
    assert abs(a.mean() - 0.8) < 0.02


def test_the_sentence_says_what_the_interval_means():
    status = {"baseline": {"name": "TF-IDF + logistic regression", "accuracy": 0.7, "macro_f1": 0.70},
              "test": {"accuracy": 0.71, "macro_f1": 0.71},
              "vs_baseline": {"n": 150, "macro_f1_diff": 0.01, "low": -0.03, "high": 0.05, "level": 0.95,
                              "fixed": 9, "broken": 7, "verdict": "within_noise"}}
    s = comparison(status)
    assert s.startswith("Not distinguishable from the baseline") and "-0.030 to +0.050" in s and "9 test" in s
    status["vs_baseline"].update(low=0.01, verdict="better")
    assert comparison(status).startswith("Better than the baseline")
    status["vs_baseline"]["verdict"] = "same"
    assert "same prediction" in comparison(status)
    del status["vs_baseline"]
    assert comparison(status) == "Macro-F1 +0.010 against the baseline (TF-IDF + logistic regression)."
    assert comparison({}) is None


def test_evaluate_json_is_bounded_for_many_classes(tmp_path):
    """200 classes: `evaluate --json` gives scores, per class and the most confused pairs, never a matrix of
    every pair (2,000 classes made it 44.5 MB)."""
    import csv
    import json
    import random
    import subprocess
    import sys
    from pathlib import Path

    rng = random.Random(0)
    data = tmp_path / "many.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for c in range(200):
            for _ in range(3):
                w.writerow([f"class{c} " + " ".join("".join(rng.choice("abcdefgh") for _ in range(5))
                                                    for _ in range(6)), f"c{c}"])
    root = Path(__file__).resolve().parents[1]

    def cli(*args):
        p = subprocess.run([sys.executable, "-m", "core.cli", "--home", str(tmp_path / "h"), *args],
                           capture_output=True, text=True, timeout=600, cwd=root)
        assert p.returncode == 0, p.stderr
        return p.stdout

    run = json.loads(cli("train", "--data", str(data), "--backbone", "tiny-text", "--strategy", "frozen",
                         "--no-baseline", "--json"))
    out = cli("evaluate", run["run_id"], "--json")
    res = json.loads(out)
    assert len(res["per_class"]) == 200 and len(res["most_confused"]) <= 10
    assert "confusion" not in out and all(not isinstance(v, (list, dict)) for v in res["val"].values())
    assert len(out) < 200 * 400  # a line of numbers per class, nothing per pair
