"""Two-process DistributedDataParallel training on CPU (gloo) through torchrun."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import config


def test_torchrun_two_processes_gloo(tmp_path, image_dir):
    cfg_path = tmp_path / "config.json"
    config(image_dir, epochs=2, batch_size=4).save(cfg_path)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"), "--nproc_per_node=2",
           "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
           "-m", "core.cli", "--home", str(tmp_path / "home"), "train", "--config", str(cfg_path), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout[p.stdout.index("{"):])
    assert out["status"] == "completed" and set(out["test"]) == {"accuracy", "macro_f1"}
    run = Path(out["run_dir"])
    status = json.loads((run / "status.json").read_text())
    assert status["world_size"] == 2
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    n_train = next(e for e in events if e["kind"] == "run_start")["data"]["train"]
    assert status["total_steps"] == 2 * -(-(n_train // 2) // 4)  # each rank steps through half the data
    test = json.loads((run / "eval" / "test.json").read_text())
    assert test["n"] == out["baseline"]["n"]  # gathered from both ranks: the whole test split
    assert (run / "checkpoints" / "last" / "model.safetensors").is_file()
    assert not list(run.glob("**/*.tmp"))


@pytest.mark.parametrize("strategy", ["full", "auto"])
def test_the_studio_starts_a_multi_process_run_with_torchrun(stores, image_dir, strategy):
    """A run asking for 2 processes from the UI (processes=2) is started by the dispatcher under torchrun; 'auto'
    plans once, on rank 0, and both processes run that plan."""
    from core.runs.manager import RunManager

    datasets, runs = stores
    mgr = RunManager(runs, datasets, devices=["cpu"])
    try:
        cfg = config(image_dir, "tiny-cnn", strategy, epochs=1, batch_size=4, processes=2, budget_minutes=5)
        cfg.chosen = ["backbone", "epochs", "batch_size", "budget_minutes"]
        h = mgr.submit(cfg)
        st = h.wait(300)
        assert st["status"] == "completed", (st.get("reason"), (h.run.dir / "worker.log").read_text()[-2000:])
        assert st["world_size"] == 2 and st["test"]["accuracy"] >= 0
        if strategy == "auto":
            assert st["resolved_strategy"] == st["plan"]["planned"]["strategy"]
            assert h.run.resolved_config.train.strategy == st["resolved_strategy"]
    finally:
        mgr.shutdown(stop_runs=True)
