"""What a backbone declares: how to build its encoder, the preprocessing its weights expect (as torchvision's
Weights.transforms keep it with the weights), its layer groups and LoRA targets where known."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..errors import ModelError
from .models import Classifier, TextEncoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BackboneSpec:
    name: str
    modality: str
    description: str
    build_encoder: Callable[[], tuple[nn.Module, int]]
    is_offline: Callable[[], bool]
    image_size: int | None = None  # images: the side the weights were trained at
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tokenizer_source: str | None = None  # text: where the tokenizer comes from
    hidden: bool = False
    params_m: float = 0.0
    lora_targets: tuple[str, ...] | None = None  # last parts of module names LoRA adapts; None: guessed
    layer_groups: Callable[[nn.Module], list[nn.Module]] | None = None  # encoder -> blocks; None: guessed
    lr_scale: float = 1.0  # the strategies' default learning rates are multiplied by this for these weights
    batch_norm: bool = False  # normalised by BatchNorm (LP-FT keeps its statistics: Strategy.fixes_norms)
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, out_dim: int, pooling: str = "mean", keep_layers: int | None = None) -> Classifier:
        encoder, dim = self.build_encoder()
        if isinstance(encoder, TextEncoder):
            encoder.pooling = pooling
        if keep_layers:
            if not hasattr(encoder, "keep_layers"):
                raise ModelError(f"{self.name}: keep_layers shortens text transformers and convolutional trunks; "
                                 "it does not apply here.")
            dim = encoder.keep_layers(keep_layers) or dim
        if self.layer_groups is not None:
            encoder.declared_groups = self.layer_groups
        encoder.declared_lora = self.lora_targets
        return Classifier(encoder, dim, out_dim)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "offline": bool(self.is_offline()),
                "description": self.description, "params_millions": self.params_m, "image_size": self.image_size}
