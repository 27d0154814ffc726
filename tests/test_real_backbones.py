"""The real offline backbones, end to end on the bundled demo data, for every strategy."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.backbones import get_backbone, tokenizer_for
from core.predict.export import export, export_folder
from core.predict.predictor import Predictor
from tests.conftest import DEMO
from tests.helpers import config, train

pytestmark = pytest.mark.slow
STRATEGIES = ["frozen", "lora", "partial", "differential", "full"]


def test_mobilenet_loads_offline_with_imagenet_weights():
    import torchvision

    spec = get_backbone("mobilenet_v2")
    assert spec.is_offline()
    model = spec.build(10).eval()
    ref = torchvision.models.mobilenet_v2(weights=torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1)
    assert torch.equal(model.encoder.model.features[0][0].weight, ref.features[0][0].weight)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_efficientnet_lite0_loads_offline_with_genuine_imagenet_weights():
    """The packaged file read into timm's architecture names a photo's ImageNet class as MobileNetV2 does, and
    the studio's encoder is that network without its last layer. The photo: scikit-image's `coffee` (CC0)."""
    import timm
    import torchvision
    from PIL import Image
    from torchvision.transforms import functional as TF

    from core.backbones.loaders import _renamed_in_order
    from core.backbones.offline import efficientnet_lite_file

    spec = get_backbone("efficientnet_lite0")
    assert spec.is_offline()
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ref.load_state_dict(_renamed_in_order(torch.load(efficientnet_lite_file(0), map_location="cpu"),
                                          ref.state_dict(), "lite0"))
    photo = TF.to_tensor(TF.center_crop(Image.open(Path(__file__).parent / "data" / "coffee.jpg").convert("RGB"),
                                        224))[None]
    mobilenet = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval()
    espresso = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"].index("espresso")
    with torch.no_grad():
        lite = ref(TF.normalize(photo, spec.mean, spec.std)).softmax(-1)[0]
        mob = mobilenet(TF.normalize(photo, get_backbone("mobilenet_v2").mean, get_backbone("mobilenet_v2").std))
        assert int(mob.argmax()) == espresso
        assert int(lite.argmax()) == espresso and lite[espresso] > 0.5
        model = spec.build(3).eval()
        assert torch.allclose(model.features(pixel_values=photo), ref.forward_head(ref.forward_features(photo),
                                                                                   pre_logits=True), atol=1e-5)
    assert len(model.encoder.declared_groups(model.encoder)) == 20  # stem and its norm, 16 blocks, head and norm


def test_minilm_loads_offline_and_embeds_meaningfully():
    spec = get_backbone("all-MiniLM-L6-v2")
    model = spec.build(2).eval()
    tok = tokenizer_for(spec)
    enc = tok(["A cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly revenue fell sharply."],
              padding=True, return_tensors="pt")
    with torch.no_grad():
        f = torch.nn.functional.normalize(model.features(input_ids=enc["input_ids"],
                                                         attention_mask=enc["attention_mask"]), dim=-1)
    assert f.shape == (3, 384)
    assert (f[0] @ f[1]) > (f[0] @ f[2]) + 0.2  # pretrained, not random


@pytest.fixture(scope="module")
def runs_home(tmp_path_factory):
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore

    h = tmp_path_factory.mktemp("real")
    return DatasetStore(h / "datasets"), RunStore(h / "runs")


def run_of(runs_home, backbone: str, strategy: str):
    """A finished run of this setup from the tests above, or a short new one when run alone."""
    datasets, runs = runs_home
    rid = next((r["id"] for r in runs.list() if r["backbone"] == backbone and r["strategy"] == strategy
                and r["status"] == "completed"), None)
    if rid is None:
        data = DEMO / ("digits" if backbone == "mobilenet_v2" else "reviews.csv")
        size = {"image_size": 112} if backbone == "mobilenet_v2" else {}
        rec, _, _ = train(runs_home, config(data, backbone, strategy, epochs=1, batch_size=16, max_steps=3, **size))
        return rec
    return runs.get(rid)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_mobilenet_every_strategy_on_digits(runs_home, strategy):
    steps = None if strategy == "frozen" else 3
    # 112 px: the digits are 28 px, and a quarter of 224's pixels keeps the suite quick on a CPU
    cfg = config(DEMO / "digits", "mobilenet_v2", strategy, epochs=4 if strategy == "frozen" else 1,
                 batch_size=16, max_steps=steps, image_size=112)
    rec, st, _ = train(runs_home, cfg)
    assert st["status"] == "completed", st.get("reason")
    assert 0 < st["trainable_params"] <= st["total_params"]
    if strategy == "frozen":
        assert st["test"]["accuracy"] >= 0.6  # ImageNet features separate digits well
    if strategy == "lora":
        assert st["trainable_params"] < 0.2 * st["total_params"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_minilm_every_strategy_on_reviews(runs_home, strategy):
    cfg = config(DEMO / "reviews.csv", "all-MiniLM-L6-v2", strategy, epochs=3 if strategy == "frozen" else 1,
                 batch_size=16, max_steps=None if strategy == "frozen" else 3, max_length=64)
    rec, st, _ = train(runs_home, cfg)
    assert st["status"] == "completed", st.get("reason")
    if strategy == "frozen":
        assert st["test"]["accuracy"] >= 0.6
    if strategy == "lora":
        assert st["trainable_params"] < 0.01 * st["total_params"]


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "all-MiniLM-L6-v2"])
def test_export_reload_matches_run_predictions(runs_home, backbone, tmp_path):
    rec = run_of(runs_home, backbone, "lora")
    preds = pd.read_parquet(rec.dir / "eval" / "test_predictions.parquet")
    classes = Predictor(rec.dir).classes
    expected = preds[[f"p:{c}" for c in classes]].to_numpy()
    out = Path(export(rec.dir, tmp_path / "export", "folder")["out"])
    assert {"model.safetensors", "config.json", "labels.json", "README.md"} <= {p.name for p in out.iterdir()}
    p = Predictor(out)
    assert not any("lora" in n for n, _ in p.model.named_parameters())  # merged
    if p.modality.name == "text":
        got = p.predict_texts(preds["input"].tolist())
    else:
        got, errs = p.predict_images(preds["file"].tolist())
        assert not any(errs)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_minilm_lora_exports_a_folder_transformers_loads_as_is(runs_home, tmp_path):
    """LoRA merged into MiniLM, pooled the transformers way: AutoModelForSequenceClassification reproduces the
    run's own test predictions."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rec, st, _ = train(runs_home, config(DEMO / "reviews.csv", "all-MiniLM-L6-v2", "lora", epochs=1, batch_size=16,
                                         max_steps=4, pooling="cls", max_length=64))
    preds = pd.read_parquet(rec.dir / "eval" / "test_predictions.parquet")
    classes = Predictor(rec.dir).classes
    out, hf = export_folder(rec.dir, tmp_path / "export")
    assert hf["written"], hf
    model = AutoModelForSequenceClassification.from_pretrained(out / "hf").eval()
    tok = AutoTokenizer.from_pretrained(out / "hf")
    with torch.no_grad():
        enc = tok(preds["input"].tolist(), return_tensors="pt", padding=True, truncation=True, max_length=64)
        probs = model(**enc).logits.softmax(-1).numpy()
    np.testing.assert_allclose(probs, preds[[f"p:{c}" for c in classes]].to_numpy(), atol=1e-4)
    assert type(model).__name__ == "BertForSequenceClassification"


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "all-MiniLM-L6-v2"])
def test_onnx_parity_and_int8_report(runs_home, backbone, tmp_path):
    from core.predict.export import export

    run = run_of(runs_home, backbone, "frozen").dir
    fp32 = export(run, tmp_path / "onnx", "onnx", datasets=runs_home[0])
    p = fp32["parity"]  # the exported predict.py against the studio's predictor, probabilities
    assert p["rows"] == 40 and p["same_label"] == 40 and p["max_abs_diff"] < 1e-4
    q8 = export(run, tmp_path / "int8", "int8", datasets=runs_home[0])
    assert q8["size_mb"] < fp32["size_mb"] and "model.onnx" not in q8["files"] and "model.int8.onnx" in q8["files"]
    q = q8["int8"]
    # judged where one flipped example is not the verdict: the 400 labelled rows, not the 40 test rows (which
    # of a few borderline images flip depends on the CPU's instruction set)
    assert q8["parity"]["agreement"] >= 0.9
    assert q["all_rows"]["checked_on"] == 400 and abs(q["all_rows"]["accuracy_change_points"]) <= 2.5
    print(f"\n{backbone}: ONNX max |diff| {p['max_abs_diff']:.2e}; INT8 size {q8['size_mb']} MB vs "
          f"{fp32['size_mb']} MB; all 400 rows {q['all_rows']['fp32_accuracy']:.4f} -> "
          f"{q['all_rows']['int8_accuracy']:.4f}")


