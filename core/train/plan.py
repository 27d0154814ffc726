"""Plan, then train. Before the loop starts, the plan resolves the backbone and 'auto', builds the model,
fits the baseline and finds suspect labels, decides whether mirroring keeps the class, caches frozen features,
and writes the resolved config once; nothing rewrites it during training."""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from . import distributed as D
from ..backbones import BackboneSpec, Classifier, get_backbone
from ..config import RESOLVED, RunConfig
from ..errors import DataError
from ..settings import ConfigError
from ..fsutil import atomic_write_json
from ..modalities import FeatureInputs, get_modality
from ..data.rundata import RunData, check_backbone, load_rows, open_data
from ..strategies import Strategy, get_strategy, resolve_auto

Progress = Callable[[float, str], None]
Report = Callable[..., None]


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


@dataclass
class Plan:
    cfg: RunConfig  # resolved: what the run actually uses
    spec: BackboneSpec
    strategy: Strategy
    data: RunData
    model: Classifier
    groups: list[dict[str, Any]]
    device: torch.device
    progress: Progress
    auto_reason: str | None = None
    notes: list[str] = field(default_factory=list)  # shown as warnings once the run has started
    facts: dict[str, Any] = field(default_factory=dict)  # what the run's status records about the plan
    baseline: dict[str, Any] | None = None
    baseline_pred: np.ndarray | None = None
    blend_view: Any = None  # what the blend partner reads per row (texts, or pretrained features)
    _pretrained: np.ndarray | None = None
    _pretrained_key: str | None = None

    def features(self, idx: torch.Tensor, mirror: bool = False, note: str = "") -> np.ndarray:
        """The current encoder's pooled features of these rows (left-right mirrored if asked)."""
        model, inputs = self.model, self.data.inputs
        model.eval()
        feats = np.empty((len(idx), model.feat_dim), dtype=np.float32)
        done = 0
        with torch.no_grad():
            for s in range(0, len(idx), 64):
                b = idx[s:s + 64]
                batch = {k: v.to(self.device) for k, v in inputs.batch(b).items()}
                if mirror:
                    batch["pixel_values"] = batch["pixel_values"].flip(-1)
                feats[done:done + len(b)] = model.features(**batch).float().cpu().numpy()
                done += len(b)
                if note:
                    self.progress(done / len(idx), f"{note} {done:,}/{len(idx):,}")
        return feats

    def pretrained_features(self) -> np.ndarray:
        """Every row's features from the encoder before any training step: computed once per dataset version,
        backbone and preprocessing, kept beside the version, and reused by later runs (frozen heads, baselines,
        blends, the mirror probe)."""
        if self._pretrained is not None:
            return self._pretrained
        from .cache import feature_path, load_features, save_features

        data, n = self.data, len(self.data.inputs)
        path = None
        if data.test_ds is None:  # rows of one dataset version: worth keeping
            pre = data.modality.preprocessor(self.spec, self.cfg.train)
            path = feature_path(data.ds.dir, self.spec.name, data.modality.feature_variant(pre, self.cfg.train))
            cached = load_features(path, n, self.model.feat_dim)
            if cached is not None:
                self.progress(1.0, f"Reusing {self.spec.name} features of {n:,} examples from an earlier run")
                self._pretrained = np.ascontiguousarray(cached)
                return self._pretrained
        self._pretrained = self.features(torch.arange(n), note="Computing backbone features")
        if path is not None:
            save_features(path, self._pretrained)
        return self._pretrained

    def remembered(self, name: str, view: Any, compute: Callable[[], dict[str, np.ndarray]], *key: Any,
                   code: tuple[Callable, ...] = ()) -> tuple[dict[str, np.ndarray], bool]:
        """compute()'s arrays, or those an earlier run computed from the same pretrained features, rows, labels
        and code (True). Fits on other views (TF-IDF: seconds) are computed every time."""
        from .cache import code_key, content_key, remembered

        if view is None or view is not self._pretrained or self.data.test_ds is not None:
            return compute(), False
        if self._pretrained_key is None:
            self._pretrained_key = content_key(self._pretrained)
        folder = self.data.ds.dir / "cache" / "fits"
        return remembered(folder, name, content_key(self._pretrained_key, code_key(*code), *key), compute)


