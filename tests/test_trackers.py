"""Tracker callbacks mirror events to MLflow / TensorBoard when installed, and say so when not."""
import sys
import types

from tests.helpers import Record, config, train


def test_missing_tracker_is_a_warning_not_a_failure(stores, image_dir, monkeypatch):
    import core.train.trackers as T

    monkeypatch.setattr(T, "available", lambda name: False)
    rec_cb = Record()
    _, st, _ = train(stores, config(image_dir, epochs=1, trackers=["mlflow"]), [rec_cb])
    assert st["status"] == "completed"
    assert any("mlflow is not installed" in e.data.get("message", "") for e in rec_cb.events if e.kind == "warning")


def test_mlflow_mirror_logs_params_metrics_and_status(stores, image_dir, monkeypatch):
    import core.train.trackers as T

    calls = {"params": None, "metrics": [], "tags": {}, "ended": False}
    fake = types.SimpleNamespace(
        start_run=lambda run_name: object(),
        log_params=lambda p: calls.__setitem__("params", p),
        log_metrics=lambda m, step: calls["metrics"].append((step, m)),
        set_tag=lambda k, v: calls["tags"].__setitem__(k, v),
        end_run=lambda: calls.__setitem__("ended", True))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.setattr(T, "available", lambda name: True)
    _, st, _ = train(stores, config(image_dir, epochs=2, trackers=["mlflow"]))
    assert st["status"] == "completed" and calls["ended"] and calls["tags"]["status"] == "completed"
    assert calls["params"]["backbone"] == "tiny-cnn"
    assert any("val_macro_f1" in m for _, m in calls["metrics"]) and any("train_loss" in m for _, m in calls["metrics"])
