"""The studio end to end in a real browser (headless Chromium), with screenshots of each page."""
from pathlib import Path

import pytest

from tests.browser_util import browser_page, chromium_available, idle, shot, studio_server

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_available(), reason="Debian chromium not installed")]

DIGIT = Path(__file__).resolve().parents[1] / "assets" / "demo" / "digits" / "3"


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
        page.get_by_text("Frozen backbone (linear probe) (recommended)").wait_for()
        shot(page, "04-train")
        page.get_by_role("button", name="Start training").click()

        page.get_by_text("Training loss").wait_for(timeout=60_000)
        page.get_by_role("heading", name="Completed").wait_for(timeout=240_000)
        page.get_by_text("Test accuracy").wait_for(timeout=30_000)
        assert "run=" in page.url
        shot(page, "05-monitor")

        page.reload()
        idle(page)
        page.get_by_role("heading", name="Completed").wait_for(timeout=60_000)  # re-attached from the URL

        nav(page, "5 · Evaluate")
        page.get_by_text("Look at the mistakes").wait_for(timeout=60_000)
        assert page.locator("[data-testid='stImage']").count() >= 1  # the confusion heatmap
        shot(page, "06-evaluate")

        nav(page, "6 · Predict & Export")
        page.locator("input[type='file']").first.set_input_files(str(next(DIGIT.glob("*.png"))))
        page.get_by_text("Prediction:").wait_for(timeout=60_000)
        shot(page, "07-predict")

        nav(page, "Runs")
        shot(page, "08-runs")
