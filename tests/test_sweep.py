"""The correctness sweep: each case a user found broken or misleading, through the CLI as a user types it."""
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from core.cli import main
from tests.conftest import make_text_csv


def cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def trained(tmp_path, capsys, text_csv):
    code, out, err = cli(capsys, "--home", str(tmp_path / "h"), "train", "--data", str(text_csv), "--backbone",
                         "tiny-text", "--strategy", "frozen", "--epochs", "1", "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("args,needle", [
    (["--seed", "-5"], "seed must be between 0 and 4,294,967,295, got -5"),
    (["--seed", str(2**32)], "seed must be between 0 and"),
    (["--max-steps", "0"], "max_steps must be at least 1"),
    (["--max-steps", "-3"], "max_steps must be at least 1"),
    (["--text-col", "text", "--label-col", "text"], "both 'text'"),
    (["--epochs", "five"], "'five' is not a whole number"),
    (["--set", "epochs=\"5\""], "train.epochs must be a whole number, got '5' (written as text in quotes"),
])
def test_arguments_are_checked_before_a_run_is_created(tmp_path, capsys, text_csv, args, needle):
    home = tmp_path / "h"
    code, _, err = cli(capsys, "--home", str(home), "train", "--data", str(text_csv), "--backbone", "tiny-text", *args)
    assert code == 2 and needle in one_line_error(err)
    assert not (home / "runs").exists() or not [p for p in (home / "runs").iterdir() if p.is_dir()]


def test_home_pointing_at_a_file_is_refused(tmp_path, capsys, text_csv):
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    code, _, err = cli(capsys, "--home", str(f), "audit", str(text_csv))
    assert code == 2 and "is a file" in one_line_error(err)


def test_a_config_file_with_a_quoted_number_is_a_plain_error(tmp_path, capsys, text_csv):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"data": {"source": str(text_csv)}, "train": {"epochs": "5", "backbone": "tiny-text"}}))
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "train", "--config", str(cfg))
    assert code == 2 and "train.epochs must be a whole number, got '5'" in one_line_error(err)


def test_a_wrong_modality_backbone_is_refused_before_a_run_exists(tmp_path, capsys, text_csv):
    home = tmp_path / "h"
    code, _, err = cli(capsys, "--home", str(home), "train", "--data", str(text_csv), "--backbone", "tiny-cnn")
    assert code == 2 and "is for images but the dataset holds texts" in one_line_error(err)
    assert not list((home / "runs").glob("r*"))


@pytest.mark.slow
def test_auto_on_a_text_csv_without_a_backbone_uses_the_text_default(tmp_path, capsys, text_csv):
    code, out, err = cli(capsys, "--home", str(tmp_path / "h"), "train", "--data", str(text_csv), "--strategy", "auto",
                         "--epochs", "1", "--json")
    r = json.loads(out)
    assert code == 0, err
    cfg = json.loads((Path(r["run_dir"]) / "config.json").read_text())
    assert cfg["train"]["backbone"] == "all-MiniLM-L6-v2" and r["resolved_strategy"] == "full"
    assert "kept as you set them: epochs 1" in r["auto"]


def test_export_never_overwrites_a_folder_that_holds_files(tmp_path, capsys, trained):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "README.md").write_text("my own notes")
    (target / "config.json").write_text("{\"mine\": true}")
    code, _, err = cli(capsys, "export", trained["run_dir"], "--out", str(target))
    assert code == 2 and "already holds files (README.md, config.json)" in one_line_error(err)
    assert (target / "README.md").read_text() == "my own notes" and sorted(p.name for p in target.iterdir()) == \
        ["README.md", "config.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine.")]  # no half-written folder left
    code, out, err = cli(capsys, "export", trained["run_dir"], "--out", str(target), "--force", "--json")
    assert code == 0, err
    assert (target / "model.safetensors").is_file() and "my own notes" not in (target / "README.md").read_text()


def _export(tmp_path, capsys, trained) -> Path:
    out = tmp_path / "exp"
    code, _, err = cli(capsys, "export", trained["run_dir"], "--out", str(out))
    assert code == 0, err
    return out


@pytest.mark.parametrize("damage,needle", [
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]),
     "damaged or incomplete"),
    (lambda d: (d / "labels.json").write_text(json.dumps({**json.loads((d / "labels.json").read_text()),
                                                          "classes": ["a", "b"]})), "does not have 2 outputs"),
    (lambda d: (d / "labels.json").write_text("{\"classes\": [\"a\","), "labels.json is not valid JSON"),
    (lambda d: (d / "config.json").write_text((d / "config.json").read_text().replace("tiny-text", "tiny-cnn")),
     "labels.json says backbone 'tiny-text' but config.json 'tiny-cnn'"),
])
def test_a_tampered_export_gives_a_plain_reason(tmp_path, capsys, trained, damage, needle):
    exp = _export(tmp_path, capsys, trained)
    damage(exp)
    (tmp_path / "in.csv").write_text("text\nhello\n")
    code, _, err = cli(capsys, "predict", str(exp), str(tmp_path / "in.csv"))
    assert code == 2 and needle in one_line_error(err)


