"""The Train form. Every field's bounds, default, choices and help come from the config's own fields
(core.config, core.settings), strategies and their settings from the strategy registry: nothing is retyped
here. A field the person changes from the default it shows is recorded as chosen, so 'auto' keeps it."""
from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

import streamlit as st

from core.backbones import get_backbone, list_backbones
from core.config import DataConfig, RunConfig, TrainConfig
from core.data.datasets import Dataset
from core.errors import StudioError
from core.modalities import get_modality
from core.settings import choices_of, default_of, shape
from core.strategies import REGISTRY as STRATEGIES
from core.tasks import get_task
from core.tasks.multilabel import label_counts, separator_for
from core.train.auto import recommend, resolve_auto
from core.train.auto.candidates import candidates
from core.train.auto.choose import DEFAULT_MINUTES, EFFORT

SHOWN = {"loss": {None: "the task's usual", "ce": "cross-entropy", "focal": "focal", "mse": "mean squared error",
                  "huber": "Huber (smooth L1)"},
         "hflip": {None: "unless it changes the class", True: "always", False: "never"},
         "pooling": {"mean": "mean of tokens", "cls": "model's pooler (CLS)"}}
ADVANCED = [["schedule", "warmup_ratio", "weight_decay"], ["class_weighting", "loss", "label_smoothing"],
            ["early_stopping_patience", "grad_accum", "seed"], ["augment", "hflip", "mixup_alpha"],
            ["cutmix_alpha", "mix_prob", "text_augment"], ["image_size", "max_length", "pooling"],
            ["amp", "max_grad_norm", "focal_gamma"], ["head_first"]]


def planned(strategy: str) -> bool:
    """'auto': resolved into a concrete strategy from the data when the run starts."""
    return STRATEGIES.get(strategy).planned


def _field(kind: type, name: str):
    return next(f for f in fields(kind) if f.name == name)


def applies(kind: type, name: str, scope_names: set[str]) -> bool:
    scope = _field(kind, name).metadata.get("scope")
    return scope is None or bool(set(scope) & scope_names)


def setting_input(where, kind: type, name: str, default: Any, key: str, label: str | None = None) -> Any:
    """A widget for one setting with the config's own bounds, choices and help."""
    f = _field(kind, name)
    base, optional, _ = shape(kind, name)
    m = f.metadata
    label = label or m.get("label") or name.replace("_", " ").capitalize()
    choices = choices_of(f)
    if name in SHOWN or choices:
        options = list(SHOWN[name]) if name in SHOWN else ([None] if optional else []) + choices
        if name == "loss":
            options = [o for o in options if o is None or o in (choices or [])]
        names = SHOWN.get(name, {})
        return where.selectbox(label, options, index=options.index(default) if default in options else 0,
                               format_func=lambda o: names.get(o, str(o)), help=m["help"], key=key)
    if base is bool:
        return where.checkbox(label, value=bool(default), help=m["help"], key=key)
    lo = None if m.get("low") is None or m.get("low_open") else m["low"]
    hi = None if m.get("high") is None or m.get("high_open") else m["high"]
    if base is int:
        return int(where.number_input(label, min_value=lo, max_value=hi, value=int(default), step=1, help=m["help"],
                                      key=key))
    small = default is not None and 0 < abs(default) < 1e-3
    return float(where.number_input(label, min_value=None if lo is None else float(lo),
                                    max_value=None if hi is None else float(hi), value=float(default),
                                    step=m.get("step") or (None if small else 0.05), format="%.1e" if small else "%g",
                                    help=m["help"], key=key))


def backbone_picker(ds: Dataset) -> tuple[str, bool]:
    """(the backbone, whether the person picked it). Until one is picked, the data's default stands in and
    'auto' chooses among its own candidates; a picked one (or one typed in) is kept by 'auto', as on the CLI."""
    specs = [s for s in list_backbones() if s.modality == ds.modality]
    labels = [f"{s.name} — {s.params_m:g}M params{'' if s.is_offline() else ' (needs download)'}" for s in specs]
    default = get_modality(ds.modality).default_backbone
    choice = st.selectbox("Backbone", labels + ["Other: a torchvision model or Hugging Face id"], index=None,
                          placeholder=f"Not picked: {default}, or auto's own choice",
                          help=_field(TrainConfig, "backbone").metadata["help"])
    if choice is None:
        return default, False
    if choice.startswith("Other"):
        typed = st.text_input("Model name or id", placeholder="resnet18 or google/vit-base-patch16-224",
                              key="backbone_typed").strip()
        return typed, bool(typed)
    spec = specs[labels.index(choice)]
    st.caption(spec.description)
    return spec.name, True


