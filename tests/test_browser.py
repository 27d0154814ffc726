"""The studio end to end in a real browser (headless Chromium), with screenshots of each page."""
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.runs.folder import WEIGHTS, ModelFolder
from tests.browser_util import browser_page, chromium_available, idle, shot, studio_server, train_tab, upload

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_available(), reason="Debian chromium not installed")]

DIGIT = Path(__file__).resolve().parents[1] / "assets" / "demo" / "digits" / "3"


VERDICT = re.compile(r"(Better than|Worse than|Not distinguishable from|Makes the same prediction as) the baseline")


def _only_run(home: Path):
    from core.runs.store import RunStore

    store = RunStore(home / "runs")
    runs = store.list()
    assert len(runs) == 1, runs
    return store.get(runs[0]["id"])


def nav(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    idle(page)


def test_image_flow_frozen_mobilenet(tmp_path):
    with studio_server(tmp_path) as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        shot(page, "01-data-empty")
        page.get_by_role("button", name="Load Handwritten digits").click()
        idle(page)
        page.get_by_text("Loaded: demo: digits").wait_for(timeout=60_000)
        shot(page, "02-data-loaded")

        nav(page, "2 · Explore")
        page.get_by_text("Near-duplicate groups").first.wait_for(timeout=60_000)
        shot(page, "03-explore")

        nav(page, "3 · Train")
        page.get_by_text("The labels are numbers (0, 1, 2").wait_for()  # digits: classes or values? asked
        expect(page.get_by_role("button", name="Start training")).to_be_disabled()
        page.get_by_text("classes", exact=True).click()
        idle(page)
        page.get_by_text("when the run starts it times a few real steps of each plan").first.wait_for()
        expect(page.get_by_text("Balanced", exact=True).first).to_be_visible()  # the default view: how long, not how
        # none shown (a rerun on a loaded machine can briefly hold the old element beside the new one)
        expect(page.get_by_text("Frozen backbone (linear probe)", exact=True).filter(visible=True)).to_have_count(0)
        shot(page, "04-train")
        train_tab(page, "Advanced")
        page.get_by_text("Auto (recommended)").wait_for()
        page.get_by_text("Frozen backbone (linear probe)", exact=True).click()  # seconds on CPU, for CI
        idle(page)
        train_tab(page, "Simple")
        page.get_by_text("its epochs set the time").wait_for()  # a fixed method: the effort no longer applies
        page.get_by_role("button", name="Start training").click()

        page.get_by_text("Training loss").first.wait_for(timeout=60_000)
        page.get_by_role("heading", name="Completed").wait_for(timeout=240_000)
        page.get_by_text(re.compile(r"Test accuracy \d")).wait_for(timeout=30_000)
        assert "run=" in page.url
        rid = re.search(r"run=([\w-]+)", page.url).group(1)
        page.get_by_text(VERDICT).first.wait_for(timeout=30_000)  # the paired comparison, in words
        shot(page, "05-monitor")

        page.reload()
        idle(page)
        page.get_by_role("heading", name="Completed").wait_for(timeout=60_000)  # re-attached from the URL

        nav(page, "5 · Evaluate")
        page.get_by_text("Look at the mistakes").wait_for(timeout=60_000)
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=30_000)  # the clickable matrix
        expect(page.get_by_text(VERDICT).first).to_be_visible()
        shot(page, "06-evaluate")
        page.get_by_text("Show why (Grad-CAM)").first.click()
        idle(page)
        page.get_by_text("Top losses").wait_for()
        assert page.get_by_text("failed unexpectedly").count() == 0
        shot(page, "06b-evaluate-gradcam")

        nav(page, "6 · Predict & Export")
        page.locator("input[type='file']").first.set_input_files(str(next(DIGIT.glob("*.png"))))
        page.get_by_text("Prediction:").first.wait_for(timeout=60_000)
        shot(page, "07-predict")

        nav(page, "Runs")
        shot(page, "08-runs")

        # someone else (another browser: other cookies) pasting the same link sees nothing of it
        other = page.context.browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        other.goto(f"{url}/monitor?run={rid}")
        idle(other)
        other.get_by_text("No runs yet").wait_for(timeout=30_000)
        assert other.get_by_text(rid).count() == 0
        shot(other, "09-other-user")


