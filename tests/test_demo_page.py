"""www.example.com's page in the demo internet: its files, their delays and cache headers over
real HTTPS, and the page in real Chromium (the hero image is the LCP element, the late banner
shifts the layout).

The HTTPS checks use the session's demo internet (delays on) and a private one started with
``--no-delay``. The browser test trusts the demo's CA the way a user's Chromium would: an NSS
database in a throwaway HOME, filled by certutil (never an "ignore certificate errors" flag).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h2.connection
import h2.events
import pytest

from test_demo_internet import WEB, Response, authority, get_h2, tls_socket
from whathappens.demo.internet import DemoInternet
from whathappens.demo.page import PAGE_CACHE, SPECS, build_page, delay_words, describe, find_font
from whathappens.demo.topology import PAGE_DELAYS_MS

if TYPE_CHECKING:
    from playwright.sync_api import Browser

STATIC_CACHE = "public, max-age=86400, immutable"
SLACK_MS = 400.0  # generous: two cores shared with other test sessions
FILES = [spec for spec in SPECS if spec.key != "font" or find_font() is not None]


def timed_get(net: DemoInternet, path: str, headers: list[tuple[str, str]] | None = None,
              ) -> tuple[Response, float]:
    """GET over a fresh h2 connection; the milliseconds from request sent to response read."""
    with tls_socket(net, ["h2"]) as sock:
        started = time.perf_counter()
        response = get_h2(sock, authority(net), path, headers)
        return response, (time.perf_counter() - started) * 1000


def page_files(net: DemoInternet) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in net.info["page"]["files"]}


@pytest.fixture(scope="module")
def quick_internet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoInternet]:
    """A demo internet started with --no-delay."""
    from conftest import start_on_free_ports

    net = start_on_free_ports(tmp_path_factory.mktemp("demo-no-delay"), delays=False)
    try:
        yield net
    finally:
        net.stop()


def test_the_page_links_every_file_and_states_its_delay(demo_internet: DemoInternet) -> None:
    page, _ = timed_get(demo_internet, "/")
    html = page.body.decode()
    assert page.status == 200
    assert page.headers["cache-control"] == PAGE_CACHE
    for spec in FILES:
        # Each file is named on the page with the wait the server was told to inject.
        assert f"<td><code>{spec.path}</code></td><td>{spec.kind}</td>" \
               f"<td>{PAGE_DELAYS_MS[spec.key]:g} ms</td>" in html, spec.path
    assert '<link rel="stylesheet" href="/static/style.css">' in html
    assert '<script src="/static/app.js"></script>' in html             # parser-blocking
    assert '<script src="/static/stats.js" async></script>' in html
    assert 'id="hero" src="/static/hero.png" width="1200" height="450"' in html


def test_internet_json_says_which_delays_were_injected(demo_internet: DemoInternet) -> None:
    files = page_files(demo_internet)
    assert set(files) == {spec.path for spec in FILES}
    for spec in FILES:
        assert files[spec.path]["delay_ms"] == PAGE_DELAYS_MS[spec.key]
        assert files[spec.path]["purpose"] == spec.purpose


def test_the_delays_in_a_few_words(demo_internet: DemoInternet,
                                   quick_internet: DemoInternet) -> None:
    words = delay_words(demo_internet.info["page"])
    assert words.startswith("logo.png 40 ms, dns.svg 80 ms")
    assert words.endswith("hero.png 600 ms")
    assert "style.css 200 ms" in words
    assert delay_words(quick_internet.info["page"]) == ""


def test_without_a_font_package_the_page_has_no_web_font() -> None:
    files = build_page(PAGE_DELAYS_MS, None)
    assert "/static/heading.ttf" not in files
    assert b"@font-face" not in files["/static/style.css"].body
    html = files["/"].body.decode()
    assert "No web font this time" in html
    assert "heading.ttf" not in html
    described = describe(PAGE_DELAYS_MS, None)
    assert described["font"] is None
    assert "font" not in json.dumps(described["files"])


def test_the_page_is_well_formed() -> None:
    """Every element the page opens is closed, in order (void elements aside)."""
    from html.parser import HTMLParser

    void = {"meta", "link", "img", "br", "input"}
    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag not in void:
                stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert stack.pop() == tag

    font = find_font()
    Checker().feed(build_page(PAGE_DELAYS_MS, font)["/"].body.decode())
    assert stack == []


@pytest.mark.parametrize("spec", FILES, ids=lambda s: s.path)
def test_each_file_waits_its_own_delay(demo_internet: DemoInternet, spec: Any) -> None:
    response, took = timed_get(demo_internet, spec.path)
    delay = PAGE_DELAYS_MS[spec.key]
    assert response.status == 200
    assert response.body
    assert delay <= took < delay + SLACK_MS, f"{spec.path}: {took:.0f} ms for {delay:g}"
    assert f'think;dur={delay:.1f};desc="injected delay"' in response.headers["server-timing"]


@pytest.mark.parametrize("spec", FILES, ids=lambda s: s.path)
def test_no_delay_means_no_wait(quick_internet: DemoInternet, spec: Any) -> None:
    response, took = timed_get(quick_internet, spec.path)
    assert response.status == 200
    assert page_files(quick_internet)[spec.path]["delay_ms"] == 0
    assert "think" not in response.headers["server-timing"]
    assert took < min(PAGE_DELAYS_MS[spec.key], 100) + 100


def test_a_delay_override_changes_one_file_only(tmp_path: Path) -> None:
    """``--no-delay --delay hero=300``: the hero waits 300 ms, the page says so, nothing
    else waits."""
    from conftest import start_on_free_ports

    with start_on_free_ports(tmp_path, delay_overrides={"hero": 300}) as net:
        assert page_files(net)["/static/hero.png"]["delay_ms"] == 300
        assert page_files(net)["/static/style.css"]["delay_ms"] == 0
        assert timed_get(net, "/static/hero.png")[1] >= 300
        assert timed_get(net, "/static/style.css")[1] < 200
        assert "<td>image</td><td>300 ms</td>" in timed_get(net, "/")[0].body.decode()


def test_the_no_delay_page_says_so(quick_internet: DemoInternet) -> None:
    html = timed_get(quick_internet, "/")[0].body.decode()
    assert "injected delays off (--no-delay)" in html
    assert "<td>0 ms</td>" in html
    assert not quick_internet.delays


@pytest.mark.parametrize("spec", [s for s in FILES if s.kind != "fetch"], ids=lambda s: s.path)
def test_static_files_are_immutable_with_etags(quick_internet: DemoInternet, spec: Any) -> None:
    response, _ = timed_get(quick_internet, spec.path)
    assert response.headers["cache-control"] == STATIC_CACHE
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    again, _ = timed_get(quick_internet, spec.path, [("if-none-match", etag)])
    assert (again.status, again.body) == (304, b"")


def test_file_types_and_contents(quick_internet: DemoInternet) -> None:
    def get(path: str) -> Response:
        return timed_get(quick_internet, path)[0]

    hero = get("/static/hero.png")
    assert hero.headers["content-type"] == "image/png"
    assert hero.body.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(hero.body[16:20], "big") == 1200           # IHDR width
    assert get("/static/dns.svg").body.startswith(b"<svg")
    assert get("/static/style.css").headers["content-type"] == "text/css; charset=utf-8"
    banner = get("/api/banner")
    assert banner.headers["cache-control"] == "private, no-store"
    assert "/api/banner" in json.loads(banner.body)["text"]
    font = find_font()
    if font is None:
        assert get("/static/heading.ttf").status == 404
        assert "No web font this time" in get("/").body.decode()
    else:
        assert get("/static/heading.ttf").body == font.read_bytes()
        assert "@font-face" in get("/static/style.css").body.decode()


def get_all_h2(net: DemoInternet, paths: list[str]) -> dict[str, int]:
    """Every path requested at once on one h2 connection, as a browser multiplexes them;
    the status of each."""
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    streams: dict[int, str] = {}
    statuses: dict[str, int] = {}
    with tls_socket(net, ["h2"]) as sock:
        for path in paths:
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, [(":method", "GET"), (":scheme", "https"),
                                       (":authority", authority(net)), (":path", path)],
                              end_stream=True)
            streams[stream] = path
        sock.sendall(conn.data_to_send())
        while len(statuses) < len(paths):
            data = sock.recv(65536)
            assert data, "connection closed before every response ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    statuses[streams[event.stream_id]] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length,
                                                   event.stream_id)
            sock.sendall(conn.data_to_send())
    return statuses


def test_files_are_multiplexed_on_one_h2_connection(demo_internet: DemoInternet) -> None:
    """All at once on one connection: the delays overlap (the slowest sets the time)."""
    paths = [spec.path for spec in FILES]
    started = time.perf_counter()
    statuses = get_all_h2(demo_internet, paths)
    took = (time.perf_counter() - started) * 1000
    assert statuses == dict.fromkeys(paths, 200)
    slowest = max(PAGE_DELAYS_MS[spec.key] for spec in FILES)
    assert slowest <= took < slowest + SLACK_MS
    assert took < sum(PAGE_DELAYS_MS[spec.key] for spec in FILES)


# --- the page in Chromium ------------------------------------------------------------------

OBSERVE = """() => new Promise((resolve) => {
  const seen = {lcp: [], shifts: []};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      seen.lcp.push({id: e.element ? e.element.id : null, url: e.url, time: e.startTime,
                     size: e.size});
    }
  }).observe({type: "largest-contentful-paint", buffered: true});
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      seen.shifts.push({value: e.value, time: e.startTime, input: e.hadRecentInput,
                        sources: e.sources.map((s) => s.node ? (s.node.id || s.node.nodeName)
                                                              : null)});
    }
  }).observe({type: "layout-shift", buffered: true});
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  seen.fcp = fcp ? fcp.startTime : null;
  setTimeout(() => resolve(seen), 300);
})"""


def trusting_home(home: Path, ca: Path) -> None:
    """An NSS database under ``home``/.pki/nssdb that trusts ``ca`` for TLS servers, the one
    Chromium on Linux reads (libnss3-tools' certutil)."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True,
                   capture_output=True, timeout=30)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "whathappens demo CA",
                    "-t", "C,,", "-i", str(ca)], check=True, capture_output=True, timeout=30)


