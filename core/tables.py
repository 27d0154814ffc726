"""Reading CSV/TSV files of text + label as people actually save them."""
from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import DataError

MAX_TABLE_BYTES = 200 * 1024 * 1024
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


def decode_bytes(raw: bytes, name: str) -> tuple[str, str]:
    """Text and the encoding it was read with: BOMs first, then strict UTF-8, then cp1252/latin-1."""
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
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


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


def read_table(source: str | Path | bytes, name: str | None = None) -> TableRead:
    """Read a delimited text table with every cell as the exact string written (NA stays 'NA')."""
    if isinstance(source, (bytes, bytearray)):
        raw, name = bytes(source), name or "upload"
    else:
        p = Path(source)
        name = name or p.name
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{name}: file not found.") from None
        if size > MAX_TABLE_BYTES:
            raise DataError(f"{name}: {size / 2**20:.0f} MB is over the {MAX_TABLE_BYTES // 2**20} MB table limit. "
                            "Split the file or sample it.")
        raw = p.read_bytes()
    if len(raw) > MAX_TABLE_BYTES:
        raise DataError(f"{name}: over the {MAX_TABLE_BYTES // 2**20} MB table limit.")
    if not raw.strip():
        raise DataError(f"{name}: the file is empty (no rows).")
    text, encoding = decode_bytes(raw, name)
    delimiter = sniff_delimiter(text, name)
    try:
        df = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_filter=False,
                         skip_blank_lines=True, engine="c")
    except pd.errors.ParserError as e:
        raise DataError(f"{name}: could not be parsed as a table ({e}). Check quotes and the delimiter.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: the file is empty (no rows).") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise DataError(f"{name}: has a header ({', '.join(df.columns)}) but no rows.")
    notes = []
    if encoding not in ("utf-8",):
        notes.append(f"Read as {encoding}.")
    return TableRead(df=df, encoding=encoding, delimiter=delimiter, notes=notes)


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
    truncated: int = 0

    def notes(self) -> list[str]:
        out = []
        if self.empty_input:
            out.append(f"{self.empty_input} row(s) with empty or blank input were dropped.")
        if self.empty_label:
            out.append(f"{self.empty_label} row(s) with an empty label were dropped.")
        if self.truncated:
            out.append(f"{self.truncated} text(s) longer than {MAX_TEXT_CHARS:,} characters were truncated.")
        return out


def clean_text_table(df: pd.DataFrame, text_col: str, label_col: str, name: str = "table") -> tuple[pd.DataFrame, CleanReport]:
    missing = [c for c in (text_col, label_col) if c not in df.columns]
    if missing:
        raise DataError(f"{name}: no column named {', '.join(map(repr, missing))}. Columns found: {', '.join(df.columns)}.")
    rep = CleanReport(rows_in=len(df))
    text = df[text_col].astype(str)
    label = df[label_col].astype(str).str.strip()
    blank = text.str.strip() == ""
    no_label = label == ""
    rep.empty_input = int(blank.sum())
    rep.empty_label = int((no_label & ~blank).sum())
    keep = ~blank & ~no_label
    text, label = text[keep], label[keep]
    long = text.str.len() > MAX_TEXT_CHARS
    rep.truncated = int(long.sum())
    if rep.truncated:
        text = text.where(~long, text.str.slice(0, MAX_TEXT_CHARS))
    out = pd.DataFrame({"text": text.values, "label": label.values, "row": (df.index[keep] + 2).values})
    if out.empty:
        raise DataError(f"{name}: no usable rows (every row had an empty input or label).")
    return out, rep
