"""The browser phase in real headless Chromium against a real HTTPS server on 127.0.0.1.

The test site (``page_server``) serves, over HTTP/2 with a test PKI, a page with a
render-blocking stylesheet, an LCP image and a late layout shift, each part waiting a stated
delay; it records on our own clock when each request arrived and its response left, so the
browser's times can be checked against ours: the clock is one, not estimated.

Playwright's async API runs in a thread of its own (``off_the_loop``): the session's sync
browser fixture may be up in the main thread (tests/browser.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser import off_the_loop, skip_reason
from journey_helpers import check_universal, demo_url, schema_errors, trace
from page_server import HOST, Part, Site, page_site, png
from whathappens.browser import capture
from whathappens.browser.chromium import BrowserOptions, chromium_version
from whathappens.browser.live import MAX_LIVE
from whathappens.browser.phase import WarmBrowser, after_journey, browser_phase
from whathappens.demo.internet import DemoInternet
from whathappens.demo.page import FONT_CANDIDATES
from whathappens.demo.topology import PAGE_DELAYS_MS
from whathappens.journey import Journey, Span
from whathappens.net.tls import TlsOptions
from whathappens.trace import Options, run_journey

NO_CERTUTIL = shutil.which("certutil") is None
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
              pytest.mark.skipif(NO_CERTUTIL, reason="certutil is missing: apt-get install "
                                 "libnss3-tools (./dev test does it as root)")]

CSS_DELAY_MS = 400
HERO_DELAY_MS = 700
SHIFT_AFTER_MS = 150

PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>phase test</title>
<link rel="stylesheet" href="/style.css">
</head><body>
<h1>What happens</h1>
<p>A paragraph of text that paints first, once the stylesheet has arrived.</p>
<div id="slot"></div>
<img id="hero" class="lcp" src="/hero.png" width="800" height="450" alt="hero">
<script>
performance.mark('app-start');
performance.mark('our binding is ' + typeof globalThis.__whathappensLive);
// The banner comes SHIFT_AFTER_MS after the hero, the page's last file: after load, well
// within the capture's quiet window (a shift later than that after the page's last activity
// is not waited for).
function banner() {{
  performance.measure('to-banner', 'app-start');
  const ad = document.createElement('div');
  ad.className = 'banner';
  ad.style.height = '250px';
  ad.textContent = 'a late banner';
  document.getElementById('slot').appendChild(ad);
}}
document.getElementById('hero').addEventListener('load', () => setTimeout(banner,
                                                                         {SHIFT_AFTER_MS}));
fetch('/beacon').then((r) => r.text());
</script>
</body></html>""".encode()

