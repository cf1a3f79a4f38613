"""Shared fixtures: the demo internet, started once per test session in its own process.

As root (here and in CI) it listens on the well-known ports 53/443/80, otherwise on
10053/10443/10080. If another test session on this machine already holds those ports, it
falls back to free high ports: always read ``demo_internet.dns_port`` / ``.https_port`` /
``.http_port`` rather than assuming a number. Delays are injected as in the demo (root
25 ms, TLD 20 ms, authoritative 12 ms, web think time 5 ms; see ``.info``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from whathappens.demo.internet import DemoInternet, DemoInternetError

# Tests assert behaviour, not speed (speed lives in bench/): Hypothesis' per-example deadline
# (200 ms) only made property tests fail when the 2 cores were busy with something else.
settings.register_profile("whathappens", deadline=None)
settings.load_profile("whathappens")

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from browser import BrowserPage


def start_demo_internet(state_dir: Path, *, delays: bool = True) -> DemoInternet:
    """Start a demo internet on the usual ports, or on free ones if those are taken."""
    try:
        return DemoInternet.start(state_dir, high_ports=os.geteuid() != 0, delays=delays)
    except DemoInternetError as e:
        if not e.address_in_use:
            raise
    return start_on_free_ports(state_dir, delays=delays)


def random_ports() -> tuple[int, int, int]:
    """Three distinct high ports (dns, https, http), unlikely to be in use."""
    dns, https, http = random.sample(range(20000, 60000), 3)
    return dns, https, http


def start_on_free_ports(state_dir: Path, *, delays: bool = False,
                        delay_overrides: dict[str, float] | None = None) -> DemoInternet:
    error: DemoInternetError | None = None
    for _ in range(8):
        try:
            return DemoInternet.start(state_dir, ports=random_ports(), delays=delays,
                                      delay_overrides=delay_overrides)
        except DemoInternetError as e:
            if not e.address_in_use:
                raise
            error = e
    assert error is not None
    raise error


@pytest.fixture(scope="session")
def demo_internet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoInternet]:
    net = start_demo_internet(tmp_path_factory.mktemp("demo-internet"))
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def fresh_demo_internet(tmp_path: Path) -> Iterator[Callable[..., DemoInternet]]:
    """A factory for private demo internets (cold caches, own CA) on free high ports.

    ``fresh_demo_internet(state_dir=None, delays=False)``; each is stopped after the test.
    """
    started: list[DemoInternet] = []

    def start(state_dir: Path | None = None, *, delays: bool = False) -> DemoInternet:
        net = start_on_free_ports(state_dir or tmp_path / f"demo-{len(started)}", delays=delays)
        started.append(net)
        return net

    try:
        yield start
    finally:
        for net in started:
            net.stop()


# --- headless Chromium (tests/browser.py): one browser per session, a fresh page per test ---

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last: while Playwright's sync API is up, its loop counts as running
    in the main thread and asyncio.run() there fails (tests/browser.py)."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's /usr/bin/chromium through Playwright's sync API; skips when either is
    missing (``./dev test`` installs chromium as root)."""
    import browser as chromium

    reason = chromium.skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    chromium.assert_no_running_loop()
    with sync_playwright() as playwright:
        b = chromium.launch(playwright)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[BrowserPage]:
    """A new context (1280x900) and page that records console messages, page errors,
    dialogs and every request it tries: ``page.page`` is Playwright's Page."""
    import browser as chromium

    bp = chromium.new_page(browser)
    try:
        yield bp
    finally:
        bp.context.close()
