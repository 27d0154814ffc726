"""Every page runs inside app.py's navigation, even when a deep link is the first thing a fresh server is asked
for."""
from __future__ import annotations

import streamlit as st

NAVIGATED = "_fts_navigated"  # set by app.py once its navigation has run in this session


def through_app() -> None:
    """Called first by each page. Streamlit treats a `pages/` folder as its older file-based navigation until
    some run calls st.navigation, so a link such as /evaluate?run=… opened before anyone loaded the front page
    would run the page file alone: no studio sidebar, no page titles, no workspace from the URL. Switch to
    app.py's navigation and run the same page again (same URL, same query). Only a session's first run can
    arrive this way, so a later run (a click, whose value a rerun would drop) is never repeated."""
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False) and NAVIGATED not in st.session_state:
        PagesManager.uses_pages_directory = False  # what st.navigation itself sets
        st.rerun()
