"""Images: decoded once to uint8 at the backbone's size (cached beside the dataset version), cropped and
normalised the same way for training, prediction, explanation and export."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..data.images import BadImage
from ..data.near import colours, image_near_pairs
from ..linear import standardisation
from ..portable import load_image
from ..predict.blend import fit_probe
from ..predict.explain import gradcam
from ..train.cache import pixels
from ..train.callbacks.mix import Mix
from .base import Inputs, LinearView, Modality


@dataclass
class ImagePrep:
    """The backbone's image preprocessing: a square centre crop at `size`, then (x/255 - mean) / std."""
    size: int
    mean: torch.Tensor  # [1, 3, 1, 1]
    std: torch.Tensor

    def load(self, src: Any) -> torch.Tensor:
        """uint8 [3, S, S] from a path, bytes or a PIL image; BadImage with a reason otherwise."""
        return torch.from_numpy(load_image(src, self.size))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float().div_(255) - self.mean) / self.std

    def batch(self, sources: list[Any]) -> tuple[dict[str, torch.Tensor] | None, list[int], list[str | None]]:
        """Model inputs for the readable sources, their positions, and a reason for each unreadable one."""
        tensors, ok, errors = [], [], [None] * len(sources)
        for i, src in enumerate(sources):
            try:
                tensors.append(self.load(src))
                ok.append(i)
            except BadImage as e:
                errors[i] = str(e)
        if not tensors:
            return None, ok, errors
        return {"pixel_values": self.normalise(torch.stack(tensors))}, ok, errors


def augment_images(x: torch.Tensor, r: torch.Tensor, flip: bool = True) -> torch.Tensor:
    """Random resized crop (scale 0.7-1) and, if `flip`, horizontal flip, per image, on uint8 tensors;
    r: [n, 4] uniform numbers drawn by the loop."""
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        scale = 0.7 + 0.3 * r[i, 0].item()
        ch, cw = max(8, int(h * scale ** 0.5)), max(8, int(w * scale ** 0.5))
        top = int(r[i, 1].item() * (h - ch))
        left = int(r[i, 2].item() * (w - cw))
        crop = x[i:i + 1, :, top:top + ch, left:left + cw].float()
        crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
        if flip and r[i, 3].item() < 0.5:
            crop = crop.flip(-1)
        out[i] = crop.round().clamp_(0, 255).to(torch.uint8)[0]
    return out


