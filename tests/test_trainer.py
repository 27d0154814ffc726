"""The loop's contract: events in order, one stop flag, divergence, resume, replay, faults."""
import errno
import json
import re

import numpy as np
import pytest
import torch

from core.config import RunConfig
from core.train.events import Callback, Control
from tests.helpers import At, Record, config, train


def test_event_order_and_run_folder(stores, image_dir):
    rec_cb = Record()
    rec, st, _ = train(stores, config(image_dir), [rec_cb])
    assert st["status"] == "completed"
    kinds = [k for k in rec_cb.kinds() if k != "warning"]  # notes (small data) come as warnings at the start
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds[1:7] == ["epoch_start", "step", "eval", "epoch_end", "checkpoint", "epoch_start"]
    assert kinds.count("epoch_start") == 2
    d = rec.dir
    for f in ("config.json", "status.json", "events.jsonl", "labels.json", "eval/val.json", "eval/test.json",
              "eval/test_predictions.parquet", "checkpoints/last/model.safetensors", "checkpoints/last/trainer.pt"):
        assert (d / f).is_file(), f
    assert st["test"]["accuracy"] >= 0 and st["trainable_params"] == st["total_params"]


def test_stop_within_one_step_and_model_is_evaluable(stores, image_dir):
    ctl = Control()
    rec_cb = Record()
    rec, st, _ = train(stores, config(image_dir, epochs=5), [At(2, lambda ctx: ctx.control.stop()), rec_cb], control=ctl)
    steps = [e.step for e in rec_cb.events if e.kind == "step"]
    assert st["status"] == "stopped" and max(steps) == 2
    assert (rec.dir / "checkpoints" / "last" / "model.safetensors").is_file()
    assert st["test"] is not None


def test_nan_loss_diverges_and_keeps_last_good_checkpoint(stores, image_dir):
    def poison(ctx):
        with torch.no_grad():
            for p in ctx.parts.model.head.parameters():
                p.fill_(float("nan"))

    rec, st, _ = train(stores, config(image_dir, epochs=4), [At(1, poison, kind="epoch_start")])
    assert st["status"] == "diverged"
    assert "diverged at step" in st["reason"] and "learning rate" in st["reason"]
    from safetensors.torch import load_file

    good = load_file(rec.dir / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in good.values())


def _guard_run(losses):
    from types import SimpleNamespace

    from core.train.callbacks import DivergenceGuard
    from core.train.events import TrainState

    ctx = SimpleNamespace(control=Control(), state=TrainState())
    guard = DivergenceGuard()
    for i, loss in enumerate(losses, 1):
        ctx.state.step = i
        guard.on_step_end(ctx, loss)
        if ctx.control.should_stop:
            break
    return ctx.control


def test_divergence_guard_flags_inf_nan_and_exploding_losses():
    for bad in (float("nan"), float("inf")):
        c = _guard_run([0.7, 0.6, bad])
        assert c.status == "diverged" and "step 3" in c.reason
    c = _guard_run([0.78, 12_408, 41_269, 54_060, 60_000])  # finite all the way: the case reported as 'completed'
    assert c.status == "diverged" and "step 4" in c.reason and "early level of 0.78" in c.reason
    assert _guard_run([2.3, 2.0, 1.5, 1.2, 0.4, 0.05, 0.2, 0.9, 1.4, 0.3]).status is None  # noisy but training
    assert _guard_run([0.7, 3.5, 0.6, 0.5, 3.6, 0.4]).status is None  # isolated spikes are not divergence


def test_an_exploding_run_is_diverged_not_completed(stores, image_dir):
    record = Record()
    rec, st, _ = train(stores, config(image_dir, "tiny-cnn", "full", epochs=3, lr=9.0, max_grad_norm=None,
                                      warmup_ratio=0.0), [record])
    losses = [e.data["loss"] for e in record.events if e.kind == "step"]
    assert st["status"] == "diverged", losses
    assert "diverged at step" in st["reason"] and all(v == v for v in losses[:-1])


