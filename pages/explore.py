import json

import pandas as pd
import streamlit as st

from core.data import audit as A
from core.data.split import dataset_split, label_split_summary, split_summary
from core.runs.folder import RunFolder
from core.tasks import REGISTRY as TASKS
from core.tasks.multilabel import cooccurrence, separator_for, split_label
from studio import charts
from studio.entry import through_app
from studio.loading import progress_bar
from studio.services import (current_task, derive, guard, label_reading, need_dataset, services, set_dataset,
                             visible_runs)
from studio.views import VIEWS

through_app()

ds = need_dataset()
view = VIEWS[ds.modality]
st.title("Explore and audit")
st.caption(f"{ds.manifest.get('name', ds.id)} · version `{ds.id}`"
           + (f" · derived from `{ds.manifest['parent']}` ({ds.manifest.get('change', '')})" if ds.manifest.get("parent") else ""))


bar, cb = progress_bar("Auditing")
rep = A.cached_audit(ds, progress=cb)
bar.empty()
s = rep.summary()

task = current_task()
reading = label_reading(ds) if task.several else None
sets = [split_label(v, reading["sep"]) for v in ds.items["label"].tolist()] if reading else None
c = st.columns(5)
c[0].metric("Examples", f"{rep.rows:,}")
c[1].metric("Labels" if reading else "Classes", len(reading["labels"]) if reading else len(rep.classes))
c[2].metric("Exact duplicates", s["exact_duplicates"])
c[3].metric("Near-duplicate groups", s["near_duplicate_groups"])
c[4].metric("Label conflicts", s["label_conflicts"])
for a in rep.advice:
    st.warning(a, icon=":material/lightbulb:")
if not rep.advice:
    st.success("No duplicates, conflicts or balance problems found.", icon=":material/check_circle:")

left, right = st.columns(2)
with left:
    if reading:
        st.pyplot(charts.class_balance(reading["labels"], "label"), clear_figure=True)
        st.pyplot(charts.labels_per_example(pd.Series([len(r) for r in sets])), clear_figure=True)
    elif current_task().has_classes:
        st.pyplot(charts.class_balance(rep.classes), clear_figure=True)
    else:
        st.pyplot(charts.target_hist(pd.to_numeric(ds.items["label"], errors="coerce").dropna(),
                                     "Target values (regression)"), clear_figure=True)
with right:
    view.profile(ds)
if reading:
    names = list(reading["labels"])
    heat, _ = st.columns(2)
    heat.pyplot(charts.cooccurrence_heatmap(cooccurrence(sets, names), names), clear_figure=True)
    scarce = {k: v for k, v in reading["labels"].items() if v < 10}
    if scarce:
        st.warning("Labels too rare to learn or evaluate well: " + ", ".join(f"'{k}' ({v})" for k, v in scarce.items())
                   + ". Under 3 examples a label cannot be in training, validation and test at once; under 10 its "
                   "test score rests on one or two examples. Add examples of them, or take them out (the examples "
                   "keep their other labels).", icon=":material/warning:")
        if st.button(f"Take out {len(scarce)} rare label(s)", key="drop_rare_labels"):
            with guard("Taking out rare labels"):
                set_dataset(derive(ds, A.drop_labels(ds.items, list(scarce), reading["sep"]),
                                   f"take out rare labels {', '.join(scarce)}").id)
                st.rerun()


st.subheader("Fix in one click")
st.caption("Each fix makes a new dataset version; the current one is kept.")
f = st.columns(4)
fixes = {
    "Drop exact duplicates": (f[0], s["exact_duplicates"] > 0, lambda: A.drop_duplicates(ds.items, rep)),
    "Drop near duplicates": (f[1], bool(rep.near_groups), lambda: A.drop_duplicates(ds.items, rep, near=True)),
    "Conflicts: majority label": (f[2], bool(rep.conflicts), lambda: A.resolve_conflicts(ds.items, rep, "majority")),
    "Conflicts: drop them": (f[3], bool(rep.conflicts), lambda: A.resolve_conflicts(ds.items, rep, "drop")),
}
for label, (col, enabled, fn) in fixes.items():
    if col.button(label, disabled=not enabled, width="stretch"):
        with guard(label):
            new = derive(ds, fn(), change=label.lower())
            set_dataset(new.id)
            st.rerun()

if rep.lookalike_labels and not reading:
    st.markdown("**Labels that look alike** — written differently, so they count as different classes:")
    for i, g in enumerate(rep.lookalike_labels):
        c1, c2 = st.columns([4, 1])
        c1.write(" · ".join(f"`{k!r}` ({v})" for k, v in g["labels"].items()))
        if c2.button(f"Merge into {g['into']!r}", key=f"merge_alike_{i}", width="stretch"):
            with guard("Merging labels"):
                set_dataset(derive(ds, A.merge_lookalikes(ds.items, [g]), f"merge labels into {g['into']!r}").id)
                st.rerun()
if rep.numeric_labels and current_task().has_classes:
    if st.button("Treat the labels as numbers to predict (regression)", key="use_regression",
                 icon=":material/show_chart:"):
        st.session_state["task"] = next(t.name for t in TASKS if not t.has_classes)
        st.session_state["task_answered"] = ds.id
        st.rerun()

rare = [k for k, v in rep.classes.items() if v < 3]
if rare and current_task().has_classes and not reading:
    st.error(f"Too few examples to split: {', '.join(rare)}. Merge them, drop them, or use a non-stratified split below.")
    r1, r2 = st.columns(2)
    if r1.button(f"Merge {len(rare)} rare class(es) into 'other'"):
        set_dataset(derive(ds, A.merge_classes(ds.items, rare), "merge rare classes").id)
        st.rerun()
    if r2.button(f"Drop {len(rare)} rare class(es)"):
        set_dataset(derive(ds, A.drop_classes(ds.items, rare), "drop rare classes").id)
        st.rerun()