def test_a_deep_link_is_the_first_request_a_fresh_server_gets(tmp_path):
    """Streamlit reads a pages/ folder as file-based navigation until st.navigation first runs: a shared link
    opened on a just-started studio must still get the studio's own navigation and sidebar."""
    with studio_server(tmp_path) as (url, _), browser_page() as page:
        page.goto(f"{url}/runs?run=r-nothing")
        idle(page)
        page.get_by_text("No runs yet").wait_for(timeout=60_000)
        side = page.get_by_test_id("stSidebarNav")
        expect(side.get_by_text("5 · Evaluate", exact=True)).to_be_visible()
        assert side.get_by_text("evaluate", exact=True).count() == 0  # not the file names
        expect(page.get_by_text("Fine-Tune Studio").first).to_be_visible()  # the studio's sidebar


@pytest.mark.slow
def test_text_flow_lora_minilm(tmp_path):
    with studio_server(tmp_path) as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        page.get_by_role("button", name="Load Movie reviews").click()
        page.get_by_text("Loaded: demo: reviews.csv").wait_for(timeout=60_000)
        nav(page, "3 · Train")
        train_tab(page, "Advanced")
        page.get_by_text("LoRA adapters", exact=True).click()
        idle(page)
        epochs = page.get_by_label("Epochs", exact=True)
        expect(epochs).to_have_count(1, timeout=30_000)  # auto's own Epochs input has gone
        epochs.fill("1")
        epochs.press("Enter")
        idle(page)
        shot(page, "t1-train-lora")
        train_tab(page, "Simple")
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Training loss").first.wait_for(timeout=60_000)
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=120_000)  # the curve is drawn
        page.get_by_role("heading", name="Completed").wait_for(timeout=300_000)
        shot(page, "t2-monitor")
        run = _only_run(tmp_path)  # what ran is what was asked: LoRA, one epoch, completed
        assert run.status["status"] == "completed" and run.resolved_config.train.strategy == "lora"
        assert run.status["epoch"] == 1 and run.resolved_config.train.epochs == 1
        nav(page, "5 · Evaluate")
        page.get_by_text("Look at the mistakes").wait_for(timeout=60_000)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text(f"{run.status['test']['accuracy']:.1%}")
        idle(page, 120_000)  # both toggles drawn, so .last is the Top-losses one
        page.get_by_text("Show why (word attributions)").last.click()
        idle(page, 180_000)
        page.get_by_text("→ predicted").first.wait_for(timeout=180_000)
        shot(page, "t3-evaluate")
        nav(page, "6 · Predict & Export")
        text = "A warm, funny and beautifully acted film."
        page.get_by_label("Text to classify").fill(text)
        page.get_by_label("Text to classify").press("Control+Enter")
        page.get_by_text("Prediction:").first.wait_for(timeout=180_000)  # loads MiniLM + adapters first
        shot(page, "t4-predict")
        from core.predict.predictor import Predictor

        pred = Predictor(run.dir)
        label = pred.classes[int(pred.predict([text])[0].argmax())]
        expect(page.get_by_text("Prediction:").first).to_contain_text(label)  # the page shows the run's model


def test_bad_uploads_get_plain_errors(tmp_path):
    import zipfile

    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n", encoding="utf-8")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("cats/1.png", b"x")
        zf.writestr("../../escape.png", b"x")
    big = tmp_path / "big.csv"
    big.write_text("text,label\n" + "a long enough review line,pos\n" * 80_000, encoding="utf-8")  # ~2.2 MB
    limit = {"FTS_MAX_UPLOAD_MB": "1", "STREAMLIT_SERVER_MAX_UPLOAD_SIZE": "1"}
    with studio_server(tmp_path / "home", limit) as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        page.get_by_text("Uploads up to 1 MB").wait_for()  # the limit is stated before anyone tries
        upload(page, big)
        page.get_by_text(re.compile(r"File must be 1(\.0)?MB or smaller")).wait_for(timeout=30_000)
        shot(page, "e0-over-limit")
        assert page.get_by_text("Encoding").count() == 0  # refused in the browser, never read
        page.reload()
        idle(page)
        upload(page, empty)
        page.get_by_text("has a header (text, label) but no rows").wait_for(timeout=30_000)
        shot(page, "e1-empty-csv")
        page.locator("input[type='file']").first.set_input_files(str(evil))
        idle(page)
        page.get_by_role("button", name="Load images from zip").click()
        page.get_by_text("climbs out of the archive").wait_for(timeout=30_000)
        shot(page, "e2-zip-slip")
        assert "Traceback" not in page.content()
    assert not (tmp_path / "escape.png").exists() and not (tmp_path.parent / "escape.png").exists()


