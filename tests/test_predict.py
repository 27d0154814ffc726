"""Prediction API, formula-safe CSV, and model-loading safety."""
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError, ModelError
from core.predict.export import export
from core.predict.predictor import Predictor, formula_safe, read_zip_images, to_csv_bytes
from tests.helpers import config, train


def test_formula_injection_neutralised():
    df = pd.DataFrame({"input": ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "plain", "\tTAB"], "p": [0.1] * 6})
    out = formula_safe(df)
    assert out["input"].tolist() == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "plain", "'\tTAB"]
    text = to_csv_bytes(df).decode()
    assert "\n=" not in text and "'=HYPERLINK" in text


def test_predict_images_and_zip(stores, image_dir):
    rec, st, tr = train(stores, config(image_dir, epochs=1))
    p = Predictor(rec.dir)
    files = sorted(image_dir.rglob("*.png"))[:4]
    probs, errs = p.predict_images([str(f) for f in files] + [b"not an image"])
    assert probs.shape == (5, 3) and np.allclose(probs[:4].sum(1), 1, atol=1e-5)
    assert errs[:4] == [None] * 4 and "not a readable image" in errs[4]
    assert np.isnan(probs[4]).all()
    table = p.table([f.name for f in files] + ["junk"], probs, errs)
    assert table["prediction"].iloc[-1] == "" and table["error"].iloc[-1]

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in files:
            zf.write(f, f"x/{f.name}")
        zf.writestr("__MACOSX/x/._a.png", b"junk")
        zf.writestr("x/notes.txt", b"hi")
    members = read_zip_images(buf.getvalue())
    assert [n for n, _ in members] == [f"x/{f.name}" for f in files]
    with pytest.raises(DataError):
        p.predict_texts(["wrong modality"])


def test_export_folder_reloads_identically(stores, text_csv, tmp_path):
    rec, st, _ = train(stores, config(text_csv, "tiny-text", "lora", epochs=1))
    before = Predictor(rec.dir).predict_texts(["match goal team", "cook taste dinner"])
    out = tmp_path / "exp"
    hf = export(rec.dir, out, "folder")["hf"]
    after = Predictor(out).predict_texts(["match goal team", "cook taste dinner"])
    np.testing.assert_allclose(before, after, atol=1e-5)
    readme = (out / "README.md").read_text()
    code = readme.split("```python\n")[1].split("```")[0].replace("path/to/this/folder", str(out))
    scope: dict = {}
    exec(code, scope)  # the README's own example runs as written
    assert scope["p"].classes == ["food", "sports", "tech"] and scope["errors"] == [None]
    assert not hf["written"] and "mean-pools" in hf["why"] and not (out / "hf").exists()


def test_cls_pooled_text_model_exports_a_transformers_folder(stores, text_csv, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rec, st, _ = train(stores, config(text_csv, "tiny-text", "lora", epochs=1, pooling="cls"))
    texts = ["match goal team", "cook taste dinner", "cloud data server"]
    before = Predictor(rec.dir).predict_texts(texts)
    out = tmp_path / "exp"
    hf = export(rec.dir, out, "folder")["hf"]
    assert hf["written"] and hf["max_abs_logit_diff"] < 1e-4
    model = AutoModelForSequenceClassification.from_pretrained(out / "hf").eval()
    tok = AutoTokenizer.from_pretrained(out / "hf")
    with torch.no_grad():
        probs = model(**tok(texts, return_tensors="pt", padding=True)).logits.softmax(-1).numpy()
    np.testing.assert_allclose(probs, before, atol=1e-5)
    assert [model.config.id2label[i] for i in range(3)] == Predictor(rec.dir).classes
    assert "AutoModelForSequenceClassification" in (out / "README.md").read_text()


def test_run_without_a_model_explains(stores, image_dir):
    from core.errors import RunError

    datasets, runs = stores
    rec = runs.create(config(image_dir), datasets.ingest(image_dir).dataset.id)
    with pytest.raises(RunError, match="no saved model"):
        Predictor(rec.dir)


def test_pickle_only_hf_folder_is_refused(tmp_path):
    """A model folder with only pytorch_model.bin (pickle) must not be loaded."""
    import torch
    from transformers import BertConfig

    from core.backbones import get_backbone

    d = tmp_path / "pickled"
    d.mkdir()
    BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32).save_pretrained(d)
    torch.save({}, d / "pytorch_model.bin")
    spec = get_backbone(str(d))
    with pytest.raises(ModelError, match="safetensors only"):
        spec.build(2)


def test_server_folder_confined_to_root(tmp_path, monkeypatch):
    from studio.loading import server_path

    root = tmp_path / "data"
    (root / "ok").mkdir(parents=True)
    monkeypatch.setenv("FTS_DATA_ROOT", str(root))
    assert server_path("ok") == (root / "ok").resolve()
    for bad in ("../", "/etc", "ok/../../"):
        with pytest.raises(DataError, match="outside the allowed"):
            server_path(bad)
    monkeypatch.delenv("FTS_DATA_ROOT")
    with pytest.raises(DataError, match="off"):
        server_path("ok")


def test_cli_export_onnx_and_predict(stores, image_dir, tmp_path, home):
    import json
    import subprocess
    import sys

    rec, st, _ = train(stores, config(image_dir, epochs=1))
    run = [sys.executable, "-m", "core.cli", "--home", str(home)]
    p = subprocess.run(run + ["export", str(rec.dir), "--format", "onnx", "--out", str(tmp_path / "x"), "--json"],
                       capture_output=True, text=True, timeout=300)
    rep = json.loads(p.stdout)
    assert p.returncode == 0 and rep["parity"]["max_abs_diff"] < 1e-4
    assert rep["parity"]["same_label"] == rep["parity"]["rows"] == 5
    p = subprocess.run(run + ["predict", str(tmp_path / "x"), str(image_dir), "--json"], capture_output=True,
                       text=True, timeout=300)
    out = json.loads(p.stdout)
    assert p.returncode == 0 and len(out["predictions"]) == 48
    assert set(out["predictions"][0]["probabilities"]) == {"red", "green", "blue"}


def test_upload_over_the_limit_is_refused_with_the_limit(monkeypatch, home):
    import io as _io

    from studio import loading

    class Upload(_io.BytesIO):
        name = "big.zip"
        size = (loading.MAX_UPLOAD_MB + 1) * 2**20

    with pytest.raises(DataError, match=f"over the {loading.MAX_UPLOAD_MB} MB upload limit"):
        loading.save_upload(Upload(b"x"))


def test_any_local_hugging_face_folder_trains(stores, text_csv, tmp_path):
    """A Hugging Face model folder (safetensors) works as a backbone, like a hub id would online."""
    from transformers import BertConfig, BertModel

    from core.backbones import minilm_folder

    folder = tmp_path / "my-bert"
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder, safe_serialization=True)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / f).write_bytes((minilm_folder() / f).read_bytes())
    rec, st, _ = train(stores, config(text_csv, str(folder), "lora", epochs=1))
    assert st["status"] == "completed" and st["trainable_params"] < st["total_params"]
