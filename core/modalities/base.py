"""What an input is: a modality owns the preprocessing shared by training, prediction, explanation and export
(kept with the backbone's own settings, as torchvision keeps transforms with weights), batching and augmentation,
the linear view its baseline fits on, its explainer, and its export input names."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ..portable import LinearPartner

if TYPE_CHECKING:
    from ..backbones import BackboneSpec

Progress = Callable[[float, str], None]


class Inputs:
    """All inputs of a run, addressable by row: batch(idx) gives the model's keyword arguments (CPU tensors)."""
    mixable = False  # MixUp/CutMix blend these batches

    def loader_workers(self, augment: bool) -> int:
        """Worker processes worth starting to build batches beside training (0: build them in-process)."""
        return 0

    def __len__(self) -> int:
        raise NotImplementedError

    def draw(self, n: int, gen: torch.Generator | None) -> torch.Tensor | None:
        """Random numbers for augmenting a batch of n (drawn in the loop's order, so runs replay exactly)."""
        return None

    def batch(self, idx: torch.Tensor, randoms: torch.Tensor | None = None, flip: bool = True) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class FeatureInputs(Inputs):
    """Cached features of a frozen backbone: the head trains on these directly."""

    def __init__(self, features: torch.Tensor):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, idx, randoms=None, flip=True):
        return {"features": self.features[idx]}


class LinearView:
    """The rows as the studio's linear models read them: texts (TF-IDF) and/or the pretrained encoder's features
    of every row. One view serves the baseline, the label check and the blend's partner, so all three fit the
    same kind of model on the same inputs."""
    name = ""  # the baseline in words, with the estimator: "TF-IDF + logistic regression"
    texts: list[str] | None = None
    features: np.ndarray | None = None  # pretrained features of every row

    def baseline_matrices(self, train: np.ndarray, test: np.ndarray):
        """(train rows, test rows) as the baseline's estimator reads them (fitted on the train rows)."""
        raise NotImplementedError

    def suspect_matrix(self, rows: np.ndarray, train: np.ndarray):
        """The rows the label check folds over."""
        raise NotImplementedError

    def partner(self, rows: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0,
                like: LinearPartner | None = None) -> LinearPartner:
        """The blend's linear partner, fitted on these rows; `like`: with the settings that partner chose."""
        raise NotImplementedError

    def inputs(self, rows: np.ndarray) -> tuple[list[str] | None, np.ndarray | None]:
        """What the partner reads of these rows: (texts, features)."""
        return (None if self.texts is None else [self.texts[i] for i in rows],
                None if self.features is None else self.features[rows])


class Modality:
    name = ""
    noun = ""  # "image" / "text": in messages
    input_col = ""  # the dataset column holding the input
    input_names: tuple[str, ...] = ()  # the model's keyword arguments, in ONNX order
    default_backbone = ""
    upload_types: tuple[str, ...] = ()  # file types of a single example on the Predict page
    mixable = False  # MixUp/CutMix and flips apply
    file_inputs = False  # inputs are files (kept as paths beside predictions)
    readme_example = ""  # a call in an export's README
    readme_kind = ""
    int8_static = False  # INT8 by calibrated static quantisation (True) or dynamic (weights only, ranges per batch)

    # --- the dataset side (no model needed)
    key_col = ""  # what makes two rows the same example (hashed into the version id)

    def dataset_inputs(self, ds) -> list[str]:
        """Texts, or absolute file paths, in row order."""
        raise NotImplementedError

    def displays(self, items) -> list[str]:
        """What a person sees for each row of an items table (column-wise: a row at a time through pandas
        takes seconds per 100k rows)."""
        raise NotImplementedError

    def duplicate_keys(self, items) -> Any:
        """Per row, a key that exact duplicates share (normalised text, file content)."""
        raise NotImplementedError

    def near_pairs(self, items, keys, rows: np.ndarray) -> np.ndarray:
        """Pairs (positions in rows) of near duplicates: MinHash for text, perceptual hash and colour for images."""
        raise NotImplementedError

    def auto_picks(self, n_train: int, facts: dict[str, Any], has_classes: bool) -> tuple[dict[str, Any], list[str]]:
        """What 'auto' sets for this kind of input (epochs, length or size, smoothing) and why, in words."""
        raise NotImplementedError

    partner_phrase = ""  # "on TF-IDF": what the blend's linear partner reads

    # --- the model side
    def preprocessor(self, spec: "BackboneSpec", t) -> Any:
        """Raw inputs (paths, bytes, PIL images / texts) to model tensors, with the backbone's settings and the
        run's overrides (image size, max length): the one place this is written."""
        raise NotImplementedError

    def fit_to_backbone(self, spec: "BackboneSpec", t, reserved: int = 0) -> list[str]:
        """Settings the backbone cannot honour brought within its limits (t changed in place, so the resolved
        config says what ran), each change said in words. reserved: positions the strategy takes."""
        return []

    def build_inputs(self, pre: Any, items: list[str], cache: Path | None, progress: Progress | None,
                     t=None) -> Inputs:
        raise NotImplementedError

    def cache_file(self, ds_dir: Path, pre: Any) -> Path | None:
        """Where decoded inputs of a dataset version are kept between runs (None: not worth caching)."""
        return None

    def augment_preview(self, items: list[Any], spec, t, seed: int = 0) -> dict[str, Any] | None:
        """A few training examples as the loop would see them with these settings: {"table": rows} or
        {"images": [(caption, uint8 HxWx3)]}, with a "note"; None when nothing augments them."""
        return None

    def feature_variant(self, pre: Any, t) -> str:
        """What besides the backbone makes its features of a dataset differ (image size; text length and
        pooling): part of the feature cache's name."""
        raise NotImplementedError

    def auto_facts(self, ds, train_items: list[str]) -> dict[str, Any]:
        """What 'auto' reads about the inputs (text lengths, image side)."""
        return {}

    def linear_view(self, data, features, blend: bool = False) -> "LinearView":
        """What the studio's linear models read of this run's rows (the baseline and the label check; with
        blend, the blend's partner), made before any weight moves."""
        raise NotImplementedError

    def explain(self, pred, raw: Any, target: int | None = None) -> Any:
        raise NotImplementedError

    def extra_export(self, pred, out: Path) -> dict[str, Any]:
        """Anything an export folder carries beyond the studio's own format (a transformers folder for text)."""
        return {"written": False, "why": f"{self.noun} models export as this folder and ONNX"}

    def onnx_axes(self) -> dict[str, dict[int, str]]:
        raise NotImplementedError
