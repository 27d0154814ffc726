"""The studio's model: a pretrained encoder pooled to a vector, and a new head. `features()` gives pooled
vectors (cached by the frozen strategy), `head` maps them to outputs, `layer_groups()` lists encoder blocks
bottom to top (the backbone's own declaration where it has one, else a guess from the architecture)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelError


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
        declared = getattr(self.encoder, "declared_groups", None)
        return declared(self.encoder) if declared is not None else self.encoder.groups()


class VisionEncoder(nn.Module):
    """A torchvision classifier with its last Linear removed, pooled to a vector."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> torch.Tensor:
        out = self.model(pixel_values)
        return out.flatten(1)

    def keep_layers(self, k: int) -> int:
        """Only the first k blocks of a convolutional trunk (MobileNet, EfficientNet and the like: a `features`
        sequence, then pooling) with their pretrained weights: a smaller, faster student for distillation.
        Returns the new feature size."""
        trunk = getattr(self.model, "features", None)
        if not isinstance(trunk, nn.Sequential):
            raise ModelError(f"{type(self.model).__name__}: no sequence of blocks to shorten (keep_layers).")
        if k > len(trunk):
            raise ModelError(f"keep_layers={k}, but this encoder has {len(trunk)} blocks.")
        self.model.features = trunk[:k]
        try:
            with torch.no_grad():
                dim = int(self.eval()(torch.zeros(1, 3, 64, 64)).shape[1])
        except RuntimeError as e:
            raise ModelError(f"{type(self.model).__name__} does not run on its first {k} blocks alone "
                             f"(keep_layers): {e}") from None
        self.train()
        return dim

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
        self.prompt: nn.Module | None = None  # prompt tuning's virtual tokens (core.strategies.prompt)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        if self.prompt is not None:
            return self._prompted(input_ids, attention_mask)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "cls":
            pooled = getattr(out, "pooler_output", None)
            return pooled if pooled is not None else out.last_hidden_state[:, 0]
        hidden = out.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def _prompted(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The virtual tokens first, then the text; pooled over the text's own tokens (its first for 'cls')."""
        words = self.model.get_input_embeddings()(input_ids)
        n = self.prompt.embedding.num_embeddings
        virtual = self.prompt(torch.arange(n, device=input_ids.device)).to(words.dtype)
        virtual = virtual.unsqueeze(0).expand(input_ids.shape[0], -1, -1)
        mask = torch.cat([torch.ones_like(attention_mask[:, :1]).expand(-1, n), attention_mask], 1)
        hidden = self.model(inputs_embeds=torch.cat([virtual, words], 1), attention_mask=mask).last_hidden_state[:, n:]
        if self.pooling == "cls":
            return hidden[:, 0]
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    def groups(self) -> list[nn.Module]:
        return _transformer_groups(self.model)

    def keep_layers(self, k: int) -> int | None:
        """Only the first k transformer layers, initialised from the pretrained ones (as DistilBERT starts its
        student): a smaller, faster model, the usual student of a distillation."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise ModelError(f"{type(self.model).__name__}: no list of encoder layers to shorten.")
        if k > len(layers):
            raise ModelError(f"keep_layers={k}, but this encoder has {len(layers)} layers.")
        self.model.encoder.layer = layers[:k]
        self.model.config.num_hidden_layers = k


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

