"""Each strategy trains exactly the weights it should (peft/timm-style table of cases)."""
import re

import numpy as np
import pandas as pd
import pytest
import torch

from core.backbones import get_backbone
from core.config import TrainConfig
from core.strategies import count_params, get_strategy, strategy_names
from core.train.events import Callback

CASES = [s for s in strategy_names() if not get_strategy(s).planned]  # every strategy that trains ("auto" plans)


def one_step(backbone: str, strategy: str, **kw):
    spec = get_backbone(backbone)
    torch.manual_seed(0)
    model = spec.build(3)
    args = {k: v for k, v in kw.items() if k in {f.name for f in __import__("dataclasses").fields(get_strategy(strategy).settings)}}
    cfg = TrainConfig(backbone=backbone, strategy=strategy, lr=1e-2, weight_decay=0.0,
                      strategy_args={strategy: args} if args else {})
    groups = get_strategy(strategy).prepare(model, cfg, spec.modality)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(groups)
    model.train()
    if spec.modality == "image":
        batch = {"pixel_values": torch.randn(4, 3, 32, 32)}
    else:
        batch = {"input_ids": torch.randint(1000, 2000, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long)}
    loss = torch.nn.functional.cross_entropy(model(**batch), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    return model, groups, changed


@pytest.mark.parametrize("backbone", ["tiny-cnn", "tiny-text"])
@pytest.mark.parametrize("strategy", CASES)
def test_only_intended_parameters_change(backbone, strategy):
    s = get_strategy(strategy)
    if strategy in ("adalora", "prompt") and backbone == "tiny-cnn":
        from core.errors import ModelError

        with pytest.raises(ModelError, match="AdaLoRA adapts Linear layers|needs a text transformer"):
            one_step(backbone, strategy)
        return
    model, groups, changed = one_step(backbone, strategy, unfreeze_last=1)
    head = {n for n in changed if n.startswith("head.")}
    enc = changed - head
    assert head, "the head always trains"
    trainable, total = count_params(model)
    if s.fits_head:  # the loop trains the head only (contrastive tuning moves the encoder before it)
        assert enc == set() and trainable < total
    elif s.adapter:
        assert enc and all(s.marker in n for n in enc), enc
    elif strategy == "prompt":
        assert enc == {"encoder.prompt.embedding.weight"} and trainable < total // 50
    elif strategy == "partial":
        top_ids = {id(p) for p in model.layer_groups()[-1].parameters()}
        top_names = {f"encoder.{n}" for n, p in model.encoder.named_parameters() if id(p) in top_ids}
        assert enc and enc <= top_names
    else:
        assert len(enc) >= len([n for n, _ in model.encoder.named_parameters()]) * 0.5
        assert trainable == total


def test_differential_rates_decay_towards_the_input():
    _, groups, _ = one_step("tiny-text", "differential", lr_decay=0.5, head_lr_mult=10)
    rates = {g["name"].split("/")[0]: g["lr"] for g in groups}
    assert rates["head"] == pytest.approx(0.1)
    assert rates["depth0"] == pytest.approx(1e-2)
    assert rates["depth1"] == pytest.approx(5e-3)
    assert rates["depth2"] == pytest.approx(2.5e-3)


def test_no_weight_decay_on_biases_and_norms():
    _, groups, _ = one_step("tiny-text", "full")
    for g in groups:
        if g["name"].endswith("no_decay"):
            assert g["weight_decay"] == 0 and all(p.ndim < 2 for p in g["params"])


def test_gradual_unfreezing_adds_groups():
    spec = get_backbone("tiny-cnn")
    model = spec.build(3)
    cfg = TrainConfig(backbone="tiny-cnn", strategy="partial",
                      strategy_args={"partial": {"unfreeze_last": 0, "unfreeze_every": 1}})
    s = get_strategy("partial")
    opt = torch.optim.AdamW(s.prepare(model, cfg, "image"))
    t0, _ = count_params(model)
    assert s.on_epoch_start(model, cfg, 1, opt, "image")
    t1, _ = count_params(model)
    assert t1 > t0 and sum(len(g["params"]) for g in opt.param_groups) > 2


def test_unknown_strategy_lists_choices():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="auto, frozen, lora, partial, differential, full"):
        TrainConfig(strategy="magic")


