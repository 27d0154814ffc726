"""Process-wide services and the few session keys the pages share."""
from __future__ import annotations

import logging
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import streamlit as st

from core import access
from core.data.datasets import Dataset, DatasetStore, home
from core.errors import StudioError
from core.runs.folder import RunFolder
from core.runs.jobs import JobPool
from core.runs.manager import RunManager
from core.runs.store import RunStore
from core.tasks.multilabel import detect_separator, label_counts, split_label

from .identity import current_user

log = logging.getLogger("finetune_studio")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
MAX_UPLOAD_MB = int(os.environ.get("FTS_MAX_UPLOAD_MB", "200"))


@dataclass(frozen=True)
class Services:
    datasets: DatasetStore
    runs: RunStore
    manager: RunManager
    jobs: JobPool


@st.cache_resource(show_spinner=False)
def _services(root: str) -> Services:
    base = Path(root)
    datasets, runs = DatasetStore(base / "datasets"), RunStore(base / "runs")
    return Services(datasets, runs, RunManager(runs, datasets), JobPool())


def services() -> Services:
    return _services(str(home()))


def exports_root() -> Path:
    """Where the Predict page may write export folders on the server ($FTS_EXPORT_ROOT, else beside the runs)."""
    root = Path(os.environ.get("FTS_EXPORT_ROOT") or home() / "exports").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


# --- session: only ids live here; everything else is on disk
def dataset_id() -> str | None:
    return st.session_state.get("dataset_id") or st.query_params.get("ds")


def remember_from_url() -> None:
    """A refreshed tab or a shared link carries the ids in the URL; keep them in the session."""
    for key, param in (("dataset_id", "ds"), ("run_id", "run")):
        if param in st.query_params and not st.session_state.get(key):
            st.session_state[key] = st.query_params[param]


def _remember(key: str, param: str, value: str | None) -> None:
    """Session and URL together: the URL is what survives a refresh or a second tab."""
    st.session_state[key] = value
    if value:
        st.query_params[param] = value
    else:
        st.query_params.pop(param, None)


def current_task():
    """The task chosen for this session's data (Data and Train pages, or Explore's suggestion); classification until
    then."""
    from core.tasks import REGISTRY, get_task

    name = st.session_state.get("task")
    return get_task(name if name in REGISTRY else REGISTRY.names()[0])


TASK_WORDS = {"classification": "classes", "multilabel": "several labels per example",
              "regression": "numbers (regression)"}


@st.cache_data(show_spinner=False, max_entries=64)
def _reading(ds_id: str, _ds: Dataset) -> dict | None:  # a version's id names its content: _ds is not hashed
    labels = [str(v) for v in _ds.items["label"].tolist()]
    sep = detect_separator(list(labels))
    if sep is None:
        return None
    rows = [split_label(v, sep) for v in labels]
    several = sum(len(r) > 1 for r in rows)
    example = next(v for v, r in zip(labels, rows) if len(r) > 1)
    counts = label_counts(_ds.manifest["classes"], sep)
    return {"sep": sep, "labels": counts, "several_rows": several,
            "why": f"{several:,} of {len(labels):,} rows hold several labels separated by '{sep}' (for example "
                   f"'{example[:60]}'): {len(counts)} labels in all."}


def label_reading(ds: Dataset) -> dict | None:
    """Whether the label column holds several labels per cell (core.tasks.multilabel.detect_separator): the
    separator, the labels with their counts, and a sentence saying what was seen; None for one label per cell."""
    return _reading(ds.id, ds)


def set_dataset(ds_id: str | None) -> None:
    _remember("dataset_id", "ds", ds_id)


def current_dataset() -> Dataset | None:
    ds_id = dataset_id()
    if not ds_id:
        return None
    try:
        ds = services().datasets.get(ds_id)
        if not access.can_see(ds.dir, current_user()):  # someone else's private version reads as missing
            set_dataset(None)
            return None
        if st.query_params.get("ds") != ds_id:
            st.query_params["ds"] = ds_id
        return ds
    except StudioError:
        set_dataset(None)
        return None


def run_id() -> str | None:
    return st.query_params.get("run") or st.session_state.get("run_id")


def set_run(rid: str | None) -> None:
    _remember("run_id", "run", rid)


def derive(ds: Dataset, items, change: str) -> Dataset:
    """A fixed version of the dataset, owned by whoever made it."""
    return services().datasets.derive(ds, items, change, owner=current_user())


def visible_runs() -> list[dict]:
    return services().runs.list(viewer=current_user())


def get_run(rid: str) -> RunFolder:
    """A run this user may see; anyone else's private run raises RunError as if missing."""
    return services().runs.get(rid, viewer=current_user())


def can_change(folder: Path) -> bool:
    return access.can_change(folder, current_user())


@contextmanager
def guard(what: str = "That") -> Iterator[None]:
    """User errors as plain sentences; anything unexpected logged server-side, never shown as a traceback."""
    try:
        yield
    except StudioError as e:
        st.error(str(e), icon=":material/error:")
    except Exception as e:  # the page keeps working for this user and everyone else
        log.error("unexpected error: %s", traceback.format_exc())
        st.error(f"{what} failed unexpectedly ({type(e).__name__}: {e}). Nothing saved was lost; "
                 "try again, and if it repeats, report it with the server log.", icon=":material/error:")


def need_dataset() -> Dataset:
    ds = current_dataset()
    if ds is None:
        st.info("No dataset loaded yet. Start on the **Data** page.", icon=":material/arrow_back:")
        st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
        st.stop()
    return ds


@st.cache_resource(show_spinner=False, max_entries=64)
def _tail(path: str):
    from core.runs.eventlog import EventTail

    return EventTail(Path(path))


def event_tail(run_dir: Path):
    """The run's events read so far, shared by everyone watching it; each call reads only what is new."""
    return _tail(str(RunFolder(run_dir).events_file)).refresh()


@st.cache_resource(show_spinner="Loading the model", max_entries=4)
def _predictor(run_dir: str, mtime: float):
    from core.predict.predictor import Predictor

    return Predictor(run_dir)


def predictor(run_dir: Path):
    """The run's best model, shared read-only across sessions; reloaded when its checkpoint changes."""
    ck = RunFolder(run_dir).checkpoints
    return _predictor(str(run_dir), max((p.stat().st_mtime for p in ck.rglob("*.safetensors")), default=0))
