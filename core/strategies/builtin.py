"""Full fine-tuning, the frozen backbone, partial/gradual unfreezing and layer-wise learning rates."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..settings import setting
from .base import Strategy, decay_split, named, set_trainable


class Full(Strategy):
    def prepare(self, model, cfg, modality):
        set_trainable(model, True)
        lr = self.lr(cfg, modality)
        return decay_split(named(model.encoder), lr, cfg.weight_decay, "encoder") + \
            decay_split(named(model.head), lr, cfg.weight_decay, "head")


class Frozen(Strategy):
    def prepare(self, model, cfg, modality):
        set_trainable(model.encoder, False)
        set_trainable(model.head, True)
        return decay_split(named(model.head), self.lr(cfg, modality), cfg.weight_decay, "head")


@dataclass
class PartialSettings:
    unfreeze_last: int = setting(2, low=0, high=1000, help="Backbone layer groups trained from the start "
                                                           "(counted from the top).")
    unfreeze_every: int = setting(0, low=0, high=1000, help="Unfreeze one more group every K epochs (0: never).")
    head_lr_mult: float = setting(10.0, low=0, low_open=True, high=1000, help="The new head's rate: lr x this.")



class Partial(Strategy):
    """The top `unfreeze_last` encoder groups train; one more every `unfreeze_every` epochs (gradual)."""

    def _open(self, model, n: int) -> list[nn.Module]:
        groups = model.layer_groups()
        n = min(n, len(groups))
        return groups[len(groups) - n:] if n else []

    def _groups(self, model, cfg, modality, n):
        s = cfg.settings_for(self.name)
        set_trainable(model, False)
        set_trainable(model.head, True)
        lr = self.lr(cfg, modality)
        out = decay_split(named(model.head), lr, cfg.weight_decay, "head", mult=s.head_lr_mult)
        for i, g in enumerate(self._open(model, n)):
            set_trainable(g, True)
            out += decay_split(named(g), lr, cfg.weight_decay, f"group{i}")
        return out

    def prepare(self, model, cfg, modality):
        return self._groups(model, cfg, modality, cfg.settings_for(self.name).unfreeze_last)

    def on_epoch_start(self, model, cfg, epoch, optimizer, modality):
        s = cfg.settings_for(self.name)
        # n grows by one exactly at epochs divisible by unfreeze_every.
        if not s.unfreeze_every or epoch == 0 or epoch % s.unfreeze_every:
            return False
        n = s.unfreeze_last + epoch // s.unfreeze_every
        if n > len(model.layer_groups()):
            return False
        have = {id(p) for g in optimizer.param_groups for p in g["params"]}
        for g in self._groups(model, cfg, modality, n):
            g["params"] = [p for p in g["params"] if id(p) not in have]
            if g["params"]:
                optimizer.add_param_group({**g, "initial_lr": g["lr"]})
        return True


@dataclass
class DifferentialSettings:
    lr_decay: float = setting(0.8, low=0, low_open=True, high=1,
                              help="Each layer group down from the head gets this factor of the one above.")
    head_lr_mult: float = setting(10.0, low=0, low_open=True, high=1000, help="The new head's rate: lr x this.")



class Differential(Strategy):
    """Layer-wise learning rates: the top group gets lr, each lower one lr_decay times the one above."""

    def prepare(self, model, cfg, modality):
        s = cfg.settings_for(self.name)
        set_trainable(model, True)
        lr = self.lr(cfg, modality)
        groups = model.layer_groups()
        out = decay_split(named(model.head), lr, cfg.weight_decay, "head", mult=s.head_lr_mult)
        seen = {id(p) for g in groups for p in g.parameters()}
        for depth, g in enumerate(reversed(groups)):
            out += decay_split(named(g), lr, cfg.weight_decay, f"depth{depth}", mult=s.lr_decay ** depth)
        rest = [(n, p) for n, p in model.encoder.named_parameters() if id(p) not in seen]
        out += decay_split(rest, lr, cfg.weight_decay, "rest", mult=s.lr_decay ** len(groups))
        return out


FROZEN = Frozen("frozen", "Frozen backbone (linear probe)",
                "The backbone's features are computed once and a linear head is solved to convergence on them "
                "(L-BFGS): seconds, hard to overfit; best under ~1k examples.", frozen_backbone=True,
                default_lr={"image": 3e-3, "text": 3e-3}, trainable_share=0.0, fits_head=True)
@dataclass
class ContrastiveSettings:
    pairs_per_example: int = setting(8, low=2, high=200, label="Pairs per example",
                                     help="Partners each training example meets, half of its own class and half of "
                                          "others: the tuning's cost grows with it, linearly in the data.")
    pair_epochs: int = setting(1, low=1, high=20, label="Passes over the pairs")


class Contrastive(Frozen):
    """The encoder tuned on pairs first (core.train.contrastive), then the head solved like frozen's."""

    def tuned_features(self, plan):
        from ..train.contrastive import tune  # the engine imports the strategies: this one reads back at run time

        return tune(plan)


CONTRASTIVE = Contrastive("contrastive", "Contrastive tuning, then a solved head",
                          "The encoder learns from pairs of examples which belong together (a few pairs each), "
                          "then a head is solved on its features: few examples per class go far.",
                          settings=ContrastiveSettings, default_lr={"text": 2e-5, "image": 1e-4},
                          trainable_share=1.0, fits_head=True, changes_features=True,
                          tunes_encoder=True)
PARTIAL = Partial("partial", "Partial / gradual unfreezing",
                  "Top layers adapt, lower generic features stay fixed; unfreeze more every few epochs if asked.",
                  settings=PartialSettings, default_lr={"image": 3e-4, "text": 1e-4}, trainable_share=0.3)
DIFFERENTIAL = Differential("differential", "Differential learning rates",
                            "Every layer trains, lower layers slower: adapts deeply without wrecking pretrained "
                            "features; good for 1k-10k examples.", settings=DifferentialSettings,
                            default_lr={"image": 3e-4, "text": 1e-4})
FULL = Full("full", "Full fine-tuning",
            "Every weight trains at one rate: the most capacity; wants many examples (10k+) or data unlike the "
            "pretraining.", default_lr={"image": 3e-4, "text": 5e-5})
