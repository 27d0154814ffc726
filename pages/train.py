import json

import streamlit as st

from core.backbones import get_backbone
from studio.forms import backbone_picker, build_config, estimate, strategy_picker, train_options
from studio.loading import load_path, save_upload
from studio.services import guard, need_dataset, services, set_run

ds = need_dataset()
st.title("Choose a backbone and strategy")
split_cfg = st.session_state.get("split", {"val": 0.1, "test": 0.1, "seed": 0, "rare": "error"})

backbone = backbone_picker(ds)
strategy = strategy_picker(ds)
opts = train_options(ds, strategy)
test_up = st.file_uploader("Optional: your own held-out test file (same format as the training data)",
                           type=["csv", "tsv", "zip"], key="test_upload")
name = st.text_input("Run name (optional)", placeholder=f"{backbone} · {strategy}")
st.caption(estimate(ds, opts, split_cfg))

if st.button("Start training", type="primary", icon=":material/play_arrow:"):
    with guard("Starting the run"):
        get_backbone(backbone)
        test_source = load_path(save_upload(test_up), name=test_up.name).id if test_up else None
        cfg = build_config(ds, backbone, strategy, opts, split_cfg, test_source, name or f"{backbone} · {strategy}")
        h = services().manager.submit(cfg)
        set_run(h.id)
        st.switch_page("pages/monitor.py")

with st.expander("Run the same thing headless"):
    st.caption("Save this as config.json and replay it with the CLI on any machine with the same data.")
    with guard("Building the config"):
        cfg = build_config(ds, backbone or "?", strategy, opts, split_cfg, None, name)
        st.code(json.dumps(cfg.to_dict(), indent=2), language="json")
        st.code("finetune-studio train --config config.json --json", language="bash")
