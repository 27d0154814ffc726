"""Run pickers and status formatting shared by Monitor, Evaluate, Predict and Runs."""
from __future__ import annotations

import time

import streamlit as st

from core.errors import StudioError
from core.runs.folder import RunFolder

from .services import get_run, run_id, services, set_run, visible_runs

ICON = {"queued": ":material/schedule:", "running": ":material/directions_run:", "completed": ":material/check_circle:",
        "stopped": ":material/stop_circle:", "diverged": ":material/warning:", "failed": ":material/error:",
        "interrupted": ":material/pause_circle:"}


def label(r: dict) -> str:
    """Unique per run: a picker keeps its choice by this text, so two runs alike in name, status and minute (a
    run continued twice, search trials) would otherwise read back as the first of them."""
    t = time.strftime("%b %d %H:%M", time.localtime(r.get("created") or 0))
    name = r.get("name") or r["id"]
    return f"{name} · {r['status']} · {t}" + ("" if name == r["id"] else f" · {r['id'][-6:]}")


def pick_run(only_with_model: bool = False) -> RunFolder | None:
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


def report_download(rec: RunFolder, key: str) -> None:
    """Build the run's HTML report as a job (saliency for the mistakes takes a while), then offer it."""
    from core.report.html import build_report

    from .jobs import job_panel, start_job

    if st.button("Make the HTML report", key=f"mk_{key}", icon=":material/description:",
                 help="One self-contained file for a domain expert: data, settings, curves, baseline vs model, "
                      "the task's own charts and the mistakes with saliency."):
        ds = services().datasets.find(rec.status.get("dataset"))

        def work(progress, cancelled):
            progress(0.1, "Writing the report (with saliency for the mistakes)")
            return build_report(rec, ds)
        start_job(f"report_{key}", work, label="The HTML report", context=rec.id)
    html = job_panel(f"report_{key}", context=rec.id)
    if html is not None:
        st.download_button("Download report (HTML)", html, file_name=f"report-{rec.id}.html", mime="text/html",
                           key=f"dl_{key}")
