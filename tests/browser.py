"""Headless Chromium for the tests: Debian's ``/usr/bin/chromium`` driven by Playwright's
Python package (its sync API). ``playwright install`` is never run: no browser is
downloaded; ``./dev test`` installs Debian's ``chromium`` package as root.

The fixtures live in ``conftest.py``: ``browser`` (one Chromium per test session) and
``page`` (a fresh context per test, 1280x900, wrapped in :class:`BrowserPage`, which records
console messages, page errors, dialogs and every request the page tries). Screenshots go to
``tests/artifacts/`` (git-ignored), the folder CI keeps.

Playwright's sync API runs its own asyncio loop in a greenlet of the main thread, and while
the browser is up that loop counts as *running* there: ``asyncio.run()`` in the main thread
then fails ("cannot be called from a running event loop"). So a browser test must not be an
async test, runs its journeys through :func:`off_the_loop` (another thread, its own loop), and
``conftest.py`` moves the browser tests to the end of the session, after every test that
uses asyncio in the main thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Dialog,
        Page,
        Playwright,
        Request,
        Route,
        ViewportSize,
    )

P = ParamSpec("P")
T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).parent / "artifacts"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return ("playwright is not installed (pip install -e '.[test]'; its browsers are not "
                "needed, the tests use Debian's chromium)")
    if not CHROMIUM.exists():
        return (f"{CHROMIUM} is missing: apt-get install chromium (./dev test does it as "
                "root)")
    return None


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)


def assert_no_running_loop() -> None:
    """Before the browser starts: Playwright's sync API cannot start inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise AssertionError("Playwright's sync API cannot run inside an asyncio event loop: "
                         "make this a plain (sync) test")


def off_the_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn`` in a thread of its own, where ``asyncio.run`` works while the browser is
    up (see the module's docstring); returns its result, raises its exception."""
    with ThreadPoolExecutor(1, thread_name_prefix="off-the-loop") as pool:
        return pool.submit(fn, *args, **kwargs).result()


@dataclass
class BrowserPage:
    """A page and what it did: console messages (type, text), uncaught page errors, dialogs
    (alert/confirm/prompt; each is dismissed), every request it tried (even those a route or
    the Content-Security-Policy stopped) and the ones the offline route aborted."""

    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)

    @property
    def context(self) -> BrowserContext:
        return self.page.context

    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def open_offline(self, path: Path) -> str:
        """Open ``path`` through file:// with every other request aborted (and recorded in
        ``aborted``); returns the file URL."""
        url = path.resolve().as_uri()

        def only_the_file(route: Route) -> None:
            if route.request.url.split("#", 1)[0] == url:
                route.continue_()
            else:
                self.aborted.append(route.request.url)
                route.abort("blockedbyclient")

        self.context.route("**/*", only_the_file)
        self.page.goto(url, wait_until="load")
        return url

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        return save_screenshot(self.page, name, full_page=full_page)


def save_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Keep a PNG under tests/artifacts/ (the folder CI keeps); returns its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    page.screenshot(path=str(path), full_page=full_page)
    return path


def new_page(browser: Browser, viewport: ViewportSize | None = None) -> BrowserPage:
    """A fresh context and page, recording what the page does. Close with
    ``bp.context.close()``."""
    context = browser.new_context(viewport=viewport or DESKTOP, service_workers="block")
    context.set_default_timeout(15_000)  # fail fast: nothing here takes more than seconds
    page = context.new_page()
    bp = BrowserPage(page)

    def on_console(message: ConsoleMessage) -> None:
        bp.console.append((message.type, message.text))

    def on_dialog(dialog: Dialog) -> None:
        bp.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_request(request: Request) -> None:
        bp.requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: bp.errors.append(str(error)))
    page.on("dialog", on_dialog)
    context.on("request", on_request)
    return bp
