"""`finetune-studio serve`: the run's predictor over HTTP, answering a batch as `predict` does; a malformed or
oversized request gets a 4xx with a message, never a traceback."""
import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser_util import free_port
from tests.helpers import config, train

ROOT = Path(__file__).resolve().parents[1]


def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def served(stores, image_dir, home):
    rec, st, _ = train(stores, config(image_dir, epochs=1, blend=True, blend_weight=0.5))
    assert st["status"] == "completed"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "--home", str(home), "serve", str(rec.dir), "--port",
                             str(port), "--max-body-mb", "1", "--max-batch", "8"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                health = json.loads(r.read())
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read())
            time.sleep(0.5)
    else:
        raise RuntimeError("serve did not start")
    try:
        yield url, rec, health
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_answers_a_batch_as_predict_does_and_refuses_bad_requests(served, image_dir, home):
    url, rec, health = served
    assert health["status"] == "ok" and set(health["classes"]) == {"red", "green", "blue"}
    assert "blends" in health["model"]  # what is loaded, in words: the network and its partner
    files = sorted(image_dir.rglob("*.png"))[:6]
    status, got = _post(f"{url}/predict", json.dumps(
        {"inputs": [base64.b64encode(f.read_bytes()).decode() for f in files] + ["bm90IGFuIGltYWdl"]}).encode())
    assert status == 200 and len(got["predictions"]) == 7
    assert got["predictions"][-1]["label"] is None and "not a readable image" in got["predictions"][-1]["error"]
    cli = subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), "predict", str(rec.dir),
                          str(image_dir), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    by_name = {r["input"]: r for r in json.loads(cli.stdout)["predictions"]}
    for f, served_row in zip(files, got["predictions"]):
        expected = by_name[str(f.relative_to(image_dir))]
        assert served_row["label"] == expected["prediction"]
        assert all(abs(served_row["probabilities"][c] - p) < 1e-6 for c, p in expected["probabilities"].items())
    for body, code, words in [(b"{not json", 400, "not JSON"), (b'{"texts": []}', 400, '"inputs"'),
                              (b'{"inputs": []}', 400, "empty"), (b'{"inputs": [3]}', 422, "base64"),
                              (b'{"inputs": ["%%%"]}', 422, "not valid base64"),
                              (json.dumps({"inputs": ["aGk="] * 9}).encode(), 413, "at most 8"),
                              (b'{"inputs": ["' + b"A" * (2 * 2**20) + b'"]}', 413, "at most 1 MB")]:
        status, reply = _post(f"{url}/predict", body)
        assert status == code and words in reply["error"], (body[:40], status, reply)
    status, reply = _post(f"{url}/nothing-here", b"{}")
    assert status == 404 and "POST /predict" in reply["error"]
