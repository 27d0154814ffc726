"""Settings with one source of truth. Each dataclass field carries its help, choices and bounds (as
transformers' HfArgumentParser reads field metadata); validation with plain errors, the CLI flags and the Train
form's bounds and defaults are all read from there, never retyped."""
from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import MISSING, Field, field, fields
from functools import lru_cache
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["ConfigError", "setting", "build", "validate", "check", "add_arguments", "parse_text"]


def setting(default: Any = MISSING, *, help: str = "", choices: Any = None, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False,
            factory: Callable[[], Any] | None = None, flag: str | None = None, cli: bool = True,
            label: str | None = None, step: float | None = None, scope: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with what a person needs to set it: help, choices (a list or a callable returning
    one), bounds (inclusive unless *_open), the CLI flag (default --field-name), a form label, and the
    modalities or tasks it applies to (scope; None: all)."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "flag": flag, "cli": cli, "label": label, "step": step, "scope": scope}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@lru_cache(maxsize=None)
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def shape(kind: type, name: str) -> tuple[type, bool, bool]:
    """(base type, None allowed, is a list of it) of a field."""
    tp = _hints(kind)[name]
    optional = False
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    if typing.get_origin(tp) in (list, tuple):
        return typing.get_args(tp)[0], optional, True
    if typing.get_origin(tp) is dict:
        return dict, optional, False
    return tp, optional, False


def choices_of(f: Field) -> list | None:
    c = f.metadata.get("choices")
    return list(c()) if callable(c) else (list(c) if c is not None else None)


def default_of(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def num(v: float) -> str:
    """A bound or value as a person writes it: 4,294,967,295 and 0.001, not 4.29497e+09 and 1e-03."""
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:g}"


def bounds_text(f: Field) -> str:
    m = f.metadata
    lo, hi = m.get("low"), m.get("high")
    if lo is None and hi is None:
        return ""
    if lo is not None and hi is not None:
        return f"between {num(lo)} and {num(hi)}" + (" (exclusive)" if m.get("low_open") or m.get("high_open") else "")
    if lo is not None:
        return f"{'above' if m.get('low_open') else 'at least'} {num(lo)}"
    return f"{'below' if m.get('high_open') else 'at most'} {num(hi)}"


_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text", dict: "a mapping"}


def check(kind: type, f: Field, value: Any, section: str) -> Any:
    """The value, type-checked (an int is accepted for a float), within its choices and bounds."""
    base, optional, is_list = shape(kind, f.name)
    where = f"{section}.{f.name}"
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where} cannot be empty (null); give {_NAMES.get(base, base.__name__)}.")
    if is_list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, base) for v in value):
            raise ConfigError(f"{where} must be a list of {_NAMES.get(base, base.__name__)}, got {value!r}.")
        value = list(value)
    else:
        value = _typed(base, value, where)
    allowed = choices_of(f)
    if allowed is not None:
        bad = [v for v in (value if is_list else [value]) if v not in allowed]
        if bad:
            raise ConfigError(f"{where} must be one of: {', '.join(map(str, allowed))}; got {bad[0]!r}.")
    m = f.metadata
    lo, hi = m.get("low"), m.get("high")
    if not is_list and base in (int, float) and (lo is not None or hi is not None):
        ok = (lo is None or (value > lo if m.get("low_open") else value >= lo)) and \
             (hi is None or (value < hi if m.get("high_open") else value <= hi))
        if not ok:
            raise ConfigError(f"{where} must be {bounds_text(f)}, got {num(value)}.")
    return value


def _typed(base: type, value: Any, where: str) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, base):
        return value
    hint = ""
    if isinstance(value, str) and base in (int, float, bool):
        hint = " (written as text in quotes: write it without them)"
    raise ConfigError(f"{where} must be {_NAMES.get(base, base.__name__)}, got {value!r}{hint}.")


def validate(obj: Any, section: str) -> None:
    """Check every field of a settings dataclass in place (called from __post_init__)."""
    for f in fields(obj):
        object.__setattr__(obj, f.name, check(type(obj), f, getattr(obj, f.name), section))


def build(kind: type, d: Any, section: str) -> Any:
    """A settings dataclass from a JSON mapping, unknown keys named."""
    if not isinstance(d, dict):
        raise ConfigError(f"The {section} section must be a mapping of settings, got {type(d).__name__}.")
    known = [f.name for f in fields(kind)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"Unknown {section} setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    try:
        obj = kind(**d)
    except TypeError as e:  # a missing required field
        raise ConfigError(f"{section}: {e}.") from None
    validate(obj, section)  # settings classes need not validate themselves
    return obj


def parse_text(kind: type, f: Field, raw: str, section: str) -> Any:
    """A value typed on a command line (--set KEY=VALUE): JSON where it parses (numbers, true, null),
    otherwise the bare word (a strategy or schedule name)."""
    base, _, _ = shape(kind, f.name)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if base is str and not isinstance(value, str) and value is not None:
        value = raw
    return check(kind, f, value, section)


def flag_of(f: Field, prefix: str = "") -> str:
    return f.metadata.get("flag") or "--" + (prefix + f.name).replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, kind: type, prefix: str = "", dest_prefix: str = "",
                  section: str = "") -> dict[str, Field]:
    """A flag per field (unless cli=False), with its type, choices and help; every default is None, so a flag
    the user did not give is told apart from one given at the default. Returns dest -> field."""
    out = {}
    for f in fields(kind):
        if not f.metadata.get("cli", True):
            continue
        base, _, is_list = shape(kind, f.name)
        dest = dest_prefix + f.name
        bits = [f.metadata.get("help", "")]
        if bounds_text(f):
            bits.append(bounds_text(f) + ".")
        default = default_of(f)
        bits.append(f"Default: {default if default not in (None, [], '') else 'none'}.")
        kw: dict[str, Any] = {"dest": dest, "default": None, "help": " ".join(b for b in bits if b)}
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _cli_type(kind, f, section)
            if is_list:
                kw["nargs"] = "*"
            choices = choices_of(f)
            if choices:
                kw["metavar"] = "{" + ",".join(map(str, choices)) + "}"
        parser.add_argument(flag_of(f, prefix), **kw)
        out[dest] = f
    return out


def _cli_type(kind: type, f: Field, section: str) -> Callable[[str], Any]:
    base, _, is_list = shape(kind, f.name)

    def convert(raw: str) -> Any:
        if base is str:
            value: Any = raw
        else:
            try:
                value = base(raw)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{raw!r} is not {_NAMES.get(base, base.__name__)}") from None
        try:
            return check(kind, f, [value], section)[0] if is_list else check(kind, f, value, section)
        except ConfigError as e:  # argparse shows an ArgumentTypeError's own words
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = _NAMES.get(base, base.__name__)
    return convert
