"""Run store: one folder per run plus an SQLite index for listing."""
from __future__ import annotations

import json
import os
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

ACTIVE = ("queued", "running")
FINAL = ("completed", "stopped", "diverged", "failed", "interrupted")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else home() / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._db = self.root / "index.sqlite"
        with self._conn() as c:
            c.execute("""CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, name TEXT, created REAL,
                         dataset TEXT, backbone TEXT, strategy TEXT, status TEXT, summary TEXT)""")

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
        return rec

    def open_dir(self, run_dir: str | Path) -> RunFolder:
        rec = RunFolder(run_dir)
        if not rec.is_run():
            raise RunError(f"{rec.dir} is not a run folder (no {rec.config_file.name}).")
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
        return [r for r in (RunFolder(d) for d in self.root.iterdir() if d.is_dir()) if r.is_run()]

    def list(self, viewer: str | None = None) -> list[dict[str, Any]]:
        with self._conn() as c:
            rows = c.execute("SELECT id,name,created,dataset,backbone,strategy,status,summary FROM runs "
                             "ORDER BY created DESC").fetchall()
        if not rows and self.folders():
            self.reindex()
            return self.list(viewer)
        keys = ("id", "name", "created", "dataset", "backbone", "strategy", "status")
        return [{**dict(zip(keys, r[:7])), **json.loads(r[7] or "{}")} for r in rows
                if (self.root / r[0]).is_dir() and access.can_see(self.root / r[0], viewer)]
