"""The lab's web tiers for real: the edge, HAProxy and two app nginx, in front of fake gunicorns.

Real nginx and HAProxy, started through ``lab.process`` as ``lab up`` does, with the
production topology; only gunicorn is replaced, by a small threaded HTTP server per app node
that echoes the request headers it received as JSON. Requests go to the edge over real TLS
(the lab's CA, SNI www.example.com) and HTTP/2. The tests share one lab and run in file
order: the health-check test stops a fake gunicorn, and the last test stops the lab.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import http.client
import itertools
import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import h2.config
import h2.connection
import h2.events
import pytest

from whathappens.demo.ca import ensure_pki
from whathappens.lab import process
from whathappens.lab.process import LabError
from whathappens.lab.tier import LabContext, Tier, port_open, which
from whathappens.lab.tiers import build
from whathappens.lab.tiers.haproxy import HAProxy
from whathappens.lab.tiers.nginx import BROTLI_MODULE, access_log
from whathappens.lab.topology import Topology, production, single


def _missing() -> str | None:
    for program, path in (("nginx", "/usr/sbin/nginx"), ("haproxy", "/usr/sbin/haproxy")):
        try:
            which(program, path)
        except FileNotFoundError:
            return program
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(MISSING is not None,
                                reason=f"{MISSING} is not installed (whathappens lab install)")

SITE = "www.example.com"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WEB_TIERS = ("app-1-nginx", "app-2-nginx", "lb", "edge")
# HAProxy's structured unique id: client ip:port _ frontend ip:port _ time _ counter:pid.
REQUEST_ID = re.compile(r"^[0-9A-F]{8}:[0-9A-F]{4}_[0-9A-F]{8}:[0-9A-F]{4}_[0-9A-F]+_"
                        r"[0-9A-F]+:[0-9A-F]+$")


def isolated(topo: Topology) -> Topology:
    """The topology moved from 127.0.x.y to 127.<n>.x.y for this test session.

    Same hosts, tiers and ports; only the addresses differ, so a running lab or another
    test session on this machine (they use 127.0.x.y) cannot collide with this one.
    """
    second = 100 + os.getpid() % 100
    hosts = {name: dataclasses.replace(host, address=re.sub(r"^127\.0\.", f"127.{second}.",
                                                            host.address))
             for name, host in topo.hosts.items()}
    return Topology(topo.profile, hosts, topo.tiers)


class FakeGunicorn:
    """An app node's gunicorn stand-in: /healthz → 200; anything else → the request as JSON.

    Paths under /nocache answer ``Cache-Control: no-store``; the rest are cacheable for
    60 s, longer than the 1 s micro-cache, which must hold them for 1 s only.
    """

    def __init__(self, node: str, address: tuple[str, int]) -> None:
        self.node = node
        self.address = address
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        node = self.node

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    body, cache = b"ok\n", "no-store"
                else:
                    headers = {k.lower(): ", ".join(self.headers.get_all(k) or [])
                               for k in self.headers}
                    body = json.dumps({"node": node, "path": self.path, "headers": headers},
                                      indent=1).encode()
                    cache = "no-store" if self.path.startswith("/nocache") else \
                        "public, max-age=60"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache)
                # nginx hides the app's copy and sets its own: the client must see one.
                self.send_header("X-Frame-Options", "SAMEORIGIN")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(self.address, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@dataclasses.dataclass
class Lab:
    topo: Topology
    ctx: LabContext
    tiers: dict[str, Tier]
    gunicorns: dict[str, FakeGunicorn]
    ca: Path

    def address(self, tier: str) -> str:
        return self.topo.endpoint(tier)[0]

    @property
    def lb(self) -> HAProxy:
        tier = self.tiers["lb"]
        assert isinstance(tier, HAProxy)
        return tier


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    topo = isolated(production())
    ctx = LabContext(state=tmp_path_factory.mktemp("lab"))
    gunicorns = {}
    for node in ("app-1", "app-2"):
        gunicorns[node] = FakeGunicorn(node, topo.endpoint(f"{node}-gunicorn"))
        gunicorns[node].start()
    tiers = {name: build(topo, topo.spec(name)) for name in WEB_TIERS}
    try:
        for name in WEB_TIERS:
            process.start(tiers[name], ctx, timeout=15)
        yield Lab(topo, ctx, tiers, gunicorns, ensure_pki(ctx.pki).ca)
    finally:
        for name in reversed(WEB_TIERS):
            process.stop(ctx, name)
        for fake in gunicorns.values():
            fake.stop()


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]      # lower-case names; a repeated header joined with ", "
    body: bytes
    alpn: str | None
    tls_version: str | None

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


def edge_get(lab: Lab, path: str, headers: dict[str, str] | None = None,
             tier: str = "edge") -> Reply:
    """One GET to the edge over HTTP/2 on a new TLS connection, verified with the lab's CA."""
    context = ssl.create_default_context(cafile=str(lab.ca))
    context.set_alpn_protocols(["h2", "http/1.1"])
    address, port = lab.topo.endpoint(tier)
    with socket.create_connection((address, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=SITE) as tls:
        alpn = tls.selected_alpn_protocol()
        assert alpn == "h2", f"nginx did not select h2 (ALPN: {alpn})"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        request = [(":method", "GET"), (":scheme", "https"), (":authority", SITE),
                   (":path", path), *(headers or {}).items()]
        conn.send_headers(stream, request, end_stream=True)
        tls.sendall(conn.data_to_send())
        status, got, body = 0, dict[str, str](), b""
        done = False
        while not done:
            data = tls.recv(65536)
            if not data:
                raise ConnectionError("the edge closed the connection mid-response")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    for name, value in event.headers:
                        key, text = name.decode(), value.decode()
                        if key == ":status":
                            status = int(text)
                        else:
                            got[key] = f"{got[key]}, {text}" if key in got else text
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    done = True
            tls.sendall(conn.data_to_send())
        return Reply(status, got, body, alpn, tls.version())


def plain_get(address: str, port: int, path: str,
              headers: dict[str, str] | None = None) -> Reply:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": SITE, **(headers or {})})
        response = conn.getresponse()
        got: dict[str, str] = {}
        for key, value in response.getheaders():
            k = key.lower()
            got[k] = f"{got[k]}, {value}" if k in got else value
        return Reply(response.status, got, response.read(), None, None)
    finally:
        conn.close()


def wait_for(check: Callable[[], Any], timeout: float = 3.0) -> Any:
    """``check()``'s first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON object in a log (HAProxy's log also holds its plain-text messages)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_edge_speaks_h2_with_the_lab_certificate(lab: Lab) -> None:
    reply = edge_get(lab, "/hello")
    assert reply.status == 200
    assert reply.alpn == "h2"
    assert reply.tls_version in ("TLSv1.2", "TLSv1.3")
    assert reply.headers["strict-transport-security"].startswith("max-age=")
    assert reply.json()["path"] == "/hello"


def test_edge_cache_miss_then_hit(lab: Lab) -> None:
    first = edge_get(lab, "/cached")
    second = edge_get(lab, "/cached")
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.body == first.body
    assert "cdn-cache;desc=HIT" in second.headers["server-timing"]
    # What the app said is kept: the origin's Cache-Control decides the edge's lifetime.
    assert second.headers["cache-control"] == "public, max-age=60"


def test_edge_compresses_for_the_client(lab: Lab) -> None:
    reply = edge_get(lab, "/compressed", {"accept-encoding": "gzip, br"})
    if BROTLI_MODULE.exists():
        assert reply.headers["content-encoding"] == "br"
        body = brotli.decompress(reply.body)
    else:
        assert reply.headers["content-encoding"] == "gzip"
        body = gzip.decompress(reply.body)
    assert json.loads(body)["path"] == "/compressed"
    assert "Accept-Encoding" in reply.headers["vary"]
    # The edge asks the origin for identity and caches one copy for every client.
    assert json.loads(body)["headers"].get("accept-encoding", "") == ""


def test_roundrobin_alternates_between_app_nodes(lab: Lab) -> None:
    served = []
    for i in range(6):
        reply = edge_get(lab, f"/nocache/rr?i={i}")
        assert reply.status == 200
        assert reply.headers["x-cache"] == "MISS"
        node = reply.headers["x-backend-server"]
        assert reply.headers["x-served-by"] == node          # the app node's nginx
        assert reply.json()["node"] == node                  # and its gunicorn
        served.append(node)
    assert set(served) == {"app-1", "app-2"}
    assert all(a != b for a, b in itertools.pairwise(served)), served


def test_request_headers_reach_the_app(lab: Lab) -> None:
    reply = edge_get(lab, "/nocache/headers", {"traceparent": TRACEPARENT})
    seen = reply.json()["headers"]
    assert seen["traceparent"] == TRACEPARENT
    assert REQUEST_ID.match(seen["x-request-id"]), seen["x-request-id"]
    assert reply.headers["x-request-id"] == seen["x-request-id"]
    # client (this test, from 127.0.0.1), then the edge, then the LB: each host connects
    # from its own address.
    assert seen["x-forwarded-for"] == f"127.0.0.1, {lab.address('edge')}, {lab.address('lb')}"
    assert seen["x-real-ip"] == "127.0.0.1"        # realip on the app node found the client
    assert seen["x-forwarded-proto"] == "https"
    assert seen["host"] == SITE
    # Security headers: set once, by the app node's nginx, not doubled with the app's.
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_app_node_microcache_holds_a_get_for_one_second(lab: Lab) -> None:
    address, port = lab.topo.endpoint("app-1-nginx")
    first = plain_get(address, port, "/micro")
    second = plain_get(address, port, "/micro")
    assert first.headers["x-microcache"] == "MISS"
    assert float(first.headers["x-upstream-time"]) >= 0
    assert second.headers["x-microcache"] == "HIT"
    assert second.headers["x-served-by"] == "app-1"
    # The app said max-age=60; the micro-cache keeps it "1 s" regardless, which nginx
    # counts in whole seconds: the copy is fresh until the end of the next second.
    time.sleep(2.1)
    assert plain_get(address, port, "/micro").headers["x-microcache"] == "EXPIRED"
    # What the app marks no-store is never stored.
    assert plain_get(address, port, "/nocache/micro").headers["x-microcache"] == "MISS"
    assert plain_get(address, port, "/nocache/micro").headers["x-microcache"] == "MISS"
    # A direct request (no LB in front) still gets an id, nginx's own.
    assert re.fullmatch(r"[0-9a-f]{32}", plain_get(address, port, "/nocache/id")
                        .json()["headers"]["x-request-id"])


def test_http_on_the_edge_redirects_to_https(lab: Lab) -> None:
    address, _ = lab.topo.endpoint("edge")
    edge = lab.tiers["edge"]
    http_port = int(str(lab.topo.spec("edge").options["http_port"]))
    reply = plain_get(address, http_port, "/some/page?q=1")
    assert reply.status == 301
    port = "" if edge.port == 443 else f":{edge.port}"
    assert reply.headers["location"] == f"https://{SITE}{port}/some/page?q=1"


def test_json_logs_carry_the_traceparent(lab: Lab) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    reply = edge_get(lab, "/nocache/logged", {"traceparent": traceparent})
    request_id = reply.headers["x-request-id"]
    node = reply.headers["x-backend-server"]

    def entry(path: Path) -> dict[str, Any] | None:
        found = [e for e in json_lines(path) if e.get("traceparent") == traceparent]
        return found[0] if found else None

    edge = wait_for(lambda: entry(access_log(lab.ctx, "edge")))
    lb = wait_for(lambda: entry(lab.ctx.log("lb")))
    app = wait_for(lambda: entry(access_log(lab.ctx, f"{node}-nginx")))
    assert edge, "no edge log line"
    assert lb, "no lb log line"
    assert app, "no app log line"

    assert edge["status"] == "200"
    assert edge["cache"] == "MISS"
    assert edge["ssl_protocol"] == reply.tls_version
    assert edge["ssl_cipher"]
    assert edge["protocol"] == "HTTP/2.0"
    assert edge["request_id"] == request_id
    assert edge["upstream_addr"] == "{}:{}".format(*lab.topo.endpoint("lb"))

    assert lb["request_id"] == request_id
    assert lb["server"] == node
    assert lb["status"] == 200
    assert lb["uri"] == "/nocache/logged"
    assert lb["client"] == lab.address("edge")
    for timer in ("TR", "Tw", "Tc", "Tr", "Ta"):
        assert lb[timer] >= 0, (timer, lb)

    assert app["request_id"] == request_id
    assert app["node"] == node
    assert app["client"] == "127.0.0.1"
    assert app["upstream_addr"] == "{}:{}".format(*lab.topo.endpoint(f"{node}-gunicorn"))
    assert float(app["upstream_response_time"]) <= float(edge["request_time"]) + 0.001

    assert lb["accept_time"] <= app["time"] <= edge["time"]

    # Every line of the nginx logs is JSON, not only the ones looked at.
    for name in ("edge", "app-1-nginx", "app-2-nginx"):
        for line in access_log(lab.ctx, name).read_text().splitlines():
            json.loads(line)
    # A hit names no LB request: the cached copy's X-Request-ID belongs to another one.
    hits = [e for e in json_lines(access_log(lab.ctx, "edge")) if e["cache"] == "HIT"]
    assert hits
    assert all(e["request_id"] == "" for e in hits)


STATIC_CSS = b"body { color: #234 }\n"
HASHED = "/static/site.0123456789ab.css"      # a name as collectstatic's manifest writes it


def test_static_files_are_immutable_and_cached_at_the_edge(lab: Lab) -> None:
    """/static/ is served by the app node's nginx from the collected files, cached by the
    edge: MISS then HIT, each logged with its own traceparent; cookies do not stop it."""
    static = lab.ctx.state / "static"
    (static / "site.0123456789ab.css").write_bytes(STATIC_CSS)
    (static / "site.css").write_bytes(STATIC_CSS)
    first_tp = "00-11111111111111111111111111111111-1111111111111111-01"
    second_tp = "00-22222222222222222222222222222222-2222222222222222-01"
    cookie = {"cookie": "sessionid=abc; csrftoken=x"}
    first = edge_get(lab, HASHED, {"traceparent": first_tp, **cookie})
    second = edge_get(lab, HASHED, {"traceparent": second_tp, **cookie})
    assert (first.status, first.body) == (200, STATIC_CSS)
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"            # a session cookie does not bypass
    assert second.body == STATIC_CSS
    assert "cdn-cache;desc=HIT" in second.headers["server-timing"]
    for reply in (first, second):
        assert reply.headers["cache-control"] == "public, max-age=86400, immutable"
        assert reply.headers["etag"]
        assert reply.headers["content-type"] == "text/css"
        assert reply.headers["x-content-type-options"] == "nosniff"
    assert first.headers["x-served-by"] in ("app-1", "app-2")
    # Without the content hash in its name a file may change in place: an hour only.
    plain = edge_get(lab, "/static/site.css")
    assert plain.headers["cache-control"] == "public, max-age=3600"
    assert edge_get(lab, "/static/missing.css").status == 404

    def lines(tier: str, traceparent: str) -> list[dict[str, Any]]:
        return [e for e in json_lines(access_log(lab.ctx, tier))
                if e.get("traceparent") == traceparent]

    node = first.headers["x-served-by"]
    edge_first = wait_for(lambda: lines("edge", first_tp))
    app_first = wait_for(lambda: lines(f"{node}-nginx", first_tp))
    edge_second = wait_for(lambda: lines("edge", second_tp))
    assert [e["cache"] for e in edge_first] == ["MISS"]
    assert [(e["uri"], e["status"], e["upstream_addr"]) for e in app_first] == [
        (HASHED, "200", "")]                                 # nginx itself, not gunicorn
    assert [e["cache"] for e in edge_second] == ["HIT"]
    assert not any(lines(f"app-{n}-nginx", second_tp) for n in (1, 2))   # a HIT stays out


def test_app_node_answers_a_static_revalidation_with_304(lab: Lab) -> None:
    static = lab.ctx.state / "static"
    (static / "site.0123456789ab.css").write_bytes(STATIC_CSS)
    address, port = lab.topo.endpoint("app-1-nginx")
    first = plain_get(address, port, HASHED)
    assert first.headers["cache-control"] == "public, max-age=86400, immutable"
    assert first.headers["x-served-by"] == "app-1"       # the server's headers still apply
    again = plain_get(address, port, HASHED, {"If-None-Match": first.headers["etag"]})
    assert (again.status, again.body) == (304, b"")


def test_health_checks_take_a_down_node_out(lab: Lab) -> None:
    assert wait_for(lambda: lab.lb.servers(lab.ctx).get("app-2") == "UP")
    lab.gunicorns["app-2"].stop()                  # app-2's nginx now answers /healthz 502
    stopped = time.monotonic()
    down = wait_for(lambda: lab.lb.servers(lab.ctx)["app-2"].startswith("DOWN"), timeout=4)
    assert down, lab.lb.servers(lab.ctx)
    # fall 2 × inter 500 ms: about a second.
    assert time.monotonic() - stopped < 2.5
    served = [edge_get(lab, f"/nocache/after?i={i}") for i in range(6)]
    assert [r.status for r in served] == [200] * 6
    assert {r.headers["x-backend-server"] for r in served} == {"app-1"}


def test_stopping_leaves_no_process_and_no_port(lab: Lab) -> None:
    records = {rec.tier: rec for rec in process.records(lab.ctx)}
    assert set(WEB_TIERS) <= set(records)
    for name in reversed(WEB_TIERS):
        assert process.stop(lab.ctx, name)
    for name in WEB_TIERS:
        assert live_group_members(records[name].pid) == [], name
    edge_http = int(str(lab.topo.spec("edge").options["http_port"]))
    listeners = [(t.address, t.port) for t in lab.tiers.values()]
    listeners.append((lab.address("edge"), edge_http))
    for address, port in listeners:
        assert port is not None
        assert not port_open(address, port), (address, port)


def live_group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (nginx workers included)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            state, pgrp = fields[0], int(fields[2])
            if pgrp == pgid and state != "Z":
                members.append(int(entry))
    return members


def test_single_profile_edge_is_the_whole_front(tmp_path: Path) -> None:
    """The seeds' one server: TLS → gunicorn, static files and security headers, no cache."""
    topo = isolated(single())
    ctx = LabContext(state=tmp_path, profile="single")
    gunicorn = FakeGunicorn("server", topo.endpoint("gunicorn"))
    gunicorn.start()
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "site.css").write_text("body { color: #333 }\n")
    (tmp_path / "static" / "site.0123456789ab.css").write_text("body { color: #333 }\n")
    try:
        process.start(build(topo, topo.spec("nginx")), ctx, timeout=15)
        lab = Lab(topo, ctx, {}, {"server": gunicorn}, ensure_pki(ctx.pki).ca)
        page = edge_get(lab, "/nocache/page", {"traceparent": TRACEPARENT}, tier="nginx")
        seen = page.json()["headers"]
        assert page.status == 200
        assert page.headers["x-served-by"] == "server"
        assert "x-cache" not in page.headers                   # no edge cache here
        assert page.headers["x-frame-options"] == "DENY"
        assert seen["traceparent"] == TRACEPARENT
        assert seen["x-forwarded-proto"] == "https"
        assert re.fullmatch(r"[0-9a-f]{32}", seen["x-request-id"])   # nginx's own id
        assert page.headers["x-request-id"] == seen["x-request-id"]
        css = edge_get(lab, "/static/site.css", tier="nginx")
        assert css.status == 200
        assert css.body == b"body { color: #333 }\n"
        assert css.headers["content-type"] == "text/css"
        assert css.headers["cache-control"] == "public, max-age=3600"
        assert css.headers["x-frame-options"] == "DENY"
        hashed = edge_get(lab, "/static/site.0123456789ab.css", tier="nginx")
        assert hashed.headers["cache-control"] == "public, max-age=86400, immutable"
        assert hashed.headers["etag"]
        logged = wait_for(lambda: [e for e in json_lines(access_log(ctx, "nginx"))
                                   if e["traceparent"] == TRACEPARENT])
        assert logged
        assert logged[0]["request_id"] == seen["x-request-id"]
    finally:
        process.stop(ctx, "nginx")
        gunicorn.stop()


