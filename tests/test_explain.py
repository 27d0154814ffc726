"""Attributions on the real offline backbones: computed, faithful, and different for different inputs."""
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from core.predict.explain import explain, overlay, token_attributions, tokens_html
from core.predict.predictor import Predictor
from core.tasks.classification import CLASSIFICATION
from tests.conftest import DEMO
from tests.helpers import config, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    """Two short real runs, their predictors and stores."""
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore

    h = tmp_path_factory.mktemp("explain")
    stores = DatasetStore(h / "d"), RunStore(h / "r")
    img, _, _ = train(stores, config(DEMO / "digits", "mobilenet_v2", "frozen", epochs=2, batch_size=32))
    txt, _, _ = train(stores, config(DEMO / "reviews.csv", "all-MiniLM-L6-v2", "frozen", epochs=2, batch_size=32))
    return SimpleNamespace(image=Predictor(img.dir), text=Predictor(txt.dir), runs={"image": img, "text": txt},
                           stores=stores)


def test_gradcam_on_mobilenet_changes_with_the_input(predictors):
    pred = predictors.image
    a = Image.open(next((DEMO / "digits" / "1").glob("*.png")))
    b = Image.open(next((DEMO / "digits" / "0").glob("*.png")))
    ea, eb = explain(pred, a), explain(pred, b)
    assert [p.part for p in ea.parts] == ["network"] and ea.parts[0].share == 1.0  # no blend: the network decides
    ha, hb = ea.parts[0].heat, eb.parts[0].heat
    assert ha.shape == (224, 224) and 0 <= ha.min() and (ha.max() == pytest.approx(1.0) or ea.parts[0].note)
    assert np.abs(ha - hb).mean() > 0.05
    assert overlay(a, ha).size == (224, 224)


def test_integrated_gradients_on_minilm_are_faithful_and_input_dependent(predictors):
    pred = predictors.text
    a = token_attributions(pred, "A moving, beautifully acted and funny film.", 0)
    b = token_attributions(pred, "Dull, lifeless and far too long.", 0)
    assert a.words[:3] == ["a", "moving", ","] and len(a.scores) == len(a.words)
    assert float(a.note.split()[-1].rstrip(")")) < 0.05  # completeness: attributions add up to the log-odds change
    assert a.scores != b.scores[: len(a.scores)]
    html = tokens_html(a.words, a.scores)
    assert html.count("<span") == len(a.words) and "moving" in html


def test_either_class_of_a_solved_two_class_head_is_explained(predictors):
    """A head solved by scikit-learn keeps one class's row at zero: that class's explanation must still show what
    pushed towards it (the log-odds), the exact opposite of the other class's, never a blank."""
    pred = predictors.text
    text = "A moving, beautifully acted and funny film."
    first, second = (token_attributions(pred, text, k) for k in (0, 1))
    assert np.abs(first.scores).max() > 1e-3 and np.allclose(first.scores, -np.asarray(second.scores), atol=1e-3)
    img = Image.open(next((DEMO / "digits" / "1").glob("*.png")))
    for k in range(len(predictors.image.classes)):
        part = explain(predictors.image, img, k).parts[0]
        assert part.heat.max() > 0 or part.note, k


def test_tokens_html_escapes_user_text(predictors):
    pred = predictors.text
    ts = token_attributions(pred, "<script>alert(1)</script> great", 0)
    assert "<script>" not in tokens_html(ts.words, ts.scores)


def test_html_report_renders_every_section_in_chromium(predictors, tmp_path):
    from core.report.html import SECTIONS, write_report
    from tests.browser_util import browser_page, chromium_available, shot

    datasets, _ = predictors.stores
    for kind, rec in predictors.runs.items():
        ds = datasets.get(rec.status["dataset"])
        out = write_report(rec, tmp_path / f"{kind}.html", ds)
        text = out.read_text(encoding="utf-8")
        for section in SECTIONS:
            assert f"<h2>{section}</h2>" in text, section
        assert "data:image/png;base64," in text and "http" not in text.split("<body>")[1]  # self-contained
        assert rec.status["vs_baseline"]  # the verdict with its interval, not a bare difference
        assert "bootstrap interval" in text or "same prediction as the baseline" in text
        if not chromium_available():
            continue
        with browser_page() as page:
            page.goto(out.as_uri())
            for section in SECTIONS:
                assert page.get_by_role("heading", name=section, exact=True).is_visible()
            assert page.locator("img").count() >= (3 if kind == "image" else 2)  # curves, matrix (+ error gallery)
            full = page.evaluate("() => document.body.scrollHeight")
            page.set_viewport_size({"width": 1280, "height": min(int(full) + 40, 6000)})
            shot(page, f"r-report-{kind}")


def test_a_run_leaves_its_worst_mistakes_explained_and_the_report_reads_them(predictors):
    """The report's mistakes come from the run's own end, not a second model load; what it left out is made."""
    import pandas as pd

    from core.fsutil import read_json
    from core.predict.explain import from_json, to_json, worst_rows
    from core.report.parts import mistakes

    for kind, rec in predictors.runs.items():
        cached = read_json(rec.explanations_file)
        preds = pd.read_parquet(rec.test_predictions)
        task = CLASSIFICATION
        worst = worst_rows(preds, True)
        assert cached["rows"] == [str(r) for r in worst["row"]][: len(cached["rows"])] and cached["rows"], kind
        first = from_json(cached["explained"][0])
        raw = preds.set_index(preds["row"].astype(str)).loc[cached["rows"][0]]
        again = explain(predictors.image if kind == "image" else predictors.text,
                        Image.open(raw["file"]).convert("RGB") if kind == "image" else raw["input"], first.target)
        assert [p.part for p in first.parts] == [p.part for p in again.parts]
        if kind == "text":
            assert first.parts[0].words == again.parts[0].words
            assert np.allclose(first.parts[0].scores, again.parts[0].scores, atol=1e-4)
        else:  # heat kept to 8 bits
            assert np.abs(first.parts[0].heat - again.parts[0].heat).max() <= 1 / 255 + 1e-3
        assert from_json(to_json(first)).parts[0].share == first.parts[0].share

        def no_model():
            raise AssertionError("the report loaded the model although the run left every explanation")
        n = len(cached["rows"])
        html = mistakes(task, preds, n, cached, no_model)
        assert html.count('class="card') == n and ("Heat shows" in html or "Green words" in html)
        made = []  # asked for more than the run left: only the rest is explained now
        real = predictors.image if kind == "image" else predictors.text
        more = mistakes(task, preds, n + 1, {"rows": cached["rows"][1:], "explained": cached["explained"][1:]},
                        lambda: made.append(1) or real)
        assert made == [1] and more.count('class="card') == min(n + 1, len(worst_rows(preds, True, n + 1)))
