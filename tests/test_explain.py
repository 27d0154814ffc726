"""Attributions on the real offline backbones: computed, faithful, and different for different inputs."""
import numpy as np
import pytest
from PIL import Image

from core.explain import gradcam, overlay, token_attributions, tokens_html
from core.predict import Predictor
from tests.conftest import DEMO
from tests.helpers import config, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    from core.datasets import DatasetStore
    from core.store import RunStore

    h = tmp_path_factory.mktemp("explain")
    stores = DatasetStore(h / "d"), RunStore(h / "r")
    img, _, _ = train(stores, config(DEMO / "digits", "mobilenet_v2", "frozen", epochs=2, batch_size=32))
    txt, _, _ = train(stores, config(DEMO / "reviews.csv", "all-MiniLM-L6-v2", "frozen", epochs=2, batch_size=32))
    return Predictor(img.dir), Predictor(txt.dir)


def test_gradcam_on_mobilenet_changes_with_the_input(predictors):
    pred, _ = predictors
    a = Image.open(next((DEMO / "digits" / "1").glob("*.png")))
    b = Image.open(next((DEMO / "digits" / "0").glob("*.png")))
    ha, ta = gradcam(pred, a)
    hb, tb = gradcam(pred, b)
    assert ha.shape == (224, 224) and 0 <= ha.min() and ha.max() == pytest.approx(1.0)
    assert np.abs(ha - hb).mean() > 0.05
    assert overlay(a, ha).size == (224, 224)


def test_integrated_gradients_on_minilm_are_faithful_and_input_dependent(predictors):
    _, pred = predictors
    a = token_attributions(pred, "A moving, beautifully acted and funny film.")
    b = token_attributions(pred, "Dull, lifeless and far too long.")
    assert a.tokens[:3] == ["a", "moving", ","] and len(a.scores) == len(a.tokens)
    assert a.delta < 0.05 and b.delta < 0.05  # completeness: attributions add up to the logit change
    assert a.scores != b.scores[: len(a.scores)]
    html = tokens_html(a)
    assert html.count("<span") == len(a.tokens) and "moving" in html


def test_tokens_html_escapes_user_text(predictors):
    _, pred = predictors
    ts = token_attributions(pred, "<script>alert(1)</script> great")
    assert "<script>" not in tokens_html(ts)
