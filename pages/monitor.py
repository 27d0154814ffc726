import streamlit as st

from core.baseline import comparison
from core.blend import describe as blend_line
from studio import charts
from studio.entry import through_app
from studio.identity import current_user
from studio.runs import ICON, eta, pick_run
from studio.services import can_change, guard, services

through_app()

st.title("Monitor training")
rec = pick_run()
if rec is None:
    st.stop()
mgr = services().manager


@st.fragment(run_every=2)
def live() -> None:
    status = rec.status
    state = status.get("status", "unknown")
    events = rec.events()
    steps = [e for e in events if e["kind"] == "step"]
    last = steps[-1]["data"] if steps else {}
    total = status.get("total_steps") or last.get("total_steps") or 0
    done = status.get("step", 0) if state != "running" else (steps[-1]["step"] if steps else 0)

    seen = st.session_state.setdefault("monitor_seen", {})
    if seen.get(rec.id, state) != state:  # redraw the whole page (buttons, sidebar) when the state changes
        seen[rec.id] = state
        st.rerun(scope="app")
    seen[rec.id] = state
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
    prog = [e for e in events if e["kind"] == "progress"]
    if state == "running" and not steps and prog:
        st.progress(prog[-1]["data"]["fraction"], text=prog[-1]["data"]["message"])
    elif total:
        st.progress(min(1.0, done / total), text=f"{done}/{total} steps")
    for w in [e for e in events if e["kind"] == "warning"][-3:]:
        st.warning(w["data"]["message"])

    cur = charts.curves(events)
    left, right = st.columns(2)
    with left:
        st.markdown("**Training loss** (per step)")
        if len(cur["steps"]):
            st.line_chart(cur["steps"], x="step", y="train loss", x_label="step", y_label="loss", height=260)
        else:
            st.caption("Appears after the first step.")
    with right:
        st.markdown("**Validation** (per epoch)")
        if len(cur["epochs"]) >= 2:
            st.line_chart(cur["epochs"], x="epoch", y=["val accuracy", "val macro-F1"], x_label="epoch",
                          y_label="score", height=260)
        elif len(cur["epochs"]) == 1:
            row = cur["epochs"].iloc[0]
            m1, m2 = st.columns(2)
            m1.metric("Val accuracy (epoch 1)", f"{row['val accuracy']:.1%}")
            m2.metric("Val macro-F1 (epoch 1)", f"{row['val macro-F1']:.3f}")
        else:
            st.caption("Appears after the first epoch.")
    l2, r2 = st.columns(2)
    with l2:
        if len(cur["steps"]):
            st.markdown("**Learning rate**")
            st.line_chart(cur["steps"], x="step", y="learning rate", x_label="step", y_label="LR", height=200)
        if len(cur["epochs"]) >= 2:
            st.markdown("**Loss per epoch**")
            st.line_chart(cur["epochs"], x="epoch", y=["train loss", "val loss"], x_label="epoch", y_label="loss", height=200)
    with r2:
        evs = [e for e in events if e["kind"] == "eval"]
        if evs:
            e = evs[-1]
            st.pyplot(charts.confusion_heatmap(e["data"]["confusion"], status.get("classes", []),
                                               f"{e['data']['split']} confusion, epoch {e['epoch'] + 1}"),
                      clear_figure=True)
    if status.get("auto"):
        st.caption(f"Auto chose **{status.get('resolved_strategy')}**: {status['auto']}")
    if blend_line(status):
        st.caption(blend_line(status))
    base = status.get("baseline")
    if base:
        st.caption(f"Baseline to beat ({base['name']}, same split): test accuracy {base['accuracy']:.1%} · "
                   f"macro-F1 {base['macro_f1']:.3f}")
    if state in ("completed", "stopped") and status.get("test"):
        t = status["test"]
        vs = f" (baseline {base['macro_f1']:.3f})" if base else ""
        st.success(f"Test accuracy {t['accuracy']:.1%} · macro-F1 {t['macro_f1']:.3f}{vs}")
        if verdict := comparison(status):
            st.caption(verdict)
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
