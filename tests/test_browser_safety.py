"""A hostile page in real Chromium reaches nothing but its own server (issue 10, "Safety").

The page is "public" on 127.0.55.5 (exempted with the --allow-address policy,
``guard.allowing``) and served over real HTTPS, trusted through an NSS database in a throwaway
HOME (never --ignore-certificate-errors). Everything it tries points at a canary on another
loopback address, 127.0.66.6, which the policy refuses: navigation and redirects (a 302, a
meta refresh), subresources (stylesheet, @import, font, script, module import(), img by address
and by its decimal spelling, video, object, iframe), fetch/XHR (keepalive too), beacons,
prefetch/preload/preconnect, WebSocket (ws and wss), EventSource, dedicated/shared/service
workers and their fetches, a popup, a form post, WebRTC with STUN and TURN (UDP and TCP)
servers on the canary, WebTransport (HTTP/3, UDP). Each attempt goes to its own canary port,
so a refusal names the path that tried. The canary listens on TCP and UDP and records every
connection and datagram.

Hardened (``browser.guard.hardening_args`` + ``VettingProxy``), the canary must record
nothing and the proxy's refusals must name the attempts. The control, the same page with only
the target's resolver mapping, shows the canary does see them: the test can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import selectors
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from browser import ARGS, CHROMIUM, off_the_loop, skip_reason
from certgen import make_pki, write_server_files
from whathappens.browser.guard import CONTEXT_OPTIONS, VettingProxy, hardening_args, proxy_thread
from whathappens.guard import allowing, parse_network

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

PAGE_HOST = "page.test"
PAGE_ADDRESS = "127.0.55.5"
CANARY = "127.0.66.6"
CANARY_DECIMAL = str(int.from_bytes(socket.inet_aton(CANARY), "big"))  # 2135031814

# Every path a page can take out, each to a canary port of its own (scheme, path's name).
PATHS: dict[str, str] = {
    "stylesheet": "https", "script": "https", "img": "http", "img-https": "https",
    "img-decimal": "http", "iframe": "http", "iframe-redirect": "https",
    "fetch": "http", "fetch-https": "https", "xhr": "http", "beacon": "http",
    "keepalive": "http", "prefetch": "http", "preconnect": "https", "preload": "http",
    "websocket": "ws", "websocket-tls": "wss", "eventsource": "http",
    "worker": "http", "worker-websocket": "ws", "shared-worker": "http",
    "service-worker": "http", "popup": "http", "form": "http", "navigation": "http",
    "turn-tcp": "turn", "font": "https", "css-import": "http", "video": "http",
    "object": "http", "module-import": "https", "meta-refresh": "http",
}
# Every path is expected to try, but a preconnect: through a proxy Chromium preconnects to the
# proxy, not the origin, and without one it did not connect within the test either.
EXPECTED = set(PATHS) - {"preconnect"}


@dataclass
class Canary:
    """TCP listeners (one per path, plus 80 and 443 when free) and a UDP socket (STUN and
    TURN over UDP) on one loopback address, recording every connection and datagram."""

    address: str
    ports: dict[str, int] = field(default_factory=dict)
    udp_port: int = 0
    seen: list[tuple[str, int, str]] = field(default_factory=list)  # (proto, port, path)
    _sockets: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, rest: str = "") -> str:
        scheme = PATHS[path]
        host = CANARY_DECIMAL if path == "img-decimal" else self.address
        return f"{scheme}://{host}:{self.ports[path]}/{path}{rest}"

    def path_of(self, port: int) -> str:
        return next((p for p, n in self.ports.items() if n == port), str(port))

    def start(self) -> None:
        self.sel = selectors.DefaultSelector()
        for path in [*PATHS, "http-80", "https-443"]:
            wanted = {"http-80": 80, "https-443": 443}.get(path, 0)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((self.address, wanted))
            except OSError:
                s.close()
                continue
            s.listen(64)
            s.setblocking(False)
            self.ports[path] = s.getsockname()[1]
            self._sockets.append(s)
            self.sel.register(s, selectors.EVENT_READ, "tcp")
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((self.address, 0))
        u.setblocking(False)
        self.udp_port = u.getsockname()[1]
        self._sockets.append(u)
        self.sel.register(u, selectors.EVENT_READ, "udp")
        threading.Thread(target=self._run, name="canary", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                port = sock.getsockname()[1]
                with contextlib.suppress(OSError):
                    if key.data == "tcp":
                        conn, _ = sock.accept()
                        conn.close()
                    else:
                        sock.recvfrom(65536)
                    self.seen.append((key.data, port, self.path_of(port)))

    def stop(self) -> None:
        self._stop.set()
        time.sleep(0.2)
        for s in self._sockets:
            s.close()


def _hostile_html(c: Canary, page_origin: str) -> bytes:
    # The default ports too, when the canary could take them (as root, and nobody else had).
    extra = "".join(f'<img src="{scheme}://{c.address}/{path}">'
                    for path, scheme in (("http-80", "http"), ("https-443", "https"))
                    if path in c.ports)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>hostile</title>
<link rel="stylesheet" href="{c.url('stylesheet')}">
<link rel="preconnect" href="{c.url('preconnect')}">
<link rel="prefetch" href="{c.url('prefetch')}">
<link rel="preload" as="script" href="{c.url('preload')}">
<link rel="dns-prefetch" href="//canary-name.test">
<script async src="{c.url('script')}"></script>
<style>@import url("{c.url('css-import')}");
@font-face {{ font-family: leak; src: url("{c.url('font')}"); }}
body {{ font-family: leak; }}</style>
</head><body>hostile
<video src="{c.url('video')}" autoplay muted></video>
<object data="{c.url('object')}"></object>
<iframe srcdoc='<meta http-equiv="refresh" content="0;url={c.url('meta-refresh')}">'></iframe>
<img src="{c.url('img')}"><img src="{c.url('img-https')}"><img src="{c.url('img-decimal')}">
{extra}
<iframe src="{c.url('iframe')}"></iframe>
<iframe src="{page_origin}/redirect"></iframe>
<iframe name="sink"></iframe>
<form id="form" method="post" action="{c.url('form')}" target="sink">
<input name="secret" value="x"></form>
<script src="/hostile.js"></script>
</body></html>""".encode()


