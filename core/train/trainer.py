"""A run from start to finish: plan (core.train.plan), train (core.train.loop with core.train.callbacks), record the outcome in
the run store. Never raises for a run-level problem: the status says what happened."""
from __future__ import annotations

import math
import os
import resource
import time
import traceback
from typing import Any, Callable

import torch

from ..config import RunConfig
from ..data.datasets import DatasetStore
from ..errors import StudioError
from ..fsutil import DiskFullError, atomic_write_json
from ..predict.predictor import Predictor
from ..runs.changes import summary, what_changed
from ..runs.folder import RunFolder
from ..runs.store import RunStore
from ..strategies import count_params
from . import distributed as D
from .auto import budget_seconds
from .callbacks import (
    BestWeights,
    Checkpointer,
    DivergenceGuard,
    EarlyStopping,
    EvalFiles,
    ExplainMistakes,
    MixUp,
    OomRecovery,
    Resume,
    Schedule,
    StatusHeartbeat,
    TestEvaluation,
    Unfreeze,
    Validation,
)
from .callbacks.blend import Blend
from .callbacks.distill import Distill, check_teacher, compare, teacher_log_probs
from .callbacks.guards import Budget
from .callbacks.thresholds import Thresholds
from .events import Callback, Control, Event, JsonlLog, Parts, StoppedWhilePlanning, TrainState
from .loop import Learner, amp_dtype, optimizer
from .parent import parent_of
from .plan import Plan, make_plan
from .setup import pick_device, seed_everything
from .trackers import build