def test_resume_after_kill_continues_from_checkpoint(stores, image_dir):
    class Killed(BaseException):
        pass

    def kill(trainer):
        raise Killed()

    cfg = config(image_dir, epochs=3)
    datasets, runs = stores
    with pytest.raises(Killed):
        train(stores, cfg, [At(1, kill, kind="epoch_start")])
    from core.runs.folder import RunFolder
    from core.runs.manager import RunManager

    rec = RunFolder(next(d for d in runs.root.iterdir() if d.name.startswith("r")))
    assert rec.status["status"] == "running"  # as a killed process leaves it on disk
    mgr = RunManager(runs, datasets)  # a restarted server finds the run's owner gone
    mgr.shutdown()
    assert mgr.interrupted == [rec.id]
    assert rec.status["status"] == "interrupted"
    events_before = len(rec.events())
    record = Record()
    _, st, _ = train(stores, cfg, [record], resume_rec=rec)
    assert st["status"] == "completed" and st["epoch"] == 3
    assert st["vs_baseline"]["n"] == st["baseline"]["n"]  # baseline predictions read back after the restart
    start = next(e for e in record.events if e.kind == "run_start")
    assert start.data["resumed_from"] == 1
    assert [e.epoch for e in record.events if e.kind == "epoch_start"] == [1, 2]
    assert len(rec.events()) > events_before  # history kept, appended to


def test_config_round_trip_and_replay_identical(stores, text_csv, tmp_path):
    cfg = config(text_csv, "tiny-text", "lora", epochs=2, seed=3)
    d = cfg.to_dict()
    assert RunConfig.from_dict(json.loads(json.dumps(d))).to_dict() == d
    rec1, st1, _ = train(stores, cfg)
    replay = RunConfig.load(rec1.config_file)
    rec2, st2, _ = train(stores, replay)
    assert st1["test"] == st2["test"]
    p1 = rec1.result("test")
    p2 = rec2.result("test")
    assert p1["confusion"] == p2["confusion"] and p1["loss"] == pytest.approx(p2["loss"], abs=1e-9)


def test_unknown_config_keys_are_named():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="Unknown train setting.*epochz"):
        RunConfig.from_dict({"data": {"source": "x"}, "train": {"epochz": 3}})


def test_simulated_gpu_oom_halves_batch_and_retries(stores, image_dir):
    calls = {"n": 0}

    def oom(trainer):
        calls["n"] += 1
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    rec_cb = Record()
    _, st, tr = train(stores, config(image_dir, epochs=1, batch_size=16), [At(1, oom), rec_cb])
    assert st["status"] == "completed" and calls["n"] == 1
    assert tr.state.batch_size == 8 and tr.state.grad_accum == 2
    assert any("Out of GPU memory" in e.data.get("message", "") for e in rec_cb.events if e.kind == "warning")


def test_disk_full_keeps_previous_checkpoint(stores, image_dir, monkeypatch):
    import core.train.callbacks.checkpoint as T

    real = T.save_model
    calls = {"n": 0}

    def full_after_first(model, path):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1's 'last' and 'best' succeed
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(model, path)

    monkeypatch.setattr(T, "save_model", full_after_first)
    rec, st, _ = train(stores, config(image_dir, epochs=3))
    assert st["status"] == "failed" and "Disk full" in st["reason"]
    s = torch.load(rec.dir / "checkpoints" / "last" / "trainer.pt", weights_only=True)
    assert s["next_epoch"] == 1
    assert not list((rec.dir / "checkpoints").glob(".last.*"))  # no half-written folder left


def test_early_stopping_uses_the_same_control(stores, image_dir):
    rec, st, tr = train(stores, config(image_dir, epochs=30, early_stopping_patience=1, lr=1e-9))
    assert st["status"] == "completed" and "Early stopping" in st["reason"]
    assert st["epoch"] < 30


def test_class_weights_focal_and_label_smoothing_run(stores, image_dir):
    _, st, _ = train(stores, config(image_dir, epochs=1, class_weighting="balanced", loss="focal",
                                    label_smoothing=0.1, mixup_alpha=0.2, grad_accum=2))
    assert st["status"] == "completed"


def test_learns_on_separable_data(stores, image_dir):
    _, st, _ = train(stores, config(image_dir, epochs=8, lr=1e-2, batch_size=8))
    assert st["test"]["accuracy"] >= 0.6


def test_own_test_file_replaces_carved_split(stores, tmp_path):
    from tests.conftest import make_text_csv

    train_csv = make_text_csv(tmp_path / "train.csv", per_class=30, seed=1)
    test_csv = make_text_csv(tmp_path / "test.csv", per_class=5, seed=2)
    cfg = config(train_csv, "tiny-text", "frozen", epochs=1)
    cfg.data.test_source = str(test_csv)
    rec, st, _ = train(stores, cfg)
    assert rec.result("test")["n"] == 15


def test_wrong_modality_backbone_fails_with_reason(stores, text_csv):
    _, st, _ = train(stores, config(text_csv, "tiny-cnn", "full"))
    assert st["status"] == "failed" and "text backbone" in st["reason"]


