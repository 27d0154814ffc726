"""The benchmark scripts that must keep working where CI has no GPU run here in their smoke mode."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_gpu_benchmark_runs_in_smoke_mode_on_a_cpu():
    out = load("bench_gpu").main(["--smoke"])
    for side in ("bare", "bare_same_step", "engine"):
        assert out[side]["steps_per_s"] > 0 and out[side]["images_per_s"] > 0
        assert 0.0 <= out[side]["data_wait_share"] <= 1.0
    assert out["engine_vs_bare_steps"] > 0 and out["engine_vs_same_step_bare"] > 0
