"""Blended runs: the linear partner saves without pickle, its weight is chosen on validation, it travels with exports."""
import json

import numpy as np
from scipy.sparse import hstack
from sklearn.linear_model import LogisticRegression

from core.portable import blend
from core.predict.blend import best_weight, fit_lexical, load_partner, save_partner, vectorizers
from core.predict.predictor import Predictor
from tests.conftest import make_text_csv
from tests.helpers import config, train


def _texts(tmp_path, classes=3):
    import pandas as pd

    df = pd.read_csv(make_text_csv(tmp_path / "t.csv"))
    df = df[df["label"].isin(sorted(df["label"].unique())[:classes])]
    labels = sorted(df["label"].unique())
    return df["text"].tolist(), np.array([labels.index(v) for v in df["label"]])


def test_matches_scikit_learn_and_survives_save_load(tmp_path):
    for k in (2, 3):  # binary keeps one coefficient row in scikit-learn
        texts, y = _texts(tmp_path, k)
        lex = fit_lexical(texts[:60], y[:60], k)
        word, char = vectorizers(texts[:60])
        ref = LogisticRegression(C=2.0, max_iter=2000, class_weight="balanced").fit(
            hstack([word.transform(texts[:60]), char.transform(texts[:60])]).tocsr(), y[:60])
        x = hstack([word.transform(texts[60:]), char.transform(texts[60:])]).tocsr()
        np.testing.assert_allclose(lex.predict(texts[60:]), ref.predict_proba(x), atol=1e-5)
        save_partner(lex, tmp_path / f"lex{k}")
        assert sorted(f.name for f in (tmp_path / f"lex{k}").iterdir()) == ["arrays.npz", "partner.json"]
        again = load_partner(tmp_path / f"lex{k}")
        np.testing.assert_allclose(again.predict(texts[60:]), lex.predict(texts[60:]), atol=1e-12)


def test_tfidf_without_scikit_learn_matches_it(tmp_path):
    """The portable TF-IDF (what an export carries) gives scikit-learn's numbers on awkward text: accents,
    case, punctuation, runs of spaces, one-letter words, digits, empty strings, words never seen."""
    from core.portable import Tfidf

    texts, _ = _texts(tmp_path)
    odd = ["Ça coûte 12,50 € — trop!", "  a  b   c  ", "", "UPPER lower MiXeD", "x", "tabs\tand\nnewlines",
           "naïve café façade", "unseenword anotherunseen", "ab", "The the THE the"]
    word, char = vectorizers(texts + odd[:5])
    for vec, kind in ((word, "word"), (char, "char_wb")):
        mine = Tfidf({k: int(v) for k, v in vec.vocabulary_.items()}, vec.idf_, kind, vec.ngram_range)
        ref = vec.transform(texts[:20] + odd).toarray()
        for r, text in enumerate(texts[:20] + odd):
            row = np.zeros(ref.shape[1])
            idx, val = mine.row(text)
            row[idx] = val
            np.testing.assert_allclose(row, ref[r], atol=1e-12, err_msg=repr(text))


def test_best_weight_prefers_the_better_model_and_ties_go_to_the_network():
    y = np.array([0, 1, 0, 1])
    good, bad = np.eye(2)[y], np.eye(2)[1 - y]
    assert best_weight(good, bad, y, ["a", "b"])[0] == 1.0
    w, scores = best_weight(bad, good, y, ["a", "b"])
    assert w <= 0.4 and scores["partner_only"] == 1.0 and scores["network_only"] == 0.0
    assert best_weight(good, good, y, ["a", "b"])[0] == 1.0
    np.testing.assert_allclose(blend(good, bad, 0.25), 0.25 * good + 0.75 * bad)


