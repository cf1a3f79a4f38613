"""The HTML report and the HAR in a real browser: Debian's headless Chromium (tests/browser.py).

* The report of a real journey through the demo internet, opened from file:// with every
  request but the file itself aborted: no request, no console or page error, the
  beginner/advanced switch by mouse and keyboard, no sideways scrolling on a phone.
* A real journey to a hostile server (DNS name, certificate, status line, headers, body and a
  ``javascript:`` Location all carrying script): nothing runs, nothing loads, and the payloads
  are on the page as text.
* The HAR of the demo journey imported by Chromium's own DevTools: the Network panel's
  "Import HAR file" button, then its Timing tab, and DevTools' HAR importer
  (front_end/models/har) read back field by field.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

import certgen
from browser import PHONE, BrowserPage, new_page, off_the_loop
from journey_helpers import demo_args, demo_url
from misbehaving import RawServer, TinyDns, read_request_head, wait_until_closed
from whathappens.demo.internet import DemoInternet

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser


@dataclass
class Report:
    html: Path
    har: Path
    journey: dict[str, Any]


def write_report(out: Path, url: str, *args: str) -> tuple[Report, int]:
    """Trace ``url`` with the CLI, writing --html and --har; the journey is its --json."""
    from whathappens.cli import main

    html, har = out / "report.html", out / "journey.har"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = off_the_loop(main, [url, "--json", "--html", str(html), "--har", str(har),
                                   *args])
    return Report(html, har, json.loads(stdout.getvalue())), code


@pytest.fixture(scope="module")
def demo_report(demo_internet: DemoInternet, tmp_path_factory: pytest.TempPathFactory
                ) -> Report:
    """One journey through the demo internet over TCP + TLS, with a redirect (two legs, the
    second on the reused connection)."""
    net = demo_internet
    report, code = write_report(tmp_path_factory.mktemp("browser-demo"),
                                demo_url(net, path="/redirect/1"), *demo_args(net),
                                "--http3=off")
    assert code == 0
    assert len([s for s in report.journey["spans"] if s["name"] == "leg"]) == 2
    return report


def open_report(page: BrowserPage, path: Path) -> None:
    url = page.open_offline(path)
    assert page.page.title().startswith("whathappens · ")
    assert page.requests == [url], page.requests
    assert page.aborted == []


def assert_quiet(page: BrowserPage) -> None:
    """No console message at all (no error, no CSP warning, no log), no page error, no
    dialog, and no request but the report's own file."""
    assert page.console == []
    assert page.errors == []
    assert page.dialogs == []
    assert len(set(page.requests)) == 1, page.requests
    assert page.aborted == []


def visible(page: BrowserPage, selector: str) -> list[bool]:
    return [loc.is_visible() for loc in page.page.locator(selector).all()]


# --------------------------------------------------------------------------- the report
def test_report_opens_offline_without_errors(page: BrowserPage, demo_report: Report) -> None:
    open_report(page, demo_report.html)
    p = page.page
    for ident in ("glance", "url", "dns", "tcp", "tls", "http", "waterfall", "layers",
                  "cheatsheet"):
        assert p.locator(f"section#{ident}").is_visible(), ident
    text = p.inner_text("body")
    assert "a.root-servers.net." in text
    assert "TLSv1.3" in text
    # the in-page navigation is fragment-only: following it loads nothing
    p.get_by_role("link", name="Cheat sheet").click()
    p.wait_for_function("location.hash === '#cheatsheet'")
    assert_quiet(page)
    page.screenshot("report-desktop")


def test_beginner_advanced_switch_by_mouse(page: BrowserPage, demo_report: Report) -> None:
    open_report(page, demo_report.html)
    p = page.page
    assert p.locator("#mode-beginner").is_checked()
    beginner = visible(page, ".explain.beginner")
    assert beginner
    assert all(beginner)
    assert not any(visible(page, ".advanced"))
    p.locator("label[for=mode-advanced]").click()
    assert p.locator("#mode-advanced").is_checked()
    assert all(visible(page, ".explain.advanced"))
    assert not any(visible(page, ".beginner"))
    # advanced-only content: the resolver's answer section as received, the TCP_INFO tables
    assert p.get_by_text("Answer section as received:").is_visible()
    assert p.get_by_text("TCP_INFO at connect:").first.is_visible()
    p.locator("label[for=mode-beginner]").click()
    assert all(visible(page, ".explain.beginner"))
    assert not any(visible(page, ".advanced"))
    assert_quiet(page)


