"""The training loop: plain, top to bottom, emitting events. Nothing in here knows about a UI."""
from __future__ import annotations

import math
import os
import random
import resource
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model

from . import distributed as D
from .backbones import Classifier, get_backbone
from .batches import Inputs, build_inputs, iterate
from .config import RESOLVED, ConfigError, RunConfig
from .datasets import Dataset, DatasetStore, open_source
from .errors import DataError, StudioError
from .evaluate import evaluate
from .events import Callback, Control, EarlyStopping, Event, JsonlLog, NanGuard
from .fsutil import DiskFullError, atomic_replace_dir, atomic_write_json
from .store import RunRecord, RunStore
from .strategies import count_params, freeze_frozen_norms, get_strategy

BASELINE_PRED = "baseline_test_pred.npy"  # in eval/: the baseline's test predictions


@dataclass
class TrainerState:
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    started: float = field(default_factory=time.time)
    batch_size: int = 0
    grad_accum: int = 1


@dataclass
class RunData:
    """Everything the loop needs about the data, built once per run."""
    ds: Dataset
    classes: list[str]
    y: torch.Tensor  # class index per row
    split: np.ndarray  # 'train'/'val'/'test' per row
    inputs: Inputs
    display: list[str]  # what a person sees for each row (text or image path)
    source_rows: list[Any]
    files: list[str]  # texts, or absolute image paths

    def idx(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.flatnonzero(self.split == name))


def pick_device(pref: str) -> torch.device:
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(pref)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_run_data(cfg: RunConfig, datasets: DatasetStore, spec, progress: Callable[[float, str], None],
                  cache_dir: Path | None = None) -> RunData:
    from .split import dataset_split

    d = cfg.data
    ds = open_source(datasets, d.source, d.text_col, d.label_col, progress)
    if spec.modality != ds.modality:
        raise ConfigError(f"Backbone {spec.name} is for {spec.modality}s but the dataset holds {ds.modality}s. "
                          f"Pick a {ds.modality} backbone.")
    test_ds = None
    if d.test_source:
        test_ds = open_source(datasets, d.test_source, d.text_col, d.label_col, progress)
        if test_ds.modality != ds.modality:
            raise DataError(f"The test data holds {test_ds.modality}s but the training data {ds.modality}s.")
    split = dataset_split(ds, val=d.val_fraction, test=0.0 if test_ds else d.test_fraction, seed=d.split_seed,
                          rare_policy=d.rare_policy)
    classes = sorted(ds.items["label"].unique().tolist())
    labels = ds.items["label"].tolist()
    inputs = ds.inputs()
    display = [ds.display(i) for i in range(len(ds.items))]
    rows = list(range(len(ds.items)))
    if test_ds is not None:
        unknown = sorted(set(test_ds.items["label"]) - set(classes))
        if unknown:
            raise DataError(f"The test data has label(s) never seen in training: {', '.join(unknown[:10])}.")
        labels += test_ds.items["label"].tolist()
        inputs += test_ds.inputs()
        display += [test_ds.display(i) for i in range(len(test_ds.items))]
        rows += [f"test:{i}" for i in range(len(test_ds.items))]
        split = np.concatenate([split, np.full(len(test_ds.items), "test", dtype=object)])
    pos = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([pos[label] for label in labels], dtype=torch.long)
    cache = None
    if spec.modality == "image" and test_ds is None:
        cache = ds.dir / "cache" / f"pixels-{cfg.train.image_size or spec.image_size}.pt"
    built = build_inputs(spec, inputs, cfg.train.image_size, cfg.train.max_length, cache, progress)
    return RunData(ds, classes, y, split, built, display, rows, inputs)