@st.cache_data(ttl=3600, show_spinner=False)
def _params_m(backbone: str) -> float:
    """Millions of weights (a custom Hugging Face id costs one small config download, once an hour)."""
    try:
        return get_backbone(backbone).params_m if backbone else 0.0
    except StudioError:  # unknown or unreachable: Start training names the problem
        return 0.0


def n_train(ds: Dataset, split_cfg: dict) -> int:
    return int(ds.manifest["rows"] * (1 - split_cfg["val"] - split_cfg["test"]))


def _auto(ds: Dataset, n: int, backbone: str, task: str = "classification") -> tuple[TrainConfig, str]:
    """What auto will pick for this data and backbone (its size decides full fine-tuning or LoRA)."""
    kind = get_task(task)
    reading = separator_for(ds.items["label"].tolist(), task) if kind.several else None
    counts = None if not kind.has_classes else list(label_counts(ds.manifest["classes"], reading).values()) \
        if reading else list(ds.manifest["classes"].values())
    return resolve_auto(TrainConfig(backbone=backbone or None), n, ds.modality, counts, params_m=_params_m(backbone),
                        chosen=set(), task=kind)


def plan_preview(ds: Dataset, backbone: str, picked: bool = False, minutes: float | None = None,
                 task: str = "classification") -> str:
    """What 'auto' will choose between when the run starts, stated as it is: the plans it times on this machine,
    best first, and the rule that picks one. The choice itself is made then, from measured speeds, and shown on
    Monitor beside what actually ran."""
    import torch

    gpu = torch.cuda.is_available()
    cands = candidates(ds.modality, gpu, backbone, fixed_backbone=picked)
    listed = "; ".join(f"{STRATEGIES.get(s).title.lower()} {b}" for b, s in cands)
    fits = f"{minutes:g} minutes" if minutes else "your time budget"
    follow = "Epochs, class weighting and the blend with a fast linear model" if get_task(task).blends else \
        "Epochs and class weighting"
    return (f"when the run starts it times a few real steps of each plan on this machine — {listed} — and takes "
            f"the first (best expected) whose estimate fits {fits}. {follow} follow from your data; whatever you "
            "set yourself under Advanced is kept.")


def effort_picker(strategy: str) -> float | None:
    """Quick, Balanced or Thorough: the time budget auto plans against, in minutes (None: a fixed method chosen
    under Advanced sets its own time by its epochs)."""
    import torch

    where = "gpu" if torch.cuda.is_available() else "cpu"
    names = list(EFFORT)
    fixed = not planned(strategy)
    effort = st.radio("How long may it train?", names, index=names.index("balanced"), key="effort",
                      format_func=str.capitalize, disabled=fixed,
                      captions=[f"up to {EFFORT[n][0][where]:g} min: {EFFORT[n][1]}" for n in names],
                      help="The studio tries the methods that suit your data on this machine and trains the best one "
                           "that fits this time. It never takes longer; it stops early when more would not help.")
    if fixed:
        st.caption(f"Under Advanced you chose **{STRATEGIES.get(strategy).title.lower()}**: its epochs set the time.")
        return None
    return EFFORT[effort][0][where]


def strategy_picker(ds: Dataset, split_cfg: dict, backbone: str = "", task: str = "classification",
                    picked: bool = False, minutes: float | None = None) -> str:
    rec, why = recommend(int(ds.manifest["rows"]), ds.modality)
    names = [s.name for s in STRATEGIES if s.modalities is None or ds.modality in s.modalities]
    name = st.radio("Strategy", names, index=0, horizontal=True, key="strategy",
                    format_func=lambda n: STRATEGIES.get(n).title + (" (recommended)" if planned(n) else ""))
    if planned(name):
        st.caption(f"**What it will do:** {plan_preview(ds, backbone, picked, minutes)}")
    else:
        st.caption(f"**Why:** {STRATEGIES.get(name).why}")
        if name == rec:
            st.caption(f"**For your data:** {why}")
    return name


