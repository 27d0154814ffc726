"""An ONNX export stands alone: its predict.py, in a fresh virtual environment holding only its requirements.txt
(no torch, no studio), labels every test row as `finetune-studio predict RUN` and the Evaluate page do, with
probabilities within 1e-4: for a text run whose blend gives the network no share, a text run blending both
parts, and an image run blending the network with a probe on the pretrained features."""
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.predict.export import export
from tests.conftest import make_image_folder, make_text_csv
from tests.helpers import config, train

ROOT = Path(__file__).resolve().parents[1]
ALONE = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the studio leaks into the venv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore

    home = tmp_path_factory.mktemp("portable")
    stores = DatasetStore(home / "datasets"), RunStore(home / "runs")
    text = make_text_csv(home / "topics.csv", per_class=30)
    images = make_image_folder(home / "colours", per_class=20)
    made = {}
    # auto, with the backbone and the blend's share chosen: auto keeps both (the network trains, but has no share)
    made["text, network weight 0 (auto)"] = train(stores, config(text, "tiny-text", "auto", epochs=1,
                                                                 blend_weight=0.0, budget_minutes=5))
    made["text, network weight 0.5"] = train(stores, config(text, "tiny-text", "full", epochs=1, blend=True,
                                                            blend_weight=0.5))
    made["image, network weight 0.5"] = train(stores, config(images, "tiny-cnn", "full", epochs=1, blend=True,
                                                             blend_weight=0.5))
    for name, (rec, st, _) in made.items():
        assert st["status"] == "completed", (name, st.get("reason"))
    return home, {name: rec for name, (rec, _, _) in made.items()}


@pytest.fixture(scope="module")
def fresh_python(runs, tmp_path_factory):
    """A new virtual environment with nothing but what the text export's requirements.txt names."""
    home, recs = runs
    out = export(recs["text, network weight 0.5"].dir, tmp_path_factory.mktemp("req") / "exp", "onnx")
    req = (Path(out["out"]) / "requirements.txt").read_text()
    assert "torch" not in req and "tokenizers" in req and "onnxruntime" in req
    env = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    python = env / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                    str(Path(out["out"]) / "requirements.txt")], check=True, timeout=600, env=ALONE)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('torch'), "
                            "u.find_spec('core'))"], capture_output=True, text=True, cwd="/", check=True, env=ALONE)
    assert probe.stdout.split() == ["None", "None"]  # neither torch nor the studio
    return python


def _cli(home: Path, *args) -> dict:
    p = subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), *args], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("case", ["text, network weight 0 (auto)", "text, network weight 0.5",
                                  "image, network weight 0.5"])
def test_exported_predict_py_alone_matches_the_studio(runs, fresh_python, tmp_path, case):
    home, recs = runs
    rec = recs[case]
    st = rec.status
    weight = st["blend"]["network_weight"]
    assert weight == (0.0 if "weight 0 " in case else 0.5)
    report = export(rec.dir, tmp_path / "exp", "onnx")
    folder = Path(report["out"])
    files = {p.name for p in folder.iterdir()}
    assert ("model.onnx" in files) is (weight > 0)  # only the parts the predictor uses
    assert "partner" in files and "predict.py" in files and "README.md" in files
    assert report["parity"]["same_label"] == report["parity"]["rows"] > 0
    preds = pd.read_parquet(rec.test_predictions)  # what the Evaluate page shows
    classes = [c[2:] for c in preds.columns if c.startswith("p:")]
    evaluate_page = preds[[f"p:{c}" for c in classes]].to_numpy()
    if "image" in case:
        given = tmp_path / "given"  # the test images, in a folder of their own
        order = [f"{Path(f).parent.name}/{Path(f).name}" for f in preds["file"]]
        for f, name in zip(preds["file"], order):
            (given / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, given / name)
        target = str(given)
    else:
        target = str(tmp_path / "new.csv")
        pd.DataFrame({"text": preds["input"]}).to_csv(target, index=False)
        order = [f"row {i + 1}" for i in range(len(preds))]
    p = subprocess.run([str(fresh_python), str(folder / "predict.py"), target, "--json"], capture_output=True,
                       text=True, timeout=300, cwd="/", env=ALONE)
    assert p.returncode == 0, p.stderr
    alone = {r["input"]: r for r in map(json.loads, p.stdout.splitlines())}
    alone_p = np.array([[alone[n]["probabilities"][c] for c in classes] for n in order])
    studio = _cli(home, "predict", str(rec.dir), target, "--json")["predictions"]
    by_input = {r["input"]: r for r in studio}
    studio_p = np.array([[by_input[n if "image" in case else preds["input"][i]]["probabilities"][c] for c in classes]
                         for i, n in enumerate(order)])
    for other in (studio_p, evaluate_page):
        assert (alone_p.argmax(1) == other.argmax(1)).all()
        np.testing.assert_allclose(alone_p, other, atol=1e-4)
    assert [alone[n]["label"] for n in order] == [classes[i] for i in evaluate_page.argmax(1)]


def test_int8_export_of_a_small_image_set(tmp_path):
    """50 images (not a multiple of the calibration batch): INT8 calibrated on the training images, checked."""
    from core.data.datasets import DatasetStore
    from core.runs.store import RunStore

    stores = DatasetStore(tmp_path / "datasets"), RunStore(tmp_path / "runs")
    images = make_image_folder(tmp_path / "few", per_class=17, size=32)
    rec, st, _ = train(stores, config(images, "tiny-cnn", "full", epochs=1))
    assert st["status"] == "completed", st.get("reason")
    rep = export(rec.dir, tmp_path / "int8", "int8", datasets=stores[0])
    assert rep["int8"]["calibration"].startswith("static, ")
    assert rep["parity"]["rows"] == st["sizes"]["test"] > 0
    assert (tmp_path / "int8" / "model.int8.onnx").is_file()


def test_export_files_follow_the_umask(runs, tmp_path):
    """Temp files are 600 and temp folders 700; a finished export is shared as any file the user writes."""
    home, recs = runs
    umask = os.umask(0)
    os.umask(umask)
    out = Path(export(recs["text, network weight 0.5"].dir, tmp_path / "exp", "onnx")["out"])
    made = [out, *out.rglob("*")]
    assert {p.stat().st_mode & 0o777 for p in made if p.is_dir()} == {0o777 & ~umask}
    assert {p.stat().st_mode & 0o777 for p in made if p.is_file()} == {0o666 & ~umask}