def messy_csv(path):
    """What a spreadsheet export often looks like: cp1252, ';', unclear headers, a multi-line cell,
    duplicates, a conflicting label, an empty label and a blank text."""
    rows = [("Kommentar", "Bewertung", "Id")]
    good = ["Très bien, livraison rapide", "Produkt kam kaputt an", "Service client réactif",
            "Qualité médiocre, déçu", "Parfait, je recommande", "Nie wieder, schlechte Qualität"]
    for i in range(60):
        text = f"{good[i % 6]} – commande n°{i}"
        rows.append((text, "positiv" if i % 6 in (0, 2, 4) else "negativ", str(i)))
    rows += [(rows[1][0], rows[1][1], "61"), (rows[2][0], rows[2][1], "62"),  # exact duplicates
             (rows[3][0], "negativ", "63"),  # same text, other label
             ('"Zeile eins\nZeile zwei" – café', "positiv", "64"), ("ohne Label", "", "65"), ("   ", "negativ", "66")]
    lines = []
    for t, label, i in rows:
        t = t if t.startswith('"') else f'"{t}"'
        lines.append(f"{t};{label};{i}")
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    return path


def test_messy_real_world_csv_audit_and_fix(tmp_path):
    csv = messy_csv(tmp_path / "Export Kundenfeedback.csv")
    with studio_server(tmp_path / "home") as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        upload(page, csv)
        page.get_by_text("Encoding cp1252, delimiter ';'").wait_for(timeout=30_000)
        page.get_by_text("Label column").wait_for()
        idle(page)
        shot(page, "m1-messy-preview")
        page.get_by_role("button", name="Load this table").click()
        page.get_by_text("Loaded: Export Kundenfeedback.csv").wait_for(timeout=30_000)
        page.get_by_text("1 row(s) with an empty label were dropped: line").wait_for()
        page.get_by_text("1 row(s) with an empty input (blank, or only invisible characters) were dropped: line").wait_for()
        shot(page, "m2-messy-loaded")
        nav(page, "2 · Explore")
        page.get_by_text("input(s) appear with different labels").wait_for(timeout=60_000)
        shot(page, "m3-messy-audit")
        page.get_by_role("button", name="Conflicts: majority label").click()
        idle(page)
        page.get_by_text("derived from").first.wait_for(timeout=30_000)
        page.get_by_text("(conflicts: majority label)").wait_for(timeout=30_000)
        page.get_by_role("button", name="Drop exact duplicates").click()
        page.get_by_text("(drop exact duplicates)").wait_for(timeout=30_000)
        idle(page)
        assert page.get_by_text("repeat an earlier one").count() == 0
        assert page.get_by_text("appear with different labels").count() == 0
        shot(page, "m4-messy-fixed")


def test_folder_upload_and_server_folder(tmp_path):
    from tests.conftest import make_image_folder

    make_image_folder(tmp_path / "shots" / "pets", per_class=4)
    root = tmp_path / "server-data"
    make_image_folder(root / "factory", per_class=3, seed=3)
    with studio_server(tmp_path / "home", {"FTS_DATA_ROOT": str(root)}) as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        page.get_by_role("tab", name="Upload a folder").click()
        page.locator("input[webkitdirectory]").set_input_files(str(tmp_path / "shots" / "pets"))
        page.get_by_role("button", name="Load this folder").click()
        page.get_by_text("12 images · 3 classes").wait_for(timeout=60_000)
        shot(page, "f1-folder-upload")
        page.get_by_role("tab", name="Server folder").click()
        page.get_by_label(f"Folder or file under {root}").fill("factory")
        page.get_by_label(f"Folder or file under {root}").press("Enter")
        idle(page)
        page.get_by_role("button", name="Load from server").click()
        page.get_by_text("9 images · 3 classes").wait_for(timeout=60_000)
        page.get_by_label(f"Folder or file under {root}").fill("../../etc")
        page.get_by_label(f"Folder or file under {root}").press("Enter")
        idle(page)
        page.get_by_role("button", name="Load from server").click()
        page.get_by_text("outside the allowed data folder").wait_for(timeout=30_000)
        shot(page, "f2-server-folder")
    from core.data.datasets import DatasetStore

    versions = DatasetStore(tmp_path / "home" / "datasets").list()
    assert sorted(v["rows"] for v in versions) == [9, 12]  # both folders became versions; the refusal made none
    assert not (tmp_path / "home" / "etc").exists()


