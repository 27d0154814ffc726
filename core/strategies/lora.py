"""Adapters through peft: small modules trained beside the frozen backbone (LoRA, LoHa, LoKr, IA³, AdaLoRA),
merged into plain layers on export."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..backbones import lora_targets
from ..errors import ModelError
from ..settings import setting
from ..train.events import Callback
from .base import NoSettings, Strategy, decay_split, set_trainable


@dataclass
class LoraSettings:
    r: int = setting(8, low=1, high=1024, label="LoRA rank", help="Rank of the adapters: more capacity, more weights.")
    alpha: int = setting(16, low=1, high=4096, label="LoRA alpha", help="Adapter scale (the update is alpha / r).")
    dropout: float = setting(0.1, low=0, high=1, high_open=True, label="LoRA dropout",
                             help="Dropout on the adapters' input.")


@dataclass
class HadamardSettings:
    r: int = setting(8, low=1, high=1024, label="Rank", help="Rank of each factor.")
    alpha: int = setting(8, low=1, high=4096, label="Alpha", help="Adapter scale (the update is alpha / r).")


@dataclass
class AdaLoraSettings:
    init_r: int = setting(12, low=1, high=1024, label="Starting rank", help="Rank each adapter starts with.")
    target_r: int = setting(8, low=1, high=1024, label="Average final rank",
                            help="Average rank left once the budget is spread where it matters.")
    alpha: int = setting(32, low=1, high=4096, label="Alpha", help="Adapter scale.")
    dropout: float = setting(0.1, low=0, high=1, high_open=True, label="Dropout", help="Dropout on the adapters' input.")
    warmup_share: float = setting(0.1, low=0, high=0.9, label="Steps before pruning (share)",
                                  help="Share of the steps trained at the starting rank before ranks are cut.")
    final_share: float = setting(0.2, low=0, high=0.9, label="Steps at the final ranks (share)",
                                 help="Share of the steps trained after the ranks are fixed.")


class PeftAdapter(Strategy):
    """Adapters on attention projections (transformers) or convolutions (CNNs); the new head trains fully."""
    marker = "lora_"  # what the adapter's own weights are called

    def peft_config(self, s: Any, targets: list[str], cfg):
        raise NotImplementedError

    def prepare(self, model, cfg, modality):
        from peft import inject_adapter_in_model

        set_trainable(model, False)
        conf = self.peft_config(cfg.settings_for(self.name), self.targets(model, lora_targets(model)), cfg)
        inject_adapter_in_model(conf, model)
        model.peft_config = conf
        set_trainable(model.head, True)
        lr = self.lr(cfg, modality)
        adapters = [(n, p) for n, p in model.named_parameters() if self.marker in n]
        for _, p in adapters:
            p.requires_grad_(True)
        # the new head starts from nothing: it gets at least 1e-3 however low the adapters' rate
        return decay_split(adapters, lr, cfg.weight_decay, "adapter" if self.marker != "lora_" else "lora") + \
            decay_split(list(model.head.named_parameters()), lr, cfg.weight_decay, "head", floor=1e-3)

    def targets(self, model, targets: list[str]) -> list[str]:
        return targets

    def merge(self, model: nn.Module) -> nn.Module:
        from peft.tuners.tuners_utils import BaseTunerLayer

        for name, m in list(model.named_modules()):
            if isinstance(m, BaseTunerLayer):
                m.merge()
                parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
                setattr(parent, name.rsplit(".", 1)[-1], m.get_base_layer())
        return model


class Lora(PeftAdapter):
    def peft_config(self, s, targets, cfg):
        from peft import LoraConfig

        return LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=targets, bias="none")


class LoHa(PeftAdapter):
    marker = "hada_"

    def peft_config(self, s, targets, cfg):
        from peft import LoHaConfig

        return LoHaConfig(r=s.r, alpha=s.alpha, target_modules=targets)


class LoKr(PeftAdapter):
    marker = "lokr_"

    def peft_config(self, s, targets, cfg):
        from peft import LoKrConfig

        return LoKrConfig(r=s.r, alpha=s.alpha, target_modules=targets)


class IA3(PeftAdapter):
    marker = "ia3_"

    def peft_config(self, s, targets, cfg):
        from peft import IA3Config

        return IA3Config(target_modules=targets, feedforward_modules=[])


class AdaLora(PeftAdapter):
    """LoRA whose ranks are spread during training to the layers that need them (Zhang et al. 2023): each
    adapter starts at init_r; after a warm-up, singular values that matter least are cut until the average
    rank is target_r (peft's RankAllocator, driven by a callback every step)."""
    marker = "lora_"

    def targets(self, model, targets):
        linear = [t for t in targets if isinstance(model.get_submodule(t), nn.Linear)]
        if not linear:
            raise ModelError("AdaLoRA adapts Linear layers; this backbone's adapters would sit on convolutions. "
                             "Use LoRA, LoHa or LoKr for it.")
        return linear

    def peft_config(self, s, targets, cfg):
        from peft import AdaLoraConfig

        # total_step and the schedule are set from the run's own length when training starts (AdaLoraBudget)
        return AdaLoraConfig(init_r=s.init_r, target_r=s.target_r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                             target_modules=targets, total_step=1000, tinit=0, tfinal=0)

    def callbacks(self, model, cfg) -> list:
        return [AdaLoraBudget(model, cfg.settings_for(self.name))]


class AdaLoraBudget(Callback):
    """AdaLoRA's rank budget: after a warm-up, peft's RankAllocator scores each singular value by its importance
    and cuts the least useful until the average rank reaches the target; the ranks then stay fixed (the same
    schedule as peft's AdaLoraModel.update_and_allocate, driven by the loop's own steps)."""

    def __init__(self, model, settings):
        self.model, self.s = model, settings
        self.allocator = None

    def on_fit_start(self, ctx):
        from peft.tuners.adalora.model import RankAllocator

        conf = self.model.peft_config
        total = max(ctx.state.total_steps, 3)
        conf.total_step = total
        conf.tinit = int(total * self.s.warmup_share)
        conf.tfinal = int(total * self.s.final_share)
        conf.deltaT = max(1, (total - conf.tinit - conf.tfinal) // 10)
        self.allocator = RankAllocator(self.model, conf, "default")

    def on_optimizer_step(self, ctx):
        conf, step = self.model.peft_config, ctx.state.step
        if step < conf.total_step - conf.tfinal:
            _, pattern = self.allocator.update_and_allocate(self.model, step)
            if pattern:
                conf.rank_pattern = pattern
        elif step == conf.total_step - conf.tfinal:
            _, conf.rank_pattern = self.allocator.update_and_allocate(self.model, step, force_mask=True)
            self.allocator.reset_ipt()
        elif conf.rank_pattern:
            self.allocator.mask_using_rank_pattern(self.model, conf.rank_pattern)


LORA = Lora("lora", "LoRA adapters",
            "Small low-rank adapters train beside frozen weights: most of full fine-tuning's gain at a fraction of "
            "the memory.", settings=LoraSettings, default_lr={"image": 1e-3, "text": 5e-4}, trainable_share=0.02,
            adapter=True)
LOHA = LoHa("loha", "LoHa adapters",
            "Low-rank Hadamard-product adapters: more expressive than LoRA for the same number of weights.",
            settings=HadamardSettings, default_lr={"image": 1e-3, "text": 5e-4}, trainable_share=0.03, adapter=True)
LOKR = LoKr("lokr", "LoKr adapters",
            "Kronecker-product adapters: very few weights; strong where the update has structure.",
            settings=HadamardSettings, default_lr={"image": 1e-3, "text": 5e-4}, trainable_share=0.01, adapter=True)
IA3_ = IA3("ia3", "IA³ scaling vectors",
           "Learned scales on the attention (or convolution) outputs: the fewest weights of any adapter, fastest.",
           settings=NoSettings, default_lr={"image": 3e-3, "text": 3e-3}, trainable_share=0.001, adapter=True)
ADALORA = AdaLora("adalora", "AdaLoRA adapters",
                  "LoRA that spends its rank where it matters, pruning the rest while it trains (transformers).",
                  settings=AdaLoraSettings, default_lr={"image": 1e-3, "text": 5e-4}, trainable_share=0.03,
                  adapter=True)
