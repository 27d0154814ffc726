"""Forms that build core configs. Pages get a RunConfig, never loose kwargs."""
from __future__ import annotations

import math

import streamlit as st

from core.backbones import get_backbone, list_backbones
from core.config import DataConfig, RunConfig, TrainConfig, help_for
from core.datasets import Dataset
from core.errors import StudioError
from core.strategies import STRATEGIES, recommend, resolve_auto


def backbone_picker(ds: Dataset) -> str:
    specs = [s for s in list_backbones() if s.modality == ds.modality]
    labels = [f"{s.name} — {s.params_m:g}M params{'' if s.is_offline() else ' (needs download)'}" for s in specs]
    choice = st.selectbox("Backbone", labels + ["Other: a torchvision model or Hugging Face id"],
                          help=help_for(TrainConfig, "backbone"))
    if choice.startswith("Other"):
        return st.text_input("Model name or id", placeholder="resnet18 or google/vit-base-patch16-224").strip()
    spec = specs[labels.index(choice)]
    st.caption(spec.description)
    return spec.name


@st.cache_data(ttl=3600, show_spinner=False)
def _params_m(backbone: str) -> float:
    """Millions of weights (a custom Hugging Face id costs one small config download, once an hour)."""
    try:
        return get_backbone(backbone).params_m if backbone else 0.0
    except StudioError:  # unknown or unreachable: Start training names the problem
        return 0.0


def _auto(ds: Dataset, n_train: int, backbone: str) -> tuple[TrainConfig, str]:
    """What auto will pick for this data and backbone (its size decides full fine-tuning or LoRA)."""
    return resolve_auto(TrainConfig(), n_train, ds.modality, list(ds.manifest["classes"].values()),
                        params_m=_params_m(backbone))


def strategy_picker(ds: Dataset, split_cfg: dict, backbone: str = "") -> str:
    rec, why = recommend(int(ds.manifest["rows"]), ds.modality)
    names = ["auto"] + list(STRATEGIES)
    titles = {"auto": "Auto", **{n: s.title for n, s in STRATEGIES.items()}}
    name = st.radio("Strategy", names, index=0, horizontal=True,
                    format_func=lambda n: titles[n] + (" (recommended)" if n == "auto" else ""))
    if name == "auto":
        n_train = int(ds.manifest["rows"] * (1 - split_cfg["val"] - split_cfg["test"]))
        resolved, reason = _auto(ds, n_train, backbone)
        picked = resolved.strategy
        st.caption(f"**Why:** picks the strategy, learning rate, epochs and class weighting from your data. "
                   f"Here: **{STRATEGIES[picked].title.lower()}**, because {reason[0].lower() + reason[1:]}")
    else:
        st.caption(f"**Why:** {STRATEGIES[name].why}")
        if name == rec:
            st.caption(f"**For your data:** {why}")
    return name


