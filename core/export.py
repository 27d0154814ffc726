"""Export a run: a self-contained folder (safetensors, LoRA merged), ONNX checked against PyTorch with
onnxruntime on the run's own test inputs, and dynamic INT8 for CPU with its size/speed/accuracy cost."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import RunError
from .predict import Predictor

FORMATS = ("folder", "onnx", "int8")


def export_folder(run_dir: str | Path, out: str | Path) -> tuple[Path, dict[str, Any]]:
    """A self-contained folder: model.safetensors (LoRA merged), labels, config and a README; for a text model
    pooled the transformers way, also hf/, which AutoModelForSequenceClassification loads as is.
    Returns the folder and what happened to hf/."""
    from safetensors.torch import save_model

    pred = Predictor(run_dir)
    model = pred.model
    if pred.cfg.train.strategy == "lora":
        from peft.tuners.lora import LoraLayer

        for m in model.modules():
            if isinstance(m, LoraLayer):
                m.merge()
        _unwrap_lora(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / "model.safetensors"))
    cfg = pred.cfg.to_dict()
    cfg["train"]["strategy"] = "full" if cfg["train"]["strategy"] == "lora" else cfg["train"]["strategy"]
    (out / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    (out / "labels.json").write_text(json.dumps({"classes": pred.classes, "modality": pred.modality,
                                                 "backbone": pred.spec.name}, indent=2), encoding="utf-8")
    (out / "README.md").write_text(_EXPORT_README.format(backbone=pred.spec.name, classes=", ".join(pred.classes),
                                                         kind="texts" if pred.modality == "text" else "image paths",
                                                         fn="predict_texts" if pred.modality == "text" else "predict_images",
                                                         example='["an example"]' if pred.modality == "text" else '["photo.jpg"]'),
                                   encoding="utf-8")
    if pred.partner is not None:  # a blended run's linear partner travels with it
        import shutil

        from .blend import FOLDER

        shutil.copytree(Path(run_dir) / FOLDER, out / FOLDER, dirs_exist_ok=True)
        shutil.copyfile(Path(run_dir) / "blend.json", out / "blend.json")
    hf = _try_hf(pred, out)
    if hf.get("written"):
        with open(out / "README.md", "a", encoding="utf-8") as f:
            f.write(_HF_README.format(diff=hf["max_abs_logit_diff"]))
    return out, hf


def _try_hf(pred: Predictor, out: Path) -> dict[str, Any]:
    if pred.modality != "text":
        return {"written": False, "why": "image models export as this folder and ONNX"}
    if pred.cfg.train.pooling != "cls":
        return {"written": False, "why": "this run mean-pools token vectors, which AutoModelForSequenceClassification "
                                         "cannot express; train with pooling 'cls' for a transformers folder"}
    try:
        diff = export_hf(pred, out / "hf")
    except RunError as e:
        return {"written": False, "why": str(e)}
    return {"written": True, "folder": "hf", "max_abs_logit_diff": diff}


def export_hf(pred: Predictor, out: Path, atol: float = 1e-4) -> float:
    """save_pretrained of the model's own *ForSequenceClassification class, carrying the fine-tuned encoder and
    head; checked against the studio model on real texts. Returns the largest logit difference."""
    from transformers import AutoModelForSequenceClassification

    from .backbones import tokenizer_for

    enc = pred.model.encoder.model
    config = enc.config.__class__.from_dict(enc.config.to_dict())
    config.num_labels = len(pred.classes)
    config.id2label = dict(enumerate(pred.classes))
    config.label2id = {c: i for i, c in enumerate(pred.classes)}
    config.architectures = None
    hf = AutoModelForSequenceClassification.from_config(config)
    base, head = getattr(hf, hf.base_model_prefix, None), getattr(hf, "classifier", None)
    if base is None or not isinstance(head, torch.nn.Linear) or getattr(base, "pooler", None) is None:
        raise RunError(f"{config.model_type}: its sequence-classification head is not one Linear on the pooled "
                       "output, so it cannot carry this model as is; use this folder or ONNX instead")
    base.load_state_dict(enc.state_dict(), strict=True)
    head.load_state_dict(pred.model.head[-1].state_dict())
    hf.eval()
    texts = ["A first check sentence.", "Another, somewhat longer sentence to compare the two models on."]
    batch = tokenizer_for(pred.spec)(texts, padding=True, truncation=True, max_length=pred.cfg.train.max_length,
                                     return_tensors="pt")
    with torch.no_grad():
        diff = float((hf(**batch).logits - pred.model(input_ids=batch["input_ids"],
                                                       attention_mask=batch["attention_mask"])).abs().max())
    if diff > atol:
        raise RunError(f"the transformers model differs from the studio model by {diff:.2g} in the logits; "
                       "hf/ was not written")
    hf.save_pretrained(out, safe_serialization=True)
    tokenizer_for(pred.spec).save_pretrained(out)
    return diff


def _unwrap_lora(model: torch.nn.Module) -> None:
    """Replace merged LoRA wrappers with their plain base layers."""
    from peft.tuners.lora import LoraLayer

    for name, m in list(model.named_modules()):
        if isinstance(m, LoraLayer):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], m.get_base_layer())


_EXPORT_README = """# Exported classifier

