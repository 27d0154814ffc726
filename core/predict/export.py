"""Export a run: a self-contained folder (safetensors, adapters merged), ONNX checked against PyTorch with
onnxruntime on the run's own test inputs, and dynamic INT8 for CPU with its size/speed/accuracy cost.
Everything is written to a temporary folder beside the target and renamed into place at the end; a target
that already holds files is refused unless `force` (a person's README.md is not silently replaced)."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from ..errors import RunError
from ..fsutil import atomic_replace_dir
from ..runs.folder import WEIGHTS, ModelFolder, RunFolder
from ..strategies import get_strategy
from .predictor import Predictor

FORMATS = ("folder", "onnx", "int8")
Progress = Callable[[float, str], None]

_README = """# Exported model

Backbone: {backbone}. Task: {task}. {outputs}

```python
from core.predict.predictor import Predictor
p = Predictor("path/to/this/folder")
outputs, errors = p.predict({example})   # {kind}
print(p.table({example}, outputs, errors))
```
"""


def check_target(out: Path, force: bool, how: str = "pass --force to replace its contents") -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file; give a folder to export into.")
    if out.is_dir() and any(out.iterdir()) and not force:
        names = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise RunError(f"{out} already holds files ({names}); choose an empty or new folder, or {how}.")


def export_folder(run_dir: str | Path, out: str | Path) -> tuple[Path, dict[str, Any]]:
    """model.safetensors (adapters merged), labels, config and a README; a blended run's partner; for a text
    model pooled the transformers way, also hf/. Returns the folder and what happened to hf/."""
    from safetensors.torch import save_model

    run, dest = RunFolder(run_dir), ModelFolder(out)
    out = dest.dir
    pred = Predictor(run.dir)
    strategy = get_strategy(pred.cfg.train.strategy)
    model = strategy.merge(pred.model)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / WEIGHTS))
    cfg = pred.cfg.to_dict()
    if strategy.adapter:  # merged: a plain backbone now, as a full fine-tune would leave it
        cfg["train"]["strategy"], cfg["train"]["strategy_args"] = "full", {}
    dest.config_file.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    dest.labels_file.write_text(json.dumps({**pred.meta, "task": pred.task.name, "modality": pred.modality.name,
                                                 "backbone": pred.spec.name}, indent=2), encoding="utf-8")
    what = ("Classes: " + ", ".join(pred.classes) + ".") if pred.classes else "Outputs one number per input."
    (out / "README.md").write_text(_README.format(backbone=pred.spec.name, task=pred.task.title, outputs=what,
                                                  example=pred.modality.readme_example, kind=pred.modality.readme_kind),
                                   encoding="utf-8")
    if pred.partner is not None:  # a blended run's linear partner travels with it
        shutil.copytree(run.partner_dir, dest.partner_dir, dirs_exist_ok=True)
        shutil.copyfile(run.blend_file, dest.blend_file)
    return out, pred.modality.extra_export(Predictor(out), out)


class _Logits(torch.nn.Module):
    """Positional inputs for the ONNX graph, in the modality's order."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, x)))


def _inputs(pred: Predictor, items: list[str]) -> dict[str, np.ndarray]:
    """Model-ready arrays for real inputs, preprocessed exactly as for prediction."""
    batch, _, errors = pred.pre.batch(items)
    bad = [f"{items[i]}: {e}" for i, e in enumerate(errors) if e]
    if bad or batch is None:
        raise RunError(f"Cannot read the run's own test inputs to check the export ({bad[0] if bad else 'none'}).")
    return {k: v.numpy() for k, v in batch.items()}


def export_onnx(pred: Predictor, out: Path, sample: dict[str, np.ndarray]) -> Path:
    names = pred.modality.input_names
    wrapper = _Logits(pred.model, names).eval()
    args = tuple(torch.from_numpy(sample[n][:2]) for n in names)
    path = out / "model.onnx"
    torch.onnx.export(wrapper, args, str(path), input_names=list(names), output_names=["logits"],
                      dynamic_axes={**pred.modality.onnx_axes(), "logits": {0: "batch"}}, dynamo=False,
                      opset_version=17)
    return path


def _ort_logits(path: Path, feed: dict[str, np.ndarray], batch: int = 64) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n = len(next(iter(feed.values())))
    return np.concatenate([sess.run(None, {k: v[i:i + batch] for k, v in feed.items()})[0] for i in range(0, n, batch)])


