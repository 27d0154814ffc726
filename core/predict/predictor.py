"""Load a trained run (or an export of one) and predict new inputs in batches. Inputs are preprocessed exactly as
in training (the modality's preprocessor with the backbone's settings); unreadable ones get a reason, not a
score."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_model

from ..backbones import Classifier, get_backbone
from ..data.archives import inspect_zip
from ..data.images import is_image_name
from ..errors import DataError, ModelError, RunError
from ..modalities import get_modality
from ..runs.folder import ModelFolder
from ..strategies import get_strategy
from ..tasks import from_meta
from .blend import blend, load_partner


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: {what} is not valid JSON (line {e.lineno}: {e.msg}); export the run again.") from None
    except UnicodeDecodeError:
        raise ModelError(f"{path}: {what} is not a text file; export the run again.") from None
    if not isinstance(out, dict):
        raise ModelError(f"{path}: {what} should hold a JSON object; export the run again.")
    return out


class Predictor:
    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        folder = ModelFolder(run_dir)
        d, labels, ck = folder.dir, folder.labels_file, folder.weights
        if not d.is_dir():
            raise RunError(f"{d}: not a folder. Give an exported model folder or a run folder.")
        if not labels.is_file() or ck is None:
            raise RunError(f"{d.name} has no saved model yet (no {labels.name} and weights: it has not finished an "
                           "epoch, or this is not a run or export folder).")
        meta = _read_json(labels, labels.name)
        if not isinstance(meta.get("classes"), list):
            raise ModelError(f"{labels}: {labels.name} has no list of classes; export the run again.")
        self.cfg = folder.resolved_config  # what the plan chose: strategy, max length, ...
        self.meta, self.task = meta, from_meta(meta)
        self.classes: list[str] = meta["classes"]
        if meta.get("backbone") and self.cfg.train.backbone and meta["backbone"] != self.cfg.train.backbone:
            raise ModelError(f"{d}: {labels.name} says backbone {meta['backbone']!r} but {folder.config_file.name} "
                             f"{self.cfg.train.backbone!r}; the folder was altered. Export the run again.")
        self.spec = get_backbone(self.cfg.train.backbone or meta.get("backbone", ""))
        self.modality = get_modality(self.spec.modality)
        self.device = torch.device(device)
        self.model = self._load(ck)
        self.pre = self.modality.preprocessor(self.spec, self.cfg.train)
        self.size = getattr(self.pre, "size", None)
        # a blended run: the network's outputs averaged with its linear partner's (see core.predict.blend)
        blend_file = folder.blend_file
        self.network_weight = float(_read_json(blend_file, blend_file.name).get("network_weight", 1.0)) \
            if blend_file.is_file() else 1.0
        self.partner = load_partner(folder.partner_dir) if self.network_weight < 1.0 else None
        self.pretrained = None
        if self.partner is not None:
            self.pretrained = self.modality.partner_encoder(self.spec, self.device, self.partner)
            if hasattr(self.pretrained, "pooling"):  # pooled as the run's own encoder was when the plan read it
                self.pretrained.pooling = self.cfg.train.pooling

    def _load(self, ck: Path) -> Classifier:
        n = self.task.out_dim(self.task.targets_from_meta([], self.meta))
        model: Classifier = self.spec.build(n, pooling=self.cfg.train.pooling,
                                               keep_layers=self.cfg.train.keep_layers)
        get_strategy(self.cfg.train.strategy).prepare(model, self.cfg.train, self.modality.name)  # same structure
        try:
            load_model(model, str(ck), strict=True)
        except RuntimeError as e:
            msg = str(e)
            if "size mismatch" in msg and "head" in msg:
                raise ModelError(f"{ck}: the model's head does not have {n} outputs, as labels.json says; the folder "
                                 "was altered or mixed with another export. Export the run again.") from None
            raise ModelError(f"{ck}: the weights do not fit backbone {self.spec.name} as config.json describes it "
                             f"({msg.splitlines()[0][:160]}). Export the run again.") from None
        except Exception as e:  # safetensors raises its own error types for a damaged file
            raise ModelError(f"{ck}: the weights file is damaged or incomplete ({type(e).__name__}: "
                             f"{str(e)[:160]}). Copy or export it again.") from None
        return model.to(self.device).eval()

    @torch.no_grad()
    def _outputs(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        logits = self.model(**{k: v.to(self.device) for k, v in batch.items()})
        return self.task.outputs(logits, self.meta).float().cpu().numpy()

    def predict(self, items: list[Any], batch_size: int = 32) -> tuple[np.ndarray, list[str | None]]:
        """Outputs per item (class probabilities, or a value) and, for items that cannot be read, a reason
        (their outputs are NaN). Items: texts, or image paths, bytes or PIL images."""
        n_out = self.task.out_dim(self.task.targets_from_meta([], self.meta))
        out = np.full((len(items), n_out), np.nan)
        errors: list[str | None] = [None] * len(items)
        for s in range(0, len(items), batch_size):
            chunk = items[s:s + batch_size]
            batch, ok, errs = self.pre.batch(chunk)
            errors[s:s + len(chunk)] = errs
            if batch is None:
                continue
            rows = [s + i for i in ok]
            out[rows] = self._outputs(batch)
            if self.partner is not None:
                view = self.modality.partner_view(self, [chunk[i] for i in ok], batch)
                out[rows] = blend(out[rows], self.partner.predict_proba(view), self.network_weight)
        return out, errors

    def predict_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if self.modality.file_inputs:
            raise DataError(f"This model reads {self.modality.noun}s; give it {self.modality.noun}s, not texts.")
        return self.predict(list(texts), batch_size)[0]

    def predict_images(self, images: list[Any], batch_size: int = 32) -> tuple[np.ndarray, list[str | None]]:
        if not self.modality.file_inputs:
            raise DataError(f"This model reads {self.modality.noun}s; give it {self.modality.noun}s, not images.")
        return self.predict(list(images), batch_size)

    def table(self, names: list[str], out: np.ndarray, errors: list[str | None] | None = None) -> pd.DataFrame:
        """One row per input: the prediction, its confidence (classification), every output, and any error."""
        df = pd.DataFrame({"input": names, **self.task.prediction_table(out, self.meta)})
        df["error"] = [e or "" for e in (errors or [None] * len(names))]
        return df


def read_zip_images(data: bytes, max_files: int = 5000) -> list[tuple[str, bytes]]:
    """Image members of an uploaded zip, after the same safety inspection as dataset archives."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".zip") as f:
        f.write(data)
        f.flush()
        infos = inspect_zip(Path(f.name))
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out = [(i.filename, zf.read(i)) for i in infos if not i.is_dir() and is_image_name(i.filename)
                   and "__MACOSX" not in i.filename]
    if len(out) > max_files:
        raise DataError(f"The zip has {len(out):,} images; at most {max_files:,} per batch prediction.")
    return out


def formula_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Cells a spreadsheet would run as formulas get a leading apostrophe."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(lambda v: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v)
    return out


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    return formula_safe(df).to_csv(index=False).encode("utf-8")