def train_options(ds: Dataset, strategy: str, backbone: str = "", task: str = "classification",
                  split_cfg: dict | None = None, budget: float | None = None) -> tuple[dict, list[str]]:
    """(settings, the names the person changed from the defaults; budget: the minutes the effort chosen above
    grants, shown as the budget's default)."""
    scope = {ds.modality, task}
    shown = TrainConfig(backbone=backbone or None)  # a backbone's weights can ask for another default rate (lr_scale)
    if planned(strategy):
        shown, _ = _auto(ds, n_train(ds, split_cfg or {"val": 0.1, "test": 0.1}), backbone, task)
    o: dict[str, Any] = {}
    c = st.columns(3)
    solved, tuned = STRATEGIES.get(strategy).fits_head, STRATEGIES.get(strategy).tunes_encoder
    if tuned:
        c[0].markdown("**Encoder, then head**  \ntuned on pairs of examples (how many: More options), then the "
                      "head solved on its features: no epochs")
    elif solved:
        lr_default = STRATEGIES.get(strategy).lr(shown, ds.modality)
        c[0].markdown("**Head**  \nsolved exactly on the pretrained model's features: no epochs or learning "
                      "rate to set")
    else:
        o["epochs"] = setting_input(c[0], TrainConfig, "epochs", shown.epochs, f"epochs_{strategy}",
                                    label=_field(TrainConfig, "epochs").metadata["label"]
                                    + (" (auto's choice, if the plan trains)" if planned(strategy) else ""))
    if planned(strategy):
        lr_default = STRATEGIES.get(shown.strategy).lr(shown, ds.modality)
        budget = budget or default_budget()
        o["budget_minutes"] = setting_input(c[1], TrainConfig, "budget_minutes", budget, f"budget_auto_{budget:g}")
        st.caption(f"The plans listed above are timed against {o['budget_minutes']:g} minutes. The choice and its "
                   "estimate appear on Monitor; the run stops at the budget with its best checkpoint.")
    elif solved and not tuned:
        pass
    else:
        # the rate the run will get: LP-FT's is its own (ticked under More options, read here before it is drawn)
        lp_ft = bool(st.session_state.get(f"head_first_{strategy}", shown.head_first))
        lr_default = STRATEGIES.get(strategy).lr(replace(shown, head_first=lp_ft), ds.modality)
        key = f"lr_{strategy}_{backbone}{'_lpft' if lp_ft else ''}"  # each backbone's own default, not the last one's
        pending = st.session_state.pop("lr_pending", None)
        if pending and pending[0] == strategy and pending[1]:
            st.session_state[key] = float(pending[1])  # set before the widget exists
        o["lr"] = setting_input(c[1], TrainConfig, "lr", lr_default, key)
    o["batch_size"] = setting_input(c[2], TrainConfig, "batch_size", shown.batch_size, f"bs_{strategy}")
    with st.expander("More options (defaults are sensible)"):
        for row in ADVANCED:
            names = [n for n in row if applies(TrainConfig, n, scope)
                     and not (n == "head_first" and (solved or STRATEGIES.get(strategy).frozen_backbone))]
            cols = st.columns(3)
            for col, n in zip(cols, names):
                default = getattr(shown, n)
                if n == "image_size" and default is None:
                    default = get_backbone(backbone).image_size if backbone else 224
                if n == "max_grad_norm" and default is None:
                    default = 1.0
                o[n] = setting_input(col, TrainConfig, n, default, f"{n}_{strategy}")
        args = strategy_settings(strategy)
        if args:
            o["strategy_args"] = {strategy: args}
    changed = [k for k, v in o.items() if k != "strategy_args" and v != _shown(shown, k, lr_default, backbone)]
    if o.get("budget_minutes") == default_budget():
        o["budget_minutes"] = None  # the device's default, decided where the run trains
    if o.get("lr") == lr_default:
        o["lr"] = None  # the strategy's default: stays None in the config, as the CLI writes it
    if o.get("image_size") is not None and o["image_size"] == _shown(shown, "image_size", lr_default, backbone):
        o["image_size"] = shown.image_size
    if "strategy_args" in o and o["strategy_args"][strategy]:
        changed.append("strategy_args")
    return o, changed


def teacher_options(ds: Dataset, strategy: str, task: str, runs: list[dict]) -> tuple[dict, list[str]]:
    """Distillation: a finished run on this dataset as teacher (the run's weights and split must match; the
    engine checks), its weight and temperature, and for text a shorter student."""
    kind = get_task(task)
    if STRATEGIES.get(strategy).fits_head or not kind.has_classes or kind.several:  # not for label sets yet
        return {}, []
    done = [r for r in runs if r.get("dataset") == ds.id and r.get("status") == "completed"]
    with st.expander("Learn from a teacher run (distillation)"):
        if not done:
            st.caption("No finished run on this dataset yet: train a larger model first, then teach a smaller one.")
            return {}, []
        names = {r["id"]: f"{r.get('name') or r['id']} · {r.get('backbone')} · macro-F1 "
                          f"{(r.get('test') or {}).get('macro_f1', float('nan')):.3f}" for r in done}
        teacher = st.selectbox("Teacher", [None, *names], format_func=lambda i: "none" if i is None else names[i],
                               key="teacher", help=_field(TrainConfig, "teacher").metadata["help"])
        if teacher is None:
            return {}, []
        c = st.columns(3)
        o: dict[str, Any] = {"teacher": teacher}
        o["distill_weight"] = setting_input(c[0], TrainConfig, "distill_weight", 0.5, "distill_weight")
        o["distill_temperature"] = setting_input(c[1], TrainConfig, "distill_temperature", 2.0, "distill_temp")
        if applies(TrainConfig, "keep_layers", {ds.modality}):
            k = int(c[2].number_input("Student: first N layers or blocks (0 = all)", min_value=0, max_value=96,
                                      value=0, step=1, key="keep_layers",
                                      help=_field(TrainConfig, "keep_layers").metadata["help"]))
            if k:
                o["keep_layers"] = k
        st.caption("The student learns the teacher's softened class probabilities besides the labels; when it "
                   "finishes, Evaluate compares the two on the same test rows: scores, size and speed here.")
    return o, list(o)


