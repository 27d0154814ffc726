"""Plan, then train. Before the loop starts, the plan reads the data, resolves 'auto', builds the model, fits the
baseline and checks the labels, decides whether mirroring keeps the class, caches frozen features, solves a
frozen head, and writes the resolved config once; nothing rewrites it during training. Each step is a function of
its own (core.train.auto, core.train.checks, core.train.head); make_plan reads top to bottom."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch

from ..backbones import BackboneSpec, Classifier, get_backbone
from ..config import RunConfig
from ..data.audit import label_numbers
from ..data.datasets import DatasetStore
from ..errors import ConfigError, DataError
from ..fsutil import atomic_write_json
from ..modalities import FeatureInputs
from ..runs.folder import RunFolder
from ..strategies import Strategy, get_strategy
from . import distributed as D
from .auto import plan_auto
from .checks.baseline import fit_baseline
from .checks.mirror import decide_mirroring
from .checks.overlap import report_test_overlap
from .checks.size import size_note
from .features import Features
from .head import head_first, solve_head
from .parent import check_parent, inherit, load_parent
from .setup import attach_inputs, build_model, device_for, open_run, pick_device, run_data

Progress = Callable[[float, str], None]
Report = Callable[..., None]


@dataclass
class Plan:
    cfg: RunConfig  # resolved: what the run actually uses
    spec: BackboneSpec
    strategy: Strategy
    data: Any  # core.data.rundata.RunData
    model: Classifier
    groups: list[dict[str, Any]]
    device: torch.device
    progress: Progress
    folder: RunFolder
    features: Features
    auto_reason: str | None = None
    notes: list[str] = field(default_factory=list)  # shown as warnings once the run has started
    facts: dict[str, Any] = field(default_factory=dict)  # what the run's status records about the plan
    baseline: dict[str, Any] | None = None
    baseline_pred: np.ndarray | None = None
    blend_view: Any = None  # what the blend partner reads per row (core.modalities.base.LinearView)
    tuned_params: int = 0  # weights stepped before the loop (an encoder tuned on pairs), frozen in it
    crossfit: Any = None  # the solved head's out-of-fold outputs over training + validation (core.train.crossfit)
    choice: Any = None  # the plan 'auto' made against its time budget (core.train.auto.Choice)


def make_plan(cfg: RunConfig, datasets: DatasetStore, folder: RunFolder, previous: dict[str, Any], resume: bool,
              progress: Progress, report: Report, device: str | None = None, parent: RunFolder | None = None,
              started: float | None = None) -> Plan:
    """parent: the finished run this one continues (train.init_from); started: when the run began (time.time()),
    which a time budget counts from."""
    cfg = RunConfig.from_dict(cfg.to_dict())  # this run's own copy; config.json keeps what was asked
    if resume and folder.resolved_file.is_file():  # a resumed run goes on with the plan it started with
        cfg = RunConfig.load(folder.resolved_file)
    continued = inherit(cfg, parent) if parent else None
    if resume:  # and with the very data versions it started on, whatever became of the files since
        cfg.data.source = previous.get("dataset") or cfg.data.source
        cfg.data.test_source = previous.get("test_dataset") or cfg.data.test_source
    progress(0.0, "Loading data")
    opened = open_run(cfg, datasets, progress)
    drop, overlap = report_test_overlap(cfg, opened.ds, opened.test_ds, previous, report)
    data = run_data(opened, drop)
    if data.task.has_classes and len(data.classes) < 2:
        raise DataError(f"Only one class ({data.classes[0]}): training needs at least two.")
    if parent:
        check_parent(parent, cfg, data.task.name, opened.ds.modality)
        report(parent=parent.id)
    spec, device, reason, choice = opened.spec, pick_device(device) if device else device_for(cfg), None, None
    if get_strategy(cfg.train.strategy).planned:
        # rank 0's plan on every rank: each process would time the candidates differently, and all must run one plan
        cfg.train, reason, choice = D.broadcast(plan_auto(cfg, data, spec, device, progress, started)
                                                if D.is_main() else None)
        spec = get_backbone(cfg.train.backbone)
        report(auto=reason, resolved_strategy=cfg.train.strategy, resolved_backbone=spec.name, plan=choice.facts())
    if cfg.train.teacher and data.task.several:
        raise ConfigError("Distillation is not available for multi-label runs yet: train without a teacher.")
    if cfg.train.teacher and get_strategy(cfg.train.strategy).fits_head:
        raise ConfigError(f"Distillation trains the student on the teacher's outputs; '{cfg.train.strategy}' solves "
                          "its head from the labels alone. Choose a strategy that trains (full, lora, ...).")
    fitted = attach_inputs(data, spec, cfg.train, progress)
    data.task.monitor(cfg.train)  # a metric or loss the task does not have is refused here, not mid-run
    data.task.loss_name(cfg.train)
    progress(0.1, f"Building {spec.name}")
    model, groups, strategy = build_model(spec, data, cfg.train, device)
    plan = Plan(cfg, spec, strategy, data, model, groups, device, progress, folder,
                Features(model, data, spec, cfg.train, device, progress), reason, choice=choice)
    plan.notes += fitted + [n for n in (continued,) if n]
    # a resumed run reads its weights from its checkpoint; one stopped before its first starts from the beginning
    restored = resume and folder.checkpoint_state("last").is_file()
    if parent and not restored:
        plan.notes.append(load_parent(model, parent, data.classes if data.task.has_classes else None))
    if data.task.several:
        sep = cfg.data.label_sep
        plan.notes.append(f"Several labels per example, separated by '{sep}': a multi-label classifier with one "
                          f"yes/no per label ({len(data.classes)} labels), each label's threshold tuned on "
                          "validation. To read each cell as one class instead: label separator 'none'.")
    numbers = label_numbers(data.labels) if data.task.has_classes and not data.task.several else None
    if numbers:  # never silently one: the choice made is said, with the other
        plan.notes.append(f"{numbers['why']} This run learns them as {len(data.classes)} classes; to predict them "
                          "as numbers, choose regression (Train page: 'numbers'; CLI: --task regression).")
    plan.notes += [n for n in (size_note(data.split, len(data.classes) if data.task.has_classes and
                                         not data.task.several else None), overlap) if n]
    fit_baseline(plan, previous if resume else {})
    if cfg.train.blend and not data.task.blends:
        plan.notes.append(f"No blend: {data.task.title.lower()} runs do not blend with a linear model yet; the "
                          "network makes every prediction.")
    elif cfg.train.blend:
        plan.blend_view = data.modality.linear_view(data, plan.features, blend=True)  # before any weight moves
    decide_mirroring(plan, previous)
    if strategy.frozen_backbone:
        with warnings.catch_warnings():  # read-only (a memory-mapped cache file): the features are never written
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            data.inputs = FeatureInputs(torch.from_numpy(plan.features.pretrained()).to(device))
    if strategy.fits_head:
        solve_head(plan)
    elif not restored and head_first(plan):
        plan.facts["head_first"] = True
    if cfg.train.lr is None and (not strategy.fits_head or strategy.tunes_encoder):
        # the rate the optimiser got (the strategy's default times the backbone's scale), so the record says it
        plan.cfg.train = replace(plan.cfg.train, lr=strategy.lr(plan.cfg.train, spec.modality))
    if D.is_main():
        atomic_write_json(folder.labels_file, {"task": data.task.name, "modality": spec.modality,
                                          "backbone": spec.name, **data.meta})
        plan.cfg.save(folder.resolved_file)
    return plan
