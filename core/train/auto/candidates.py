"""The plans 'auto' considers, best first (benchmarks/README.md, "auto against a budget"): on a CPU a frozen
larger encoder (features once, head solved, blended with TF-IDF + its embeddings) beat full fine-tuning of the
small one on the text sets; with a GPU, fine-tuning the larger encoder is affordable."""
from __future__ import annotations

from typing import Callable

from ...backbones import registered
from ...strategies import get_strategy

CANDIDATES: dict[tuple[str, bool], list[tuple[str, str]]] = {
    ("text", True): [("all-mpnet-base-v2", "full"), ("all-mpnet-base-v2", "lora"), ("all-MiniLM-L6-v2", "full"),
                     ("all-mpnet-base-v2", "frozen"), ("all-MiniLM-L6-v2", "frozen")],
    ("text", False): [("all-mpnet-base-v2", "full"), ("all-mpnet-base-v2", "frozen"), ("all-MiniLM-L6-v2", "full"),
                      ("all-MiniLM-L6-v2", "frozen")],
    ("image", True): [("mobilenet_v2", "full"), ("mobilenet_v2", "frozen")],
    ("image", False): [("mobilenet_v2", "full"), ("mobilenet_v2", "frozen")],
}


def offline(backbone: str) -> bool:
    spec = registered(backbone)
    return spec is not None and spec.is_offline()


def candidates(modality: str, gpu: bool, backbone: str | None, fixed_backbone: bool,
               available: Callable[[str], bool] = offline, trains_only: bool = False) -> list[tuple[str, str]]:
    """The plans to consider: the list for this modality and device, or, when the person chose the backbone,
    that backbone's full fine-tune and frozen head (best first). trains_only: plans that take training steps
    (a distilled student learns from its teacher by them)."""
    out = None
    if not fixed_backbone and (modality, gpu) in CANDIDATES:
        out = [(b, s) for b, s in CANDIDATES[(modality, gpu)] if available(b)]
    out = out or [(backbone, "full"), (backbone, "frozen")]
    return [c for c in out if not (trains_only and get_strategy(c[1]).fits_head)]
