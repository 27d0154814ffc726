"""Training outlives the page and the server (real processes, real signals): a killed server leaves its workers
training; a killed worker fails its run with a reason while the studio keeps serving and the queue moves on;
queued runs survive a restart in order; a run killed mid-epoch resumes to the same result."""
import json
import os
import signal
import urllib.request

import pytest

from core.config import RunConfig
from core.data.datasets import DatasetStore
from core.runs.manager import RunManager
from core.runs.runner import enqueue, prepare_run, request_stop
from core.runs.store import RunStore
from tests.browser_util import chromium_available, studio_server
from tests.conftest import make_image_folder
from tests.helpers import config, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals")


def stores_at(home):
    return DatasetStore(home / "datasets"), RunStore(home / "runs")


def queue(home, cfg: RunConfig):
    """What the Train page does: a run recorded as queued in the store, for whichever server dispatches it."""
    datasets, runs = stores_at(home)
    rec = prepare_run(cfg, datasets, runs, None)
    enqueue(runs, rec, "studio")
    return rec


def steps(rec):
    return [e for e in rec.events() if e["kind"] == "step"]


@pytest.fixture
def data(tmp_path):
    return make_image_folder(tmp_path / "colours", per_class=40, size=24)


def long_cfg(data, epochs=25, **kw):
    return config(data, "tiny-cnn", "full", epochs=epochs, batch_size=8, **kw)


def health(url) -> bytes:
    return urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read()


def test_a_killed_server_leaves_training_running_and_a_new_one_shows_it_completed(tmp_path, data):
    home = tmp_path / "home"
    rec = queue(home, long_cfg(data))
    with studio_server(home) as (url, proc):
        worker = wait_for(lambda: rec.status.get("status") == "running" and len(steps(rec)) >= 3 and rec.status["pid"])
        os.kill(proc.pid, signal.SIGKILL)  # the whole server, at once
        proc.wait(10)
    assert os.path.exists(f"/proc/{worker}")  # its worker trains on
    wait_for(lambda: rec.status.get("status") in ("completed", "failed"), timeout=300)
    assert rec.status["status"] == "completed", rec.status.get("reason")
    with studio_server(home) as (url, _):
        mgr_view = RunStore(home / "runs").get(rec.id)
        assert mgr_view.status["status"] == "completed"
        kinds = [e["kind"] for e in mgr_view.events()]
        assert kinds.count("step") == rec.status["total_steps"] and kinds[-1] == "run_end"
        assert health(url) == b"ok"


def test_a_killed_worker_fails_its_run_with_a_reason_and_the_next_run_starts(tmp_path, data):
    home = tmp_path / "home"
    with studio_server(home) as (url, _):
        first, second = queue(home, long_cfg(data)), queue(home, long_cfg(data, epochs=1))
        pid = wait_for(lambda: first.status.get("status") == "running" and len(steps(first)) >= 2 and first.status["pid"])
        assert second.status["status"] == "queued"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: first.status.get("status") == "failed")
        assert "killed (signal 9)" in first.status["reason"] and "batch size 4" in first.status["reason"]
        assert health(url) == b"ok"
        wait_for(lambda: second.status.get("status") == "completed", timeout=240)


def test_queued_runs_survive_a_server_restart_and_start_in_order(tmp_path, data):
    home = tmp_path / "home"
    recs = [queue(home, long_cfg(data, epochs=e)) for e in (12, 1, 1)]
    with studio_server(home) as (url, proc):
        wait_for(lambda: recs[0].status.get("status") == "running")
        assert [r.status["status"] for r in recs[1:]] == ["queued", "queued"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    with studio_server(home) as (url, _):
        wait_for(lambda: all(r.status.get("status") == "completed" for r in recs), timeout=400)
    started = [r.status["started"] for r in recs]
    assert started == sorted(started)
    assert recs[0].status.get("reason", "") == ""  # re-attached, never marked interrupted


def test_a_run_killed_mid_epoch_resumes_to_the_same_result(tmp_path, data):
    home = tmp_path / "home"
    datasets, runs = stores_at(home)
    cfg = long_cfg(data, epochs=3, mixup_alpha=0.2, checkpoint_every_min=0.0005)  # every ~30 ms
    mgr = RunManager(runs, datasets)
    try:
        whole = mgr.submit(RunConfig.from_dict(cfg.to_dict()))
        assert whole.wait(240)["status"] == "completed"
        h = mgr.submit(RunConfig.from_dict(cfg.to_dict()))
        total = whole.status["total_steps"]
        pid = wait_for(lambda: len(steps(h.run)) >= total // 2 and h.status["pid"], every=0.05)
        os.kill(pid, signal.SIGKILL)
        assert h.wait(60)["status"] == "failed"
        ck = json.loads(json.dumps([e for e in h.run.events() if e["kind"] == "checkpoint"][-1]))
        assert ck["data"].get("in_epoch") or ck["data"]["next_epoch"] >= 1
        again = mgr.resume(h.id)
        assert again.wait(240)["status"] == "completed"
        assert again.status["test"] == whole.status["test"]
        assert h.run.result("test")["confusion"] == whole.run.result("test")["confusion"]
        assert h.run.result("test")["loss"] == pytest.approx(whole.run.result("test")["loss"], abs=1e-9)
    finally:
        mgr.shutdown(stop_runs=True)


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="Debian chromium not installed")
def test_monitor_is_live_again_after_a_server_restart(tmp_path, data):
    from tests.browser_util import browser_page, idle, shot

    home = tmp_path / "home"
    # long enough to outlast two server starts on a loaded machine; stopped once the page is seen following it
    rec = queue(home, long_cfg(data, epochs=400))
    with studio_server(home, {"FTS_ACCESS": "open"}) as (url, proc), browser_page() as page:
        page.goto(f"{url}/monitor?run={rec.id}")
        idle(page)
        page.get_by_role("heading", name="Running").wait_for(timeout=120_000)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    seen = len(steps(rec))
    with studio_server(home, {"FTS_ACCESS": "open"}) as (url, _), browser_page() as page:
        page.goto(f"{url}/monitor?run={rec.id}")
        idle(page)
        page.get_by_role("heading", name="Running").wait_for(timeout=60_000)
        assert f"run={rec.id}" in page.url
        wait_for(lambda: len(steps(rec)) > seen + 5, timeout=120)  # still training, and the page follows it
        request_stop(rec)  # what the Monitor's Stop does
        page.get_by_role("heading", name="Stopped").wait_for(timeout=120_000)
        shot(page, "r1-monitor-after-restart")