def test_switch_works_with_the_keyboard(page: BrowserPage, demo_report: Report) -> None:
    open_report(page, demo_report.html)
    p = page.page
    p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.id") == "mode-beginner"
    # the hidden radio's label shows the focus ring
    outline = p.evaluate("getComputedStyle(document.querySelector("
                         "'label[for=mode-beginner]')).outlineStyle")
    assert outline == "solid"
    p.keyboard.press("ArrowRight")
    assert p.evaluate("document.activeElement.id") == "mode-advanced"
    assert p.locator("#mode-advanced").is_checked()
    assert all(visible(page, ".explain.advanced"))
    assert not any(visible(page, ".explain.beginner"))
    p.keyboard.press("Space")  # a radio stays chosen
    assert p.locator("#mode-advanced").is_checked()
    p.keyboard.press("ArrowLeft")
    assert p.locator("#mode-beginner").is_checked()
    assert all(visible(page, ".explain.beginner"))
    assert not any(visible(page, ".explain.advanced"))
    # the next Tab leaves the switch for the section links
    p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.getAttribute('href')") == "#glance"
    assert_quiet(page)


@pytest.mark.parametrize("mode", ["beginner", "advanced"])
def test_no_sideways_scrolling_on_a_phone(browser: Browser, demo_report: Report, mode: str
                                          ) -> None:
    bp = new_page(browser, PHONE)
    try:
        open_report(bp, demo_report.html)
        p = bp.page
        p.locator(f"label[for=mode-{mode}]").click()
        width = p.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] + 1, width
        # and no element sticks out of the page on the right (wide tables scroll inside
        # their own box instead)
        wide = p.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getClientRects().length
                         && !e.parentElement.closest('.scroll, pre'))
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName + '.' + e.className).slice(0, 5)""")
        assert wide == []
        assert_quiet(bp)
        bp.screenshot(f"report-phone-{mode}")
    finally:
        bp.context.close()


# ------------------------------------------------------------------------ hostile content
PWN = "window.__pwned=1"
# a CNAME target's first label: DNS allows any byte, dnspython's text form escapes only
# '.', '"', '(', ')', ';', '@', '$' and '\\' (so no dot in it)
IN_DNS = "<script>window['__pwned']=1</script>"
IN_CN = f"<script>{PWN}</script>"
IN_ISSUER = f'"><img src=x onerror="{PWN}">'
IN_SAN = "<img src=x onerror=alert(1)>.evil.test"
IN_REASON = f"</script><script>{PWN}</script>"
IN_HEADER = f'"><img src=x onerror="{PWN}">'
IN_COOKIE = f"x=</script><script>{PWN}</script>"
IN_SERVER = "<svg onload=alert(1)>"
IN_LOCATION = f"javascript:{PWN}//"
BODY = (f"<script>{PWN}</script>\n"
        f'"><img src=x onerror="{PWN}">\n'
        f"</script><script>{PWN}</script>\n"
        f'<meta http-equiv="refresh" content="0;url=javascript:{PWN}">\n'
        f'<a href="javascript:{PWN}">go</a><iframe src="javascript:alert(1)"></iframe>\n'
        "<img src=x onerror=alert(1)>\u2028<!--\n")
HOST = "www.evil.test"
HOSTILE = (f"{IN_DNS}.evil.test", IN_CN, IN_ISSUER, IN_SAN, IN_REASON, IN_HEADER, IN_COOKIE,
           IN_SERVER, IN_LOCATION, BODY.splitlines()[0])


def evil_resolver(query: dns.message.Message) -> dns.message.Message:
    """Answers www.evil.test with a CNAME whose target's first label is a script element,
    and that target's A record 127.0.0.1."""
    q = query.question[0]
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    target = dns.name.Name([IN_DNS.encode(), b"evil", b"test", b""])
    if q.name == dns.name.from_text(HOST):
        response.answer.append(dns.rrset.from_text_list(
            q.name, 60, dns.rdataclass.IN, dns.rdatatype.CNAME, [target.to_text()]))
        if q.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(target, 60, "IN", "A", "127.0.0.1"))
    return response


