"""Immutable, versioned datasets on disk: ingest a table, an image folder or a zip into a dataset id."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import access
from ..errors import DataError
from ..fsutil import atomic_write_json, read_json, temp_dir
from ..modalities import get_modality
from .archives import extract_zip
from .images import BadImage, inspect_image, is_image_name
from .names import readable
from .tables import TABLE_TYPES, clean_text_table, guess_columns, read_table

Progress = Callable[[float, str], None]
# who is ingesting, for the versions an ingest writes (per thread: studio sessions ingest concurrently)
_INGEST_OWNER: ContextVar[str | None] = ContextVar("fts_ingest_owner", default=None)
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini", ".ipynb_checkpoints"}


def _noop(_: float, __: str) -> None:
    pass


def home() -> Path:
    return Path(os.environ.get("FTS_HOME") or Path.home() / ".finetune-studio")


def data_root() -> Path | None:
    """Server folders a user may point at; None means the feature is off."""
    v = os.environ.get("FTS_DATA_ROOT")
    return Path(v).resolve() if v else None


def hidden(p: Path) -> bool:
    return p.name in IGNORED_NAMES or p.name.startswith((".", "._", "__"))


@dataclass
class Dataset:
    id: str
    dir: Path
    manifest: dict[str, Any]
    items: pd.DataFrame

    @property
    def modality(self) -> str:
        return self.manifest["modality"]

    @property
    def classes(self) -> list[str]:
        return sorted(self.manifest["classes"])

    @property
    def kind(self):
        return get_modality(self.modality)

    @property
    def input_col(self) -> str:
        return self.kind.input_col

    def inputs(self) -> list[str]:
        """Texts, or absolute image paths."""
        return self.kind.dataset_inputs(self)

    def display(self, i: int) -> str:
        return self.kind.displays(self.items.iloc[[i]])[0]

    @property
    def splits_dir(self) -> Path:
        """Each split made for this version, one file per split setting (core.data.split)."""
        return self.dir / "splits"

    @property
    def review_file(self) -> Path:
        """An expert's decisions on this version's examples, one JSON line each (core.data.review)."""
        return self.dir / "review.jsonl"

    @property
    def changes_file(self) -> Path:
        """A version made by a review: its parent and every change, with who made it and when."""
        return self.dir / "changes.json"

    def displays(self) -> list[str]:
        return self.kind.displays(self.items)


@dataclass
class IngestResult:
    dataset: Dataset
    notes: list[str] = field(default_factory=list)


class DatasetStore:
    """datasets/<id>/{manifest.json, items.parquet}; image bytes in datasets/_blobs, shared by versions."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else home() / "datasets"
        self.root.mkdir(parents=True, exist_ok=True)
        self.blobs = self.root / "_blobs"

    # --- reading
    def get(self, ds_id: str) -> Dataset:
        d = self.root / ds_id
        manifest = read_json(d / "manifest.json")
        if not ds_id.startswith("ds-") or manifest is None:
            raise DataError(f"No dataset with id {ds_id!r}. Load the data again on the Data page.")
        return Dataset(ds_id, d, manifest, pd.read_parquet(d / "items.parquet"))

    def find(self, ds_id: str | None) -> Dataset | None:
        """The version if it is still in this store (a run may come from another studio home)."""
        return self.get(ds_id) if ds_id and self.exists(ds_id) else None

    def exists(self, ds_id: str) -> bool:
        return (self.root / ds_id / "manifest.json").exists()

    def list(self) -> list[dict[str, Any]]:
        out = [read_json(p) for p in self.root.glob("ds-*/manifest.json")]
        return sorted((m for m in out if m), key=lambda m: m.get("created", 0), reverse=True)

    # --- writing
    def save(self, items: pd.DataFrame, modality: str, name: str, *, parent: str | None = None,
             bad: list[dict[str, str]] | None = None, notes: list[str] | None = None,
             source: str = "", change: str = "", owner: str | None = None,
             columns: dict[str, str] | None = None) -> Dataset:
        """columns: a table's input and label column names as the file has them (exports read new files by
        the same names)."""
        items = items.reset_index(drop=True)
        if items.empty:
            raise DataError(f"{name}: no usable examples.")
        key_col = get_modality(modality).key_col
        digest = hashlib.sha256()
        for a, b in zip(items[key_col].astype(str), items["label"].astype(str)):
            digest.update(a.encode("utf-8", "surrogatepass") + b"\x1f" + b.encode() + b"\x1e")
        ds_id = f"ds-{digest.hexdigest()[:12]}"
        d = self.root / ds_id
        if (d / "manifest.json").exists():
            return self.get(ds_id)
        counts = items["label"].value_counts()
        manifest = {
            "id": ds_id, "name": name, "modality": modality, "created": time.time(), "parent": parent,
            "change": change, "source": source, "rows": int(len(items)),
            "classes": {str(k): int(v) for k, v in counts.items()},
            "bad": bad or [], "notes": notes or [], **({"columns": columns} if columns else {}),
        }
        tmp = temp_dir(self.root, f".{ds_id}.")
        items.to_parquet(tmp / "items.parquet", index=False)
        atomic_write_json(tmp / "manifest.json", manifest)
        access.grant(tmp, owner or _INGEST_OWNER.get())  # owned from the moment it appears, never briefly public
        try:
            os.replace(tmp, d)
        except OSError:  # another process wrote the same content first
            shutil.rmtree(tmp, ignore_errors=True)
        return self.get(ds_id)

    def derive(self, parent: Dataset, items: pd.DataFrame, change: str, owner: str | None = None) -> Dataset:
        """A new version with some rows removed or relabelled; the parent stays as it was."""
        name = parent.manifest.get("name", parent.id)
        ds = self.save(items, parent.modality, name, parent=parent.id, bad=parent.manifest.get("bad"),
                       notes=parent.manifest.get("notes"), source=parent.manifest.get("source", ""), change=change,
                       owner=owner, columns=parent.manifest.get("columns"))
        access.grant(ds.dir, owner)  # the same content may already exist, brought by someone else
        return ds

    def _put_blob(self, src: Path) -> str:
        h = hashlib.sha256(src.read_bytes()).hexdigest()
        rel = Path("_blobs") / h[:2] / f"{h}{src.suffix.lower()}"
        dst = self.root / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")  # unique: identical files race here
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        return rel.as_posix()

    # --- ingest
    def ingest(self, source: str | Path, *, text_col: str | None = None, label_col: str | None = None,
               name: str | None = None, progress: Progress = _noop, owner: str | None = None) -> IngestResult:
        """A CSV/TSV of text+label or image path+label, a folder of class folders, or a zip of either.
        owner: the studio user who brought it (see core.access); None for the CLI and single-user studio."""
        token = _INGEST_OWNER.set(owner)
        try:
            res = self._ingest(source, text_col=text_col, label_col=label_col, name=name, progress=progress)
        finally:
            _INGEST_OWNER.reset(token)
        access.grant(res.dataset.dir, owner)  # the same content may already exist, brought by someone else
        return res

    def _ingest(self, source: str | Path, *, text_col: str | None, label_col: str | None, name: str | None,
                progress: Progress) -> IngestResult:
        p = Path(source)
        name = name or p.name
        if not p.exists():
            raise DataError(f"{name}: not found.")
        if p.is_dir():
            return self.ingest_image_folder(p, name=name, progress=progress)
        if p.suffix.lower() == ".zip":
            with tempfile.TemporaryDirectory(dir=self.root) as tmp:
                progress(0.0, "Extracting archive")
                out = extract_zip(p, Path(tmp) / "x", progress=lambda f, m: progress(0.3 * f, f"Extracting {m}"),
                                  name=name)
                tables = [t for t in out.rglob("*") if t.suffix.lower().lstrip(".") in TABLE_TYPES and not hidden(t)]
                images = any(is_image_name(f.name) for f in out.rglob("*") if f.is_file())
                if tables and not images:
                    return self.ingest_table(tables[0], text_col=text_col, label_col=label_col, name=name)
                return self.ingest_image_folder(out, name=name, progress=lambda f, m: progress(0.3 + 0.7 * f, m))
        return self.ingest_table(p, text_col=text_col, label_col=label_col, name=name, progress=progress)

    def ingest_table(self, path: Path, *, text_col: str | None = None, label_col: str | None = None,
                     name: str | None = None, progress: Progress = _noop) -> IngestResult:
        name = name or path.name
        tr = read_table(path, name)
        if text_col is None or label_col is None:
            g_in, g_label = guess_columns(tr.df, name)
            text_col, label_col = text_col or g_in, label_col or g_label
        items, rep = clean_text_table(tr.df, text_col, label_col, name)
        notes = tr.notes + rep.notes()
        columns = {"input": str(text_col), "label": str(label_col)}
        if _looks_like_paths(items["text"]):
            return self._ingest_image_table(path, items, name, notes, progress, columns)
        ds = self.save(items, "text", name, notes=notes, source=str(path), columns=columns)
        return IngestResult(ds, notes)

    def _ingest_image_table(self, path: Path, items: pd.DataFrame, name: str, notes: list[str],
                            progress: Progress, columns: dict[str, str]) -> IngestResult:
        base = path.parent.resolve()
        files, bad = [], []
        for rel, label, row in zip(items["text"], items["label"], items["row"]):
            f = (base / rel).resolve()
            if base not in f.parents:
                bad.append({"item": f"row {row}: {rel}", "reason": "path points outside the table's folder"})
            elif not f.is_file():
                bad.append({"item": f"row {row}: {rel}", "reason": "file not found"})
            else:
                files.append((f, label, rel))
        return self._ingest_files(files, bad, name, notes, str(path), progress, columns)

    def ingest_image_folder(self, root: Path, *, name: str | None = None, progress: Progress = _noop) -> IngestResult:
        name = name or root.name
        class_root, depth, notes = find_class_root(root)
        files, bad = [], []
        for f in sorted(class_root.rglob("*")):
            rel = f.relative_to(class_root)
            if any(hidden(Path(part)) for part in rel.parts) or f.is_dir():
                continue
            if f.is_symlink():
                bad.append({"item": rel.as_posix(), "reason": "symbolic links are not followed"})
                continue
            if len(rel.parts) <= depth:
                if is_image_name(f.name):
                    bad.append({"item": rel.as_posix(), "reason": "not inside a class folder"})
                continue
            if not is_image_name(f.name):
                if f.suffix.lower() not in (".txt", ".md", ".csv", ".json"):
                    bad.append({"item": rel.as_posix(), "reason": f"not an image type ({f.suffix or 'no extension'})"})
                continue
            files.append((f, rel.parts[depth - 1], rel.as_posix()))
        return self._ingest_files(files, bad, name, notes, str(root), progress)

    def _ingest_files(self, files: list[tuple[Path, str, str]], bad: list[dict[str, str]], name: str,
                      notes: list[str], source: str, progress: Progress,
                      columns: dict[str, str] | None = None) -> IngestResult:
        if not files:
            raise DataError(f"{name}: no images found. Put images in one folder per class "
                            "(e.g. cats/1.jpg, dogs/2.png).")
        files, renamed = _readable_names(files)
        notes = notes + renamed
        rows = []
        done = 0

        def one(item: tuple[Path, str, str]) -> dict[str, Any]:
            f, label, rel = item
            try:
                info = inspect_image(f)
            except BadImage as e:
                return {"bad": {"item": rel, "reason": str(e)}}
            return {"path": self._put_blob(f), "blob": None, "source": rel,
                    "label": label, "width": info.width, "height": info.height, "mode": info.mode,
                    "phash": np.int64(np.uint64(info.phash).view(np.int64)), "colour": info.colour}

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for r in pool.map(one, files):
                done += 1
                if "bad" in r:
                    bad.append(r["bad"])
                else:
                    r["blob"] = Path(r["path"]).stem
                    rows.append(r)
                if done % 100 == 0 or done == len(files):
                    progress(done / len(files), f"Checked {done:,}/{len(files):,} images")
        if not rows:
            raise DataError(f"{name}: none of the {len(files)} image files could be read "
                            f"(first problem: {bad[0]['item']}: {bad[0]['reason']}).")
        if bad:
            notes = notes + [f"{len(bad)} file(s) skipped; see the bad-files report."]
        ds = self.save(pd.DataFrame(rows), "image", name, bad=bad, notes=notes, source=source, columns=columns)
        return IngestResult(ds, notes)


