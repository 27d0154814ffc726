"""Reading CSV/TSV files of text + label as people actually save them."""
from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..portable import INVISIBLE
from .names import CONTROL

MAX_TABLE_BYTES = 200 * 1024 * 1024
TABLE_TYPES = ("csv", "tsv", "txt", "tab", "jsonl", "ndjson", "json", "parquet", "xlsx")
MAX_TEXT_CHARS = 20_000

TEXT_NAMES = ("text", "sentence", "review", "content", "body", "comment", "message", "document", "input",
              "utterance", "tweet", "description", "title")
PATH_NAMES = ("path", "image", "image_path", "file", "filename", "filepath", "img")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "y", "sentiment", "tag", "intent")


@dataclass
class TableRead:
    df: pd.DataFrame
    encoding: str
    delimiter: str
    notes: list[str] = field(default_factory=list)


# Single-byte code pages of Latin-script languages: a detector cannot tell them apart on a short table, and
# cp1252 (what Western spreadsheets save) is by far the most common of them.
_LATIN_PAGES = {"cp1252", "latin_1", "iso8859_15", "mac_roman", "mac_iceland", "mac_latin2", "mac_turkish", "cp1250",
                "cp1254", "cp1257", "cp775", "cp850", "cp852", "cp858", "cp437", "hp_roman8", "iso8859_2",
                "iso8859_3", "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_16"}


