"""The Train page's preview of training examples as the loop will see them (text edits, crops, MixUp/CutMix)."""
from __future__ import annotations

import streamlit as st

from core.backbones import get_backbone
from core.config import TrainConfig
from core.data.datasets import Dataset
from core.modalities import get_modality
from studio.services import guard


def augment_preview(ds: Dataset, backbone: str, opts: dict) -> None:
    try:
        t = TrainConfig(**{k: v for k, v in opts.items() if k != "strategy_args"})
    except Exception:  # the form shows what is wrong with its own values
        return
    modality = get_modality(ds.modality)
    with st.expander("Preview training augmentation"):
        seed = int(st.number_input("Draw", min_value=0, value=0, step=1, key="aug_seed",
                                   help="Another draw of the same random edits."))
        with guard("Previewing augmentation"):
            items = ds.inputs()[: 4 if modality.file_inputs else 5]
            shown = modality.augment_preview(items, get_backbone(backbone or modality.default_backbone), t, seed)
            if shown is None:
                st.caption("Nothing augments the training examples with these settings.")
                return
            if "table" in shown:
                st.dataframe(shown["table"], hide_index=True, width="stretch")
            else:
                cols = st.columns(len(shown["images"]))
                for col, (caption, img) in zip(cols, shown["images"]):
                    col.image(img, caption=caption, width="stretch")
            st.caption(shown["note"])
