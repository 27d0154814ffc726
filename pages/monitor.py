import pandas as pd
import streamlit as st

from core.fsutil import read_json
from core.metrics import comparison
from core.predict.blend import describe as blend_line
from studio import charts
from studio.entry import through_app
from studio.identity import current_user
from studio.runs import ICON, eta, pick_run
from studio.services import can_change, event_tail, guard, services
from studio.task_views import TASK_VIEWS, overlap_note, verdict_box

through_app()

st.title("Monitor training")
rec = pick_run()
if rec is None:
    st.stop()
mgr = services().manager


def header(status: dict, state: str, tail) -> None:
    last = tail.last_step["data"] if tail.last_step else {}
    total = status.get("total_steps") or last.get("total_steps") or 0
    done = status.get("step", 0) if state != "running" else (tail.last_step["step"] if tail.last_step else 0)
    c = st.columns([2, 1, 1, 1])
    c[0].markdown(f"### {ICON.get(state, '')} {state.capitalize()}")
    if state == "queued":
        pos = mgr.queue_position(rec.id)
        c[0].caption(f"Waiting for the device: position {pos} in the queue." if pos else "Waiting to start.")
    if status.get("reason"):
        (st.error if state in ("failed", "diverged") else st.info)(status["reason"])
    c[1].metric("Step", f"{done}/{total}" if total else "–")
    c[2].metric("ETA", eta(last.get("eta_s")) if state == "running" else "–")
    c[3].metric("Trainable weights", f"{status.get('trainable_params', 0):,}" if status.get("trainable_params") else "–")
    if state == "running" and last.get("examples_per_s"):
        st.caption(f"{last['examples_per_s']:,.1f} examples/s · waiting for data {last['data_wait_share']:.0%} of the "
                   "time" + (" — the loader is the bottleneck: more loader workers or a smaller image size would "
                             "help" if last["data_wait_share"] > 0.2 else ""))
    if state == "running" and not tail.last_step and tail.last_progress:
        st.progress(tail.last_progress["data"]["fraction"], text=tail.last_progress["data"]["message"])
    elif total:
        st.progress(min(1.0, done / total), text=f"{done}/{total} steps")
    for w in tail.warnings:
        st.warning(w)


@st.fragment(run_every=2)
def live() -> None:
    status = rec.status
    state = status.get("status", "unknown")
    tail = event_tail(rec.dir)
    seen = st.session_state.setdefault("monitor_seen", {})
    if seen.get(rec.id, state) != state:  # redraw the whole page (buttons, sidebar) when the state changes
        seen[rec.id] = state
        st.rerun(scope="app")
    seen[rec.id] = state
    header(status, state, tail)
    view = TASK_VIEWS[status.get("task") or (read_json(rec.labels_file, {}) or {}).get("task", "classification")]
    cur = charts.curves_from_tail(tail)
    metrics, unit = view.live_metrics()
    left, right = st.columns(2)
    with left:
        st.markdown("**Training loss** (per step)")
        if len(cur["steps"]):
            st.line_chart(cur["steps"], x="step", y="train loss", x_label="step", y_label="loss", height=260)
        else:
            st.caption("Appears after the first step.")
    with right:
        st.markdown("**Validation** (per epoch)")
        ep = cur["epochs"]
        if len(ep) >= 2:
            st.line_chart(ep, x="epoch", y=[m for m in metrics if m in ep], x_label="epoch", y_label=unit, height=260)
        elif len(ep) == 1:
            cols = st.columns(len(metrics))
            for col, m in zip(cols, metrics):
                if m in ep:
                    col.metric(f"{m[0].upper() + m[1:]} (epoch 1)", f"{ep[m].iloc[0]:.3f}")
        else:
            st.caption("Appears after the first epoch.")
    l2, r2 = st.columns(2)
    with l2:
        if len(cur["steps"]):
            st.markdown("**Learning rate**")
            st.line_chart(cur["steps"], x="step", y="learning rate", x_label="step", y_label="LR", height=200)
        if len(cur["epochs"]) >= 2:
            st.markdown("**Loss per epoch**")
            st.line_chart(cur["epochs"], x="epoch", y=["train loss", "val loss"], x_label="epoch", y_label="loss",
                          height=200)
    with r2:
        if tail.evals and "confusion" in tail.evals[-1]["data"]:
            e = tail.evals[-1]
            st.pyplot(charts.confusion_heatmap(e["data"]["confusion"], status.get("classes", []),
                                               f"{e['data']['split']} confusion, epoch {e['epoch'] + 1}"),
                      clear_figure=True)
    footer(status, state, view)


def planned_vs_actual(status: dict) -> None:
    """What auto planned before the run, beside what ran: strategy, backbone, epochs, time."""
    p = status["plan"]
    planned = p.get("planned") or {}
    refit = status.get("replanned")
    ran_epochs = f"{status.get('epoch')} (best {status.get('best_epoch')}" + (
        f"; re-fitted to {refit['epochs']} after epoch {refit['after_epoch']} at {refit['epoch_s']:.0f} s an epoch)"
        if refit else ")")
    rows = [("strategy", planned.get("strategy", status.get("resolved_strategy")), status.get("resolved_strategy")),
            ("backbone", planned.get("backbone", status.get("resolved_backbone")), status.get("resolved_backbone")),
            ("epochs", planned.get("epochs") or "none: head solved",
             ran_epochs if planned.get("epochs") else "none: head solved"),
            # the whole run's, as the budget and the time it ran are: what was spent before the plan, then the plan
            ("time", f"{(p.get('spent_s', 0.0) + p['estimate_s']) / 60:.1f} min of {p['budget_s'] / 60:.0f} min",
             f"{status['run_s'] / 60:.1f} min")]
    st.dataframe(pd.DataFrame(rows, columns=["", "planned", "ran"]).astype(str), hide_index=True)


def footer(status: dict, state: str, view) -> None:
    if status.get("auto"):
        st.caption(f"Auto chose **{status.get('resolved_strategy')}**"
                   + (f" of **{status['resolved_backbone']}**" if status.get("resolved_backbone") else "")
                   + f": {status['auto']}")
    if status.get("plan") and status.get("run_s") and state in ("completed", "stopped", "failed", "diverged"):
        planned_vs_actual(status)
    if blend_line(status):
        st.caption(blend_line(status))
    overlap_note(status)
    base = status.get("baseline")
    if base:
        st.caption(f"Baseline to beat ({base['name']}, same split): test {view.baseline_numbers(base)}")
    if state in ("completed", "stopped") and status.get("test"):
        described = status.get("predictor") or {}
        st.markdown(f"**{described.get('title', 'The model')}** · {view.final_line(status['test'], base)}")
        if described.get("sentence"):
            st.caption(described["sentence"])
        if verdict := comparison(status):
            verdict_box(status, verdict)
        st.page_link("pages/evaluate.py", label="Open the evaluation", icon=":material/arrow_forward:")


live()

b1, b2, note = st.columns([1, 1, 4])
state = rec.status.get("status")
mine = can_change(rec.dir)
if not mine:
    note.caption("Shared with you by its owner: you can watch it, not stop or resume it.")
if b1.button("Stop", icon=":material/stop:", disabled=not mine or state not in ("running", "queued")):
    with guard("Stopping"):
        if not mgr.stop(rec.id, owner=current_user()):
            st.warning("This run is not active in this server process.")
        st.rerun()
if b2.button("Resume", icon=":material/play_arrow:",
             disabled=not mine or state not in ("interrupted", "stopped", "failed", "diverged")):
    with guard("Resuming"):
        mgr.resume(rec.id, owner=current_user())
        st.rerun()
