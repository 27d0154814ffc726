import json

import streamlit as st

from core.backbones import get_backbone
from core.lr_finder import find_lr
from studio import charts
from studio.entry import through_app
from studio.forms import backbone_picker, build_config, estimate, strategy_picker, train_options
from studio.loading import load_path, progress_bar, save_upload
from studio.identity import current_user
from studio.services import guard, need_dataset, services, set_run

through_app()

ds = need_dataset()
st.title("Choose a backbone and strategy")
split_cfg = st.session_state.get("split", {"val": 0.1, "test": 0.1, "seed": 0, "rare": "error"})

backbone = backbone_picker(ds)
strategy = strategy_picker(ds, split_cfg, backbone)
opts = train_options(ds, strategy, backbone)
if strategy != "auto" and st.button("Suggest a learning rate", icon=":material/auto_graph:",
             help="A range test: about 60 quick steps with a rising learning rate on a throwaway copy of the model."):
    with guard("Finding a learning rate"):
        bar, cb = progress_bar("Learning-rate range test")
        res = find_lr(build_config(ds, backbone, strategy, opts, split_cfg, None, ""), services().datasets, progress=cb)
        bar.empty()
        st.session_state["lr_curve"] = {**res, "strategy": strategy}
        st.session_state["lr_pending"] = (strategy, res["suggestion"])
        st.rerun()
curve = st.session_state.get("lr_curve")
if curve and curve["strategy"] == strategy:
    st.pyplot(charts.lr_curve(curve), clear_figure=True)
    if not curve["suggestion"]:
        st.info("No clear suggestion: the loss diverged too early. Keep the default.")
test_up = st.file_uploader("Optional: your own held-out test file (same format as the training data)",
                           type=["csv", "tsv", "zip"], key="test_upload")
name = st.text_input("Run name (optional)", placeholder=f"{backbone} · {strategy}")
st.caption(estimate(ds, backbone, strategy, opts, split_cfg, services().runs.list()))

if st.button("Start training", type="primary", icon=":material/play_arrow:"):
    with guard("Starting the run"):
        get_backbone(backbone)
        test_source = load_path(save_upload(test_up), name=test_up.name).id if test_up else None
        cfg = build_config(ds, backbone, strategy, opts, split_cfg, test_source, name or f"{backbone} · {strategy}")
        h = services().manager.submit(cfg, owner=current_user())
        set_run(h.id)
        st.switch_page("pages/monitor.py")

with st.expander("Run the same thing headless"):
    st.caption("Save this as config.json and replay it with the CLI, or across GPUs and machines with torchrun.")
    with guard("Building the config"):
        cfg = build_config(ds, backbone or "?", strategy, opts, split_cfg, None, name)
        st.code(json.dumps(cfg.to_dict(), indent=2), language="json")
        st.code("finetune-studio train --config config.json --json\n\n"
                "# all GPUs of this machine (DistributedDataParallel, NCCL)\n"
                "torchrun --nproc_per_node=gpu -m core.cli train --config config.json --json\n\n"
                "# two machines with 8 GPUs each; run on both, run store on shared storage\n"
                "torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST0:29500 \\\n"
                "    -m core.cli --home /shared/studio train --config config.json --json", language="bash")
