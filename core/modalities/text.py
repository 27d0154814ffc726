"""Text: tokenised once with the backbone's own tokenizer, padded per batch; the same encoding for training,
prediction, explanation and export."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..backbones import text_positions, tokenizer_for
from ..data.near import normalise_text, text_near_pairs
from ..errors import ConfigError
from ..predict.blend import fit_lexical, text_features
from ..predict.explain import token_attributions
from ..portable import text_problem
from ..predict.export_hf import try_hf
from ..train.textaug import THESAURUS_NAME, augment, thesaurus
from .base import Inputs, LinearView, Modality


@dataclass
class TextPrep:
    tokenizer: Any
    max_length: int

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)
        return [torch.tensor(x, dtype=torch.long) for x in enc["input_ids"]]

    def pad(self, seqs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = s
            mask[r, :len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def batch(self, texts: list[Any]) -> tuple[dict[str, torch.Tensor] | None, list[int], list[str | None]]:
        """Model inputs for the usable texts, their positions, and a reason for each unusable one (a model
        would score an empty text, and the score would mean nothing)."""
        errors = [text_problem(t) for t in texts]
        ok = [i for i, e in enumerate(errors) if e is None]
        if not ok:
            return None, ok, errors
        return self.pad(self.encode([texts[i] for i in ok])), ok, errors


class TextInputs(Inputs):
    def __init__(self, ids: list[torch.Tensor], prep: TextPrep, texts: list[str] | None = None, strength: float = 0.0):
        self.ids, self.prep, self.texts, self.strength = ids, prep, texts, strength

    def __len__(self) -> int:
        return len(self.ids)

    def draw(self, n, gen):
        """A seed per text for its random edit (core.train.textaug), when augmentation is on."""
        return torch.randint(0, 2**31 - 1, (n,), generator=gen) if self.strength > 0 and self.texts else None

    def batch(self, idx, randoms=None, flip=True):
        if randoms is None:
            return self.prep.pad([self.ids[i] for i in idx.tolist()])
        edited = [augment(self.texts[i], self.strength, int(r)) for i, r in zip(idx.tolist(), randoms.tolist())]
        return self.prep.pad(self.prep.encode(edited))


class TextView(LinearView):
    def __init__(self, texts: list[str], embeddings, name: str):
        self.texts, self.features, self.name = texts, embeddings, name

    def baseline_matrices(self, train, test):
        x = text_features(self.texts, train)
        return x[train], x[test]

    def suspect_matrix(self, rows, train):
        return text_features(self.texts, train)[rows]

    def partner(self, rows, y, n_classes, seed=0, like=None):
        return fit_lexical([self.texts[i] for i in rows], y, n_classes,
                           None if self.features is None else self.features[rows], seed,
                           emb_weight=None if like is None else like.meta["emb_weight"])


class TextModality(Modality):
    name = "text"
    noun = "text"
    input_col = "text"
    input_names = ("input_ids", "attention_mask")
    default_backbone = "all-MiniLM-L6-v2"
    upload_types = ()
    readme_example = '["an example"]'
    readme_kind = "texts"

    key_col = "text"
    partner_phrase = "on TF-IDF"

    def dataset_inputs(self, ds):
        return ds.items["text"].tolist()

    def displays(self, items):
        return items["text"].astype(str).tolist()

    def duplicate_keys(self, items):
        import pandas as pd

        return pd.Series([normalise_text(t) for t in items["text"]])

    def near_pairs(self, items, keys, rows):
        return text_near_pairs(keys.iloc[rows].tolist())

    def auto_picks(self, n_train, facts, has_classes):
        picks: dict[str, Any] = {"epochs": 6 if n_train < 1000 else 4 if n_train < 10_000 else 3}
        notes = []
        lengths = facts.get("text_lengths")
        if lengths and sorted(lengths)[int(0.9 * (len(lengths) - 1))] > 600:  # characters, roughly 128+ tokens
            picks["max_length"] = 256
            notes.append("long texts, so up to 256 tokens are read")
        return picks, notes

    def preprocessor(self, spec, t) -> TextPrep:
        return TextPrep(tokenizer_for(spec), t.max_length if t is not None else 128)

    def fit_to_backbone(self, spec, t, reserved=0):
        limit = text_positions(spec)
        if limit is None or t.max_length + reserved <= limit:
            return []
        if limit - reserved < 8:
            raise ConfigError(f"{spec.name} reads at most {limit} tokens and the strategy puts {reserved} before "
                              "every text: nothing is left for the text. Use fewer virtual tokens.")
        asked, t.max_length = t.max_length, limit - reserved
        taken = f", {reserved} of them taken by the prompt's virtual tokens" if reserved else ""
        return [f"Max tokens {asked} is more than {spec.name} reads ({limit} positions{taken}): texts are cut "
                f"at {t.max_length} tokens."]

    def build_inputs(self, pre, items, cache, progress, t=None):
        if progress:
            progress(0.0, f"Tokenising {len(items):,} texts")
        return TextInputs(pre.encode(items), pre, items, t.text_augment if t is not None else 0.0)

    def augment_preview(self, items, spec, t, seed=0):
        if not t.text_augment:
            return None
        rows = [{"original": x, "as one training batch sees it": augment(str(x), t.text_augment, seed + i)}
                for i, x in enumerate(items)]
        note = (f"Synonyms from {THESAURUS_NAME}." if thesaurus() is not None else
                "No thesaurus on this machine: insertion repeats a word of the same text; no synonym replacement.")
        return {"table": rows, "note": note + " Each epoch draws new edits; validation, test and predictions see "
                                              "the texts as they are."}

    def feature_variant(self, pre, t) -> str:
        return f"len{pre.max_length}-{t.pooling}" + (f"-first{t.keep_layers}" if t.keep_layers else "")

    def auto_facts(self, ds, train_items):
        return {"text_lengths": [len(x) for x in train_items]}

    def linear_view(self, data, features, blend=False):
        """The texts, and for the blend the pretrained encoder's sentence embeddings of them beside: the partner
        weighs the two by cross-validation."""
        return TextView(data.files, features.pretrained() if blend else None, f"TF-IDF + {data.task.estimator}")

    def explain(self, pred, raw, target=None):
        return token_attributions(pred, raw, target)

    def extra_export(self, pred, out):
        return try_hf(pred, out)

    def onnx_axes(self):
        return {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}


TEXT = TextModality()