@pytest.fixture
def demo_chromium(browser: Browser, tmp_path: Path) -> Iterator[Callable[[DemoInternet], Browser]]:
    """Launch a Chromium (beside the session's) that trusts the demo's CA and resolves
    www.example.com to the demo's web server; closed after the test."""
    import browser as chromium

    if shutil.which("certutil") is None:
        pytest.skip("certutil is missing: apt-get install libnss3-tools")
    launched: list[Browser] = []

    def launch(net: DemoInternet) -> Browser:
        home = tmp_path / "home"
        trusting_home(home, net.ca)
        env: dict[str, str | float | bool] = {**os.environ, "HOME": str(home)}
        b = browser.browser_type.launch(
            executable_path=str(chromium.CHROMIUM), headless=True, env=env,
            args=[*chromium.ARGS, f"--host-resolver-rules=MAP www.example.com {WEB}"])
        launched.append(b)
        return b

    yield launch
    for b in launched:
        b.close()


@pytest.mark.browser
def test_in_chromium_the_hero_is_the_lcp_and_the_banner_shifts_the_layout(
    demo_chromium: Callable[[DemoInternet], Browser], demo_internet: DemoInternet,
) -> None:
    import browser as chromium

    b = demo_chromium(demo_internet)
    context = b.new_context(viewport=chromium.DESKTOP)
    try:
        page = context.new_page()
        # Which connection each response came on (CDP's connectionId, Chromium's socket id).
        connections: dict[str, float] = {}
        cdp = context.new_cdp_session(page)
        cdp.on("Network.responseReceived", lambda e: connections.setdefault(
            urlsplit(e["response"]["url"]).path, e["response"]["connectionId"]))
        cdp.send("Network.enable")
        port = "" if demo_internet.https_port == 443 else f":{demo_internet.https_port}"
        page.goto(f"https://www.example.com{port}/", wait_until="load")
        page.wait_for_selector("#late-banner", timeout=10_000)
        seen = page.evaluate(OBSERVE)
        chromium.save_screenshot(page, "demo-page", full_page=False)
        nav = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        resources = page.evaluate("performance.getEntriesByType('resource').map("
                                  "(e) => [e.name, e.nextHopProtocol])")
    finally:
        context.close()
    assert nav == "h2"
    assert {s.path for s in FILES} | {"/"} <= set(connections), connections
    assert len(set(connections.values())) == 1, connections    # one connection, multiplexed
    assert all(proto == "h2" for _, proto in resources), resources
    assert {urlsplit(url).path for url, _ in resources} >= {s.path for s in FILES}
    last = seen["lcp"][-1]
    assert last["id"] == "hero", seen["lcp"]
    assert last["url"].endswith("/static/hero.png")
    assert last["time"] >= PAGE_DELAYS_MS["hero"]
    assert seen["fcp"] is not None
    assert seen["fcp"] >= PAGE_DELAYS_MS["css"]
    shifts = [s for s in seen["shifts"] if not s["input"]]
    assert sum(s["value"] for s in shifts) > 0, seen["shifts"]
    assert any(s["time"] >= PAGE_DELAYS_MS["css"] + PAGE_DELAYS_MS["banner"] for s in shifts)
