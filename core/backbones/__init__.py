"""Backbone registry: what a pretrained encoder is, how to build it, preprocess for it, and split it into layers.

Every model is wrapped as Classifier(encoder, head) (core.backbones.models); a spec (core.backbones.spec)
declares its preprocessing, layer groups and LoRA targets where known, and the studio guesses the rest."""
from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from ..errors import ModelError
from .loaders import (
    dynamic_hf,
    dynamic_torchvision,
    efficientnet_lite_encoder,
    hf_text_encoder,
    load_tokenizer,
    online,
    seeded,
    tiny_text_encoder,
    torchvision_encoder,
)
from .models import Classifier, TextEncoder, TinyCNN, VisionEncoder
from .offline import (
    MOBILENET_FILE,
    _minilm_source,
    efficientnet_lite_file,
    minilm_folder,
    mpnet_folder,
    provide_offline_mobilenet,
)
from .registry import _REGISTRY, list_backbones, offline_hint, register, registered
from .spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec

__all__ = ["BackboneSpec", "Classifier", "TextEncoder", "VisionEncoder", "get_backbone", "list_backbones",
           "register", "registered", "tokenizer_for", "lora_targets", "offline_hint", "minilm_folder", "provide_offline_mobilenet",
           "MOBILENET_FILE", "IMAGENET_MEAN", "IMAGENET_STD"]

ALIASES = {"minilm": "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2",
           "mpnet": "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2": "all-mpnet-base-v2",
           "mobilenet": "mobilenet_v2", "mobilenetv2": "mobilenet_v2",
           "efficientnet-lite0": "efficientnet_lite0", "tf_efficientnet_lite0": "efficientnet_lite0"}


register(BackboneSpec(
    name="mobilenet_v2", modality="image", params_m=2.2, image_size=224, batch_norm=True,
    description="MobileNetV2, ImageNet-1k (torchvision). Small and fast; a strong default on CPU.",
    build_encoder=lambda: torchvision_encoder("mobilenet_v2", "IMAGENET1K_V1"), is_offline=provide_offline_mobilenet,
    layer_groups=lambda enc: list(enc.model.features.children())))
register(BackboneSpec(
    name="efficientnet_lite0", modality="image", params_m=3.4, image_size=224, batch_norm=True, mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    description="EfficientNet-Lite0, ImageNet-1k (timm's tf_efficientnet_lite0): stronger on ImageNet than "
                "MobileNetV2 (75.1 % top-1 against 71.9 %) for 1.5x its weights and about 1.7x its CPU time at 224 px.",
    build_encoder=lambda: efficientnet_lite_encoder(0), is_offline=lambda: efficientnet_lite_file(0) is not None,
    # fine-tuned at 3e-4 (the image default) it barely moved in 6 epochs: 0.739 / 0.636 macro-F1 on the digit
    # sets, 0.863 / 0.895 at 1e-3 (benchmarks/README.md)
    lr_scale=3.0,
    # modules the forward pass calls (Grad-CAM hooks the last): stem, its norm, 16 blocks, head, its norm
    layer_groups=lambda enc: [enc.model.conv_stem, enc.model.bn1, *(b for stage in enc.model.blocks for b in stage),
                              enc.model.conv_head, enc.model.bn2]))
register(BackboneSpec(
    name="all-MiniLM-L6-v2", modality="text", params_m=22.7,
    description="all-MiniLM-L6-v2, a 6-layer BERT sentence encoder. Fast; good for short English texts.",
    build_encoder=lambda: hf_text_encoder(_minilm_source()), is_offline=lambda: minilm_folder() is not None,
    tokenizer_source=_minilm_source(), lora_targets=("query", "value"),
    layer_groups=lambda enc: [enc.model.embeddings, *enc.model.encoder.layer]))
register(BackboneSpec(
    name="all-mpnet-base-v2", modality="text", params_m=109.5,
    description="all-mpnet-base-v2, a 12-layer MPNet sentence encoder: the strongest offline text encoder here; "
                "about 5x MiniLM's compute.",
    build_encoder=lambda: hf_text_encoder(str(mpnet_folder() or "sentence-transformers/all-mpnet-base-v2")),
    is_offline=lambda: mpnet_folder() is not None,
    tokenizer_source=str(mpnet_folder() or "sentence-transformers/all-mpnet-base-v2"), lora_targets=("q", "v"),
    layer_groups=lambda enc: [enc.model.embeddings, *enc.model.encoder.layer]))
register(BackboneSpec(
    name="tiny-cnn", modality="image", params_m=0.006, hidden=True, image_size=32, batch_norm=True,
    description="Random tiny CNN for smoke tests (no pretraining).",
    build_encoder=lambda: (VisionEncoder(seeded(TinyCNN)), 32), is_offline=lambda: True))
register(BackboneSpec(
    name="tiny-text", modality="text", params_m=1.0, hidden=True,
    description="Random 2-layer BERT with MiniLM's tokenizer, for smoke tests (no pretraining).",
    build_encoder=tiny_text_encoder, is_offline=lambda: minilm_folder() is not None,
    tokenizer_source=_minilm_source()))


def tokenizer_for(spec: BackboneSpec):
    """A tokenizer of the caller's own: a fast tokenizer keeps per-call state (truncation, padding) and refuses
    to be used from two threads at once, so a page predicting while an export checks itself must not share one."""
    if not spec.tokenizer_source:
        raise ModelError(f"{spec.name} is not a text backbone.")
    return copy.deepcopy(load_tokenizer(spec.tokenizer_source))


def text_positions(spec: BackboneSpec) -> int | None:
    """How many tokens the text backbone reads at most (special tokens included); None when it does not say."""
    if not spec.tokenizer_source:
        return None
    limit = getattr(load_tokenizer(spec.tokenizer_source), "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None  # 1e30: "no limit known"


def get_backbone(name: str) -> BackboneSpec:
    """A registered name, a torchvision model name, or a Hugging Face id / local folder."""
    name = (name or "").strip()
    name = ALIASES.get(name, name)
    if name in _REGISTRY:
        spec = _REGISTRY[name]
        if not spec.is_offline() and not online():
            raise ModelError(f"Backbone {name!r} needs a download and there is no network. {offline_hint()}")
        return spec
    if not name:
        raise ModelError(f"No backbone given. {offline_hint()}")
    import torchvision

    if name in torchvision.models.list_models(module=torchvision.models):
        return dynamic_torchvision(name)
    if Path(name).is_dir() or "/" in name:
        return dynamic_hf(name)
    raise ModelError(f"Unknown backbone {name!r}: not in the registry, not a torchvision classification model, "
                     f"not a Hugging Face id (owner/name) or folder. {offline_hint()}")


def lora_targets(model: Classifier) -> list[str]:
    """Full names of the encoder layers LoRA adapts: those the backbone declares, else attention projections in
    transformers, ungrouped convolutions and Linear layers in CNNs."""
    names = [n for n, _ in model.named_modules()]
    wanted = getattr(model.encoder, "declared_lora", None) or ("query", "value", "q_proj", "v_proj", "qkv", "q_lin", "v_lin")
    attn = [n for n in names if n.startswith("encoder.") and n.split(".")[-1] in wanted]
    if attn:
        return attn
    out = []
    for n, m in model.named_modules():
        if not n.startswith("encoder."):
            continue
        if isinstance(m, nn.Conv2d) and m.groups == 1 and (m.kernel_size != (1, 1) or m.out_channels >= 64):
            out.append(n)
        elif isinstance(m, nn.Linear):
            out.append(n)
    if not out:
        raise ModelError("No layers suitable for LoRA in this backbone; use the full or differential strategy.")
    return out
