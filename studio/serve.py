"""Serve the studio with Streamlit, app.py's own navigation from the very first request.

Streamlit treats a `pages/` folder beside the entry script as its older file-based navigation until some run
calls st.navigation: the first visitor of a fresh server saw a list of file names (app, data, evaluate, ...)
for the second or two app.py takes to import. Declaring up front that this app does not use that folder as a
page list makes the first run app.py itself."""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False  # what st.navigation sets on its first call
    start_dispatcher()
    sys.argv = ["streamlit", *argv]
    return cli.main(prog_name="streamlit")


def start_dispatcher() -> None:
    """The run queue is dispatched from the moment the server is up, not from the first page view: a restarted
    server re-attaches to its workers and starts queued runs even if nobody is looking."""
    import logging
    import warnings

    from .services import services

    logging.getLogger("streamlit.runtime.caching.cache_utils").setLevel(logging.ERROR)
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        services()  # the same process-wide object every page gets


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
