"""Why did the model say that? An explanation of the predictor, part by part, each with its share of the
prediction: the network by Grad-CAM (images) or Integrated Gradients (text), via Captum; the blend's partner by
its own arithmetic — a TF-IDF model's prediction is a sum over the words of the text, so each word's part is
exact; a probe on pretrained features is explained by Grad-CAM through the untouched backbone and the probe.
A part with no share is not explained: it did not decide anything."""
from __future__ import annotations

import base64
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from PIL import Image

from ..data.images import square_crop
from ..portable import TOKEN, char_wb_ngrams, open_rgb

if TYPE_CHECKING:
    from .predictor import Predictor


@dataclass
class Part:
    """One part's explanation: image heat ([0, 1] at the input size) or words with their scores (positive:
    towards the explained class)."""
    part: str  # "network" or "partner"
    name: str  # what it is, in words
    share: float  # of each prediction
    heat: np.ndarray | None = None
    words: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class Explanation:
    target: int  # the class explained (the predictor's own prediction unless asked otherwise)
    parts: list[Part]  # the part with the larger share first


def explain(pred: "Predictor", raw: Any, target: int | None = None) -> Explanation:
    """Every part of the predictor that has a share, explaining the predictor's prediction (or target)."""
    if target is None:
        out, errors = pred.predict([raw])
        if errors[0]:
            raise ValueError(f"Cannot explain this input: {errors[0]}.")
        target = int(np.nan_to_num(out[0]).argmax()) if pred.task.has_classes else 0
    parts = []
    w = pred.network_weight
    if pred.model is not None and w > 0:
        parts.append(pred.modality.explain(pred, raw, target))
    if pred.partner is not None and w < 1:
        parts.append(partner_words(pred, raw, target) if pred.partner.tfidf else
                     gradcam(pred, raw, target, probe=True))
    return Explanation(target, sorted(parts, key=lambda p: -p.share))


WORST = 12  # mistakes a report shows, explained when the run ends


def worst_rows(preds: pd.DataFrame, has_classes: bool, k: int = WORST) -> pd.DataFrame:
    """The test rows most worth a look: the most confident mistakes (classes), the largest errors (values)."""
    if has_classes:
        return preds[preds["true"] != preds["pred"]].sort_values("loss", ascending=False).head(k)
    return preds.sort_values("error_abs", ascending=False).head(k)


def target_of(pred: "Predictor", row: Any) -> int:
    """What an example's explanation is about: the class it was predicted as (values: the one output, so the
    explanation shows what pushed the value up or down)."""
    return pred.task.explain_target(row, pred.classes)


def explain_rows(rows: pd.DataFrame, raws: list[Any], cached: dict | None,
                 predictor: Callable[[], "Predictor"] | None, limit: int | None = None,
                 progress: Callable[[float, str], None] | None = None) -> list[Explanation | None]:
    """Each row's explanation of its prediction (rows: a run's prediction table, raws: their inputs): the one the
    run made when it ended where it made one (cached), else made now with predictor(), loaded only if needed, for
    at most limit rows; None for the rest. The report and the Evaluate page both read explanations through this."""
    by_row = dict(zip(map(str, cached.get("rows", [])), cached.get("explained", []))) if cached else {}
    out: list[Explanation | None] = [from_json(by_row[r]) if r in by_row else None for r in map(str, rows["row"])]
    todo = [i for i, e in enumerate(out) if e is None][:limit]
    if todo and predictor is not None:
        pred = predictor()
        for n, i in enumerate(todo):
            if progress is not None:
                progress(n / len(todo), f"Explaining example {n + 1} of {len(todo)}")
            out[i] = explain(pred, raws[i], target_of(pred, rows.iloc[i]))
    return out


