"""Guards that stop or rescue a run: divergence (NaN, Inf, or a loss that explodes), early stopping, GPU
out-of-memory retry, and the strategy's own unfreezing at epoch boundaries."""
from __future__ import annotations

import math
import time

import torch

from ...config import RunConfig
from ...errors import StudioError
from .. import distributed as D
from ..events import Callback

ADVICE = "Lower the learning rate (try 10x smaller) and start again."


class DivergenceGuard(Callback):
    """Stops a run whose loss is not finite, or stays far above its early level for several steps in a row
    (as learning-rate range tests decide a run has blown up): a loss that went 0.78 → 12,408 → 41,269 is not
    training, whatever the status would otherwise say. The early level is the smallest of the first few step
    losses (the first is measured before any update, so one wild step cannot raise it)."""
    order = -10

    def __init__(self, factor: float = 4.0, margin: float = 2.0, patience: int = 3, early_steps: int = 3):
        self.factor, self.margin, self.patience, self.early_steps = factor, margin, patience, early_steps

    def on_step_end(self, ctx, loss):
        if loss is None:  # not read at this step
            return
        if not math.isfinite(loss):
            ctx.control.stop("diverged", f"Training diverged at step {ctx.state.step} (loss is {loss}). {ADVICE}")
            return
        mine = ctx.state.extra.setdefault("divergence", {"early": [], "above": 0})  # kept by checkpoints
        if len(mine["early"]) < self.early_steps:
            mine["early"].append(loss)
        level = min(mine["early"])
        limit = max(level * self.factor, level + self.margin)
        mine["above"] = mine["above"] + 1 if loss > limit else 0
        if mine["above"] >= self.patience:
            ctx.control.stop("diverged", f"Training diverged at step {ctx.state.step}: the loss rose to {loss:,.4g}, "
                                         f"over {self.factor:g}x its early level of {level:.4g}, for {mine['above']} "
                                         f"steps in a row. {ADVICE}")


class EarlyStopping(Callback):
    order = 5  # after validation has scored the epoch

    def __init__(self, patience: int):
        self.patience = patience

    def on_validate(self, ctx):
        st = ctx.state
        last = st.epoch + 1 >= ctx.cfg.epochs  # the run ends anyway: no early stop to report
        if self.patience and not last and st.epoch - st.best_epoch >= self.patience:
            ctx.control.stop("completed", f"Early stopping: no validation improvement for {self.patience} epoch(s).")


class OomRecovery(Callback):
    """Out of GPU memory: halve the batch and double the accumulation (same effective batch), retry the epoch."""

    def on_error(self, ctx, exc):
        if not isinstance(exc, torch.cuda.OutOfMemoryError):
            return False
        st = ctx.state
        if st.batch_size <= 1:
            raise StudioError("Out of GPU memory even at batch size 1. Try the frozen or LoRA strategy, a smaller "
                              "backbone, a shorter max_length/image_size, or turn on gradient checkpointing.") from None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        st.batch_size //= 2
        st.grad_accum *= 2
        ctx.emit("warning", message=f"Out of GPU memory: retrying the epoch with batch size {st.batch_size} x "
                                    f"{st.grad_accum} accumulation steps (same effective batch).")
        return True


class Unfreeze(Callback):
    """The strategy's own epoch-boundary changes (gradual unfreezing), re-wrapping DDP when weights join."""
    order = -150  # before the schedule sets the rates of any new groups

    def __init__(self, strategy, modality: str):
        self.strategy, self.modality = strategy, modality

    def on_epoch_start(self, ctx):
        p = ctx.parts
        if self.strategy.on_epoch_start(p.model, ctx.cfg, ctx.state.epoch, p.optimizer, self.modality):
            p.rewrap()
            trainable = sum(x.numel() for x in p.model.parameters() if x.requires_grad)
            ctx.emit("warning", message=f"Unfroze another layer group ({trainable:,} trainable weights).")


def describe_refit(refit: dict | None, budget_minutes: float | None) -> str | None:
    """One sentence on a budget re-fit of the epochs (status 'replanned'), for the report and the model card."""
    if not refit:
        return None
    budget = f"the {budget_minutes:g} min budget" if budget_minutes else "the time budget"
    more = "up from" if refit["epochs"] > refit["planned"] else "instead of"
    return (f"After epoch {refit['after_epoch']}, at {refit['epoch_s']:.0f} s an epoch, the epochs were re-fitted to "
            f"{budget}: {refit['epochs']}, {more} the {refit['planned']} planned.")


class Budget(Callback):
    """Ends the run within its time budget (counted from the run's start, data and plan included).

    After each epoch the epochs are re-fitted to the time left at the speed just measured, so the schedule
    anneals inside the budget instead of being cut mid-way: fewer when the run is slower than planned, more —
    up to `room`, the epochs the data calls for, which 'auto' cut to fit its estimate — when it is faster. What
    comes after the last step (validating what it has, the test, the blend, saving) is kept back: one validation
    pass as measured, the test scaled from it by size, and FINISH_S. A run that still reaches the budget mid-epoch
    stops there, its best checkpoint the model."""
    order = -5
    FINISH_S = 15.0  # the blend's fit, explanations of the worst test examples, saving (5-10 s on the benchmark)

    def __init__(self, seconds: float, started: float, n_val: int = 0, n_test: int = 0, room: int | None = None):
        self.seconds, self.started, self.room = seconds, started, room
        self.test_share = n_test / n_val if n_val else 0.0
        self.reserve, self.last_step, self.epoch_started = self.FINISH_S, None, None

    def on_epoch_start(self, ctx):
        self.epoch_started = time.time()

    def on_step_end(self, ctx, loss):
        self.last_step = now = time.time()
        if now - self.started + self.reserve >= self.seconds:
            ctx.control.stop("completed", f"Stopped at the time budget ({self.seconds / 60:.0f} min) after step "
                                          f"{ctx.state.step}, keeping {self.reserve:.0f} s to validate, test and "
                                          "save; the best checkpoint so far is the model.")

    def on_epoch_end(self, ctx):
        if self.last_step is None:  # no training steps (a solved head): nothing to time or re-fit
            return
        now = time.time()
        self.reserve = (now - self.last_step) * (1 + self.test_share) + self.FINISH_S
        done, planned = ctx.state.epoch + 1, ctx.cfg.epochs
        if self.epoch_started is None or ctx.cfg.max_steps or done >= planned or ctx.control.should_stop:
            return  # a schedule that has run out is not re-opened
        took = now - self.epoch_started
        fit = done + int(max(0.0, self.seconds - (now - self.started) - self.reserve) // max(took, 1e-6))
        target = D.broadcast(max(done, min(fit, max(planned, self.room or planned))))
        if target == planned:
            return
        ctx.state.total_steps = ctx.state.total_steps // planned * target
        ctx.cfg.epochs = target
        why = "" if target < planned else f" (faster than estimated; the data calls for {self.room})"
        ctx.state.results["replanned"] = {"after_epoch": done, "planned": planned, "epochs": target,
                                          "epoch_s": round(took, 1)}
        ctx.emit("warning", message=f"At {took:.0f} s an epoch{why}, {target} epoch{'s' if target > 1 else ''} fit the "
                                    f"{self.seconds / 60:.0f} min budget, not the {planned} planned: the schedule "
                                    f"now ends after epoch {target}.")
        if ctx.main and ctx.folder is not None and ctx.folder.resolved_file.is_file():
            ran = RunConfig.load(ctx.folder.resolved_file)  # the record says what runs; a resume goes on with it
            ran.train.epochs = target
            ran.save(ctx.folder.resolved_file)