@dataclass
class Hostile:
    url: str
    cafile: str
    resolver: str


@contextlib.contextmanager
def hostile_internet(tmp: Path) -> Iterator[Hostile]:
    """A resolver and an HTTPS server whose every answer carries script."""
    root = certgen.make_ca("whathappens evil root")
    intermediate = certgen.make_ca(IN_ISSUER, issuer=root)
    leaf = certgen.make_leaf(intermediate, [HOST, IN_SAN], cn=IN_CN)
    certfile, keyfile = certgen.write_server_files(tmp, [leaf, intermediate])
    context = certgen.server_context(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    body = BODY.encode()
    head = (f"HTTP/1.1 302 {IN_REASON}\r\nLocation: {IN_LOCATION}\r\n"
            f"Content-Type: text/html\r\nX-Evil: {IN_HEADER}\r\nSet-Cookie: {IN_COOKIE}\r\n"
            f"Server: {IN_SERVER}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()

    def serve(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                read_request_head(tls)
                tls.sendall(head + body)
                wait_until_closed(tls, 3)
        except ssl.SSLError:
            pass

    with TinyDns(evil_resolver) as resolver, RawServer(serve) as server:
        yield Hostile(f"https://{HOST}:{server.port}/", certgen.write_cafile(tmp, [root]),
                      resolver.address)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    tmp = tmp_path_factory.mktemp("browser-hostile")
    with hostile_internet(tmp) as evil:
        report, _ = write_report(tmp, evil.url, "--resolver", evil.resolver,
                                 "--dns-views", "resolver", "--cacert", evil.cafile)
    # the journey really met every payload
    blob = "\n".join(strings(report.journey))
    for payload in HOSTILE:
        assert payload in blob, payload
    assert report.journey["error"]["code"] == "redirect.bad_location"  # javascript: refused
    return report


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def page_text(page: BrowserPage) -> str:
    """The text a reader sees, in both modes."""
    p = page.page
    texts = []
    for mode in ("beginner", "advanced"):
        p.locator(f"label[for=mode-{mode}]").click()
        texts.append(p.inner_text("body"))
    return "\n".join(texts)


def test_hostile_journey_runs_nothing_and_shows_the_payloads(page: BrowserPage,
                                                             hostile_report: Report) -> None:
    url = page.open_offline(hostile_report.html)
    p = page.page
    text = page_text(page)
    p.wait_for_timeout(300)  # a meta refresh or a late onerror would have fired by now
    assert p.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []
    assert p.url.split("#", 1)[0] == url  # no refresh, no javascript: navigation
    assert page.requests == [url], page.requests  # not even an attempt (img src=x)
    assert page.aborted == []
    assert page.errors == []
    assert page.console == []  # a CSP violation would be logged here
    # no element came from the journey: the one script is the inert data block
    counts = p.evaluate("""() => ({scripts: [...document.scripts].map(s => s.type),
        foreign: document.querySelectorAll('img,svg,iframe,object,embed,base,form,link,'
                                           + 'meta[http-equiv=refresh],a[href^=javascript]')
                 .length,
        handlers: [...document.querySelectorAll('*')].filter(
            e => [...e.attributes].some(a => a.name.startsWith('on'))).length})""")
    assert counts == {"scripts": ["application/json"], "foreign": 0, "handlers": 0}
    # every payload is there as text (escaped, not dropped), wherever the journey put it
    for payload in HOSTILE:
        assert payload in text, payload
    assert text.count(f"<script>{PWN}</script>") >= 2  # certificate, body
    # the data block parses back to the journey, payloads intact
    data = json.loads(p.locator("#journey-data").text_content() or "")
    assert data == hostile_report.journey
    page.screenshot("report-hostile")


# ----------------------------------------------------------------------------------- HAR
DEVTOOLS = "devtools://devtools/bundled/devtools_app.html?panel=network"


def har_ms(text: str) -> float:
    """A DevTools duration ("16.27 ms", "71 μs", "1.2 s") in ms."""
    m = re.fullmatch(r"([\d.,]+)\s*(μs|ms|s|min)", text.strip())
    assert m is not None, text
    factor = {"μs": 1e-3, "ms": 1.0, "s": 1e3, "min": 6e4}[m.group(2)]
    return float(m.group(1).replace(",", "")) * factor


def test_har_imports_into_chromium_devtools(page: BrowserPage, demo_report: Report) -> None:
    """The Network panel of the DevTools bundled with this Chromium imports the HAR through
    its own "Import HAR file" button, lists every entry and shows our phases in its Timing
    tab. The frontend is loaded from the browser's resources (devtools://), offline."""
    har = json.loads(demo_report.har.read_text())
    entries = har["log"]["entries"]
    assert len(entries) == 2
    p = page.page
    p.goto(DEVTOOLS)
    button = p.get_by_role("button", name="Import HAR file")
    button.wait_for()
    with p.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(str(demo_report.har))
    rows = p.locator("td.name-column")
    rows.nth(len(entries) - 1).wait_for()
    assert rows.count() == len(entries)
    # the Name column: the URL's last path segment, or the host for "/"
    names = [n.strip() for n in rows.all_inner_texts()]
    assert names == [urlsplit(e["request"]["url"]).path.rstrip("/").rpartition("/")[2]
                     or urlsplit(e["request"]["url"]).hostname for e in entries]
    assert names == ["1", "www.example.com"]  # /redirect/1, then where it led
    summary = p.locator(".network-summary-bar").inner_text()
    assert f"{len(entries)} requests" in summary
    # the first entry's Timing tab: DevTools' phases are ours
    rows.first.click()
    p.get_by_role("tab", name="Timing").click()
    table = p.locator(".network-timing-table")
    table.wait_for()
    t = entries[0]["timings"]
    # HAR's connect includes ssl; DevTools shows "Initial connection" as connect - ssl + ssl
    shown = {"DNS lookup": t["dns"], "Initial connection": t["connect"], "SSL": t["ssl"],
             "Waiting for server response": t["wait"], "Content download": t["receive"]}
    for label, expected in shown.items():
        row = table.locator("tr", has=p.locator("td", has_text=label)).first
        value = row.locator("td").last.inner_text()
        assert abs(har_ms(value) - expected) <= max(0.011, expected * 0.006), (label, value)
    page.screenshot("devtools-har-timing", full_page=False)
    assert page.errors == []
    assert page.console_errors() == []
    assert all(u.startswith("devtools://") for u in page.requests), page.requests


def test_har_through_devtools_importer_field_by_field(page: BrowserPage,
                                                      demo_report: Report) -> None:
    """DevTools' own HAR model and importer (front_end/models/har: HARFormat.HARRoot, then
    Importer.requestsFromHARLog, as the Network panel's import does) turn every entry into
    a finished NetworkRequest with our URL, status, headers, size and timing phases."""
    har = json.loads(demo_report.har.read_text())
    p = page.page
    p.goto(DEVTOOLS)
    got = p.evaluate("""async (text) => {
        const HAR = await import('./models/har/har.js');
        const root = new HAR.HARFormat.HARRoot(JSON.parse(text));
        return HAR.Importer.Importer.requestsFromHARLog(root.log).map(r => ({
            url: r.url(), method: r.requestMethod, status: r.statusCode,
            mimeType: r.mimeType, type: r.resourceType().name(), finished: r.finished,
            requestHeaders: r.requestHeaders().map(h => [h.name, h.value]),
            responseHeaders: r.responseHeaders.map(h => [h.name, h.value]),
            remote: r.remoteAddress(), transferSize: r.transferSize,
            resourceSize: r.resourceSize, timing: r.timing,
            start: r.startTime, end: r.endTime}));
    }""", demo_report.har.read_text())
    entries = har["log"]["entries"]
    assert len(got) == len(entries)
    for e, r in zip(entries, got, strict=True):
        assert r["finished"] is True
        assert r["url"] == e["request"]["url"]
        assert r["method"] == "GET"
        assert r["status"] == e["response"]["status"]
        assert r["requestHeaders"] == [[h["name"], h["value"]] for h in e["request"]["headers"]]
        assert r["responseHeaders"] == [[h["name"], h["value"]]
                                         for h in e["response"]["headers"]]
        mime = e["response"]["content"]["mimeType"]
        assert r["mimeType"] == (None if mime == "x-unknown" else mime)  # HAR's "unknown"
        assert r["remote"].startswith(e["serverIPAddress"])
        assert r["transferSize"] == e["response"]["headersSize"] + e["response"]["bodySize"]
        t, tm = e["timings"], r["timing"]
        # DevTools' timeline: blocked, then dns, connect (without ssl), ssl, send, wait
        if t["dns"] > 0:
            assert tm["dnsStart"] == pytest.approx(t["blocked"], abs=1e-6)
            assert tm["dnsEnd"] - tm["dnsStart"] == pytest.approx(t["dns"], abs=1e-6)
        if t["connect"] > 0:
            assert tm["connectEnd"] - tm["connectStart"] == pytest.approx(t["connect"],
                                                                          abs=1e-6)
            assert tm["sslEnd"] - tm["sslStart"] == pytest.approx(t["ssl"], abs=1e-6)
            assert tm["sslEnd"] == pytest.approx(tm["connectEnd"], abs=1e-6)
        else:  # the reused connection: no DNS, no connect, no TLS
            assert (tm["dnsStart"], tm["connectStart"], tm["sslStart"]) == (-1, -1, -1)
        assert tm["sendEnd"] - tm["sendStart"] == pytest.approx(t["send"], abs=1e-6)
        assert tm["receiveHeadersEnd"] - tm["sendEnd"] == pytest.approx(t["wait"], abs=1e-6)
        assert (r["end"] - r["start"]) * 1000 == pytest.approx(e["time"], abs=1e-3)
    # and those phases are the journey's own measurements (first leg: a new connection)
    leg = next(sp for sp in demo_report.journey["spans"] if sp["name"] == "leg")
    steps = {c["name"]: c for c in leg["children"]}
    wait = next(c for c in steps["http"]["children"] if c["name"] == "http.wait")
    tm = got[0]["timing"]
    for (start, end), span in ((("dnsStart", "dnsEnd"), steps["dns"]),
                               (("sslStart", "sslEnd"), steps["tls"]),
                               (("sendEnd", "receiveHeadersEnd"), wait)):
        assert tm[end] - tm[start] == pytest.approx(span["duration_ms"], abs=2e-3), span["name"]
    assert got[0]["type"] == "document"  # the page's first request
    assert got[0]["start"] <= got[1]["start"]
    assert page.errors == []
    assert page.console_errors() == []


@pytest.fixture(scope="module")
def h3_report(demo_internet: DemoInternet, tmp_path_factory: pytest.TempPathFactory
              ) -> Report:
    """The same journey as a browser makes it by default: the HTTPS record advertises h3,
    QUIC wins the race, the redirect's second request rides the same QUIC connection."""
    net = demo_internet
    report, code = write_report(tmp_path_factory.mktemp("browser-h3"),
                                demo_url(net, path="/redirect/1"), *demo_args(net))
    assert code == 0
    return report


def test_an_http3_har_through_devtools_importer(page: BrowserPage, h3_report: Report) -> None:
    """Chrome gives a QUIC handshake as both connect and ssl (one handshake does both); its
    own importer then shows it as the SSL phase, ending where the connection is ready."""
    har = json.loads(h3_report.har.read_text())
    p = page.page
    p.goto(DEVTOOLS)
    got = p.evaluate("""async (text) => {
        const HAR = await import('./models/har/har.js');
        const root = new HAR.HARFormat.HARRoot(JSON.parse(text));
        return HAR.Importer.Importer.requestsFromHARLog(root.log).map(r => ({
            status: r.statusCode, timing: r.timing, finished: r.finished}));
    }""", h3_report.har.read_text())
    first, second = har["log"]["entries"]
    assert first["response"]["httpVersion"] == second["response"]["httpVersion"] == "h3"
    leg = next(sp for sp in h3_report.journey["spans"] if sp["name"] == "leg")
    quic = next(c for c in leg["children"] if c["name"] == "quic")
    t, tm = first["timings"], got[0]["timing"]
    assert t["connect"] == t["ssl"] == pytest.approx(quic["duration_ms"], abs=2e-3)
    assert got[0]["finished"] is True
    assert tm["sslEnd"] - tm["sslStart"] == pytest.approx(t["ssl"], abs=1e-6)
    assert tm["sslEnd"] == pytest.approx(tm["connectEnd"], abs=1e-6)
    assert tm["receiveHeadersEnd"] - tm["sendEnd"] == pytest.approx(t["wait"], abs=1e-6)
    assert (got[1]["timing"]["connectStart"], got[1]["timing"]["sslStart"]) == (-1, -1)
    assert page.errors == []