def test_best_weight_keeps_the_better_part_unless_a_blend_beats_it_with_confidence():
    """One more right answer in 40 is noise: neither part is held to a proof the other is spared, so the one that
    scored higher alone is kept, network or partner. Parts wrong on different examples and unsure where wrong
    blend: the average beats both on every resample."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    as_probs = lambda right, confidence=0.9: np.eye(2)[np.where(right, y, 1 - y)] * (2 * confidence - 1) + (1 - confidence)
    a_right, b_right = np.ones(40, bool), np.ones(40, bool)
    a_right[4:7] = False  # 37/40
    b_right[:4] = False  # 36/40, wrong on four others
    a, b = as_probs(a_right, 0.7), as_probs(b_right)
    for net, partner, kept in ((a, b, 1.0), (b, a, 0.0)):
        w, scores = best_weight(net, partner, y, ["a", "b"])
        assert scores["reference"] == ("network" if kept else "partner") and scores["gain_p10"] <= 0.0
        kept_out = net if kept else partner
        assert ((w * net + (1 - w) * partner).argmax(1) == kept_out.argmax(1)).all()
    unsure = np.where(np.arange(40) < 10, 0.55, 0.9)
    net = np.eye(2)[np.where(np.arange(40) < 10, 1 - y, y)] * (2 * unsure[:, None] - 1) + (1 - unsure[:, None])
    partner = np.eye(2)[np.where((np.arange(40) >= 10) & (np.arange(40) < 20), 1 - y, y)] * \
        (2 * unsure[::-1, None] - 1) + (1 - unsure[::-1, None])
    w, scores = best_weight(net, partner, y, ["a", "b"])
    assert 0.0 < w < 1.0 and scores["blend"] == 1.0 and scores["gain_p10"] > 0.0
    assert max(scores["network_only"], scores["partner_only"]) < 0.8


def test_blend_sentence_names_what_the_share_was_judged_against():
    from core.predict.blend import describe

    def said(w, **v):
        return describe({"blend": {"network_weight": w, "partner": "TF-IDF + logistic regression", "val_macro_f1": {
            "network_only": 0.9, "partner_only": 0.8, "blend": 0.92, **v}}})
    assert "gain over the network alone validation supports" in said(0.6, reference="network")
    assert "it did better than the network" in said(0.0, reference="partner")
    assert "could not show the network adding to it" in said(0.0)  # a run from before the reference was kept
    assert said(1.0, reference="network").startswith("Blend checked and not used")


def test_blended_run_predicts_and_exports_as_it_was_evaluated(stores, tmp_path):
    import pandas as pd

    from core.predict.export import export_folder

    csv = make_text_csv(tmp_path / "topics.csv", per_class=30)
    rec, st, _ = train(stores, config(csv, "tiny-text", "full", epochs=1, blend=True, lr=1e-6))  # a weak network
    assert st["status"] == "completed"
    info = json.loads(rec.blend_file.read_text())
    assert info["network_weight"] < 1.0 and info["val_macro_f1"]["blend"] >= info["val_macro_f1"]["network_only"]
    assert st["blend"]["network_weight"] == info["network_weight"]
    preds = pd.read_parquet(rec.test_predictions)
    classes = Predictor(rec.dir).classes
    expected = preds[[f"p:{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(Predictor(rec.dir).predict(preds["input"].tolist())[0], expected, atol=1e-5)
    out, _ = export_folder(rec.dir, tmp_path / "exp")
    np.testing.assert_allclose(Predictor(out).predict(preds["input"].tolist())[0], expected, atol=1e-5)
    assert st["test"]["macro_f1"] > 0.9  # the lexical half carries these clearly worded topics


def test_blended_image_run_predicts_and_exports_as_it_was_evaluated(stores, image_dir, tmp_path):
    import pandas as pd

    from core.predict.export import export_folder

    rec, st, _ = train(stores, config(image_dir, "tiny-cnn", "full", epochs=1, blend=True, lr=1e-7))
    info = json.loads(rec.blend_file.read_text())
    assert st["status"] == "completed" and info["network_weight"] < 1.0
    assert info["partner"] == "logistic regression on pretrained features"
    preds = pd.read_parquet(rec.test_predictions)
    classes = Predictor(rec.dir).classes
    expected = preds[[f"p:{c}" for c in classes]].to_numpy()
    got, errs = Predictor(rec.dir).predict(preds["file"].tolist())
    np.testing.assert_allclose(got, expected, atol=1e-4)
    out, _ = export_folder(rec.dir, tmp_path / "exp")
    again, _ = Predictor(out).predict(preds["file"].tolist())
    np.testing.assert_allclose(again, expected, atol=1e-4)


def test_best_weight_on_a_large_validation_split_stays_bounded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60_000)
    net = np.eye(3)[np.where(rng.random(60_000) < 0.9, y, (y + 1) % 3)] * 0.7 + 0.1  # right 90% of the time
    partner = np.eye(3)[np.where(rng.random(60_000) < 0.6, y, (y + 2) % 3)] * 0.7 + 0.1  # right 60%
    w, scores = best_weight(net, partner, y, ["a", "b", "c"])
    assert w == 1.0 and scores["reference"] == "network" and scores["network_only"] > 0.85 > 0.65 > scores["partner_only"]


def test_cross_fitting_keeps_the_baselines_strength_unless_the_folds_agree_on_another():
    """A strength whose heads read the label is chosen over the baseline's, whose heads read noise; equal
    scores keep the baseline's. The out-of-fold outputs are those of the strength chosen."""
    from sklearn.model_selection import StratifiedKFold

    from core.tasks.classification import Classification
    from core.train.crossfit import CrossFit, choose_head

    class Reads(Classification):
        """Strength s: a head that reads column `columns[s]`."""
        head_strengths = (2.0, 0.5)

        def __init__(self, columns):
            self.columns = columns

        def linear_head(self, x, y, meta, out_dim, strength=None):
            w = np.zeros((2, x.shape[1]), dtype=np.float32)
            w[1, self.columns[strength]] = 4.0
            return w, np.zeros(2, dtype=np.float32)

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    x = np.c_[2.0 * y - 1, rng.normal(0, 1, 200)].astype(np.float32)
    cf = CrossFit(np.arange(200), list(StratifiedKFold(5, shuffle=True, random_state=0).split(y, y)))
    meta = {"classes": ["a", "b"]}
    fit = choose_head(Reads({2.0: 1, 0.5: 0}), x, y, y, meta, 2, "macro_f1", cf)
    assert int(fit["chosen"][0]) == 1 and fit["scores"][1] == 1.0 and fit["fold_scores"].shape == (2, 5)
    assert (fit["oof"].argmax(1) == y).all()
    fit = choose_head(Reads({2.0: 1, 0.5: 1}), x, y, y, meta, 2, "macro_f1", cf)
    assert int(fit["chosen"][0]) == 0


