"""Class names and file names as the studio can store and show them: valid Unicode, on one line."""
from __future__ import annotations

import os
import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def readable(name: str) -> tuple[str, str | None]:
    """(the name as stored, why it differs from the name as given; None when it does not). A file name that is
    not UTF-8 (Python hands it over with surrogate escapes, which no file format can store) is read as cp1252,
    the usual origin of such names; line breaks and other control characters become one space."""
    why = None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        try:
            name = raw.decode("cp1252")
        except UnicodeDecodeError:
            name = raw.decode("utf-8", errors="replace")
        why = f"not UTF-8 ({raw!r}); read as {name!r}"
    if CONTROL.search(name):
        cleaned = CONTROL.sub(" ", name).strip() or "_"
        why = (why + "; " if why else "") + f"line breaks or control characters in {name!r} became spaces"
        name = cleaned
    return name, why
