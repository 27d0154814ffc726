"""One lifecycle for every run (real processes, real signals): a command's run is stopped from anywhere, owned by
one process at a time, resumable after a kill -9, and waits in the same queue as the studio's runs; the run index
is only a cache of the run folders."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.data.datasets import DatasetStore
from core.runs.manager import RunManager
from core.runs.store import RunStore
from tests.conftest import make_image_folder
from tests.helpers import config, wait_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals")


def cli(home, *args, **kw):
    return subprocess.run([sys.executable, "-m", "core.cli", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, **kw)


def start_train(home, data, *extra):
    return subprocess.Popen([sys.executable, "-m", "core.cli", "--home", str(home), "train", "--data", str(data),
                             "--backbone", "tiny-cnn", "--strategy", "full", "--batch-size", "8", "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)


def the_run(home):
    """The one run of a fresh home, once it exists and trains (read as the studio reads it)."""
    runs = RunStore(home / "runs")
    rows = wait_for(lambda: [r for r in runs.list() if r["status"] == "running"])
    rec = runs.get(rows[0]["id"])
    wait_for(lambda: any(e["kind"] == "step" for e in rec.events()))
    return runs, rec


@pytest.fixture
def data(tmp_path):
    return make_image_folder(tmp_path / "colours", per_class=40, size=24)


def test_a_command_run_stops_from_anywhere_and_has_one_owner(tmp_path, data):
    home = tmp_path / "home"
    proc = start_train(home, data, "--epochs", "300", "--set", "early_stopping_patience=0")
    runs, rec = the_run(home)
    second = cli(home, "resume", rec.id)  # while the first command trains it
    assert second.returncode == 2 and "already being trained by a finetune-studio command" in second.stderr
    assert f"pid {proc.pid}" in second.stderr
    listed = json.loads(cli(home, "runs", "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(rec.id, "running")] and listed[0]["owner"]
    stop = cli(home, "stop", rec.id, "--json")
    assert stop.returncode == 0 and json.loads(stop.stdout)["status"] == "stopped"
    # stopped where it was, not at the end of its 300 epochs (how many seconds that took depends on the machine)
    assert max(e.get("epoch", 0) for e in rec.events() if e["kind"] == "eval") < 300
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(out)["status"] == "stopped"
    assert rec.status["reason"] == "Stopped by the user." and rec.result("test") is not None  # evaluable


def test_a_command_run_killed_with_sigkill_reads_as_interrupted_and_resumes(tmp_path, data):
    home = tmp_path / "home"
    proc = start_train(home, data, "--epochs", "20", "--checkpoint-every-min", "0.001")
    runs, rec = the_run(home)
    wait_for(lambda: any(e["kind"] == "checkpoint" for e in rec.events()))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert json.loads(rec.status_file.read_text())["status"] == "running"  # as the kill left it on disk
    listed = json.loads(cli(home, "runs", "--json").stdout)
    assert listed[0]["status"] == "interrupted"  # the next look knows better
    assert "Resume continues" in rec.status["reason"]
    again = cli(home, "resume", str(rec.dir), "--json")  # by its folder (by its id works too)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "completed"


def test_a_studio_run_queued_behind_a_command_run_starts_only_after_it(tmp_path, data):
    home = tmp_path / "home"
    proc = start_train(home, data, "--epochs", "15", "--set", "early_stopping_patience=0")
    runs, first = the_run(home)
    datasets = DatasetStore(home / "datasets")
    mgr = RunManager(runs, datasets, devices=["cpu"])
    try:
        h = mgr.submit(config(data, epochs=1))
        time.sleep(1)  # a few turns of the dispatcher
        assert first.status["status"] == "running"
        assert h.status["status"] == "queued" and mgr.queue_position(h.id) == 1
        assert h.wait(300)["status"] == "completed"
        proc.communicate(timeout=60)
        assert h.status["started"] >= first.status["finished"] - 1  # it waited for the device
    finally:
        mgr.shutdown(stop_runs=True)


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_the_run_index_is_a_cache_of_the_run_folders(tmp_path, image_dir, damage):
    from tests.helpers import train

    datasets, runs = DatasetStore(tmp_path / "d"), RunStore(tmp_path / "runs")
    made = [train((datasets, runs), config(image_dir, epochs=1, max_steps=1))[0].id for _ in range(2)]
    index = runs.root / "index.sqlite"
    for p in runs.root.glob("index.sqlite*"):
        p.unlink()
    if damage == "corrupt":
        index.write_bytes(b"this is not a database" * 100)
    p = subprocess.run([sys.executable, "-m", "core.cli", "runs", "--json"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120, env={**os.environ, "FTS_HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert sorted(r["run_id"] for r in json.loads(p.stdout)) == sorted(made)
    if damage == "corrupt":
        assert "rebuilt from the run folders" in p.stderr and list(runs.root.glob("index.sqlite.unreadable-*"))