@pytest.mark.parametrize("classes, flips", [(["0", "1", "8"], True), (["2", "3", "4", "5", "7"], False)])
def test_images_are_mirrored_only_where_mirroring_keeps_the_class(runs_home, tmp_path, classes, flips):
    import json
    import shutil

    from tests.helpers import Record

    for c in classes:  # 0, 1 and 8 read the same mirrored; 2, 3, 4, 5 and 7 do not
        shutil.copytree(DEMO / "digits" / c, tmp_path / "digits" / c)
    rec_events = Record()
    rec, st, _ = train(runs_home, config(tmp_path / "digits", "mobilenet_v2", "full", epochs=1, batch_size=16,
                                         max_steps=1, image_size=128), callbacks=[rec_events])
    assert st["status"] == "completed", st.get("reason")
    check = st["flip_check"]
    assert check["flip"] is flips and check["n"] >= 0.8 * len(classes) * 40  # training + validation rows
    assert json.loads(rec.resolved_file.read_text())["train"]["hflip"] is flips
    notes = [e.data["message"] for e in rec_events.events if e.kind == "warning"]
    assert any("not flipped" in m for m in notes) is not flips
    if not flips:
        assert check["accuracy"] - check["mirrored_accuracy"] >= 0.02 and check["p_value"] < 0.01