@pytest.mark.parametrize("n,modality,epochs", [(300, "image", 12), (300, "text", 6), (3000, "text", 4),
                                               (3000, "image", 8), (50_000, "text", 3)])
def test_auto_resolves_from_data_size(n, modality, epochs):
    from core.train.auto import resolve_auto

    cfg, why = resolve_auto(TrainConfig(strategy="auto"), n, modality, [n // 2, n // 2], chosen=set())
    assert (cfg.strategy, cfg.epochs, cfg.blend) == ("full", epochs, True)
    assert why.endswith(".") and (f"{n:,}" in why or str(n) in why) and "blends" in why
    assert cfg.label_smoothing == (0.1 if modality == "image" else 0.0)


def test_auto_keeps_what_the_user_set_and_weights_imbalance():
    from core.train.auto import resolve_auto

    cfg, why = resolve_auto(TrainConfig(strategy="auto", epochs=9), 500, "text", [450, 50], chosen={"epochs"})
    assert cfg.epochs == 9 and "(9 epochs" in why and cfg.class_weighting == "balanced" and "imbalanced" in why
    kept, _ = resolve_auto(TrainConfig(strategy="auto", label_smoothing=0.05), 500, "image", [250, 250],
                           chosen={"label_smoothing"})
    assert kept.label_smoothing == 0.05
    cfg2, _ = resolve_auto(TrainConfig(strategy="auto"), 500, "text", [250, 250])
    assert cfg2.epochs == 6 and cfg2.class_weighting == "none"


def test_auto_trains_lora_on_large_backbones_and_keeps_explicit_patience():
    from core.train.auto import resolve_auto

    cfg, why = resolve_auto(TrainConfig(strategy="auto"), 800, "text", [400, 400], params_m=355.0)
    assert cfg.strategy == "lora" and "large backbone (355M weights)" in why and "LoRA" in why
    small, _ = resolve_auto(TrainConfig(strategy="auto"), 800, "text", [400, 400], params_m=22.7)
    assert small.strategy == "full"
    off, _ = resolve_auto(TrainConfig(strategy="auto", early_stopping_patience=0), 800, "text", [400, 400],
                          chosen={"early_stopping_patience"})
    assert off.early_stopping_patience == 0  # 0 means off, and the user asked for it


def test_a_hugging_face_folder_reports_its_size():
    from core.backbones import get_backbone, minilm_folder

    if minilm_folder() is None:
        pytest.skip("MiniLM weights package not installed")
    spec = get_backbone(str(minilm_folder()))
    assert spec.modality == "text" and 22 < spec.params_m < 24  # all-MiniLM-L6-v2: 22.7M weights


def test_train_page_preview_follows_the_backbone_size(monkeypatch):
    from dataclasses import replace
    from types import SimpleNamespace

    from core import backbones as B
    from studio.forms import _auto

    big = replace(B.get_backbone("tiny-text"), name="big-text-test", params_m=400.0, hidden=True)
    monkeypatch.setitem(B._REGISTRY, big.name, big)
    ds = SimpleNamespace(modality="text", manifest={"rows": 1000, "classes": {"a": 500, "b": 500}})
    cfg, why = _auto(ds, 800, "big-text-test")
    assert cfg.strategy == "lora" and "400M weights" in why
    assert _auto(ds, 800, "tiny-text")[0].strategy == "full"


def test_auto_never_overrides_a_setting_the_user_chose_even_at_its_default():
    """Explicit epochs=5, label_smoothing=0 and class_weighting=none equal the defaults, and were overridden
    to 12, 0.1 and balanced; now a chosen setting is kept and the reason says so."""
    from core.train.auto import resolve_auto

    cfg = TrainConfig(strategy="auto", epochs=5, label_smoothing=0.0, class_weighting="none")
    out, why = resolve_auto(cfg, 300, "image", [270, 30], chosen={"epochs", "label_smoothing", "class_weighting"})
    assert (out.epochs, out.label_smoothing, out.class_weighting) == (5, 0.0, "none")
    assert "kept as you set them: epochs 5, class weighting none, label smoothing 0.0" in why
    free, _ = resolve_auto(cfg, 300, "image", [270, 30], chosen=set())
    assert (free.epochs, free.label_smoothing, free.class_weighting) == (12, 0.1, "balanced")


def test_the_cli_records_what_was_given_and_auto_keeps_it(tmp_path):
    from core.cli import build_parser
    from core.cli.args import config_from_args

    args = build_parser().parse_args(["train", "--data", "x.csv", "--strategy", "auto", "--epochs", "5",
                                      "--set", "label_smoothing=0", "class_weighting=none"])
    cfg = config_from_args(args)
    assert cfg.user_set() >= {"epochs", "label_smoothing", "class_weighting", "strategy"}
    assert "max_length" not in cfg.user_set()


def test_a_registered_strategy_reaches_the_config_the_cli_and_the_train_page(home):
    """Adding a strategy is one registered entry: validation, CLI choices and the Train form read the registry."""
    from dataclasses import dataclass

    from streamlit.testing.v1 import AppTest

    from core.cli import build_parser
    from core.settings import setting
    from core.strategies import REGISTRY, Strategy, register_strategy
    from core.strategies.builtin import Frozen

    @dataclass
    class ToySettings:
        temperature: float = setting(1.5, low=0.1, high=9, help="How toy it is.")

    class Toy(Frozen):
        pass

    toy = Toy("toy", "Toy strategy", "Trains the head only, for this test.", settings=ToySettings,
              frozen_backbone=True, default_lr={"image": 1e-3, "text": 1e-3})
    register_strategy(toy)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_strategy(Strategy("toy", "again", "again"))
        assert TrainConfig(strategy="toy", strategy_args={"toy": {"temperature": 2.0}}).settings_for().temperature == 2.0
        from core.config import ConfigError

        with pytest.raises(ConfigError, match="toy.temperature must be between 0.1 and 9"):
            TrainConfig(strategy="toy", strategy_args={"toy": {"temperature": 50.0}})
        help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
        assert "toy" in help_text and "--toy-temperature" in help_text
        args = build_parser().parse_args(["train", "--data", "x.csv", "--strategy", "toy", "--toy-temperature", "3"])
        from core.cli.args import config_from_args

        assert config_from_args(args).train.settings_for().temperature == 3.0
        from core.data.datasets import DatasetStore
        from tests.conftest import make_text_csv

        ds = DatasetStore(home / "datasets").ingest(make_text_csv(home.parent / "t.csv", per_class=10)).dataset
        from studio.services import _services

        _services.clear()
        at = AppTest.from_file(str(__import__("pathlib").Path(__file__).resolve().parents[1] / "app.py"),
                               default_timeout=60)
        at.session_state["dataset_id"] = ds.id
        at.run()
        at.switch_page("pages/train.py").run()
        radio = next(r for r in at.radio if r.key == "strategy")
        assert "toy" in radio.options or "Toy strategy" in " ".join(map(str, radio.options))
        radio.set_value("toy").run()
        assert not at.exception
        assert any(n.label == "Temperature" for n in at.number_input)
    finally:
        REGISTRY.unregister("toy")


@pytest.mark.parametrize("strategy", ["loha", "lokr", "ia3", "adalora"])
def test_each_adapter_trains_merges_on_export_and_predicts_the_same(stores, text_csv, tmp_path, strategy):
    from core.predict.export import export_folder
    from core.predict.predictor import Predictor
    from tests.helpers import config, train

    rec, st, _ = train(stores, config(text_csv, "tiny-text", strategy, epochs=2, lr=5e-3))
    assert st["status"] == "completed" and st["trainable_params"] < st["total_params"] // 20
    texts = ["match goal team score", "cook taste dinner bake", "software chip cloud code"]
    before = Predictor(rec.dir).predict_texts(texts)
    out, _ = export_folder(rec.dir, tmp_path / "exp")
    merged = Predictor(out)
    assert not any(get_strategy(strategy).marker in n for n, _ in merged.model.named_parameters())
    np.testing.assert_allclose(merged.predict_texts(texts), before, atol=1e-4)


def test_adalora_spends_its_rank_budget_while_it_trains(stores, text_csv):
    """The rank allocator runs (a silently ignored AdaLoRA would keep every singular value)."""

    from tests.helpers import config, train

    rec, st, tr = train(stores, config(text_csv, "tiny-text", "adalora", epochs=4, lr=5e-3,
                                       strategy_args={"adalora": {"init_r": 6, "target_r": 2}}))
    assert st["status"] == "completed"
    pattern = tr.plan.model.peft_config.rank_pattern  # which singular values each adapter keeps
    kept = sum(sum(bool(v) for v in mask) for mask in pattern.values())
    assert pattern and 0 < kept < 6 * len(pattern)  # some ranks cut, not all
    from safetensors.torch import load_file

    last = load_file(rec.dir / "checkpoints" / "last" / "model.safetensors")
    assert any((v == 0).any() for k, v in last.items() if "lora_E" in k)  # and the cut ones are zero


def test_prompt_tuning_trains_its_virtual_tokens_exports_and_predicts_the_same(stores, text_csv, tmp_path):
    from core.predict.export import export, load_exported
    from core.predict.predictor import Predictor
    from tests.helpers import config, train

    rec, st, _ = train(stores, config(text_csv, "tiny-text", "prompt", epochs=2,
                                      strategy_args={"prompt": {"virtual_tokens": 5}}))
    assert st["status"] == "completed", st.get("reason")
    model = Predictor(rec.dir).model
    assert model.encoder.prompt.embedding.weight.shape[0] == 5
    texts = ["match goal team score", "cook taste dinner bake"]
    before = Predictor(rec.dir).predict_texts(texts)
    out = tmp_path / "exp"
    rep = export(rec.dir, out, "onnx", datasets=stores[0])  # the prompt travels with the export and ONNX
    assert rep["parity"]["max_abs_diff"] < 1e-4
    np.testing.assert_allclose(load_exported(out).predict(texts)[0], before, atol=1e-5)
    bare = Predictor(rec.dir)
    bare.model.encoder.prompt = None  # without its virtual tokens the same model predicts differently
    assert not np.allclose(bare.predict_texts(texts), before, atol=1e-4)


@pytest.mark.parametrize("strategy,cut", [("frozen", 512), ("prompt", 512 - 20)])
def test_max_length_beyond_the_backbone_is_cut_and_said(stores, tmp_path, strategy, cut):
    """Max tokens above the backbone's 512 positions (and prompt tuning's 20 virtual tokens on top) used to
    crash inside the model; the run now reads what fits, its resolved config says so, and a note says why."""
    import random

    from core.config import RunConfig
    from tests.helpers import config, train

    rng = random.Random(0)
    rows = ["text,label"] + [" ".join(["alpha" if i % 2 else "omega", *("".join(rng.choice("abcdefgh") for _ in
                                                                         range(5)) for _ in range(700))]) +
                             f",{'ab'[i % 2]}" for i in range(24)]
    data = tmp_path / "long.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    rec, st, _ = train(stores, config(data, "tiny-text", strategy, epochs=1, max_length=1024))
    assert st["status"] == "completed", st.get("reason")
    assert RunConfig.load(rec.resolved_file).train.max_length == cut
    assert any("Max tokens 1024 is more than tiny-text reads (512 positions" in n and f"cut at {cut} tokens" in n
               for n in st["notes"])


class HeadAtStart(Callback):
    def on_fit_start(self, ctx):
        self.weight = ctx.parts.model.head[-1].weight.detach().clone()


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_head_first_starts_fine_tuning_from_the_head_the_linear_probe_solves(stores, text_csv, strategy):
    from core.predict.predictor import Predictor
    from tests.helpers import config, train

    probe, st, _ = train(stores, config(text_csv, "tiny-text", "frozen"))
    solved = Predictor(probe.dir).model.head[-1].weight
    first, plain = HeadAtStart(), HeadAtStart()
    rec, st, _ = train(stores, config(text_csv, "tiny-text", strategy, head_first=True), callbacks=[first])
    assert st["status"] == "completed" and st["head_first"] is True and any("LP-FT" in n for n in st["notes"])
    # the probe's direction (softened when validation shows it overconfident)
    torch.testing.assert_close(first.weight / first.weight.norm(), solved / solved.norm())
    _, st, _ = train(stores, config(text_csv, "tiny-text", strategy), callbacks=[plain])
    assert "head_first" not in st and not torch.allclose(plain.weight, solved, atol=1e-3)


class NormsAtStart(Callback):
    def on_fit_start(self, ctx):
        model = ctx.parts.model
        self.stats = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        self.conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).weight.detach().clone()


def test_lp_ft_keeps_the_norms_its_head_was_solved_under_and_takes_smaller_steps(stores, image_dir):
    """LP-FT's head was solved on features normalised by BatchNorm's running statistics: fine-tuning a CNN whose
    norms train keeps them (the layers' weights still train) and starts at a third of the strategy's rate; plain
    fine-tuning does neither. The rate recorded is the rate the optimiser got."""
    from core.config import RunConfig
    from core.predict.predictor import Predictor
    from core.strategies import get_strategy
    from core.strategies.base import LP_FT_LR
    from tests.helpers import config, train

    def norms(model):
        return [m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    ran = {}
    for head_first in (True, False):
        seen = NormsAtStart()
        rec, st, _ = train(stores, config(image_dir, "tiny-cnn", "full", epochs=2, head_first=head_first),
                           callbacks=[seen])
        assert st["status"] == "completed" and bool(st.get("head_first")) is head_first
        said = any("keep the running statistics the head was fitted under, and the rate is a third" in n
                   for n in st["notes"])
        assert said is head_first  # the run's notes say what ran
        model = Predictor(rec.dir).model
        kept = [torch.equal(a, b) for a, b in zip(seen.stats, norms(model))]
        assert seen.stats and all(kept) is head_first and any(kept) is head_first
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).weight
        assert not torch.allclose(conv, seen.conv)  # the backbone trained either way
        ran[head_first] = RunConfig.load(rec.resolved_file).train.lr
    full = get_strategy("full")
    assert ran[False] == full.default_lr["image"] and ran[True] == pytest.approx(ran[False] * LP_FT_LR)
    # where LP-FT does not apply (no backbone training, a head already trained), or its norms are not the
    # strategy's to train (an adapter's are frozen; a text encoder has none), the strategy's own rate stands
    for backbone, name, extra, applies in (("tiny-cnn", "frozen", {}, False), ("tiny-cnn", "full", {"init_from": "run-1"}, False),
                                           ("tiny-cnn", "lora", {}, True), ("tiny-text", "full", {}, True)):
        t = config(image_dir, backbone, name, head_first=True, **extra).train
        s = get_strategy(name)
        assert s.starts_from_solved_head(t) is applies and not s.fixes_norms(t)
        assert s.lr(t, get_backbone(backbone).modality) == s.lr(config(image_dir, backbone, name).train,
                                                                   get_backbone(backbone).modality)


def test_contrastive_tuning_moves_the_encoder_then_solves_the_head_and_predicts_what_it_tested(stores, text_csv):
    from core.predict.predictor import Predictor
    from core.train.contrastive import draw_pairs
    from tests.helpers import config, train

    y = np.array([0] * 5 + [1] * 3 + [2])
    left, right, same = draw_pairs(y, 4, np.random.default_rng(0))
    assert len(left) == 9 * 4 - 2  # the lone class-2 example has no partner of its own class
    assert all((y[a] == y[b]) == bool(s) for a, b, s in zip(left, right, same)) and not any(left == right)
    rec, st, tr = train(stores, config(text_csv, "tiny-text", "contrastive", lr=1e-3,
                                       strategy_args={"contrastive": {"pairs_per_example": 4}}))
    assert st["status"] == "completed" and st["contrastive"]["pairs"] == len(tr.data.idx("train")) * 4
    assert st["contrastive"]["loss_last"] < st["contrastive"]["loss_first"]
    assert st["trainable_params"] == st["total_params"]  # the encoder was stepped, before the loop solved the head
    pristine = get_backbone("tiny-text").build(3)
    tuned = Predictor(rec.dir).model
    assert not torch.equal(next(pristine.encoder.parameters()), next(tuned.encoder.parameters()))
    tested = pd.read_parquet(rec.dir / "eval" / "test_predictions.parquet")
    p = Predictor(rec.dir)
    np.testing.assert_allclose(p.predict_texts(tested["input"].tolist()),
                               tested[[f"p:{c}" for c in p.classes]].to_numpy(), atol=1e-4)


def _train_page(home, source):
    """The Train page (AppTest) with this data loaded."""
    from streamlit.testing.v1 import AppTest

    from core.data.datasets import DatasetStore
    from studio.services import _services

    ds = DatasetStore(home / "datasets").ingest(str(source)).dataset
    _services.clear()
    at = AppTest.from_file(str(__import__("pathlib").Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.session_state["dataset_id"] = ds.id
    at.run()
    at.switch_page("pages/train.py").run()
    return at


def test_the_train_page_says_what_contrastive_tuning_will_do(home):
    """Its encoder is tuned (a learning rate, pairs), unlike frozen's: the page asks and counts what it will run."""
    from tests.conftest import make_text_csv

    at = _train_page(home, make_text_csv(home.parent / "t.csv", per_class=10))
    next(r for r in at.radio if r.key == "strategy").set_value("contrastive").run()
    assert not at.exception
    text = " ".join(str(e.value) for kind in (at.markdown, at.caption, at.info) for e in kind)
    assert "tuned on pairs of examples" in text and "solved exactly on the pretrained" not in text
    assert {"Learning rate", "Pairs per example"} <= {n.label for n in at.number_input}
    assert "Fit the head before fine-tuning" not in {c.label for c in at.checkbox}
    assert re.search(r"→ [\d,]+ pairs, [\d,]+ optimiser steps of the encoder", text), text


def test_auto_says_a_solved_heads_choices_are_cross_fitted_only_where_they_are():
    from core.train.auto.settings import resolve_auto

    t = TrainConfig(strategy="auto", blend=True)
    _, yes = resolve_auto(t, 300, "text", [150, 150], strategy="frozen", crossfit=True, chosen={"blend"})
    _, no = resolve_auto(t, 300, "text", [150, 150], strategy="frozen", crossfit=False, chosen={"blend"})
    _, trains = resolve_auto(t, 300, "text", [150, 150], strategy="full", crossfit=True, chosen={"blend"})
    assert "regularisation chosen on out-of-fold predictions" in yes and "whichever those predictions rank higher" in yes
    assert "out-of-fold" not in no and "whichever validation ranks higher" in no
    assert "out-of-fold" not in trains and "whichever validation ranks higher" in trains  # a trained network: validation


def test_a_backbones_lr_scale_sets_the_default_rate_everywhere_it_is_read():
    """EfficientNet-Lite0's weights fine-tune at 3x the image default; a rate the person set is kept."""
    full = get_strategy("full")
    mobilenet = full.lr(TrainConfig(backbone="mobilenet_v2", strategy="full"), "image")
    assert full.lr(TrainConfig(backbone="efficientnet_lite0", strategy="full"), "image") == pytest.approx(3 * mobilenet)
    assert full.lr(TrainConfig(backbone="efficientnet-lite0", strategy="full"), "image") == pytest.approx(3 * mobilenet)
    assert full.lr(TrainConfig(backbone="efficientnet_lite0", strategy="full", lr=1e-5), "image") == 1e-5


def test_the_train_page_shows_the_rate_the_chosen_backbone_will_train_at(home):
    """EfficientNet-Lite0's default rate is 3x the image default: the page's learning-rate box says 9e-4 for it
    and 3e-4 for MobileNetV2, whichever was picked first; with LP-FT, a third of it."""
    from tests.conftest import DEMO

    at = _train_page(home, DEMO / "digits")
    next(r for r in at.radio if r.key == "strategy").set_value("full").run()
    rates = {}
    for name in ("efficientnet_lite0", "mobilenet_v2"):
        box = next(s for s in at.selectbox if s.label == "Backbone")
        box.set_value(next(o for o in box.options if o.startswith(name))).run()
        assert not at.exception
        rates[name] = next(n.value for n in at.number_input if n.label == "Learning rate")
    assert rates["efficientnet_lite0"] == pytest.approx(9e-4) and rates["mobilenet_v2"] == pytest.approx(3e-4)
    # ticking LP-FT shows LP-FT's own rate, the one the run gets, and sends none (the default stays the engine's)
    next(c for c in at.checkbox if c.label == "Fit the head before fine-tuning").check().run()
    assert next(n.value for n in at.number_input if n.label == "Learning rate") == pytest.approx(1e-4)
