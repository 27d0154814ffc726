"""What a strategy is: a name, a title, a one-line reason, its own settings, and the parameter groups it trains."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

# LP-FT's default rate, as a share of the strategy's own, where its BatchNorm statistics are kept: MobileNetV2 with
# them kept diverged within ten steps of the solved head at the full image rate (benchmarks/README.md, LP-FT).
# Text encoders and adapters keep the strategy's rate: a third of it scored lower on five of the six sets measured.
LP_FT_LR = 1 / 3

if TYPE_CHECKING:
    from ..backbones import Classifier
    from ..config import TrainConfig


@dataclass
class NoSettings:
    """A strategy with nothing of its own to set."""


@dataclass
class Strategy:
    name: str
    title: str
    why: str
    settings: type = NoSettings
    frozen_backbone: bool = False
    default_lr: dict[str, float] = field(default_factory=dict)  # by modality
    trainable_share: float = 1.0  # rough share of weights that train, for the memory estimate
    adapter: bool = False  # adds modules beside the backbone's own (merged away on export)
    fits_head: bool = False  # the head is solved to convergence on cached features (no learning rate, no epochs)
    modalities: tuple[str, ...] | None = None  # the data it applies to (None: all)
    planned: bool = False  # resolved into another strategy from the data when the run is planned ('auto')
    changes_features: bool = False  # the encoder's output differs from the pretrained one before any step
    tunes_encoder: bool = False  # fits_head on features of an encoder it tunes first (tuned_features): an lr applies

    def lr(self, cfg: "TrainConfig", modality: str) -> float:
        """The rate the person set, else this strategy's default for the modality times the backbone's lr_scale."""
        if cfg.lr is not None:
            return cfg.lr
        spec = _spec(cfg)
        return (self.default_lr.get(modality, 1e-4) * (spec.lr_scale if spec is not None else 1.0)
                * (LP_FT_LR if self.fixes_norms(cfg) else 1.0))

    def starts_from_solved_head(self, cfg: "TrainConfig") -> bool:
        """LP-FT (cfg.head_first, Kumar et al., ICLR 2022) applies: the backbone trains, its first outputs are the
        pretrained features (not prompt tuning's virtual tokens), and the head is not already trained (a continued
        run's parent)."""
        return bool(cfg.head_first) and not (self.fits_head or self.frozen_backbone or self.changes_features
                                             or cfg.init_from)

    def fixes_norms(self, cfg: "TrainConfig") -> bool:
        """LP-FT on a backbone whose BatchNorm layers this strategy trains (not an adapter's, which leaves them
        frozen): the head was solved on features normalised by the running statistics, and batch statistics would
        hand it other features from the first step (LP-FT on MobileNetV2 fell to 0.59 macro-F1 on both digit sets
        at a third of the rate). The statistics are kept while the layers' weights train."""
        spec = _spec(cfg)
        return self.starts_from_solved_head(cfg) and not self.adapter and spec is not None and spec.batch_norm

    def prepare(self, model: "Classifier", cfg: "TrainConfig", modality: str) -> list[dict[str, Any]]:
        """Set requires_grad and return AdamW parameter groups, each with its `lr_mult` of the base rate."""
        raise NotImplementedError

    def on_epoch_start(self, model: "Classifier", cfg: "TrainConfig", epoch: int, optimizer: Any,
                       modality: str) -> bool:
        """Change what trains at an epoch boundary; True when parameter groups changed."""
        return False

    def callbacks(self, model: "Classifier", cfg: "TrainConfig") -> list:
        """Loop callbacks the strategy needs while it trains (AdaLoRA's rank allocation)."""
        return []

    def positions_taken(self, cfg: "TrainConfig") -> int:
        """Of a text transformer's positions, how many the strategy puts before the text (prompt tuning)."""
        return 0

    def tuned_features(self, plan: Any) -> Any:
        """A strategy that solves its head (fits_head) on features of an encoder it tunes first returns every
        row's tuned features here (core.train.plan calls it before the head is solved); None: the pretrained
        ones."""
        return None

    def merge(self, model: nn.Module) -> nn.Module:
        """The model with any adapters folded into plain layers (for export); a no-op for most strategies."""
        return model


def decay_split(named: list[tuple[str, nn.Parameter]], base_lr: float, wd: float, tag: str, mult: float = 1.0,
                floor: float = 0.0) -> list[dict[str, Any]]:
    """No weight decay on biases and norm weights (1-D tensors), as in nanoGPT's configure_optimizers.
    Each group's rate is max(base_lr x mult, floor), so a learning-rate range test can sweep the base rate and
    keep every group's relation to it."""
    decay = [p for n, p in named if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in named if p.requires_grad and p.ndim < 2]
    lr = max(base_lr * mult, floor) if floor else base_lr * mult
    groups = []
    for params, w, name in ((decay, wd, tag), (no_decay, 0.0, f"{tag}/no_decay")):
        if params:
            groups.append({"params": params, "lr": lr, "weight_decay": w, "name": name, "lr_mult": mult,
                           "lr_floor": floor})
    return groups


def group_lr(group: dict[str, Any], base_lr: float) -> float:
    m, floor = group.get("lr_mult", 1.0), group.get("lr_floor", 0.0)
    return max(base_lr * m, floor) if floor else base_lr * m


def named(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return list(module.named_parameters())


def _spec(cfg: "TrainConfig"):
    from ..backbones import ALIASES, registered  # the backbones' users import the strategies, not the reverse

    return registered(ALIASES.get(cfg.backbone, cfg.backbone)) if cfg.backbone else None


def set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def freeze_frozen_norms(model: nn.Module, every: bool = False) -> None:
    """BatchNorm layers whose weights are frozen also keep their running statistics (call after .train()); with
    `every`, all of them do (LP-FT: the head was solved on features normalised by those statistics, and batch
    statistics would hand it other features from the first step)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            ps = list(m.parameters(recurse=False))
            if every or (ps and not any(p.requires_grad for p in ps)):
                m.eval()


def count_params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
