"""Export a run's predictor, only the parts it uses, with a model card:

- folder: the studio's own format (model.safetensors with adapters merged, the blend's partner, config and
  labels), loaded by core.predict.predictor.Predictor; a text model pooled the transformers way also gets hf/.
- onnx / int8: a folder that runs without this project and without torch: predict.py (core.portable, verbatim),
  requirements.txt, the network as ONNX (INT8 for int8), the pretrained encoder the partner reads (encoder.onnx),
  the partner's arrays and the preprocessing. It checks itself before it is handed over: the exported predict.py
  against the studio's predictor on the run's test rows, the same label on every row and probabilities within
  1e-4 (INT8: the accuracy change, stated).

Everything is written to a temporary folder beside the target and renamed into place at the end; a target that
already holds files is refused unless `force` (a person's README.md is not silently replaced)."""
from __future__ import annotations

import copy
import importlib.util
import json
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_model

from .. import portable
from ..errors import RunError
from ..fsutil import atomic_replace_dir, atomic_write_json, temp_dir
from ..report.card import model_card
from ..runs.folder import WEIGHTS, ModelFolder, RunFolder
from ..strategies import get_strategy
from .blend import save_partner
from .onnx import export_network, quantise, timed
from .predictor import Predictor

FORMATS = ("folder", "onnx", "int8")
PARITY_ATOL = 1e-4
Progress = Callable[[float, str], None]


def check_target(out: Path, force: bool, how: str = "pass --force to replace its contents") -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file; give a folder to export into.")
    if out.is_dir() and any(out.iterdir()) and not force:
        names = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise RunError(f"{out} already holds files ({names}); choose an empty or new folder, or {how}.")


def merged(pred: Predictor) -> torch.nn.Module:
    """The network with its adapters folded in: a copy, so the predictor a page may be using is left as it is."""
    return get_strategy(pred.cfg.train.strategy).merge(copy.deepcopy(pred.model))


# --------------------------------------------------------------------------- the studio's own format
def export_folder(run_dir: str | Path, out: str | Path) -> tuple[Path, dict[str, Any]]:
    """The predictor in the studio's format. Returns the folder and what happened to hf/."""
    run, dest = RunFolder(run_dir), ModelFolder(out)
    pred = Predictor(run.dir)
    dest.dir.mkdir(parents=True, exist_ok=True)
    cfg = pred.cfg.to_dict()
    if pred.model is not None:
        save_model(merged(pred), str(dest.dir / WEIGHTS))
        if get_strategy(pred.cfg.train.strategy).adapter:  # merged: a plain backbone now, as a full fine-tune
            cfg["train"]["strategy"], cfg["train"]["strategy_args"] = "full", {}
    dest.config_file.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    dest.labels_file.write_text(json.dumps({**pred.meta, "task": pred.task.name, "modality": pred.modality.name,
                                            "backbone": pred.spec.name}, indent=2), encoding="utf-8")
    if run.blend_file.is_file():
        shutil.copyfile(run.blend_file, dest.blend_file)
    if pred.partner is not None:
        save_partner(pred.partner, dest.partner_dir)
    hf = {"written": False, "why": "the network does not make the predictions alone: a transformers folder would "
                                   "carry the network without its partner"}
    if pred.partner is None:
        hf = pred.modality.extra_export(Predictor(dest.dir), dest.dir)
    return dest.dir, hf


# --------------------------------------------------------------------------- the portable format
def _requirements(pred: Predictor, uses_onnx: bool) -> str:
    def pin(dist: str) -> str:
        try:
            return f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            return dist
    names = ["numpy", "Pillow"] + (["onnxruntime"] if uses_onnx else []) + \
            (["tokenizers"] if not pred.modality.file_inputs else [])
    return "\n".join(pin(n) for n in names) + "\n"


def _spec(pred: Predictor, network: str | None, encoder: str | None, input_col: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"modality": pred.modality.name, "labels": pred.labels, "network_weight":
                            pred.network_weight, "network": network, "encoder": encoder, "input_col": input_col,
                            "describe": pred.describe()}
    if pred.modality.file_inputs:
        spec.update(image_size=pred.pre.size, mean=pred.spec.mean, std=pred.spec.std)
    else:
        spec.update(max_length=pred.pre.max_length, pad_id=pred.pre.pad_id)
    return spec