def test_every_run_reports_a_baseline_on_the_same_split(stores, text_csv, image_dir):
    rec, st, _ = train(stores, config(text_csv, "tiny-text", "frozen", epochs=1))
    b = st["baseline"]
    assert b["name"].startswith("TF-IDF") and b["macro_f1"] > 0.8  # separable topics
    assert b["n"] == rec.result("test")["n"] and "pred" not in b
    vs = st["vs_baseline"]  # paired with the baseline's own test predictions, kept beside the run
    assert vs["n"] == b["n"] and vs["verdict"] in ("better", "worse", "within_noise", "same")
    assert vs["low"] <= vs["macro_f1_diff"] <= vs["high"]
    assert (rec.dir / "eval" / "baseline_test_pred.npy").is_file()
    _, st2, tr = train(stores, config(image_dir, "tiny-cnn", "frozen", epochs=1))
    from core.modalities import FeatureInputs

    assert st2["baseline"]["name"].startswith("logistic regression") and isinstance(tr.data.inputs, FeatureInputs)


def test_suspect_labels_find_flipped_labels(stores, tmp_path):
    import pandas as pd

    from tests.conftest import make_text_csv

    p = make_text_csv(tmp_path / "t.csv", per_class=40)
    df = pd.read_csv(p)
    original = df["label"].copy()
    flipped = list(df.index[:6])
    df.loc[flipped, "label"] = df.loc[flipped, "label"].map({"sports": "tech", "tech": "food", "food": "sports"})
    df.to_csv(p, index=False)
    rec, st, _ = train(stores, config(p, "tiny-text", "frozen", epochs=1))
    sus = pd.read_parquet(rec.dir / "eval" / "suspect_labels.parquet").set_index("row")
    found = [r for r in flipped if r in sus.index]
    assert len(found) >= 3 and len(sus) <= 12  # most flips found, few false alarms
    assert all(sus.loc[r, "suggested"] == original[r] for r in found)


def test_auto_strategy_resolves_at_start_and_replays(stores, text_csv):
    rec, st, tr = train(stores, config(text_csv, "tiny-text", "auto", epochs=2))
    assert st["status"] == "completed" and st["resolved_strategy"] == "full" and "training examples" in st["auto"]
    assert json.loads((rec.dir / "config.json").read_text())["train"]["strategy"] == "auto"
    resolved = json.loads((rec.dir / "config.resolved.json").read_text())["train"]
    assert resolved["strategy"] == "full" and resolved["blend"] is True and resolved["epochs"] == 2
    assert "network_weight" in st["blend"] and (rec.dir / "blend.json").is_file()
    rec2, st2, _ = train(stores, RunConfig.load(rec.config_file))
    assert st2["resolved_strategy"] == "full" and st2["test"] == st["test"]


def test_auto_reads_small_images_at_a_small_size(stores, tmp_path):
    from tests.conftest import make_image_folder

    rec, st, tr = train(stores, config(make_image_folder(tmp_path / "small", size=24), "tiny-cnn", "auto",
                                       epochs=1, max_steps=2))
    assert st["status"] == "completed" and tr.cfg.train.image_size == 128 and "small images (24 px)" in st["auto"]
    assert tr.data.inputs.batch(tr.data.idx("train")[:2])["pixel_values"].shape[-1] == 128


def test_a_run_killed_mid_epoch_resumes_from_that_step_and_ends_identical(stores, image_dir):
    """An in-epoch checkpoint keeps the exact place (micro-batch, the epoch's generator, global RNG, losses so
    far): the resumed run takes the same remaining steps as one that was never interrupted."""
    class Killed(BaseException):
        pass

    def kill(ctx):
        raise Killed()

    cfg = config(image_dir, "tiny-cnn", "full", epochs=3, batch_size=8, mixup_alpha=0.2,
                 checkpoint_every_min=1e-9)  # every step
    whole = Record()
    _, st_whole, _ = train(stores, cfg, [whole])
    datasets, runs = stores
    with pytest.raises(Killed):
        train(stores, cfg, [At(7, kill)])
    rec = runs.get(runs.list()[0]["id"])
    s = torch.load(rec.dir / "checkpoints" / "last" / "trainer.pt", weights_only=True)
    assert s["in_epoch"] and s["step"] == 7 and s["micro"] > 0
    again = Record()
    _, st, _ = train(stores, cfg, [again], resume_rec=rec)
    losses = {e.step: e.data["loss"] for e in whole.events if e.kind == "step"}
    resumed = {e.step: e.data["loss"] for e in again.events if e.kind == "step"}
    assert min(resumed) == 8 and resumed == {k: v for k, v in losses.items() if k >= 8}
    assert st["status"] == "completed" and st["test"] == st_whole["test"]


