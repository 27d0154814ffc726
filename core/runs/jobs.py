"""Long page work (a learning-rate range test, an export with its parity check, a whole-file prediction, a
saliency gallery) runs in a small pool beside the server, never in the page's own script run: the page shows
its progress and a Cancel button, and stays responsive for everyone."""
from __future__ import annotations

import secrets
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import StudioError


class Cancelled(Exception):
    """Raised inside a job at its next progress report once Cancel was pressed."""


@dataclass
class Job:
    id: str
    label: str
    owner: str | None
    fraction: float = 0.0
    message: str = "Waiting to start"
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.finished is not None

    def report(self, fraction: float, message: str) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        self.fraction, self.message = min(max(float(fraction), 0.0), 1.0), message


class JobPool:
    def __init__(self, workers: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fts-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[Callable[[float, str], None], Callable[[], bool]], Any], label: str,
               owner: str | None = None) -> Job:
        """fn(progress, cancelled) runs in the pool; a StudioError becomes the job's plain error."""
        job = Job(secrets.token_hex(6), label, owner)
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, fn)
        return job

    def _run(self, job: Job, fn) -> None:
        try:
            job.report(0.0, "Starting")
            job.result = fn(job.report, job.cancel.is_set)
        except Cancelled:
            job.error = "Cancelled."
        except StudioError as e:
            job.error = str(e)
        except Exception as e:  # the pool lives on; the page says what failed
            import logging

            logging.getLogger("finetune_studio").error("job %s failed: %s", job.label, traceback.format_exc())
            job.error = f"{job.label} failed unexpectedly ({type(e).__name__}: {e}). Nothing saved was lost."
        finally:
            job.finished = time.time()

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and (owner is None or job.owner in (owner, None)) else None

    def cancel(self, job_id: str, owner: str | None = None) -> None:
        job = self.get(job_id, owner)
        if job is not None:
            job.cancel.set()
