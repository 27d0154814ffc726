"""A page starts long work as a job (core.runs.jobs) and shows its progress with a Cancel button; the result comes
back to the page when it is done, and the page never blocks meanwhile."""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from .identity import current_user
from .services import services


def start_job(key: str, fn: Callable, label: str, context: Any = None) -> None:
    job = services().jobs.submit(fn, label, owner=current_user())
    st.session_state[f"job_{key}"] = (job.id, context)


def job_panel(key: str, context: Any = None) -> Any:
    """Progress and Cancel while the job runs; its result once done (None before, after an error, or when the
    job was started for another context, e.g. another run)."""
    saved = st.session_state.get(f"job_{key}")
    if not saved or saved[1] != context:
        return None
    job = services().jobs.get(saved[0], current_user())
    if job is None:
        return None
    if not job.done:
        _progress(key, job.id)
        return None
    if job.error:
        (st.info if job.error == "Cancelled." else st.error)(f"{job.label}: {job.error}")
        return None
    return job.result


def _progress(key: str, job_id: str) -> None:
    @st.fragment(run_every=1)
    def live() -> None:
        job = services().jobs.get(job_id, current_user())
        if job is None or job.done:
            st.rerun(scope="app")
        c1, c2 = st.columns([5, 1])
        c1.progress(job.fraction, text=f"{job.label}: {job.message}")
        if c2.button("Cancel", key=f"cancel_{key}", icon=":material/cancel:"):
            services().jobs.cancel(job_id, current_user())
    live()


def job_result(key: str, fn: Callable, label: str, context: Any) -> Any:
    """Start the job for this context once (not on every rerun), show its progress, return its result when done."""
    saved = st.session_state.get(f"job_{key}")
    if not saved or saved[1] != context:
        start_job(key, fn, label, context)
    return job_panel(key, context)