class Batches(Callback):
    """Keeps what each training batch looks like after the mixing callbacks."""
    order = 50

    def __init__(self):
        self.seen = []

    def on_batch(self, ctx, batch):
        self.seen.append({k: v.clone() for k, v in batch.inputs.items()})
        return batch


def test_cutmix_pastes_a_box_of_another_image_and_mixes_the_targets(stores, image_dir):
    from core.train.callbacks.mix import cutmix

    x = torch.zeros(2, 3, 8, 8)
    x[1] = 1.0
    torch.manual_seed(0)
    out, lam = cutmix(x, torch.tensor([1, 0]), 0.5)
    pasted = (out[0] == 1).all(0)
    assert 0 < pasted.sum() < 64 and lam == pytest.approx(1 - pasted.sum().item() / 64)
    rows, cols = pasted.nonzero()[:, 0], pasted.nonzero()[:, 1]  # a rectangle
    assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    plain, cut = Batches(), Batches()
    train(stores, config(image_dir, epochs=1, augment=False), [plain])
    train(stores, config(image_dir, epochs=1, augment=False, cutmix_alpha=1.0), [cut])
    assert any(not torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(plain.seen, cut.seen))


def test_text_augmentation_edits_training_texts_only(stores, text_csv):
    from core.train.textaug import augment

    assert augment("one two three four five", 0.4, 1) != "one two three four five"
    plain, edited = Batches(), Batches()
    train(stores, config(text_csv, "tiny-text", "full", epochs=1), [plain])
    rec, st, _ = train(stores, config(text_csv, "tiny-text", "full", epochs=1, text_augment=0.3), [edited])
    differ = sum(not torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(plain.seen, edited.seen))
    assert differ >= len(plain.seen) // 2
    from core.predict.predictor import Predictor

    probs = Predictor(rec.dir).predict_texts(["match goal team", "match goal team"])
    assert np.allclose(probs[0], probs[1])  # prediction is not augmented


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_a_run_stopped_mid_epoch_resumes_there_and_ends_as_if_never_stopped(stores, image_dir, grad_accum):
    """Stop inside the second epoch (the Stop button, Ctrl-C), resume: the rest of that epoch is trained, not
    skipped, and the run ends with the uninterrupted run's steps, validation scores and test predictions."""
    import pandas as pd

    cfg = config(image_dir, "tiny-cnn", "full", epochs=3, batch_size=8, grad_accum=grad_accum, blend=True)
    whole = Record()
    rec_whole, st_whole, _ = train(stores, cfg, [whole])
    steps_per_epoch = st_whole["step"] // 3
    stop_at = steps_per_epoch + steps_per_epoch // 2
    rec, st, _ = train(stores, cfg, [At(stop_at, lambda ctx: ctx.control.stop())])
    assert st["status"] == "stopped" and st["step"] == stop_at and rec.result("test") is not None  # evaluable
    s = torch.load(rec.checkpoint_state("last"), weights_only=True)
    assert s["in_epoch"] and s["next_epoch"] == 1 and s["step"] == stop_at
    again = Record()
    _, st2, _ = train(stores, cfg, [again], resume_rec=rec)
    assert st2["status"] == "completed" and st2["step"] == st_whole["step"]
    losses = {e.step: e.data["loss"] for e in whole.events if e.kind == "step"}
    resumed = {e.step: e.data["loss"] for e in again.events if e.kind == "step"}
    assert resumed == {k: v for k, v in losses.items() if k > stop_at}
    val = lambda r: [e.data["macro_f1"] for e in r.events if e.kind == "eval" and e.data["split"] == "val"]
    assert val(again) == val(whole)[1:]  # epochs 2 and 3; the stopped half-epoch was never validated
    a, b = pd.read_parquet(rec_whole.test_predictions), pd.read_parquet(rec.test_predictions)
    probs = [c for c in a.columns if c.startswith("p:")]
    np.testing.assert_array_equal(a[probs].to_numpy(), b[probs].to_numpy())
    assert st2["test"] == st_whole["test"]


def _words_csv(path, per_class, task="classification", seed=0):
    """Texts of random made-up words (no two alike), a distinctive word per class; or a numeric target."""
    import csv
    import random

    rng = random.Random(seed)
    word = lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))  # noqa: E731
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for c, marker in enumerate(["alpha", "beta", "gamma"] if task == "classification" else ["x"]):
            for i in range(per_class):
                label = marker if task == "classification" else f"{i * 1.5 + rng.random():.3f}"
                w.writerow([" ".join([marker, *(word() for _ in range(8))]), label])
    return path


