"""Why did the model say that? Grad-CAM for images and Integrated Gradients for text, via Captum."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

from ..data.images import square_crop

if TYPE_CHECKING:
    from .predictor import Predictor


def _last_spatial_layer(pred: Predictor) -> torch.nn.Module:
    """The deepest encoder block that still has a spatial map (the usual Grad-CAM layer)."""
    groups = pred.model.layer_groups()
    if not groups:
        raise ValueError("This backbone exposes no layers for Grad-CAM.")
    return groups[-1]


def gradcam(pred: Predictor, image: Image.Image, target: int | None = None) -> tuple[np.ndarray, int]:
    """Heatmap in [0, 1] at the model's input size, and the class it explains (default: the prediction)."""
    from captum.attr import LayerAttribution, LayerGradCam

    x = pred.pre.normalise(pred.pre.load(image).unsqueeze(0)).to(pred.device)
    model = pred.model.eval()

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        return model(pixel_values=pixels)

    if target is None:
        with torch.no_grad():
            target = int(forward(x).argmax(1))
    attr = LayerGradCam(forward, _last_spatial_layer(pred)).attribute(x, target=target, relu_attributions=True)
    heat = LayerAttribution.interpolate(attr, x.shape[-2:], interpolate_mode="bilinear")[0, 0].detach().cpu().numpy()
    heat = heat - heat.min()
    return heat / heat.max() if heat.max() > 0 else heat, target


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.45) -> Image.Image:
    size = heat.shape[::-1]
    base = np.asarray(_square_pil(image.convert("RGB"), size[0]), dtype=np.float32) / 255
    colour = colormaps["jet"](heat)[..., :3]
    return Image.fromarray((np.clip((1 - alpha) * base + alpha * colour, 0, 1) * 255).astype(np.uint8))


def _square_pil(img: Image.Image, size: int) -> Image.Image:
    return Image.fromarray(square_crop(img, size).permute(1, 2, 0).numpy())


@dataclass
class TokenScores:
    tokens: list[str]
    scores: list[float]  # positive: pushes towards the explained class
    target: int
    delta: float  # Integrated Gradients' completeness error (small is good)


def token_attributions(pred: Predictor, text: str, target: int | None = None, steps: int = 32) -> TokenScores:
    """Integrated Gradients on the token embeddings, from an all-padding baseline, merged into words."""
    from captum.attr import LayerIntegratedGradients

    tok = pred.pre.tokenizer
    batch, _, errors = pred.pre.batch([text])
    if batch is None:
        raise ValueError(f"Cannot explain this input: {errors[0]}.")
    ids, mask = batch["input_ids"].to(pred.device), batch["attention_mask"].to(pred.device)
    model = pred.model.eval()
    emb = next(m for n, m in model.named_modules() if n.endswith("embeddings") and hasattr(m, "word_embeddings"))

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask)

    if target is None:
        with torch.no_grad():
            target = int(forward(ids, mask).argmax(1))
    special = torch.tensor([t in tok.all_special_ids for t in ids[0].tolist()], device=ids.device)
    baseline = torch.where(special, ids, torch.full_like(ids, tok.pad_token_id or 0))
    lig = LayerIntegratedGradients(forward, emb.word_embeddings)
    attr, delta = lig.attribute(ids, baselines=baseline, additional_forward_args=(mask,), target=target,
                                n_steps=steps, return_convergence_delta=True)
    per_token = attr.sum(-1)[0].detach().cpu().numpy()
    words, scores = _merge_wordpieces(tok.convert_ids_to_tokens(ids[0].tolist()), per_token, set(tok.all_special_tokens))
    return TokenScores(words, scores, target, float(delta.abs().sum()))


def _merge_wordpieces(pieces: list[str], scores: np.ndarray, special: set[str]) -> tuple[list[str], list[float]]:
    words: list[str] = []
    out: list[float] = []
    for p, s in zip(pieces, scores):
        if p in special:
            continue
        if p.startswith("##") and words:
            words[-1] += p[2:]
            out[-1] += float(s)
        else:
            words.append(p)
            out.append(float(s))
    return words, out


def tokens_html(ts: TokenScores) -> str:
    """Words shaded green (for the class) or red (against), as an HTML fragment."""
    import html

    peak = max((abs(s) for s in ts.scores), default=1.0) or 1.0
    spans = []
    for w, s in zip(ts.tokens, ts.scores):
        a = min(1.0, abs(s) / peak) * 0.75
        rgb = "34,139,34" if s >= 0 else "200,40,40"
        spans.append(f'<span style="background: rgba({rgb},{a:.2f}); padding: 1px 2px; border-radius: 3px" '
                     f'title="{s:+.3f}">{html.escape(w)}</span>')
    return " ".join(spans)
