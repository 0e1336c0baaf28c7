"""Browser tests: a real uvicorn server (the app built through the composition root, on a fresh migrated
database) driven by Playwright through Debian's Chromium at /usr/bin/chromium.

The browser is never downloaded (`playwright install` is not used): `make test` installs Debian's chromium
package when it is missing. Without it these tests fail loudly rather than skip.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Chromium and HTMX log 4xx answers (a wrong password, a used invite): expected, shown to the user.
EXPECTED_CONSOLE_ERRORS = re.compile(r"Failed to load resource|Response Status Error Code")
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app, port: int, *, lifespan: str = "off") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(make_container) -> Iterator[LiveServer]:
    """`tow serve` in a thread: the real app, on its own fresh database, on a free port."""
    port = _free_port()
    container = make_container(f"runtime:\n  public_app_url: http://127.0.0.1:{port}\n")
    with LiveServer(container.app(), port) as server:
        server.container = container  # tests run background work (jobs, embeddings) through it
        yield server


@pytest.fixture(scope="module")  # not session: Playwright's sync API holds an event loop while it runs, which
def browser():                   # would break later tests that start their own (asyncio.run)
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get install -y chromium` (make test does this)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, live_server):
    """A new browser (its own cookies) on the live server. ``page.problems`` collects JavaScript errors and
    Content-Security-Policy violations (expected 4xx answers to HTMX requests are not problems)."""
    contexts = []

    def make(width: int = 1280, height: int = 860):
        context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text)
                if m.type == "error" and not EXPECTED_CONSOLE_ERRORS.search(m.text) else None)
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()