@pytest.mark.parametrize("per_class,task", [(3, "classification"), (20, "regression"), (10, "regression")])
def test_small_data_completes_with_a_note_or_is_refused_up_front(stores, tmp_path, per_class, task):
    """Down to 3 examples per class (10 rows for regression) a run completes and says what so few test examples
    mean; 2 per class is refused before a run exists, with the classes named and the way out."""
    from core.errors import DataError
    from core.runs.runner import prepare_run
    from core.train.trainer import Trainer

    datasets, runs = stores
    data = _words_csv(tmp_path / "few.csv", per_class, task)
    cfg = config(data, "tiny-text", "full", epochs=1)
    cfg.data.task = task
    rec = prepare_run(cfg, datasets, runs, None)
    st = Trainer(cfg, rec, runs, datasets).run()
    assert st["status"] == "completed", st.get("reason")
    assert all(st["sizes"][k] >= 1 for k in ("train", "val", "test"))
    assert any(n.startswith("Small data: the test split holds") for n in st["notes"])
    if task == "classification":
        two = _words_csv(tmp_path / "two.csv", 2)
        before = len(list(runs.folders()))
        with pytest.raises(DataError, match="Too few examples to put in every split: 'alpha' \\(2 examples\\)"):
            prepare_run(config(two, "tiny-text", "full", epochs=1), datasets, runs, None)
        assert len(list(runs.folders())) == before  # refused up front: no failed run left behind


@pytest.mark.parametrize("budget_min, epochs_chosen, ran", [(1.0, False, ("full", 3)), (1.0, True, ("frozen", None)),
                                                            (0.6, False, ("frozen", None))])
def test_auto_cuts_epochs_to_fit_its_budget_before_it_gives_up_training(stores, text_csv, monkeypatch, budget_min,
                                                                        epochs_chosen, ran):
    """A plan that trains but would overrun is cut to the epochs that fit (never below two) rather than dropped
    for one that does not train; epochs the person chose are kept. Speeds are set: 10 s an epoch, 15 s overhead."""
    import math

    import core.train.auto as auto

    def speeds(spec, t, strategy, sample, device, data):
        n = int((data.split == "train").sum())
        return 0.0, 0.0 if strategy == "frozen" else 10.0 / (1.1 * math.ceil(n / t.batch_size) * t.batch_size)

    monkeypatch.setattr(auto, "speeds", speeds)
    monkeypatch.setattr(auto, "spent_since", lambda started: 0.0)  # a loaded machine's data loading changes nothing here
    cfg = config(text_csv, "tiny-text", "auto", budget_minutes=budget_min, **({"epochs": 6} if epochs_chosen else {}))
    cfg.chosen = ["backbone", "budget_minutes"] + (["epochs"] if epochs_chosen else [])
    rec, st, tr = train(stores, cfg)
    assert st["status"] == "completed" and (st["resolved_strategy"], st["plan"]["planned"]["epochs"]) == ran
    tried = st["plan"]["considered"]
    assert tried[0] == {"backbone": "tiny-text", "strategy": "full", "epochs": 6, "estimate_s": 75.0}
    if ran[0] == "full":
        assert "3 of the 6 epochs this data calls for fit the time budget" in st["auto"]
        assert tried[1]["epochs"] == 3 and tried[1]["estimate_s"] <= 0.85 * 60
        # the tiny model runs far faster than the speeds set here: after its first epoch the budget re-fits the
        # epochs to what the data calls for, and every record says what ran
        assert st["replanned"]["planned"] == 3 and st["replanned"]["epochs"] == tr.cfg.train.epochs == 6
        assert rec.resolved_config.train.epochs == 6 and st["epoch"] == 6 and st["total_steps"] == st["step"]
        assert any("6 epochs fit the 1 min budget, not the 3 planned" in e["data"]["message"]
                   for e in rec.events() if e["kind"] == "warning")
        from core.report.card import model_card
        from core.report.html import build_report

        said = r"After epoch 1, at \d+ s an epoch, the epochs were re-fitted to the 1 min budget: 6, up from the 3 planned\."
        assert re.search(said, build_report(rec, explain=False))
        assert re.search(f"^- {said}$", model_card(rec, stores[0], "onnx", {}), re.M)
    else:
        assert "epochs this data calls for" not in st["auto"]


