import pandas as pd
import streamlit as st

from core import access
from core.data.audit import looks_numeric
from core.data.datasets import data_root
from core.data.tables import TABLE_TYPES, guess_columns, read_table
from core.errors import DataError
from core.tasks import REGISTRY as TASKS
from studio.entry import through_app
from studio.identity import current_user
from studio.loading import DEMOS, load_demo, load_path, save_directory, save_upload, server_path
from studio.services import (MAX_UPLOAD_MB, can_change, current_dataset, current_task, guard, label_reading,
                             set_dataset)
from studio.views import VIEWS

through_app()


def loaded(ds) -> None:
    set_dataset(ds.id)
    st.rerun()  # redraw everything (the sidebar too) around the new dataset


st.title("Bring your data")
st.caption("A table of text + label (CSV/TSV, JSON Lines, Parquet, Excel), a zip of images in one folder per class, "
           "or a folder of class folders. "
           f"Uploads up to {MAX_UPLOAD_MB} MB; tables up to 200 MB.")

demo, upload, folder, server = st.tabs(["Demo data", "Upload a file", "Upload a folder", "Server folder"])

with demo:
    st.write("Try the studio on real data bundled with it.")
    cols = st.columns(len(DEMOS))
    for col, (key, (title, _)) in zip(cols, DEMOS.items()):
        if col.button(f"Load {title}", key=f"demo_{key}", width="stretch"):
            with guard("Loading the demo"):
                loaded(load_demo(key))

with upload:
    up = st.file_uploader("A table (CSV, TSV, JSON Lines, JSON, Parquet, Excel) or a zip of images",
                          type=[*TABLE_TYPES, "zip"], key="upload_file")
    if up is not None:
        with guard("Reading the upload"):
            path = save_upload(up) if st.session_state.get("upload_name") != up.file_id else \
                st.session_state["upload_path"]
            st.session_state["upload_name"], st.session_state["upload_path"] = up.file_id, path
            if path.suffix.lower() == ".zip":
                if st.button("Load images from zip", type="primary"):
                    loaded(load_path(path, name=up.name))
            else:
                table = read_table(path, up.name)
                st.caption(f"Encoding {table.encoding}, delimiter {table.delimiter!r}, {len(table.df):,} rows."
                           if table.delimiter not in ("json", "parquet", "xlsx", "xlsm") else
                           f"{table.delimiter.upper()} table, {len(table.df):,} rows.")
                for note in table.notes:
                    st.caption(note)
                st.dataframe(table.df.head(8), width="stretch", hide_index=True)
                cols = list(table.df.columns)
                try:
                    g_in, g_label = guess_columns(table.df, up.name)
                except DataError as e:
                    st.warning(str(e))
                    g_in, g_label = cols[0], cols[-1]
                c1, c2 = st.columns(2)
                text_col = c1.selectbox("Input column (text or image path)", cols, index=cols.index(g_in))
                flags = c2.toggle("One 0/1 column per label", key="flag_columns",
                                  help="Several labels per example, each in its own column holding 1 (or yes) where "
                                       "it applies.")
                if flags:
                    picked = c2.multiselect("Label columns", [c for c in cols if c != text_col],
                                            placeholder="the 0/1 columns, one per label")
                    label_col = ",".join(picked)
                else:
                    label_col = c2.selectbox("Label column", cols, index=cols.index(g_label))
                if text_col == label_col:
                    st.warning("The input and label columns are the same column; choose two different ones.")
                if st.button("Load this table", type="primary", disabled=text_col == label_col or not label_col
                             or (flags and "," not in label_col)):
                    loaded(load_path(path, name=up.name, text_col=text_col, label_col=label_col))

with folder:
    files = st.file_uploader("A folder with one sub-folder per class", accept_multiple_files="directory",
                             key="upload_dir")
    if files and st.button("Load this folder", type="primary"):
        with guard("Loading the folder"):
            root = save_directory(files)
            tops = {f.name.replace("\\", "/").split("/")[0] for f in files}
            loaded(load_path(root, name=tops.pop() if len(tops) == 1 else "uploaded folder"))

with server:
    root = data_root()
    if root is None:
        st.info("Server folders are off on this studio; its administrator can turn them on (README, "
                "'Sharing a server').")
    else:
        rel = st.text_input(f"Folder or file under {root}")
        if rel and st.button("Load from server", type="primary"):
            with guard("Loading from the server"):
                loaded(load_path(server_path(rel)))

ds = current_dataset()
if ds is not None:
    st.divider()
    m = ds.manifest
    st.subheader(f"Loaded: {m.get('name', ds.id)}")
    c = st.columns(4)
    c[0].metric("Examples", f"{m['rows']:,}")
    task = current_task()
    combined = label_reading(ds)
    shown = combined["labels"] if combined and task.several else m["classes"]
    c[1].metric("Labels" if task.several else "Classes" if task.has_classes else "Distinct values", len(shown))
    c[2].metric("Type", ds.modality)
    c[3].metric("Skipped files", len(m.get("bad", [])))
    if combined and st.session_state.get("task_answered") != ds.id:
        st.info(combined["why"] + " Does each example have several labels?", icon=":material/label:")
        b = st.columns(2)
        if b[0].button("Yes: several labels per example (multi-label)", key="data_multilabel", type="primary"):
            st.session_state["task"], st.session_state["task_answered"] = "multilabel", ds.id
            st.rerun()
        if b[1].button("No: each cell is one class", key="data_one_class"):
            st.session_state["task"], st.session_state["task_answered"] = "classification", ds.id
            st.rerun()
    elif combined and task.several:
        st.caption(f"Task: several labels per example, separated by '{combined['sep']}' in "
                   f"'{m.get('label_col', 'label')}'.")
        if st.button("Read each cell as one class instead", key="data_one_class_after"):
            st.session_state["task"] = "classification"
            st.rerun()
    elif combined:
        st.caption(f"Each cell of '{m.get('label_col', 'label')}' is read as one class, separators and all.")
        if st.button("Read them as several labels per example instead", key="data_multilabel_after"):
            st.session_state["task"] = "multilabel"
            st.rerun()
    elif looks_numeric(ds.items["label"]) and task.has_classes:
        st.info(f"The labels are numbers with {len(m['classes']):,} distinct values: to predict the number itself, "
                "train a regression model.", icon=":material/show_chart:")
        if st.button("Treat the labels as numbers to predict (regression)", key="data_regression"):
            st.session_state["task"] = next(t.name for t in TASKS if not t.has_classes)
            st.rerun()
    elif not task.has_classes:
        st.caption(f"Task: regression — the model predicts the number in '{m.get('label_col', 'label')}'.")
        if st.button("Treat the labels as classes instead", key="data_classes"):
            st.session_state["task"] = next(t.name for t in TASKS if t.has_classes)
            st.rerun()
    for note in m.get("notes", []):
        st.info(note)
    if current_user() and can_change(ds.dir):
        shared = access.is_shared(ds.dir)
        on = st.toggle("Anyone on this server can open this dataset from its link", value=shared,
                       key=f"share_{ds.id}", help="Off: only you (and anyone who loads the very same data) see it.")
        if on != shared:
            with guard("Changing who sees the dataset"):
                access.set_shared(ds.dir, current_user(), on)
                st.rerun()
    if m.get("bad"):
        with st.expander(f"Bad-files report ({len(m['bad'])})"):
            st.dataframe(pd.DataFrame(m["bad"]), width="stretch", hide_index=True)
    VIEWS[ds.modality].preview(ds)
    st.page_link("pages/explore.py", label="Next: explore and audit this data", icon=":material/arrow_forward:")
