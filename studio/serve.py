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
    sys.argv = ["streamlit", *argv]
    return cli.main(prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