def test_a_stop_while_planning_ends_the_run_there_and_resume_starts_it_again(stores, text_csv):
    """Stop during contrastive tuning (minutes on real data, before the loop's first step): the run stops at the
    next pair batch, says where, and a resume runs it from the beginning to the end."""
    ctl = Control()

    class StopDuringTuning(Callback):
        def on_event(self, ctx, ev):
            if ev.kind == "progress" and ev.data.get("message", "").startswith("Contrastive tuning: step 2 "):
                ctl.stop()

    log = Record()
    cfg = config(text_csv, "tiny-text", "contrastive", strategy_args={"contrastive": {"pairs_per_example": 4}})
    rec, st, _ = train(stores, cfg, callbacks=[StopDuringTuning(), log], control=ctl)
    assert st["status"] == "stopped" and "contrastive" not in st
    assert "before any training step, while preparing, at \"Contrastive tuning: step 2 of" in st["reason"]
    steps = [e.data["message"] for e in log.events if e.kind == "progress" and "Contrastive tuning" in e.data["message"]]
    assert len(steps) == 2 and log.kinds()[-1] == "run_end"
    _, again, _ = train(stores, cfg, resume_rec=rec)
    assert again["status"] == "completed" and again["contrastive"]["steps"] > 2


def test_a_run_stopped_before_its_first_checkpoint_resumes_with_its_whole_plan(stores, text_csv):
    """Stopped while its head was being fitted (LP-FT), a resumed run has no checkpoint to read its head from:
    it fits it again rather than fine-tuning from a random head."""
    ctl = Control()

    class StopAtTheHead(Callback):
        def on_event(self, ctx, ev):
            if ev.kind == "progress" and ev.data.get("message", "").startswith("Fitting the head"):
                ctl.stop()

    cfg = config(text_csv, "tiny-text", "full", epochs=1, head_first=True)
    rec, st, _ = train(stores, cfg, callbacks=[StopAtTheHead()], control=ctl)
    assert st["status"] == "stopped" and "Fitting the head" in st["reason"] and not st.get("head_first")
    _, again, _ = train(stores, cfg, resume_rec=rec)
    assert again["status"] == "completed" and again["head_first"] is True


def test_an_explanation_that_fails_costs_the_explanation_not_the_run(stores, text_csv, monkeypatch):
    """Captum asserts on a layer its hook never saw: the run keeps its result; the report's mistakes are made
    when it is opened."""
    import core.train.callbacks.evaluation as evaluation
    from core.fsutil import read_json

    def broken(*a, **k):
        raise AssertionError("Forward hook did not obtain any outputs for given layer")

    monkeypatch.setattr(evaluation, "explain", broken)
    rec, st, _ = train(stores, config(text_csv, "tiny-text", "full", epochs=1))
    assert st["status"] == "completed" and st["test"]["macro_f1"] >= 0
    assert read_json(rec.explanations_file) == {"rows": [], "explained": []}


def test_a_cpu_run_tunes_the_host_allocator_once(stores, image_dir, monkeypatch):
    import sys

    import core.train.allocator as A

    monkeypatch.setattr(A, "_tuned", None)
    calls = []
    real = A.tune_allocator
    monkeypatch.setattr("core.train.setup.tune_allocator", lambda: calls.append(1) or real())
    _, st, _ = train(stores, config(image_dir, epochs=1))
    assert st["status"] == "completed" and calls
    # glibc on Linux takes the settings; elsewhere the run goes on with the platform's allocator
    assert A.tune_allocator() is sys.platform.startswith("linux")
    assert A.tune_allocator() is A._tuned  # set once, then only read


@pytest.mark.parametrize("hflip", [None, True])
def test_auto_counts_the_mirror_check_it_will_run_in_its_estimate(stores, image_dir, monkeypatch, hflip):
    """The forward passes over mirrored images that decide flips are in the plan's estimate exactly when the run
    makes them. Speeds are set: 10 ms a forward pass, no step time."""
    import core.train.auto as auto

    monkeypatch.setattr(auto, "speeds", lambda spec, t, strategy, sample, device, data: (0.01, 0.0))
    cfg = config(image_dir, "tiny-cnn", "auto", budget_minutes=10, epochs=1, hflip=hflip)
    cfg.chosen = ["backbone", "budget_minutes", "epochs"] + (["hflip"] if hflip is not None else [])
    rec, st, tr = train(stores, cfg)
    assert st["status"] == "completed" and st["resolved_strategy"] == "full"
    rows = int((tr.data.split != "test").sum())
    full = st["plan"]["considered"][0]
    mirrored = rows if hflip is None else 0
    assert ("flip_check" in st) is (hflip is None)
    if hflip is None:
        assert st["flip_check"]["n"] == mirrored
    n_val = int((tr.data.split == "val").sum())
    # every row's features, the mirrored rows, one epoch's validation (no step time), then the fixed tail
    expected = ((len(tr.data.split) + mirrored) * 0.01 + n_val * 0.01) * 1.1 + 15.0
    assert full["estimate_s"] == pytest.approx(expected, abs=0.06)