class ImageInputs(Inputs):
    mixable = True

    def __init__(self, store, prep: ImagePrep):
        self.store, self.prep = store, prep

    def __len__(self) -> int:
        return len(self.store)

    def draw(self, n, gen):
        return torch.rand((n, 4), generator=gen)

    def batch(self, idx, randoms=None, flip=True):
        x = torch.from_numpy(self.store.rows(idx.numpy() if hasattr(idx, "numpy") else idx))
        if randoms is not None:
            x = augment_images(x, randoms, flip)
        return {"pixel_values": self.prep.normalise(x)}

    def loader_workers(self, augment: bool) -> int:
        """Worker processes worth starting to read and augment batches beside the training process."""
        import os

        cores = os.cpu_count() or 1
        if cores < 2 or (self.store.in_memory and not augment):
            return 0
        return max(1, min(4, cores // 2))


class FeatureView(LinearView):
    """The pretrained backbone's features of every row, standardised by each model that reads them."""

    def __init__(self, features, name: str):
        self.features, self.name = features, name

    def baseline_matrices(self, train, test):
        mean, scale = standardisation(self.features[train])
        return (self.features[train] - mean) / scale, (self.features[test] - mean) / scale

    def suspect_matrix(self, rows, train):
        mean, scale = standardisation(self.features[rows])
        return (self.features[rows] - mean) / scale

    def partner(self, rows, y, n_classes, seed=0, like=None):
        return fit_probe(self.features[rows], y, n_classes)


class ImageModality(Modality):
    name = "image"
    noun = "image"
    input_col = "path"
    input_names = ("pixel_values",)
    default_backbone = "mobilenet_v2"
    upload_types = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff")
    mixable = True
    file_inputs = True
    readme_example = '["photo.jpg"]'
    readme_kind = "image paths, bytes or PIL images"
    # CNNs: static INT8 (QDQ) with activation ranges calibrated on training images; dynamic INT8 would quantise
    # only Linear layers (ConvInteger is slower than fp32 on CPU), i.e. nothing but the head
    int8_static = True

    key_col = "blob"
    partner_phrase = "on the pretrained features"

    def dataset_inputs(self, ds):
        import os

        base = str(ds.dir.parent) + os.sep  # joined as strings: a Path per row costs seconds at 100k rows
        return [p if os.path.isabs(p) else base + p for p in ds.items["path"]]

    def displays(self, items):
        shown = items["source"].fillna(items["path"]) if "source" in items else items["path"]
        return shown.astype(str).tolist()

    def duplicate_keys(self, items):
        return items["blob"].astype(str)

    def near_pairs(self, items, keys, rows):
        return image_near_pairs(items["phash"].to_numpy()[rows], colours=colours(items)[rows])

    def auto_picks(self, n_train, facts, has_classes):
        picks: dict[str, Any] = {"epochs": 12 if n_train < 1000 else 8 if n_train < 10_000 else 4}
        notes = []
        side = facts.get("image_side")
        if side and side <= 64:
            picks["image_size"] = 128  # upsampling tiny images to 224 costs 3x the time and helps nothing
            notes.append(f"small images ({side} px), so they are read at 128 px")
        if has_classes:
            picks["label_smoothing"] = 0.1  # as in torchvision's own training recipes; keeps a small fine-tune humble
            notes.append("label smoothing 0.1")
        return picks, notes

    def preprocessor(self, spec, t) -> ImagePrep:
        size = (t.image_size if t is not None else None) or spec.image_size
        return ImagePrep(size, torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1))

    def build_inputs(self, pre, items, cache, progress, t=None):
        return ImageInputs(pixels(items, pre, cache, progress), pre)

    def cache_file(self, ds_dir, pre):
        return ds_dir / "cache" / f"pixels-{pre.size}.u8"

    def augment_preview(self, items, spec, t, seed=0):
        mixing = t.mixup_alpha > 0 or t.cutmix_alpha > 0
        if not (t.augment or mixing):
            return None
        pre = self.preprocessor(spec, t)
        x = torch.stack([pre.load(i) for i in items])
        gen = torch.Generator().manual_seed(seed)
        if t.augment:
            x = augment_images(x, torch.rand((len(x), 4), generator=gen), t.hflip is not False)
        mirror = {True: " and mirroring", False: "",
                  None: " and mirroring (in training only if a probe finds mirroring keeps the class; decided when "
                        "the run starts)"}[t.hflip]
        note = "Random crops" + mirror if t.augment else "No crops"
        captions = ["augmented"] * len(x)
        if mixing:
            from types import SimpleNamespace

            torch.manual_seed(seed)
            # each image mixed with the next one here (in training: a random other row of its batch)
            batch = SimpleNamespace(inputs={"pixel_values": x.float()}, y=torch.zeros(len(x)),
                                    perm=torch.roll(torch.arange(len(x)), -1), gen=gen, mix=None)
            batch = Mix(t.mixup_alpha, t.cutmix_alpha, 1.0).on_batch(None, batch)
            perm, lam = batch.mix
            x = batch.inputs["pixel_values"].round().clamp(0, 255).to(torch.uint8)
            captions = [f"{lam:.0%} own, {1 - lam:.0%} #{int(j) + 1}" for j in perm]
            note += "; then MixUp/CutMix (shown on every batch here; in training on " + f"{t.mix_prob:.0%} of them)"
        return {"images": [(c, img.permute(1, 2, 0).numpy()) for c, img in zip(captions, x)],
                "note": note + ". Validation, test and predictions see the images as they are."}

    def feature_variant(self, pre, t) -> str:
        return f"{pre.size}px" + (f"-first{t.keep_layers}" if t.keep_layers else "")

    def auto_facts(self, ds, train_items):
        if "width" not in ds.items.columns:
            return {}
        return {"image_side": int(ds.items[["width", "height"]].min(axis=1).median())}

    def linear_view(self, data, features, blend=False):
        return FeatureView(features.pretrained(), f"{data.task.estimator} on pretrained features")

    def explain(self, pred, raw, target=None):
        return gradcam(pred, raw, target)

    def onnx_axes(self):
        return {"pixel_values": {0: "batch"}}


IMAGE = ImageModality()