def test_a_solved_head_decides_its_strength_and_blend_share_on_every_training_row(stores, tmp_path):
    """frozen + blend: the regularisation and the share come from out-of-fold predictions over training +
    validation, never the test rows; the run says so, with the spread over folds."""
    from core.predict.blend import describe

    csv = make_text_csv(tmp_path / "topics.csv", per_class=30)
    rec, st, tr = train(stores, config(csv, "tiny-text", "frozen", blend=True))
    assert st["status"] == "completed"
    sizes, head = st["sizes"], st["crossfit"]["head"]
    assert head["rows"] == sizes["train"] + sizes["val"] and head["folds"] == 5
    assert [t["strength"] for t in head["tried"]] == [2.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
    assert all(len(t["folds"]) == 5 for t in head["tried"])
    test_rows = set(tr.plan.data.idx("test").tolist())
    assert not test_rows & set(tr.plan.crossfit.rows.tolist())
    info = json.loads(rec.blend_file.read_text())
    cf = info["val_macro_f1"]["crossfit"]
    assert cf["rows"] == head["rows"] and all(len(cf[k]) == 5 for k in ("network_only", "partner_only", "blend"))
    assert "out-of-fold macro-F1 on 5 folds of the" in describe(st) and " over folds" in describe(st)
    assert any("regularisation" in n and "out-of-fold" in n for n in st["notes"])
    preds = __import__("pandas").read_parquet(rec.test_predictions)
    expected = preds[[f"p:{c}" for c in Predictor(rec.dir).classes]].to_numpy()
    np.testing.assert_allclose(Predictor(rec.dir).predict(preds["input"].tolist())[0], expected, atol=1e-5)


def test_regression_share_starts_from_the_part_with_the_lower_error():
    from core.predict.blend import best_weight_values

    rng = np.random.default_rng(0)
    truth = rng.normal(size=60)
    close, far = truth + rng.normal(scale=0.1, size=60), truth + rng.normal(scale=1.0, size=60)
    w, scores = best_weight_values(close, far, truth)
    assert (w, scores["reference"]) == (1.0, "network") and scores["blend"] == scores["network_only"]
    w, scores = best_weight_values(far, close, truth)
    assert (w, scores["reference"]) == (0.0, "partner") and scores["blend"] == scores["partner_only"]