def _readable_names(files: list[tuple[Path, str, str]]) -> tuple[list[tuple[Path, str, str]], list[str]]:
    """Class and file names as they can be stored; each class name changed is said once."""
    out, said = [], {}
    for f, label, rel in files:
        shown, why = readable(label)
        if why:
            said.setdefault(label, f"Class folder {shown!r}: {why}.")
        out.append((f, shown, readable(rel)[0]))
    if len({label for _, label, _ in out}) < len({label for _, label, _ in files}):
        raise DataError("Two class folders have names that differ only in characters the studio cannot store "
                        f"({'; '.join(said.values())}). Rename one of them.")
    return out, list(said.values())


def _looks_like_paths(texts: pd.Series) -> bool:
    sample = texts.head(50)
    return bool(len(sample)) and all(is_image_name(t.strip()) and "\n" not in t for t in sample)


def find_class_root(root: Path) -> tuple[Path, int, list[str]]:
    """Where the class folders are: skips single wrapper folders, and goes one level deeper when every
    top folder (e.g. train/, test/) holds class folders rather than images. Returns (root, depth, notes)."""
    notes: list[str] = []
    d = root
    while True:
        kids = [k for k in d.iterdir() if not hidden(k)]
        dirs = [k for k in kids if k.is_dir()]
        imgs = [k for k in kids if k.is_file() and is_image_name(k.name)]
        if len(dirs) == 1 and not imgs:
            notes.append(f"Skipped the wrapper folder '{dirs[0].name}'.")
            d = dirs[0]
            continue
        break
    if not dirs:
        raise DataError(f"{root.name}: no class folders found. Put images in one folder per class "
                        "(e.g. cats/1.jpg, dogs/2.png).")

    def direct_images(p: Path) -> int:
        return sum(1 for k in p.iterdir() if k.is_file() and is_image_name(k.name))

    def subdirs(p: Path) -> list[Path]:
        return [k for k in p.iterdir() if k.is_dir() and not hidden(k)]

    if all(direct_images(k) == 0 and subdirs(k) for k in dirs):
        inner = sorted({s.name for k in dirs for s in subdirs(k)})
        notes.append(f"Folders {', '.join(sorted(k.name for k in dirs))} each hold class folders; "
                     f"classes taken from the inner level: {', '.join(inner[:10])}"
                     + (" ..." if len(inner) > 10 else "") + ".")
        return d, 2, notes
    return d, 1, notes


def open_source(store: DatasetStore, source: str, text_col: str | None = None, label_col: str | None = None,
                progress: Progress = _noop, owner: str | None = None) -> Dataset:
    """A dataset id from the store, or a path ingested now (same content gives the same id).
    owner: the studio user asking; a version they may not see reads as missing."""
    if source.startswith("ds-") and not Path(source).exists():
        ds = store.get(source)
        if not access.can_see(ds.dir, owner):
            raise DataError(f"No dataset with id {source!r}. Load the data again on the Data page.")
        return ds
    return store.ingest(source, text_col=text_col, label_col=label_col, progress=progress, owner=owner).dataset
