"""End to end: the HTTP step against servers that misbehave, and every read bounded."""

from __future__ import annotations

import asyncio

import pytest

from journey_helpers import (
    assert_failed_at,
    assert_steps_before,
    child,
    demo_args,
    demo_url,
    failed_span,
    legs,
    nesting_errors,
    options,
    run,
    trace,
)
from misbehaving import RawServer, close_mid_body, endless_body, garbage_reply, stall_after_headers
from whathappens.demo.internet import DemoInternet
from whathappens.trace import run_journey


def test_garbage_instead_of_a_status_line() -> None:
    with RawServer(garbage_reply) as server:
        j = run(server.url())
    assert_failed_at(j, "http", "http.malformed", 7, "not HTTP", "HELLO THIS IS NOT HTTP")
    leg = assert_steps_before(j, "dns", "tcp")
    assert [c.name for c in leg.children] == ["dns", "tcp", "http"]
    failed_span(leg, "http", "http.malformed")


def test_endless_body_stops_at_the_limit() -> None:
    with RawServer(endless_body) as server:
        j = run(server.url(), options("--max-body", "100000", "--max-time", "10"))
    assert_failed_at(j, "http", "http.body_too_large", 7, "limit", "97.7 KiB",
                     "reading stopped")
    leg = assert_steps_before(j, "dns", "tcp")
    http = failed_span(leg, "http", "http.body_too_large")
    assert http.duration_ns is not None
    assert http.duration_ns < 5e9  # stopped at the limit, not at --max-time


# The same bound over HTTP/2 (TCP + TLS) and HTTP/3 (QUIC, the demo's default).
TRANSPORTS = [(("--http3=off",), ("dns", "tcp", "tls")), ((), ("dns", "prepare", "quic"))]


@pytest.mark.parametrize(("args", "before"), TRANSPORTS)
def test_gzip_bomb_small_limit(demo_internet: DemoInternet, args: tuple[str, ...],
                               before: tuple[str, ...]) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/gzip-bomb"), "--max-decoded", "1000000", *args)
    assert_failed_at(j, "http", "http.decoded_too_large", 7, "gzip", "976.6 KiB",
                     "decompression bomb")
    leg = assert_steps_before(j, *before)
    failed_span(leg, "http", "http.decoded_too_large")


@pytest.mark.parametrize(("args", "before"), TRANSPORTS)
def test_gzip_bomb_default_limit(demo_internet: DemoInternet, args: tuple[str, ...],
                                 before: tuple[str, ...]) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/gzip-bomb"), *args)
    assert_failed_at(j, "http", "http.decoded_too_large", 7, "50 MiB", "decompression bomb")
    assert_steps_before(j, *before)


def test_stall_after_the_headers_hits_max_time() -> None:
    with RawServer(stall_after_headers) as server:
        j = run(server.url(), options("--max-time", "1"))
    assert_failed_at(j, "journey", "journey.timeout", 9, "--max-time 1 s")
    leg = assert_steps_before(j, "dns", "tcp")
    http = child(leg, "http")
    assert http.end_ns is not None
    assert http.end_ns >= 0.95e9  # it was cut short at the deadline, 1 s after t0
    assert j.facts.summary.failed_step == "journey"


def test_stall_after_the_headers_marks_the_http_span_failed() -> None:
    with RawServer(stall_after_headers) as server:
        j = run(server.url(), options("--max-time", "1"))
    assert j.error is not None
    assert j.error.code == "journey.timeout"
    http = child(legs(j)[0], "http")
    assert http.error is not None, "the http span does not say it was cut short"
    assert http.error["code"] == "journey.timeout"


def test_max_time_during_dns_keeps_spans_nested(demo_internet: DemoInternet) -> None:
    net = demo_internet
    # slow.example.com is never answered: the walk waits on its first hop when time runs out.
    j = asyncio.run(run_journey(demo_url(net, host="slow.example.com"),
                                options(*demo_args(net), "--dns-views", "walk",
                                        "--max-time", "0.3", "--dns-timeout", "2")))
    assert j.error is not None
    assert j.error.code == "journey.timeout"
    assert nesting_errors(j) == []
    dns = child(legs(j)[0], "dns")
    assert dns.error is not None


def test_server_closes_mid_body() -> None:
    with RawServer(close_mid_body) as server:
        j = run(server.url())
    assert_failed_at(j, "http", "http.connection_closed", 7, "closed the connection",
                     "after 100 bytes", "1000 announced")
    leg = assert_steps_before(j, "dns", "tcp")
    failed_span(leg, "http", "http.connection_closed")
