import time

import pandas as pd
import streamlit as st

from core import access
from studio.charts import METRIC_NAMES
from studio.entry import through_app
from studio.identity import current_user
from studio.runs import label, report_download
from studio.services import can_change, get_run, guard, services, visible_runs

through_app()

# the paired bootstrap verdict on the test set (core.metrics.paired_comparison)
VERDICT = {"better": "better", "worse": "worse", "within_noise": "within noise", "same": "same predictions"}

st.title("Runs")
runs = visible_runs()
if not runs:
    st.info("No runs yet.")
    st.stop()

def scores(r: dict) -> dict:
    """The run's headline test numbers, whatever its task, and its baseline's on the first of them."""
    t, b = r.get("test") or {}, r.get("baseline") or {}
    out = {f"test {METRIC_NAMES.get(k, k)}": v for k, v in t.items() if isinstance(v, (int, float))}
    first = next(iter(t), None)
    if first and first in b:
        out[f"baseline {METRIC_NAMES.get(first, first)}"] = b[first]
    return out


@st.cache_data(ttl=60, show_spinner=False)
def data_name(ds_id: str) -> str:
    ds = services().datasets.find(ds_id)
    return ds.manifest.get("name") or ds_id if ds else ds_id


def score(r: dict) -> str:
    """The headline test number in words, e.g. 'macro-F1 0.876'."""
    t = r.get("test") or {}
    key = "macro_f1" if "macro_f1" in t else next(iter(t), None)
    return f"{METRIC_NAMES.get(key, key)} {t[key]:.3f}" if key else ""


table = pd.DataFrame([{
    # a reader's first questions first: which, on what, how, how good, when, where it stands
    "run": r["id"], "name": r.get("name") or r["id"], "data": data_name(r["dataset"]),
    "method": f"{r['strategy']} · {r['backbone']}",
    "score": score(r), "vs baseline": VERDICT.get((r.get("vs_baseline") or {}).get("verdict"), ""),
    "when": time.strftime("%b %d %H:%M", time.localtime(r.get("created") or 0)), "status": r["status"],
    **scores(r), "strategy": r["strategy"], "backbone": r["backbone"], "dataset": r["dataset"],
    "trainable": r.get("trainable_params"), "time (s)": r.get("elapsed_s"), "peak MB": r.get("peak_mem_mb"),
    **({"shared": access.is_shared(get_run(r["id"]).dir)} if current_user() else {}),
} for r in runs])
READABLE = ["name", "data", "method", "score", "vs baseline", "when", "status", *(["shared"] if current_user() else [])]
every = st.toggle("Show every column", key="runs_every",
                  help="Ids, every test number, the baseline's, weights trained, time and memory.")
number_cols = {c: st.column_config.NumberColumn(format="%.3f") for c in table.columns
               if c.startswith(("test ", "baseline "))}
st.dataframe(table if every else table[READABLE], hide_index=True, width="stretch",
             column_config={**number_cols, "name": st.column_config.TextColumn(width="medium"),
                            "vs baseline": st.column_config.TextColumn(
                 help="Against the baseline on the same test examples (macro-F1 for classes, micro-F1 for several "
                      "labels, mean absolute error for numbers): 'better' or 'worse' only when a 95% paired bootstrap "
                      "interval excludes zero")})

st.subheader("Report")
one = st.selectbox("Run", [r["run"] for r in table.to_dict("records") if r["status"] in ("completed", "stopped")] or [None],
                   key="report_run",
                   format_func=lambda i: label(next(r for r in runs if r["id"] == i)) if i else "no finished run yet")
if one:
    with guard("Writing the report"):
        report_download(get_run(one), "runs")

if current_user():
    st.subheader("Sharing")
    mine = [r["id"] for r in runs if can_change(get_run(r["id"]).dir)]
    if not mine:
        st.caption("Runs others shared with everyone appear above; you have none of your own yet.")
    else:
        rid = st.selectbox("Your run", mine, format_func=lambda i: label(next(r for r in runs if r["id"] == i)),
                           key="share_run")
        folder = get_run(rid).dir
        on = st.toggle("Visible to everyone on this server (read-only for them)", value=access.is_shared(folder),
                       key=f"share_{rid}", help="Others can then open its curves, evaluation, report and model, "
                                                 "and export it; only you can stop, resume or unshare it.")
        if on != access.is_shared(folder):
            with guard("Changing who sees the run"):
                access.set_shared(folder, current_user(), on)
                st.rerun()

st.subheader("Compare runs")
by_ds = table.groupby("dataset")["run"].apply(list)
ds = st.selectbox("Dataset", list(by_ds.index), format_func=lambda d: f"{data_name(d)} · {d} ({len(by_ds[d])} runs)")
chosen = st.multiselect("Runs to compare", by_ds[ds], default=by_ds[ds][:2],
                        format_func=lambda i: label(next(r for r in runs if r["id"] == i)))
if len(chosen) < 2:
    st.caption("Pick two or more runs on this dataset to compare their curves, metrics and per-class F1 side by side.")
else:
    curves = []
    per_class = {}
    for rid in chosen:
        rec = get_run(rid)
        for e in rec.events():
            if e["kind"] == "eval" and e["data"].get("split") == "val":
                key = "macro_f1" if "macro_f1" in e["data"] else "mae"
                curves.append({"epoch": e["epoch"] + 1, "run": rid, f"val {METRIC_NAMES[key]}": e["data"][key]})
        res = rec.result("test")
        if res and "per_class" in res:
            per_class[rid] = {c: v["f1-score"] for c, v in res["per_class"].items()}
    if curves:
        metric = next(k for k in curves[0] if k.startswith("val "))
        st.markdown(f"**Validation {metric[4:]} per epoch**")
        st.line_chart(pd.DataFrame([c for c in curves if metric in c]), x="epoch", y=metric, color="run", height=280)
    st.markdown("**Side by side**")
    st.dataframe(table[table["run"].isin(chosen)].set_index("run").T, width="stretch")
    if per_class:
        st.markdown("**Per-class F1 (test)**")
        st.dataframe(pd.DataFrame(per_class).style.format("{:.2f}"), width="stretch")