def decode_bytes(raw: bytes, name: str) -> tuple[str, str]:
    """Text and the encoding it was read with: BOMs first, then strict UTF-8, then detection
    (charset-normalizer: Shift-JIS, GBK, cp1251, ...), with cp1252 for Western European text."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as e:
            raise DataError(f"{name}: starts with a UTF-16 mark but byte {e.start} is not valid UTF-16. "
                            "Re-save it as UTF-8.") from None
    if b"\x00" in raw[:4096]:
        # UTF-16 without a BOM shows as every other byte zero.
        for enc in ("utf-16-le", "utf-16-be"):
            try:
                text = raw.decode(enc)
                if text.isprintable() or "\n" in text:
                    return text, enc
            except UnicodeDecodeError:
                pass
        raise DataError(f"{name}: contains NUL bytes, so it is not a text table (is it a spreadsheet or binary file?). "
                        "Export it as CSV (UTF-8).")
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    return _detect(raw[:1 << 20], raw, name)


def _detect(sample: bytes, raw: bytes, name: str) -> tuple[str, str]:
    from charset_normalizer import from_bytes

    found = from_bytes(sample)
    best = found.best()
    latin = best is None or best.encoding in _LATIN_PAGES or any(
        m.encoding in ("cp1252", "latin_1") and m.chaos <= best.chaos + 0.1 for m in found)
    # Windows code pages are what spreadsheets save; prefer one over a Mac page that reads about as well
    windows = [m.encoding for m in found if best is not None and m.encoding.startswith("cp125")
               and m.chaos <= best.chaos + 0.1]
    guess = windows[:1] if best is not None and best.encoding.startswith("mac_") else []
    for enc in (["cp1252"] if latin else []) + guess + ([best.encoding] if best else []) + ["latin-1"]:
        try:
            return raw.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            continue
    raise DataError(f"{name}: could not tell its text encoding. Re-save it as UTF-8.")


def sniff_delimiter(text: str, name: str) -> str:
    sample = text[:65536]
    if name.lower().endswith((".tsv", ".tab")):
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample.strip() else ""
        counts = {d: first.count(d) for d in ",;\t|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _raw(source: str | Path | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        raw, name = bytes(source), name or "upload"
    else:
        p = Path(source)
        name = name or p.name
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{name}: file not found.") from None
        except OSError as e:
            raise DataError(f"{name}: cannot be read ({e.strerror}).") from None
        if p.is_dir():
            raise DataError(f"{name}: is a folder, not a table.")
        if size > MAX_TABLE_BYTES:
            raise DataError(f"{name}: {size / 2**20:.0f} MB is over the {MAX_TABLE_BYTES // 2**20} MB table limit. "
                            "Split the file or sample it.")
        raw = p.read_bytes()
    if len(raw) > MAX_TABLE_BYTES:
        raise DataError(f"{name}: over the {MAX_TABLE_BYTES // 2**20} MB table limit.")
    if not raw.strip():
        raise DataError(f"{name}: the file is empty (no rows).")
    return raw, name


def read_table(source: str | Path | bytes, name: str | None = None) -> TableRead:
    """A table with every cell as the exact string written (NA stays 'NA'): delimited text (CSV/TSV in any
    common encoding and delimiter), JSON Lines, a JSON list of records, Parquet or Excel (.xlsx)."""
    raw, name = _raw(source, name)
    kind = Path(name).suffix.lower().lstrip(".")
    if kind in ("jsonl", "ndjson", "json"):
        tr = _read_json(raw, name, lines=kind != "json")
    elif kind in ("parquet", "xlsx", "xlsm"):
        tr = _read_binary(raw, name, kind)
    elif kind in ("xls", "ods", "numbers"):
        raise DataError(f"{name}: .{kind} files are not read; save it as .xlsx or CSV (UTF-8) and load that.")
    else:
        tr = _read_delimited(raw, name)
    tr.df = _unique_columns(tr.df, tr.notes)
    if len(tr.df) == 0:
        raise DataError(f"{name}: has a header ({', '.join(tr.df.columns)}) but no rows.")
    return tr


def _read_delimited(raw: bytes, name: str) -> TableRead:
    text, encoding = decode_bytes(raw, name)
    delimiter = sniff_delimiter(text, name)
    df = _parse(text, delimiter, name, index_col=None)
    if not isinstance(df.index, pd.RangeIndex):  # rows have more fields than the header
        _check_extra_fields(text, delimiter, name)
        df = _parse(text, delimiter, name, index_col=False)  # only an empty field after the last: dropped
    trailing = [c for c in df.columns if str(c).startswith("Unnamed:") and (df[c] == "").all()]
    df = df.drop(columns=trailing)
    notes = [] if encoding == "utf-8" else [f"Read as {encoding}" + ("." if encoding in ("utf-8-sig", "utf-16")
                                                                      else " (detected).")]
    return TableRead(df=df, encoding=encoding, delimiter=delimiter, notes=notes)


def _parse(text: str, delimiter: str, name: str, index_col) -> pd.DataFrame:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_filter=False,
                               skip_blank_lines=True, engine="c", index_col=index_col)
    except pd.errors.ParserError as e:
        raise DataError(f"{name}: could not be parsed as a table ({e}). Check quotes and the delimiter.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: the file is empty (no rows).") from None


def _check_extra_fields(text: str, delimiter: str, name: str) -> None:
    """A delimiter at the end of every row is harmless; a value past the header's last column is not."""
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    width = len(next(rows, []))
    for line, row in enumerate(rows, 2):
        if len(row) > width and any(cell.strip() for cell in row[width:]):
            raise DataError(f"{name}: row {line} has {len(row)} fields but the header {width}; a value holds an "
                            f"unquoted '{delimiter}'? Quote such cells, or check the delimiter.")


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v)


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({str(c): [_cell(v) for v in df[c].tolist()] for c in df.columns})


def _read_json(raw: bytes, name: str, lines: bool) -> TableRead:
    text, encoding = decode_bytes(raw, name)
    if lines:
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{name}: line {i} is not valid JSON ({e.msg}).") from None
            if not isinstance(row, dict):
                raise DataError(f"{name}: line {i} is not a JSON object ({{\"text\": ..., \"label\": ...}}).")
            rows.append(row)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{name}: not valid JSON (line {e.lineno}: {e.msg}).") from None
        lists = [v for v in data.values() if isinstance(v, list)] if isinstance(data, dict) else []
        rows = data if isinstance(data, list) else lists[0] if len(lists) == 1 else None
        if rows is None or not all(isinstance(r, dict) for r in rows):
            raise DataError(f"{name}: expected a list of records ([{{\"text\": ..., \"label\": ...}}, ...]).")
    if not rows:
        raise DataError(f"{name}: the file is empty (no rows).")
    return TableRead(_as_text(pd.DataFrame(rows)), encoding, "json", [])


