"""Following a run's events.jsonl as it grows: each read starts at the byte where the last one stopped, and the
step curve is kept thinned to a bounded number of points, so what every refresh of Monitor costs does not
grow with the length of the run. One follower per run is shared by everyone watching it."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

MAX_POINTS = 1000  # per step curve: a run of a million steps is drawn with at most this many


class EventTail:
    def __init__(self, path: Path, max_points: int = MAX_POINTS):
        self.path = Path(path)
        self.max_points = max_points
        self._lock = threading.Lock()
        self._offset = 0
        self._stride = 1  # keep every stride-th step; doubles whenever the curve outgrows max_points
        self._seen_steps = 0
        self.steps: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []  # one per epoch (and the test one): few
        self.warnings: list[str] = []
        self.last_step: dict[str, Any] | None = None
        self.last_progress: dict[str, Any] | None = None
        self.epoch_ends: dict[int, float] = {}
        self.count = 0

    def refresh(self) -> "EventTail":
        """Read what was appended since the last call (a half-written last line waits for the next)."""
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    chunk = f.read()
            except FileNotFoundError:
                return self
            end = chunk.rfind(b"\n") + 1
            for line in chunk[:end].splitlines():
                try:
                    self._add(json.loads(line))
                except json.JSONDecodeError:
                    continue
            self._offset += end
        return self

    def _add(self, e: dict[str, Any]) -> None:
        self.count += 1
        kind, d = e["kind"], e["data"]
        if kind == "step":
            self.last_step = e
            if self._seen_steps % self._stride == 0:
                self.steps.append({"step": e["step"], "train loss": d["loss"], "learning rate": d["lr"]})
                if len(self.steps) > self.max_points:
                    self.steps = self.steps[::2]
                    self._stride *= 2
            self._seen_steps += 1
        elif kind == "eval":
            self.evals.append(e)
        elif kind == "epoch_end":
            self.epoch_ends[e["epoch"] + 1] = d.get("train_loss")
        elif kind == "warning":
            self.warnings = (self.warnings + [d["message"]])[-3:]
        elif kind == "progress":
            self.last_progress = e
        elif kind == "run_start":
            self.last_progress = None
