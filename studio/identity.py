"""Who is using this browser tab, for per-user datasets and runs on a shared server (see core.access).

FTS_ACCESS=private (the default): each person sees only what they brought or started, plus what others
shared on purpose. They are known, in this order, by
  1. Streamlit's own login (`st.login`, when `[auth]` is configured): their e-mail;
  2. a header set by a trusted reverse proxy, named by FTS_USER_HEADER (e.g. X-Forwarded-Email);
  3. otherwise a private workspace: a random key in a cookie, so a refresh, a new tab and a later visit from the
     same browser come back to it.
FTS_ACCESS=open: one shared workspace, everyone sees everything (a personal or single-team studio).
"""
from __future__ import annotations

import os
import re
import secrets

import streamlit as st

COOKIE = "fts_ws"
_KEY = re.compile(r"^[0-9a-f]{32}$")


def private_mode() -> bool:
    return os.environ.get("FTS_ACCESS", "private").lower() != "open"


def _logged_in_user() -> str | None:
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("sub"))
    except Exception:  # no [auth] section configured: st.user has no login state
        pass
    return None


def _proxy_user() -> str | None:
    header = os.environ.get("FTS_USER_HEADER")
    value = st.context.headers.get(header) if header else None
    return value if isinstance(value, str) and value else None


def _workspace_key() -> str:
    """A random key in a year-long cookie: refreshes, new tabs and later visits from this browser come back to
    the same workspace. Not in the URL, so a copied link never hands over the workspace."""
    key = st.session_state.get("workspace")
    if not key:
        key = st.context.cookies.get(COOKIE)
        if not (isinstance(key, str) and _KEY.match(key)):
            key = secrets.token_hex(16)
        st.session_state["workspace"] = key
    if not st.session_state.get("workspace_cookie_set") and st.context.cookies.get(COOKIE) != key:
        st.session_state["workspace_cookie_set"] = True
        with st.container(height=1, border=False):  # the script draws nothing, but its slot would show a box
            st.html(f"<script>document.cookie = '{COOKIE}={key}; path=/; max-age=31536000; SameSite=Strict';"
                    "</script>", unsafe_allow_javascript=True)
    return key


def current_user() -> str | None:
    """The owner id for core.access; None in open mode (everything visible and changeable)."""
    if not private_mode():
        return None
    if "user" not in st.session_state:
        who = _logged_in_user() or _proxy_user()
        st.session_state["user"] = f"user:{who}" if who else None
    return st.session_state["user"] or f"ws:{_workspace_key()}"


def describe(user: str | None) -> str:
    if user is None:
        return "Open studio: everyone on this server sees all datasets and runs."
    if user.startswith("user:"):
        return f"Signed in as {user[5:]}. Your datasets and runs are private unless you share them."
    return ("Private workspace: your datasets and runs are visible only from this browser, unless you share them.")