def default_budget() -> float:
    import torch

    return DEFAULT_MINUTES["gpu" if torch.cuda.is_available() else "cpu"]


def _shown(shown: TrainConfig, name: str, lr_default: float, backbone: str) -> Any:
    if name == "lr":
        return lr_default
    if name == "budget_minutes":
        return default_budget()
    if name == "image_size" and shown.image_size is None:
        return get_backbone(backbone).image_size if backbone else 224
    if name == "max_grad_norm" and shown.max_grad_norm is None:
        return 1.0
    return getattr(shown, name)


def strategy_settings(strategy: str) -> dict[str, Any]:
    """The strategy's own settings, from its settings class; only values changed from its defaults."""
    kind = STRATEGIES.get(strategy).settings
    fs = fields(kind)
    out = {}
    cols = st.columns(max(1, min(3, len(fs)))) if fs else []
    for i, f in enumerate(fs):
        v = setting_input(cols[i % len(cols)], kind, f.name, default_of(f), f"{strategy}_{f.name}")
        if v != default_of(f):
            out[f.name] = v
    return out


def estimate(ds: Dataset, backbone: str, strategy: str, opts: dict, split_cfg: dict, past: list[dict]) -> str:
    """Steps from the data; memory from the weight count; time from earlier runs of the same setup."""
    n = n_train(ds, split_cfg)
    if planned(strategy):
        minutes = opts.get("budget_minutes") or default_budget()
        return (f"About {n:,} training examples. Time: within {minutes:g} minutes; the plan's own estimate appears "
                "on Monitor when the run starts, and the time it took at the end.")
    if STRATEGIES.get(strategy).tunes_encoder:
        s = TrainConfig(strategy=strategy, strategy_args=opts.get("strategy_args") or {}).settings_for()
        pairs = n * s.pairs_per_example
        steps = math.ceil(pairs / opts["batch_size"]) * s.pair_epochs
        return (f"About {n:,} training examples → {pairs:,} pairs, {steps:,} optimiser steps of the encoder; then "
                "one pass over every example and the head is solved in seconds.")
    if STRATEGIES.get(strategy).fits_head:
        return (f"About {n:,} training examples: one pass of the backbone over every example, then the head is "
                "solved in seconds.")
    steps = math.ceil(n / opts["batch_size"]) * opts["epochs"]
    out = f"About {n:,} training examples → {steps:,} optimiser steps."
    spec = next((s for s in list_backbones(include_hidden=True) if s.name == backbone), None)
    share = STRATEGIES.get(strategy).trainable_share
    if spec and spec.params_m:
        # weights, plus gradients and two Adam moments for what trains; activations come on top
        mb = spec.params_m * 1e6 * 4 / 2**20 * (1 + 3 * share)
        out += f" Weights and optimiser state: about {mb:,.0f} MB."
    same = [r for r in past if r.get("backbone") == backbone and r.get("strategy") == strategy
            and r.get("status") == "completed" and r.get("elapsed_s") and r.get("step")]
    if same:
        per_step = same[0]["elapsed_s"] / same[0]["step"]
        out += f" Time: about {max(1, round(per_step * steps / 60))} min, judging by your last run of this setup."
    else:
        out += " Time: shown as an ETA once the first steps have run."
    return out


def build_config(ds: Dataset, backbone: str, strategy: str, opts: dict, split_cfg: dict,
                 test_source: str | None, name: str, chosen: list[str] | None = None,
                 task: str = "classification", test_overlap: str = "warn") -> RunConfig:
    data = DataConfig(source=ds.id, val_fraction=split_cfg["val"], test_fraction=split_cfg["test"],
                      split_seed=split_cfg["seed"], rare_policy=split_cfg["rare"], test_source=test_source, task=task,
                      test_overlap=test_overlap, label_sep=separator_for(ds.items["label"].tolist(), task))
    cfg = RunConfig(data=data, train=TrainConfig(backbone=backbone or None, strategy=strategy, **opts), name=name,
                    chosen=[])
    cfg.choose(*(chosen or []))
    return cfg
