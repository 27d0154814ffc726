"""Run store: one folder per run plus an SQLite index for listing."""
from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from .. import access
from ..config import RunConfig
from ..data.datasets import home
from ..errors import RunError
from ..fsutil import atomic_write_json
from .folder import RunFolder
from .lifecycle import ACTIVE, FINAL, Queue, reconcile

__all__ = ["RunStore", "ACTIVE", "FINAL"]
log = logging.getLogger("finetune_studio")



class RunStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else home() / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.queue = Queue(self.root)
        self._db = self.root / "index.sqlite"
        self.warnings: list[str] = []
        self._open_index()

    def _open_index(self) -> None:
        """The index is a cache of the run folders: made when missing, moved aside and made again when it cannot
        be read (the folders are the truth)."""
        try:
            with self._conn() as c:
                c.execute("""CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, name TEXT, created REAL,
                             dataset TEXT, backbone TEXT, strategy TEXT, status TEXT, summary TEXT)""")
                c.execute("SELECT count(*) FROM runs").fetchone()
        except sqlite3.DatabaseError as e:
            aside = self._db.with_name(f"{self._db.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
            for p in (self._db, self._db.with_name(self._db.name + "-wal"), self._db.with_name(self._db.name + "-shm")):
                if p.exists():
                    p.replace(aside if p == self._db else p.with_name(aside.name + p.name[len(self._db.name):]))
            self.warnings.append(f"The run index could not be read ({e}); it was moved aside to {aside.name} and "
                                 "rebuilt from the run folders.")
            log.warning(self.warnings[-1])
            with self._conn() as c:
                c.execute("""CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, created REAL, dataset TEXT,
                             backbone TEXT, strategy TEXT, status TEXT, summary TEXT)""")

    def _conn(self) -> sqlite3.Connection:
        c = sqlite3.connect(self._db, timeout=30)
        c.execute("PRAGMA journal_mode=WAL")
        return c

    def create(self, cfg: RunConfig, dataset_id: str, owner: str | None = None) -> RunFolder:
        rid = time.strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        d = self.root / rid
        d.mkdir(parents=True)
        access.grant(d, owner)  # before config.json: the run is never visible to others, not even briefly
        rec = RunFolder(d)
        cfg.save(rec.config_file)
        self.set_status(rec, "queued", dataset=dataset_id, created=time.time())
        return rec

    def get(self, rid: str, viewer: str | None = None) -> RunFolder:
        """viewer: the studio user asking; someone else's private run reads as missing."""
        rec = RunFolder(self.root / rid)
        if not rid or "/" in rid or not rec.is_run() or not access.can_see(rec.dir, viewer):
            raise RunError(f"No run {rid!r} in {self.root}.")
        self.reconcile(rec)
        return rec

    def reconcile(self, rec: RunFolder) -> dict[str, Any]:
        """Its status as it truly is: a run whose owner died reads as interrupted, and resumable."""
        return reconcile(rec, self.queue, lambda r, status, reason: self.set_status(r, status, reason=reason,
                                                                                     finished=time.time()))

    def open_dir(self, run_dir: str | Path) -> RunFolder:
        rec = RunFolder(run_dir)
        if not rec.is_run():
            raise RunError(f"{rec.dir} is not a run folder (no {rec.config_file.name}).")
        self.reconcile(rec)
        return rec

    def set_status(self, rec: RunFolder, status: str, **fields: Any) -> dict[str, Any]:
        st = rec.status
        changed = st.get("status") != status or bool(set(fields) & {"test", "baseline", "trainable_params", "reason",
                                                                    "resolved_backbone", "predictor"})
        st.update(fields)
        if status != "running":  # what a finished run was doing last ("Computing features 320/400") is stale
            st.pop("message", None)
        st.update({"id": rec.id, "status": status, "updated": time.time()})
        atomic_write_json(rec.status_file, st)
        if changed:  # heartbeats only touch status.json; the index follows real changes
            self._index(rec, st)
        return st

    def _index(self, rec: RunFolder, st: dict[str, Any]) -> None:
        try:
            cfg = json.loads(rec.config_file.read_text(encoding="utf-8"))
            summary = {k: st.get(k) for k in ("test", "baseline", "vs_baseline", "trainable_params", "total_params",
                                              "elapsed_s", "peak_mem_mb", "epoch", "step", "reason")}
            # what ran, once the plan has said (auto's choice), else what was asked
            backbone = st.get("resolved_backbone") or cfg["train"]["backbone"]
            strategy = st.get("resolved_strategy") or cfg["train"]["strategy"]
            name = cfg.get("name") or (st.get("predictor") or {}).get("title") or ""
            with self._conn() as c:
                c.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                          (rec.id, name, st.get("created", time.time()), st.get("dataset", ""), backbone, strategy,
                           st["status"], json.dumps(summary)))
        except (sqlite3.Error, OSError, KeyError, json.JSONDecodeError):
            pass  # the folder is the source of truth; the index is rebuilt by reindex()

    def reindex(self) -> None:
        for rec in self.folders():
            self._index(rec, rec.status or {"status": "unknown"})

    def folders(self) -> list[RunFolder]:
        """Every run folder in the store, whatever the index says."""
        return [r for r in (RunFolder(d) for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
                if r.is_run()]

    def list(self, viewer: str | None = None) -> list[dict[str, Any]]:
        """Every run this viewer may see, newest first, from the index; runs the index lacks (it was deleted, or
        a run was made while it could not be written) are indexed first, and active runs reconciled."""
        try:
            with self._conn() as c:
                indexed = {r[0] for r in c.execute("SELECT id FROM runs")}
        except sqlite3.DatabaseError:
            self._open_index()
            indexed = set()
        missing = [r for r in self.folders() if r.id not in indexed]
        for rec in missing:
            self._index(rec, rec.status or {"status": "unknown"})
        with self._conn() as c:
            rows = c.execute("SELECT id,name,created,dataset,backbone,strategy,status,summary FROM runs "
                             "ORDER BY created DESC").fetchall()
        keys = ("id", "name", "created", "dataset", "backbone", "strategy", "status")
        out = []
        for r in rows:
            d = self.root / r[0]
            if not d.is_dir() or not access.can_see(d, viewer):
                continue
            row = {**dict(zip(keys, r[:7])), **json.loads(r[7] or "{}")}
            if row["status"] in ACTIVE:
                row["status"] = self.reconcile(RunFolder(d)).get("status", row["status"])
            out.append(row)
        return out
