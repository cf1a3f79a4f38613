"""The live page in real headless Chromium: type a URL, press Enter, watch the steps arrive.

``whathappens serve`` runs as its own process (so its asyncio loop never meets Playwright's);
journeys go through the test session's demo internet, a stalling server and a hostile one.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import PHONE, BrowserPage, new_page
from misbehaving import RawServer, read_request_head, wait_until_closed
from serve_helpers import Served, demo_args, serve
from test_browser_report import HOSTILE, hostile_internet
from whathappens.demo.command import demo_url
from whathappens.demo.internet import DemoInternet

pytestmark = pytest.mark.browser

# Records when each step row and the report appear (performance.now(), ms), page-side.
WATCH = """() => {
  window.__seen = [];
  window.__shift = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__shift += e.value;
  }).observe({type: 'layout-shift', buffered: false});
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) {
      if (n.nodeType === 1 && n.dataset && n.dataset.step) {
        window.__seen.push([n.dataset.step, performance.now(), n.classList.contains('pending')]);
      }
    }
  }).observe(document.getElementById('steps'), {childList: true});
  new MutationObserver(() => {
    if (document.getElementById('report').childElementCount) {
      window.__seen.push(['report', performance.now(), false]);
    }
  }).observe(document.getElementById('report'), {childList: true});
}"""


@pytest.fixture(scope="module")
def served(demo_internet: DemoInternet) -> Iterator[Served]:
    with serve(*demo_args(demo_internet)) as s:
        yield s


def trace(page: BrowserPage, served: Served, url: str, *, timeout: float = 60_000) -> None:
    p = page.page
    p.goto(served.base + "/", wait_until="load")
    p.evaluate(WATCH)
    box = p.locator("#url")
    box.fill(url)
    box.press("Enter")
    p.wait_for_selector("#downloads:not([hidden]), #status.bad", timeout=timeout)


def seen(page: BrowserPage) -> list[tuple[str, float, bool]]:
    rows: list[Any] = page.page.evaluate("window.__seen")
    return [(str(a), float(b), bool(c)) for a, b, c in rows]


def assert_only_this_origin(page: BrowserPage, served: Served) -> None:
    others = [u for u in page.requests if not u.startswith(served.base + "/")]
    assert others == [], others


def test_type_a_url_press_enter_and_watch_the_steps_arrive(
        page: BrowserPage, served: Served, demo_internet: DemoInternet) -> None:
    trace(page, served, demo_url(demo_internet, None))
    p = page.page
    # First appearance of each row (the DNS row appears while its hops arrive, and is
    # completed in place when the step ends).
    order = list(dict.fromkeys(s for s, _, pending in seen(page) if not pending))
    # The demo's HTTPS record advertises h3: the page's journey is a browser's, over QUIC.
    assert order == ["url", "dns", "quic", "http", "leg", "revalidate", "tls-compare",
                     "report"]
    hops = p.locator("#steps li[data-step=dns] ol.hops li")
    assert hops.count() >= 5  # resolver questions and the walk's hops
    text = p.inner_text("#steps li[data-step=dns] ol.hops")
    assert "a.root-servers.net" in text
    assert "referral to the com. servers" in text
    times = [t for _, t, _ in seen(page)]
    assert times == sorted(times)
    # The demo's DNS alone takes ~100 ms (injected delays): the first rows were on the page
    # well before the report, not all at the end.
    first = next(t for s, t, _ in seen(page) if s == "url")
    report = next(t for s, t, _ in seen(page) if s == "report")
    assert report - first > 50
    rows = p.locator("#steps > li")
    assert rows.count() == 7  # the six steps and the revalidation
    assert "QUIC v1" in p.inner_text("#steps li[data-step=quic]")
    assert "200" in p.inner_text("#steps li[data-step=http]")
    assert "304 Not Modified" in p.inner_text("#steps li[data-step=revalidate]")
    assert p.inner_text("#status").startswith("Done in ")
    for section in ("glance", "url", "dns", "quic", "http", "caching", "waterfall",
                    "tls-compare", "layers", "cheatsheet"):
        assert p.locator(f"#report section#{section}").count() == 1, section
    links = p.locator("#report .report-nav a")
    assert links.count() >= 9
    p.locator("#report .report-nav a[href='#waterfall']").click()
    assert p.locator("#waterfall").is_visible()
    # The waterfall's bars were placed by app.js from data-* (no inline style under the CSP).
    width = p.evaluate("getComputedStyle(document.querySelector('#report .bar')).width")
    assert width != "auto"
    assert float(width.removesuffix("px")) > 0
    assert p.get_attribute("#dl-har", "href", timeout=1000).endswith(".har")  # type: ignore[union-attr]
    # Steps stream in below what is already there: nothing on screen jumps (cumulative
    # layout shift under 0.1, what web.dev calls good — counting even the shifts right after
    # Enter, which the browser's own metric would forgive).
    assert p.evaluate("window.__shift") < 0.1
    # Nothing broke the policy (a violation is a console error), nothing left this origin.
    assert page.console_errors() == []
    assert page.errors == []
    assert_only_this_origin(page, served)
    page.screenshot("live-demo-desktop")


def test_beginner_and_advanced_switch_on_the_live_page(
        page: BrowserPage, served: Served, demo_internet: DemoInternet) -> None:
    trace(page, served, demo_url(demo_internet, None))
    p = page.page

    def shown(selector: str) -> bool:
        return bool(p.locator(selector).first.is_visible())

    assert shown("#steps .explain.beginner")
    assert not shown("#steps .explain.advanced")
    p.locator("label[for=mode-advanced]").click()
    assert shown("#steps .explain.advanced")
    assert not shown("#steps .explain.beginner")
    assert shown("#report .explain.advanced")
    # Keyboard: the switch is a pair of radio buttons; arrows move between them.
    p.focus("#mode-advanced")
    p.keyboard.press("ArrowLeft")
    assert p.is_checked("#mode-beginner")
    assert shown("#steps .explain.beginner")
    page.screenshot("live-demo-beginner")


def test_the_live_page_fits_a_phone(browser: Any, served: Served,
                                    demo_internet: DemoInternet) -> None:
    bp = new_page(browser, PHONE)
    try:
        trace(bp, served, demo_url(demo_internet, None))
        overflow = bp.page.evaluate(
            "document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 1
        bp.screenshot("live-demo-phone")
        assert bp.console_errors() == []
    finally:
        bp.context.close()


def test_a_slow_server_shows_the_steps_before_it_answers(page: BrowserPage,
                                                          served: Served) -> None:
    def slow(conn: socket.socket) -> None:
        read_request_head(conn)
        time.sleep(1.5)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        wait_until_closed(conn, 2)

    with RawServer(slow) as server:
        trace(page, served, server.url())
    tcp = next(t for s, t, _ in seen(page) if s == "tcp")
    report = next(t for s, t, _ in seen(page) if s == "report")
    assert report - tcp >= 1200  # the TCP row was there while the server still thought


def test_a_failure_is_shown_in_plain_words(page: BrowserPage, served: Served) -> None:
    trace(page, served, "https://exa mple.com/")
    p = page.page
    assert "bad" in (p.get_attribute("#status", "class") or "")
    assert "url" in p.inner_text("#status")
    assert p.locator("#steps li.failed[data-step=url]").count() == 1
    assert page.errors == []


def test_a_hostile_server_runs_nothing_on_the_live_page(page: BrowserPage,
                                                         tmp_path: Path) -> None:
    with hostile_internet(tmp_path) as evil, \
            serve("--resolver", evil.resolver, "--dns-views", "resolver",
                  "--cacert", evil.cafile, "--no-compare-tls") as s:
        trace(page, s, evil.url)
        p = page.page
        p.wait_for_timeout(300)  # a late onerror or refresh would have fired by now
        assert p.evaluate("typeof window.__pwned") == "undefined"
        assert page.dialogs == []
        assert page.errors == []
        assert_only_this_origin(page, s)
        text = p.inner_text("body")
        p.locator("label[for=mode-advanced]").click()
        text += p.inner_text("body")
        shown = [payload for payload in HOSTILE if payload in text]
        # The payloads are on the page as text (escaped, not dropped).
        assert len(shown) >= len(HOSTILE) // 2, (shown, HOSTILE)
        assert p.locator("#report script, #steps script, #report img, #report svg").count() == 0
        page.screenshot("live-hostile")


# WCAG 2.x contrast (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio) of every text-bearing
# element against the first opaque background behind it; AA asks 4.5:1 for body text.
CONTRAST = """() => {
  function rgb(c) { const m = c.match(/[\\d.]+/g).map(Number); return m; }
  function lum(c) {
    const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function background(el) {
    for (let n = el; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length < 4 || c[3] > 0.9) return c;
    }
    return [255, 255, 255];
  }
  const worst = [];
  for (const el of document.querySelectorAll('body *')) {
    const direct = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!direct || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || parseFloat(style.opacity) < 0.5) continue;
    const fg = rgb(style.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < 4.5) worst.push([el.tagName + '.' + el.className, ratio.toFixed(2),
                                 el.textContent.trim().slice(0, 30)]);
  }
  return worst;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_has_enough_contrast(browser: Any, served: Served, demo_internet: DemoInternet,
                                  scheme: str) -> None:
    bp = new_page(browser)
    try:
        bp.page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        trace(bp, served, demo_url(demo_internet, None))
        for mode in ("beginner", "advanced"):
            bp.page.locator(f"label[for=mode-{mode}]").click()
            low = bp.page.evaluate(CONTRAST)
            assert low == [], f"{scheme}/{mode}: text under 4.5:1: {low[:8]}"
    finally:
        bp.context.close()