def _hostile_js(c: Canary) -> bytes:
    return f"""
const quiet = (p) => {{ try {{ Promise.resolve(p).catch(() => {{}}); }} catch (e) {{}} }};
quiet(fetch("{c.url('fetch')}"));
quiet(fetch("{c.url('fetch-https')}", {{mode: "no-cors"}}));
quiet(fetch("{c.url('keepalive')}", {{method: "POST", body: "x", keepalive: true}}));
const xhr = new XMLHttpRequest(); xhr.open("GET", "{c.url('xhr')}"); xhr.send();
navigator.sendBeacon("{c.url('beacon')}", "x");
try {{ new WebSocket("{c.url('websocket')}"); }} catch (e) {{}}
try {{ new WebSocket("{c.url('websocket-tls')}"); }} catch (e) {{}}
try {{ new EventSource("{c.url('eventsource')}"); }} catch (e) {{}}
new Worker("/worker.js");
new SharedWorker("/shared.js").port.start();
quiet(navigator.serviceWorker.register("/sw.js"));
window.open("{c.url('popup')}");
document.getElementById("form").submit();
const pc = new RTCPeerConnection({{iceServers: [
  {{urls: "stun:{c.address}:{c.udp_port}"}},
  {{urls: "turn:{c.address}:{c.udp_port}?transport=udp", username: "u", credential: "p"}},
  {{urls: "turn:{c.address}:{c.ports['turn-tcp']}?transport=tcp", username: "u",
    credential: "p"}}]}});
pc.createDataChannel("leak");
quiet(pc.createOffer().then((o) => pc.setLocalDescription(o)));
quiet(import("{c.url('module-import')}"));
try {{ quiet(new WebTransport("https://{c.address}:{c.udp_port}/webtransport").ready); }}
catch (e) {{}}
document.title = "hostile page ran";
""".encode()