__all__ = ["Trainer", "pick_device", "seed_everything"]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Trainer:
    def __init__(self, cfg: RunConfig, run: RunFolder, store: RunStore, datasets: DatasetStore,
                 control: Control | None = None, callbacks: list[Callback] | None = None, device: str | None = None):
        """device: the one the run's queue turn gave it (cuda:N); None: as the settings say."""
        self.asked, self.folder, self.store, self.datasets, self.device = cfg, run, store, datasets, device
        self.control = control or Control()
        self.extra = list(callbacks or [])
        self.main = D.is_main()
        self.plan: Plan | None = None
        self.parent: RunFolder | None = None
        self.learner: Learner | None = None
        self._sinks = self._make_sinks()

    # ------------------------------------------------------------------ what other code reads
    @property
    def cfg(self) -> RunConfig:
        return self.plan.cfg if self.plan else self.asked

    @property
    def state(self) -> TrainState | None:
        return self.learner.state if self.learner else None

    @property
    def data(self):
        return self.plan.data if self.plan else None

    # ------------------------------------------------------------------ status and events outside the loop
    def _make_sinks(self) -> list[Callback]:
        sinks = list(self.extra)
        if self.main:
            sinks += [JsonlLog(self.folder.events_file), StatusHeartbeat(self.store, self.folder)]
        self.notes: list[str] = []
        if self.asked.train.trackers and self.main:
            extra, self.notes = build(self.asked.train.trackers, self.folder.dir, self.asked.name or self.folder.id,
                                      vars(self.asked.train))
            sinks += extra
        return sorted(sinks, key=lambda c: c.order)

    def emit(self, kind: str, **data: Any) -> None:
        if self.learner is not None:
            return self.learner.emit(kind, **data)
        ev = Event(kind, data=data)
        for cb in self._sinks:
            cb.on_event(None, ev)

    def progress(self, frac: float, msg: str) -> None:
        self.emit("progress", fraction=float(frac), message=msg)
        # planning reports progress at least per batch of features or pairs; the loop checks by itself.
        # Several processes plan in step and must stop in step, so they wait for the loop's check
        if self.learner is None and self.control.should_stop and D.world() == 1:
            raise StoppedWhilePlanning(msg)

    def status(self, status: str, **fields: Any) -> dict[str, Any]:
        if not self.main:
            return {"status": status, **fields}
        return self.store.set_status(self.folder, status, **fields)

    # ------------------------------------------------------------------ entry
    def run(self, resume: bool = False) -> dict[str, Any]:
        self.started = time.time()
        self.status("running", pid=os.getpid(), heartbeat=time.time(), started=time.time(), world_size=D.world())
        try:
            return self._run(resume)
        except StoppedWhilePlanning as e:
            reason = (f"{self.control.reason} It stopped before any training step, while preparing, "
                      f"at \"{str(e).rstrip('.')}\"; resuming starts it from the beginning.")
            self.emit("run_end", status=self.control.status or "stopped", reason=reason)
            return self.status(self.control.status or "stopped", reason=reason, finished=time.time())
        except StudioError as e:
            return self._fail(str(e))
        except DiskFullError as e:
            return self._fail(f"Disk full while saving ({e.strerror}); the previous checkpoint is intact. "
                              "Free some space, then resume.")
        except Exception as e:  # the run fails, the server keeps serving
            if self.main:
                self.folder.error_file.write_text(traceback.format_exc(), encoding="utf-8")
            return self._fail(f"Training failed: {type(e).__name__}: {e}. Details are in "
                              f"{self.folder.error_file.name} in the run folder.")

    def _fail(self, reason: str) -> dict[str, Any]:
        self.emit("run_end", status="failed", reason=reason)
        return self.status("failed", reason=reason, finished=time.time())

    def _run(self, resume: bool) -> dict[str, Any]:
        previous = self.folder.status if resume else {}
        self.parent = parent_of(self.store, self.asked.train.init_from) if self.asked.train.init_from else None
        plan = self.plan = make_plan(self.asked, self.datasets, self.folder, previous, resume, self.progress,
                                     lambda **f: self.status("running", **f), self.device, self.parent,
                                     self.started)
        learner = self.learner = self._learner(plan, resume)
        trainable, total = count_params(plan.model)
        trainable += plan.tuned_params  # what the run trained: the loop's weights and any tuned before it
        data = plan.data
        self.status("running", trainable_params=trainable, total_params=total, baseline=plan.baseline,
                    classes=data.classes, total_steps=learner.state.total_steps, device=str(plan.device),
                    modality=plan.spec.modality, task=data.task.name,
                    sizes={k: len(data.idx(k)) for k in ("train", "val", "test")}, notes=self.notes + plan.notes,
                    **plan.facts)
        start = dict(trainable_params=trainable, total_params=total, device=str(plan.device),
                     train=len(data.idx("train")), val=len(data.idx("val")), test=len(data.idx("test")),
                     classes=data.classes, baseline=plan.baseline, auto=plan.auto_reason, strategy=plan.cfg.train.strategy,
                     task=data.task.name)
        learner.fit(start, self.notes + plan.notes)
        return self._finish(plan, learner, trainable, total)

    def _learner(self, plan: Plan, resume: bool) -> Learner:
        t, data, dev = plan.cfg.train, plan.data, plan.device
        opt = optimizer(plan.groups, dev)
        amp = amp_dtype(dev) if t.amp else None
        scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
        parts = Parts(plan.model, opt, scaler, plan.model)
        parts.rewrap = lambda: self._wrap(parts, dev)
        parts.rewrap()
        # a head solved in the plan takes no steps: the loop only validates and keeps it
        train_idx = data.idx("train") if not plan.strategy.fits_head else data.idx("train")[:0]
        state = TrainState(batch_size=t.batch_size, grad_accum=t.grad_accum)
        per_rank = len(train_idx) // D.world()
        state.total_steps = math.ceil(math.ceil(per_rank / state.batch_size) / state.grad_accum) * t.epochs
        if t.max_steps:
            state.total_steps = min(state.total_steps, t.max_steps)
        cbs = self._callbacks(plan, resume)
        learner = Learner(parts, data.inputs, data.y, train_idx, t, data.task.loss_fn(t, data.targets, train_idx, dev),
                          lambda z: data.task.outputs(z, data.meta), data.task.out_dim(data.targets), dev, cbs,
                          self.control, state, self.folder, self.main)
        # decided from the config, not from the plan's fit: a resumed LP-FT run keeps its norms fixed too
        learner.fixed_norms = plan.strategy.fixes_norms(t)
        if dev.type == "cuda" and data.modality.mixable and not plan.strategy.frozen_backbone:
            plan.model.to(memory_format=torch.channels_last)  # convolutions run faster so on NVIDIA GPUs
            learner.channels_last = True
        return learner

    def _callbacks(self, plan: Plan, resume: bool) -> list[Callback]:
        t, data, d = plan.cfg.train, plan.data, self.folder
        cbs: list[Callback] = [Schedule(t.schedule, t.warmup_ratio), DivergenceGuard(), OomRecovery(),
                               Unfreeze(plan.strategy, plan.spec.modality), Validation(data, data.task.monitor(t)),
                               EarlyStopping(t.early_stopping_patience), BestWeights(d),
                               TestEvaluation(data, plan.baseline_pred, t.seed, d, self._predictor(plan),
                                              lambda: plan.features.computed)]
        cbs += plan.strategy.callbacks(plan.model, t)
        if resume:
            cbs.append(Resume(d, plan.strategy, plan.spec.modality))
        if t.budget_minutes is not None or plan.auto_reason:
            cbs.append(Budget(budget_seconds(t, plan.device), self.started, len(data.idx("val")),
                              len(data.idx("test")), plan.choice.room if plan.choice is not None else None))
        if (t.mixup_alpha > 0 or t.cutmix_alpha > 0) and data.modality.mixable:
            cbs.append(MixUp(t.mixup_alpha, t.cutmix_alpha, t.mix_prob))
        if t.teacher:
            cbs.append(self._distill(plan))
        if t.blend and data.task.blends:
            cbs.append(Blend(data, plan.blend_view, d if self.main else None, plan.crossfit))
        if data.task.several:
            cbs.append(Thresholds(data, d if self.main else None, {"task": data.task.name, "modality":
                                  plan.spec.modality, "backbone": plan.spec.name}))
        if self.main:  # writers run on the main process only
            cbs += [Checkpointer(d, every_s=t.checkpoint_every_min * 60), EvalFiles(data, d),
                    ExplainMistakes(data, d, self._predictor(plan))]
        return cbs + self._sinks

    def _predictor(self, plan: Plan) -> Callable[[Any, float], Predictor]:
        """The run's predictor from what training decided: its model, and the blend's partner and share."""
        meta = {**plan.data.meta, "task": plan.data.task.name}

        def make(partner, weight: float) -> Predictor:
            name = (self.learner.state.results.get("blend") or {}).get("partner")
            return Predictor.assemble(plan.spec, plan.cfg, meta, plan.model.eval(), partner, weight, plan.device, name)
        return make

    def _distill(self, plan: Plan) -> Callback:
        t = plan.cfg.train
        rec = self.store.get(t.teacher)
        check_teacher(rec, rec.status, plan.data, plan.cfg)
        return Distill(teacher_log_probs(rec, plan.data, plan.device, self.progress), t.distill_weight,
                       t.distill_temperature)

    def _wrap(self, parts: Parts, device: torch.device) -> None:
        """Under torchrun, train through DistributedDataParallel; alone, through the model itself; compiled when
        asked."""
        parts.train_model = parts.model
        if D.world() > 1 and any(p.requires_grad for p in parts.model.parameters()):
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            parts.train_model = DDP(parts.model, device_ids=ids)
        if self.cfg.train.compile:
            parts.train_model = torch.compile(parts.train_model)

    def _finish(self, plan: Plan, learner: Learner, trainable: int, total: int) -> dict[str, Any]:
        st, task = learner.state, plan.data.task
        status = self.control.status or "completed"
        reason = self.control.reason
        res = st.results.get("test")
        test = {k: res[k] for k in task.headline + task.summary} if res else None
        final = self.status(
            status, reason=reason, finished=time.time(), elapsed_s=round(time.time() - st.started, 2), test=test,
            vs_baseline=res.get("vs_baseline") if res else None, best_epoch=st.best_epoch + 1, epoch=st.epoch + 1,
            run_s=round(time.time() - self.started, 1),
            step=st.step, total_steps=st.total_steps, trainable_params=trainable, total_params=total,
            peak_mem_mb=round(peak_memory_mb(plan.device), 1),
            **{k: v for k, v in (("blend", st.results.get("blend")), ("predictor", (res or {}).get("predictor")),
                                 ("thresholds", st.results.get("thresholds")),
                                 ("replanned", st.results.get("replanned")),
                                 ("parts", (res or {}).get("parts"))) if v is not None})
        if plan.cfg.train.teacher and test and self.main:
            final = self._distillation_report(plan, test, status) or final
        if self.parent is not None and test and self.main:
            changes = what_changed(self.parent, self.folder)
            atomic_write_json(self.folder.parent_changes_file, changes)
            final = self.status(status, vs_parent=summary(changes))
        self.emit("run_end", status=status, reason=reason, test=test, elapsed_s=time.time() - st.started)
        return final

    def _distillation_report(self, plan: Plan, test: dict[str, Any], status: str) -> dict[str, Any] | None:
        """status: the run's final one (the progress line below writes 'running' with its message)."""
        self.progress(1.0, "Comparing the student with its teacher")
        rec = self.store.get(plan.cfg.train.teacher)
        try:
            report = compare(rec, rec.status, self.folder, test, plan.data)
        except StudioError as e:  # the teacher was deleted meanwhile: the run stands without the comparison
            self.notes.append(f"No teacher comparison: {e}")
            return None
        atomic_write_json(self.folder.distillation_file, report)
        return self.status(status, distillation=report)
