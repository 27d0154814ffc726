"""The one predictor of a run: its preprocessing, the network, the linear partner and the network's share in the
blend, and the task's outputs. The test evaluation, the Evaluate and Predict pages, batch prediction,
`finetune-studio predict` and `serve`, the report, the explanations and every export use this object; nothing
computes a prediction its own way. Each part is loaded only where it has a share: a run whose blend gives the
network weight 0 predicts from its partner alone and needs no network weights. Inputs are preprocessed exactly
as in training; unreadable ones get a reason, not a score."""
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

from ..backbones import BackboneSpec, Classifier, get_backbone
from ..config import RunConfig
from ..data.archives import inspect_zip
from ..data.images import is_image_name
from ..errors import DataError, ModelError, RunError
from ..modalities import get_modality
from ..portable import LinearPartner, blend, outputs
from ..runs.folder import ModelFolder
from ..strategies import get_strategy
from ..tasks import Task, from_meta
from .blend import describe_partner, load_partner


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


def pristine(spec: BackboneSpec, t, n_out: int, device: torch.device) -> Classifier:
    """The backbone as the run built it before any strategy touched it (its pooling and kept layers): what the
    partner's 'pretrained features' are read from, in training and at prediction alike. The global random state
    is left as it was (building draws a head)."""
    with torch.random.fork_rng(devices=[]):
        model = spec.build(n_out, pooling=t.pooling, keep_layers=t.keep_layers)
    return model.to(device).eval()