def to_json(e: Explanation) -> dict[str, Any]:
    parts = []
    for p in e.parts:
        d = {"part": p.part, "name": p.name, "share": p.share, "words": p.words, "scores": p.scores, "note": p.note}
        if p.heat is not None:  # 8 bits of heat as a grey PNG: what a picture of it can show, at a tenth the size
            buf = io.BytesIO()
            Image.fromarray(np.round(np.clip(p.heat, 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
            d["heat_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        parts.append(d)
    return {"target": e.target, "parts": parts}


def from_json(d: dict[str, Any]) -> Explanation:
    parts = []
    for p in map(dict, d["parts"]):  # the caller's copy stays as it was
        heat = p.pop("heat_png", None)
        if heat is not None:
            heat = np.asarray(Image.open(io.BytesIO(base64.b64decode(heat))), dtype=np.float32) / 255
        parts.append(Part(heat=heat, **p))
    return Explanation(int(d["target"]), parts)


# --------------------------------------------------------------------------- images
class _Probe(torch.nn.Module):
    """The partner as a network: the untouched backbone's pooled features, standardised, under the probe's
    linear model (two classes: logits [0, z], the sigmoid scikit-learn keeps)."""

    def __init__(self, pred: "Predictor"):
        super().__init__()
        p = pred.partner
        self.encoder = pred.encoder
        self.mean = torch.as_tensor(p.mean, dtype=torch.float32)
        self.scale = torch.as_tensor(p.scale, dtype=torch.float32)
        coef = torch.as_tensor(p.coef, dtype=torch.float32)
        bias = torch.as_tensor(p.intercept, dtype=torch.float32)
        if coef.shape[0] == 1:
            coef, bias = torch.cat([torch.zeros_like(coef), coef]), torch.cat([torch.zeros_like(bias), bias])
        self.coef, self.bias, self.present = coef, bias, torch.as_tensor(p.present)
        self.n_out = max(pred.n_out, 1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        z = ((self.encoder.features(pixel_values=pixel_values) - self.mean) / self.scale) @ self.coef.T + self.bias
        out = torch.full((z.shape[0], self.n_out), -30.0, dtype=z.dtype)
        out[:, self.present] = z
        return out


def gradcam(pred: "Predictor", image: Any, target: int, probe: bool = False) -> Part:
    """Grad-CAM at the deepest layer that still has a spatial map, of the network or (probe) the partner."""
    from captum.attr import LayerAttribution, LayerGradCam

    img = image if isinstance(image, Image.Image) else _pil(image)
    x = pred.pre.normalise(pred.pre.load(img).unsqueeze(0)).to(pred.device)
    model = _Probe(pred).eval() if probe else pred.model.eval()
    groups = (pred.encoder if probe else pred.model).layer_groups()
    if not groups:
        raise ValueError("This backbone exposes no layers for Grad-CAM.")

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        return pred.task.attributed(model(pixel_values=pixels))

    attr = LayerGradCam(forward, groups[-1]).attribute(x, target=target, relu_attributions=True)
    heat = LayerAttribution.interpolate(attr, x.shape[-2:], interpolate_mode="bilinear")[0, 0].detach().cpu().numpy()
    heat = heat - heat.min()
    note = ""
    if heat.max() <= 0:  # nothing pushed towards the class: a blank map would read as "looked nowhere"
        note = "No region pushes towards this class: the prediction rests on what the image lacks elsewhere."
    name = pred.partner_name if probe else pred.describe()["network"]
    share = 1 - pred.network_weight if probe else pred.network_weight
    return Part("partner" if probe else "network", name, share, heat=heat / heat.max() if heat.max() > 0 else heat,
                note=note)


def _pil(source: Any) -> Image.Image:
    return open_rgb(source)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.45) -> Image.Image:
    size = heat.shape[::-1]
    base = np.asarray(_square_pil(image.convert("RGB"), size[0]), dtype=np.float32) / 255
    colour = colormaps["jet"](heat)[..., :3]
    return Image.fromarray((np.clip((1 - alpha) * base + alpha * colour, 0, 1) * 255).astype(np.uint8))


def _square_pil(img: Image.Image, size: int) -> Image.Image:
    return Image.fromarray(square_crop(img, size).transpose(1, 2, 0))


# --------------------------------------------------------------------------- text
def token_attributions(pred: "Predictor", text: str, target: int | None = None, steps: int = 32) -> Part:
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
        return pred.task.attributed(model(input_ids=input_ids, attention_mask=attention_mask))

    if target is None:
        with torch.no_grad():
            target = int(forward(ids, mask).argmax(1))
    special = torch.tensor([t in tok.all_special_ids for t in ids[0].tolist()], device=ids.device)
    baseline = torch.where(special, ids, torch.full_like(ids, tok.pad_token_id or 0))
    lig = LayerIntegratedGradients(forward, emb.word_embeddings)
    attr, delta = lig.attribute(ids, baselines=baseline, additional_forward_args=(mask,), target=target,
                                n_steps=steps, return_convergence_delta=True)
    per_token = attr.sum(-1)[0].detach().cpu().numpy()
    words, scores = _merge_wordpieces(tok.convert_ids_to_tokens(ids[0].tolist()), per_token,
                                      set(tok.all_special_tokens))
    return Part("network", pred.describe()["network"], pred.network_weight, words=words, scores=scores,
                note=f"Integrated Gradients (completeness error {float(delta.abs().sum()):.2g})")


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


def partner_words(pred: "Predictor", text: str, target: int) -> Part:
    """The TF-IDF model's decision for the class, split exactly over the words of the text: each word n-gram and
    character n-gram is a term of the linear sum, and belongs to the word(s) it was read from (a word pair
    half to each). The sentence embeddings, where the partner reads them, are one more term, named in the note."""
    p = pred.partner
    row = _decision_row(p, target)
    words = text.split()
    scores = np.zeros(len(words))
    word_tf, char_tf = p.tfidf
    ids, vals = word_tf.row(text)
    weights = dict(zip(ids.tolist(), vals.tolist()))
    tokens = [(w, t) for w, word in enumerate(words) for t in TOKEN.findall(word.lower())]
    for n in range(word_tf.low, word_tf.high + 1):
        grams = [(" ".join(t for _, t in tokens[i:i + n]), [w for w, _ in tokens[i:i + n]])
                 for i in range(len(tokens) - n + 1)]
        seen = Counter(g for g, _ in grams)
        for g, owners in grams:
            j = word_tf.vocabulary.get(g)
            if j is not None:  # an n-gram's term, shared by its occurrences, and by the n words it spans
                for w in owners:
                    scores[w] += row[j] * weights[j] / seen[g] / n
    ids, vals = char_tf.row(text)
    weights = dict(zip(ids.tolist(), vals.tolist()))
    counts: dict[int, int] = {}
    per_word = [[char_tf.vocabulary.get(g) for g in char_wb_ngrams(word, char_tf.low, char_tf.high)] for word in words]
    for grams in per_word:
        for j in grams:
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
    offset = len(word_tf.idf)
    for w, grams in enumerate(per_word):
        for j in grams:
            if j is not None:  # a gram seen in several words: its weight shared by its occurrences
                scores[w] += row[offset + j] * weights[j] / counts[j]
    note = ""
    if p.needs_features:
        with torch.no_grad():
            feats = pred.encoder.features(**{k: v.to(pred.device) for k, v in pred.pre.batch([text])[0].items()})
        x = (feats.detach().float().cpu().numpy()[0] - p.mean) / p.scale * p.emb_weight
        emb = float(row[offset + len(char_tf.idf):] @ x)
        note = f"The sentence's meaning (pretrained embeddings) adds {emb:+.2f} to the same score."
    return Part("partner", pred.partner_name, 1 - pred.network_weight, words=words,
                scores=[float(s) for s in scores], note=note)


def _decision_row(p, target: int) -> np.ndarray:
    """The coefficients whose sum is the decision for the target class (two classes: one row, its sign)."""
    coef = np.asarray(p.coef, dtype=np.float64)
    if not p.n_classes:  # a value: its one row pushes it up (positive) or down
        return coef[0]
    if coef.shape[0] == 1:
        return coef[0] if int(p.present[1]) == target else -coef[0]
    pos = {int(c): i for i, c in enumerate(p.present)}
    return coef[pos[target]] if target in pos else np.zeros(coef.shape[1])


def tokens_html(words: list[str], scores: list[float]) -> str:
    """Words shaded green (for the class) or red (against), as an HTML fragment."""
    import html

    peak = max((abs(s) for s in scores), default=1.0) or 1.0
    spans = []
    for w, s in zip(words, scores):
        a = min(1.0, abs(s) / peak) * 0.75
        rgb = "34,139,34" if s >= 0 else "200,40,40"
        spans.append(f'<span style="background: rgba({rgb},{a:.2f}); padding: 1px 2px; border-radius: 3px" '
                     f'title="{s:+.3f}">{html.escape(w)}</span>')
    return " ".join(spans)
