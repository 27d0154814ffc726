"""Networks as ONNX graphs (the fine-tuned network, or the untouched encoder whose features a blend's partner
reads) and INT8 quantisation of them."""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RunError


class _Graph(torch.nn.Module):
    """Positional inputs for the ONNX graph, in the modality's order; logits, or the encoder's pooled features."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...], features: bool):
        super().__init__()
        self.model, self.names, self.features = model, names, features

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        kw = dict(zip(self.names, x))
        return self.model.features(**kw) if self.features else self.model(**kw)


def feed(pre, items: list[Any]) -> dict[str, np.ndarray]:
    """Model-ready arrays for real inputs, preprocessed exactly as for prediction."""
    batch, _, errors = pre.batch(items)
    bad = [f"{items[i]}: {e}" for i, e in enumerate(errors) if e]
    if bad or batch is None:
        raise RunError(f"Cannot read the run's own inputs to export the model ({bad[0] if bad else 'none'}).")
    return {k: v.numpy() for k, v in batch.items()}


def export_network(model: torch.nn.Module, names: tuple[str, ...], pre, sample: list[Any], path: Path,
                   axes: dict[str, dict[int, str]], features: bool = False) -> Path:
    """The network (or, with features, the encoder's pooled features) traced on real inputs, batch and length
    left free."""
    model.eval()
    x = feed(pre, sample)
    out = "features" if features else "logits"
    torch.onnx.export(_Graph(model, names, features).eval(), tuple(torch.from_numpy(x[n]) for n in names), str(path),
                      input_names=list(names), output_names=[out], dynamic_axes={**axes, out: {0: "batch"}},
                      dynamo=False, opset_version=17)
    return path


def quantise(onnx_path: Path, q_path: Path, static: bool, pre, calibration: list[Any]) -> None:
    """INT8 weights with one scale per output channel. The head and the stem stay fp32, a tiny share of the size:
    a head solved on standardised features leans on low-variance features that 8-bit activations would erase, and
    an 8-bit input plus the first convolution lost 30 points of accuracy on the digit images (0.97 -> 0.67).
    static: activation ranges calibrated on training inputs (CNNs: dynamic INT8 would touch only the head)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    keep = [n.name for n in graph.node if n.name.startswith("/model/head/")] + stem(graph)
    with _quiet_root():  # onnxruntime advises on the root logger ("consider pre-processing") on every call
        _quantise(onnx_path, q_path, static, pre, calibration, keep)


COMPUTE = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def stem(graph) -> list[str]:
    """The first convolution reading the graph's image input and the element-wise nodes right after it (its
    activation): the layer that sees raw pixels. Text graphs start with a lookup, not a convolution: none."""
    done = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    first = next((n for n in graph.node if n.op_type in ("Conv", "ConvTranspose") and n.input[0] in done), None)
    if first is None:
        return []
    names, produced = [first.name], set(first.output)
    for n in graph.node:
        inputs = [i for i in n.input if i and i not in done]
        if n.op_type == "Constant":
            done.update(n.output)
        elif inputs and n.op_type not in COMPUTE and all(i in produced for i in inputs):
            names.append(n.name)
            produced.update(n.output)
    return names


@contextlib.contextmanager
def _quiet_root():
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(before)


def _quantise(onnx_path: Path, q_path: Path, static: bool, pre, calibration: list[Any], head: list[str]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if not static or not calibration:
        quantize_dynamic(str(onnx_path), str(q_path), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=head)
        return
    arrays = feed(pre, calibration)

    class Batches(CalibrationDataReader):
        def __init__(self):
            n = len(next(iter(arrays.values())))
            n = n // 8 * 8 or n  # equal batches: the percentile calibrator stacks them, a short last one breaks it
            self.it = iter([{k: v[i:i + 8] for k, v in arrays.items()} for i in range(0, n, 8)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(onnx_path), str(q_path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                    nodes_to_exclude=head)


def timed(fn, *a, repeat: int = 2) -> tuple[float, Any]:
    """(best seconds of a few calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*a)
        best = min(best, time.perf_counter() - t)
    return best, out
