"""One typed config per run, saved as config.json beside it and replayable from the CLI. Bounds, defaults,
choices and help live in the fields (core.settings); the CLI and the Train form read them from here."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fsutil import atomic_write_text
from .settings import build, setting, validate
from .strategies import check_strategy_args, get_strategy, strategy_names
from .tasks import metric_names, task_names
from .tasks.multilabel import from_before_multilabel

SCHEDULES = ("cosine", "linear", "constant")
LOSSES = ("ce", "bce", "focal", "mse", "huber")
CLASS_WEIGHTING = ("none", "balanced")
POOLING = ("mean", "cls")
RARE_POLICIES = ("error", "unstratified")
TRACKERS = ("tensorboard", "mlflow")
MAX_SEED = 2**32 - 1

__all__ = ["ConfigError", "DataConfig", "TrainConfig", "RunConfig", "help_for"]


@dataclass
class DataConfig:
    source: str = setting("", flag="--data", help="Dataset id (ds-...) or a CSV/TSV, image folder or zip path.")
    text_col: str | None = setting(None, help="Input column of a table (text, or image paths relative to the file).")
    label_col: str | None = setting(None, help="Label column of a table (a class, or a number for regression).")
    test_source: str | None = setting(None, flag="--test-data",
                                      help="Your own held-out test file; replaces the carved-out test split.")
    task: str = setting("classification", choices=task_names,
                        help="'classification' (one label per example), 'multilabel' (any number of labels per "
                             "example, in one column with a separator) or 'regression' (a number per example). A "
                             "label column with several labels per row is read as multi-label unless --label-sep "
                             "none.")
    label_sep: str | None = setting(None, choices=("none", ";", "|", ","),
                                    help="Multi-label: what separates the labels in a cell. None: detected from the "
                                         "data; 'none': one label per row, whatever the cells hold.")
    val_fraction: float = setting(0.1, low=0, high=0.5, low_open=True, high_open=True,
                                  help="Share of the data held out for validation.")
    test_fraction: float = setting(0.1, low=0, high=0.5, high_open=True,
                                   help="Share held out for the final test (ignored with your own test file).")
    split_seed: int = setting(0, low=0, high=MAX_SEED, help="Seed of the train/validation/test split.")
    rare_policy: str = setting("error", choices=RARE_POLICIES,
                               help="Classes too small to stratify: 'error' names them, 'unstratified' splits randomly.")
    test_overlap: str = setting("warn", choices=("warn", "drop"),
                                help="Your own test file: test examples that repeat (or nearly repeat) a training "
                                     "example inflate the scores; 'warn' counts and shows them, 'drop' leaves them "
                                     "out of the test set.")

    def __post_init__(self) -> None:
        validate(self, "data")
        if not self.source:
            raise ConfigError("data.source is empty: give a dataset id or a path to a CSV, folder or zip.")
        if self.text_col and self.text_col == self.label_col:
            raise ConfigError(f"The input and label columns are both {self.text_col!r}: they must differ.")


@dataclass
class TrainConfig:
    backbone: str | None = setting(None, help="A name from `finetune-studio backbones`, any torchvision model, or a "
                                              "Hugging Face id/folder. None: the data's default (MobileNetV2 for "
                                              "images, all-MiniLM-L6-v2 for text).")
    strategy: str = setting("auto", choices=strategy_names,
                            help="How the backbone adapts; 'auto' picks from the data.")
    epochs: int = setting(5, label="Epochs", low=1, high=1000, help="Passes over the training data.")
    lr: float | None = setting(None, label="Learning rate", low=0, high=10, low_open=True, high_open=True,
                               help="Peak learning rate; None takes the strategy's default.")
    batch_size: int = setting(32, label="Batch size", low=1, high=4096,
                              help="Examples per step (per device under torchrun).")
    weight_decay: float = setting(0.01, label="Weight decay", low=0, high=1,
                                  help="AdamW weight decay (not on biases and norms).")
    warmup_ratio: float = setting(0.1, label="Warm-up share", low=0, high=1, high_open=True,
                                  help="Share of steps spent warming up the LR.")
    schedule: str = setting("cosine", label="LR schedule", choices=SCHEDULES, help="LR schedule after warm-up.")
    label_smoothing: float = setting(0.0, label="Label smoothing", low=0, high=1, high_open=True,
                                     scope=("classification", "multilabel"),
                                     help="Classification: label smoothing.")
    class_weighting: str = setting("none", label="Class weighting", choices=CLASS_WEIGHTING, scope=("classification", "multilabel"),
                                   help="Classification: 'balanced' weights rarer classes (multi-label: each label's positives) up.")
    loss: str | None = setting(None, label="Loss", choices=LOSSES,
                               help="Classification: 'ce' or 'focal'; multi-label: 'bce' or 'focal'; regression: 'mse' or 'huber' "
                                    "(smooth L1). "
                                    "None: the task's usual one.")
    focal_gamma: float = setting(2.0, label="Focal gamma", low=0, high=10, scope=("classification", "multilabel"),
                                 help="Focal loss: focusing parameter.")
    grad_accum: int = setting(1, label="Gradient accumulation", low=1, high=1024,
                              help="Micro-batches per optimiser step.")
    max_grad_norm: float | None = setting(1.0, label="Gradient clipping norm", low=0, low_open=True,
                                          help="Gradient clipping; None: off.")
    amp: bool = setting(True, label="Mixed precision on GPU",
                        help="Mixed precision on GPU (bf16 where supported, else fp16). Ignored on CPU.")
    gradient_checkpointing: bool = setting(False, help="Trade compute for memory on large Hugging Face models.")
    early_stopping_patience: int = setting(3, label="Early-stop patience (epochs, 0 = off)", low=0, high=1000,
                                           help="Epochs without validation improvement before stopping; 0: off.")
    monitor: str | None = setting(None, choices=metric_names,
                                  help="Validation metric that picks the best epoch; None: the task's own "
                                       "(macro-F1 for classification, RMSE for regression).")
    seed: int = setting(0, label="Seed", low=0, high=2**32 - 1, help="Seed for weights, order and augmentation.")
    image_size: int | None = setting(None, label="Image size (px)", low=16, high=1024, scope=("image",),
                                     help="Images: side in pixels; None: the backbone's.")
    max_length: int = setting(128, label="Max tokens", low=8, high=4096, scope=("text",),
                              help="Text: tokens read per example.")
    augment: bool = setting(True, label="Augment (random crops, mirroring)", scope=("image",),
                            help="Images: random crops (and mirroring where it keeps the class).")
    hflip: bool | None = setting(None, label="Mirror images", scope=("image",),
                                 help="Images: mirror some training images while augmenting. None: yes, unless "
                                            "a probe on the pretrained features loses accuracy on mirrored validation "
                                            "images (digits, text, anything where left and right differ).")
    blend: bool = setting(False, help="Also fit the baseline's kind of model (TF-IDF for text, a probe on pretrained "
                                      "features for images) and average it with the network where validation shows the "
                                      "blend beating the better of the two alone with confidence (a solved head: "
                                      "out-of-fold predictions over training and validation). 'auto' turns it on.")
    blend_weight: float | None = setting(None, label="Network's share in the blend", low=0, high=1,
                                         help="With blend on: the network's share of every prediction, from 0 "
                                              "(the linear partner alone) to 1 (the network alone). None: the "
                                              "better of the two alone, or a blend where validation (or "
                                              "cross-fitting) shows it beating that with confidence.")
    head_first: bool = setting(False, label="Fit the head before fine-tuning",
                               help="Strategies that update the backbone: first fit the head to convergence on the "
                                    "pretrained features (as 'frozen' does), then fine-tune from that head (LP-FT, "
                                    "Kumar et al. 2022), so the first steps do not push a random head's gradients "
                                    "through the pretrained layers. On a BatchNorm network whose norms train "
                                    "(MobileNetV2, EfficientNet-Lite0: not adapters) fine-tuning keeps their "
                                    "statistics, under which the head was solved, and starts at a third of the "
                                    "strategy's rate. Costs one pass over the data, none when its features are "
                                    "already cached.")
    pooling: str = setting("mean", label="Pooling", choices=POOLING, scope=("text",),
                           help="Text: 'mean' over tokens (what sentence encoders are trained for) or 'cls' (the "
                                "model's own pooler, as in AutoModelForSequenceClassification: exports a HF folder).")
    mixup_alpha: float = setting(0.0, label="MixUp alpha (0 = off)", low=0, high=10, scope=("image",),
                                 help="Images: MixUp strength; 0: off.")
    cutmix_alpha: float = setting(0.0, label="CutMix alpha (0 = off)", low=0, high=10, scope=("image",),
                                  help="Images: CutMix strength (a patch of another image pasted in); 0: off. With "
                                       "MixUp on too, each mixed batch uses one of the two.")
    mix_prob: float = setting(1.0, label="Share of batches mixed", low=0, high=1, scope=("image",),
                              help="Images: share of training batches that MixUp/CutMix mix.")
    text_augment: float = setting(0.0, label="Text edits (share of words, 0 = off)", low=0, high=0.5, scope=("text",),
                                  help="Text: each training text gets one random edit touching this share of its "
                                       "words (deletion, swap, insertion, synonyms from Roget's Thesaurus where "
                                       "installed); 0: off.")
    keep_layers: int | None = setting(None, low=1, high=96, scope=("text", "image"),
                                      help="Keep only the encoder's first N transformer layers (text) or blocks "
                                           "of a convolutional trunk such as MobileNetV2's 19 (images), with their "
                                           "pretrained weights, as DistilBERT starts: a smaller, faster model, the "
                                           "usual student of a distillation. None: all of them.")
    teacher: str | None = setting(None, help="Knowledge distillation: a finished run (id) on the same data and split "
                                             "whose predictions this run also learns from.")
    init_from: str | None = setting(None, help="Continue from a finished run (its id or folder): start from its "
                                               "trained weights, backbone and method, on this run's data (a "
                                               "corrected version of the same data, or more epochs on the same). "
                                               "With 'auto', every setting not given here is the parent's. Classes "
                                               "are matched by name; one the parent never saw starts untrained.")
    distill_weight: float = setting(0.5, label="Weight of the teacher's targets", low=0, high=1,
                                    help="Distillation: share of the loss that is the teacher's soft targets (KL "
                                         "divergence); the rest is the usual loss on the labels.")
    distill_temperature: float = setting(2.0, label="Temperature", low=0.5, high=20,
                                         help="Distillation: temperature that softens teacher and student outputs "
                                              "(Hinton et al. 2015); the KL term is scaled by its square.")
    device: str = setting("auto", help="auto, cpu, cuda, cuda:N or mps.")
    budget_minutes: float | None = setting(None, label="Time budget (minutes)", low=0, low_open=True, high=100_000,
                                           flag="--budget",
                                           help="Minutes the whole run may take. 'auto' plans against it (the "
                                                "best plan this device can finish in time); any run stops at it "
                                                "with its best checkpoint. None: 10 on a CPU-only machine, 30 "
                                                "with a GPU, for 'auto'; no limit otherwise.")
    log_every: int | None = setting(None, low=1, high=10_000,
                                    help="Read the loss (a wait for the accelerator) every N steps; None: every step "
                                         "on a CPU, every 10 on a GPU.")
    loader_workers: int | None = setting(None, low=0, high=64,
                                         help="Processes that read and augment images ahead of training; None: "
                                              "decided from the cores and the data.")
    compile: bool = setting(False, help="torch.compile the model (GPU: often faster after a slow first step).")
    processes: int = setting(1, low=1, high=64,
                             help="Processes that train this run together with PyTorch's DistributedDataParallel: one "
                                  "per GPU (the studio waits for that many free GPUs), or gloo processes on a CPU. "
                                  "More than 1 starts the run with torchrun.")
    checkpoint_every_min: float = setting(5.0, low=0, high=1440,
                                          help="Also save a checkpoint inside an epoch this often (minutes): a killed "
                                               "run loses at most this much. 0: only at epoch ends.")
    max_steps: int | None = setting(None, low=1, help="Stop after this many optimiser steps (smoke runs).")
    baseline: bool = setting(True, help="Also fit a fast scikit-learn baseline on the same split.")
    trackers: list[str] = setting(factory=list, choices=TRACKERS, help="Mirror the run to tensorboard and/or mlflow.")
    strategy_args: dict[str, dict[str, Any]] = setting(
        factory=dict, cli=False, help="Each strategy's own settings by strategy name, e.g. {\"lora\": {\"r\": 16}}.")

    def __post_init__(self) -> None:
        validate(self, "train")
        d = self.device
        if not (d in ("auto", "cpu", "mps") or d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit())):
            raise ConfigError(f"train.device must be auto, cpu, cuda[:N] or mps, got {d!r}.")
        self.strategy_args = check_strategy_args(self.strategy, self.strategy_args)

    def settings_for(self, strategy: str | None = None) -> Any:
        """The typed settings of a strategy (this run's by default), defaults filled in."""
        s = get_strategy(strategy or self.strategy)
        return build(s.settings, self.strategy_args.get(s.name, {}), s.name)


# Settings that were flat in train before strategies carried their own (runs made by earlier versions).
LEGACY = {"lora_r": [("lora", "r")], "lora_alpha": [("lora", "alpha")], "lora_dropout": [("lora", "dropout")],
          "lr_decay": [("differential", "lr_decay")], "unfreeze_last": [("partial", "unfreeze_last")],
          "unfreeze_every": [("partial", "unfreeze_every")],
          "head_lr_mult": [("differential", "head_lr_mult"), ("partial", "head_lr_mult")]}


def _migrate(train: dict[str, Any]) -> dict[str, Any]:
    train = dict(train)
    old = {k: train.pop(k) for k in list(train) if k in LEGACY}
    if not old:
        return train
    args = {k: dict(v) for k, v in (train.get("strategy_args") or {}).items()}
    for key, value in old.items():
        for strategy, name in LEGACY[key]:
            default = next(f.default for f in fields(get_strategy(strategy).settings) if f.name == name)
            if value != default:
                args.setdefault(strategy, {})[name] = value
    keep = train.get("strategy", "auto")
    # settings of strategies other than this run's were ignored by the versions that wrote them
    train["strategy_args"] = {k: v for k, v in args.items() if k == keep or get_strategy(keep).planned}
    return train


@dataclass
class RunConfig:
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = ""
    # train settings the person chose (CLI flags, --set, form fields they changed); 'auto' never overrides them.
    # None (configs from earlier versions): every setting that differs from its default counts as chosen.
    chosen: list[str] | None = None

    def user_set(self) -> set[str]:
        if self.chosen is not None:
            return set(self.chosen)
        defaults = TrainConfig()
        return {f.name for f in fields(TrainConfig) if getattr(self.train, f.name) != getattr(defaults, f.name)}

    def choose(self, *names: str) -> None:
        self.chosen = sorted(set(self.chosen or ()) | set(names))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        if not (isinstance(d, dict) and "data" in d):
            raise ConfigError("A run config needs a 'data' section.")
        extra = sorted(set(d) - {"data", "train", "name", "chosen"})
        if extra:
            raise ConfigError(f"Unknown run config section(s): {', '.join(extra)}. Known: data, train, name, chosen.")
        chosen = d.get("chosen")
        if chosen is not None and not (isinstance(chosen, list) and all(isinstance(c, str) for c in chosen)):
            raise ConfigError("'chosen' must be a list of train setting names.")
        train = d.get("train", {})
        data = d["data"]
        if isinstance(data, dict):
            data = from_before_multilabel(data)
        return cls(data=build(DataConfig, data, "data"),
                   train=build(TrainConfig, _migrate(train) if isinstance(train, dict) else train, "train"),
                   name=str(d.get("name", "")), chosen=chosen)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"No run config at {p}.") from None
        except IsADirectoryError:
            raise ConfigError(f"{p} is a folder, not a config file.") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p} is not valid JSON (line {e.lineno}): {e.msg}.") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p} is not a text file (a run config is JSON).") from None


def help_for(kind: type, name: str) -> str:
    for f in fields(kind):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""
