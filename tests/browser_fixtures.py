"""Live server and headless Chromium fixtures, shared by the browser tests of every domain.

Registered for the whole suite by tests/conftest.py (pytest_plugins).
The server is werkzeug's make_server in a thread, serving `committed_app` (commits are real, the
browser's requests see them) with CSRF switched on, as in production. Screenshots go to
test-artifacts/ (gitignored) through `screenshot(page, name)`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class LiveServer:
    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(committed_app):
    """The app served over real HTTP on a free port; CSRF on."""
    committed_app.config["WTF_CSRF_ENABLED"] = True
    server = LiveServer(committed_app).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_page(browser):
    """A fresh browser context (no cookies) and page; downloads allowed."""
    context = browser.new_context(accept_downloads=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:  # noqa: ANN001
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_staff(page, server, username: str) -> None:  # noqa: ANN001
    """The staff sign-in form filled and sent as a person does (the test password)."""
    from tests.conftest import PASSWORD

    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def wait_until(check, seconds: float = 20.0):  # noqa: ANN001, ANN201
    """Poll `check()` every 0.2 s until it returns something true (returned), else fail."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)