PARTS = {
    "/": Part(PAGE, "text/html; charset=utf-8"),
    "/style.css": Part(b"body{font:18px sans-serif;margin:20px} h1{color:#246}",
                       "text/css", CSS_DELAY_MS),
    "/hero.png": Part(png(320, 180), "image/png", HERO_DELAY_MS),
    "/beacon": Part(b"{}", "application/json"),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with page_site(tmp_path_factory.mktemp("page"), PARTS) as s:
        yield s


def options(site: Site, **kw: Any) -> BrowserOptions:
    kw.setdefault("cafile", site.cafile)
    return BrowserOptions(host=HOST, address=site.address, **kw)


# What the journey's listener heard, in order: (our clock when heard, the span).
HEARD: list[tuple[int, Span[Any]]] = []


def run_phase(url: str, opts: BrowserOptions) -> tuple[Journey, Span[Any], int, int]:
    """A journey with only the browser phase; returns it with our clock before and after."""
    def go() -> tuple[Journey, Span[Any], int, int]:
        journey = Journey(url)
        HEARD.clear()
        journey.listener = lambda s: HEARD.append((time.perf_counter_ns(), s))
        before = time.perf_counter_ns()
        span = asyncio.run(browser_phase(journey, url, opts))
        return journey, span, before, time.perf_counter_ns()
    return off_the_loop(go)


def failed_requests(span: Span[Any]) -> list[tuple[str, str]]:
    return [(c.facts.url, c.facts.failed) for c in span.children
            if c.name == "browser.resource" and c.facts.failed]


@pytest.fixture(scope="module")
def loaded(site: Site) -> tuple[Journey, Span[Any], int, int, list[tuple[int, Span[Any]]]]:
    """The page, loaded once for the tests below. One CI run (of many) saw Chromium end the
    hero's request without a response, before the server had answered it, and fire load
    without it (not reproduced in 50 loads under four busy loops): the tests below are about
    a page whose parts all arrive, so such a load is reported as a warning, with Chromium's
    own words, and the page loaded once more (its requests must then all arrive)."""
    journey, span, before, after = run_phase(site.url("/"), options(site))
    if failed := failed_requests(span):
        import warnings
        warnings.warn(f"Chromium failed requests of the test page, loading it again: "
                      f"{failed}; settle: {span.facts.settle_ended}", stacklevel=1)
        journey, span, before, after = run_phase(site.url("/"), options(site))
    return journey, span, before, after, list(HEARD)


def marks(span: Span[Any], name: str) -> list[Span[Any]]:
    return [c for c in span.children if c.name == "browser.mark" and c.facts.mark == name]


def resource(span: Span[Any], path: str) -> Span[Any]:
    found = [c for c in span.children if c.name == "browser.resource"
             and c.facts.url.endswith(path)]
    assert len(found) == 1, [c.facts.url for c in span.children if c.name == "browser.resource"]
    return found[0]


def served(site: Site, journey: Journey, path: str) -> tuple[int, int]:
    """The server's (received, responding) for ``path`` in this journey's load."""
    return next(e for e in site.log[path] if e[0] >= journey.clock.origin_ns)


def abs_ns(journey: Journey, t_ns: int) -> int:
    return journey.clock.origin_ns + t_ns


def test_the_page_loads_and_its_facts_are_filled(loaded: Any) -> None:
    journey, span, *_ = loaded
    f = span.facts
    assert f.outcome == "loaded", f.why
    assert f.browser.startswith("Chromium ")
    assert span.actor == f.browser
    assert f.status == 200
    # the page's four, and the favicon Chromium asks for itself after load
    assert f.requests == len([c for c in span.children if c.name == "browser.resource"]) == 5
    assert not failed_requests(span)
    assert f.bytes_on_wire > len(PARTS["/hero.png"].body)
    assert f.launch_ms > 0
    assert f.warm is False
    assert f.filmstrip, "no screenshot frames"
    assert all(fr.image.startswith("data:image/jpeg;base64,") for fr in f.filmstrip)
    assert len(f.filmstrip) <= 12
    assert f.dom_content_loaded_ms is not None
    assert f.load_ms is not None
    assert f.dom_content_loaded_ms <= f.load_ms
    check_universal(journey)


def test_a_server_event_lands_inside_chromium_s_request_on_our_clock(
        loaded: Any, site: Site) -> None:
    """The clock test: our own reading of when the server got /beacon and answered lies
    between Chromium's requestWillBeSent and loadingFinished for it, and the whole page
    lies between our readings before and after the phase."""
    journey, span, before, after, _ = loaded
    beacon = resource(span, "/beacon")
    received, sent = served(site, journey, "/beacon")
    assert abs_ns(journey, beacon.start_ns) <= received
    assert sent <= abs_ns(journey, beacon.end_ns)
    for child in span.children:
        assert before <= abs_ns(journey, child.start_ns) <= after
    # The trace's clock, both ways: the inline script that calls fetch('/beacon') started
    # before the server saw that request; the stylesheet was parsed after the server
    # began to answer it.
    inline = [c for c in span.children if c.name == "browser.stage"
              and c.facts.stage == "script" and c.facts.url == site.url("/")]
    assert abs_ns(journey, inline[0].start_ns) <= received
    cssom = [c for c in span.children if c.name == "browser.stage" and c.facts.stage == "cssom"]
    assert abs_ns(journey, cssom[0].start_ns) >= served(site, journey, "/style.css")[1]


def test_fcp_waits_for_the_render_blocking_stylesheet(loaded: Any, site: Site) -> None:
    journey, span, *_ = loaded
    f = span.facts
    css = resource(span, "/style.css")
    assert css.facts.render_blocking == "blocking"
    assert css.facts.resource_type == "Stylesheet"
    assert f.fcp_ms >= CSS_DELAY_MS
    (fcp,) = marks(span, "fcp")
    _, css_sent = served(site, journey, "/style.css")
    assert abs_ns(journey, fcp.start_ns) >= css_sent  # painted after the CSS left the server
    assert f.first_paint_ms <= f.fcp_ms


def test_lcp_is_the_delayed_image(loaded: Any, site: Site) -> None:
    journey, span, *_ = loaded
    f = span.facts
    assert f.lcp_ms >= HERO_DELAY_MS
    assert f.lcp_element == "img#hero.lcp"
    assert f.lcp_url == site.url("/hero.png")
    (lcp,) = marks(span, "lcp")
    assert lcp.facts.element == "img#hero.lcp"
    _, hero_sent = served(site, journey, "/hero.png")
    assert abs_ns(journey, lcp.start_ns) >= hero_sent


def test_the_late_banner_shifts_the_layout(loaded: Any) -> None:
    _, span, *_ = loaded
    f = span.facts
    assert f.cls is not None
    assert f.cls > 0
    assert f.layout_shifts
    assert any("img#hero.lcp" in s.moved for s in f.layout_shifts), f.layout_shifts
    shift = marks(span, "layout_shift")
    assert shift
    assert shift[0].facts.value > 0


def test_every_request_shares_one_http2_connection(loaded: Any) -> None:
    _, span, *_ = loaded
    resources = [c for c in span.children if c.name == "browser.resource"]
    assert resources[0].facts.navigation
    assert resources[0].facts.resource_type == "Document"
    assert {r.facts.protocol for r in resources} == {"h2"}
    assert len({r.facts.connection_id for r in resources}) == 1
    assert all(r.facts.connection_reused for r in resources[1:])
    # the NetLog's streams: one per request, client-initiated (odd), the document's first
    streams = [r.facts.stream_id for r in resources]
    assert streams[0] == 1
    assert len(set(streams)) == len(streams)
    assert all(isinstance(n, int) and n % 2 == 1 for n in streams)
    doc = resources[0].facts
    assert doc.remote_address == f"127.0.0.1:{urlsplit(doc.url).port}"
    if doc.connection_reused:  # Chromium preconnected: its document timing shows no connect
        assert doc.note


def test_the_rendering_path_runs_in_causal_order(loaded: Any) -> None:
    _, span, *_ = loaded

    def first(stage: str) -> int:
        return min(c.start_ns for c in span.children
                   if c.name == "browser.stage" and c.facts.stage == stage)

    (fp,) = marks(span, "first_paint")
    (fcp,) = marks(span, "fcp")
    (lcp,) = marks(span, "lcp")
    (dcl,) = marks(span, "dom_content_loaded")
    assert first("dom") < first("cssom") < first("layout") < first("paint") <= fp.start_ns
    assert first("style") < first("layout")
    assert fp.start_ns <= fcp.start_ns <= lcp.start_ns
    assert first("dom") < dcl.start_ns
    doc = resource(span, "/")
    assert doc.start_ns < first("dom")


def test_a_warm_browser_is_reused_without_a_launch(site: Site) -> None:
    """Started once, then used by journeys each on its own thread and event loop (as
    ``serve`` runs them): a fresh context each, no launch counted."""
    opts = options(site)
    warm = WarmBrowser(opts)
    off_the_loop(asyncio.run, warm.start())
    try:
        spans = [off_the_loop(asyncio.run, browser_phase(Journey(site.url("/")), site.url("/"),
                                                         opts, warm=warm))
                 for _ in range(2)]
        assert warm.serves(opts)
        # a journey with another CA is not served by it: it gets a browser of its own
        assert not warm.serves(options(site, cafile=None))
    finally:
        off_the_loop(asyncio.run, warm.close())
    for span in spans:
        assert span.facts.outcome == "loaded", span.facts.why
        assert span.facts.warm is True
        assert span.facts.launch_ms is None
        assert span.facts.fcp_ms >= CSS_DELAY_MS
        assert span.facts.lcp_element == "img#hero.lcp"
        # the streams, from the warm browser's NetLog as Chromium writes it
        assert not any("stream ids" in n for n in span.facts.notes), span.facts.notes
        assert h2_stream_ids(span)[0] == 1  # a fresh context: a connection of its own
    assert spans[0].facts.browser == spans[1].facts.browser


def h2_stream_ids(span: Span[Any]) -> list[int]:
    """Each HTTP/2 request's stream, the document's first; every one known, each once."""
    resources = [c.facts for c in span.children if c.name == "browser.resource"
                 and c.facts.protocol == "h2" and not c.facts.from_cache]
    streams = [r.stream_id for r in resources]
    assert all(isinstance(n, int) and n % 2 == 1 for n in streams), streams
    assert len(set(streams)) == len(streams)
    return [n for n in streams if n is not None]


def test_a_warm_browser_whose_netlog_grew_is_replaced_between_pages(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-running serve keeps its NetLog bounded: past the size, the next page gets a
    fresh browser (and NetLog) and the old one is closed once its pages are done."""
    monkeypatch.setattr(capture, "WARM_NETLOG_ROTATE", 1)
    opts = options(site)
    warm = WarmBrowser(opts)

    async def two() -> tuple[list[Span[Any]], bool, bool]:
        try:
            first = await browser_phase(Journey(site.url("/")), site.url("/"), opts, warm=warm)
            old = warm.chromium
            second = await browser_phase(Journey(site.url("/")), site.url("/"), opts, warm=warm)
            assert old is not None
            for _ in range(50):  # the old one closes in the background
                if not old.browser.is_connected():
                    break
                await asyncio.sleep(0.1)
            return [first, second], warm.chromium is not old, old.browser.is_connected()
        finally:
            await warm.close()

    spans, replaced, old_connected = off_the_loop(asyncio.run, two())
    assert replaced
    assert not old_connected
    for span in spans:
        assert span.facts.outcome == "loaded", span.facts.why
        assert h2_stream_ids(span)[0] == 1


def test_the_first_journey_starts_a_warm_browser_and_pays_its_launch(site: Site) -> None:
    opts = options(site)
    warm = WarmBrowser(opts)

    async def two() -> list[Span[Any]]:
        try:
            return [await browser_phase(Journey(site.url("/")), site.url("/"), opts, warm=warm)
                    for _ in range(2)]
        finally:
            await warm.close()

    first, second = off_the_loop(asyncio.run, two())
    assert (first.facts.warm, second.facts.warm) == (False, True)
    assert first.facts.launch_ms > 0
    assert second.facts.launch_ms is None


def test_only_the_journey_s_ca_is_trusted(site: Site, tmp_path: Path) -> None:
    """Another CA in the profile: Chromium refuses the page and says why; no bypass."""
    with page_site(tmp_path, PARTS, root_cn="Some Other Root") as other:
        journey, span, _, _ = run_phase(other.url("/"), options(other, cafile=site.cafile))
    f = span.facts
    assert f.outcome == "failed"
    assert "ERR_CERT_AUTHORITY_INVALID" in f.why
    assert "not the CA the journey trusted" in f.why
    assert other.log.get("/style.css") is None  # nothing past the document was fetched
    assert journey.exit_code == 0
    assert any(x.step == "browser" for x in journey.findings)
    check_universal(journey)


def test_without_chromium_the_phase_is_skipped_with_how_to_install(site: Site) -> None:
    journey, span, _, _ = run_phase(site.url("/"),
                                    options(site, executable="/nonexistent/chromium"))
    f = span.facts
    assert f.outcome == "skipped"
    assert "apt-get install chromium libnss3-tools" in f.why
    assert journey.exit_code == 0
    assert [x.message for x in journey.findings if x.step == "browser"] == [
        f"browser phase skipped: {f.why}"]
    check_universal(journey)


def test_after_a_real_journey_the_json_carries_the_browser_spans(site: Site) -> None:
    url = site.url("/")

    async def both() -> Journey:
        opts = Options(resolve={(HOST, site.port): [site.address]},
                       tls=TlsOptions(cafile=site.cafile))
        journey = await run_journey(url, opts)
        await browser_phase(journey, url, options(site))
        return journey

    journey = off_the_loop(asyncio.run, both())
    assert journey.exit_code == 0
    doc = journey.to_dict()
    names = [s["name"] for s in doc["spans"]]
    assert names[-1] == "browser"
    assert doc["spans"][-1]["attrs"]["outcome"] == "loaded"
    check_universal(journey)


def test_the_page_s_budgets_stop_it_and_say_why(site: Site) -> None:
    _, span, _, _ = run_phase(site.url("/"), options(site, max_requests=2))
    f = span.facts
    assert f.outcome == "failed"
    assert f.why == "the page was stopped: the page made more than 2 requests"
    assert f.requests >= 3


def test_a_page_that_never_loads_is_cut_at_the_time_budget(tmp_path: Path) -> None:
    stalled = {"/": Part(b"<!doctype html><p>waiting<img src='/never.png'>", "text/html"),
               "/never.png": Part(png(10, 10), "image/png", 30_000)}
    with page_site(tmp_path, stalled) as slow:
        # 9 s: 3 are kept for the trace, and a launch can take 2-3 s on a busy 2-core box
        _, span, before, after = run_phase(slow.url("/"), options(slow, timeout=9))
    f = span.facts
    assert f.outcome == "failed"
    assert "had not finished loading" in f.why
    assert (after - before) / 1e9 < 9 + 2
    never = resource(span, "/never.png")
    assert never.facts.failed == "net::ERR_ABORTED (cancelled)"  # stopped with the page
    assert f.fcp_ms is not None  # what happened before the cut is still there


def test_the_trace_read_back_is_bounded(site: Site) -> None:
    _, span, _, _ = run_phase(site.url("/"), options(site, max_trace_bytes=200_000))
    f = span.facts
    assert f.trace_bytes <= 200_000 + 1024 * 1024  # at most one IO.read piece past the cap
    assert "the trace was cut at 0 MiB" in f.notes or any("cut" in n for n in f.notes)
    assert f.outcome == "loaded"
    assert f.requests == 5  # the network side does not depend on the trace


def test_the_throwaway_profile_is_removed(site: Site, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _, span, _, _ = run_phase(site.url("/"), options(site))
    assert span.facts.outcome == "loaded"
    assert list(tmp_path.glob("whathappens-chromium-*")) == []


def test_whathappens_url_browser_writes_the_browser_spans_in_its_json(site: Site) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "whathappens", site.url("/"), "--browser", "--json",
         "--resolve", f"{HOST}:{site.port}:{site.address}", "--cacert", site.cafile,
         "--dns-views", "system"],
        capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert schema_errors(doc) == []
    (browser,) = [s for s in doc["spans"] if s["name"] == "browser"]
    attrs = browser["attrs"]
    assert attrs["outcome"] == "loaded"
    assert attrs["address"] == site.address
    assert attrs["trusted_ca"] == site.cafile
    assert attrs["fcp_ms"] >= CSS_DELAY_MS
    assert attrs["lcp_element"] == "img#hero.lcp"
    leg_end = max(s["end_ms"] for s in doc["spans"] if s["name"] == "leg")
    assert browser["start_ms"] >= leg_end  # after the journey, on the same timeline


def test_demo_browser_loads_the_demo_page_after_its_journey(demo_internet: DemoInternet) -> None:
    """``demo --browser``'s path: the journey through the demo internet, then the page at the
    address its connection used, trusting the demo's CA (whatever the demo page holds today)."""
    def go() -> Journey:
        journey = trace(demo_internet, demo_url(demo_internet))
        asyncio.run(after_journey(journey, BrowserOptions(cafile=str(demo_internet.ca))))
        return journey

    journey = off_the_loop(go)
    (span,) = [s for s in journey.spans if s.name == "browser"]
    f = span.facts
    assert f.outcome == "loaded", f.why
    # The journey went over HTTP/3 (the demo's HTTPS record advertises h3); the browser
    # loads the page from the same address, over TCP (it runs with --disable-quic).
    conn = next(s for s in journey.all_spans() if s.name == "quic")
    assert f.address == conn.facts.address
    doc = resource(span, "/")
    assert doc.facts.navigation
    assert doc.facts.remote_address.rsplit(":", 1)[0].strip("[]") == conn.facts.address
    assert f.fcp_ms is not None
    if any(p.exists() for p in FONT_CANDIDATES):  # the demo serves its heading font
        fonts = [c for c in span.children if c.name == "browser.stage"
                 and c.facts.stage == "font_load"]
        assert [c.facts.url.rsplit("/", 1)[-1] for c in fonts] == ["heading.ttf"]
        assert fonts[0].facts.name  # the family, as the font names itself
        assert fonts[0].end_ns - fonts[0].start_ns >= PAGE_DELAYS_MS["font"] * 1e6
    assert journey.exit_code == 0
    check_universal(journey)


def test_a_journey_that_never_connected_gets_a_skipped_phase() -> None:
    journey = Journey("https://nowhere.invalid/")
    span = off_the_loop(asyncio.run, after_journey(journey))
    assert span.facts.outcome == "skipped"
    assert span.facts.why == "the journey did not reach the server"


def test_the_live_page_hears_of_each_request_as_it_ends(loaded: Any) -> None:
    """A journey's listener gets every request's span while the page loads, before the
    browser span itself."""
    journey, span, _, _, spans = loaded
    heard = [(s.name, t) for t, s in spans]
    names = [n for n, _ in heard]
    assert names[-1] == "browser"
    assert names.count("browser.resource") == span.facts.requests
    first_heard = next(t for n, t in heard if n == "browser.resource")
    (lcp,) = marks(span, "lcp")
    # the document was told before the hero image (700 ms later) was even painted
    assert first_heard < abs_ns(journey, lcp.start_ns)
    resources = [c for c in span.children if c.name == "browser.resource"]
    assert resources[0].facts.navigation  # the document first in the end
    assert [r.start_ns for r in resources[1:]] == sorted(r.start_ns for r in resources[1:])


def test_the_page_s_moments_are_heard_live_before_load_and_match_the_trace(
        loaded: Any) -> None:
    """Paints and DOMContentLoaded (Page.lifecycleEvent), LCP candidates, the layout shift and
    the page's user timing (the observer in our isolated world) reach the listener while the
    page loads, long before the trace is read; the report keeps the trace's values, which the
    live ones match (lifecycle events exactly, the Performance API's coarsened times within
    a few ms)."""
    journey, span, _, _, spans = loaded
    # Spans heard live are not part of the journey (id 0): the trace's are, told at the end.
    live = [(t, s) for t, s in spans if s.span_id == 0]
    kinds = [s.facts.stage if s.name == "browser.stage" else s.facts.mark for _, s in live]
    assert {"dom_content_loaded", "first_paint", "fcp", "lcp", "load", "layout_shift",
            "user_mark", "user_measure"} <= set(kinds), kinds
    assert all(c.span_id != 0 for c in span.children)
    (load,) = marks(span, "load")
    trace_told = min(t for t, s in spans if s.name == "browser.stage" and s.span_id != 0)
    for kind in ("fcp", "dom_content_loaded", "first_paint"):
        heard_at = next(t for (t, s), k in zip(live, kinds, strict=True) if k == kind)
        assert heard_at < abs_ns(journey, load.start_ns), kind  # before the load event
    for heard_at, _ in live:
        assert heard_at < trace_told  # all of it before the trace was read back

    def live_at(kind: str) -> list[int]:
        return [s.start_ns for s, k in zip((s for _, s in live), kinds, strict=True)
                if k == kind]

    (fcp,) = marks(span, "fcp")
    assert live_at("fcp") == [fcp.start_ns]  # the same CLOCK_MONOTONIC value
    (lcp,) = marks(span, "lcp")
    assert abs(live_at("lcp")[-1] - lcp.start_ns) < 10_000_000
    shift = marks(span, "layout_shift")[0]
    assert abs(live_at("layout_shift")[0] - shift.start_ns) < 10_000_000
    lcp_live = next(s for _, s in live if s.name == "browser.mark" and s.facts.mark == "lcp"
                    and s.facts.url)
    assert lcp_live.facts.element == "img#hero.lcp"


def test_user_timing_and_the_hero_s_decode_come_from_the_trace(loaded: Any, site: Site) -> None:
    journey, span, *_ = loaded
    mark, seen = marks(span, "user_mark")
    assert mark.facts.name == "app-start"
    # the page's own world cannot see the binding our observer reports through
    assert seen.facts.name == "our binding is undefined"
    stages = [c for c in span.children if c.name == "browser.stage"]
    (measure,) = [c for c in stages if c.facts.stage == "user_measure"]
    assert measure.facts.name == "to-banner"
    assert measure.start_ns == mark.start_ns
    assert (measure.end_ns - measure.start_ns) / 1e6 >= SHIFT_AFTER_MS  # measured to the banner
    decodes = [c for c in stages if c.facts.stage == "image_decode"]
    hero = [d for d in decodes if d.facts.url == site.url("/hero.png")]
    assert hero, [(d.facts.url, d.facts.name) for d in decodes]
    _, hero_sent = served(site, journey, "/hero.png")
    assert abs_ns(journey, hero[0].start_ns) >= hero_sent


def test_the_settle_waits_for_a_quiet_page_and_says_why_it_ended(loaded: Any) -> None:
    _, span, *_ = loaded
    f = span.facts
    assert f.settle_ended.startswith("quiet: no request in flight"), f.settle_ended
    assert 500 <= f.settle_ms < 3000
    (load,) = marks(span, "load")
    (shift,) = marks(span, "layout_shift")[:1]
    # the banner's shift came after load, and the settle waited a quiet window after it
    assert shift.start_ns > load.start_ns
    assert f.settle_ms >= (shift.start_ns - load.start_ns) / 1e6 + 500 - 50


def test_chromium_s_version_without_starting_a_browser(loaded: Any) -> None:
    _, span, *_ = loaded
    assert chromium_version() == span.facts.browser  # "Chromium 156.0.…", as launched
    assert chromium_version("/nonexistent/chromium") is None


def test_a_page_marking_in_a_loop_is_heard_a_bounded_number_of_times(tmp_path: Path) -> None:
    """performance.mark() 5,000 times: the observer in our world stops reporting at
    MAX_LIVE, the report lists the first 50 marks, and the page loads as any other."""
    flood = {"/": Part(b"<!doctype html><h1>marks</h1><script>"
                       b"for (let i = 0; i < 5000; i++) performance.mark('m' + i);</script>",
                       "text/html")}
    with page_site(tmp_path, flood) as s:
        _, span, *_ = run_phase(s.url("/"), options(s))
        heard = list(HEARD)
    assert span.facts.outcome == "loaded", span.facts.why
    live = [x for _, x in heard if x.span_id == 0 and x.name == "browser.mark"
            and x.facts.mark == "user_mark"]
    assert 0 < len(live) <= MAX_LIVE
    assert [m.facts.name for m in marks(span, "user_mark")] == [f"m{i}" for i in range(50)]