def _torch_logits(pred: Predictor, feed: dict[str, np.ndarray], batch: int = 64) -> np.ndarray:
    names = pred.modality.input_names
    w = _Logits(pred.model, names).eval()
    n = len(feed[names[0]])
    with torch.no_grad():
        return np.concatenate([w(*(torch.from_numpy(feed[k][i:i + batch]) for k in names)).numpy()
                               for i in range(0, n, batch)])


def _timed(fn, *a, repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*a)
        best = min(best, time.perf_counter() - t)
    return best, out


def _labelled_rows(run_dir: Path, datasets, pred: Predictor, cap: int = 2000) -> tuple[list[str], np.ndarray] | None:
    """Up to `cap` labelled inputs of the run's own dataset (all splits): INT8 changes a prediction only near a
    decision boundary, so a 40-example test set cannot resolve a change under 2.5 points; hundreds can."""
    ds = datasets.find(RunFolder(run_dir).status.get("dataset")) if datasets is not None else None
    if ds is None or not pred.task.has_classes:
        return None
    keep = np.flatnonzero(ds.items["label"].isin(pred.classes).to_numpy())
    if len(keep) > cap:
        keep = np.sort(np.random.default_rng(0).choice(keep, cap, replace=False))
    inputs = ds.inputs()
    labels = ds.items["label"].to_numpy()
    pos = {c: i for i, c in enumerate(pred.classes)}
    return [inputs[i] for i in keep], np.array([pos[labels[i]] for i in keep])


def _parity(run_dir: Path, folder: Path, fmt: str, datasets, progress: Progress) -> dict[str, Any]:
    """ONNX (and INT8) checked against PyTorch on the run's own test inputs."""
    pred = Predictor(folder)
    p = RunFolder(run_dir).test_predictions
    if not p.is_file():
        raise RunError(f"{run_dir.name} has no test predictions to check the export against.")
    tests = pd.read_parquet(p)
    col = "file" if pred.modality.file_inputs else "input"
    if col not in tests.columns:
        raise RunError(f"{run_dir.name} was trained by an older version that did not keep its test inputs; "
                       "train it again to export ONNX.")
    progress(0.3, "Writing ONNX")
    feed = _inputs(pred, tests[col].tolist())
    onnx_path = export_onnx(pred, folder, feed)
    progress(0.5, "Checking ONNX against PyTorch")
    t_torch, ref = _timed(_torch_logits, pred, feed)
    t_onnx, got = _timed(_ort_logits, onnx_path, feed)
    report: dict[str, Any] = {"onnx": {"file": onnx_path.name, "max_abs_logit_diff": float(np.abs(got - ref).max()),
                                       "max_abs_logit": float(np.abs(ref).max()),  # the scale of that difference
                                       "checked_on": len(tests), "size_mb": round(onnx_path.stat().st_size / 2**20, 2),
                                       "seconds": round(t_onnx, 4), "torch_seconds": round(t_torch, 4)}}
    if pred.task.has_classes:
        y = tests["true"].map({c: i for i, c in enumerate(pred.classes)}).to_numpy()
        report["onnx"]["accuracy"] = float((ref.argmax(1) == y).mean())
    if fmt == "int8":
        progress(0.7, "Quantising to INT8")
        report["int8"] = _int8(pred, folder, onnx_path, feed, ref, t_onnx, report["onnx"].get("accuracy"),
                               tests, run_dir, datasets)
    return report


