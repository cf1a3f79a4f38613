"""The live page's --compare-http in real headless Chromium: tick the box, press Enter, and the
comparison arrives as a step (pending first) with its table of medians, every sample and the
modelled lines; and whatever the comparison carries is shown as text, never run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from browser import ARTIFACTS, BrowserPage
from serve_helpers import Served, demo_args, serve
from test_browser_live import WATCH, assert_only_this_origin, seen
from test_serve_http_compare import compared
from whathappens.demo.command import demo_url
from whathappens.demo.internet import DemoInternet
from whathappens.web.http_compare_events import http_compare_event

pytestmark = pytest.mark.browser

PWN = "window.__pwned=1"
HOSTILE_URL = f"https://www.example.com/<script>{PWN}</script>"
HOSTILE_ERROR = f'"><img src=x onerror="{PWN}">'


@pytest.fixture(scope="module")
def served(demo_internet: DemoInternet) -> Iterator[Served]:
    with serve(*demo_args(demo_internet), "--http3=off") as s:
        yield s


def test_tick_the_box_and_see_the_three_versions_side_by_side(
        page: BrowserPage, served: Served, demo_internet: DemoInternet) -> None:
    p = page.page
    p.goto(served.base + "/", wait_until="load")
    p.evaluate(WATCH)
    assert p.locator("#compare-http").is_visible()
    p.locator("#compare-http").check()
    p.locator("header.top").screenshot(path=str(ARTIFACTS / "live-http-compare-box.png"))
    box = p.locator("#url")
    box.fill(demo_url(demo_internet, None))
    box.press("Enter")
    p.wait_for_selector("#downloads:not([hidden]), #status.bad", timeout=120_000)
    assert p.inner_text("#status").startswith("Done in ")
    rows = seen(page)
    # the comparison announced itself while it ran, then arrived before the report
    assert ("http-compare", True) in [(s, pending) for s, _, pending in rows]
    order = list(dict.fromkeys(s for s, _, pending in rows if not pending))
    assert order[-3:] == ["tls-compare", "http-compare", "report"]
    step = p.locator("#steps li[data-step=http-compare]")
    assert step.count() == 1
    assert "pending" not in (step.get_attribute("class") or "")
    assert "median of 3 fresh connections each" in step.locator(".step-sum").inner_text()
    heads = step.locator("thead th").all_text_contents()  # as written (CSS upper-cases it)
    assert heads[1:] == ["set-up", "TTFB", "first byte from the first packet", "round trips"]
    cells = [r.locator("td").all_inner_texts() for r in step.locator("tbody tr").all()]
    assert [c[0] for c in cells] == ["HTTP/1.1", "HTTP/2", "HTTP/3"]
    assert [c[4] for c in cells] == ["3", "3", "2"]
    assert all(c[3].endswith(" ms") for c in cells)
    samples = step.locator("ul.samples li").all_inner_texts()
    assert len(samples) == 3
    assert all(s.count("round ") == 3 for s in samples)
    modelled = step.locator("p.modelled").all_inner_texts()
    assert modelled
    assert all(m.startswith("modelled, not measured") for m in modelled)
    assert step.locator(".explain.beginner").inner_text()
    assert p.locator("#report section#http-compare").count() == 1
    assert page.console_errors() == []
    assert page.errors == []
    assert_only_this_origin(page, served)
    page.screenshot("live-http-compare")
    step.screenshot(path=str(ARTIFACTS / "live-http-compare-step.png"))


def sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def test_what_the_comparison_carries_is_shown_as_text(page: BrowserPage,
                                                      served: Served) -> None:
    """The step's event exactly as the server makes it (http_compare_event), with markup in
    the URL, a sample's error and a modelled line: app.js puts it all in as text."""
    hc = compared(error=HOSTILE_ERROR)
    hc.url = HOSTILE_URL
    hc.modelled.append(f"modelled, not measured: <script>{PWN}</script>")
    stream = (sse("start", {"url": HOSTILE_URL, "public": False})
              + sse("step", http_compare_event(hc)) + sse("end", {"exit_code": 0}))
    p = page.page
    p.route("**/api/journey", lambda route: route.fulfill(
        status=200, headers={"content-type": "text/event-stream; charset=utf-8"}, body=stream))
    p.goto(served.base + "/", wait_until="load")
    p.locator("#compare-http").check()
    p.locator("#url").fill(HOSTILE_URL)
    p.locator("#url").press("Enter")
    step = p.locator("#steps li[data-step=http-compare]")
    step.wait_for(timeout=10_000)
    p.wait_for_timeout(300)  # a late onerror would have fired by now
    assert p.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []
    assert p.locator("#steps script, #steps img").count() == 0
    text = step.inner_text()
    assert HOSTILE_URL in text
    assert HOSTILE_ERROR in text
    assert f"<script>{PWN}</script>" in step.locator("p.modelled").last.inner_text()
    assert page.errors == []
