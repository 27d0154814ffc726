import pandas as pd
import streamlit as st

from core.fsutil import read_json
from core.metrics import comparison
from core.predict.blend import describe as blend_line
from core.predict.explain import explain_rows
from studio.entry import through_app
from studio.jobs import job_result
from studio.lineage import changes_view, continue_panel
from studio.runs import pick_run, report_download
from studio.services import guard, predictor, set_dataset
from studio.task_views import TASK_VIEWS, overlap_note, verdict_box
from studio.views import VIEWS

through_app()

st.title("Evaluate")
rec = pick_run(only_with_model=True)
if rec is None:
    st.stop()
res = rec.result("test")
if res is None:
    st.info("This run has no test evaluation (it stopped before finishing an epoch, or there is no test split).")
    st.stop()
pred_path = rec.test_predictions
preds = pd.read_parquet(pred_path) if pred_path.is_file() else pd.DataFrame()
labels = read_json(rec.labels_file, {}) or {}
status = rec.status
task_view = TASK_VIEWS[labels.get("task", "classification")]
view = VIEWS[labels.get("modality") or status.get("modality")]

described = status.get("predictor") or {}
if described.get("title"):
    st.subheader(described["title"])
    st.caption(described["sentence"])
task_view.headline(res, status)
overlap_note(status)
with guard("Writing the report"):
    report_download(rec, "evaluate")
if status.get("baseline"):
    base = status["baseline"]
    st.caption(f"Baseline: {base['name']} on the same split — {task_view.baseline_numbers(base)}.")
    if comparison(status):
        verdict_box(status, comparison(status))
if status.get("parts"):
    st.caption("Each part of the model alone on the same test rows: " + "; ".join(
        f"{name} {task_view.baseline_numbers(scores)}" for name, scores in status["parts"].items()) + ".")
if blend_line(status):
    shared = 0.0 < status["blend"]["network_weight"] < 1.0  # one part alone: nothing to share out
    st.caption(blend_line(status) + (" Explanations below show each part with its share." if shared else ""))
if status.get("distillation"):
    from core.train.callbacks.distill import comparison_table

    d = status["distillation"]["student_vs_teacher"]
    st.subheader("Student and teacher")
    st.caption(f"This run learned from {status['distillation']['teacher']['run']}'s predictions: it has "
               f"{d['params']:.0%} of the teacher's weights and predicts {d['speedup']:.1f}x as fast on this machine "
               "(same test rows).")
    st.dataframe(pd.DataFrame(comparison_table(status["distillation"])), hide_index=True, width="stretch")
changes_view(rec)
continue_panel(rec)
task_view.overview(res, preds)


def show_examples(df: pd.DataFrame, key: str, n: int = 12) -> None:
    if df.empty:
        st.caption("No examples here.")
        return
    why = st.toggle(view.why_label, key=f"why{key}",
                    help="What the model looked at for its prediction: heat on the image, or words shaded by how "
                         "much they pushed towards (green) or against (red) the prediction.")
    shown = df.head(n)
    explained = None
    if why:
        with guard("Explaining these examples"):
            cached = read_json(rec.explanations_file)  # what the run explained when it ended needs no model
            known = set(map(str, (cached or {}).get("rows", [])))
            pred = None if set(map(str, shown["row"])) <= known else predictor(rec.dir)

            def work(progress, cancelled, rows=shown):
                raws = [view.raw(r) for _, r in rows.iterrows()]
                return explain_rows(rows, raws, cached, (lambda: pred) if pred else None, view.explain_limit,
                                    progress)
            explained = job_result(f"why{key}", work, "Explaining these examples",
                                   (rec.id, key, tuple(map(str, shown["row"]))))
    view.examples(shown, explained)


sus_path = rec.suspects_file
if sus_path.is_file():
    n_sus = len(pd.read_parquet(sus_path))
    st.subheader("Suspect labels")
    st.caption(f"{n_sus} training/validation example(s) whose label a model that never saw them confidently "
               "contradicts." if n_sus else "No training label is confidently contradicted.")
    if n_sus and st.button("Open them in Explore to relabel or drop", icon=":material/flag:"):
        set_dataset(status.get("dataset"))
        st.session_state["open_suspects"] = True
        st.switch_page("pages/explore.py")

st.subheader("Look at the mistakes")
if len(preds):
    task_view.mistakes(res, preds, show_examples)