def _scripts(c: Canary) -> dict[str, bytes]:
    return {
        "/worker.js": (f'fetch("{c.url("worker")}").catch(() => {{}});\n'
                       f'try {{ new WebSocket("{c.url("worker-websocket")}"); }} '
                       'catch (e) {}\n').encode(),
        "/shared.js": (f'onconnect = () => {{}};\nfetch("{c.url("shared-worker")}")'
                       '.catch(() => {});\n').encode(),
        "/sw.js": (f'self.addEventListener("install", (e) => e.waitUntil('
                   f'fetch("{c.url("service-worker")}").catch(() => {{}})));\n').encode(),
    }


class PageServer(http.server.ThreadingHTTPServer):
    routes: dict[str, tuple[int, str, bytes]]
    served: list[str]


class PageHandler(http.server.BaseHTTPRequestHandler):
    server: PageServer

    def do_GET(self) -> None:
        self.server.served.append(self.path)
        status, kind, body = self.server.routes.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        if status == 302:
            self.send_header("Location", body.decode())
            body = b""
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class World:
    canary: Canary
    page_url: str
    home: Path
    server: PageServer
    cafile: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hostile")
    pki = make_pki([PAGE_HOST])
    certfile, keyfile = write_server_files(tmp, pki.chain)
    (tmp / "root.pem").write_bytes(pki.root.pem)
    # Chromium on Linux trusts what the NSS database in $HOME/.pki/nssdb trusts.
    home = tmp / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n",
                    "whathappens hostile-page test root", "-i", str(tmp / "root.pem")],
                   check=True)

    canary = Canary(CANARY)
    canary.start()
    server = PageServer((PAGE_ADDRESS, 0), PageHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    origin = f"https://{PAGE_HOST}:{server.server_address[1]}"
    server.served = []
    server.routes = {
        "/": (200, "text/html; charset=utf-8", _hostile_html(canary, origin)),
        "/hostile.js": (200, "text/javascript", _hostile_js(canary)),
        "/redirect": (302, "text/plain", canary.url("iframe-redirect").encode()),
        "/away": (302, "text/plain", canary.url("navigation").encode()),
        **{path: (200, "text/javascript", js) for path, js in _scripts(canary).items()},
    }
    threading.Thread(target=server.serve_forever, name="hostile-page", daemon=True).start()
    try:
        yield World(canary, origin + "/", home, server, tmp / "root.pem")
    finally:
        server.shutdown()
        server.server_close()
        canary.stop()


def _visit(world: World, extra_args: list[str], tried: Callable[[], set[str]],
           context_proxy: str | None = None) -> None:
    """Load the hostile page with these switches, let it run until ``tried()`` names every
    path of ``EXPECTED`` (10 s at most), then navigate it away to the canary."""
    off_the_loop(_visit_here, world, extra_args, tried, context_proxy)


def _visit_here(world: World, extra_args: list[str], tried: Callable[[], set[str]],
                context_proxy: str | None) -> None:
    from playwright.sync_api import Error, sync_playwright

    world.canary.seen.clear()
    world.server.served.clear()
    env = {**os.environ, "HOME": str(world.home)}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[*ARGS, *extra_args],
                                     env=env, headless=True)
        try:
            options = dict(CONTEXT_OPTIONS)
            if context_proxy is not None:
                options["proxy"] = {"server": context_proxy, "bypass": "<-loopback>"}
            context = browser.new_context(**options)
            page = context.new_page()
            page.goto(world.page_url, wait_until="load", timeout=20_000)
            assert page.title() == "hostile page ran", "the hostile script did not run"
            deadline = time.monotonic() + 10.0
            while not EXPECTED - {"navigation"} <= tried() and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            with contextlib.suppress(Error):  # refused, or the canary hung up
                page.goto(world.page_url.rstrip("/") + "/away", timeout=5_000)
            page.wait_for_timeout(500)
            context.close()
        finally:
            browser.close()
    time.sleep(0.3)  # the canary's last accepts


