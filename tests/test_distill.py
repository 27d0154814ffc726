"""Knowledge distillation: the teacher's soft targets enter the student's loss; teachers that would leak or
cannot teach are refused by name; the report puts teacher and student side by side."""
from pathlib import Path

import pytest
import torch

from core.settings import ConfigError
from core.train.callbacks.distill import Distill
from core.train.loop import Batch
from tests.helpers import Record, config, train


def test_soft_targets_change_the_loss_and_follow_mixing():
    teacher = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]))
    logits, base = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor(0.7)
    batch = Batch(torch.tensor([0, 1]), {}, torch.tensor([0, 1]))
    off = Distill(teacher, 0.0, 2.0).on_loss(None, batch, logits, base)
    assert off == base
    on = Distill(teacher, 0.5, 2.0).on_loss(None, batch, logits, base)
    other = Distill(teacher[[2, 2, 2]], 0.5, 2.0).on_loss(None, batch, logits, base)
    assert on != base and on != other  # what the teacher says changes the student's loss
    mixed = Batch(torch.tensor([0, 1]), {}, torch.tensor([0, 1]), mix=(torch.tensor([1, 0]), 0.5))
    assert Distill(teacher, 0.5, 2.0).on_loss(None, mixed, logits, base) != on


def _losses(rec: Record) -> list[float]:
    return [e.data["loss"] for e in rec.events if e.kind == "step"]


def test_student_learns_from_a_teacher_run_and_reports_both(stores, image_dir):
    t_rec, t_st, _ = train(stores, config(image_dir, epochs=2, augment=False))
    assert t_st["status"] == "completed"
    plain, taught = Record(), Record()
    train(stores, config(image_dir, epochs=1, augment=False, keep_layers=2), [plain])
    rec, st, _ = train(stores, config(image_dir, epochs=1, augment=False, teacher=t_rec.id, distill_weight=0.8,
                                      distill_temperature=3.0, keep_layers=2), [taught])
    assert st["status"] == "completed", st.get("reason")
    assert _losses(plain) != _losses(taught)
    rep = st["distillation"]
    assert rep["teacher"]["run"] == t_rec.id and rep["student"]["run"] == rec.id
    assert rep["student"]["keep_layers"] == 2 and rep["student_vs_teacher"]["params"] < 1  # the trunk's first blocks
    assert rep["teacher"]["macro_f1"] == t_st["test"]["macro_f1"] and rep["student"]["macro_f1"] == st["test"]["macro_f1"]
    assert rep["student"]["ms_per_example"] > 0 and (rec.dir / "eval" / "distillation.json").is_file()
    from core.report.html import build_report

    html = build_report(runs_rec := stores[1].get(rec.id), stores[0].get(runs_rec.status["dataset"]), explain=False)
    assert "Student and teacher" in html and t_rec.id in html
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.query_params["run"] = rec.id
    at.session_state["run_id"] = rec.id
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception and any("Student and teacher" in h.value for h in at.subheader)


@pytest.mark.parametrize("change, message", [
    ({"strategy": "frozen"}, "solves its head"),
    ({"split_seed": 3}, "split the data differently"),
])
def test_teachers_that_cannot_teach_are_refused_by_name(stores, image_dir, change, message):
    t_rec, _, _ = train(stores, config(image_dir, epochs=1, augment=False))
    cfg = config(image_dir, "tiny-cnn", change.get("strategy", "full"), epochs=1, teacher=t_rec.id)
    cfg.data.split_seed = change.get("split_seed", 0)
    _, st, _ = train(stores, cfg)
    assert st["status"] == "failed" and message in st["reason"]


def test_keep_layers_makes_a_smaller_student_of_a_transformer_or_a_convolutional_trunk():
    import torch

    from core.backbones import get_backbone

    full, short = get_backbone("tiny-text").build(2), get_backbone("tiny-text").build(2, keep_layers=1)
    assert len(short.encoder.model.encoder.layer) == 1 < len(full.encoder.model.encoder.layer)
    assert sum(p.numel() for p in short.parameters()) < sum(p.numel() for p in full.parameters())
    full, short = get_backbone("tiny-cnn").build(2), get_backbone("tiny-cnn").build(2, keep_layers=2)
    assert len(short.encoder.model.features) == 2 and short.feat_dim == 16 < full.feat_dim == 32
    assert short(pixel_values=torch.zeros(2, 3, 32, 32)).shape == (2, 2)
    with pytest.raises(Exception, match="keep_layers=5, but this encoder has 3 blocks"):
        get_backbone("tiny-cnn").build(2, keep_layers=5)
    with pytest.raises(ConfigError):
        config("x", "tiny-text", keep_layers=0)
