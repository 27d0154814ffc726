"""Fine-Tune Studio entry point: `finetune-studio app` or `streamlit run app.py`."""
import streamlit as st

st.set_page_config(page_title="Fine-Tune Studio", page_icon=":material/model_training:", layout="wide")

STEPS = [
    st.Page("pages/data.py", title="1 · Data", icon=":material/upload_file:", default=True),
    st.Page("pages/explore.py", title="2 · Explore", icon=":material/query_stats:"),
    st.Page("pages/train.py", title="3 · Train", icon=":material/tune:"),
    st.Page("pages/monitor.py", title="4 · Monitor", icon=":material/monitoring:"),
    st.Page("pages/evaluate.py", title="5 · Evaluate", icon=":material/fact_check:"),
    st.Page("pages/predict.py", title="6 · Predict & Export", icon=":material/online_prediction:"),
]
IMPROVE = [st.Page("pages/review.py", title="Review labels", icon=":material/rule:")]
HISTORY = [st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
           st.Page("pages/search.py", title="Search settings", icon=":material/travel_explore:")]

from studio.entry import NAVIGATED  # noqa: E402
from studio.services import remember_from_url  # noqa: E402

remember_from_url()
page = st.navigation({"Steps": STEPS, "Improve": IMPROVE, "History": HISTORY})
st.session_state[NAVIGATED] = True

from studio.sidebar import where_am_i  # noqa: E402  (after navigation: it reads the chosen page)

where_am_i(page.title)
page.run()
