"""The browser phase's outputs in real headless Chromium (tests/browser.py), from the recorded
journey with a browser phase (tests/data/journey_browser.json):

* the HTML report opens offline, quiet, with the filmstrip's data: images decoded;
* its HAR goes through the HAR importer of the DevTools bundled with this Chromium
  (front_end/models/har), which reads back our priorities, resource types and phases;
* the live page (index.html + app.js + the page's CSP, served by a Playwright route) shows the
  browser phase's requests, stages and moments and the filmstrip from the events
  web/events.py makes of the same spans.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from browser import ARTIFACTS, PHONE, BrowserPage, new_page
from serve_helpers import demo_args, serve
from test_browser_report import DEVTOOLS
from whathappens.demo.command import demo_url
from whathappens.demo.internet import DemoInternet
from whathappens.demo.page import FONT_CANDIDATES
from whathappens.render.har import to_har
from whathappens.render.html import HtmlReport, render_html
from whathappens.web.app import PAGE_CSP, _sse
from whathappens.web.events import DETAIL_SPANS, LIVE_SPANS, detail_event, step_event

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

pytestmark = pytest.mark.browser

DATA = Path(__file__).parent / "data"
STATIC = Path(__file__).parent.parent / "src/whathappens/web/static"
ORIGIN = "http://whathappens.test"


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "journey_browser.json").read_text("utf-8"))
    return doc


def test_report_opens_offline_with_the_filmstrip(page: BrowserPage, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(load()), encoding="utf-8")
    page.open_offline(path)
    p = page.page
    sizes = p.evaluate("""() => [...document.querySelectorAll('#browser .filmstrip img')]
        .map(i => [i.complete, i.naturalWidth, i.naturalHeight])""")
    assert sizes == [[True, 8, 6]] * 3
    assert p.locator("#browser .lanes .lane").count() == 7
    assert "FCP waited 308.3 ms for style.css" in p.inner_text("#browser")
    p.locator("#browser").screenshot(path=str(tmp_path / "browser.png"))
    assert page.console == []
    assert page.errors == []
    assert page.aborted == []
    assert len(set(page.requests)) == 1


def test_har_through_devtools_importer(page: BrowserPage) -> None:
    har = to_har(load())
    p = page.page
    p.goto(DEVTOOLS)
    got = p.evaluate("""async (text) => {
        const HAR = await import('./models/har/har.js');
        const root = new HAR.HARFormat.HARRoot(JSON.parse(text));
        return HAR.Importer.Importer.requestsFromHARLog(root.log).map(r => ({
            url: r.url(), status: r.statusCode, type: r.resourceType().name(),
            priority: r.priority(), finished: r.finished, transferSize: r.transferSize,
            timing: r.timing, start: r.startTime, end: r.endTime}));
    }""", json.dumps(har))
    entries = har["log"]["entries"]
    assert len(got) == len(entries) == 10
    for e, r in zip(entries, got, strict=True):
        assert r["finished"] is True
        assert r["url"] == e["request"]["url"]
        # DevTools starts a request after its queueing (blocked includes _blocked_queueing)
        queued = max(e["timings"].get("_blocked_queueing", 0), 0)
        assert (r["end"] - r["start"]) * 1000 == pytest.approx(e["time"] - queued, abs=1e-3)
        if e["pageref"] == "page_2":
            assert r["priority"] == e["_priority"]
            assert r["type"] == e["_resourceType"]
            assert r["transferSize"] == e["response"]["_transferSize"]
            tm = r["timing"]
            assert tm["receiveHeadersEnd"] - tm["sendEnd"] == pytest.approx(
                e["timings"]["wait"], abs=1e-6)
            assert tm["connectStart"] == -1  # the preconnected connection: no connect
    css = next(r for r in got if r["url"].endswith("style.css"))
    assert (css["type"], css["priority"]) == ("stylesheet", "VeryHigh")
    assert page.errors == []
    assert page.console_errors() == []


def stream(journey: dict[str, Any]) -> bytes:
    """The event stream web/app.py would send for this journey: its spans as they end (a
    span ends after its children), then the report."""
    out = [_sse("start", {"url": journey["url"]})]
    legs = 0

    def walk(span: dict[str, Any]) -> None:
        nonlocal legs
        for child in span["children"]:
            walk(child)
        if span["name"] in DETAIL_SPANS:
            out.append(_sse("detail", detail_event(span, legs)))
        elif span["name"] in LIVE_SPANS:
            out.append(_sse("step", step_event(span, None if span["name"] == "url" else legs)))
            legs += span["name"] == "leg"

    for s in journey["spans"]:
        walk(s)
    out.append(_sse("report", {"id": "x",
                               **HtmlReport(journey, inline_style=False).live_parts(),
                               "exit_code": 0, "error": None,
                               "total_ms": journey["total_ms"]}))
    out.append(_sse("end", {}))
    return b"".join(out)


def test_live_page_shows_the_browser_phase(page: BrowserPage) -> None:
    from whathappens.render.html import CSS

    files = {"/": (STATIC / "index.html").read_bytes().replace(b"{{example_url}}", b"")
             .replace(b"{{mode_note}}", b""),
             "/static/app.js": (STATIC / "app.js").read_bytes(),
             "/static/page.css": (CSS + "\n" + (STATIC / "page.css").read_text()).encode(),
             "/static/icon.svg": (STATIC / "icon.svg").read_bytes()}
    types = {"/": "text/html", "/static/app.js": "text/javascript",
             "/static/page.css": "text/css", "/static/icon.svg": "image/svg+xml"}
    body = stream(load())

    def answer(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        headers = {"content-security-policy": PAGE_CSP}
        if path == "/api/journey":
            route.fulfill(status=200, body=body, headers=headers,
                          content_type="text/event-stream")
        elif path in files:
            route.fulfill(status=200, body=files[path], headers=headers,
                          content_type=types[path])
        else:
            route.abort("blockedbyclient")

    p = page.page
    page.context.route("**/*", answer)
    p.goto(ORIGIN + "/", wait_until="load")
    p.locator("#url").fill("https://www.example.com/")
    p.locator("#url").press("Enter")
    p.wait_for_selector("#downloads:not([hidden])")
    row = p.locator("#steps li[data-step=browser]")
    assert row.count() == 1
    text = row.inner_text()
    for words in ("The page, in Chromium", "css style.css · VeryHigh · render-blocking",
                  "at +16.2 ms", "CSSOM style.css", "LCP: img.hero", "FCP +345.2 ms",
                  "needs improvement", "FCP waited 308.3 ms for style.css"):
        assert words in text, words
    assert row.locator(".b-requests li").count() == 9
    assert row.locator(".filmstrip img").count() == 3
    assert p.evaluate("""() => [...document.querySelectorAll('#steps .filmstrip img')]
        .every(i => i.complete && i.naturalWidth === 8)""")
    assert p.locator("#report section#browser").count() == 1
    row.screenshot(path=str(ARTIFACTS / "live-browser-phase.png"))
    assert page.console_errors() == []
    assert page.errors == []


def test_har_imports_through_the_network_panel(page: BrowserPage, tmp_path: Path) -> None:
    """The Network panel's own "Import HAR file" button lists the journey's leg and every
    request the page made, by name."""
    har = to_har(load())
    path = tmp_path / "journey.har"
    path.write_text(json.dumps(har))
    p = page.page
    p.goto(DEVTOOLS)
    button = p.get_by_role("button", name="Import HAR file")
    button.wait_for()
    with p.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(str(path))
    rows = p.locator("td.name-column")
    rows.nth(len(har["log"]["entries"]) - 1).wait_for()
    names = [n.strip() for n in rows.all_inner_texts()]
    assert names == ["www.example.com", "www.example.com", "style.css", "app.js", "async.js",
                     "hero.jpg", "logo.png", "thumb-1.jpg", "font.woff2", "banner.jpg"]
    assert "10 requests" in p.locator(".network-summary-bar").inner_text()
    # DevTools read our _initiator (its line shown from 1, as the capture words it)
    initiators = [n.strip() for n in p.locator("td.initiator-column").all_inner_texts()]
    assert initiators[2] == "www.example.com/:6"
    assert initiators[-1] == "www.example.com/static/async.js:9"
    page.screenshot("devtools-har-browser", full_page=False)
    assert page.errors == []
    assert page.console_errors() == []


@pytest.mark.parametrize("mode", ["beginner", "advanced"])
def test_browser_section_on_a_phone(browser: Browser, tmp_path: Path, mode: str) -> None:
    """No sideways scrolling: the waterfall and stage tables scroll in their own box, the
    lanes and the filmstrip fit (the filmstrip scrolls inside its strip)."""
    path = tmp_path / "report.html"
    path.write_text(render_html(load()), encoding="utf-8")
    bp = new_page(browser, PHONE)
    try:
        bp.open_offline(path)
        p = bp.page
        p.locator(f"label[for=mode-{mode}]").click()
        width = p.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] + 1, width
        wide = p.evaluate("""() => [...document.querySelectorAll('#browser *')]
            .filter(e => e.getClientRects().length
                         && !e.parentElement.closest('.scroll, pre, .filmstrip'))
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName + '.' + e.className).slice(0, 5)""")
        assert wide == []
        assert bp.errors == []
        bp.page.locator("#browser").screenshot(path=str(ARTIFACTS / f"browser-phone-{mode}.png"))
    finally:
        bp.context.close()


# When the browser row's first live moment and its final form appeared (performance.now()),
# and the moments listed while the page was still loading.
WATCH_BROWSER = """() => {
  const seen = window.__browserLive = {marks: null, done: null, texts: []};
  new MutationObserver(() => {
    const working = document.querySelectorAll(
      '#steps li.working[data-step=browser] .b-marks li');
    if (working.length) {
      if (seen.marks === null) seen.marks = performance.now();
      seen.texts = [...working].map((li) => li.textContent);
    }
    if (seen.done === null
        && document.querySelector('#steps li[data-step=browser]:not(.working)')) {
      seen.done = performance.now();
    }
  }).observe(document.getElementById('steps'), {childList: true, subtree: true});
}"""


def test_a_real_journey_streams_its_browser_phase_to_the_live_page(
        page: BrowserPage, demo_internet: DemoInternet) -> None:
    """``serve`` with the browser phase (on where Chromium is) against the demo internet:
    the page's requests, stages and filmstrip reach the live page as the spans end, and the
    report at the end has the browser section."""
    if shutil.which("certutil") is None:
        pytest.skip("certutil is missing: apt-get install libnss3-tools")
    with serve(*demo_args(demo_internet), browser=True) as served:
        p = page.page
        p.goto(served.base + "/", wait_until="load")
        p.evaluate(WATCH_BROWSER)
        p.locator("#url").fill(demo_url(demo_internet, None))
        p.locator("#url").press("Enter")
        p.wait_for_selector("#downloads:not([hidden]), #status.bad", timeout=120_000)
        assert p.inner_text("#status").startswith("Done in ")
        row = p.locator("#steps li[data-step=browser]")
        assert row.count() == 1
        text = row.inner_text()
        assert "style.css" in text
        assert "FCP +" in text
        assert row.locator(".b-requests li").count() >= 5
        assert row.locator(".b-stages li").count() >= 5, text
        assert row.locator(".filmstrip img").count() >= 1
        assert p.evaluate("""() => [...document.querySelectorAll('#steps .filmstrip img')]
            .every(i => i.complete && i.naturalWidth > 0)""")
        assert p.locator("#report section#browser .filmstrip img").count() >= 1
        # The page's moments were on the live page while it loaded, before the browser
        # step ended and the trace's final lists replaced them.
        seen = p.evaluate("window.__browserLive")
        assert seen["marks"] is not None, seen
        assert seen["marks"] < seen["done"]
        assert any(t.startswith("FCP") for t in seen["texts"]), seen["texts"]
        assert any(t.startswith("LCP") for t in seen["texts"]), seen["texts"]
        assert "waited " in text
        assert "after load for the page to settle" in text
        assert "Font heading.ttf" in text or not any(f.exists() for f in FONT_CANDIDATES)
        row.screenshot(path=str(ARTIFACTS / "live-browser-phase-real.png"))
        assert page.console_errors() == []
        assert page.errors == []
        assert [u for u in page.requests if not u.startswith(served.base + "/")] == []
