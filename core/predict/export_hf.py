"""A transformers folder for a text model pooled the transformers way (the CLS pooler), loadable by
AutoModelForSequenceClassification as is, checked against the studio model before it is written."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import RunError

README = """
## With transformers only

`hf/` is a standard folder (logits match this model to {diff:.1e}):

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained("hf")
model = AutoModelForSequenceClassification.from_pretrained("hf").eval()
logits = model(**tok(["an example"], return_tensors="pt", padding=True, truncation=True)).logits
print(model.config.id2label[int(logits.argmax(-1)[0])])
```
"""
README_SETS = README.replace(
    "print(model.config.id2label[int(logits.argmax(-1)[0])])",
    "p = logits.sigmoid()[0]  # one probability per label; each label has its own threshold\n"
    "print([model.config.id2label[i] for i, t in enumerate(model.config.thresholds) if p[i] >= t])")


def try_hf(pred, out: Path) -> dict[str, Any]:
    if not pred.task.has_classes:
        return {"written": False, "why": "regression models export as this folder and ONNX"}
    if pred.cfg.train.pooling != "cls":
        return {"written": False, "why": "this run mean-pools token vectors, which AutoModelForSequenceClassification "
                                         "cannot express; train with pooling 'cls' for a transformers folder"}
    try:
        diff = export_hf(pred, out / "hf")
    except RunError as e:
        return {"written": False, "why": str(e)}
    return {"written": True, "folder": "hf", "max_abs_logit_diff": diff, "readme": (README_SETS if pred.task.several else README).format(diff=diff)}


def export_hf(pred, out: Path, atol: float = 1e-4) -> float:
    """save_pretrained of the model's own *ForSequenceClassification class, carrying the fine-tuned encoder and
    head; checked against the studio model on real texts. Returns the largest logit difference."""
    from transformers import AutoModelForSequenceClassification

    enc = pred.model.encoder.model
    config = enc.config.__class__.from_dict(enc.config.to_dict())
    config.num_labels = len(pred.classes)
    config.id2label = dict(enumerate(pred.classes))
    config.label2id = {c: i for i, c in enumerate(pred.classes)}
    if pred.task.several:  # transformers then reads each logit through a sigmoid, and trains it with BCE
        config.problem_type = "multi_label_classification"
        config.thresholds = pred.meta.get("thresholds")
    config.architectures = None
    hf = AutoModelForSequenceClassification.from_config(config)
    base, head = getattr(hf, hf.base_model_prefix, None), getattr(hf, "classifier", None)
    if base is None or not isinstance(head, torch.nn.Linear) or getattr(base, "pooler", None) is None:
        raise RunError(f"{config.model_type}: its sequence-classification head is not one Linear on the pooled "
                       "output, so it cannot carry this model as is; use this folder or ONNX instead")
    base.load_state_dict(enc.state_dict(), strict=True)
    head.load_state_dict(pred.model.head[-1].state_dict())
    hf.eval()
    texts = ["A first check sentence.", "Another, somewhat longer sentence to compare the two models on."]
    batch, _, _ = pred.pre.batch(texts)
    with torch.no_grad():
        diff = float((hf(**batch).logits - pred.model(**batch)).abs().max())
    if diff > atol:
        raise RunError(f"the transformers model differs from the studio model by {diff:.2g} in the logits; "
                       "hf/ was not written")
    hf.save_pretrained(out, safe_serialization=True)
    pred.pre.tokenizer.save_pretrained(out)
    return diff
