"""Each strategy trains exactly the weights it should (peft/timm-style table of cases)."""
import pytest
import torch

from core.backbones import get_backbone
from core.config import TrainConfig
from core.strategies import count_params, get_strategy

CASES = ["frozen", "full", "partial", "differential", "lora"]


def one_step(backbone: str, strategy: str, **kw):
    spec = get_backbone(backbone)
    torch.manual_seed(0)
    model = spec.build(3)
    cfg = TrainConfig(backbone=backbone, strategy=strategy, lr=1e-2, weight_decay=0.0, **kw)
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
    model, groups, changed = one_step(backbone, strategy, unfreeze_last=1)
    head = {n for n in changed if n.startswith("head.")}
    enc = changed - head
    assert head, "the head always trains"
    trainable, total = count_params(model)
    if strategy == "frozen":
        assert enc == set() and trainable < total
    elif strategy == "lora":
        assert enc and all("lora_" in n for n in enc)
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
    cfg = TrainConfig(backbone="tiny-cnn", strategy="partial", unfreeze_last=0, unfreeze_every=1)
    s = get_strategy("partial")
    opt = torch.optim.AdamW(s.prepare(model, cfg, "image"))
    t0, _ = count_params(model)
    assert s.on_epoch_start(model, cfg, 1, opt, "image")
    t1, _ = count_params(model)
    assert t1 > t0 and sum(len(g["params"]) for g in opt.param_groups) > 2


def test_unknown_strategy_lists_choices():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="full, frozen"):
        TrainConfig(strategy="magic")


@pytest.mark.parametrize("n,modality,epochs", [(300, "image", 12), (300, "text", 6), (3000, "text", 4),
                                               (3000, "image", 8), (50_000, "text", 3)])
def test_auto_resolves_from_data_size(n, modality, epochs):
    from core.strategies import resolve_auto

    cfg, why = resolve_auto(TrainConfig(strategy="auto"), n, modality, [n // 2, n // 2])
    assert (cfg.strategy, cfg.epochs, cfg.blend) == ("full", epochs, True)
    assert why.endswith(".") and (f"{n:,}" in why or str(n) in why) and "blends" in why
    assert cfg.label_smoothing == (0.1 if modality == "image" else 0.0)


def test_auto_keeps_what_the_user_set_and_weights_imbalance():
    from core.strategies import resolve_auto

    cfg, why = resolve_auto(TrainConfig(strategy="auto", epochs=9), 500, "text", [450, 50])
    assert cfg.epochs == 9 and "(9 epochs" in why and cfg.class_weighting == "balanced" and "imbalanced" in why
    kept, _ = resolve_auto(TrainConfig(strategy="auto", label_smoothing=0.05), 500, "image", [250, 250])
    assert kept.label_smoothing == 0.05
    cfg2, _ = resolve_auto(TrainConfig(strategy="auto"), 500, "text", [250, 250])
    assert cfg2.epochs == 6 and cfg2.class_weighting == "none"


def test_auto_trains_lora_on_large_backbones_and_keeps_explicit_patience():
    from core.strategies import resolve_auto

    cfg, why = resolve_auto(TrainConfig(strategy="auto"), 800, "text", [400, 400], params_m=355.0)
    assert cfg.strategy == "lora" and "large backbone (355M weights)" in why and "LoRA" in why
    small, _ = resolve_auto(TrainConfig(strategy="auto"), 800, "text", [400, 400], params_m=22.7)
    assert small.strategy == "full"
    off, _ = resolve_auto(TrainConfig(strategy="auto", early_stopping_patience=0), 800, "text", [400, 400])
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
