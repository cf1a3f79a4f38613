"""``whathappens serve``: the page, its headers, and journeys streamed step by step (real server,
real journeys through the demo internet and local misbehaving servers)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest

from misbehaving import RawServer, free_port, read_request_head, wait_until_closed
from serve_helpers import WHATHAPPENS, Served, Stream, demo_args, journey, request, serve
from whathappens.demo.command import demo_url
from whathappens.demo.internet import DemoInternet
from whathappens.web.app import PAGE_CSP

HAR_SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
JOURNEY_SCHEMA = json.loads((Path(__file__).parents[1] / "src" / "whathappens" / "schema"
                             / "journey.schema.json").read_text())


@pytest.fixture(scope="module")
def served(demo_internet: DemoInternet) -> Iterator[Served]:
    with serve(*demo_args(demo_internet)) as s:
        yield s


# ------------------------------------------------------------------ page and headers
def test_page_is_served_with_a_strict_policy_and_only_local_assets(served: Served) -> None:
    status, headers, body = request(served, "GET", "/")
    assert status == 200
    assert headers["content-security-policy"] == PAGE_CSP
    assert "script-src 'self'" in PAGE_CSP
    assert "unsafe-inline" not in PAGE_CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    html = body.decode()
    # Nothing inline that the policy would have to allow, nothing from another origin.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html
    assert "<style" not in html
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert ref.startswith("/static/"), ref
    for name, ctype in (("app.js", "text/javascript"), ("page.css", "text/css"),
                        ("icon.svg", "image/svg+xml")):
        status, headers, body = request(served, "GET", f"/static/{name}")
        assert status == 200
        assert headers["content-type"].startswith(ctype)
        assert body
    assert request(served, "GET", "/static/../app.py")[0] == 404
    assert request(served, "GET", "/static/nope.js")[0] == 404
    assert request(served, "GET", "/nothing-here")[0] == 404


def test_the_page_answers_only_to_its_own_host_name(served: Served) -> None:
    """DNS rebinding: a site whose name resolves to 127.0.0.1 must not reach the page."""
    port = served.port
    status, _, body = request(served, "GET", "/", headers={"Host": f"evil.example:{port}"})
    assert status == 421
    assert b"Host" in body
    status, _, _ = request(served, "POST", "/api/journey", body=b'{"url":"http://x/"}',
                           headers={"Host": f"evil.example:{port}",
                                    "Content-Type": "application/json"})
    assert status == 421
    assert request(served, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200


def test_journeys_start_only_from_the_page(served: Served) -> None:
    assert request(served, "GET", "/api/journey")[0] == 405
    body = b'{"url": "https://www.example.com/"}'
    # A form post or a no-cors fetch from another site cannot send application/json.
    assert request(served, "POST", "/api/journey", body,
                   {"Content-Type": "text/plain"})[0] == 415
    status, _, text = request(served, "POST", "/api/journey", body,
                              {"Content-Type": "application/json",
                               "Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert b"this page" in text
    assert request(served, "POST", "/api/journey", b"{not json",
                   {"Content-Type": "application/json"})[0] == 400
    long = json.dumps({"url": "https://example.com/" + "a" * 3000}).encode()
    status, _, text = request(served, "POST", "/api/journey", long,
                              {"Content-Type": "application/json"})
    assert status == 400
    assert b"2048" in text


# ----------------------------------------------------------------------- journeys
def test_a_demo_journey_streams_every_step_then_the_report(
        served: Served, demo_internet: DemoInternet) -> None:
    stream = journey(served, demo_url(demo_internet, None))
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    kinds = stream.kinds()
    assert kinds[0] == "start"
    assert kinds[-2:] == ["report", "end"]
    steps = [s["step"] for s in stream.steps()]
    # The HTTPS record advertises h3: the page's journey goes as a browser's, QUIC first.
    assert steps == ["url", "dns", "quic", "http", "leg", "revalidate", "tls-compare"]
    # Inside DNS, each resolver question and each hop of the walk arrives as it ends,
    # before the DNS step itself.
    details = [(i, d) for i, (k, d, _) in enumerate(stream.events) if k == "detail"]
    dns_at = next(i for i, (k, d, _) in enumerate(stream.events)
                  if k == "step" and d["step"] == "dns")
    assert {d["step"] for _, d in details} == {"dns.query", "dns.hop"}
    assert all(i < dns_at for i, _ in details)
    walk = [d["summary"] for _, d in details if d["step"] == "dns.hop"]
    assert walk[0].startswith("walk: asked a.root-servers.net (127.0.53.1)")
    assert "referral to the com. servers" in walk[0]
    by = {s["step"]: s for s in stream.steps()}
    assert not any(s["failed"] for s in stream.steps())
    assert "127.0.80.1" in by["dns"]["summary"] or "::1" in by["dns"]["summary"]
    assert "QUIC" in by["quic"]["summary"]
    assert by["http"]["summary"].startswith("200 ")
    assert "TLS 1.2:" in by["tls-compare"]["summary"]
    assert "round trip" in by["tls-compare"]["summary"]
    assert by["dns"]["beginner"]
    assert by["dns"]["advanced"]
    report = stream.one("report")
    assert report["exit_code"] == 0
    assert report["error"] is None
    assert 'id="waterfall"' in report["html"]
    assert 'id="tls-compare"' in report["html"]
    assert "style=" not in report["html"]  # bars are placed from data-* under the CSP
    assert "data-left=" in report["html"]

    # The downloads are the same journey: every streamed number is in it.
    status, headers, body = request(served, "GET", f"/journeys/{report['id']}.json")
    assert status == 200
    assert "attachment" in headers["content-disposition"]
    data = json.loads(body)
    jsonschema.Draft202012Validator(JOURNEY_SCHEMA).validate(data)
    leg = next(s for s in data["spans"] if s["name"] == "leg")
    for child in leg["children"]:
        if child["name"] in by:
            assert child["duration_ms"] == by[child["name"]]["duration_ms"], child["name"]
            assert child["start_ms"] == by[child["name"]]["start_ms"], child["name"]
    assert data["facts"]["tls_compare"]["measured"] is True
    status, _, body = request(served, "GET", f"/journeys/{report['id']}.har")
    har = json.loads(body)
    jsonschema.Draft202012Validator(HAR_SCHEMA).validate(har)
    assert har["log"]["entries"][0]["response"]["status"] == 200
    status, headers, body = request(served, "GET", f"/journeys/{report['id']}.html")
    assert status == 200
    assert b"Content-Security-Policy" in body
    assert request(served, "GET", "/journeys/nope.json")[0] == 404
    assert request(served, "GET", f"/journeys/{report['id']}.exe")[0] == 404


def _stall_then_ok(seconds: float) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        read_request_head(conn)
        time.sleep(seconds)
        body = b"late\n"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                     + body)
        wait_until_closed(conn, 2)
    return handler


def test_steps_arrive_as_they_finish_not_at_the_end(served: Served) -> None:
    with RawServer(_stall_then_ok(1.5)) as server:
        stream = journey(served, server.url())
    arrival = {k if k != "step" else d["step"]: t for k, d, t in stream.events}
    assert stream.one("report")["exit_code"] == 0
    # The TCP step was on the page while the server was still thinking.
    assert arrival["report"] - arrival["tcp"] >= 1.2, arrival
    assert arrival["url"] <= arrival["tcp"] <= arrival["http"] <= arrival["report"]
    http = next(s for s in stream.steps() if s["step"] == "http")
    assert http["duration_ms"] >= 1400


def test_closing_the_page_stops_the_journey(served: Served) -> None:
    closed = threading.Event()

    def stall(conn: socket.socket) -> None:
        read_request_head(conn)
        wait_until_closed(conn, 20)
        closed.set()

    with RawServer(stall) as server:
        t0 = time.monotonic()
        stream = journey(served, server.url(), stop_after="step")  # the url step
        assert stream.events[-1][1]["step"] in ("url", "dns", "tcp")
        # The reader is gone: the server side must drop the journey and its connection.
        assert closed.wait(15), "the journey's connection stayed open after the reader left"
        assert time.monotonic() - t0 < 15


def test_a_failing_journey_still_reports_what_happened(served: Served) -> None:
    port = free_port()  # nothing listens there
    stream = journey(served, f"http://127.0.0.1:{port}/")
    tcp = next(s for s in stream.steps() if s["step"] == "tcp")
    assert tcp["failed"]
    assert "refused" in tcp["summary"]
    report = stream.one("report")
    assert report["exit_code"] == 5
    assert report["error"]["step"] == "tcp"
    assert "refused" in report["html"]
    stream = journey(served, "http://exa mple.com/")
    url = stream.steps()[0]
    assert url["step"] == "url"
    assert url["failed"]
    assert stream.one("report")["exit_code"] == 3


# ------------------------------------------------------------------------ command
def test_binding_beyond_loopback_needs_public() -> None:
    out = subprocess.run([WHATHAPPENS, "serve", "--bind", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--public" in out.stderr
    assert "Traceback" not in out.stderr
    out = subprocess.run([WHATHAPPENS, "serve", "--public", "--demo", "--port", "0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "demo" in out.stderr


def test_serve_demo_starts_its_own_demo_internet(tmp_path: Path) -> None:
    with serve("--demo", "--demo-state", str(tmp_path / "demo"), cwd=tmp_path) as s:
        status, _, body = request(s, "GET", "/")
        assert status == 200
        assert b"offline demo internet" in body
        example = re.search(rb'value="(https://www\.example\.com[^"]*)"', body)
        assert example is not None
        stream = journey(s, example.group(1).decode())
        assert stream.one("report")["exit_code"] == 0
        assert any("demo internet" in f for f in [stream.one("report")["html"]])


def test_the_gate_also_bounds_journeys_in_total(demo_internet: DemoInternet) -> None:
    with serve("--per-client", "5", "--max-journeys", "1", *demo_args(demo_internet)) as s, \
            RawServer(_stall_then_ok(2.0)) as server:
        runner = threading.Thread(target=lambda: journey(s, server.url()))
        runner.start()
        time.sleep(0.5)
        second = journey(s, server.url())
        runner.join(20)
    assert second.status == 429
    assert "running 1 journeys already" in second.one("refused")["message"]


def test_public_mode_bounds_every_journey() -> None:
    from whathappens.commands.serve import _parser, journey_options
    from whathappens.guard import public_only

    args = _parser().parse_args(["--public", "--max-time", "600", "--max-body",
                                 str(10**9), "--max-redirects", "50"])
    opts = journey_options(args)
    assert opts.address_policy is public_only
    assert opts.dns.address_policy is public_only
    assert opts.max_time == 30
    assert opts.limits.max_body_bytes == 5 * 1024 * 1024
    assert opts.limits.max_decoded_bytes == 20 * 1024 * 1024
    assert opts.max_redirects == 10
    local = journey_options(_parser().parse_args(["--max-time", "600"]))
    assert local.address_policy is None
    assert local.max_time == 600


def test_behind_a_proxy_the_gate_counts_the_forwarded_address(
        demo_internet: DemoInternet) -> None:
    with serve("--per-client", "1", "--client-header", "X-Forwarded-For",
               *demo_args(demo_internet)) as s, RawServer(_stall_then_ok(2.0)) as server:
        results: list[Stream] = []
        first = threading.Thread(target=lambda: results.append(journey(
            s, server.url(), headers={"X-Forwarded-For": "198.51.100.1"})))
        first.start()
        time.sleep(0.5)
        # Another visitor behind the same proxy is not held back by the first one ...
        other = threading.Thread(target=lambda: results.append(journey(
            s, server.url(), headers={"X-Forwarded-For": "198.51.100.2"})))
        other.start()
        time.sleep(0.3)
        # ... but the same visitor is, whatever it wrote to the left of the proxy's entry.
        again = journey(s, server.url(),
                        headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
        first.join(20)
        other.join(20)
    assert again.status == 429
    assert [r.one("report")["exit_code"] for r in results] == [0, 0]
