"""The training loop, top to bottom: fit → epoch → batch → step. Everything else — schedule, evaluation,
checkpoints, MixUp, out-of-memory retry, the divergence guard, the blend — is a callback (core.train.callbacks) that
hooks these steps, as in fastai's Learner. Nothing in here knows about a UI, a task or a modality."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..modalities import Inputs
from ..strategies import freeze_frozen_norms
from . import distributed as D
from .events import Callback, Context, Control, Event, Parts, TrainState
from .loader import batches as loader_batches
from .loader import plans


@dataclass
class Batch:
    idx: torch.Tensor
    inputs: dict[str, torch.Tensor]
    y: torch.Tensor
    gen: torch.Generator | None = None
    perm: torch.Tensor | None = None  # MixUp's partner rows, drawn with the batch
    mix: tuple[torch.Tensor, float] | None = None  # (partner rows within the batch, the original's weight)


class Window:
    """Losses and timings between two reads: summed on the device, read once."""

    def __init__(self) -> None:
        self.loss_sum: torch.Tensor | None = None
        self.micro = self.steps = self.examples = 0
        self.wait = 0.0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.loss_sum = loss.detach() if self.loss_sum is None else self.loss_sum + loss.detach()
        self.micro += 1
        self.examples += n

    def read(self, device: torch.device) -> dict:
        wall = max(time.perf_counter() - self.start, 1e-9)
        out = {"loss": float(self.loss_sum) / max(self.micro, 1), "steps": self.steps,
               "examples_per_s": round(self.examples / wall, 2), "data_wait_share": round(min(1.0, self.wait / wall), 4)}
        self.__init__()
        return out


def chunks(indices: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for s in range(0, len(indices), size):
        yield indices[s:s + size]


def optimizer(groups: list[dict[str, Any]], device: torch.device, lr: float | None = None) -> torch.optim.Optimizer:
    """AdamW over the strategy's groups; the fused kernel where there is one (CPU and CUDA): on a CPU the default
    per-tensor update costs a MobileNetV2 step about 4%."""
    return torch.optim.AdamW(groups, lr=groups[0]["lr"] if lr is None else lr, fused=device.type in ("cpu", "cuda"))


def amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Learner:
    def __init__(self, parts: Parts, inputs: Inputs, y: torch.Tensor, train_idx: torch.Tensor, cfg, loss_fn: Callable,
                 outputs_fn: Callable, out_dim: int, device: torch.device, callbacks: list[Callback],
                 control: Control | None = None, state: TrainState | None = None, folder=None,
                 main: bool = True):
        self.parts, self.inputs, self.y, self.train_idx, self.t = parts, inputs, y, train_idx, cfg
        self.loss_fn, self.outputs_fn, self.out_dim, self.device = loss_fn, outputs_fn, out_dim, device
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        self.control = control or Control()
        self.state = state or TrainState(batch_size=cfg.batch_size, grad_accum=cfg.grad_accum)
        self.amp = amp_dtype(device) if cfg.amp else None
        self.log_every = cfg.log_every or (10 if device.type == "cuda" else 1)
        self.channels_last = False  # set for CNNs on a GPU (core.train.trainer)
        self.fixed_norms = False  # BatchNorm keeps its running statistics while training (Strategy.fixes_norms)
        self._window = Window()
        self.ctx = Context(cfg, self.state, self.control, folder, parts, self.emit, self.predict, main)

    # ------------------------------------------------------------------ plumbing
    def emit(self, kind: str, **data: Any) -> None:
        ev = Event(kind, epoch=self.state.epoch, step=self.state.step, data=data)
        for cb in self.callbacks:
            cb.on_event(self.ctx, ev)

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.ctx, *args)

    def out_of_steps(self) -> bool:
        return bool(self.t.max_steps and self.state.step >= self.t.max_steps)

    def cut_short(self) -> bool:
        """Stopped by a person (or Ctrl-C) inside an epoch: a resume goes on from this very step. A stop that ends
        the run for good (early stopping, the time budget, max_steps) still validates what it has."""
        return self.control.status == "stopped" and not self.state.epoch_complete and not self.out_of_steps()

    # ------------------------------------------------------------------ the loop
    def fit(self, start: dict[str, Any] | None = None, notes: list[str] = ()) -> None:
        """Train from state.epoch (a resumed run's callbacks move it) to the end, a stop or a divergence."""
        self._call("on_fit_start")
        self.state.started, self.state.steps_at_start = time.time(), self.state.step
        if start is not None:
            self.emit("run_start", **start, total_steps=self.state.total_steps, epochs=self.t.epochs,
                      resumed_from=self.state.results.get("resumed_from"))
        for note in notes:
            self.emit("warning", message=note)
        epoch = self.state.epoch
        while epoch < self.t.epochs:  # read each time: the time budget may re-fit the epochs (callbacks.Budget)
            self.state.epoch = epoch
            if not self.epoch():
                break
            epoch += 1
        self._call("on_fit_end")

    def epoch(self) -> bool:
        """One pass over the training rows, then validation; False when the run should end here."""
        self._call("on_epoch_start")
        self.emit("epoch_start")
        gen = torch.Generator().manual_seed(self.t.seed * 1000 + self.state.epoch)
        while True:
            try:
                self.state.train_loss = self.train_batches(gen)
                break
            except torch.cuda.OutOfMemoryError as e:
                if not any(cb.on_error(self.ctx, e) for cb in self.callbacks):
                    raise
        if self.control.status == "diverged":
            return False
        if self.cut_short():  # the rest of this epoch is for a resume: it is not validated half done
            self._call("on_epoch_cut")
            return False
        self._call("on_validate")
        self.emit("epoch_end", train_loss=self.state.train_loss, lr=self.parts.optimizer.param_groups[0]["lr"])
        self._call("on_epoch_end")
        return not (self.control.should_stop or self.out_of_steps())

    def train_batches(self, gen: torch.Generator) -> float:
        st, opt = self.state, self.parts.optimizer
        self.parts.model.train()
        freeze_frozen_norms(self.parts.model, every=self.fixed_norms)
        opt.zero_grad(set_to_none=True)
        order = D.shard(self.train_idx[torch.randperm(len(self.train_idx), generator=gen)])
        skip, st.resume_micro = st.resume_micro, 0
        if skip:  # resumed inside this epoch: same order, the generator where the checkpoint left it
            gen.set_state(st.resume_gen)
            st.micro = skip
        else:
            st.micro, st.epoch_losses = 0, []
        st.gen = gen
        self._window = Window()
        st.epoch_complete = False
        for batch in self.batches(order, gen, skip):
            if self.control.should_stop and st.micro % st.grad_accum == 0:  # between optimiser steps only
                break
            for cb in self.callbacks:
                batch = cb.on_batch(self.ctx, batch)
            loss = self.forward_backward(batch)
            st.micro += 1
            self._window.add(loss, len(batch.idx))
            if st.micro % st.grad_accum:
                continue
            self.step()
            if self.control.should_stop or self.out_of_steps():
                break
        else:
            st.epoch_complete = not self.control.should_stop
        if self._window.steps:  # the epoch's last steps, read now
            self.report(self._window.read(self.device))
        return float(np.mean(st.epoch_losses)) if st.epoch_losses else float("nan")

    def batches(self, order: torch.Tensor, gen: torch.Generator, skip: int = 0) -> Iterator[Batch]:
        """The epoch's batches; time spent waiting for each is counted as data wait."""
        mix = (self.t.mixup_alpha > 0 or self.t.cutmix_alpha > 0) and self.inputs.mixable
        steps = plans(order, self.state.batch_size, gen, self.inputs, self.t.augment, mix, skip)
        workers = self.t.loader_workers if self.t.loader_workers is not None else \
            self.inputs.loader_workers(self.t.augment)
        made = loader_batches(steps, self.inputs, self.t.hflip is not False, workers, self.device.type == "cuda")
        while True:
            t = time.perf_counter()
            got = next(made, None)
            self._window.wait += time.perf_counter() - t
            if got is None:
                return
            plan, inputs = got
            self.state.gen_after = plan.after
            yield Batch(plan.idx, inputs, self.y[plan.idx], gen, perm=plan.perm)

    def forward_backward(self, batch: Batch) -> torch.Tensor:
        inputs = {k: self._to_device(v) for k, v in batch.inputs.items()}
        y = batch.y.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            logits = self.parts.train_model(**inputs)
            if batch.mix is None:
                loss = self.loss_fn(logits, y)
            else:
                perm, lam = batch.mix
                perm = perm.to(self.device)
                loss = lam * self.loss_fn(logits, y) + (1 - lam) * self.loss_fn(logits, y[perm])
            for cb in self.callbacks:
                loss = cb.on_loss(self.ctx, batch, logits, loss)
        scaler = self.parts.scaler
        (scaler.scale(loss / self.state.grad_accum) if scaler else loss / self.state.grad_accum).backward()
        return loss

    def _to_device(self, v: torch.Tensor) -> torch.Tensor:
        v = v.to(self.device, non_blocking=True)
        return v.contiguous(memory_format=torch.channels_last) if self.channels_last and v.dim() == 4 else v

    def step(self) -> None:
        """One optimiser step. The loss stays on the device and is read only every `log_every` steps: reading
        it each step would make the host wait for the accelerator every time."""
        st, opt, scaler = self.state, self.parts.optimizer, self.parts.scaler
        if scaler:
            scaler.unscale_(opt)
        if self.t.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.t.max_grad_norm)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        self._call("on_optimizer_step")
        opt.zero_grad(set_to_none=True)
        st.step += 1
        self._window.steps += 1
        if st.step % self.log_every == 0 or self.out_of_steps():
            self.report(self._window.read(self.device))
        else:
            self._call("on_step_end", None)

    def report(self, window: dict) -> None:
        """A read of the loss: agreed across ranks, checked by the guards, sent as a step event."""
        st, opt = self.state, self.parts.optimizer
        value, stop = D.sync_step(window["loss"], self.control.should_stop, self.device)
        if stop and not self.control.should_stop:  # another rank's Stop (rank 0 owns the UI)
            self.control.stop()
        st.epoch_losses.extend([value] * window["steps"])
        self._call("on_step_end", value)
        elapsed = time.time() - st.started
        eta = elapsed / max(st.step - st.steps_at_start, 1) * (st.total_steps - st.step)
        self.emit("step", loss=value, lr=opt.param_groups[0]["lr"], total_steps=st.total_steps,
                  eta_s=round(eta, 1), elapsed_s=round(elapsed, 2), examples_per_s=window["examples_per_s"],
                  data_wait_share=window["data_wait_share"])

    @torch.no_grad()
    def predict(self, idx: torch.Tensor) -> np.ndarray:
        """Outputs for rows idx; under torchrun each rank predicts a share and all gather."""
        full, idx = idx, idx[D.rank()::D.world()]
        model = self.parts.model
        model.eval()
        out = []
        for b in chunks(idx, max(self.state.batch_size, 64)):
            inputs = {k: v.to(self.device, non_blocking=True) for k, v in self.inputs.batch(b).items()}
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                logits = model(**inputs)
            out.append(self.outputs_fn(logits).float().cpu())
        arr = torch.cat(out).numpy() if out else np.zeros((0, self.out_dim))
        return D.gather_rows(full, arr)


def schedule_fn(kind: str, total: int, warmup_ratio: float, warm: int | None = None) -> Callable[[int], float]:
    """The factor on each group's rate at a step. warm: the warm-up steps, when kept from an earlier horizon."""
    warm = int(total * warmup_ratio) if warm is None else warm

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        prog = (step - warm) / max(1, total - warm)
        prog = min(max(prog, 0.0), 1.0)
        return 0.5 * (1 + math.cos(math.pi * prog)) if kind == "cosine" else 1.0 - prog
    return f
