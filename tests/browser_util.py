"""Start the studio on a free port and drive it in Debian's headless Chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def studio_server(home: Path, extra_env: dict | None = None):
    port = free_port()
    env = {**os.environ, "FTS_HOME": str(home), "FTS_DEMO": "1", **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "studio.serve", "run", str(ROOT / "app.py"), "--server.port", str(port),
                             "--server.headless", "true", "--browser.gatherUsageStats", "false",
                             "--server.address", "127.0.0.1", "--client.toolbarMode", "minimal"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("studio did not start")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def browser_page(width: int = 1280, height: int = 800):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = b.new_page(viewport={"width": width, "height": height})
        try:
            yield page
        finally:
            b.close()


def shot(page, name: str) -> Path:
    """The whole page at the current width: Streamlit scrolls inside its main container, so the viewport is
    stretched to that container's height for the picture and restored after."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.wait_for_timeout(600)
    size = page.viewport_size
    h = page.evaluate("() => (document.querySelector('[data-testid=\"stMain\"]') || document.body).scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(h), 6000))})
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def upload(page, path) -> None:
    """A file through the Data page's upload tab."""
    page.get_by_role("tab", name="Upload a file").click()
    page.locator("input[type='file']").first.set_input_files(str(path))


def idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit finished the current script run."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def train_tab(page, name: str) -> None:
    """The Train page's Simple or Advanced tab (Start training is on Simple)."""
    page.get_by_role("tab", name=name, exact=True).click()
    idle(page)