def write_portable(pred: Predictor, folder: Path, fmt: str, sample: list[Any], calibration: list[Any],
                   input_col: str, progress: Progress) -> dict[str, Any]:
    """predict.py and what it reads, only the parts the predictor uses."""
    names = pred.modality.input_names
    network = encoder = None
    if pred.model is not None:
        progress(0.3, "Writing the network as ONNX")
        network = export_network(merged(pred), names, pred.pre, sample, folder / "model.onnx",
                                 pred.modality.onnx_axes())
        if fmt == "int8":
            progress(0.5, "Quantising the network to INT8")
            quantise(network, folder / "model.int8.onnx", pred.modality.int8_static, pred.pre, calibration)
            network.unlink()
            network = folder / "model.int8.onnx"
    if pred.encoder is not None:
        progress(0.6, "Writing the pretrained encoder the partner reads as ONNX")
        encoder = export_network(pred.encoder, names, pred.pre, sample, folder / "encoder.onnx",
                                 pred.modality.onnx_axes(), features=True)
    if pred.partner is not None:
        save_partner(pred.partner, ModelFolder(folder).partner_dir)
    if not pred.modality.file_inputs:
        pred.pre.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    spec = _spec(pred, network and network.name, encoder and encoder.name, input_col)
    atomic_write_json(folder / "predictor.json", spec)
    shutil.copyfile(portable.__file__, folder / "predict.py")
    (folder / "requirements.txt").write_text(_requirements(pred, bool(network or encoder)), encoding="utf-8")
    return spec