def test_sweep_in_the_browser_auto_keeps_settings_overlap_report_and_safe_export(tmp_path):
    """Items a user hit in the studio itself: auto overriding an epochs value they typed, a test file that
    repeats training examples, the report button, and an export into a folder that holds their own files."""
    import pandas as pd

    reviews = pd.read_csv(Path(__file__).resolve().parents[1] / "assets" / "demo" / "reviews.csv")
    test_csv = tmp_path / "my-test.csv"
    pd.concat([reviews.head(6), pd.DataFrame({"text": ["An unseen, gently funny film.", "Dull and far too long."],
                                              "label": ["fresh", "rotten"]})]).to_csv(test_csv, index=False)
    exports = tmp_path / "exports"
    (exports / "mine").mkdir(parents=True)
    (exports / "mine" / "README.md").write_text("my own notes")
    with studio_server(tmp_path / "home", {"FTS_EXPORT_ROOT": str(exports)}) as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        page.get_by_role("button", name="Load Movie reviews").click()
        page.get_by_text("Loaded: demo: reviews.csv").wait_for(timeout=60_000)
        nav(page, "3 · Train")
        train_tab(page, "Advanced")
        page.get_by_text("Backbone", exact=True).wait_for()
        page.locator("[data-testid='stSelectbox']").first.click()
        page.get_by_text("Other: a torchvision model or Hugging Face id").click()
        idle(page)
        page.get_by_label("Model name or id").fill("tiny-text")
        page.get_by_label("Model name or id").press("Enter")
        idle(page)
        epochs = page.get_by_role("spinbutton", name="Epochs (auto's choice, if the plan trains)")
        epochs.fill("1")
        epochs.press("Enter")
        idle(page)
        page.locator("input[type='file']").first.set_input_files(str(test_csv))
        page.get_by_text("6 of 8 test examples (75%) repeat a training example").wait_for(timeout=60_000)
        expect(page.get_by_label("Leave these 6 out of the test set")).to_be_checked()
        shot(page, "s1-train-overlap")
        train_tab(page, "Simple")
        page.get_by_role("button", name="Start training").click()
        page.get_by_role("heading", name="Completed").wait_for(timeout=240_000)
        page.get_by_text("kept as you set them: epochs 1").wait_for(timeout=30_000)
        page.get_by_text(re.compile(r"Auto chose \w+ of tiny-text")).wait_for()  # the backbone typed in is kept
        page.get_by_text("6 example(s) of your test file repeated training examples").wait_for(timeout=30_000)
        shot(page, "s2-monitor-kept")

        nav(page, "5 · Evaluate")
        page.get_by_role("button", name="Make the HTML report").click()
        page.get_by_role("button", name="Download report (HTML)").wait_for(timeout=180_000)
        with page.expect_download(timeout=120_000) as dl:
            page.get_by_role("button", name="Download report (HTML)").click()
        assert "Fine-Tune Studio report" in Path(dl.value.path()).read_text(encoding="utf-8")
        assert page.get_by_text("failed unexpectedly").count() == 0
        nav(page, "Runs")
        page.get_by_role("button", name="Make the HTML report").click()
        page.get_by_role("button", name="Download report (HTML)").wait_for(timeout=120_000)
        assert page.get_by_text("failed unexpectedly").count() == 0

        nav(page, "6 · Predict & Export")
        page.get_by_text("into a folder on the server").click()
        idle(page)
        folder = page.get_by_label(f"Folder under {exports.resolve()}")
        folder.fill("mine")
        folder.press("Enter")
        idle(page)
        page.get_by_text("already holds files (README.md)").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Prepare export").click()
        idle(page)
        page.get_by_text("choose an empty or new folder, or tick 'Replace what is there'").wait_for(timeout=30_000)
        assert (exports / "mine" / "README.md").read_text() == "my own notes"
        shot(page, "s3-export-refused")
        page.get_by_test_id("stCheckbox").get_by_text("Replace what is there").click()
        idle(page)
        page.get_by_role("button", name="Prepare export").click()
        page.get_by_text(f"Exported to {exports.resolve() / 'mine'}").wait_for(timeout=120_000)
        mine = ModelFolder(exports / "mine")
        assert mine.config_file.is_file() and mine.blend_file.is_file()
        share = json.loads(mine.blend_file.read_text())["network_weight"]
        # the export holds the parts that predict: the network where it has a share, the partner where it does
        assert (mine.dir / WEIGHTS).is_file() == (share > 0) and mine.partner_dir.is_dir() == (share < 1)
        shot(page, "s4-export-done")


