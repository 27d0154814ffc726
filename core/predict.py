"""Load a trained run and predict new texts or images, in batches, with probabilities."""
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

from .backbones import Classifier, get_backbone, tokenizer_for
from .batches import square_crop
from .config import RESOLVED, RunConfig
from .errors import DataError, RunError
from .images import BadImage, open_rgb
from .blend import FOLDER as PARTNER
from .blend import blend, load_partner
from .strategies import get_strategy


class Predictor:
    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        d = Path(run_dir)
        labels = d / "labels.json"
        ck = next((p for p in (d / "model.safetensors", d / "checkpoints" / "best" / "model.safetensors",
                               d / "checkpoints" / "last" / "model.safetensors") if p.is_file()), None)
        if not labels.is_file() or ck is None:
            raise RunError(f"Run {d.name} has no saved model yet (it has not finished an epoch).")
        meta = json.loads(labels.read_text(encoding="utf-8"))
        resolved = d / RESOLVED  # what 'auto' chose: strategy, max length, ...
        self.cfg = RunConfig.load(resolved if resolved.is_file() else d / "config.json")
        self.classes: list[str] = meta["classes"]
        self.spec = get_backbone(self.cfg.train.backbone)
        self.modality = self.spec.modality
        model: Classifier = self.spec.build(len(self.classes), pooling=self.cfg.train.pooling)
        if self.cfg.train.strategy == "lora":  # same module structure as in training
            get_strategy("lora").prepare(model, self.cfg.train, self.modality)
        load_model(model, str(ck), strict=True)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.size = self.cfg.train.image_size or self.spec.image_size
        # a blended run: the network's probabilities averaged with its TF-IDF model's (see core.lexical)
        self.network_weight = json.loads((d / "blend.json").read_text())["network_weight"] \
            if (d / "blend.json").is_file() else 1.0
        self.partner = load_partner(d / PARTNER) if self.network_weight < 1.0 else None
        self.pretrained = None
        if self.partner is not None and self.modality == "image":  # the partner reads the untouched backbone
            self.pretrained = self.spec.build_encoder()[0].to(device).eval()
        self.mean = torch.tensor(self.spec.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(self.spec.std).view(1, 3, 1, 1)

    @torch.no_grad()
    def _probs(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        logits = self.model(**{k: v.to(self.device) for k, v in batch.items()})
        return torch.softmax(logits.float(), -1).cpu().numpy()

    def predict_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if self.modality != "text":
            raise DataError("This model classifies images; give it images.")
        tok = tokenizer_for(self.spec)
        out = []
        for s in range(0, len(texts), batch_size):
            enc = tok(texts[s:s + batch_size], truncation=True, max_length=self.cfg.train.max_length,
                      padding=True, return_tensors="pt")
            out.append(self._probs({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}))
        probs = np.concatenate(out) if out else np.zeros((0, len(self.classes)))
        if self.partner is not None and len(texts):
            probs = blend(probs, self.partner.predict_proba(list(texts)), self.network_weight)
        return probs

    def predict_images(self, images: list[Any], batch_size: int = 32) -> tuple[np.ndarray, list[str | None]]:
        """Paths, bytes or PIL images. Unreadable ones get NaN probabilities and a reason."""
        if self.modality != "image":
            raise DataError("This model classifies text; give it text.")
        probs = np.full((len(images), len(self.classes)), np.nan)
        errors: list[str | None] = [None] * len(images)
        for s in range(0, len(images), batch_size):
            tensors, ok = [], []
            for i in range(s, min(s + batch_size, len(images))):
                try:
                    img = images[i] if hasattr(images[i], "convert") else open_rgb(images[i])
                    tensors.append(square_crop(img.convert("RGB"), self.size))
                    ok.append(i)
                except BadImage as e:
                    errors[i] = str(e)
            if tensors:
                x = torch.stack(tensors).float().div_(255)
                x = (x - self.mean) / self.std
                probs[ok] = self._probs({"pixel_values": x})
                if self.partner is not None:
                    with torch.no_grad():
                        feats = self.pretrained(pixel_values=x.to(self.device)).float().cpu().numpy()
                    probs[ok] = blend(probs[ok], self.partner.predict_proba(feats), self.network_weight)
        return probs, errors

    def table(self, names: list[str], probs: np.ndarray, errors: list[str | None] | None = None) -> pd.DataFrame:
        ok = np.isfinite(probs).all(1)
        pred = [self.classes[int(i)] if good else "" for i, good in zip(np.nan_to_num(probs).argmax(1), ok)]
        conf = np.where(ok, np.nan_to_num(probs).max(1) if len(probs) else 0.0, np.nan)
        df = pd.DataFrame({"input": names, "prediction": pred, "confidence": conf})
        for j, c in enumerate(self.classes):
            df[f"p:{c}"] = probs[:, j]
        if errors is not None:
            df["error"] = [e or "" for e in errors]
        return df


def read_zip_images(data: bytes, max_files: int = 5000) -> list[tuple[str, bytes]]:
    """Image members of an uploaded zip, after the same safety inspection as dataset archives."""
    import tempfile

    from .archives import inspect_zip
    from .images import is_image_name

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