Backbone: {backbone}. Classes: {classes}.

```python
from core.predict import Predictor
p = Predictor("path/to/this/folder")
out = p.{fn}({example})          # a list of {kind}
print(out)                          # class probabilities, columns in the order of p.classes
```
"""


_HF_README = """
## With transformers only

`hf/` is a standard folder (logits match this model to {diff:.1e}):

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained("hf")
model = AutoModelForSequenceClassification.from_pretrained("hf").eval()
logits = model(**tok(["an example"], return_tensors="pt", padding=True, truncation=True)).logits
print(model.config.id2label[int(logits.argmax(-1)[0])])
```
"""


class _Logits(torch.nn.Module):
    """Positional inputs for the ONNX graph."""

    def __init__(self, model: torch.nn.Module, modality: str):
        super().__init__()
        self.model, self.modality = model, modality

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        if self.modality == "image":
            return self.model(pixel_values=x[0])
        return self.model(input_ids=x[0], attention_mask=x[1])


def _inputs(pred: Predictor, items: list[str]) -> dict[str, np.ndarray]:
    """Model-ready arrays for real inputs (texts, or image paths)."""
    if pred.modality == "text":
        from .backbones import tokenizer_for

        enc = tokenizer_for(pred.spec)(items, truncation=True, max_length=pred.cfg.train.max_length, padding=True,
                                       return_tensors="np")
        return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
    from .batches import square_crop
    from .images import open_rgb

    x = torch.stack([square_crop(open_rgb(p), pred.size) for p in items]).float() / 255
    return {"pixel_values": ((x - pred.mean) / pred.std).numpy()}


def _test_items(run_dir: Path) -> pd.DataFrame:
    p = run_dir / "eval" / "test_predictions.parquet"
    if not p.is_file():
        raise RunError(f"{run_dir.name} has no test predictions to check the export against.")
    return pd.read_parquet(p)


def export_onnx(pred: Predictor, out: Path, sample: dict[str, np.ndarray]) -> Path:
    names = list(sample)
    wrapper = _Logits(pred.model, pred.modality).eval()
    args = tuple(torch.from_numpy(sample[n][:2]) for n in names)
    axes = {n: ({0: "batch"} if n == "pixel_values" else {0: "batch", 1: "tokens"}) for n in names}
    path = out / "model.onnx"
    torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["logits"],
                      dynamic_axes={**axes, "logits": {0: "batch"}}, dynamo=False, opset_version=17)
    return path


def _ort_logits(path: Path, feed: dict[str, np.ndarray], batch: int = 64) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n = len(next(iter(feed.values())))
    return np.concatenate([sess.run(None, {k: v[i:i + batch] for k, v in feed.items()})[0] for i in range(0, n, batch)])


def _torch_logits(pred: Predictor, feed: dict[str, np.ndarray], batch: int = 64) -> np.ndarray:
    w = _Logits(pred.model, pred.modality).eval()
    names = list(feed)
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
    from .store import RunRecord

    ds = datasets.find(RunRecord(run_dir.name, run_dir).status.get("dataset")) if datasets is not None else None
    if ds is None:
        return None
    items = ds.items[ds.items["label"].isin(pred.classes)]
    items = items.sample(n=min(cap, len(items)), random_state=0) if len(items) > cap else items
    inputs = items["text"].tolist() if pred.modality == "text" else \
        [str(ds.dir.parent / p) for p in items["path"]]
    return inputs, items["label"].map({c: i for i, c in enumerate(pred.classes)}).to_numpy()


def export(run_dir: str | Path, out: str | Path, fmt: str = "folder", datasets=None) -> dict[str, Any]:
    """datasets: the run's DatasetStore, when at hand, lets the INT8 check use the whole dataset."""
    if fmt not in FORMATS:
        raise RunError(f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    run_dir, out = Path(run_dir), Path(out)
    folder, hf = export_folder(run_dir, out)
    report: dict[str, Any] = {"format": fmt, "out": str(folder), "files": [], "hf": hf}
    blend = json.loads((folder / "blend.json").read_text()) if (folder / "blend.json").is_file() else None
    if blend and blend["network_weight"] < 1:
        report["blend"] = {"network_weight": blend["network_weight"],
                           "note": "ONNX, INT8 and hf/ carry the network alone; its linear partner is in partner/, "
                                   "applied by core.predict.Predictor"}
    if fmt != "folder":
        pred = Predictor(folder)
        tests = _test_items(run_dir)
        col = "input" if pred.modality == "text" else "file"
        if col not in tests.columns:
            raise RunError(f"{run_dir.name} was trained by an older version that did not keep its test inputs; "
                           "train it again to export ONNX.")
        items = tests[col].tolist()
        feed = _inputs(pred, items)
        onnx_path = export_onnx(pred, folder, feed)
        t_torch, ref = _timed(_torch_logits, pred, feed)
        t_onnx, got = _timed(_ort_logits, onnx_path, feed)
        y = tests["true"].map({c: i for i, c in enumerate(pred.classes)}).to_numpy()
        acc = float((ref.argmax(1) == y).mean())
        report["onnx"] = {"file": onnx_path.name, "max_abs_logit_diff": float(np.abs(got - ref).max()),
                          "checked_on": len(items), "size_mb": round(onnx_path.stat().st_size / 2**20, 2),
                          "seconds": round(t_onnx, 4), "torch_seconds": round(t_torch, 4), "accuracy": acc}
        if fmt == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q_path = folder / "model.int8.onnx"
            # Dynamic INT8 pays off on MatMul-heavy transformers; on CNNs onnxruntime's ConvInteger is slower than
            # fp32, so only their Linear layers are quantised.
            ops = ["MatMul", "Gemm"] if pred.modality == "image" else None
            quantize_dynamic(str(onnx_path), str(q_path), weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                             per_channel=True)  # one scale per output channel: the accuracy loss, not the size, shrinks
            t_q, q = _timed(_ort_logits, q_path, feed)
            q_acc = float((q.argmax(1) == y).mean())
            report["int8"] = {"file": q_path.name, "size_mb": round(q_path.stat().st_size / 2**20, 2),
                              "size_ratio": round(q_path.stat().st_size / onnx_path.stat().st_size, 3),
                              "seconds": round(t_q, 4), "speedup_vs_fp32_onnx": round(t_onnx / t_q, 2),
                              "accuracy": q_acc, "accuracy_change_points": round((q_acc - acc) * 100, 2),
                              # finer than accuracy on a small test set: how many predictions INT8 changed at all
                              "agreement_with_fp32": float((q.argmax(1) == ref.argmax(1)).mean()),
                              "max_abs_logit_diff": float(np.abs(q - ref).max())}
            wide = _labelled_rows(run_dir, datasets, pred)
            if wide is not None:
                feed_all = _inputs(pred, wide[0])
                a32 = float((_torch_logits(pred, feed_all).argmax(1) == wide[1]).mean())
                a8 = float((_ort_logits(q_path, feed_all).argmax(1) == wide[1]).mean())
                report["int8"]["all_rows"] = {"checked_on": len(wide[1]), "fp32_accuracy": a32, "int8_accuracy": a8,
                                              "accuracy_change_points": round((a8 - a32) * 100, 2)}
    report["files"] = sorted(p.name for p in folder.iterdir())
    (folder / "export_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report
