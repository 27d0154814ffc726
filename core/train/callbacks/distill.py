"""Knowledge distillation (Hinton et al. 2015): the student also learns the teacher's softened outputs. The
teacher — a finished run on the same data and split — predicts every training row once before the loop
(offline distillation: on the clean inputs, not each augmented copy); each step then adds
T² · KL(teacher_T ‖ student_T) to the usual loss, weighted by `distill_weight`."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...config import RunConfig
from ...errors import ConfigError
from ...predict.onnx import timed
from ...predict.predictor import Predictor
from ...runs.folder import RunFolder
from ..events import Callback

SPLIT_FIELDS = ("val_fraction", "test_fraction", "split_seed", "test_source", "text_col", "label_col")


def check_teacher(teacher: RunFolder, teacher_status: dict, data, cfg: RunConfig) -> RunConfig:
    """The teacher's config, once it is known to fit: finished, same dataset version and split (a teacher that
    trained on this run's test rows would leak their labels into the student), same classes."""
    name = teacher.id
    if teacher_status.get("status") != "completed":
        raise ConfigError(f"Teacher {name} is {teacher_status.get('status', 'unknown')}: pick a completed run.")
    if not data.task.has_classes:
        raise ConfigError("Distillation learns from a teacher's class probabilities; this is a regression run.")
    t_cfg = teacher.resolved_config
    if teacher_status.get("dataset") != data.ds.id:
        raise ConfigError(f"Teacher {name} was trained on dataset {teacher_status.get('dataset')}, this run uses "
                          f"{data.ds.id}: a teacher must share the data and split, or it may have seen this run's "
                          "test rows.")
    differ = [f for f in SPLIT_FIELDS if getattr(t_cfg.data, f) != getattr(cfg.data, f)]
    if differ:
        raise ConfigError(f"Teacher {name} split the data differently ({', '.join(differ)}): it may have trained on "
                          "this run's validation or test rows. Use the teacher's split settings.")
    if teacher_status.get("classes") != list(data.classes):
        raise ConfigError(f"Teacher {name} predicts classes {teacher_status.get('classes')}, this run has "
                          f"{list(data.classes)}.")
    return t_cfg


def teacher_log_probs(teacher: RunFolder, data, device: torch.device, progress) -> torch.Tensor:
    """Log-probabilities of the teacher (as it predicts, blend included) for every training row; other rows
    stay NaN and are never read."""
    pred = Predictor(teacher.dir, device=str(device))
    rows = data.idx("train").tolist()
    out = np.full((len(data.split), len(data.classes)), np.nan, dtype=np.float32)
    step = 256
    for s in range(0, len(rows), step):
        chunk = rows[s:s + step]
        probs, _ = pred.predict([data.files[i] for i in chunk])
        out[chunk] = np.log(np.clip(probs, 1e-8, 1.0))
        progress(min(1.0, (s + step) / len(rows)), f"Teacher {teacher.id} predicting training rows "
                                                    f"{min(s + step, len(rows)):,}/{len(rows):,}")
    return torch.from_numpy(out)


class Distill(Callback):
    def __init__(self, teacher: torch.Tensor, weight: float, temperature: float):
        self.teacher, self.weight, self.temperature = teacher, weight, temperature

    def on_loss(self, ctx, batch, logits, loss):
        if self.weight <= 0:
            return loss
        temp = self.temperature
        soft = (self.teacher[batch.idx] / temp).softmax(-1).to(logits.device)
        if batch.mix is not None:  # mixed inputs: the teacher's targets mixed by the same weight
            perm, lam = batch.mix
            soft = lam * soft + (1 - lam) * soft[perm.to(soft.device)]
        kl = F.kl_div(F.log_softmax(logits.float() / temp, -1), soft, reduction="batchmean") * temp * temp
        return (1 - self.weight) * loss + self.weight * kl


def compare(teacher: RunFolder, teacher_status: dict, student: RunFolder, student_test: dict | None, data,
            n: int = 64) -> dict:
    """Teacher and student side by side: test scores (same test rows), weights, file size, and prediction
    speed on this machine (the same test inputs, best of two passes)."""
    items = [data.files[i] for i in data.idx("test")[:n].tolist()] or [data.files[0]]
    out = {}
    for role, d, test in (("teacher", teacher, teacher_status.get("test")), ("student", student, student_test)):
        pred = Predictor(d.dir)
        ck = d.weights
        pred.predict(items[:4])  # warm-up
        best, _ = timed(pred.predict, items, repeat=2)
        out[role] = {"run": d.id, "backbone": pred.spec.name, "keep_layers": pred.cfg.train.keep_layers,
                     "params": int(sum(p.numel() for p in pred.model.parameters())),
                     "size_mb": round(ck.stat().st_size / 2**20, 2),
                     "ms_per_example": round(1000 * best / len(items), 3), **(test or {})}
    t, s = out["teacher"], out["student"]
    out["student_vs_teacher"] = {"params": round(s["params"] / t["params"], 3),
                                 "speedup": round(t["ms_per_example"] / max(s["ms_per_example"], 1e-9), 2)}
    return out


SCORES = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


def comparison_table(report: dict) -> list[dict]:
    """The teacher and the student as rows a person reads (Evaluate, the HTML report)."""
    rows = []
    for role in ("teacher", "student"):
        r = report[role]
        layers = f", first {r['keep_layers']} layers" if r.get("keep_layers") else ""
        rows.append({"model": f"{role}: {r['run']}", "backbone": f"{r['backbone']}{layers}",
                     "weights (M)": round(r["params"] / 1e6, 2), "file (MB)": r["size_mb"],
                     "ms per example here": r["ms_per_example"],
                     **{name: round(r[k], 3) for k, name in SCORES.items() if k in r}})
    return rows
