"""One typed config per run, saved as config.json beside it and replayable from the CLI."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

STRATEGIES = ("auto", "full", "frozen", "partial", "differential", "lora")
SCHEDULES = ("cosine", "linear", "constant")
LOSSES = ("ce", "focal")
CLASS_WEIGHTING = ("none", "balanced")
RESOLVED = "config.resolved.json"  # beside config.json: the settings a run actually used once 'auto' chose them
POOLING = ("mean", "cls")
RARE_POLICIES = ("error", "unstratified")


from .errors import StudioError


class ConfigError(StudioError, ValueError):
    """A config value a person has to change; the message says which and why."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass
class DataConfig:
    source: str = field(default="", metadata={"help": "Dataset id (ds-...) or a CSV/TSV, image folder or zip path."})
    text_col: str | None = field(default=None, metadata={"help": "Input column of a table (text or image path)."})
    label_col: str | None = field(default=None, metadata={"help": "Label column of a table."})
    test_source: str | None = field(default=None, metadata={"help": "Your own held-out test file; replaces the carved-out test split."})
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    rare_policy: str = field(default="error", metadata={"help": "Classes too small to stratify: 'error' names them, 'unstratified' splits randomly."})

    def __post_init__(self) -> None:
        _check(bool(self.source), "data.source is empty: give a dataset id or a path to a CSV, folder or zip.")
        _check(0.0 < self.val_fraction < 0.5, f"val_fraction must be between 0 and 0.5, got {self.val_fraction}.")
        _check(0.0 <= self.test_fraction < 0.5, f"test_fraction must be between 0 and 0.5, got {self.test_fraction}.")
        _check(self.rare_policy in RARE_POLICIES, f"rare_policy must be one of {RARE_POLICIES}, got {self.rare_policy!r}.")


@dataclass
class TrainConfig:
    backbone: str = field(default="mobilenet_v2", metadata={"help": "A name from `finetune-studio backbones`, any torchvision model, or a Hugging Face id/folder."})
    strategy: str = field(default="frozen", metadata={"help": f"One of {STRATEGIES}."})
    epochs: int = 5
    lr: float | None = field(default=None, metadata={"help": "Peak learning rate; None takes the strategy's default."})
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    class_weighting: str = "none"
    loss: str = "ce"
    focal_gamma: float = 2.0
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    amp: bool = field(default=True, metadata={"help": "Mixed precision on GPU (bf16 where supported, else fp16). Ignored on CPU."})
    gradient_checkpointing: bool = False
    early_stopping_patience: int = field(default=3, metadata={"help": "Epochs without validation improvement before stopping; 0 turns it off."})
    monitor: str = "macro_f1"
    seed: int = 0
    image_size: int | None = None
    max_length: int = 128
    augment: bool = True
    hflip: bool | None = field(default=None, metadata={"help": "Images: mirror some training images while augmenting. "
                                                            "None: yes, unless a probe on the pretrained features "
                                                            "loses accuracy on mirrored validation images (digits, "
                                                            "text, anything where left and right differ)."})
    blend: bool = field(default=False, metadata={"help": "Also fit the baseline's kind of model (TF-IDF + logistic "
                                                         "regression for text, a probe on pretrained features for "
                                                         "images) and average its probabilities with the network's; "
                                                         "the network's share is the largest that validation supports "
                                                         "with confidence. 'auto' turns it on."})
    pooling: str = field(default="mean", metadata={"help": "Text: 'mean' over tokens (what sentence encoders are "
                                                           "trained for) or 'cls' (the model's own pooler, as in "
                                                           "AutoModelForSequenceClassification: exports as a HF folder)."})
    mixup_alpha: float = 0.0
    # strategy knobs
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lr_decay: float = field(default=0.8, metadata={"help": "differential: each group down from the head gets this factor of the one above."})
    head_lr_mult: float = field(default=10.0, metadata={"help": "differential/partial/lora: head LR = lr x this."})
    unfreeze_last: int = field(default=2, metadata={"help": "partial: backbone groups trained from the start (counted from the top)."})
    unfreeze_every: int = field(default=0, metadata={"help": "partial: unfreeze one more group every K epochs (0: never)."})
    device: str = "auto"
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimiser steps (smoke runs)."})
    baseline: bool = field(default=True, metadata={"help": "Also fit a fast scikit-learn baseline on the same split."})
    trackers: list[str] = field(default_factory=list, metadata={"help": "Mirror the run to 'tensorboard' and/or 'mlflow'."})

    def __post_init__(self) -> None:
        _check(self.strategy in STRATEGIES, f"Unknown strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}.")
        _check(self.schedule in SCHEDULES, f"Unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}.")
        _check(self.loss in LOSSES, f"Unknown loss {self.loss!r}; choose one of: {', '.join(LOSSES)}.")
        _check(self.pooling in POOLING, f"pooling must be one of {POOLING}, got {self.pooling!r}.")
        _check(self.class_weighting in CLASS_WEIGHTING, f"class_weighting must be one of {CLASS_WEIGHTING}.")
        _check(self.hflip in (None, True, False), f"hflip must be true, false or null (decide from the data), got {self.hflip!r}.")
        _check(1 <= self.epochs <= 1000, f"epochs must be between 1 and 1000, got {self.epochs}.")
        _check(1 <= self.batch_size <= 4096, f"batch_size must be between 1 and 4096, got {self.batch_size}.")
        _check(self.lr is None or 0 < self.lr < 10, f"lr must be positive and below 10, got {self.lr}.")
        _check(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        _check(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        _check(self.grad_accum >= 1, "grad_accum must be at least 1.")
        _check(self.monitor in ("macro_f1", "accuracy", "loss"), "monitor must be macro_f1, accuracy or loss.")
        _check(8 <= self.max_length <= 4096, f"max_length must be between 8 and 4096, got {self.max_length}.")
        _check(self.image_size is None or 16 <= self.image_size <= 1024, "image_size must be between 16 and 1024.")
        _check(self.lora_r >= 1, "lora_r must be at least 1.")
        _check(0 < self.lr_decay <= 1, "lr_decay must be in (0, 1].")
        _check(self.unfreeze_last >= 0 and self.unfreeze_every >= 0, "unfreeze_last and unfreeze_every cannot be negative.")
        _check(all(t in ("tensorboard", "mlflow") for t in self.trackers),
               f"trackers can be 'tensorboard' and 'mlflow', got {self.trackers}.")
        _check(self.device in ("auto", "cpu") or self.device.startswith("cuda") or self.device == "mps",
               f"device must be auto, cpu, cuda[:N] or mps, got {self.device!r}.")


@dataclass
class RunConfig:
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        _check(isinstance(d, dict) and "data" in d, "A run config needs a 'data' section.")
        return cls(data=_build(DataConfig, d["data"], "data"),
                   train=_build(TrainConfig, d.get("train", {}), "train"),
                   name=str(d.get("name", "")))

    def save(self, path: Path) -> None:
        from .fsutil import atomic_write_text
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"No run config at {p}.") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p} is not valid JSON (line {e.lineno}): {e.msg}.") from None


def _build(kind: type, d: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(d) - known)
    _check(not unknown, f"Unknown {section} setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    return kind(**d)


def help_for(kind: type, name: str) -> str:
    for f in fields(kind):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""