def _read_binary(raw: bytes, name: str, kind: str) -> TableRead:
    notes = []
    try:
        if kind == "parquet":
            df = pd.read_parquet(io.BytesIO(raw))
        else:
            sheets = pd.read_excel(io.BytesIO(raw), sheet_name=None, dtype=object)
            first = next(iter(sheets))
            df = sheets[first]
            if len(sheets) > 1:
                notes.append(f"Read the first sheet, '{first}', of {len(sheets)}.")
    except ImportError as e:
        raise DataError(f"{name}: reading .{kind} needs a package that is not installed ({e.name}); save it as "
                        "CSV instead.") from None
    except Exception as e:  # readers raise many types on a damaged file
        raise DataError(f"{name}: could not be read as .{kind} ({type(e).__name__}: {str(e)[:120]}).") from None
    return TableRead(_as_text(df), kind, kind, notes)


def _unique_columns(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Header names as written, trimmed; two that end up equal ('text' and ' text') get told apart."""
    seen: dict[str, int] = {}
    names = []
    for c in df.columns:
        base = str(c).strip()
        if base.endswith(tuple(f".{i}" for i in range(1, 10))) and base.rsplit(".", 1)[0].strip() in seen:
            base = base.rsplit(".", 1)[0].strip()  # pandas' own renaming of an exact repeat
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base} ({seen[base]})")
    if len(set(names)) != len(names) or any(n.endswith(")") and " (" in n for n in names):
        repeated = sorted({n for n in seen if seen[n] > 1})
        if repeated:
            notes.append(f"Column name(s) repeated: {', '.join(repeated)}; the later ones are shown as "
                         f"'{repeated[0]} (2)' and so on.")
    out = df.copy()
    out.columns = names
    return out


def guess_columns(df: pd.DataFrame, name: str = "table") -> tuple[str, str]:
    """(input column, label column), by name first, then by shape. Raises listing the columns when unsure."""
    cols = list(df.columns)
    lower = {c.lower(): c for c in cols}
    label = next((lower[n] for n in LABEL_NAMES if n in lower), None)
    inp = next((lower[n] for n in TEXT_NAMES + PATH_NAMES if n in lower and lower[n] != label), None)
    if len(cols) >= 2 and (label is None or inp is None):
        rest = [c for c in cols if c not in (label, inp)]
        if inp is None and rest:
            lengths = {c: df[c].str.len().mean() for c in rest}
            cand = max(lengths, key=lengths.get)
            if lengths[cand] >= 15 or len(cols) == 2:
                inp = cand
                rest.remove(cand)
        if label is None and rest:
            uniq = {c: df[c].nunique() for c in rest}
            cand = min(uniq, key=uniq.get)
            if 2 <= uniq[cand] <= max(2, len(df) // 2) or len(cols) == 2:
                label = cand
    if label is None or inp is None or label == inp:
        raise DataError(f"{name}: could not tell which column is the input and which the label. "
                        f"Columns found: {', '.join(cols)}. Choose them explicitly.")
    return inp, label


@dataclass
class CleanReport:
    rows_in: int = 0
    empty_input: int = 0
    empty_label: int = 0
    empty_input_rows: list[int] = field(default_factory=list)  # file line numbers (the header is line 1)
    empty_label_rows: list[int] = field(default_factory=list)
    truncated: int = 0
    padded_labels: bool = False
    relined: list[str] = field(default_factory=list)  # labels whose line breaks became spaces

    def notes(self) -> list[str]:
        out = []
        if self.empty_input:
            out.append(f"{self.empty_input} row(s) with an empty input (blank, or only invisible characters) were "
                       f"dropped: {_lines(self.empty_input_rows, self.empty_input)}.")
        if self.empty_label:
            out.append(f"{self.empty_label} row(s) with an empty label were dropped: "
                       f"{_lines(self.empty_label_rows, self.empty_label)}.")
        if self.truncated:
            out.append(f"{self.truncated} text(s) longer than {MAX_TEXT_CHARS:,} characters were truncated.")
        if self.relined:
            out.append("Line breaks or control characters in label(s) became spaces: "
                       f"{', '.join(map(repr, self.relined))}.")
        if self.padded_labels:
            out.append("Spaces around labels were removed (no two labels became one).")
        return out


SHOWN_ROWS = 10


def _lines(rows: list[int], total: int) -> str:
    more = f" and {total - len(rows):,} more" if total > len(rows) else ""
    return "line" + ("s " if total > 1 else " ") + ", ".join(map(str, rows)) + more


YES, NO = {"1", "1.0", "true", "yes", "y"}, {"0", "0.0", "false", "no", "n", "", "nan", "none"}


def flag_columns(df: pd.DataFrame, label_col: str) -> list[str] | None:
    """The 0/1 columns a label_col of several names ("Action,Comedy,Drama") stands for; None for one column."""
    if label_col in df.columns or "," not in label_col:
        return None
    cols = [c.strip() for c in label_col.split(",") if c.strip()]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"No column named {', '.join(map(repr, missing))}. Columns found: {', '.join(map(str, df.columns))}.")
    return cols


def combine_flags(df: pd.DataFrame, cols: list[str], name: str = "table") -> pd.Series:
    """Several 0/1 columns, one per label, as one label cell per row ("Comedy; Drama"): the names of the
    columns set on that row. A value that is neither yes nor no is named with its line and column."""
    parts = []
    for c in cols:
        v = df[c].astype(str).str.strip().str.lower()
        bad = ~v.isin(YES | NO)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{name}: column {c!r} should hold 0/1 (or yes/no) to say whether the label applies; "
                            f"line {int(df.index[i]) + 2} holds {df[c].iloc[i]!r}.")
        parts.append(v.isin(YES).to_numpy())
    on = np.column_stack(parts)
    return pd.Series(["; ".join(c for c, f in zip(cols, row) if f) for row in on], index=df.index)


def clean_text_table(df: pd.DataFrame, text_col: str, label_col: str, name: str = "table") -> tuple[pd.DataFrame, CleanReport]:
    flags = flag_columns(df, label_col)
    if flags is not None:  # several 0/1 columns: one cell of labels, as if the table had been written that way
        df = df.assign(**{label_col: combine_flags(df, flags, name)})
    missing = [c for c in (text_col, label_col) if c not in df.columns]
    if missing:
        raise DataError(f"{name}: no column named {', '.join(map(repr, missing))}. Columns found: {', '.join(df.columns)}.")
    rep = CleanReport(rows_in=len(df))
    text = df[text_col].astype(str)
    raw = df[label_col].astype(str)
    stripped = raw.str.strip().where(raw.str.replace(INVISIBLE, "", regex=True) != "", "")  # invisible only: empty
    # padding is dropped only where that merges no two labels that were written differently; otherwise both
    # stay as written and the audit shows them side by side, with a one-click merge
    merges = bool(len(raw)) and bool(raw.groupby(stripped).nunique().max() > 1)
    label = (raw if merges else stripped).where(stripped != "", "")
    rep.padded_labels = bool(not merges and ((raw != stripped) & (stripped != "")).any())
    blank = text.str.replace(INVISIBLE, "", regex=True) == ""  # only invisible characters: empty too
    no_label = label == ""
    rep.empty_input = int(blank.sum())
    rep.empty_label = int((no_label & ~blank).sum())
    rep.empty_input_rows = [int(i) + 2 for i in df.index[blank.to_numpy()][:SHOWN_ROWS]]
    rep.empty_label_rows = [int(i) + 2 for i in df.index[(no_label & ~blank).to_numpy()][:SHOWN_ROWS]]
    keep = ~blank & ~no_label
    text, label = text[keep], label[keep]
    broken = label.str.contains(CONTROL)
    if broken.any():  # a class name on one line: a line break inside a quoted label is a typing slip, not a class
        rep.relined = sorted(set(label[broken]))[:SHOWN_ROWS]
        label = label.str.replace(CONTROL, " ", regex=True).str.strip()
    long = text.str.len() > MAX_TEXT_CHARS
    rep.truncated = int(long.sum())
    if rep.truncated:
        text = text.where(~long, text.str.slice(0, MAX_TEXT_CHARS))
    out = pd.DataFrame({"text": text.values, "label": label.values, "row": (df.index[keep] + 2).values})
    if out.empty:
        raise DataError(f"{name}: no usable rows (every row had an empty input or label).")
    return out, rep