def test_a_config_nginx_rejects_fails_in_prepare_with_its_message(tmp_path: Path) -> None:
    topo = isolated(production())
    edge = topo.spec("edge")
    # The redirect listener on the TLS port: two default servers for one address:port.
    broken = dataclasses.replace(edge, options={**edge.options, "http_port": edge.port})
    topo.tiers = [broken if spec.name == "edge" else spec for spec in topo.tiers]
    with pytest.raises(LabError, match="duplicate default server"):
        build(topo, broken).prepare(LabContext(state=tmp_path))


@pytest.mark.parametrize("algorithm", ["roundrobin", "leastconn", "source"])
def test_haproxy_accepts_each_balance_algorithm(tmp_path: Path, algorithm: str) -> None:
    topo = isolated(production())
    ctx = LabContext(state=tmp_path, algorithm=algorithm)
    lb = build(topo, topo.spec("lb"))
    lb.prepare(ctx)                                  # haproxy -c passed
    assert f"balance {algorithm}\n" in (ctx.dir("lb") / "haproxy.cfg").read_text()


def test_haproxy_refuses_an_unknown_algorithm(tmp_path: Path) -> None:
    topo = isolated(production())
    with pytest.raises(ValueError, match="unknown balance algorithm"):
        build(topo, topo.spec("lb")).prepare(LabContext(state=tmp_path, algorithm="fastest"))
