"""Checkpoints: saved atomically (temp folder, fsync, rename) at every epoch end on the main process; loaded
back to resume a run; the best epoch's weights restored on every process before the test evaluation."""
from __future__ import annotations

import errno
import os
import shutil
import time

import torch
from safetensors.torch import load_model, save_model

from ...fsutil import DiskFullError, atomic_replace_dir, temp_dir
from ...runs.folder import STATE, WEIGHTS, RunFolder
from .. import distributed as D
from ..events import Callback


def save_checkpoint(folder: RunFolder, tag: str, parts, state, next_epoch: int, with_trainer: bool,
                    in_epoch: bool = False) -> None:
    """in_epoch: saved between two steps of an unfinished epoch, with where in it the run was (micro-batches
    done, the epoch's generator state, its losses so far), so a resume continues from that exact step."""
    final = folder.checkpoint(tag)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = RunFolder(temp_dir(final.parent, f".{tag}."))  # laid out as the final one
    try:
        save_model(parts.model, str(tmp.dir / WEIGHTS))
        if with_trainer:
            within = {"in_epoch": True, "micro": state.micro, "gen": state.gen_after,
                      "epoch_losses": list(state.epoch_losses)} if in_epoch else {"in_epoch": False}
            torch.save({"optimizer": parts.optimizer.state_dict(),
                        "scaler": parts.scaler.state_dict() if parts.scaler else None, "next_epoch": next_epoch,
                        "step": state.step, "best_metric": state.best_metric, "best_epoch": state.best_epoch,
                        "batch_size": state.batch_size, "grad_accum": state.grad_accum,
                        "torch_rng": torch.get_rng_state(), "extra": state.extra, **within}, tmp.dir / STATE)
        for f in tmp.dir.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        atomic_replace_dir(tmp.dir, final)
    except OSError as e:
        shutil.rmtree(tmp.dir, ignore_errors=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(e.errno, "disk full") from e
        raise


class Checkpointer(Callback):
    """checkpoints/last (weights, optimiser, RNG) every epoch and, inside an epoch, every `every_s` seconds;
    checkpoints/best when validation improved."""
    order = 10

    def __init__(self, folder: RunFolder, every_s: float = 0.0):
        self.folder, self.every = folder, every_s
        self.last = time.time()

    def on_step_end(self, ctx, loss):
        st = ctx.state
        # only where the loss was just read: the epoch's losses so far are all on the host then
        if loss is None or not self.every or time.time() - self.last < self.every or st.micro % st.grad_accum:
            return
        save_checkpoint(self.folder, "last", ctx.parts, st, st.epoch, with_trainer=True, in_epoch=True)
        self.last = time.time()
        ctx.emit("checkpoint", tag="last", next_epoch=st.epoch, in_epoch=True, micro=st.micro)

    def on_epoch_cut(self, ctx):
        st = ctx.state
        save_checkpoint(self.folder, "last", ctx.parts, st, st.epoch, with_trainer=True, in_epoch=True)
        ctx.emit("checkpoint", tag="last", next_epoch=st.epoch, in_epoch=True, micro=st.micro)

    def on_epoch_end(self, ctx):
        st = ctx.state
        save_checkpoint(self.folder, "last", ctx.parts, st, st.epoch + 1, with_trainer=True)
        self.last = time.time()
        ctx.emit("checkpoint", tag="last", next_epoch=st.epoch + 1)
        if st.improved:
            save_checkpoint(self.folder, "best", ctx.parts, st, st.epoch + 1, with_trainer=False)
            ctx.emit("checkpoint", tag="best", next_epoch=st.epoch + 1)


class Resume(Callback):
    """Continue from checkpoints/last: weights, optimiser, scaler, step, best so far and the RNG."""
    order = -300  # before the schedule reads the step

    def __init__(self, folder: RunFolder, strategy, modality: str):
        self.folder, self.strategy, self.modality = folder, strategy, modality

    def on_fit_start(self, ctx):
        state_file = self.folder.checkpoint_state("last")
        if not state_file.is_file():
            ctx.state.results["resumed_from"] = 0
            return  # nothing completed yet: start over
        s = torch.load(state_file, weights_only=True, map_location="cpu")
        p, st = ctx.parts, ctx.state
        within = bool(s.get("in_epoch"))
        for e in range(1, s["next_epoch"] + within):  # the same groups as when it was saved
            self.strategy.on_epoch_start(p.model, ctx.cfg, e, p.optimizer, self.modality)
        load_model(p.model, str(self.folder.checkpoint_weights("last")), strict=True,
                   device=str(next(p.model.parameters()).device))
        p.optimizer.load_state_dict(s["optimizer"])
        if p.scaler and s.get("scaler"):
            p.scaler.load_state_dict(s["scaler"])
        st.step, st.best_metric, st.best_epoch = s["step"], s["best_metric"], s["best_epoch"]
        st.batch_size, st.grad_accum = s["batch_size"], s["grad_accum"]
        st.epoch = st.results["resumed_from"] = int(s["next_epoch"])
        st.extra = s.get("extra") or {}
        if within:
            st.resume_micro, st.resume_gen, st.epoch_losses = s["micro"], s["gen"], list(s["epoch_losses"])
            st.results["resumed_at_step"] = st.step
        torch.set_rng_state(s["torch_rng"])
        p.rewrap()


class BestWeights(Callback):
    """The best validation epoch's weights, on every process, before blending and testing."""
    order = -50

    def __init__(self, folder: RunFolder):
        self.best = folder.checkpoint_weights("best")

    def on_fit_end(self, ctx):
        D.barrier()  # rank 0 may still be writing it
        if self.best.is_file():
            load_model(ctx.parts.model, self.best, strict=True)
            ctx.state.results["has_best"] = True
