"""A run's folder: the one place its layout is spelled. Everything a run leaves — what was asked and what the plan
resolved, its status and events, the checkpoints, the evaluation, the blend partner — is reached through a
RunFolder; an exported model folder shares the model part of the layout (ModelFolder)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..fsutil import read_json
from ..portable import PARTNER
from ..train.events import read_events

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE = "trainer.pt"  # beside a checkpoint's weights: optimiser, scaler, step and RNG


class ModelFolder:
    """What a model needs beside its weights, in a run or an export: config, labels, blend and partner."""

    def __init__(self, path: str | Path):
        self.dir = Path(path)

    @property
    def config_file(self) -> Path:
        return self.dir / CONFIG

    @property
    def resolved_file(self) -> Path:
        """The settings the run used once its plan was made (auto resolved, the head's epochs)."""
        return self.dir / "config.resolved.json"

    @property
    def labels_file(self) -> Path:
        return self.dir / "labels.json"

    @property
    def blend_file(self) -> Path:
        return self.dir / "blend.json"

    @property
    def partner_dir(self) -> Path:
        return self.dir / PARTNER

    @property
    def weights(self) -> Path | None:
        """The model's weights file: an export's own, else the run's best checkpoint, else its last."""
        for p in (self.dir / WEIGHTS, self.checkpoint_weights("best"), self.checkpoint_weights("last")):
            if p.is_file():
                return p
        return None

    def checkpoint(self, tag: str) -> Path:
        return self.dir / "checkpoints" / tag

    def checkpoint_weights(self, tag: str) -> Path:
        return self.checkpoint(tag) / WEIGHTS

    def checkpoint_state(self, tag: str) -> Path:
        """Optimiser, scaler, step and RNG state beside a checkpoint's weights."""
        return self.checkpoint(tag) / STATE

    @property
    def config(self) -> RunConfig:
        """What was asked (strategy 'auto' stays 'auto': a replay resolves it again)."""
        return RunConfig.load(self.config_file)

    @property
    def resolved_config(self) -> RunConfig:
        """What the run used once its plan was made (falls back to what was asked before that)."""
        return RunConfig.load(self.resolved_file if self.resolved_file.is_file() else self.config_file)


class RunFolder(ModelFolder):
    """One run: RunFolder(runs_root / run_id). Its id is the folder's name."""

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def status_file(self) -> Path:
        return self.dir / "status.json"

    @property
    def events_file(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def control_file(self) -> Path:
        """A stop asked for from outside the run's process."""
        return self.dir / "control.json"

    @property
    def lease_file(self) -> Path:
        """Held (locked) by the process that owns the run while it lives (core.runs.lifecycle)."""
        return self.dir / "lease"

    @property
    def worker_log(self) -> Path:
        return self.dir / "worker.log"

    @property
    def error_file(self) -> Path:
        return self.dir / "error.txt"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def eval_dir(self) -> Path:
        return self.dir / "eval"

    def result_file(self, split: str) -> Path:
        return self.eval_dir / f"{split}.json"

    @property
    def test_predictions(self) -> Path:
        return self.eval_dir / "test_predictions.parquet"

    @property
    def explanations_file(self) -> Path:
        """The worst test mistakes explained once, when the run ends (the report reads them)."""
        return self.eval_dir / "mistakes_explained.json"

    @property
    def parent_changes_file(self) -> Path:
        """A continued run against its parent on their shared test examples (core.runs.changes)."""
        return self.eval_dir / "vs_parent.json"

    @property
    def baseline_predictions(self) -> Path:
        return self.eval_dir / "baseline_test_pred.npy"

    @property
    def suspects_file(self) -> Path:
        return self.eval_dir / "suspect_labels.parquet"

    @property
    def unsure_file(self) -> Path:
        """Training and validation examples an out-of-fold model is least sure about (the review queue)."""
        return self.eval_dir / "least_sure.parquet"

    @property
    def distillation_file(self) -> Path:
        return self.eval_dir / "distillation.json"

    # ------------------------------------------------------------------ reading
    @property
    def status(self) -> dict[str, Any]:
        return read_json(self.status_file, {}) or {}

    def result(self, split: str = "test") -> dict[str, Any] | None:
        return read_json(self.result_file(split))

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return read_events(self.events_file, since)

    def is_run(self) -> bool:
        return self.config_file.is_file()