suspect_runs = [r for r in visible_runs() if r["dataset"] == ds.id and
                 RunFolder(services().runs.root / r["id"]).suspects_file.is_file()]
if suspect_runs:
    sus = pd.read_parquet(RunFolder(services().runs.root / suspect_runs[0]["id"]).suspects_file)
    with st.expander(f"Suspect labels ({len(sus)}), from run {suspect_runs[0]['id']}",
                     expanded=bool(len(sus)) and st.session_state.get("open_suspects", False)):
        st.caption("Examples whose given label a model that never saw them (5-fold, on pretrained features) "
                   "confidently contradicts. Often labelling mistakes; sometimes genuinely ambiguous. "
                   "Select rows, then relabel or drop them.")
        if len(sus):
            table = sus.assign(input=sus["input"].astype(str).str.slice(0, 160))
            picked = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun",
                                  selection_mode="multi-row", key="suspects_table",
                                  column_config={"p_given": st.column_config.NumberColumn("p(given)", format="%.2f"),
                                                 "confidence": st.column_config.NumberColumn(format="%.2f")})
            chosen = sus.iloc[picked.selection.rows] if picked and picked.selection.rows else sus.iloc[0:0]
            if view.shows_files:  # the selected ones, or the most suspicious, as a person sees them
                shown = chosen if len(chosen) else sus
                view.rows(ds, shown["row"].astype(int).tolist()[:8],
                          [f"{r['given']} → {r['suggested']}?" for _, r in shown.head(8).iterrows()])
            b1, b2 = st.columns(2)
            if b1.button(f"Relabel {len(chosen)} to the suggestion", disabled=not len(chosen)):
                items = ds.items.copy()
                items.iloc[chosen["row"].astype(int).tolist(), items.columns.get_loc("label")] = chosen["suggested"].tolist()
                set_dataset(derive(ds, items, f"relabel {len(chosen)} suspect(s)").id)
                st.rerun()
            if b2.button(f"Drop {len(chosen)}", disabled=not len(chosen)):
                items = ds.items.drop(index=ds.items.index[chosen["row"].astype(int).tolist()])
                set_dataset(derive(ds, items, f"drop {len(chosen)} suspect(s)").id)
                st.rerun()
        else:
            st.write("None: no label is confidently contradicted.")

with st.expander(f"Label conflicts ({len(rep.conflicts)})", expanded=bool(rep.conflicts)):
    if rep.conflicts:
        st.dataframe(pd.DataFrame([{"kind": c["kind"], "labels": ", ".join(f"{k}×{v}" for k, v in c["labels"].items()),
                                    "rows": len(c["rows"]), "example": c["example"]} for c in rep.conflicts]),
                     hide_index=True, width="stretch")
        if view.shows_files:  # the same picture under different labels, side by side
            for c in rep.conflicts[:10]:
                view.rows(ds, list(c["rows"])[:8])
    else:
        st.write("None.")
with st.expander(f"Exact duplicate groups ({len(rep.exact_groups)})"):
    for g in rep.exact_groups[:20]:
        view.rows(ds, g)
with st.expander(f"Near-duplicate groups ({len(rep.near_groups)})"):
    for g in rep.near_groups[:20]:
        view.rows(ds, g)

st.download_button("Download audit report (JSON)", json.dumps({"dataset": ds.id, **s, "conflicts": rep.conflicts,
                   "exact_groups": rep.exact_groups, "near_groups": rep.near_groups}, indent=2),
                   file_name=f"audit-{ds.id}.json", mime="application/json")

st.subheader("Split")
st.caption(f"Stratified by {'label' if task.several else 'class'}; every duplicate group stays inside one split, so "
           "nothing leaks into validation or test.")
sc = st.columns(4)
split_cfg = st.session_state.setdefault("split", {"val": 0.1, "test": 0.1, "seed": 0, "rare": "error"})
split_cfg["val"] = sc[0].number_input("Validation share", 0.05, 0.4, split_cfg["val"], 0.05)
split_cfg["test"] = sc[1].number_input("Test share", 0.0, 0.4, split_cfg["test"], 0.05)
split_cfg["seed"] = int(sc[2].number_input("Seed", 0, 10_000, split_cfg["seed"]))
split_cfg["rare"] = sc[3].selectbox("Rare classes", ["error", "unstratified"], index=["error", "unstratified"].index(split_cfg["rare"]),
                                    help="'unstratified' splits randomly when a class is too small to appear in every split.")
with guard("Splitting"):
    sep = separator_for(ds.items["label"].tolist(), task.name)
    split = dataset_split(ds, rep.group_ids, split_cfg["val"], split_cfg["test"], split_cfg["seed"], split_cfg["rare"],
                          task=task.name, label_sep=sep)
    if reading:
        st.dataframe(label_split_summary(sets, split), width="stretch")
        st.caption("Iterative stratification: every label is spread over the splits as its count allows.")
    else:
        strata = pd.Series(task.strata(ds.items["label"].to_numpy()) if not task.has_classes else ds.items["label"])
        st.dataframe(split_summary(strata, split), width="stretch")
    if not task.has_classes:
        st.caption("Rows are fifths of the target's range (bin0 lowest): each split gets low, middle and high values.")
    st.page_link("pages/train.py", label="Next: choose a backbone and train", icon=":material/arrow_forward:")