def _budget_ctx(epochs: int, epoch: int = 0, steps_per_epoch: int = 10):
    from types import SimpleNamespace

    events = []
    return SimpleNamespace(control=Control(), cfg=SimpleNamespace(epochs=epochs, max_steps=None),
                           state=SimpleNamespace(step=5, epoch=epoch, total_steps=steps_per_epoch * epochs,
                                                 results={}),
                           emit=lambda kind, **d: events.append((kind, d)), main=False, folder=None, events=events)


def test_the_budget_keeps_back_the_time_to_validate_test_and_save():
    """The run stops when what is left of the budget is what its finish takes: at first a fixed allowance, then
    the last epoch's validation as measured, scaled for the test split (here twice the validation's size)."""
    import time

    from core.train.callbacks.guards import Budget

    b = Budget(100.0, time.time() - 80.0, n_val=10, n_test=20)
    ctx = _budget_ctx(epochs=1)
    b.on_step_end(ctx, 0.0)  # 80 s gone, 15 s kept back: goes on
    assert ctx.control.status != "completed"
    b.last_step = time.time() - 2.0  # the epoch's validation took 2 s
    b.on_epoch_end(ctx)
    assert b.reserve == pytest.approx(2.0 * 3 + Budget.FINISH_S, abs=0.5)
    b.on_step_end(ctx, 0.0)  # 80 s gone + 21 s kept back >= 100
    assert ctx.control.status == "completed" and "keeping 21 s to validate, test and save" in ctx.control.reason


@pytest.mark.parametrize("epoch_s, room, refit", [(10.0, 8, 6), (10.0, None, 4), (30.0, 8, 2), (30.0, None, 2),
                                                  (60.0, 8, 1)])
def test_the_budget_refits_the_epochs_to_the_speed_measured(epoch_s, room, refit):
    """After an epoch, the epochs that fit the time left at the measured speed: fewer when slower than planned,
    more (up to the epochs the data calls for, `room`) only where 'auto' cut them. 100 s budget, 30 s gone,
    17 s kept back for the finish (1 s validation, the test as large): 53 s left after the first epoch."""
    import time

    from core.train.callbacks.guards import Budget

    now = time.time()
    b = Budget(100.0, now - 30.0, n_val=10, n_test=10, room=room)
    ctx = _budget_ctx(epochs=4)
    b.epoch_started, b.last_step = now - epoch_s, now - 1.0
    b.on_epoch_end(ctx)
    assert ctx.cfg.epochs == refit and ctx.state.total_steps == 10 * refit
    if refit == 4:
        assert not ctx.events and "replanned" not in ctx.state.results
    else:
        assert ctx.state.results["replanned"] == {"after_epoch": 1, "planned": 4, "epochs": refit,
                                                  "epoch_s": pytest.approx(epoch_s, abs=0.5)}
        noun = "epochs" if refit > 1 else "epoch"
        assert f"{refit} {noun} fit the 2 min budget, not the 4 planned" in ctx.events[0][1]["message"]



@pytest.mark.parametrize("strategy, lr", [("full", None), ("full", 0.002), ("frozen", None)])
def test_the_resolved_config_records_the_rate_the_optimiser_got(stores, image_dir, strategy, lr):
    """A default rate is written as the number the run used (a solved head takes none); a chosen one as chosen."""
    from core.strategies import get_strategy

    rec, st, tr = train(stores, config(image_dir, "tiny-cnn", strategy, epochs=1, lr=lr))
    ran = rec.resolved_config.train
    assert st["status"] == "completed" and rec.config.train.lr == lr
    if strategy == "frozen":
        assert ran.lr is None
    else:
        used = [e["data"]["lr"] for e in rec.events() if e["kind"] == "step"][0]  # warm-up starts below it
        assert ran.lr == (lr or get_strategy("full").default_lr["image"]) and used <= ran.lr