def make_plan(cfg: RunConfig, datasets, run_dir: Path, previous: dict[str, Any], resume: bool,
              progress: Progress, report: Report) -> Plan:
    cfg = RunConfig.from_dict(cfg.to_dict())  # this run's own copy; config.json keeps what was asked
    if resume and (run_dir / RESOLVED).is_file():  # a resumed run goes on with the plan it started with
        cfg = RunConfig.load(run_dir / RESOLVED)
    progress(0.0, "Loading data")
    opened = open_data(cfg, datasets, progress)
    modality = get_modality(opened[0].modality)
    if not cfg.train.backbone:
        cfg.train.backbone = modality.default_backbone
    spec = get_backbone(cfg.train.backbone)
    check_backbone(spec, opened[0])
    data = load_rows(cfg, opened, drop_test_rows=_test_overlap(cfg, opened, previous, report))
    if data.task.has_classes and len(data.classes) < 2:
        raise DataError(f"Only one class ({data.classes[0]}): training needs at least two.")
    reason = None
    device = pick_device(D.device_for_rank(cfg.train.device))
    if cfg.train.strategy == "auto":
        cfg.train, reason, choice = _plan_auto(cfg, data, spec, device, progress)
        spec = get_backbone(cfg.train.backbone)
        report(auto=reason, resolved_strategy=cfg.train.strategy, resolved_backbone=spec.name,
               plan={"choice": choice.line(), "estimate_s": round(choice.estimate_s, 1),
                     "budget_s": choice.budget_s, "considered": choice.considered} if choice else None)
    if cfg.train.teacher and get_strategy(cfg.train.strategy).fits_head:
        raise ConfigError(f"Distillation trains the student on the teacher's outputs; '{cfg.train.strategy}' solves "
                          "its head from the labels alone. Choose a strategy that trains (full, lora, ...).")
    data.attach_inputs(spec, cfg.train, progress)
    data.task.monitor(cfg.train)  # a metric or loss the task does not have is refused here, not mid-run
    data.task.loss_name(cfg.train)
    strategy = get_strategy(cfg.train.strategy)
    progress(0.1, f"Building {spec.name}")
    seed_everything(cfg.train.seed)
    model = spec.build(data.task.out_dim(data.targets), pooling=cfg.train.pooling,
                       keep_layers=cfg.train.keep_layers)
    groups = strategy.prepare(model, cfg.train, spec.modality)
    if cfg.train.gradient_checkpointing and hasattr(getattr(model.encoder, "model", None),
                                                    "gradient_checkpointing_enable"):
        model.encoder.model.gradient_checkpointing_enable()
    model.to(device)
    plan = Plan(cfg, spec, strategy, data, model, groups, device, progress, reason)
    _baseline(plan, previous if resume else {}, run_dir)
    if cfg.train.blend:
        plan.blend_view = data.modality.blend_view(plan)  # before any weight moves
    _mirror(plan, previous, reason)
    if strategy.frozen_backbone:
        with warnings.catch_warnings():  # read-only (a memory-mapped cache file): the features are never written
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            data.inputs = FeatureInputs(torch.from_numpy(plan.pretrained_features()).to(device))
    if strategy.fits_head:
        _fit_head(plan)
    if D.is_main():
        atomic_write_json(run_dir / "labels.json", {**data.meta, "task": data.task.name,
                                                    "modality": spec.modality, "backbone": spec.name})
        cfg.save(run_dir / RESOLVED)
    return plan


def _fit_head(plan: Plan) -> None:
    """The frozen strategy's head, solved to convergence on the cached features (L-BFGS, the baseline's own
    estimator) rather than stepped for a few epochs: it never ends short of a linear model on the same features.
    The loop then only validates it once; epochs do not apply."""
    from ..tasks import fold_standardisation, standardisation

    data, head = plan.data, plan.model.head[-1]
    train = data.idx("train").numpy()
    x, y = plan.pretrained_features(), data.targets.y.numpy()[train]

    def solve() -> dict[str, np.ndarray]:
        plan.progress(0.0, "Fitting the head to convergence on the cached features")
        return dict(zip("wb", data.task.linear_head(x[train], y, data.meta, head.out_features)))

    fit, reused = plan.remembered("head", x, solve, train, y, data.meta, head.out_features,
                                  code=(data.task.linear_head, standardisation, fold_standardisation))
    if reused:
        plan.progress(1.0, "Reusing the head an earlier run solved on the same features, rows and labels")
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(fit["w"], dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(fit["b"], dtype=head.bias.dtype))
    plan.cfg.train = replace(plan.cfg.train, epochs=1)
    plan.notes.append("The head was solved to convergence on the backbone's cached features (L-BFGS); no "
                      "training steps were needed.")


