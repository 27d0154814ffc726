"""A run and the runs that continue it: continue training from a finished run (on its data or a corrected version
of it), and what changed from the parent to the child on the test examples both were judged on."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.fsutil import read_json
from core.runs.changes import summary
from core.runs.folder import RunFolder
from core.train.parent import continued_config

from .identity import current_user
from .services import guard, services, set_run
from .views import fmt


def _versions(ds_id: str) -> list[dict]:
    """The dataset version a run trained on and every version derived from it, newest first."""
    every = services().datasets.list()
    family, grew = {ds_id}, True
    while grew:
        more = {d["id"] for d in every if d.get("parent") in family} - family
        family |= more
        grew = bool(more)
    return sorted((d for d in every if d["id"] in family), key=lambda d: -(d.get("created") or 0))


def continue_panel(rec: RunFolder) -> None:
    """Train on from this run's weights with its settings: more epochs, or a corrected version of its data."""
    status = rec.status
    if status.get("status") not in ("completed", "stopped") or rec.weights is None:
        return
    with st.expander("Continue training from this run", icon=":material/replay:"):
        versions = _versions(status["dataset"])
        names = {d["id"]: f"{d.get('name') or d['id']} · {d['id']}" + (f" · {d['change']}" if d.get("change") else "")
                 + (" (what this run trained on)" if d["id"] == status["dataset"] else "") for d in versions}
        source = st.selectbox("Data", list(names), format_func=names.get, key=f"continue_data_{rec.id}",
                              help="This run's own data for more epochs, or a version made from it after fixing "
                                   "labels or duplicates. The split is the run's own, so the two can be compared.")
        cfg = continued_config(rec, source)
        epochs = st.number_input("Epochs", min_value=1, max_value=1000, value=int(cfg.train.epochs), step=1,
                                 key=f"continue_epochs_{rec.id}")
        st.caption(f"Starts from this run's trained weights with its settings ({cfg.train.strategy}, "
                   f"{cfg.train.backbone or 'its backbone'}); when it ends, Evaluate shows what changed.")
        if st.button("Continue training", icon=":material/play_arrow:", key=f"continue_{rec.id}"):
            with guard("Starting the run"):
                cfg.train.epochs = int(epochs)
                cfg.choose("epochs")
                h = services().manager.submit(cfg, owner=current_user())
                set_run(h.id)
                st.switch_page("pages/monitor.py")


def changes_view(rec: RunFolder) -> None:
    """A continued run against its parent: the verdict, per-class recall, the examples fixed and broken."""
    changes = read_json(rec.parent_changes_file) if rec.parent_changes_file.is_file() else None
    if not changes:
        return
    st.subheader("What changed since its parent")
    verdict = (changes.get("vs_parent") or {}).get("verdict")
    box = {"better": st.success, "worse": st.error}.get(verdict, st.info)
    box(f"Continued from run {changes['parent']}. {summary(changes)}")
    if changes.get("per_class"):
        table = pd.DataFrame(changes["per_class"]).rename(columns={"parent_recall": "recall before",
                                                                    "child_recall": "recall now"})
        table["change"] = table["recall now"] - table["recall before"]
        st.dataframe(table.style.format({c: "{:.2f}" for c in ("recall before", "recall now", "change")},
                                        na_rep="–"), hide_index=True, width="stretch")
    c = changes.get("vs_parent") or {}

    def title(key: str, total_key: str) -> str:
        shown, total = len(changes.get(key) or []), c.get(total_key, len(changes.get(key) or []))
        return f"{key.capitalize()} ({total})" + (f", first {shown} shown" if shown < total else "")
    names = ("closer", "farther") if c.get("metric") == "mae" else ("fixed", "broken")
    fixed, broken = st.tabs([title("fixed", names[0]), title("broken", names[1])])
    for tab, key in ((fixed, "fixed"), (broken, "broken")):
        with tab:
            rows = pd.DataFrame(changes.get(key) or [])
            if rows.empty:
                st.caption("None.")
                continue
            if "file" in rows.columns:
                cols = st.columns(6)
                for i, (_, r) in enumerate(rows.iterrows()):
                    cols[i % 6].image(r["file"], width=110, caption=f"{fmt(r['true'])}: {fmt(r['pred_parent'])} → "
                                                                     f"{fmt(r['pred'])}")
            else:
                shown = rows[[c for c in ("input", "true", "pred_parent", "pred") if c in rows.columns]]
                st.dataframe(shown.rename(columns={"true": "label", "pred_parent": "before", "pred": "now"}),
                             hide_index=True, width="stretch")