def test_a_fresh_servers_first_sight_is_the_studios_navigation(tmp_path):
    """Streamlit's own file list (app, data, evaluate, ...) used to show for a second or two before the
    studio's navigation replaced it."""
    with studio_server(tmp_path) as (url, _), browser_page() as page:
        page.goto(url, wait_until="commit")
        first = None
        for _ in range(600):  # every 50 ms for up to 30 s: the first navigation a person could see
            nav_el = page.query_selector("[data-testid='stSidebarNav']")
            text = nav_el.inner_text() if nav_el else ""
            if text.strip():
                first = text
                break
            page.wait_for_timeout(50)
        assert first is not None
        assert "1 · Data" in first and "app" not in first.split() and "evaluate" not in first.split(), first


def test_a_small_search_from_the_ui_and_its_best_trial(tmp_path):
    """Three LoRA trials of the real MiniLM on the demo reviews, started from the Search page; the best trial
    opens on Evaluate."""
    space = {"strategy": ["lora"], "lr": {"low": 1e-4, "high": 3e-3, "log": True}, "epochs": [1],
             "max_steps": [3], "max_length": [32], "batch_size": [16]}
    with studio_server(tmp_path) as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        page.get_by_role("button", name="Load Movie reviews").click()
        page.get_by_text("Loaded: demo: reviews.csv").wait_for(timeout=60_000)
        nav(page, "Search settings")
        trials = page.get_by_label("Trials to add")
        trials.fill("3")
        trials.press("Enter")
        idle(page)
        page.get_by_text("Edit as written (JSON, as the CLI takes it)").click()
        idle(page)
        box = page.get_by_label("What to search", exact=False)
        box.fill(__import__("json").dumps(space))
        box.press("Control+Enter")
        idle(page)
        page.get_by_role("button", name="Start search").click()
        page.get_by_text("trials started").first.wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"Best: trial \d")).wait_for(timeout=480_000)
        expect(page.get_by_text("3 trials:", exact=False)).to_be_visible()
        shot(page, "s1-search")
        page.get_by_role("button", name="Open the best trial").click()
        page.get_by_text("Look at the mistakes").wait_for(timeout=120_000)
        shot(page, "s2-best-trial")
        from core.train.search import storage_url, studies, summary

        url = storage_url(tmp_path / "runs")
        res = summary(studies(url)[0], url, tmp_path / "runs")
        assert len(res["trials"]) == 3 and len({t["run_id"] for t in res["trials"]}) == 3
        assert all(t["params"]["strategy"] == "lora" for t in res["trials"])
        assert f"run={res['best']['run_id']}" in page.url  # Evaluate opened the best trial's run


def no_fault(page, where: str) -> None:
    """Nothing on the page is a traceback or an unexpected failure."""
    assert page.locator("[data-testid='stException']").count() == 0, where
    assert "Traceback" not in page.content() and page.get_by_text("failed unexpectedly").count() == 0, where