def train_options(ds: Dataset, strategy: str, backbone: str = "") -> dict:
    if strategy == "auto":
        picked, _ = _auto(ds, int(ds.manifest["rows"] * 0.8), backbone)
        c = st.columns(3)
        epochs = int(c[0].number_input("Epochs", 1, 200, picked.epochs, help="Auto's choice; change it if you like."))
        c[1].markdown(f"**Learning rate**  \n{STRATEGIES[picked.strategy].lr(picked, ds.modality):.0e}, chosen by auto")
        return {"epochs": epochs, "lr": None, "batch_size": int(c[2].number_input("Batch size", 1, 1024, 32))}
    s = STRATEGIES[strategy]
    default_lr = (s.default_lr or {}).get(ds.modality, 1e-4)
    key = f"lr_{strategy}"
    pending = st.session_state.pop("lr_pending", None)
    if pending and pending[0] == strategy and pending[1]:
        st.session_state[key] = float(pending[1])  # set before the widget exists
    c = st.columns(3)
    o = {"epochs": int(c[0].number_input("Epochs", 1, 200, 8 if strategy == "frozen" else 5)),
         "lr": float(c[1].number_input("Learning rate", 1e-7, 1.0, st.session_state.get(key, default_lr), format="%.1e",
                                       key=key,
                                       help=f"Usual range for {s.title.lower()}: {default_lr / 3:.0e} – {default_lr * 3:.0e}.")),
         "batch_size": int(c[2].number_input("Batch size", 1, 1024, 32))}
    with st.expander("More options (defaults are sensible)"):
        a = st.columns(3)
        o["schedule"] = a[0].selectbox("LR schedule", ["cosine", "linear", "constant"])
        o["warmup_ratio"] = a[1].number_input("Warm-up share", 0.0, 0.5, 0.1, 0.05)
        o["weight_decay"] = a[2].number_input("Weight decay", 0.0, 1.0, 0.01, 0.01)
        b = st.columns(3)
        counts = ds.manifest["classes"]
        imbalanced = max(counts.values()) / max(1, min(counts.values())) >= 3
        o["class_weighting"] = b[0].selectbox("Class weighting", ["none", "balanced"], index=int(imbalanced),
                                              help="'balanced' when some classes are much rarer.")
        o["loss"] = b[1].selectbox("Loss", ["ce", "focal"], format_func={"ce": "cross-entropy", "focal": "focal"}.get)
        o["label_smoothing"] = b[2].number_input("Label smoothing", 0.0, 0.5, 0.0, 0.05)
        d = st.columns(3)
        o["early_stopping_patience"] = int(d[0].number_input("Early-stop patience (epochs, 0 = off)", 0, 50, 3))
        o["grad_accum"] = int(d[1].number_input("Gradient accumulation", 1, 64, 1))
        o["seed"] = int(d[2].number_input("Seed", 0, 1_000_000, 0))
        e = st.columns(3)
        if ds.modality == "image":
            o["augment"] = e[0].checkbox("Augment (random crops, mirroring)", True)
            flip = {"check": None, "always": True, "never": False}
            o["hflip"] = flip[e[0].selectbox("Mirror images", list(flip), disabled=not o["augment"],
                                             format_func={"check": "unless it changes the class",
                                                          "always": "always", "never": "never"}.get,
                                             help=help_for(TrainConfig, "hflip"))]
            o["mixup_alpha"] = e[1].number_input("MixUp alpha (0 = off)", 0.0, 1.0, 0.0, 0.1)
        else:
            o["max_length"] = int(e[0].number_input("Max tokens", 16, 512, 128, 16))
            o["pooling"] = e[1].selectbox(
                "Pooling", ["mean", "cls"], format_func={"mean": "mean of tokens", "cls": "model's pooler (CLS)"}.get,
                help="Mean suits sentence encoders such as MiniLM. CLS is how transformers' "
                     "AutoModelForSequenceClassification reads a text, so the export includes a folder it loads as is.")
        o["amp"] = e[2].checkbox("Mixed precision on GPU", True)
        if strategy == "lora":
            l1, l2 = st.columns(2)
            o["lora_r"] = int(l1.number_input("LoRA rank", 1, 128, 8))
            o["lora_alpha"] = int(l2.number_input("LoRA alpha", 1, 256, 16))
        if strategy == "differential":
            l1, l2 = st.columns(2)
            o["lr_decay"] = l1.number_input("Per-layer LR factor", 0.1, 1.0, 0.8, 0.05, help=help_for(TrainConfig, "lr_decay"))
            o["head_lr_mult"] = l2.number_input("Head LR multiplier", 1.0, 100.0, 10.0)
        if strategy == "partial":
            l1, l2 = st.columns(2)
            o["unfreeze_last"] = int(l1.number_input("Layer groups trained from the start", 0, 50, 2))
            o["unfreeze_every"] = int(l2.number_input("Unfreeze one more every N epochs (0 = never)", 0, 50, 0))
    return o


TRAINABLE_SHARE = {"auto": 1.0, "frozen": 0.0, "lora": 0.02, "partial": 0.3, "differential": 1.0, "full": 1.0}


def estimate(ds: Dataset, backbone: str, strategy: str, opts: dict, split_cfg: dict, past: list[dict]) -> str:
    """Steps from the data; memory from the weight count; time from earlier runs of the same setup."""
    n_train = int(ds.manifest["rows"] * (1 - split_cfg["val"] - split_cfg["test"]))
    steps = math.ceil(n_train / opts["batch_size"]) * opts["epochs"]
    out = f"About {n_train:,} training examples → {steps:,} optimiser steps."
    spec = next((s for s in list_backbones(include_hidden=True) if s.name == backbone), None)
    if spec and spec.params_m:
        # weights, plus gradients and two Adam moments for what trains; activations come on top
        mb = spec.params_m * 1e6 * 4 / 2**20 * (1 + 3 * TRAINABLE_SHARE[strategy])
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
                 test_source: str | None, name: str) -> RunConfig:
    data = DataConfig(source=ds.id, val_fraction=split_cfg["val"], test_fraction=split_cfg["test"],
                      split_seed=split_cfg["seed"], rare_policy=split_cfg["rare"], test_source=test_source)
    return RunConfig(data=data, train=TrainConfig(backbone=backbone, strategy=strategy, **opts), name=name)
