"""Predicting whatever a person points the CLI at: a table, an image, a folder of images or a zip. Files that
cannot be used are listed with the reason; the same rules as dataset ingest (no symbolic links, hidden files
ignored)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.datasets import hidden
from ..data.images import is_image_name
from ..data.tables import guess_columns, read_table
from ..errors import DataError
from ..modalities import get_modality
from ..portable import point
from ..runs.folder import ModelFolder
from ..tasks import from_meta
from .export import load_exported
from .predictor import Predictor, read_zip_images

OUTSIDE = b""  # a table row whose path climbs out of the table's folder: not read


class Loaded:
    """A run or an export folder as a predictor: the studio's own (run folders, folder exports) or the export's
    portable one (ONNX exports, through their own predict.py), answering alike."""

    def __init__(self, folder: str | Path):
        folder = ModelFolder(folder).dir
        if (folder / "predictor.json").is_file():
            self.model = load_exported(folder)
            self.modality, self.labels = self.model.spec["modality"], self.model.labels
            self.title = self.model.spec.get("describe", {}).get("sentence", folder.name)
        else:
            self.model = Predictor(folder)
            self.modality, self.labels = self.model.modality.name, self.model.labels
            self.title = self.model.describe()["sentence"]
        self.classes = self.labels.get("classes") or []
        self.task = from_meta(self.labels)

    @property
    def file_inputs(self) -> bool:
        return get_modality(self.modality).file_inputs

    def predict(self, items: list[Any]):
        return self.model.predict(items)

    def table(self, names: list[str], out, errors: list[str | None] | None = None) -> pd.DataFrame:
        df = pd.DataFrame({"input": names, **self.task.prediction_table(out, self.labels)})
        df["error"] = [e or "" for e in (errors or [None] * len(names))]
        return df

    def answer(self, inputs: list[Any]) -> list[dict[str, Any]]:
        """One record per input: its label, the class probabilities, or why it could not be read."""
        out, errors = self.model.predict(inputs)
        rows = []
        for i, (row, err) in enumerate(zip(out, errors)):
            ok = err is None and all(math.isfinite(v) for v in row)
            item: dict[str, Any] = {"index": i, "label": point(row[None, :], self.labels)[0] if ok else None,
                                    "error": err}
            if ok and self.classes:
                item["probabilities"] = {c: float(p) for c, p in zip(self.classes, row)}
            rows.append(item)
        return rows


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


def _table_inputs(pred: Loaded, src: Path, text_col: str | None) -> tuple[list[str], list[Any]]:
    df = read_table(src).df
    if text_col is not None and text_col not in df.columns:
        raise DataError(f"{src.name}: no column named {text_col!r}. Columns found: {', '.join(map(str, df.columns))}.")
    col = text_col or (df.columns[0] if len(df.columns) == 1 else guess_columns(df, src.name)[0])
    names = df[col].astype(str).tolist()
    if not pred.file_inputs:
        return names, names
    base = src.parent.resolve()
    items: list[Any] = []
    for n in names:
        f = (base / n).resolve()
        items.append(str(f) if base in f.parents else OUTSIDE)
    return names, items


def predict_path(model_dir: str | Path, path: str | Path, text_col: str | None = None
                 ) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    pred = Loaded(model_dir)
    src = Path(path)
    if not src.exists():
        raise DataError(f"{src}: not found.")
    skipped: list[dict[str, str]] = []
    table_like = src.is_file() and not src.suffix.lower() == ".zip" and not is_image_name(src.name)
    if not table_like and not pred.file_inputs:
        raise DataError(f"{src.name}: this model reads {pred.modality}s; give it a table with a text column.")
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