def load_exported(folder: Path):
    """The export's own predict.py, imported from its folder (not the studio's copy): what a user runs."""
    spec = importlib.util.spec_from_file_location(f"exported_predict_{abs(hash(str(folder)))}", folder / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ExportedModel(folder)


def _hits(pred: Predictor, out: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per row: the prediction from these outputs is the target (a class, or the whole set of labels)."""
    got = pred.task.point(out, pred.meta)
    return (np.asarray(got).reshape(len(got), -1) == np.asarray(target).reshape(len(target), -1)).all(1)


def parity(pred: Predictor, folder: Path, items: list[Any], truth: np.ndarray | None, fmt: str) -> dict[str, Any]:
    """The exported predict.py against the studio's predictor on the same inputs: labels and probabilities."""
    exported = load_exported(folder)
    t_ref, (ref, ref_err) = timed(pred.predict, items)
    t_exp, (got, got_err) = timed(exported.predict, items)
    ok = np.array([a is None and b is None for a, b in zip(ref_err, got_err)])
    ref, got = ref[ok], got[ok]
    parts = [p for p, used in (("network", pred.model is not None), ("partner", pred.partner is not None)) if used]
    out: dict[str, Any] = {
        "compared": f"the exported predict.py against `finetune-studio predict` (the studio's predictor) on "
                    f"{int(ok.sum())} test row(s) of the run; parts: {' + '.join(parts)}"
                    + (f" at network weight {pred.network_weight:.2f}" if len(parts) == 2 else ""),
        "rows": int(ok.sum()), "parts": parts, "max_abs_diff": float(np.abs(got - ref).max()) if len(ref) else 0.0,
        "seconds": round(t_exp, 4), "studio_seconds": round(t_ref, 4)}
    if pred.task.has_classes:
        same = _hits(pred, ref, pred.task.point(got, pred.meta))
        out.update(same_label=int(same.sum()), agreement=float(same.mean()) if len(same) else 1.0)
        if truth is not None:
            out["accuracy"] = float(_hits(pred, got, truth[ok]).mean())
            out["studio_accuracy"] = float(_hits(pred, ref, truth[ok]).mean())
            out["accuracy_change_points"] = round((out["accuracy"] - out["studio_accuracy"]) * 100, 2)
    if fmt != "int8" and (out["max_abs_diff"] > PARITY_ATOL or out.get("same_label", out["rows"]) < out["rows"]):
        raise RunError(f"The export does not predict as the studio does ({out['max_abs_diff']:.2g} apart, "
                       f"{out.get('same_label', out['rows'])} of {out['rows']} labels the same); it was not "
                       "written.")
    return out


def _test_rows(run: RunFolder, pred: Predictor) -> tuple[list[Any], np.ndarray | None]:
    p = run.test_predictions
    if not p.is_file():
        raise RunError(f"{run.id} has no test predictions to check the export against.")
    tests = pd.read_parquet(p)
    col = "file" if pred.modality.file_inputs else "input"
    if col not in tests.columns:
        raise RunError(f"{run.id} was trained by an older version that did not keep its test inputs; train it "
                       "again to export ONNX.")
    truth = pred.task.targets_from_meta(tests["true"].tolist(), pred.meta).truth if pred.task.has_classes else None
    return tests[col].tolist(), truth


def _labelled_rows(run: RunFolder, datasets, pred: Predictor, cap: int = 2000
                   ) -> tuple[list[Any], np.ndarray] | None:
    """Up to `cap` labelled inputs of the run's own dataset (all splits): INT8 changes a prediction only near a
    decision boundary, so a 40-example test set cannot resolve a change under 2.5 points; hundreds can."""
    ds = datasets.find(run.status.get("dataset")) if datasets is not None else None
    if ds is None or not pred.task.has_classes:
        return None
    labels = pred.task.read_labels(ds.items["label"].tolist(), pred.meta.get("label_sep"))
    known = set(pred.classes)
    keep = np.flatnonzero([pred.task.label_names([y]) <= known for y in labels])
    if len(keep) > cap:
        keep = np.sort(np.random.default_rng(0).choice(keep, cap, replace=False))
    inputs = ds.inputs()
    return [inputs[i] for i in keep], pred.task.targets_from_meta([labels[i] for i in keep], pred.meta).truth


def _portable(run: RunFolder, tmp: Path, fmt: str, datasets, progress: Progress) -> dict[str, Any]:
    pred = Predictor(run.dir)
    items, truth = _test_rows(run, pred)
    wide = _labelled_rows(run, datasets, pred)
    held_out = set(map(str, items))
    calibration = [x for x in (wide[0] if wide else []) if str(x) not in held_out][:64]  # never the checked rows
    ds = datasets.find(run.status.get("dataset")) if datasets is not None else None
    input_col = (ds.manifest.get("columns") or {}).get("input") if ds is not None else None
    spec = write_portable(pred, tmp, fmt, items[:2], calibration, input_col or pred.modality.input_col, progress)
    progress(0.8, "Checking the export against the studio's predictor")
    report: dict[str, Any] = {"parity": parity(pred, tmp, items, truth, fmt), "predictor": spec["describe"]}
    if fmt == "int8":
        report["int8"] = {"calibration": f"static, {len(calibration)} training inputs" if
                          pred.modality.int8_static and calibration else "dynamic (activation ranges per batch)"}
        if wide is not None:
            exported = load_exported(tmp)
            a32 = float(_hits(pred, pred.predict(wide[0])[0], wide[1]).mean())
            a8 = float(_hits(pred, exported.predict(wide[0])[0], wide[1]).mean())
            report["int8"]["all_rows"] = {"checked_on": len(wide[1]), "fp32_accuracy": a32, "int8_accuracy": a8,
                                          "accuracy_change_points": round((a8 - a32) * 100, 2)}
        p = report["parity"]
        if p.get("agreement", 1.0) < 0.98:
            report["int8"]["warning"] = (f"INT8 changed {p['rows'] - p['same_label']} of {p['rows']} test "
                                         "predictions: use the onnx export for this run, or check the INT8 model "
                                         "on more of your data first.")
    return report


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def export(run_dir: str | Path, out: str | Path, fmt: str = "folder", datasets=None, force: bool = False,
           progress: Progress | None = None) -> dict[str, Any]:
    """datasets: the run's DatasetStore, when at hand: the model card describes the data, and the INT8 check
    reads the whole dataset."""
    progress = progress or (lambda f, m: None)
    if fmt not in FORMATS:
        raise RunError(f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    run, out = RunFolder(run_dir), Path(out)
    check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out.parent, f".{out.name}.")
    try:
        progress(0.0, "Writing the model")
        report: dict[str, Any] = {"format": fmt, "out": str(out)}
        if fmt == "folder":
            report["hf"] = export_folder(run.dir, tmp)[1]
        else:
            report.update(_portable(run, tmp, fmt, datasets, progress))
        (tmp / "README.md").write_text(model_card(run, datasets, fmt, report), encoding="utf-8")
        (report.get("hf") or {}).pop("readme", None)  # in the model card now
        report["files"] = sorted(p.name for p in tmp.iterdir())
        report["size_mb"] = round(folder_size(tmp) / 2**20, 2)
        atomic_write_json(tmp / "export_report.json", report)
        check_target(out, force)  # nothing appeared there meanwhile
        atomic_replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(1.0, "Export ready")
    return report
