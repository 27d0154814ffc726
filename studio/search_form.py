"""The search space as a form: one row per setting the data suggests searching — the choices to try, or a range —
each labelled as the Train page labels it. 'Edit as written' shows the same space as the CLI takes it (JSON), for
settings the form does not list."""
from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any

import streamlit as st

from core.config import TrainConfig
from core.settings import choices_of
from core.strategies import REGISTRY as STRATEGIES
from core.train.search.space import LORA_RANK

_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _label(name: str) -> str:
    if name == LORA_RANK:
        return "LoRA rank"
    return _FIELDS[name].metadata.get("label") or name.replace("_", " ").capitalize()


def _shown(name: str, value: Any) -> str:
    if name == "strategy":
        return STRATEGIES.get(value).title
    return f"{value:g}" if isinstance(value, float) else str(value)


def space_form(default: dict[str, Any], key: str, modality: str) -> dict[str, Any]:
    """The space to search: default (core.train.search.default_space) as the form's starting point. The space
    last set is kept beside the widgets, so switching between the form and the text loses neither."""
    saved_key = f"space_set_{key}"
    current = st.session_state.get(saved_key, default)
    if st.toggle("Edit as written (JSON, as the CLI takes it)", key=f"space_json_{key}",
                 help="A list of choices, or low/high (with log for a log scale), for any training setting."):
        start = json.dumps(current, indent=1)
        # keyed by where it starts: the form's latest values, never a stale text from an earlier visit
        text = st.text_area("What to search", start, height=260,
                            key=f"space_text_{key}_{hashlib.sha1(start.encode()).hexdigest()[:8]}")
        try:
            given = json.loads(text)
        except ValueError as e:
            st.error(f"Not valid JSON: {e}. Start search checks it again.")
            return {"__text__": text}  # Start search names the problem
        if isinstance(given, dict):
            st.session_state[saved_key] = given
        return given
    out: dict[str, Any] = {}
    for name, spec in default.items():
        now = current.get(name, spec)
        c = st.columns([2, 5])
        on = c[0].checkbox(_label(name), value=name in current, key=f"sp_on_{key}_{name}",
                           help=_FIELDS[name].metadata.get("help") if name in _FIELDS else
                           "LoRA's rank: the size of the adapters (only for LoRA trials).")
        if isinstance(spec, list):
            offered = list(dict.fromkeys(spec + (choices_of(_FIELDS[name]) or [] if name in _FIELDS else [])))
            if name == "strategy":
                offered = [s for s in offered if not STRATEGIES.get(s).planned
                           and (STRATEGIES.get(s).modalities is None or modality in STRATEGIES.get(s).modalities)]
            offered += [v for v in now if isinstance(now, list) and v not in offered]
            picked = c[1].multiselect("Try", offered, default=[v for v in now if v in offered] if isinstance(now, list)
                                      else spec, key=f"sp_{key}_{name}", disabled=not on,
                                      format_func=lambda v, n=name: _shown(n, v), label_visibility="collapsed")
            if on and picked:
                out[name] = picked
        else:
            lo_col, hi_col, note = c[1].columns([2, 2, 1])
            kind = float if isinstance(spec["low"], float) or spec.get("log") else int
            fmt = "%.1e" if spec.get("log") else None
            now = now if isinstance(now, dict) else spec
            lo = lo_col.number_input("from", value=kind(now.get("low", spec["low"])), key=f"sp_lo_{key}_{name}",
                                     disabled=not on, format=fmt, label_visibility="collapsed")
            hi = hi_col.number_input("to", value=kind(now.get("high", spec["high"])), key=f"sp_hi_{key}_{name}",
                                     disabled=not on, format=fmt, label_visibility="collapsed")
            note.caption("log scale" if spec.get("log") else "range")
            if on:
                out[name] = {"low": lo, "high": hi, **({"log": True} if spec.get("log") else {})}
    # what the text shows and the form starts from next time; settings only the text can name are kept
    st.session_state[saved_key] = {**{k: v for k, v in current.items() if k not in default}, **out}
    return st.session_state[saved_key]
