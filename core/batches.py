"""In-memory tensors for a run: images decoded and resized once (cached on disk), text tokenised once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .backbones import BackboneSpec, tokenizer_for
from .images import BadImage, open_rgb

Progress = Callable[[float, str], None]


def square_crop(img: Image.Image, size: int) -> torch.Tensor:
    """Shorter side to size, centre crop: uint8 [3, size, size]."""
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def decode_images(paths: list[str], size: int, progress: Progress | None = None) -> torch.Tensor:
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, p in enumerate(paths):
        try:
            out[i] = square_crop(open_rgb(p, draft=(size, size)), size)
        except BadImage:
            out[i] = 0
        if progress and (i % 200 == 0 or i == len(paths) - 1):
            progress((i + 1) / len(paths), f"Decoding images {i + 1:,}/{len(paths):,}")
    return out


def cached_images(paths: list[str], size: int, cache: Path | None, progress: Progress | None = None) -> torch.Tensor:
    if cache is not None and cache.is_file():
        t = torch.load(cache, weights_only=True)
        if t.shape[0] == len(paths) and t.shape[-1] == size:
            return t
    t = decode_images(paths, size, progress)
    if cache is not None:
        from .fsutil import atomic_write

        try:
            atomic_write(cache, lambda p: torch.save(t, p))
        except OSError:
            pass  # the cache is only a speed-up
    return t


@dataclass
class Inputs:
    """All inputs of one modality, addressable by row index."""
    modality: str
    pixels: torch.Tensor | None = None  # uint8 [N,3,S,S]
    ids: list[torch.Tensor] | None = None
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.pixels) if self.modality == "image" else len(self.ids)

    def batch(self, idx: torch.Tensor, augment: bool = False, gen: torch.Generator | None = None,
              flip: bool = True) -> dict[str, torch.Tensor]:
        if self.modality == "image":
            x = self.pixels[idx]
            if augment:
                x = augment_images(x, gen, flip)
            x = x.float().div_(255)
            return {"pixel_values": (x - self.mean) / self.std}
        seqs = [self.ids[i] for i in idx.tolist()]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = s
            mask[r, :len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def augment_images(x: torch.Tensor, gen: torch.Generator | None, flip: bool = True) -> torch.Tensor:
    """Random resized crop (scale 0.7-1) and, if `flip`, horizontal flip, per image, on uint8 tensors."""
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    r = torch.rand((n, 4), generator=gen)
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


def build_inputs(spec: BackboneSpec, inputs: list[str], image_size: int | None, max_length: int,
                 cache: Path | None = None, progress: Progress | None = None) -> Inputs:
    if spec.modality == "image":
        size = image_size or spec.image_size
        pixels = cached_images(inputs, size, cache, progress)
        return Inputs("image", pixels=pixels, mean=torch.tensor(spec.mean).view(1, 3, 1, 1),
                      std=torch.tensor(spec.std).view(1, 3, 1, 1))
    tok = tokenizer_for(spec)
    if progress:
        progress(0.0, f"Tokenising {len(inputs):,} texts")
    enc = tok(list(inputs), truncation=True, max_length=max_length, padding=False)
    ids = [torch.tensor(x, dtype=torch.long) for x in enc["input_ids"]]
    return Inputs("text", ids=ids, pad_id=tok.pad_token_id or 0)


def iterate(indices: torch.Tensor, batch_size: int, shuffle: bool, gen: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    if shuffle:
        indices = indices[torch.randperm(len(indices), generator=gen)]
    for s in range(0, len(indices), batch_size):
        yield indices[s:s + batch_size]
