"""Background runs: queue, handles, stop, and recovery after a restart."""
import time

import pytest

from core.runs.manager import RunManager
from tests.helpers import config


@pytest.fixture
def mgr(stores):
    datasets, runs = stores
    m = RunManager(runs, datasets)
    yield m
    m.shutdown(stop_runs=True)


def wait_for(pred, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_second_run_queues_and_both_finish(mgr, image_dir):
    a = mgr.submit(config(image_dir, epochs=3))
    b = mgr.submit(config(image_dir, epochs=1))
    assert wait_for(lambda: a.status.get("status") == "running")
    assert b.status["status"] == "queued" and mgr.queue_position(b.id) == 1
    assert a.wait(120)["status"] == "completed" and b.wait(120)["status"] == "completed"
    assert a.events_since(0)[0]["kind"] in ("progress", "run_start")
    assert mgr.queue_position(b.id) is None


def test_stop_running_and_queued(mgr, image_dir):
    a = mgr.submit(config(image_dir, epochs=50))
    b = mgr.submit(config(image_dir, epochs=1))
    assert wait_for(lambda: any(e["kind"] == "step" for e in a.events_since(0)))
    assert mgr.stop(b.id) and b.status["status"] == "stopped"
    assert mgr.stop(a.id)
    assert a.wait(60)["status"] == "stopped"
    assert b.wait(60)["status"] == "stopped"


def test_restart_marks_interrupted_and_resume_completes(stores, image_dir):
    datasets, runs = stores
    mgr = RunManager(runs, datasets)
    h = mgr.submit(config(image_dir, epochs=2))
    assert h.wait(60)["status"] == "completed"
    mgr.shutdown(stop_runs=True)
    # a run left 'running' by a process that no longer exists
    runs.set_status(h.run, "running", pid=2**22 + 12345, heartbeat=0)
    mgr2 = RunManager(runs, datasets)
    try:
        assert h.id in mgr2.interrupted and h.run.status["status"] == "interrupted"
        h.run.dir.joinpath("checkpoints", "last", "trainer.pt").unlink()  # nothing complete: starts over
        h2 = mgr2.resume(h.id)
        assert h2.wait(60)["status"] == "completed"
    finally:
        mgr2.shutdown(stop_runs=True)


def test_unknown_backbone_rejected_before_launch(mgr, stores, image_dir):
    from core.errors import ModelError

    with pytest.raises(ModelError, match="Available offline: mobilenet_v2, efficientnet_lite0, all-MiniLM-L6-v2"):
        mgr.submit(config(image_dir, backbone="no-such-net"))
    assert stores[1].list() == []