def _resolve_auto(cfg: RunConfig, data: RunData, spec: BackboneSpec, strategy: str | None = None):
    tr = data.split == "train"
    items = [x for x, keep in zip(data.files, tr) if keep]
    counts = np.bincount(data.targets.truth[tr].astype(np.int64)).tolist() if data.task.has_classes else None
    facts = data.modality.auto_facts(data.ds, items)
    return resolve_auto(cfg.train, int(tr.sum()), spec.modality, counts, params_m=spec.params_m,
                        chosen=cfg.user_set(), strategy=strategy, **facts)


def _plan_auto(cfg: RunConfig, data: RunData, spec: BackboneSpec, device: torch.device, progress: Progress):
    """'auto' within its time budget (core.train.budget): candidates best first, each costed from speeds measured on
    this device with a few real examples, the first that fits chosen. A backbone the person chose is kept."""
    from . import budget

    chosen = cfg.user_set()
    limit = budget.budget_seconds(cfg.train, device)
    n_rows, n_train, n_val = len(data.split), int((data.split == "train").sum()), int((data.split == "val").sum())
    sample = [data.files[i] for i in data.idx("train")[:8].tolist()]
    considered, pick = [], None
    cands = budget.candidates(spec.modality, device.type == "cuda", spec.name, "backbone" in chosen,
                              lambda b: _offline(b))
    if cfg.train.teacher:  # a distilled student learns by training steps
        cands = [c for c in cands if not get_strategy(c[1]).fits_head]
    for i, (backbone, strategy) in enumerate(cands):
        cand_spec = get_backbone(backbone)
        t, why = _resolve_auto(RunConfig.from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"],
                                                                              "backbone": backbone}}), data, cand_spec,
                               strategy)
        progress(i / len(cands), f"Planning against the {budget._minutes(limit)} budget: timing {strategy} {backbone}")
        fwd, step = _speeds(cand_spec, t, strategy, sample, device, data)
        est = budget.estimate(not get_strategy(strategy).fits_head, n_rows, n_train, n_val, t.epochs,
                              t.batch_size, fwd, step)
        considered.append({"backbone": backbone, "strategy": strategy, "estimate_s": round(est, 1)})
        if est <= limit * budget.MARGIN or i == len(cands) - 1:
            pick = (replace(t, backbone=backbone), why, est)
            break
    t, why, est = pick
    choice = budget.Choice(t.backbone, t.strategy, est, limit, considered)
    return t, f"Plan: {choice.line()}. {why}", choice


def _offline(backbone: str) -> bool:
    from ..backbones import _REGISTRY

    spec = _REGISTRY.get(backbone)
    return spec is not None and spec.is_offline()


def _speeds(spec: BackboneSpec, t, strategy: str, sample: list, device: torch.device, data: RunData
            ) -> tuple[float, float]:
    """(seconds of forward pass per example, seconds of training step per example) on this device."""
    from . import budget

    model = spec.build(data.task.out_dim(data.targets), pooling=t.pooling,
                       keep_layers=t.keep_layers).to(device)
    pre = data.modality.preprocessor(spec, t)
    batch, ok, _ = pre.batch(sample)
    if batch is None:
        return 0.0, 0.0
    fwd = budget.time_forward(model, batch, device) / len(ok)
    step = 0.0
    if not get_strategy(strategy).fits_head:
        groups = get_strategy(strategy).prepare(model, replace(t, strategy=strategy, strategy_args={}), spec.modality)
        step = budget.time_step(model, groups, batch, device) / len(ok)
    del model
    return fwd, step


def _baseline(plan: Plan, previous: dict[str, Any], run_dir: Path) -> None:
    """Same split, no fine-tuning: the task's estimator on the modality's linear view (TF-IDF, or the pretrained
    features). A resumed run keeps what its start measured."""
    from .callbacks.evaluation import save_baseline_pred

    t, data = plan.cfg.train, plan.data
    test = data.idx("test").numpy()
    if previous.get("baseline") is not None:
        plan.baseline = previous["baseline"]
        return
    if not t.baseline or not len(test):
        return
    from ..tasks import standardisation

    plan.progress(0.0, "Training the scikit-learn baseline")
    view = data.modality.linear_view(plan)
    train = data.idx("train").numpy()
    y = data.targets.truth[train]

    def fit() -> dict[str, np.ndarray]:
        x_tr, x_te = data.modality.baseline_matrices(view, train, test)
        return {"out": data.task.baseline_predict(x_tr, y, x_te, data.meta)}

    got, reused = plan.remembered("baseline", view, fit, train, test, y, data.meta,
                                  code=(data.task.baseline_predict, data.modality.baseline_matrices, standardisation))
    if reused:
        plan.progress(1.0, "Reusing the baseline an earlier run fitted on the same features and split")
    out = got["out"]
    res = data.task.evaluate(data.targets.truth[test], out, data.meta)
    plan.baseline = {"name": data.modality.baseline_name(data.task.estimator),
                     **{k: res[k] for k in data.task.headline}, "n": res["n"]}
    plan.baseline_pred = data.task.point(out)
    if D.is_main():
        save_baseline_pred(run_dir, plan.baseline_pred)
        _suspect_labels(plan, view, run_dir)


