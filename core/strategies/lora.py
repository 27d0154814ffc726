"""Adapters through peft: low-rank adapters beside frozen weights, merged into plain layers on export."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..settings import setting
from .base import Strategy, decay_split, set_trainable


@dataclass
class LoraSettings:
    r: int = setting(8, low=1, high=1024, label="LoRA rank", help="Rank of the adapters: more capacity, more weights.")
    alpha: int = setting(16, low=1, high=4096, label="LoRA alpha", help="Adapter scale (the update is alpha / r).")
    dropout: float = setting(0.1, low=0, high=1, high_open=True, label="LoRA dropout",
                             help="Dropout on the adapters' input.")



class Lora(Strategy):
    """peft LoRA adapters on attention (transformers) or convolutions (CNNs); the new head trains fully."""

    def prepare(self, model, cfg, modality):
        from peft import LoraConfig, inject_adapter_in_model

        from ..backbones import lora_targets

        s = cfg.settings_for(self.name)
        set_trainable(model, False)
        conf = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=lora_targets(model),
                          bias="none")
        inject_adapter_in_model(conf, model)
        model.lora_config = conf
        set_trainable(model.head, True)
        lr = self.lr(cfg, modality)
        lora = [(n, p) for n, p in model.named_parameters() if "lora_" in n]
        for _, p in lora:
            p.requires_grad_(True)
        # the new head starts from nothing: it gets at least 1e-3 however low the adapters' rate
        return decay_split(lora, lr, cfg.weight_decay, "lora") + \
            decay_split(list(model.head.named_parameters()), lr, cfg.weight_decay, "head", floor=1e-3)

    def merge(self, model: nn.Module) -> nn.Module:
        from peft.tuners.tuners_utils import BaseTunerLayer

        for name, m in list(model.named_modules()):
            if isinstance(m, BaseTunerLayer):
                m.merge()
                parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
                setattr(parent, name.rsplit(".", 1)[-1], m.get_base_layer())
        return model


LORA = Lora("lora", "LoRA adapters",
            "Small low-rank adapters train beside frozen weights: most of full fine-tuning's gain at a fraction of "
            "the memory.", settings=LoraSettings, default_lr={"image": 1e-3, "text": 5e-4}, trainable_share=0.02,
            adapter=True)