def test_every_page_on_data_with_every_finding_and_a_click_on_the_confusion_matrix(tmp_path):
    """A dataset with exact and near duplicates, conflicting labels and flipped labels (suspects once a run has
    checked them) through every page; on Evaluate a click on a confusion-matrix cell shows that cell's examples."""
    from tests.conftest import make_findings_csv

    csv = make_findings_csv(tmp_path / "findings.csv")
    with studio_server(tmp_path / "home") as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        upload(page, csv)
        page.get_by_role("button", name="Load this table").click()
        page.get_by_text("Loaded: findings.csv").wait_for(timeout=60_000)
        nav(page, "2 · Explore")
        page.get_by_text("input(s) appear with different labels").wait_for(timeout=60_000)
        no_fault(page, "Explore before any run")
        nav(page, "3 · Train")
        train_tab(page, "Advanced")
        page.get_by_text("Frozen backbone (linear probe)", exact=True).click()
        idle(page)
        train_tab(page, "Simple")
        page.get_by_role("button", name="Start training").click()
        page.get_by_role("heading", name="Completed").wait_for(timeout=300_000)
        no_fault(page, "Monitor")
        home = tmp_path / "home"
        run = _only_run(home)
        assert run.suspects_file.is_file()  # the label check ran: Explore now lists suspects too
        nav(page, "5 · Evaluate")
        page.get_by_text("Look at the mistakes").wait_for(timeout=60_000)
        idle(page)
        no_fault(page, "Evaluate")
        classes = run.status["classes"]
        target = classes[-1]
        cell = page.locator(f'path[aria-roledescription="rect mark"][aria-label*="true: {target};"]'
                            f'[aria-label*="predicted: {target};"]')
        cell.wait_for(timeout=30_000)
        cell.click()
        idle(page)
        page.get_by_text(f"{target} predicted as {target}").wait_for(timeout=30_000)
        import pandas as pd

        preds = pd.read_parquet(run.test_predictions)
        n = int(((preds["true"] == target) & (preds["pred"] == target)).sum())
        page.get_by_text(f"{n} test example(s) — correct").wait_for(timeout=10_000)
        shot(page, "x1-evaluate-cell")
        for title in ("6 · Predict & Export", "Runs", "Search settings", "4 · Monitor", "1 · Data", "2 · Explore"):
            nav(page, title)
            idle(page, 120_000)
            no_fault(page, title)
        page.get_by_text("Suspect labels").first.wait_for(timeout=30_000)
        shot(page, "x2-explore-with-suspects")


@pytest.mark.slow
def test_the_experts_loop_review_relabel_new_version_continue_and_what_changed(tmp_path):
    """Open the review queue of a finished run, change two labels and remove one example (decisions survive a
    refresh), make the new version, continue training from the run on it, and see what changed."""
    from core.data.datasets import DatasetStore
    from core.data.review import decisions
    from core.runs.store import RunStore
    from tests.conftest import make_findings_csv
    from tests.helpers import config, train

    home = tmp_path / "home"
    stores = DatasetStore(home / "datasets"), RunStore(home / "runs")
    # a parent short of converged, so that continuing it changes predictions
    parent, st, _ = train(stores, config(make_findings_csv(tmp_path / "findings.csv"), "tiny-text", "full", epochs=1,
                                         lr=3e-4))
    assert st["status"] == "completed"
    with studio_server(home) as (url, _), browser_page() as page:
        page.goto(f"{url}/?run={parent.id}")
        idle(page)
        nav(page, "Review labels")
        page.get_by_text("Decisions so far").wait_for(timeout=60_000)
        no_fault(page, "Review")
        # each click waits for its "Saved" line, as a person would: a click on an element Streamlit is
        # re-drawing can be dropped by the browser
        for i, choice in enumerate(("Relabel", "Relabel", "Remove")):
            page.get_by_role("radio", name=choice, exact=True).nth(i).click()
            expect(page.get_by_text(re.compile(r"Saved: (Relabel|Remove)"))).to_have_count(i + 1, timeout=60_000)
            idle(page)
        ds = stores[0].get(parent.status["dataset"])
        made = decisions(ds)
        assert sorted(d["decision"] for d in made.values()) == ["relabel", "relabel", "remove"]
        page.reload()  # a refresh loses nothing
        idle(page)
        page.get_by_text("Decisions so far").wait_for(timeout=60_000)
        expect(page.get_by_text(re.compile(r"Saved: Relabel → "))).to_have_count(2)
        expect(page.get_by_text("Saved: Remove")).to_have_count(1)
        shot(page, "x1-review")
        page.get_by_role("button", name="Make the new version of the data").click()
        page.get_by_text(re.compile(r"New version ds-\w+: 2 relabelled, 1 removed")).wait_for(timeout=60_000)
        page.get_by_role("button", name="Continue training from this run on it").click()
        page.get_by_role("heading", name="Completed").wait_for(timeout=240_000)
        nav(page, "5 · Evaluate")
        page.get_by_text("What changed since its parent").wait_for(timeout=60_000)
        page.get_by_text(f"Continued from run {parent.id}").wait_for()
        page.get_by_text("test examples both runs were judged on").first.wait_for()
        child = stores[1].get(next(r for r in stores[1].list() if r["id"] != parent.id)["id"])
        assert child.status["parent"] == parent.id and child.status["dataset"] != parent.status["dataset"]
        changes = json.loads(child.parent_changes_file.read_text())
        for tab in ("broken", "fixed"):  # the changed predictions themselves, as many as the comparison found
            page.get_by_role("tab", name=re.compile(rf"^{tab.capitalize()} \({changes['vs_parent'][tab]}\)")).click()
            idle(page)
            if changes[tab]:
                # the table's cells (drawn on a canvas; their text is in the grid's accessible cells)
                page.get_by_text(changes[tab][0]["input"][:40]).first.wait_for(state="attached")
        no_fault(page, "Evaluate of the continued run")
        shot(page, "x2-what-changed")