def _suspect_labels(plan: Plan, view, run_dir: Path) -> None:
    """Training/validation examples whose label an out-of-fold model confidently contradicts."""
    from . import baseline
    from ..tasks import standardisation

    data, seed = plan.data, plan.cfg.train.seed
    rows, train = np.flatnonzero(data.split != "test"), data.idx("train").numpy()
    truth = data.targets.truth[rows]

    def check() -> dict[str, np.ndarray]:
        found = data.task.suspects(data.modality.suspect_matrix(view, rows, train), truth, data.meta, seed)
        return {} if found is None else dict(zip(("pos", "probs"), found))

    got, reused = plan.remembered("suspects", view, check, rows, train, truth, data.meta, seed,
                                  code=(data.task.suspects, data.modality.suspect_matrix, standardisation,
                                        baseline.out_of_fold, baseline.suspects))
    if not got:
        return
    if reused:
        plan.progress(1.0, "Reusing the label check an earlier run made on the same features and split")
    pos, probs = got["pos"], got["probs"]
    c, y = data.classes, data.targets.truth
    df = pd.DataFrame({"row": rows[pos], "input": [data.display[i] for i in rows[pos]],
                       "given": [c[y[i]] for i in rows[pos]], "suggested": [c[j] for j in probs.argmax(1)],
                       "p_given": probs[np.arange(len(pos)), y[rows[pos]]], "confidence": probs.max(1)})
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    df.to_parquet(run_dir / "eval" / "suspect_labels.parquet", index=False)


def _mirror(plan: Plan, previous: dict[str, Any], auto_reason: str | None) -> None:
    """Mirror training images only if mirroring keeps their meaning. Probes on pretrained features (5-fold,
    over training and validation rows) classify each held-out image as it is and mirrored: most digits, text
    and anything with a left and right lose accuracy mirrored; classes that look alike either way (0, 1, 8;
    most objects photographed from the side) do not."""
    from .baseline import mirror_check

    t, data = plan.cfg.train, plan.data
    if not (data.modality.mixable and t.augment and t.hflip is None and not plan.strategy.frozen_backbone):
        return
    check = previous.get("flip_check")  # resumed: decided at the start
    if check is None and data.task.has_classes:
        rows = torch.cat([data.idx("train"), data.idx("val")]).numpy()
        if len(rows) > 2000:  # bounds the extra feature passes on big datasets
            rows = np.sort(np.random.default_rng(t.seed).choice(rows, 2000, replace=False))
        note = "Checking whether mirrored images keep their class"
        seen = plan._pretrained[rows] if plan._pretrained is not None else \
            plan.features(torch.from_numpy(rows), note=note)
        check = mirror_check(seen, plan.features(torch.from_numpy(rows), mirror=True, note=note),
                             data.targets.truth[rows], len(data.classes), t.seed)
    plan.cfg.train = replace(t, hflip=True if check is None else check["flip"])
    if check is None:
        return
    plan.facts["flip_check"] = check
    if not check["flip"]:
        note = (f"mirrored images lose their class (held-out accuracy of a probe on pretrained features "
                f"{check['accuracy']:.2f}, mirrored {check['mirrored_accuracy']:.2f}), so training images "
                f"are not flipped")
        if auto_reason:
            plan.auto_reason = auto_reason.rstrip(".") + "; " + note + "."
            plan.facts["auto"] = plan.auto_reason
        plan.notes.append(note[0].upper() + note[1:] + ".")


def _test_overlap(cfg: RunConfig, opened, previous: dict[str, Any], report: Report) -> set[int] | None:
    """Your own test file against the training data: exact and near repeats inflate the scores."""
    if opened[1] is None:
        return None
    from ..data.audit import cross_duplicates

    found = previous.get("test_overlap") or cross_duplicates(opened[0], opened[1])
    report(test_overlap={**found, "dropped": cfg.data.test_overlap == "drop"})
    return set(found["test_rows"]) if cfg.data.test_overlap == "drop" else None
