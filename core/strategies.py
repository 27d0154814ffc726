"""Fine-tuning strategies. Each decides which weights train and at what learning rate (parameter groups)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .backbones import Classifier, lora_targets
from .config import TrainConfig


def _decay_split(named: list[tuple[str, nn.Parameter]], lr: float, wd: float, tag: str) -> list[dict[str, Any]]:
    """No weight decay on biases and norm weights (1-D tensors), as in nanoGPT's configure_optimizers."""
    decay = [p for n, p in named if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in named if p.requires_grad and p.ndim < 2]
    groups = []
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": wd, "name": f"{tag}"})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{tag}/no_decay"})
    return groups


def _named(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return list(module.named_parameters())


def set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def freeze_frozen_norms(model: nn.Module) -> None:
    """BatchNorm layers whose weights are frozen also keep their running statistics (call after .train())."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            ps = list(m.parameters(recurse=False))
            if ps and not any(p.requires_grad for p in ps):
                m.eval()


@dataclass
class Strategy:
    name: str = ""
    title: str = ""
    why: str = ""
    frozen_backbone: bool = False
    default_lr: dict[str, float] | None = None

    def lr(self, cfg: TrainConfig, modality: str) -> float:
        return cfg.lr if cfg.lr is not None else (self.default_lr or {}).get(modality, 1e-4)

    def prepare(self, model: Classifier, cfg: TrainConfig, modality: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def on_epoch_start(self, model: Classifier, cfg: TrainConfig, epoch: int, optimizer: Any, modality: str) -> bool:
        """Change what trains at an epoch boundary; True when parameter groups changed."""
        return False


class Full(Strategy):
    def prepare(self, model, cfg, modality):
        set_trainable(model, True)
        lr = self.lr(cfg, modality)
        return _decay_split(_named(model.encoder), lr, cfg.weight_decay, "encoder") + \
            _decay_split(_named(model.head), lr, cfg.weight_decay, "head")


class Frozen(Strategy):
    def prepare(self, model, cfg, modality):
        set_trainable(model.encoder, False)
        set_trainable(model.head, True)
        return _decay_split(_named(model.head), self.lr(cfg, modality), cfg.weight_decay, "head")


class Partial(Strategy):
    """The top `unfreeze_last` encoder groups train; one more every `unfreeze_every` epochs (gradual)."""

    def _open(self, model: Classifier, n: int) -> list[nn.Module]:
        groups = model.layer_groups()
        n = min(n, len(groups))
        return groups[len(groups) - n:] if n else []

    def _groups(self, model, cfg, modality, n):
        set_trainable(model, False)
        set_trainable(model.head, True)
        lr = self.lr(cfg, modality)
        out = _decay_split(_named(model.head), lr * cfg.head_lr_mult, cfg.weight_decay, "head")
        for i, g in enumerate(self._open(model, n)):
            set_trainable(g, True)
            out += _decay_split(_named(g), lr, cfg.weight_decay, f"group{i}")
        return out

    def prepare(self, model, cfg, modality):
        return self._groups(model, cfg, modality, cfg.unfreeze_last)

    def on_epoch_start(self, model, cfg, epoch, optimizer, modality):
        # n grows by one exactly at epochs divisible by unfreeze_every.
        if not cfg.unfreeze_every or epoch == 0 or epoch % cfg.unfreeze_every:
            return False
        n = cfg.unfreeze_last + epoch // cfg.unfreeze_every
        if n > len(model.layer_groups()):
            return False
        have = {id(p) for g in optimizer.param_groups for p in g["params"]}
        for g in self._groups(model, cfg, modality, n):
            g["params"] = [p for p in g["params"] if id(p) not in have]
            if g["params"]:
                optimizer.add_param_group({**g, "initial_lr": g["lr"]})
        return True


class Differential(Strategy):
    """Layer-wise learning rates: the top group gets lr, each lower one lr_decay times the one above."""

    def prepare(self, model, cfg, modality):
        set_trainable(model, True)
        lr = self.lr(cfg, modality)
        groups = model.layer_groups()
        out = _decay_split(_named(model.head), lr * cfg.head_lr_mult, cfg.weight_decay, "head")
        seen = {id(p) for g in groups for p in g.parameters()}
        for depth, g in enumerate(reversed(groups)):
            out += _decay_split(_named(g), lr * cfg.lr_decay ** depth, cfg.weight_decay, f"depth{depth}")
        rest = [(n, p) for n, p in model.encoder.named_parameters() if id(p) not in seen]
        out += _decay_split(rest, lr * cfg.lr_decay ** len(groups), cfg.weight_decay, "rest")
        return out


class Lora(Strategy):
    """peft LoRA adapters on attention (transformers) or convolutions (CNNs); the new head trains fully."""

    def prepare(self, model, cfg, modality):
        from peft import LoraConfig, inject_adapter_in_model

        set_trainable(model, False)
        conf = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=lora_targets(model), bias="none")
        inject_adapter_in_model(conf, model)
        model.lora_config = conf
        set_trainable(model.head, True)
        lr = self.lr(cfg, modality)
        lora = [(n, p) for n, p in model.named_parameters() if "lora_" in n]
        for _, p in lora:
            p.requires_grad_(True)
        return _decay_split(lora, lr, cfg.weight_decay, "lora") + \
            _decay_split(_named(model.head), max(lr, 1e-3), cfg.weight_decay, "head")


STRATEGIES: dict[str, Strategy] = {
    "frozen": Frozen("frozen", "Frozen backbone (linear probe)",
                     "Only the new head trains on cached features: seconds per epoch, hard to overfit; best under ~1k examples.",
                     frozen_backbone=True, default_lr={"image": 3e-3, "text": 3e-3}),
    "lora": Lora("lora", "LoRA adapters",
                 "Small low-rank adapters train beside frozen weights: most of full fine-tuning's gain at a fraction of the memory.",
                 default_lr={"image": 1e-3, "text": 5e-4}),
    "partial": Partial("partial", "Partial / gradual unfreezing",
                       "Top layers adapt, lower generic features stay fixed; unfreeze more every few epochs if asked.",
                       default_lr={"image": 3e-4, "text": 1e-4}),
    "differential": Differential("differential", "Differential learning rates",
                                 "Every layer trains, lower layers slower: adapts deeply without wrecking pretrained features; good for 1k-10k examples.",
                                 default_lr={"image": 3e-4, "text": 1e-4}),
    "full": Full("full", "Full fine-tuning",
                 "Every weight trains at one rate: the most capacity; wants many examples (10k+) or data unlike the pretraining.",
                 default_lr={"image": 3e-4, "text": 5e-5}),
}


def get_strategy(name: str) -> Strategy:
    from .config import ConfigError

    if name == "auto":
        raise ConfigError("'auto' is resolved from the data when the run starts (resolve_auto).")
    if name not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}.")
    return STRATEGIES[name]


def recommend(n_examples: int, modality: str) -> tuple[str, str]:
    """(strategy, one-line reason) for this much data."""
    if n_examples < 1000:
        return "frozen", f"{n_examples} examples is small: a frozen backbone (or LoRA) learns fast and rarely overfits."
    if n_examples < 10_000:
        return "differential", f"{n_examples:,} examples: enough to adapt every layer, with lower layers moving slower."
    return "full", f"{n_examples:,} examples: enough data to fine-tune every weight."


LARGE_BACKBONE_M = 300  # millions of weights; above this, auto trains LoRA adapters instead of every weight


def resolve_auto(cfg: TrainConfig, n_train: int, modality: str, class_counts: list[int],
                 text_lengths: list[int] | None = None, image_side: int | None = None,
                 params_m: float = 0.0) -> tuple[TrainConfig, str]:
    """A concrete config for strategy 'auto', from the data, and the one-line reason shown to the user.
    Only settings still at their defaults are changed; anything the user set is kept.

    Measured on four real datasets (benchmarks/README.md): on a few hundred examples a frozen backbone, and
    even a full fine-tune, can lose to the scikit-learn baseline; a full fine-tune whose probabilities are
    averaged with the baseline-style linear model beat it on all four once the network's share was chosen
    pessimistically (see core.blend.best_weight), and tied on a fifth where the network alone loses; images
    also get label smoothing and, where mirroring changes the class, no flips (decided in the trainer)."""
    from dataclasses import replace

    defaults = TrainConfig()
    changes: dict = {"strategy": "full"}
    imbalance = max(class_counts) / max(1, min(class_counts))
    if modality == "text":
        epochs = 6 if n_train < 1000 else 4 if n_train < 10_000 else 3
    else:
        epochs = 12 if n_train < 1000 else 8 if n_train < 10_000 else 4
    if cfg.epochs != defaults.epochs:
        epochs = cfg.epochs
    changes["epochs"] = epochs
    why = f"{n_train:,} training examples: every weight fine-tunes ({epochs} epochs, early stopping)"
    if params_m >= LARGE_BACKBONE_M:
        # gradients and Adam state for every weight of a large model need ~4x its size in memory, and a small
        # dataset cannot move that many weights well; low-rank adapters keep both in check
        changes["strategy"] = "lora"
        why = (f"{n_train:,} training examples on a large backbone ({params_m:,.0f}M weights): LoRA adapters "
               f"train beside the frozen weights ({epochs} epochs, early stopping)")
    if not cfg.blend:
        changes["blend"] = True
        why += (", then blends with a fast linear model " + ("on TF-IDF" if modality == "text" else
                "on the pretrained features") + ", trusting the network as far as validation shows it helps")
    if cfg.class_weighting == "none" and imbalance >= 3:
        changes["class_weighting"] = "balanced"
        why += f"; classes are imbalanced ({imbalance:.0f}:1), so rarer ones are weighted up"
    if modality == "text" and text_lengths and cfg.max_length == defaults.max_length:
        p90 = sorted(text_lengths)[int(0.9 * (len(text_lengths) - 1))]
        if p90 > 600:  # characters, roughly 128+ tokens
            changes["max_length"] = 256
            why += "; long texts, so up to 256 tokens are read"
    if modality == "image" and image_side and image_side <= 64 and cfg.image_size is None:
        changes["image_size"] = 128  # upsampling tiny images to 224 costs 3x the time and helps nothing
        why += f"; small images ({image_side} px), so they are read at 128 px"
    if modality == "image" and cfg.label_smoothing == defaults.label_smoothing:
        changes["label_smoothing"] = 0.1  # as in torchvision's own training recipes; keeps a small fine-tune humble
        why += "; label smoothing 0.1"
    return replace(cfg, **changes), why + "."


def count_params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
