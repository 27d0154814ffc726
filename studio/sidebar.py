"""The sidebar's 'where am I / what next'."""
from __future__ import annotations

import streamlit as st

from core.errors import StudioError

from .identity import current_user, describe
from .services import current_dataset, current_task, get_run, label_reading, run_id

NEXT = {
    "1 · Data": "Load a CSV of text + label, or images in class folders.",
    "2 · Explore": "Check duplicates and conflicts, fix them, then go to Train.",
    "3 · Train": "Say how long it may train, then start; Advanced holds every setting.",
    "4 · Monitor": "Watch the curves; Stop any time. Then Evaluate.",
    "5 · Evaluate": "See where the model fails, then Predict & Export.",
    "6 · Predict & Export": "Try new inputs, predict a file, download the model.",
    "Review labels": "Decide on the examples listed, make a new version, continue training on it.",
    "Runs": "Compare runs trained on the same split.",
    "Search settings": "Let the studio try settings; open or export the best trial.",
}


def where_am_i(title: str) -> None:
    with st.sidebar:
        st.markdown("### Fine-Tune Studio")
        user = current_user()
        ds = current_dataset()
        if ds:
            task = current_task()
            reading = label_reading(ds) if task.several else None
            count = f"{len(reading['labels'])} labels" if reading else \
                f"{len(ds.classes)} {'classes' if task.has_classes else 'distinct values'}"
            st.markdown(f"**Dataset:** {ds.manifest.get('name', ds.id)}  \n"
                        f"{ds.manifest['rows']:,} {ds.modality}s · {count}  \n`{ds.id}`")
        else:
            st.markdown("**Dataset:** none yet")
        rid = run_id()
        if rid:
            try:
                st_ = get_run(rid).status
                st.markdown(f"**Run:** `{rid}` · {st_.get('status', '?')}")
            except StudioError:
                pass
        if title in NEXT:
            st.caption(f"Next: {NEXT[title]}")
        st.caption(describe(user), help="Who sees what is set by the server's administrator (README, 'Sharing a server').")
