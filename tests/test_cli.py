"""The headless CLI: JSON outputs, replay, and one-line errors with exit code 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args, home):
    p = subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), *args], capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_app_command_serves_the_studio_with_the_demo(tmp_path):
    import os
    import shutil
    import time
    import urllib.request

    from tests.browser_util import free_port

    exe = shutil.which("finetune-studio", path=str(Path(sys.executable).parent))
    assert exe, "the console command is installed beside this Python"
    port = free_port()
    proc = subprocess.Popen([exe, "app", "--port", str(port), "--headless", "--demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "FTS_HOME": str(tmp_path)})
    try:
        deadline, health = time.time() + 60, None
        while time.time() < deadline and health != b"ok":
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert health == b"ok"
        assert f"http://localhost:{port}" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)


def test_backbones_json(tmp_path):
    rc, out, _ = cli("backbones", "--json", home=tmp_path)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rc == 0
    assert rows["mobilenet_v2"]["modality"] == "image" and rows["mobilenet_v2"]["offline"] is True
    assert rows["all-MiniLM-L6-v2"]["modality"] == "text" and rows["all-MiniLM-L6-v2"]["offline"] is True


def test_audit_json(tmp_path, text_csv):
    with open(text_csv, "a", encoding="utf-8") as f:
        f.write("match goal team score league coach player season item0,tech\n")
    rc, out, err = cli("audit", str(text_csv), "--json", home=tmp_path)
    r = json.loads(out)
    assert rc == 0, err
    assert r["rows"] == 121 and set(r["classes"]) == {"sports", "tech", "food"}
    for k in ("exact_duplicates", "near_duplicate_groups", "label_conflicts", "bad"):
        assert k in r


def test_train_replay_evaluate_resume(tmp_path, image_dir):
    rc, out, err = cli("train", "--data", str(image_dir), "--backbone", "tiny-cnn", "--strategy", "full",
                       "--epochs", "2", "--batch-size", "8", "--json", home=tmp_path)
    r = json.loads(out)
    assert rc == 0, err
    assert r["status"] == "completed" and set(r["test"]) == {"accuracy", "macro_f1"}
    assert r["trainable_params"] == r["total_params"] > 0
    rc, out2, err = cli("train", "--config", f"{r['run_dir']}/config.json", "--json", home=tmp_path)
    r2 = json.loads(out2)
    assert rc == 0 and r2["test"] == r["test"] and r2["run_id"] != r["run_id"]
    rc, out3, _ = cli("evaluate", r["run_dir"], "--json", home=tmp_path)
    ev = json.loads(out3)
    assert rc == 0 and ev["test"]["accuracy"] == r["test"]["accuracy"]
    assert ev["vs_baseline"]["n"] == ev["test"]["n"] and "the baseline" in ev["verdict"]
    rc, _, err = cli("resume", r["run_dir"], home=tmp_path)
    assert rc == 2 and "already completed" in err


def test_auto_reports_the_baseline_beside_the_test_metrics(tmp_path, image_dir):
    rc, out, err = cli("train", "--data", str(image_dir), "--backbone", "tiny-cnn", "--strategy", "auto",
                       "--set", "epochs=1", "--json", home=tmp_path)
    r = json.loads(out)
    assert rc == 0, err
    assert set(r["baseline"]) >= {"accuracy", "macro_f1"} and set(r["test"]) == {"accuracy", "macro_f1"}
    assert r["resolved_strategy"] == "full" and r["auto"]
    assert r["vs_baseline"]["verdict"] in ("better", "worse", "within_noise", "same")
    assert 0.0 <= r["blend"]["network_weight"] <= 1.0


def test_owner_keeps_a_cli_run_private_to_that_studio_user(tmp_path, image_dir):
    from core.runs.store import RunStore

    rc, out, err = cli("train", "--data", str(image_dir), "--backbone", "tiny-cnn", "--strategy", "frozen",
                       "--epochs", "1", "--owner", "ann@example.org", "--json", home=tmp_path)
    assert rc == 0, err
    runs = RunStore(tmp_path / "runs")
    assert [r["id"] for r in runs.list(viewer="ann@example.org")] == [json.loads(out)["run_id"]]
    assert runs.list(viewer="bob@example.org") == []


@pytest.mark.parametrize("args,needle", [
    (["train", "--data", "/nope.csv", "--backbone", "tiny-cnn"], "not found"),
    (["train", "--data", "{data}", "--backbone", "resnet-9000"], "Unknown backbone"),
    (["train", "--data", "{data}", "--backbone", "tiny-cnn", "--epochs", "0"], "epochs must be"),
    (["audit", "{empty}"], "no rows"),
    (["evaluate", "/tmp"], "not a run folder"),
    (["train", "--data", "{data}", "--backbone", "tiny-cnn", "--set", "colour=blue"], "KEY one of"),
    (["train", "--data", "{data}", "--backbone", "tiny-cnn", "--set", "label_smoothing=2"], "label_smoothing must"),
    (["train", "--data", "{data}", "--backbone", "tiny-text", "--device", "cuda:99"], "Device 'cuda:99'"),
])
def test_errors_exit_2_with_one_line(tmp_path, text_csv, args, needle):
    (tmp_path / "empty.csv").write_text("text,label\n", encoding="utf-8")
    args = [a.format(data=text_csv, empty=tmp_path / "empty.csv") for a in args]
    rc, out, err = cli(*args, home=tmp_path)
    assert rc == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_text_train_with_settings_then_export_for_transformers(tmp_path, text_csv):
    rc, out, err = cli("train", "--data", str(text_csv), "--backbone", "tiny-text", "--strategy", "full",
                       "--pooling", "cls", "--set", "epochs=1", "label_smoothing=0.1", "class_weighting=balanced",
                       "--json", home=tmp_path)
    r = json.loads(out)
    assert rc == 0, err
    cfg = json.loads((tmp_path / "runs" / r["run_id"] / "config.json").read_text())["train"]
    assert (cfg["pooling"], cfg["epochs"], cfg["label_smoothing"], cfg["class_weighting"]) == ("cls", 1, 0.1, "balanced")
    rc, out, err = cli("export", r["run_dir"], "--format", "folder", "--out", str(tmp_path / "exp"), "--json",
                       home=tmp_path)
    rep = json.loads(out)
    assert rc == 0, err
    assert rep["hf"]["written"] and (tmp_path / "exp" / "hf" / "config.json").is_file()


def test_every_setting_is_settable_from_the_command_line(tmp_path):
    """Each field of the data and training settings has a flag that reaches the config (lists included)."""
    from dataclasses import fields

    from core.cli import build_parser
    from core.cli.args import config_from_args
    from core.config import DataConfig, TrainConfig
    from core.settings import choices_of, default_of, flag_of, shape

    checked = 0
    for kind, section in ((DataConfig, "data"), (TrainConfig, "train")):
        for f in fields(kind):
            if not f.metadata.get("cli", True) or f.name in ("source",):
                continue
            base, _, is_list = shape(kind, f.name)
            choices = choices_of(f)
            if base is bool:
                argv, want = [flag_of(f)] if not default_of(f) else ["--no-" + flag_of(f)[2:]], not default_of(f)
            elif choices:
                value = choices[-1]
                argv, want = [flag_of(f), str(value)], [value] if is_list else value
            elif base in (int, float) and f.metadata.get("low") is not None:
                lo = f.metadata["low"] + (1 if f.metadata.get("low_open") else 0)
                value = base(lo if not f.metadata.get("high") or lo <= f.metadata["high"] else f.metadata["high"])
                if f.metadata.get("high_open") and value >= f.metadata["high"]:
                    continue
                argv, want = [flag_of(f), str(value)], value
            else:
                continue
            args = build_parser().parse_args(["train", "--data", str(tmp_path), *argv])
            got = getattr(getattr(config_from_args(args), section), f.name)
            assert got == want, (f.name, argv, got)
            checked += 1
    assert checked > 30


def test_a_run_given_a_relative_path_replays_from_anywhere_and_after_the_file_moved(tmp_path):
    """config.json records the data path made absolute; a path that no longer exists replays on the dataset
    version the run trained on (said on stderr), and a resume always uses that version."""
    from tests.conftest import make_text_csv

    where = tmp_path / "project"
    (where / "sub").mkdir(parents=True)
    data = make_text_csv(where / "sub" / "topics.csv", per_class=12)
    home = tmp_path / "h"
    root = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}

    def run(*args, cwd):
        p = subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), *args], capture_output=True,
                           text=True, timeout=300, cwd=cwd, env=env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout), p.stderr

    first, _ = run("train", "--data", "sub/topics.csv", "--backbone", "tiny-text", "--strategy", "full", "--epochs",
                   "1", "--json", cwd=where)
    recorded = json.loads((Path(first["run_dir"]) / "config.json").read_text())["data"]["source"]
    assert recorded == str(data.resolve())
    again, _ = run("train", "--config", first["run_dir"], "--json", cwd=tmp_path)
    assert again["test"] == first["test"]
    data.rename(data.with_name("moved.csv"))
    moved, err = run("train", "--config", first["run_dir"] + "/config.json", "--json", cwd=tmp_path)
    assert "no longer exists; replaying on the dataset version" in err and moved["test"] == first["test"]