def test_a_refitted_horizon_keeps_the_warm_up_done_and_anneals_to_the_new_end():
    from types import SimpleNamespace

    import torch

    from core.train.callbacks.schedule import Schedule
    from core.train.loop import schedule_fn

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ctx = SimpleNamespace(state=SimpleNamespace(step=0, total_steps=40), parts=SimpleNamespace(optimizer=opt))
    sched = Schedule("cosine", 0.1)
    sched.on_fit_start(ctx)  # 4 warm-up steps of 40
    ctx.state.step, ctx.state.total_steps = 10, 60  # after an epoch of 10 steps the budget gave it 6 epochs, not 4
    sched.on_epoch_start(ctx)
    assert opt.param_groups[0]["lr"] == pytest.approx(schedule_fn("cosine", 60, 0.1, warm=4)(10))
    assert schedule_fn("cosine", 60, 0.1, warm=4)(59) < 0.01 < schedule_fn("cosine", 40, 0.1)(10)


def test_a_plan_that_fits_no_budget_says_it_will_overrun():
    from core.train.auto.choose import Choice

    fits = Choice("all-MiniLM-L6-v2", "frozen", 100.0, 120.0, [], None)
    over = Choice("all-MiniLM-L6-v2", "frozen", 156.0, 120.0, [], None)
    assert fits.line() == "frozen all-MiniLM-L6-v2, estimated 1.7 min of the 2.0 min budget"
    assert over.line() == ("frozen all-MiniLM-L6-v2, the quickest plan considered, estimated 2.6 min: over the 2.0 min "
                           "budget")
    # the time before the plan is the run's too: said once it is a noticeable share of the budget
    assert Choice("m", "frozen", 100.0, 120.0, [], None, spent_s=3.0).line() == fits.line().replace("all-MiniLM-L6-v2", "m")
    assert Choice("m", "frozen", 60.0, 120.0, [], None, spent_s=30.0).line() == (
        "frozen m, estimated 1.0 min of the 1.5 min left of the 2.0 min budget after 0.5 min loading the data and "
        "timing the plans")
    assert Choice("m", "frozen", 100.0, 120.0, [], None, spent_s=30.0).line() == (
        "frozen m, the quickest plan considered, estimated 1.7 min after 0.5 min loading the data and timing the "
        "plans: over the 2.0 min budget")


def test_auto_plans_in_what_the_budget_has_left_and_stops_timing_when_nothing_more_could_fit(stores, text_csv,
                                                                                             monkeypatch):
    """The budget is the whole run's: the time spent loading the data and timing candidates is taken from it,
    a candidate is not timed once timing it would leave no room for any plan, and a frozen plan reuses the forward
    speed measured for its backbone. The clock is set: 30 s before planning, 40 s per timing."""
    import core.train.auto as auto

    clock, timed = [30.0], []

    def speeds(spec, t, strategy, sample, device, data):
        clock[0] += 40.0
        timed.append(strategy)
        n = int((data.split == "train").sum())
        return 0.0, 0.0 if strategy == "frozen" else 10.0 / (1.1 * -(-n // t.batch_size) * t.batch_size)

    monkeypatch.setattr(auto, "speeds", speeds)
    monkeypatch.setattr(auto, "spent_since", lambda started: clock[0])
    monkeypatch.setattr(auto, "candidates", lambda *a, **k: [("tiny-text", "full"), ("tiny-text", "lora"),
                                                             ("tiny-text", "frozen")])
    cfg = config(text_csv, "tiny-text", "auto", budget_minutes=2.0)
    cfg.chosen = ["backbone", "budget_minutes"]
    rec, st, _ = train(stores, cfg)
    # 50 s left after timing full: 6 epochs (75 s) do not fit 85 % of it, 2 do (35 s)
    assert st["status"] == "completed" and st["plan"]["planned"] == {"strategy": "full", "backbone": "tiny-text",
                                                                      "epochs": 2}
    assert st["plan"]["spent_s"] == 70.0 and timed == ["full"]
    assert st["auto"].startswith("Plan: full tiny-text, estimated 0.6 min of the 0.8 min left of the 2.0 min budget "
                                 "after 1.2 min loading the data and timing the plans.")

    clock[0], timed[:] = 30.0, []
    cfg.train.budget_minutes = 1.5  # 20 s left after timing full: no plan that trains fits, lora is not timed
    rec, st, _ = train(stores, cfg)
    assert st["status"] == "completed" and st["resolved_strategy"] == "frozen" and timed == ["full"]
    assert {"backbone": "tiny-text", "strategy": "lora", "skipped": "no budget left to time it"} in st["plan"]["considered"]
    # its cross-fitting alone is more than is left: it runs, and says it will overrun
    assert st["plan"]["spent_s"] == 70.0 and st["auto"].startswith(
        "Plan: frozen tiny-text, the quickest plan considered, estimated 1.0 min after 1.2 min loading the data and "
        "timing the plans: over the 1.5 min budget.")
