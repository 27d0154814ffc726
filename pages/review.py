import pandas as pd
import streamlit as st

from core.data.review import DECISIONS, REASONS, decide, decisions, new_version
from core.runs.review import run_queue
from core.train.parent import continued_config
from studio.entry import through_app
from studio.identity import current_user
from studio.runs import pick_run
from studio.services import guard, services, set_run
from studio.views import fmt

through_app()

PAGE = 10
SHOWN = {"accept": "Correct", "relabel": "Relabel", "ambiguous": "Ambiguous", "remove": "Remove"}
LISTED = {"suspect": "doubted labels", "error": "confident mistakes", "unsure": "least sure (test)",
          "unsure_oof": "least sure (training)", "conflict": "conflicting inputs"}

st.title("Review labels")
st.caption("The examples of a run's data most worth an expert's look: labels a model that never saw them doubts, "
           "the model's confident mistakes, what it is least sure about, and inputs that appear with different "
           "labels. Each decision is saved as you make it; nothing changes the data until you make a new version.")
rec = pick_run(only_with_model=True)
if rec is None:
    st.stop()
with guard("Building the review queue"):
    ds, queue = run_queue(rec, services().datasets)
if queue.empty:
    st.info("Nothing stands out in this run's data: no doubted label, confident mistake or conflicting input.")
    st.stop()

who = st.text_input("Your name (recorded with each decision)", key="reviewer") or (current_user() or "")
listed = queue["reasons"].str.split(",")
counts = {r: int(listed.apply(lambda rs, r=r: r in rs).sum()) for r in REASONS}
show = st.pills("Show", [r for r in REASONS if counts[r]], selection_mode="multi",
                default=[r for r in REASONS if counts[r]], key=f"reasons_{ds.id}",
                format_func=lambda r: f"{LISTED[r]} ({counts[r]})")
rows = queue[listed.apply(lambda rs: any(r in (show or []) for r in rs))]
pages = max(1, -(-len(rows) // PAGE))
page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key=f"review_page_{ds.id}") - 1
made = decisions(ds)


def _save(pos: int, given: str, suggested: str | None) -> None:
    """A decision the moment it is made; 'Change label' starts from the model's suggestion."""
    choice = st.session_state.get(f"dec_{ds.id}_{pos}")
    label_key = f"lab_{ds.id}_{pos}"
    try:
        if choice == "relabel":
            label = st.session_state.get(label_key) or (suggested if suggested and suggested != given else
                                                         next((c for c in ds.classes if c != given), given))
            decide(ds, pos, "relabel", label, who)
        elif choice:
            decide(ds, pos, choice, None, who)
    except Exception as e:  # a full disk or a bad label: said, the page goes on
        st.session_state["review_error"] = str(e)


if st.session_state.pop("review_error", None):
    st.error("The last decision could not be saved; it is shown as it was before.")
for _, r in rows.iloc[page * PAGE:(page + 1) * PAGE].iterrows():
    pos, given = int(r["pos"]), str(r["label"])
    saved = made.get(pos, {})
    with st.container(border=True):
        left, right = st.columns([5, 4])
        if "file" in r and isinstance(r.get("file"), str):
            left.image(r["file"], width=160)
        else:
            left.markdown(r["input"][:1000])
        said = ("" if pd.isna(r["predicted"]) else f"model: **{fmt(r['predicted'])}**"
                + ("" if pd.isna(r["confidence"]) else f" ({r['confidence']:.0%})"))
        left.caption(f"Row {pos} · given **{given}**" + (f" · {said}" if said else "")
                     + f" · listed because {r['why']}")
        suggested = None if pd.isna(r["predicted"]) else r["predicted"]
        dec = right.segmented_control("Decision", list(DECISIONS), format_func=SHOWN.get, key=f"dec_{ds.id}_{pos}",
                                      default=saved.get("decision") or None, on_change=_save,
                                      args=(pos, given, suggested),
                                      help="; ".join(f"{SHOWN[k]}: {v}" for k, v in DECISIONS.items()))
        if dec == "relabel":
            current = saved.get("label") if saved.get("decision") == "relabel" else None
            options = sorted(set(ds.classes) | ({current} if current else set()))
            right.selectbox("Right label", options, index=options.index(current) if current in options else None,
                            key=f"lab_{ds.id}_{pos}", on_change=_save,
                            args=(pos, given, suggested),
                            accept_new_options=True, placeholder="choose or type a label")
        if saved:
            right.caption(f"Saved: {SHOWN[saved['decision']]}"
                          + (f" → {saved['label']}" if saved.get("label") else "")
                          + (f" · by {saved['who']}" if saved.get("who") and ":" not in saved["who"] else ""))

st.divider()
made = decisions(ds)
tally = {k: sum(d["decision"] == k for d in made.values()) for k in DECISIONS}
st.markdown("**Decisions so far:** " + ", ".join(f"{SHOWN[k].lower()} {n}" for k, n in tally.items()))
if st.button("Make the new version of the data", type="primary", icon=":material/library_add:",
             disabled=not (tally["relabel"] or tally["remove"] or tally["ambiguous"]),
             help="A new dataset version with the changed labels, without the removed and ambiguous examples; every "
                  "other example stays in its split, so the next run is judged on the same test examples."):
    with guard("Making the new version"):
        new, summary = new_version(services().datasets, ds, who)
        st.session_state["reviewed"] = (rec.id, new.id, summary)
done = st.session_state.get("reviewed")
if done and done[0] == rec.id:
    _, new_id, summary = done
    st.success(f"New version {new_id}: {summary['relabel']} relabelled, {summary['remove']} removed, "
               f"{summary['ambiguous']} ambiguous left out; {summary['rows']:,} examples"
               + (", each in the split it was in." if summary["splits_kept"] else "."))
    if st.button("Continue training from this run on it", icon=":material/play_arrow:"):
        with guard("Starting the run"):
            h = services().manager.submit(continued_config(rec, new_id), owner=current_user())
            set_run(h.id)
            st.switch_page("pages/monitor.py")