def test_hardened_the_hostile_page_reaches_nothing_and_each_attempt_is_named(
        world: World) -> None:
    policy = allowing([parse_network(f"{PAGE_ADDRESS}/32")])
    proxy = VettingProxy(policy, pinned={PAGE_HOST: [PAGE_ADDRESS]})

    def named() -> set[str]:
        return {world.canary.path_of(r.port) for r in list(proxy.refused) if r.host == CANARY}

    with proxy_thread(proxy):
        _visit(world, hardening_args(PAGE_HOST, PAGE_ADDRESS, proxy.url), named)
    assert "/worker.js" in world.server.served, "the page did not load through the proxy"
    assert world.canary.seen == [], (
        f"the canary was reached: {world.canary.seen}; refused: "
        + "; ".join(map(str, proxy.refused)))
    assert named() >= EXPECTED, f"not named among the refusals: {EXPECTED - named()}"
    why = f"{CANARY} is loopback: this machine itself (RFC 1122)"
    lines = [str(r) for r in proxy.refused if r.host == CANARY]
    assert all(line.endswith(f"; refused: {why}") for line in lines)
    # A plain-http attempt is named by its URL, a tunnel (https, wss, TURN) by host:port.
    assert f"the page asked for {world.canary.url('beacon')}; refused: {why}" in lines
    turn = f"{CANARY}:{world.canary.ports['turn-tcp']}"
    assert f"the page asked for {turn}; refused: {why}" in lines


def test_a_warm_browser_with_a_proxy_per_context_holds_too(world: World) -> None:
    """``serve``: one browser for every journey, launched with the switches and a proxy that
    refuses everything; each page's context has its own proxy, pinning its own target."""
    nobody = VettingProxy(lambda address: "no page is being traced")
    page_proxy = VettingProxy(allowing([parse_network(f"{PAGE_ADDRESS}/32")]),
                              pinned={PAGE_HOST: [PAGE_ADDRESS]})

    def named() -> set[str]:
        return {world.canary.path_of(r.port) for r in list(page_proxy.refused)
                if r.host == CANARY}

    with proxy_thread(nobody), proxy_thread(page_proxy):
        _visit(world, hardening_args(None, None, nobody.url), named, page_proxy.url)
    assert "/worker.js" in world.server.served, "the page did not load through its proxy"
    assert world.canary.seen == [], world.canary.seen
    assert named() >= EXPECTED, f"not named among the refusals: {EXPECTED - named()}"
    assert not [r for r in nobody.refused if r.host in (CANARY, PAGE_HOST)], nobody.refused


def test_control_without_hardening_the_canary_sees_the_page(world: World) -> None:
    def reached() -> set[str]:
        return {path for _, _, path in list(world.canary.seen)}

    _visit(world, [f"--host-resolver-rules=MAP {PAGE_HOST} {PAGE_ADDRESS}"], reached)
    assert reached() >= EXPECTED, EXPECTED - reached()
    assert any(proto == "udp" for proto, _, _ in world.canary.seen), "no STUN/TURN datagram"


