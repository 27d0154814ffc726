"""Predicting whatever a person points the CLI at: a table, an image, a folder of images or a zip. Files that
cannot be used are listed with the reason; the same rules as dataset ingest (no symbolic links, hidden files
ignored)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..data.datasets import hidden
from ..data.images import is_image_name
from ..data.tables import guess_columns, read_table
from ..errors import DataError
from .predictor import Predictor, read_zip_images

OUTSIDE = b""  # a table row whose path climbs out of the table's folder: not read


def _folder_images(src: Path) -> tuple[list[Path], list[dict[str, str]]]:
    files, skipped = [], []
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if any(hidden(Path(part)) for part in rel.parts):
            continue
        if f.is_symlink():
            skipped.append({"item": rel.as_posix(), "reason": "symbolic links are not followed"})
        elif f.is_file():
            if is_image_name(f.name):
                files.append(f)
            else:
                skipped.append({"item": rel.as_posix(), "reason": f"not an image type ({f.suffix or 'no extension'})"})
    return files, skipped


def _table_inputs(pred: Predictor, src: Path, text_col: str | None) -> tuple[list[str], list[Any]]:
    df = read_table(src).df
    if text_col is not None and text_col not in df.columns:
        raise DataError(f"{src.name}: no column named {text_col!r}. Columns found: {', '.join(map(str, df.columns))}.")
    col = text_col or (df.columns[0] if len(df.columns) == 1 else guess_columns(df, src.name)[0])
    names = df[col].astype(str).tolist()
    if not pred.modality.file_inputs:
        return names, names
    base = src.parent.resolve()
    items: list[Any] = []
    for n in names:
        f = (base / n).resolve()
        items.append(str(f) if base in f.parents else OUTSIDE)
    return names, items


def predict_path(model_dir: str | Path, path: str | Path, text_col: str | None = None
                 ) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    pred = Predictor(model_dir)
    src = Path(path)
    if not src.exists():
        raise DataError(f"{src}: not found.")
    skipped: list[dict[str, str]] = []
    table_like = src.is_file() and not src.suffix.lower() == ".zip" and not is_image_name(src.name)
    if not table_like and not pred.modality.file_inputs:
        raise DataError(f"{src.name}: this model reads {pred.modality.noun}s; give it a table with a text column.")
    if src.is_dir():
        files, skipped = _folder_images(src)
        if not files:
            raise DataError(f"{src}: no images found" + (f" ({len(skipped)} other file(s) skipped)." if skipped else "."))
        names, items = [str(f.relative_to(src)) for f in files], [str(f) for f in files]
    elif src.suffix.lower() == ".zip":
        members = read_zip_images(src.read_bytes())
        names, items = [n for n, _ in members], [b for _, b in members]
    elif is_image_name(src.name):
        names, items = [src.name], [str(src)]
    else:
        names, items = _table_inputs(pred, src, text_col)
    out, errors = pred.predict(items)
    errors = ["path points outside the table's folder" if it is OUTSIDE else e for it, e in zip(items, errors)]
    return pred.table(names, out, errors), skipped