def test_distills_a_full_minilm_teacher_into_a_three_layer_student(runs_home, tmp_path):
    """The teacher a person would have (MiniLM fine-tuned in full) taught to a student with half its layers; the
    report compares both on the same test rows, and the student exports and reloads at its own size."""
    teacher = run_of(runs_home, "all-MiniLM-L6-v2", "full")
    rec, st, _ = train(runs_home, config(DEMO / "reviews.csv", "all-MiniLM-L6-v2", "full", epochs=1, batch_size=16,
                                         max_steps=3, max_length=64, keep_layers=3, teacher=teacher.id))
    assert st["status"] == "completed", st.get("reason")
    rep = st["distillation"]
    assert rep["teacher"]["run"] == teacher.id and rep["student"]["keep_layers"] == 3
    assert rep["student_vs_teacher"]["params"] < 0.85 and rep["student_vs_teacher"]["speedup"] > 1.2
    assert {"accuracy", "macro_f1"} <= set(rep["teacher"]) & set(rep["student"])
    out, _ = export_folder(rec.dir, tmp_path / "student")
    assert len(Predictor(out).model.encoder.model.encoder.layer) == 3


@pytest.mark.parametrize("strategy", ["ia3", "prompt"])
def test_minilm_with_the_smallest_adapters(runs_home, strategy):
    """IA³ and prompt tuning on the real MiniLM: a few hundred to a few thousand weights train, the rest stays."""
    rec, st, _ = train(runs_home, config(DEMO / "reviews.csv", "all-MiniLM-L6-v2", strategy, epochs=1, batch_size=16,
                                         max_steps=3, max_length=64))
    assert st["status"] == "completed", st.get("reason")
    assert st["trainable_params"] < 0.001 * st["total_params"]
    assert Predictor(rec.dir).predict_texts(["A warm, funny film."]).shape == (1, 2)