def _quantise(pred, onnx_path: Path, q_path: Path, calibration: dict[str, np.ndarray] | None) -> None:
    """INT8 weights with one scale per output channel. The head stays fp32: it is a tiny share of the size, and a
    head solved on standardised features leans on low-variance features that 8-bit activations would erase."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    head = [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node
            if n.name.startswith("/model/head/")]
    if not pred.modality.int8_static or calibration is None:
        quantize_dynamic(str(onnx_path), str(q_path), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=head)
        return

    class Batches(CalibrationDataReader):
        def __init__(self):
            n = len(next(iter(calibration.values())))
            self.it = iter([{k: v[i:i + 8] for k, v in calibration.items()} for i in range(0, n, 8)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(onnx_path), str(q_path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                    nodes_to_exclude=head)


def _calibration(run_dir: Path, datasets, pred: Predictor, tests: pd.DataFrame, col: str,
                 cap: int = 64) -> tuple[dict[str, np.ndarray] | None, str]:
    """Inputs that set the INT8 activation ranges: the run's own non-test rows, never the rows it is checked on."""
    if not pred.modality.int8_static:
        return None, "dynamic (activation ranges per batch)"
    wide = _labelled_rows(run_dir, datasets, pred)
    held_out = set(map(str, tests[col]))
    rows = [x for x in (wide[0] if wide else []) if str(x) not in held_out][:cap]
    if not rows:
        return None, "dynamic (no training rows at hand to calibrate a static one)"
    return _inputs(pred, rows), f"static, calibrated on {len(rows)} training inputs"


def _int8(pred, folder, onnx_path, feed, ref, t_onnx, acc, tests, run_dir, datasets) -> dict[str, Any]:
    q_path = folder / "model.int8.onnx"
    calibration, how = _calibration(run_dir, datasets, pred, tests, "file" if pred.modality.file_inputs else "input")
    _quantise(pred, onnx_path, q_path, calibration)
    t_q, q = _timed(_ort_logits, q_path, feed)
    out = {"file": q_path.name, "method": how, "size_mb": round(q_path.stat().st_size / 2**20, 2),
           "size_ratio": round(q_path.stat().st_size / onnx_path.stat().st_size, 3),
           "seconds": round(t_q, 4), "speedup_vs_fp32_onnx": round(t_onnx / t_q, 2),
           "max_abs_logit_diff": float(np.abs(q - ref).max())}
    if acc is not None:
        y = tests["true"].map({c: i for i, c in enumerate(pred.classes)}).to_numpy()
        q_acc = float((q.argmax(1) == y).mean())
        # finer than accuracy on a small test set: how many predictions INT8 changed at all
        out.update(accuracy=q_acc, accuracy_change_points=round((q_acc - acc) * 100, 2),
                   agreement_with_fp32=float((q.argmax(1) == ref.argmax(1)).mean()))
        changed = int((q.argmax(1) != ref.argmax(1)).sum())
        if changed > 0.02 * len(q):
            out["warning"] = (f"INT8 changed {changed} of {len(q)} test predictions: use the fp32 model.onnx for "
                              "this run, or check the INT8 model on more of your data first.")
    wide = _labelled_rows(run_dir, datasets, pred)
    if wide is not None:
        feed_all = _inputs(pred, wide[0])
        a32 = float((_torch_logits(pred, feed_all).argmax(1) == wide[1]).mean())
        a8 = float((_ort_logits(q_path, feed_all).argmax(1) == wide[1]).mean())
        out["all_rows"] = {"checked_on": len(wide[1]), "fp32_accuracy": a32, "int8_accuracy": a8,
                           "accuracy_change_points": round((a8 - a32) * 100, 2)}
    return out


def export(run_dir: str | Path, out: str | Path, fmt: str = "folder", datasets=None, force: bool = False,
           progress: Progress | None = None) -> dict[str, Any]:
    """datasets: the run's DatasetStore, when at hand, lets the INT8 check use the whole dataset."""
    progress = progress or (lambda f, m: None)
    if fmt not in FORMATS:
        raise RunError(f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    run_dir, out = Path(run_dir), Path(out)
    check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        progress(0.0, "Writing the model folder")
        report: dict[str, Any] = {"format": fmt, "out": str(out), "files": [], "hf": export_folder(run_dir, tmp)[1]}
        made = ModelFolder(tmp)
        blend = json.loads(made.blend_file.read_text()) if made.blend_file.is_file() else None
        if blend and blend["network_weight"] < 1:
            report["blend"] = {"network_weight": blend["network_weight"],
                               "note": "ONNX, INT8 and hf/ carry the network alone; its linear partner is in "
                                       "partner/, applied by core.predict.Predictor"}
        if fmt != "folder":
            report.update(_parity(run_dir, tmp, fmt, datasets, progress))
        report["files"] = sorted(p.name for p in tmp.iterdir())
        (tmp / "export_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        check_target(out, force)  # nothing appeared there meanwhile
        atomic_replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(1.0, "Export ready")
    return report