def test_predict_names_a_missing_column_flags_empty_texts_and_writes_real_csv(tmp_path, capsys, trained):
    exp = _export(tmp_path, capsys, trained)
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2, 3], "body": ["match goal team", "   ", "two\nlines, and a comma"]}).to_csv(src, index=False)
    code, _, err = cli(capsys, "predict", str(exp), str(src), "--text-col", "text")
    assert code == 2 and "no column named 'text'. Columns found: id, body" in one_line_error(err)
    code, out, err = cli(capsys, "predict", str(exp), str(src), "--text-col", "body")
    assert code == 2 and "1 of 3 input(s) could not be predicted" in err
    rows = pd.read_csv(pd.io.common.StringIO(out), keep_default_na=False)
    assert rows["input"].tolist() == ["match goal team", "   ", "two\nlines, and a comma"]
    assert rows["error"].tolist() == ["", "empty text", ""] and rows["prediction"].iloc[1] == ""
    code, out, err = cli(capsys, "predict", str(exp), str(src), "--text-col", "body", "--json")
    got = json.loads(out)["predictions"]
    assert got[1]["error"] == "empty text" and got[2]["input"] == "two\nlines, and a comma"


def test_predicting_a_folder_lists_what_it_skipped_and_why(tmp_path, capsys, image_dir):
    home = tmp_path / "h"
    code, out, err = cli(capsys, "--home", str(home), "train", "--data", str(image_dir), "--backbone", "tiny-cnn",
                         "--strategy", "frozen", "--epochs", "1", "--json")
    assert code == 0, err
    run = json.loads(out)["run_dir"]
    folder = tmp_path / "new"
    shutil.copytree(image_dir / "red", folder / "red")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"not really a png")
    os.symlink(next((image_dir / "blue").glob("*.png")), folder / "linked.png")
    (folder / "odd\nname.png").write_bytes((next((image_dir / "red").glob("*.png"))).read_bytes())
    code, out, err = cli(capsys, "predict", run, str(folder))
    assert code == 2
    assert "skipped notes.txt: not an image type (.txt)" in err and "skipped linked.png: symbolic links" in err
    rows = pd.read_csv(pd.io.common.StringIO(out), keep_default_na=False)
    bad = rows[rows["input"] == "broken.png"]
    assert bad["error"].iloc[0].startswith("not a readable image") and (rows["error"] == "").sum() == 17
    assert "odd\nname.png" in rows["input"].tolist()  # a newline in a name does not break the lines


def test_an_unexpected_fault_exits_1_and_says_where_the_details_are(tmp_path, capsys, monkeypatch):
    import core.cli as C

    def boom(args):
        raise RuntimeError("simulated fault")

    monkeypatch.setattr(C, "cmd_backbones", boom)
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "backbones")
    line = one_line_error(err)
    assert code == 1 and "unexpected RuntimeError in the studio itself: simulated fault" in line
    log = Path(line.split("The details are in ")[1].split(";")[0])
    assert log.is_file() and "simulated fault" in log.read_text()


def test_usage_mistakes_exit_2_with_one_line(capsys):
    assert main(["train", "--strategy", "magic"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--strategy" in line and "magic" in line


def test_own_test_file_is_checked_against_training_data(tmp_path, capsys):
    train_csv = make_text_csv(tmp_path / "train.csv", per_class=30, seed=1)
    train_df = pd.read_csv(train_csv)
    test_df = pd.concat([make_text_csv_df(tmp_path, seed=2), train_df.head(4)])  # 4 repeats of training rows
    test_df.to_csv(tmp_path / "test.csv", index=False)
    base = ["--home", str(tmp_path / "h"), "train", "--data", str(train_csv), "--test-data", str(tmp_path / "test.csv"),
            "--backbone", "tiny-text", "--strategy", "frozen", "--epochs", "1", "--json"]
    code, out, err = cli(capsys, *base)
    r = json.loads(out)
    assert code == 0, err
    assert r["test_overlap"]["exact"] == 4 and r["test_overlap"]["dropped"] is False
    assert any("repeat a training example" in n and "--test-overlap drop" in n for n in r["notes"])
    code, out, err = cli(capsys, "evaluate", r["run_dir"], "--json")
    assert json.loads(out)["test_overlap"]["exact"] == 4
    code, out, err = cli(capsys, *base, "--test-overlap", "drop")
    r2 = json.loads(out)
    assert code == 0 and r2["test_overlap"]["dropped"] and r2["baseline"]["n"] == r["baseline"]["n"] - 4
    assert not any("repeat a training example" in n for n in r2["notes"])
    code, out, err = cli(capsys, *base[:6], str(train_csv), *base[7:])  # the training file itself as the test
    r3 = json.loads(out)
    assert r3["test_overlap"]["exact"] == r3["test_overlap"]["test_rows_total"]
    assert any(n.startswith("Every test example repeats a training example") for n in r3["notes"])


def make_text_csv_df(tmp_path, seed):
    return pd.read_csv(make_text_csv(tmp_path / f"t{seed}.csv", per_class=5, seed=seed))


def test_the_report_prints_class_names_with_dollar_signs(tmp_path, capsys):
    rows = [(f"{w} item {i}", lab) for i in range(15) for w, lab in
            (("cheap sale bargain", "$5-$10"), ("pricey luxury premium", "over $100"), ("free gratis", "$0"))]
    p = tmp_path / "prices.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(p, index=False)
    code, out, err = cli(capsys, "--home", str(tmp_path / "h"), "train", "--data", str(p), "--backbone", "tiny-text",
                         "--strategy", "frozen", "--epochs", "1", "--json")
    assert code == 0, err
    run = json.loads(out)["run_dir"]
    code, out, err = cli(capsys, "--home", str(tmp_path / "h"), "report", run, "--out", str(tmp_path / "r.html"),
                         "--no-saliency")
    assert code == 0, err
    assert "$5-$10" in (tmp_path / "r.html").read_text()