def test_serve_runs_the_page_through_its_guard(world: World) -> None:
    """``serve --public --allow-address``'s page step (web/browser.py): the journey to the
    hostile page, then the page in the warm browser through a proxy of its own; what it
    refused is in the journey's findings. Needs the browser phase (the capture core)."""
    pytest.importorskip("whathappens.browser.phase")
    from whathappens.net.dns.views import DnsOptions
    from whathappens.net.tls import TlsOptions
    from whathappens.trace import Options, run_journey
    from whathappens.web.browser import PageRunner

    world.canary.seen.clear()
    policy = allowing([parse_network(f"{PAGE_ADDRESS}/32")])
    port = int(world.page_url.rsplit(":", 1)[1].strip("/"))
    opts = Options(dns=DnsOptions(views=frozenset({"system"}), address_policy=policy),
                   tls=TlsOptions(cafile=str(world.cafile)), address_policy=policy,
                   resolve={(PAGE_HOST, port): [PAGE_ADDRESS]})
    journey = off_the_loop(asyncio.run, run_journey(world.page_url, opts))
    assert journey.error is None, journey.error
    runner = PageRunner(policy, cafile=str(world.cafile), timeout=20.0)
    runner.start()
    try:
        off_the_loop(asyncio.run, runner.run(journey))
        off_the_loop(asyncio.run, runner.run(journey))  # again, in the same warm browser
    finally:
        runner.close()
    time.sleep(0.3)
    assert world.canary.seen == [], world.canary.seen
    browser = [s for s in journey.spans if s.name == "browser"]
    assert [s.facts.outcome for s in browser] == ["loaded", "loaded"], browser
    assert browser[1].facts.warm
    said = [f.message for f in journey.findings if f.step == "browser"]
    assert any(m.startswith(f"the page asked for {CANARY}:") for m in said), said
    # Every ask for the canary was refused for what it is. (Other refusals can come on a
    # loaded machine, a budget's: one CI run saw one; they are shown if this fails.)
    canary = [m for m in said if m.startswith("the page asked for")
              and CANARY in m.partition(";")[0]]
    assert canary
    assert all("loopback" in m for m in canary), [m for m in said if "loopback" not in m]


def test_serve_public_with_allow_address_keeps_the_page_in(world: World) -> None:
    """The command itself: ``serve --public --allow-address`` runs the page step by default."""
    pytest.importorskip("whathappens.browser.phase")
    import json

    from serve_helpers import journey, request, serve

    world.canary.seen.clear()
    port = world.page_url.rsplit(":", 1)[1].strip("/")
    with serve("--public", "--no-compare-tls", "--allow-address", f"{PAGE_ADDRESS}/32",
               "--cacert", str(world.cafile), "--resolve", f"{PAGE_HOST}:{port}:{PAGE_ADDRESS}",
               browser=True) as served:
        stream = journey(served, world.page_url, timeout=90)
        report = stream.one("report")
        assert report["exit_code"] == 0, report["error"]
        status, _, body = request(served, "GET", f"/journeys/{report['id']}.json")
    assert status == 200
    doc = json.loads(body)
    [browser] = [s for s in doc["spans"] if s["name"] == "browser"]
    assert browser["attrs"]["outcome"] == "loaded", browser["attrs"]
    said = [f["message"] for f in doc["findings"] if f["step"] == "browser"]
    assert any(m.startswith(f"the page asked for {CANARY}:") for m in said), said
    assert "refused" in report["html"]
    time.sleep(0.3)
    assert world.canary.seen == [], world.canary.seen


def test_the_command_with_only_public_vets_the_page_too(world: World) -> None:
    """``whathappens URL --only-public --browser``: the page goes through the same proxy."""
    pytest.importorskip("whathappens.browser.phase")
    import json
    import sys

    world.canary.seen.clear()
    port = world.page_url.rsplit(":", 1)[1].strip("/")
    run = subprocess.run(
        [sys.executable, "-m", "whathappens", world.page_url, "--only-public", "--allow-address",
         f"{PAGE_ADDRESS}/32", "--cacert", str(world.cafile), "--resolve",
         f"{PAGE_HOST}:{port}:{PAGE_ADDRESS}", "--browser", "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    [browser] = [s for s in doc["spans"] if s["name"] == "browser"]
    assert browser["attrs"]["outcome"] == "loaded", browser["attrs"]
    said = [f["message"] for f in doc["findings"] if f["step"] == "browser"]
    assert any(m.startswith(f"the page asked for {CANARY}:") for m in said), said
    time.sleep(0.3)
    assert world.canary.seen == [], world.canary.seen