class Trainer:
    def __init__(self, cfg: RunConfig, run: RunRecord, store: RunStore, datasets: DatasetStore,
                 control: Control | None = None, callbacks: list[Callback] | None = None):
        self.cfg, self.t = cfg, cfg.train
        self.run_rec, self.store, self.datasets = run, store, datasets
        self.control = control or Control()
        self.state = TrainerState(batch_size=self.t.batch_size, grad_accum=self.t.grad_accum)
        cbs = [NanGuard(), EarlyStopping(self.t.early_stopping_patience), JsonlLog(run.dir / "events.jsonl"),
               StatusHeartbeat(store)] + list(callbacks or [])
        self.notes: list[str] = []  # warnings for the event stream, emitted right after run_start
        if self.t.trackers and D.is_main():
            from .trackers import build

            extra, self.notes = build(self.t.trackers, run.dir, cfg.name or run.id, vars(self.t))
            cbs += extra
        self.callbacks = sorted(cbs, key=lambda c: c.order)
        self.model: Classifier | None = None
        self.train_model: torch.nn.Module | None = None  # the model, or its DDP wrapper under torchrun
        self.features: torch.Tensor | None = None
        self.blend: tuple[Any, float] | None = None  # (linear partner, network weight) once fitted
        self._baseline_pred: np.ndarray | None = None  # its test predictions, for the paired comparison
        self._pretrained: np.ndarray | None = None  # images: pretrained-backbone features, for the partner
        self.main = D.is_main()

    # ------------------------------------------------------------------ events
    def emit(self, kind: str, **data: Any) -> None:
        ev = Event(kind, epoch=self.state.epoch, step=self.state.step, data=data)
        for cb in self.callbacks:
            if self.main or cb.order < 0:  # other ranks only run the control callbacks, never writers
                cb.on_event(ev, self)

    def status(self, status: str, **fields: Any) -> dict[str, Any]:
        if not self.main:
            return {"status": status, **fields}
        return self.store.set_status(self.run_rec, status, **fields)

    def progress(self, frac: float, msg: str) -> None:
        self.emit("progress", fraction=float(frac), message=msg)

    # ------------------------------------------------------------------ entry
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train to the end, a stop, or a failure. Never raises for a run-level problem: the status says it."""
        rec = self.run_rec
        self.status("running", pid=os.getpid(), heartbeat=time.time(), started=time.time(), world_size=D.world())
        try:
            return self._run(resume)
        except StudioError as e:
            return self._fail(str(e))
        except DiskFullError as e:
            return self._fail(f"Disk full while saving ({e.strerror}); the previous checkpoint is intact. "
                              "Free some space, then resume.")
        except Exception as e:  # the run fails, the server keeps serving
            if self.main:
                (rec.dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            return self._fail(f"Training failed: {type(e).__name__}: {e}. Details are in error.txt in the run folder.")

    def _median_image_side(self) -> int | None:
        ds = self.datasets.find(self.run_rec.status.get("dataset"))
        if ds is None or "width" not in ds.items.columns:
            return None
        return int(ds.items[["width", "height"]].min(axis=1).median())

    def _fail(self, reason: str) -> dict[str, Any]:
        self.emit("run_end", status="failed", reason=reason)
        return self.status("failed", reason=reason, finished=time.time())

    def _run(self, resume: bool) -> dict[str, Any]:
        t, st = self.t, self.state
        spec = get_backbone(t.backbone)
        self.device = dev = pick_device(D.device_for_rank(t.device))
        self.progress(0.0, "Loading data")
        data = self.data = load_run_data(self.cfg, self.datasets, spec, self.progress)
        auto_reason = None
        if t.strategy == "auto":
            from .strategies import resolve_auto

            before = t
            tr = data.split == "train"
            lengths = [len(x) for x, keep in zip(data.files, tr) if keep] if spec.modality == "text" else None
            t, auto_reason = resolve_auto(t, int(tr.sum()), spec.modality,
                                          torch.bincount(data.y[torch.from_numpy(tr)]).tolist(), lengths,
                                          self._median_image_side(), spec.params_m)
            self.t = self.cfg.train = t  # this run's copy; config.json on disk keeps 'auto' for replays
            self.callbacks = [c if not isinstance(c, EarlyStopping) else EarlyStopping(t.early_stopping_patience)
                              for c in self.callbacks]
            self.status("running", auto=auto_reason, resolved_strategy=t.strategy)
            if (t.image_size, t.max_length) != (before.image_size, before.max_length):  # inputs depend on them
                data = self.data = load_run_data(self.cfg, self.datasets, spec, self.progress)
        strategy = get_strategy(t.strategy)
        if len(data.classes) < 2:
            raise DataError(f"Only one class ({data.classes[0]}): training needs at least two.")
        train_idx, val_idx = data.idx("train"), data.idx("val")
        if self.main:
            atomic_write_json(self.run_rec.dir / "labels.json", {"classes": data.classes, "modality": spec.modality,
                                                                  "backbone": spec.name})
            self.cfg.save(self.run_rec.dir / RESOLVED)
        seed_everything(t.seed)
        self.progress(0.1, f"Building {spec.name}")
        model = self.model = spec.build(len(data.classes), pooling=t.pooling)
        groups = strategy.prepare(model, t, spec.modality)
        if t.gradient_checkpointing and hasattr(getattr(model.encoder, "model", None), "gradient_checkpointing_enable"):
            model.encoder.model.gradient_checkpointing_enable()
        model.to(dev)
        self._wrap()
        trainable, total = count_params(model)
        opt = torch.optim.AdamW(groups, lr=groups[0]["lr"])
        per_rank = len(train_idx) // D.world()
        steps_per_epoch = math.ceil(math.ceil(per_rank / st.batch_size) / st.grad_accum)
        st.total_steps = steps_per_epoch * t.epochs
        if t.max_steps:
            st.total_steps = min(st.total_steps, t.max_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(t.schedule, st.total_steps, t.warmup_ratio))
        amp_dtype = _amp_dtype(dev) if t.amp else None
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        loss_fn = self._loss_fn(data, train_idx)

        baseline = self.run_rec.status.get("baseline") if resume else None
        test_idx = data.idx("test")
        if t.baseline and baseline is None and len(test_idx):
            baseline = self._baseline(spec.modality, train_idx, test_idx, keep_features=strategy.frozen_backbone)
        start_epoch = 0
        if t.blend and spec.modality == "image" and self._pretrained is None:  # before any weight moves
            self._pretrained = self._cache_features(data).cpu().numpy()
        if spec.modality == "image" and t.augment and t.hflip is None and not strategy.frozen_backbone:
            self._decide_flip(auto_reason)  # the model is still the pretrained one here
        if resume:
            start_epoch = self._load_checkpoint(opt, sched, scaler, strategy, spec.modality)
        if strategy.frozen_backbone and self.features is None:
            self.features = self._cache_features(data)

        self.status("running", trainable_params=trainable, total_params=total, baseline=baseline,
                              classes=data.classes, total_steps=st.total_steps, device=str(dev),
                              modality=spec.modality)
        self.emit("run_start", trainable_params=trainable, total_params=total, device=str(dev),
                  train=len(train_idx), val=len(val_idx), test=int(len(data.idx("test"))), classes=data.classes,
                  total_steps=st.total_steps, epochs=t.epochs, resumed_from=start_epoch if resume else None,
                  baseline=baseline, auto=auto_reason, strategy=t.strategy)
        for note in self.notes:
            self.emit("warning", message=note)
        t0 = time.time()
        steps_at_start = st.step
        for epoch in range(start_epoch, t.epochs):
            st.epoch = epoch
            if strategy.on_epoch_start(model, t, epoch, opt, spec.modality):
                self._wrap()  # DDP needs to know the new set of trainable weights
                trainable, _ = count_params(model)
                self.emit("warning", message=f"Unfroze another layer group ({trainable:,} trainable weights).")
            self.emit("epoch_start")
            train_loss = self._train_epoch(epoch, train_idx, opt, sched, scaler, amp_dtype, loss_fn, t0,
                                           steps_at_start)
            if self.control.should_stop and self.control.status == "diverged":
                break
            val = self._eval_split("val", val_idx, amp_dtype)
            metric = val["loss"] * -1 if t.monitor == "loss" else val[t.monitor]
            improved = metric > st.best_metric
            if improved:
                st.best_metric, st.best_epoch = metric, epoch
            self.emit("eval", split="val", epoch_metric=metric, improved=improved,
                      **{k: val[k] for k in ("accuracy", "macro_f1", "loss", "confusion")})
            self.emit("epoch_end", train_loss=train_loss, lr=sched.get_last_lr()[0])
            self._save_checkpoint("last", opt, sched, scaler, epoch + 1)
            if improved:
                self._save_checkpoint("best", None, None, None, epoch + 1)
            if self.control.should_stop or (t.max_steps and st.step >= t.max_steps):
                break

        status = self.control.status or "completed"
        reason = self.control.reason
        elapsed = time.time() - t0
        best = self.run_rec.dir / "checkpoints" / "best" / "model.safetensors"
        test_metrics = vs_baseline = None
        if best.is_file():
            load_model(model, best, strict=True)
        if t.blend and len(val_idx) and status in ("completed", "stopped"):
            self._fit_blend(spec.modality, train_idx, val_idx, amp_dtype)
        if best.is_file() or status != "diverged":
            test_idx = data.idx("test")
            if len(test_idx):
                res = self._eval_split("test", test_idx, amp_dtype, save_predictions=True)
                test_metrics = {"accuracy": res["accuracy"], "macro_f1": res["macro_f1"]}
                vs_baseline = res["vs_baseline"]
                self.emit("eval", split="test", **{k: res[k] for k in ("accuracy", "macro_f1", "loss", "confusion")})
        final = self.status(
            status, reason=reason, finished=time.time(), elapsed_s=round(elapsed, 2),
            test=test_metrics, vs_baseline=vs_baseline, best_epoch=st.best_epoch + 1, epoch=st.epoch + 1, step=st.step,
            trainable_params=trainable, total_params=total, peak_mem_mb=round(peak_memory_mb(dev), 1))
        self.emit("run_end", status=status, reason=reason, test=test_metrics, elapsed_s=elapsed)
        return final

    # ------------------------------------------------------------------ pieces
    def _loss_fn(self, data: RunData, train_idx: torch.Tensor):
        t = self.t
        weight = None
        if t.class_weighting == "balanced":
            counts = torch.bincount(data.y[train_idx], minlength=len(data.classes)).float().clamp(min=1)
            weight = (counts.sum() / (len(counts) * counts)).to(self.device)

        def fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = logits.float()
            if t.loss == "focal":
                ce = F.cross_entropy(logits, y, weight=weight, reduction="none", label_smoothing=t.label_smoothing)
                pt = torch.exp(-F.cross_entropy(logits, y, reduction="none"))
                return ((1 - pt) ** t.focal_gamma * ce).mean()
            return F.cross_entropy(logits, y, weight=weight, label_smoothing=t.label_smoothing)
        return fn

    def _batch(self, idx: torch.Tensor, train: bool, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.features is not None:
            return {"features": self.features[idx].to(self.device)}
        b = self.data.inputs.batch(idx, augment=train and self.t.augment, gen=gen, flip=self.t.hflip is not False)
        return {k: v.to(self.device, non_blocking=True) for k, v in b.items()}

    def _train_epoch(self, epoch, train_idx, opt, sched, scaler, amp_dtype, loss_fn, t0, steps_at_start) -> float:
        st, t, model = self.state, self.t, self.model
        model.train()
        freeze_frozen_norms(model)
        gen = torch.Generator().manual_seed(t.seed * 1000 + epoch)
        losses: list[float] = []
        while True:
            try:
                opt.zero_grad(set_to_none=True)
                micro = 0
                order = D.shard(train_idx[torch.randperm(len(train_idx), generator=gen)])
                for idx in iterate(order, st.batch_size, shuffle=False):
                    if self.control.should_stop:
                        break
                    batch = self._batch(idx, train=True, gen=gen)
                    y = self.data.y[idx].to(self.device)
                    with torch.autocast(self.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        loss = self._forward_loss(batch, y, loss_fn, gen)
                    (scaler.scale(loss / st.grad_accum) if scaler else loss / st.grad_accum).backward()
                    micro += 1
                    if micro % st.grad_accum:
                        continue
                    self._optimizer_step(opt, sched, scaler)
                    lv, stop = D.sync_step(float(loss.detach()), self.control.should_stop, self.device)
                    if stop and not self.control.should_stop:  # another rank's Stop (rank 0 owns the UI)
                        self.control.stop()
                    losses.append(lv)
                    done = st.step - steps_at_start
                    eta = (time.time() - t0) / max(done, 1) * (st.total_steps - st.step)
                    self.emit("step", loss=lv, lr=sched.get_last_lr()[0], total_steps=st.total_steps,
                              eta_s=round(eta, 1), elapsed_s=round(time.time() - t0, 2))
                    if self.control.should_stop or (t.max_steps and st.step >= t.max_steps):
                        break
                return float(np.mean(losses)) if losses else float("nan")
            except torch.cuda.OutOfMemoryError:
                if st.batch_size <= 1:
                    raise StudioError("Out of GPU memory even at batch size 1. Try the frozen or LoRA strategy, a "
                                      "smaller backbone, a shorter max_length/image_size, or turn on gradient "
                                      "checkpointing.") from None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                st.batch_size //= 2
                st.grad_accum *= 2
                self.emit("warning", message=f"Out of GPU memory: retrying the epoch with batch size {st.batch_size} "
                                             f"x {st.grad_accum} accumulation steps (same effective batch).")

    def _forward_loss(self, batch, y, loss_fn, gen) -> torch.Tensor:
        t = self.t
        if t.mixup_alpha > 0 and "pixel_values" in batch:
            lam = float(torch.distributions.Beta(t.mixup_alpha, t.mixup_alpha).sample())
            perm = torch.randperm(len(y), generator=gen).to(y.device)
            batch = {"pixel_values": lam * batch["pixel_values"] + (1 - lam) * batch["pixel_values"][perm]}
            logits = self.train_model(**batch)
            return lam * loss_fn(logits, y) + (1 - lam) * loss_fn(logits, y[perm])
        return loss_fn(self.train_model(**batch), y)

    def _optimizer_step(self, opt, sched, scaler) -> None:
        t = self.t
        params = [p for g in opt.param_groups for p in g["params"]]
        if scaler:
            scaler.unscale_(opt)
        if t.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        self.state.step += 1

    @torch.no_grad()
    def predict(self, idx: torch.Tensor, amp_dtype=None) -> np.ndarray:
        """Probabilities for rows idx; under torchrun each rank predicts a share and all gather."""
        full = idx
        idx = idx[D.rank()::D.world()]
        self.model.eval()
        out = []
        for b in iterate(idx, max(self.state.batch_size, 64), shuffle=False):
            with torch.autocast(self.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = self.model(**self._batch(b, train=False))
            out.append(torch.softmax(logits.float(), -1).cpu())
        probs = torch.cat(out).numpy() if out else np.zeros((0, len(self.data.classes)))
        return D.gather_rows(full, probs)

    def _fit_blend(self, modality: str, train_idx: torch.Tensor, val_idx: torch.Tensor, amp_dtype) -> None:
        """The linear partner (TF-IDF for text, a probe on pretrained features for images) and the network's
        weight, chosen on validation with the final network; saved with the run."""
        from .blend import FOLDER, LexicalModel, ProbeModel, best_weight

        y, n = self.data.y.numpy(), len(self.data.classes)
        if modality == "text":
            self.progress(0.0, "Fitting the TF-IDF model to blend with")
            partner = LexicalModel.fit([self.data.files[i] for i in train_idx.tolist()], y[train_idx.numpy()], n)
        else:
            self.progress(0.0, "Fitting the pretrained-feature model to blend with")
            partner = ProbeModel.fit(self._pretrained[train_idx.numpy()], y[train_idx.numpy()], n)
        w, scores = best_weight(self.predict(val_idx, amp_dtype), self._partner_probs(partner, val_idx),
                                y[val_idx.numpy()], self.data.classes)
        self.blend = (partner, w)
        info = {"network_weight": w, "partner": "TF-IDF + logistic regression" if modality == "text" else
                "logistic regression on pretrained features", "val_macro_f1": scores}
        if self.main:
            if w < 1.0:
                partner.save(self.run_rec.dir / FOLDER)
            atomic_write_json(self.run_rec.dir / "blend.json", info)
        self.status("running", blend=info)

    def _partner_probs(self, partner, idx: torch.Tensor) -> np.ndarray:
        if self._pretrained is not None:
            return partner.predict_proba(self._pretrained[idx.numpy()])
        return partner.predict_proba([self.data.files[i] for i in idx.tolist()])

    def _eval_split(self, name: str, idx: torch.Tensor, amp_dtype, save_predictions: bool = False) -> dict[str, Any]:
        probs = self.predict(idx, amp_dtype)
        if name == "test" and self.blend is not None:
            from .blend import blend

            partner, w = self.blend
            probs = blend(probs, self._partner_probs(partner, idx) if w < 1 else None, w)
        y = self.data.y[idx].numpy()
        res = evaluate(y, probs, self.data.classes)
        res["epoch"] = self.state.epoch + 1
        if name == "test":
            res["vs_baseline"] = self._vs_baseline(y, probs.argmax(1))
        if not self.main:
            return res
        atomic_write_json(self.run_rec.dir / "eval" / f"{name}.json", res)
        if save_predictions:
            p_true = probs[np.arange(len(y)), y]
            df = pd.DataFrame({
                "row": [str(self.data.source_rows[i]) for i in idx.tolist()],
                "input": [self.data.display[i] for i in idx.tolist()],
                "true": [self.data.classes[i] for i in y],
                "pred": [self.data.classes[i] for i in probs.argmax(1)],
                "confidence": probs.max(1), "p_true": p_true, "loss": -np.log(np.clip(p_true, 1e-12, 1)),
            })
            if self.data.inputs.modality == "image":
                df["file"] = [self.data.files[i] for i in idx.tolist()]
            for j, c in enumerate(self.data.classes):
                df[f"p:{c}"] = probs[:, j]
            df.to_parquet(self.run_rec.dir / "eval" / f"{name}_predictions.parquet", index=False)
        return res

    def _cache_features(self, data: RunData) -> torch.Tensor:
        """The frozen backbone's features for every row, computed once per run."""
        feats = self._features(data, torch.arange(len(data.inputs)), note="Computing backbone features")
        return torch.from_numpy(feats).to(self.device)

    def _decide_flip(self, auto_reason: str | None) -> None:
        """Mirror training images only if mirroring keeps their meaning. Probes on pretrained features (5-fold,
        over training and validation rows) classify each held-out image as it is and mirrored: most digits,
        text and anything with a left and right lose accuracy mirrored; classes that look alike either way
        (0, 1, 8; most objects photographed from the side) do not."""
        from .baseline import mirror_check

        t, data = self.t, self.data
        check = self.run_rec.status.get("flip_check")  # resumed: decided at the start
        if check is None:
            rows = torch.cat([data.idx("train"), data.idx("val")]).numpy()
            if len(rows) > 2000:  # bounds the extra feature passes on big datasets
                rows = np.sort(np.random.default_rng(t.seed).choice(rows, 2000, replace=False))
            note = "Checking whether mirrored images keep their class"
            seen = (self._pretrained[rows] if self._pretrained is not None else
                    self._features(data, torch.from_numpy(rows), note=note))
            check = mirror_check(seen, self._features(data, torch.from_numpy(rows), mirror=True, note=note),
                                 data.y.numpy()[rows], len(data.classes), t.seed)
        t.hflip = True if check is None else check["flip"]
        if check is None:
            return
        if self.main:
            self.cfg.save(self.run_rec.dir / RESOLVED)
        fields: dict[str, Any] = {"flip_check": check}
        if not check["flip"]:
            note = (f"mirrored images lose their class (held-out accuracy of a probe on pretrained features "
                    f"{check['accuracy']:.2f}, mirrored {check['mirrored_accuracy']:.2f}), so training images "
                    f"are not flipped")
            if auto_reason:
                fields["auto"] = auto_reason.rstrip(".") + "; " + note + "."
            self.notes.append(note[0].upper() + note[1:] + ".")  # shown once the run has started
        self.status("running", **fields)

    @torch.no_grad()
    def _features(self, data: RunData, idx: torch.Tensor, mirror: bool = False, note: str = "") -> np.ndarray:
        """The current encoder's pooled features of these rows (left-right mirrored if asked)."""
        model = self.model
        model.eval()
        feats = np.empty((len(idx), model.feat_dim), dtype=np.float32)
        done = 0
        for b in iterate(idx, 64, shuffle=False):
            batch = {k: v.to(self.device) for k, v in data.inputs.batch(b).items()}
            if mirror:
                batch["pixel_values"] = batch["pixel_values"].flip(-1)
            feats[done:done + len(b)] = model.features(**batch).float().cpu().numpy()
            done += len(b)
            if note:
                self.progress(done / len(idx), f"{note} {done:,}/{len(idx):,}")
        return feats

    def _baseline(self, modality: str, train_idx, test_idx, keep_features: bool) -> dict[str, Any]:
        """Same split, no fine-tuning: TF-IDF + LR for text, LR on pretrained features for images."""
        from .baseline import feature_baseline, text_baseline, text_features

        self.progress(0.0, "Training the scikit-learn baseline")
        y = self.data.y.numpy()
        if modality == "text":
            result = text_baseline(self.data.files, y, train_idx.numpy(), test_idx.numpy(), self.data.classes)
            x = text_features(self.data.files, train_idx.numpy())
        else:
            feats = self._cache_features(self.data)  # pretrained encoder: nothing has trained yet
            if keep_features:
                self.features = feats
            x = self._pretrained = feats.cpu().numpy()
            result = feature_baseline(x, y, train_idx.numpy(), test_idx.numpy(), self.data.classes)
        self._baseline_pred = result.pop("pred")
        if self.main:
            (self.run_rec.dir / "eval").mkdir(exist_ok=True)
            np.save(self.run_rec.dir / "eval" / BASELINE_PRED, self._baseline_pred)
        self._suspect_labels(x, y)
        return result

    def _vs_baseline(self, y: np.ndarray, pred: np.ndarray) -> dict[str, Any] | None:
        """The paired comparison with the baseline's predictions on the same test rows (kept from the start of
        the run, or read back after a resume)."""
        from .evaluate import paired_comparison

        base = self._baseline_pred
        path = self.run_rec.dir / "eval" / BASELINE_PRED
        if base is None and path.is_file():
            base = np.load(path, allow_pickle=False)
        if base is None or len(base) != len(y):
            return None
        return paired_comparison(y, pred, base, self.data.classes, seed=self.t.seed)

    def _suspect_labels(self, x, y: np.ndarray) -> None:
        """Training/validation examples whose label an out-of-fold model confidently contradicts."""
        from sklearn.preprocessing import StandardScaler

        from .baseline import out_of_fold, suspects

        if not self.main:
            return
        rows = np.flatnonzero(self.data.split != "test")
        xr = x[rows] if not isinstance(x, np.ndarray) else StandardScaler().fit_transform(x[rows])
        probs = out_of_fold(xr, y[rows], len(self.data.classes), seed=self.t.seed)
        pos = suspects(probs, y[rows])
        c = self.data.classes
        df = pd.DataFrame({
            "row": rows[pos], "input": [self.data.display[i] for i in rows[pos]],
            "given": [c[y[i]] for i in rows[pos]], "suggested": [c[j] for j in probs[pos].argmax(1)],
            "p_given": probs[pos, y[rows[pos]]], "confidence": probs[pos].max(1)})
        (self.run_rec.dir / "eval").mkdir(parents=True, exist_ok=True)
        df.to_parquet(self.run_rec.dir / "eval" / "suspect_labels.parquet", index=False)

    # ------------------------------------------------------------------ checkpoints
    def _wrap(self) -> None:
        """Under torchrun, train through DistributedDataParallel; alone, through the model itself."""
        self.train_model = self.model
        if D.world() > 1 and any(p.requires_grad for p in self.model.parameters()):
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DDP(self.model, device_ids=ids)

    def _save_checkpoint(self, tag: str, opt, sched, scaler, next_epoch: int) -> None:
        if not self.main:
            return
        root = self.run_rec.dir / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{tag}.", dir=root))
        try:
            save_model(self.model, str(tmp / "model.safetensors"))
            if opt is not None:
                st = self.state
                torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "scaler": scaler.state_dict() if scaler else None, "next_epoch": next_epoch,
                            "step": st.step, "best_metric": st.best_metric, "best_epoch": st.best_epoch,
                            "batch_size": st.batch_size, "grad_accum": st.grad_accum,
                            "torch_rng": torch.get_rng_state()}, tmp / "trainer.pt")
            for f in tmp.iterdir():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
            atomic_replace_dir(tmp, root / tag)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            import errno

            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(e.errno, "disk full") from e
            raise
        self.emit("checkpoint", tag=tag, next_epoch=next_epoch)

    def _load_checkpoint(self, opt, sched, scaler, strategy, modality) -> int:
        ck = self.run_rec.dir / "checkpoints" / "last"
        if not (ck / "trainer.pt").is_file():
            return 0  # nothing completed yet: start over
        s = torch.load(ck / "trainer.pt", weights_only=True, map_location="cpu")
        for e in range(1, s["next_epoch"]):
            strategy.on_epoch_start(self.model, self.t, e, opt, modality)
        load_model(self.model, str(ck / "model.safetensors"), strict=True, device=str(self.device))
        opt.load_state_dict(s["optimizer"])
        sched.load_state_dict(s["scheduler"])
        if scaler and s.get("scaler"):
            scaler.load_state_dict(s["scaler"])
        st = self.state
        st.step, st.best_metric, st.best_epoch = s["step"], s["best_metric"], s["best_epoch"]
        st.batch_size, st.grad_accum = s["batch_size"], s["grad_accum"]
        torch.set_rng_state(s["torch_rng"])
        return int(s["next_epoch"])


class StatusHeartbeat(Callback):
    """Keeps status.json current (progress, heartbeat) so other processes and a restarted server can tell."""
    order = 50

    def __init__(self, store: RunStore, every_s: float = 2.0):
        self.store, self.every, self.last = store, every_s, 0.0

    def on_event(self, ev, trainer):
        if ev.kind == "run_end":
            return
        now = time.time()
        if ev.kind in ("epoch_end", "run_start") or now - self.last >= self.every:
            self.last = now
            st = trainer.state
            extra = {"message": ev.data["message"]} if ev.kind == "progress" else {}
            self.store.set_status(trainer.run_rec, "running", heartbeat=now, step=st.step, epoch=st.epoch,
                                  total_steps=st.total_steps, **extra)


def _schedule(kind: str, total: int, warmup_ratio: float):
    warm = int(total * warmup_ratio)

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        prog = (step - warm) / max(1, total - warm)
        prog = min(max(prog, 0.0), 1.0)
        return 0.5 * (1 + math.cos(math.pi * prog)) if kind == "cosine" else 1.0 - prog
    return f


def _amp_dtype(dev: torch.device):
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