def test_multilabel_flow_upload_audit_train_evaluate_predict(tmp_path):
    from tests.test_multilabel import tickets

    data = tickets(tmp_path / "tickets.csv", n=200, noise=0.4)
    with studio_server(tmp_path / "home") as (url, _), browser_page() as page:
        page.goto(url)
        idle(page)
        upload(page, data)
        page.get_by_text("Label column").wait_for(timeout=30_000)
        idle(page)
        page.get_by_role("button", name="Load this table").click()
        page.get_by_text("Loaded: tickets.csv").wait_for(timeout=30_000)
        page.get_by_text("rows hold several labels separated by ';'").wait_for()  # seen, then asked
        shot(page, "ml1-data-asked")
        page.get_by_role("button", name="Yes: several labels per example (multi-label)").click()
        page.get_by_text("Task: several labels per example, separated by ';'").wait_for(timeout=30_000)
        nav(page, "2 · Explore")
        page.get_by_text("Iterative stratification").wait_for(timeout=60_000)
        shot(page, "ml2-explore")
        nav(page, "3 · Train")
        expect(page.get_by_role("radio", name="several labels per example")).to_be_checked()  # answered once
        train_tab(page, "Advanced")
        page.get_by_text("Frozen backbone (linear probe)", exact=True).click()  # seconds on CPU, for CI
        idle(page)
        train_tab(page, "Simple")
        page.get_by_role("button", name="Start training").click()
        page.get_by_role("heading", name="Completed").wait_for(timeout=300_000)
        page.get_by_text(re.compile(r"Test micro-F1 \d")).wait_for(timeout=30_000)
        shot(page, "ml3-monitor")
        run = _only_run(tmp_path / "home")
        assert run.status["task"] == "multilabel" and run.resolved_config.data.label_sep == ";"
        nav(page, "5 · Evaluate")
        page.get_by_text("Click a label to see its errors.").wait_for(timeout=60_000)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text(f"{run.status['test']['micro_f1']:.3f}")
        page.get_by_text("Per label").first.wait_for()
        shot(page, "ml4-evaluate")
        nav(page, "6 · Predict & Export")
        text = "refund the invoice charge asap immediately"
        page.get_by_label("Text to classify").fill(text)
        page.get_by_label("Text to classify").press("Control+Enter")
        page.get_by_text("Labels:").first.wait_for(timeout=180_000)
        page.get_by_text("Explain the label").wait_for(timeout=60_000)
        idle(page, 180_000)
        shot(page, "ml5-predict")
        from core.predict.predictor import Predictor

        pred = Predictor(run.dir)
        expected = pred.table([text], pred.predict([text])[0])["prediction"].iloc[0]
        expect(page.get_by_text("Labels:").first).to_contain_text(expected or "none")
        assert "Traceback" not in page.content()