class Predictor:
    def __init__(self, folder: str | Path, device: str = "cpu"):
        """A run folder or an exported model folder."""
        mf = ModelFolder(folder)
        if not mf.dir.is_dir():
            raise RunError(f"{mf.dir}: not a folder. Give an exported model folder or a run folder.")
        labels = mf.labels_file
        if not labels.is_file():
            raise RunError(f"{mf.dir.name} has no saved model yet (no {labels.name}: it has not finished planning, "
                           "or this is not a run or export folder).")
        meta = _read_json(labels, labels.name)
        if not isinstance(meta.get("classes"), list):
            raise ModelError(f"{labels}: {labels.name} has no list of classes; export the run again.")
        cfg = mf.resolved_config  # what the plan chose: strategy, max length, ...
        if meta.get("backbone") and cfg.train.backbone and meta["backbone"] != cfg.train.backbone:
            raise ModelError(f"{mf.dir}: {labels.name} says backbone {meta['backbone']!r} but "
                             f"{mf.config_file.name} {cfg.train.backbone!r}; the folder was altered. Export the run "
                             "again.")
        blend_info = _read_json(mf.blend_file, mf.blend_file.name) if mf.blend_file.is_file() else {}
        weight = float(blend_info.get("network_weight", 1.0))
        partner = None
        if weight < 1.0:
            if not (mf.partner_dir / "partner.json").is_file():
                raise ModelError(f"{mf.dir}: {mf.blend_file.name} gives the network {weight:.0%} of each prediction "
                                 f"but {mf.partner_dir.name}/ is missing; export the run again.")
            partner = load_partner(mf.partner_dir)
        self._assemble(get_backbone(cfg.train.backbone or meta.get("backbone", "")), cfg, meta, None, partner,
                       weight, torch.device(device), blend_info.get("partner"))
        if weight > 0:
            if mf.weights is None:
                raise RunError(f"{mf.dir.name} has no saved weights yet (it has not finished an epoch).")
            self.model = self._load(mf.weights)

    @classmethod
    def assemble(cls, spec: BackboneSpec, cfg: RunConfig, meta: dict[str, Any], model: Classifier | None,
                 partner: LinearPartner | None, weight: float, device: torch.device,
                 partner_name: str | None = None) -> "Predictor":
        """A predictor from parts in memory: a run's test evaluation uses the model it has just trained."""
        self = cls.__new__(cls)
        self._assemble(spec, cfg, meta, model, partner, weight, device, partner_name)
        return self

    def _assemble(self, spec, cfg, meta, model, partner, weight, device, partner_name) -> None:
        self.spec, self.cfg, self.meta = spec, cfg, meta
        self.task: Task = from_meta(meta)
        self.classes: list[str] = meta["classes"]
        self.modality = get_modality(spec.modality)
        self.device = device
        self.network_weight = weight if partner is not None else 1.0
        self.partner = partner if self.network_weight < 1.0 else None
        self.partner_name = partner_name or (describe_partner(partner, self.task.estimator) if partner else None)
        self.model = model.eval() if model is not None and self.network_weight > 0 else None
        self.pre = self.modality.preprocessor(spec, cfg.train)
        self.size = getattr(self.pre, "size", None)
        self._encoder: Classifier | None = None

    @property
    def n_out(self) -> int:
        return self.task.out_dim(self.task.targets_from_meta([], self.meta))

    @property
    def labels(self) -> dict[str, Any]:
        """What the portable outputs read: task, classes and (regression) the target scale."""
        return {**self.meta, "task": self.task.name}

    def _load(self, ck: Path) -> Classifier:
        n = self.n_out
        model: Classifier = self.spec.build(n, pooling=self.cfg.train.pooling, keep_layers=self.cfg.train.keep_layers)
        get_strategy(self.cfg.train.strategy).prepare(model, self.cfg.train, self.modality.name)  # same structure
        try:
            load_model(model, str(ck), strict=True)
        except RuntimeError as e:
            msg = str(e)
            if "size mismatch" in msg and "head" in msg:
                raise ModelError(f"{ck}: the model's head does not have {n} outputs, as the labels say; the folder "
                                 "was altered or mixed with another export. Export the run again.") from None
            raise ModelError(f"{ck}: the weights do not fit backbone {self.spec.name} as the config describes it "
                             f"({msg.splitlines()[0][:160]}). Export the run again.") from None
        except Exception as e:  # safetensors raises its own error types for a damaged file
            raise ModelError(f"{ck}: the weights file is damaged or incomplete ({type(e).__name__}: "
                             f"{str(e)[:160]}). Copy or export it again.") from None
        return model.to(self.device).eval()

    # ------------------------------------------------------------------ the parts
    @property
    def encoder(self) -> Classifier | None:
        """The untouched backbone whose features the partner reads (None when the partner reads none)."""
        if self.partner is None or not self.partner.needs_features:
            return None
        if self._encoder is None:
            self._encoder = pristine(self.spec, self.cfg.train, self.n_out, self.device)
        return self._encoder

    @torch.no_grad()
    def network_outputs(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        logits = self.model(**{k: v.to(self.device) for k, v in batch.items()})
        return outputs(logits.float().cpu().numpy(), self.labels)

    @torch.no_grad()
    def partner_outputs(self, items: list[Any], batch: dict[str, torch.Tensor],
                        features: np.ndarray | None = None) -> np.ndarray:
        if features is None and self.encoder is not None:
            features = self.encoder.features(**{k: v.to(self.device) for k, v in batch.items()}).float().cpu().numpy()
        return self.partner.predict(list(items) if self.partner.tfidf else None, features)

    def predict(self, items: list[Any], batch_size: int = 32, features: np.ndarray | None = None,
                parts: bool = False) -> tuple[np.ndarray, list[str | None]] | dict[str, Any]:
        """Outputs per item (class probabilities, or a value) and, for items that cannot be read, a reason (their
        outputs are NaN). Items: texts, or image paths, bytes or PIL images. features: the pretrained features of
        these items where already at hand (the partner reads them instead of running the backbone). parts: also
        return each part's own outputs (the network's and the partner's) with the network's share."""
        out = np.full((len(items), self.n_out), np.nan)
        net_all = np.full_like(out, np.nan) if parts and self.model is not None else None
        part_all = np.full_like(out, np.nan) if parts and self.partner is not None else None
        errors: list[str | None] = [None] * len(items)
        for s in range(0, len(items), batch_size):
            chunk = items[s:s + batch_size]
            batch, ok, errs = self.pre.batch(chunk)
            errors[s:s + len(chunk)] = errs
            if batch is None:
                continue
            rows = [s + i for i in ok]
            net = self.network_outputs(batch) if self.model is not None else None
            part = None
            if self.partner is not None:
                part = self.partner_outputs([chunk[i] for i in ok], batch,
                                            None if features is None else features[rows])
            out[rows] = blend(net, part, self.network_weight)
            if net_all is not None:
                net_all[rows] = net
            if part_all is not None:
                part_all[rows] = part
        if parts:
            return {"outputs": out, "errors": errors, "network": net_all, "partner": part_all,
                    "network_weight": self.network_weight}
        return out, errors

    def predict_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if self.modality.file_inputs:
            raise DataError(f"This model reads {self.modality.noun}s; give it {self.modality.noun}s, not texts.")
        return self.predict(list(texts), batch_size)[0]

    def predict_images(self, images: list[Any], batch_size: int = 32) -> tuple[np.ndarray, list[str | None]]:
        if not self.modality.file_inputs:
            raise DataError(f"This model reads {self.modality.noun}s; give it {self.modality.noun}s, not images.")
        return self.predict(list(images), batch_size)

    # ------------------------------------------------------------------ in words
    def describe(self) -> dict[str, Any]:
        """What this predictor is, from what it holds: the network (backbone, strategy), the partner and the
        network's share of every prediction."""
        t = self.cfg.train
        strategy = get_strategy(t.strategy)
        network = f"{strategy.title.lower()} {self.spec.name}"
        if t.keep_layers:
            network += f" (first {t.keep_layers} layers)"
        w = self.network_weight
        if self.partner is None:
            sentence = f"The network ({network}) makes every prediction."
        elif w <= 0:
            sentence = (f"{self.partner_name[0].upper() + self.partner_name[1:]} makes every prediction; the "
                        f"network ({network}) was trained but the blend gave it no share.")
        else:
            sentence = (f"Each prediction blends the network ({network}, {w:.0%}) with {self.partner_name} "
                        f"({1 - w:.0%}).")
        if self.partner is None:
            title = network
        elif w <= 0:
            title = self.partner_name
        else:
            title = f"{network} blended with {self.partner_name}"
        return {"backbone": self.spec.name, "strategy": t.strategy, "network": network, "network_weight": w,
                "partner": self.partner_name if self.partner is not None else None, "sentence": sentence,
                "title": title[0].upper() + title[1:]}

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
            out[c] = out[c].map(lambda v: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r")
                                else v)
    return out


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    return formula_safe(df).to_csv(index=False).encode("utf-8")
