"""Prompt tuning (Lester et al. 2021) through peft's PromptEmbedding: a few learned "virtual token" embeddings
are put before every text; the transformer stays frozen and only they and the head train. Text transformers
only; nothing to merge, so exports carry the prompt (and have no transformers hf/ folder)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError
from ..settings import setting
from .base import Strategy, decay_split, set_trainable


@dataclass
class PromptSettings:
    virtual_tokens: int = setting(20, low=1, high=200, label="Virtual tokens",
                                  help="Learned embeddings put before every text (each takes a place in max_length's "
                                       "budget of the model's positions).")


class PromptTuning(Strategy):
    def prepare(self, model, cfg, modality):
        from peft import PromptTuningConfig, PromptTuningInit

        enc = model.encoder
        if not hasattr(enc, "prompt"):
            raise ModelError("Prompt tuning puts learned tokens before a text: it needs a text transformer, and this "
                             "backbone is not one. Use LoRA, LoHa, LoKr or IA³.")
        s = cfg.settings_for(self.name)
        words = enc.model.get_input_embeddings()
        conf = PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=s.virtual_tokens,
                                  token_dim=words.embedding_dim, num_transformer_submodules=1,
                                  prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB)  # start from real words
        from peft.tuners.prompt_tuning import PromptEmbedding

        set_trainable(model, False)
        enc.prompt = PromptEmbedding(conf, words)
        set_trainable(enc.prompt, True)
        set_trainable(model.head, True)
        lr = self.lr(cfg, modality)
        return decay_split(list(enc.prompt.named_parameters()), lr, 0.0, "prompt") + \
            decay_split(list(model.head.named_parameters()), lr, cfg.weight_decay, "head", floor=1e-3)

    def positions_taken(self, cfg):
        return cfg.settings_for(self.name).virtual_tokens


PROMPT = PromptTuning("prompt", "Prompt tuning",
                      "A few learned token embeddings before each text steer the frozen transformer: the smallest "
                      "trainable part of any text strategy (text only).", settings=PromptSettings,
                      default_lr={"text": 1e-2}, trainable_share=0.0005, modalities=("text",),
                      changes_features=True)
