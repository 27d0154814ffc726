import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pandas as pd
import streamlit as st

from core.data.datasets import home
from core.errors import StudioError
from core.strategies.auto import AUTO
from core.train.search import DEFAULT_TRIALS, default_space, space_from_json, storage_url, studies, summary
from studio import charts
from studio.entry import through_app
from studio.forms import backbone_picker, build_config, n_train
from studio.identity import current_user
from studio.jobs import job_panel, start_job
from studio.search_form import space_form
from studio.services import guard, need_dataset, services, set_run

through_app()

ds = need_dataset()
st.title("Search for the best settings")
st.caption("The studio proposes settings, learning from the trials so far, trains each trial as a run on the same split, and stops trials whose "
           "validation score trails the median of earlier ones after an epoch. Trials are ranked by validation "
           "only; the test split is looked at once, for the winner. The study is kept: start it again to add trials.")
split_cfg = st.session_state.get("split", {"val": 0.1, "test": 0.1, "seed": 0, "rare": "error"})
task = st.session_state.get("task", "classification")
backbone, _ = backbone_picker(ds)  # the search trains this backbone either way
c = st.columns(3)
trials = int(c[0].number_input("Trials to add", min_value=1, max_value=500, value=DEFAULT_TRIALS, step=1,
                                key="search_trials"))
minutes = float(c[1].number_input("Stop starting trials after (minutes, 0 = no limit)", min_value=0.0, value=0.0,
                                  step=5.0, key="search_minutes"))
study = c[2].text_input("Study name", value=f"search-{ds.id}-{backbone}", key="search_study",
                        help="The same name adds trials to that study.")
st.markdown("**What to search**")
space_given = space_form(default_space(ds.modality, n_train(ds, split_cfg)), ds.id, ds.modality)


def _search_job(cfg_json: str, space: str, name: str, n: int, timeout: float | None, owner: str | None):
    runs_root = services().runs.root  # read here: the job's thread has no page session

    def run(progress, cancelled):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(cfg_json)
        cmd = [sys.executable, "-m", "core.cli", "--home", str(home()), "search", "--config", f.name,
               "--trials", str(n), "--study", name, "--space", space, "--json"]
        if timeout:
            cmd += ["--timeout", str(timeout)]
        if owner:
            cmd += ["--owner", owner]
        # its own process, as training is: the studio keeps serving whatever a trial does
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        start = len(_trials(name, runs_root))
        try:
            while p.poll() is None:
                if cancelled():
                    p.send_signal(signal.SIGINT)  # the trial in progress stops, the study keeps what it has
                    p.wait(timeout=120)
                    raise StudioError("Cancelled.")
                done = len(_trials(name, runs_root)) - start
                progress(min(done / n, 0.99), f"{done} of {n} trials started")
                time.sleep(1.0)
            out, err = p.communicate()
        finally:
            os.unlink(f.name)
        if p.returncode not in (0, 1):
            raise StudioError((err.strip().splitlines() or ["the search ended unexpectedly"])[-1])
        return json.loads(out)
    return run


def _trials(name: str, runs_root) -> list:
    try:
        return summary(name, storage_url(runs_root), runs_root)["trials"]
    except Exception:  # the study is not written yet
        return []


if st.button("Start search", type="primary", icon=":material/travel_explore:"):
    with guard("Starting the search"):
        space = space_from_json(space_given.get("__text__") or json.dumps(space_given))
        cfg = build_config(ds, backbone, AUTO.name, {}, split_cfg, None, study, [], task)
        start_job("search", _search_job(json.dumps(cfg.to_dict()), json.dumps(space), study, trials,
                                        minutes * 60 or None, current_user()), label=f"Search {study}", context=study)
job_panel("search", context=study)

names = studies(storage_url(services().runs.root))
if not names:
    st.stop()
st.subheader("Studies")
shown = st.selectbox("Study", names, index=names.index(study) if study in names else 0, key="study_shown")


def _study(shown: str) -> None:
    """The study as every worker fills it (this studio's, a `search` command's, another machine's)."""
    with guard("Reading the study"):
        res = summary(shown, storage_url(services().runs.root), services().runs.root)
        cnt = res["counts"]
        st.caption(f"{len(res['trials'])} trials: {cnt['complete']} complete, {cnt['pruned']} pruned, {cnt['fail']} "
                   f"failed, {cnt['running']} running.")
        st.pyplot(charts.study_history(res["trials"]), clear_figure=True)
        table = pd.DataFrame([{"trial": t["number"], "state": t["state"], "validation": t["value"],
                               **{k: v for k, v in t["params"].items()}, "seconds": t["seconds"], "run": t["run_id"],
                               "host": t.get("host"), "why it failed": t.get("reason") or ""} for t in res["trials"]])
        st.dataframe(table, hide_index=True, width="stretch")
        if res.get("importances"):
            st.pyplot(charts.importances(res["importances"]), clear_figure=True)
        elif res.get("importances_note"):
            st.caption(f"No importances yet: {res['importances_note']}")
        best = res.get("best")
        if best:
            st.markdown(f"**Best: trial {best['number']}**, validation {best['value']:.4f}"
                        + (f"; test {', '.join(f'{k} {v:.3f}' for k, v in best['test'].items())}" if best.get("test")
                           else ""))
            st.json(best["params"])
            b = st.columns(2)
            if b[0].button("Open the best trial", icon=":material/fact_check:", key="open_best"):
                set_run(best["run_id"])
                st.switch_page("pages/evaluate.py")
            if b[1].button("Export it", icon=":material/download:", key="export_best"):
                set_run(best["run_id"])
                st.switch_page("pages/predict.py")


running = any(t["state"] == "running" for t in _trials(shown, services().runs.root))
st.fragment(run_every=3 if running else None)(_study)(shown)  # live while a trial of any worker runs
