"""The backbone's features of a run's rows: the pretrained ones, computed once per dataset version, backbone and
preprocessing and kept beside the version (frozen heads, baselines, blends and the mirror probe all read them),
and the scikit-learn fits on them that later runs may read back instead of fitting again."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..data.rundata import RunData
from ..predict.predictor import pristine
from ..strategies import get_strategy
from .cache import code_key, content_key, feature_path, load_features, remembered, save_features

Progress = Callable[[float, str], None]


class Features:
    """model: the run's model before any step. Its features are the pretrained ones unless its strategy changes
    what the encoder computes from the start (prompt tuning's virtual tokens) or it starts from a parent run's
    weights: then an untouched copy of the backbone reads them, as the predictor's partner will
    (core.predict.predictor.pristine)."""

    def __init__(self, model, data: RunData, spec, t, device: torch.device, progress: Progress):
        s = get_strategy(t.strategy)
        # a continued run's model holds its parent's training: the pretrained features come from a fresh copy
        if s.changes_features or (t.init_from and not s.frozen_backbone):
            model = pristine(spec, t, data.task.out_dim(data.targets), device)
        self.model, self.data, self.spec, self.t, self.device, self.progress = model, data, spec, t, device, progress
        self._pretrained: np.ndarray | None = None
        self._key: str | None = None

    def of(self, idx: torch.Tensor, mirror: bool = False, note: str = "", model=None) -> np.ndarray:
        """The current encoder's pooled features of these rows (left-right mirrored if asked); model: another
        encoder than the one the pretrained features come from (a tuned one)."""
        model, inputs = model or self.model, self.data.inputs
        model.eval()
        feats = np.empty((len(idx), model.feat_dim), dtype=np.float32)
        done = 0
        with torch.no_grad():
            for s in range(0, len(idx), 64):
                b = idx[s:s + 64]
                batch = {k: v.to(self.device) for k, v in inputs.batch(b).items()}
                if mirror:
                    batch["pixel_values"] = batch["pixel_values"].flip(-1)
                feats[done:done + len(b)] = model.features(**batch).float().cpu().numpy()
                done += len(b)
                if note:
                    self.progress(done / len(idx), f"{note} {done:,}/{len(idx):,}")
        return feats

    @property
    def computed(self) -> np.ndarray | None:
        """The pretrained features if something has asked for them already (None: not computed)."""
        return self._pretrained

    def pretrained(self) -> np.ndarray:
        """Every row's features from the encoder before any training step, reused across runs of this version."""
        if self._pretrained is not None:
            return self._pretrained
        data, n = self.data, len(self.data.inputs)
        path = None
        if data.test_ds is None:  # rows of one dataset version: worth keeping
            pre = data.modality.preprocessor(self.spec, self.t)
            path = feature_path(data.ds.dir, self.spec.name, data.modality.feature_variant(pre, self.t))
            cached = load_features(path, n, self.model.feat_dim)
            if cached is not None:
                self.progress(1.0, f"Reusing {self.spec.name} features of {n:,} examples from an earlier run")
                self._pretrained = np.ascontiguousarray(cached)
                return self._pretrained
        self._pretrained = self.of(torch.arange(n), note="Computing backbone features")
        if path is not None:
            save_features(path, self._pretrained)
        return self._pretrained

    def remembered(self, name: str, view: Any, compute: Callable[[], dict[str, np.ndarray]], *key: Any,
                   code: tuple[Callable, ...] = ()) -> tuple[dict[str, np.ndarray], bool]:
        """compute()'s arrays, or those an earlier run computed from the same pretrained features, rows, labels
        and code (True). Fits on texts (TF-IDF: seconds) are computed every time."""
        reads = getattr(view, "features", view)  # a linear view, or an array of features
        if getattr(view, "texts", None) is not None or reads is None or reads is not self._pretrained \
                or self.data.test_ds is not None:
            return compute(), False
        if self._key is None:
            self._key = content_key(self._pretrained)
        folder = self.data.ds.dir / "cache" / "fits"
        return remembered(folder, name, content_key(self._key, code_key(*code), *key), compute)
