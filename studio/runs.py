"""Run pickers and status formatting shared by Monitor, Evaluate, Predict and Runs."""
from __future__ import annotations

import time

import streamlit as st

from core.errors import StudioError
from core.store import RunRecord

from .services import get_run, run_id, services, set_run, visible_runs

ICON = {"queued": ":material/schedule:", "running": ":material/directions_run:", "completed": ":material/check_circle:",
        "stopped": ":material/stop_circle:", "diverged": ":material/warning:", "failed": ":material/error:",
        "interrupted": ":material/pause_circle:"}


def label(r: dict) -> str:
    t = time.strftime("%b %d %H:%M", time.localtime(r.get("created") or 0))
    return f"{r.get('name') or r['id']} · {r['status']} · {t}"


def pick_run(only_with_model: bool = False) -> RunRecord | None:
    runs = visible_runs()
    if only_with_model:
        runs = [r for r in runs if r["status"] in ("completed", "stopped", "diverged", "interrupted")]
    if not runs:
        st.info("No runs yet. Start one on the **Train** page.")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/tune:")
        return None
    ids = [r["id"] for r in runs]
    cur = run_id()
    idx = ids.index(cur) if cur in ids else 0
    choice = st.selectbox("Run", ids, index=idx, format_func=lambda i: label(next(r for r in runs if r["id"] == i)))
    if choice != cur or st.query_params.get("run") != choice:
        set_run(choice)  # the run id lives in the URL, so refresh and other tabs re-attach
    try:
        return get_run(choice)
    except StudioError as e:
        st.error(str(e))
        return None


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def report_download(rec: RunRecord, key: str) -> None:
    """Build the run's HTML report on request, then offer it for download."""
    from core.report import build_report

    slot = f"report_{key}"
    if st.button("Make the HTML report", key=f"mk_{key}", icon=":material/description:",
                 help="One self-contained file for a domain expert: data, settings, curves, baseline vs model, "
                      "confusion matrix, per-class table and the mistakes with saliency."):
        with st.spinner("Writing the report (with saliency for the mistakes)"):
            ds = services().datasets.find(rec.status.get("dataset"))
            st.session_state[slot] = (rec.id, build_report(rec, ds))
    saved = st.session_state.get(slot)
    if saved and saved[0] == rec.id:
        st.download_button("Download report (HTML)", saved[1], file_name=f"report-{rec.id}.html", mime="text/html",
                           key=f"dl_{key}")
