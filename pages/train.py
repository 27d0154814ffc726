import json

import streamlit as st

from core.backbones import get_backbone
from core.data.audit import cached_audit
from core.strategies import REGISTRY as STRATEGIES
from core.tasks import REGISTRY as TASKS
from studio import charts
from studio.entry import through_app
from studio.forms import (
    backbone_picker,
    build_config,
    effort_picker,
    estimate,
    plan_preview,
    strategy_picker,
    teacher_options,
    train_options,
)
from studio.identity import current_user
from studio.jobs import job_panel, start_job
from studio.loading import load_path, save_upload
from studio.preview import augment_preview
from studio.services import TASK_WORDS, guard, label_reading, need_dataset, services, set_run

through_app()

ds = need_dataset()
st.title("Train a model")
split_cfg = st.session_state.get("split", {"val": 0.1, "test": 0.1, "seed": 0, "rare": "error"})
task = st.session_state.get("task", "classification")
numbers = cached_audit(ds).label_numbers  # labels that are numbers: classes or a value to predict? asked, not assumed
combined = label_reading(ds)  # several labels in a cell: one label per example, or several? asked, not assumed
answered = st.session_state.get("task_answered") == ds.id
ask = (numbers or combined) and not answered
if len(TASKS.names()) > 1:
    picked = st.radio("The labels are", TASKS.names(),
                      index=None if ask else TASKS.names().index(task), horizontal=True,
                      key=f"task_train_{ds.id}", format_func=TASK_WORDS.get,
                      help="Classes: one label per example. Several labels: any number of labels per example "
                           "(multi-label), separated in the label column. Numbers: the model predicts a value "
                           "(regression).")
    if numbers and picked is None:
        st.info(numbers["why"] + (" With this many values, numbers is the likely intent." if
                                  numbers["regression_likely"] else "") + " Which are they?",
                icon=":material/help:")
    elif combined and picked is None:
        st.info(combined["why"] + " Which are they?", icon=":material/help:")
    if picked is not None:
        task = picked
        st.session_state["task"], st.session_state["task_answered"] = task, ds.id
undecided = bool(ask) and st.session_state.get("task_answered") != ds.id

simple, advanced = st.tabs(["Simple", "Advanced"])
with simple:
    minutes = effort_picker(st.session_state.get("strategy", "auto"))
    what_area = st.container()
    name = st.text_input("Run name (optional)", placeholder="left empty: named after what it trains, once planned",
                         key="run_name")
    start_area = st.container()
with advanced:
    st.caption("Every choice here is optional: what you leave as it is, the studio decides from your data.")
    backbone, picked = backbone_picker(ds)
    strategy = strategy_picker(ds, split_cfg, backbone, task, picked, minutes)
    opts, chosen = train_options(ds, strategy, backbone, task, split_cfg, minutes)
    chosen = chosen + (["backbone"] if picked else [])
    taught, taught_chosen = teacher_options(ds, strategy, task, services().runs.list(current_user()))
    opts, chosen = {**opts, **taught}, chosen + taught_chosen
    augment_preview(ds, backbone, opts)
    if not STRATEGIES.get(strategy).planned and not STRATEGIES.get(strategy).fits_head:
        def _range_test(progress, cancelled):
            from core.train.lr_finder import find_lr

            return find_lr(build_config(ds, backbone, strategy, opts, split_cfg, None, "", chosen, task),
                           services().datasets, progress=progress)

        if st.button("Suggest a learning rate", icon=":material/auto_graph:",
                     help="A range test: about 60 quick steps with a rising learning rate on a throwaway copy of the model, "
                          "with this run's own loss and batches."):
            start_job("lr", _range_test, label="Learning-rate range test", context={"strategy": strategy})
        res = job_panel("lr", context={"strategy": strategy})
        if res is not None:
            st.pyplot(charts.lr_curve(res), clear_figure=True)
            if res["suggestion"]:
                if st.button(f"Use {res['suggestion']:.1e}", key="use_lr"):
                    st.session_state["lr_pending"] = (strategy, res["suggestion"])
                    st.rerun()
            else:
                st.info("No clear suggestion: the loss diverged too early. Keep the default.")
    test_up = st.file_uploader("Optional: your own held-out test file (same format as the training data)",
                               type=["csv", "tsv", "zip", "jsonl", "json", "parquet", "xlsx"], key="test_upload")
    test_overlap = "warn"
    test_ds = None
    if test_up is not None:
        with guard("Reading the test file"):
            from core.data.audit import cross_duplicates
            from core.train.checks.overlap import overlap_note

            if st.session_state.get("test_upload_id") != test_up.file_id:
                st.session_state["test_ds"] = load_path(save_upload(test_up), name=test_up.name).id
                st.session_state["test_upload_id"] = test_up.file_id
            test_ds = services().datasets.get(st.session_state["test_ds"])
            if test_ds.modality != ds.modality:
                st.error(f"{test_up.name} holds {test_ds.modality}s but the training data {ds.modality}s.")
                test_ds = None
            else:
                found = cross_duplicates(ds, test_ds)
                bad = found["exact"] + found["near"]
                if bad:
                    st.warning(overlap_note(found, advice=False), icon=":material/content_copy:")
                    with st.expander("Show them"):
                        st.dataframe(found["examples"], hide_index=True, width="stretch")
                    if st.checkbox(f"Leave these {bad} out of the test set", value=True, key="drop_overlap"):
                        test_overlap = "drop"
                else:
                    st.caption(f"{found['test_rows_total']} test examples; none repeats a training example.")

if minutes is not None:
    what_area.caption(f"**What it will do:** {plan_preview(ds, backbone, picked, opts.get('budget_minutes') or minutes, task)}")
with start_area:
    st.caption(estimate(ds, backbone, strategy, opts, split_cfg, services().runs.list()))

    if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=undecided,
                 help="Say above what the labels are first." if undecided else None):
        with guard("Starting the run"):
            get_backbone(backbone)
            cfg = build_config(ds, backbone, strategy, opts, split_cfg, test_ds.id if test_ds else None,
                               name, chosen, task, test_overlap)
            h = services().manager.submit(cfg, owner=current_user())
            set_run(h.id)
            st.switch_page("pages/monitor.py")

with st.expander("Run the same thing headless"):
    st.caption("Save this as config.json and replay it with the CLI, or across GPUs and machines with torchrun.")
    with guard("Building the config"):
        cfg = build_config(ds, backbone or None, strategy, opts, split_cfg, None, name, chosen, task)
        st.code(json.dumps(cfg.to_dict(), indent=2), language="json")
        st.code("finetune-studio train --config config.json --json\n\n"
                "# all GPUs of this machine (DistributedDataParallel, NCCL)\n"
                "torchrun --nproc_per_node=gpu -m core.cli train --config config.json --json\n\n"
                "# two machines with 8 GPUs each; run on both, run store on shared storage\n"
                "torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST0:29500 \\\n"
                "    -m core.cli --home /shared/studio train --config config.json --json", language="bash")
