"""The revalidation after the journey, against real servers: the demo's (a 304 on the same
HTTP/2 connection), and small HTTP/1.1 servers on 127.0.0.1 that honour validators, ignore
them, close the connection after each answer, or fail the second request."""

from __future__ import annotations

import asyncio
import io
import re
import time

from journey_helpers import demo_url, options, run, trace
from threaded_server import Handler, raw_server, serving
from whathappens.analysis.document import analyze
from whathappens.contract.facts import HttpFacts, RevalidateFacts
from whathappens.demo.internet import DemoInternet
from whathappens.journey import Journey, Span
from whathappens.render.html import render_html
from whathappens.render.terminal import render_terminal
from whathappens.web.events import step_event

BODY = b"<!doctype html><title>cache me</title>" + b"x" * 4000
ETAG = '"v1"'
MODIFIED = "Mon, 07 Dec 2026 10:00:00 GMT"


def revalidate_span(journey: Journey) -> Span[RevalidateFacts]:
    spans = [s for s in journey.spans if s.name == "revalidate"]
    assert len(spans) == 1, [s.name for s in journey.spans]
    return spans[0]


def http_of(span: Span[RevalidateFacts]) -> Span[HttpFacts]:
    return next(c for c in span.children if c.name == "http")


def first_http(journey: Journey) -> Span[HttpFacts]:
    leg = [s for s in journey.spans if s.name == "leg"][-1]
    return next(c for c in leg.children if c.name == "http")


Heads = list[dict[str, str]]


def http_server(heads: Heads, *, honour: bool = True, close: bool = False,
                fail_second: bool = False) -> Handler:
    """An HTTP/1.1 server: 200 with an ETag and Last-Modified; 304 to a matching
    If-None-Match when ``honour``; ``Connection: close`` after each answer when ``close``;
    the second request on a connection gets no answer (the connection is closed) when
    ``fail_second``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            lines = raw.decode("latin-1").split("\r\n")
            head = {k.strip().lower(): v.strip() for k, _, v in
                    (line.partition(":") for line in lines[1:] if line)}
            heads.append(head)
            if fail_second and served:
                return  # closed without an answer
            served += 1
            fields = (f"ETag: {ETAG}\r\nLast-Modified: {MODIFIED}\r\n"
                      "Cache-Control: public, max-age=60\r\n"
                      + ("Connection: close\r\n" if close else ""))
            if honour and head.get("if-none-match") == ETAG:
                writer.write(f"HTTP/1.1 304 Not Modified\r\n{fields}\r\n".encode())
            else:
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                             f"Content-Length: {len(BODY)}\r\n{fields}\r\n".encode() + BODY)
            await writer.drain()
            if close:
                return

    return handler


def journey_to(port: int, *args: str) -> Journey:
    return run(f"http://127.0.0.1:{port}/", options(*args))


def test_the_demo_page_revalidates_to_a_304_on_the_same_connection(
        demo_internet: DemoInternet) -> None:
    journey = trace(demo_internet, demo_url(demo_internet))
    assert journey.error is None
    assert journey.exit_code == 0
    span = revalidate_span(journey)
    facts = span.facts
    assert facts.outcome == "made"
    assert facts.connection == "reused"            # HTTP/2: a new stream (RFC 9113 §5.1.1)
    assert [n for n, _ in facts.conditional] == ["if-none-match", "if-modified-since"]
    again, first = http_of(span).facts, first_http(journey).facts
    assert again.status == 304
    assert first.status == 200
    sent = dict(again.request_headers)
    assert sent["if-none-match"] == dict(first.response_headers)["etag"]
    assert again.body_bytes_encoded == 0
    assert again.wire_bytes_received is not None
    assert first.wire_bytes_received is not None
    assert again.wire_bytes_received < first.wire_bytes_received
    # on the journey's clock, after the journey's last request
    leg = [s for s in journey.spans if s.name == "leg"][-1]
    assert leg.end_ns is not None
    assert span.start_ns >= leg.end_ns
    check = analyze(journey.to_dict())["caching"]["revalidation"]
    assert check["outcome"] == "not_modified"
    assert check["status"] == 304
    assert check["ttfb_ms"] > 0
    assert check["first_ttfb_ms"] > 0
    assert check["wire_bytes_received"] < check["first_wire_bytes_received"]


def test_no_revalidate_turns_it_off(demo_internet: DemoInternet) -> None:
    journey = trace(demo_internet, demo_url(demo_internet), "--no-revalidate")
    assert journey.error is None
    assert [s.name for s in journey.spans if s.name == "revalidate"] == []
    assert analyze(journey.to_dict())["caching"]["revalidation"] is None


def test_a_server_that_honours_if_none_match_answers_304_on_the_kept_alive_connection(
) -> None:
    heads: Heads = []
    connections: list[int] = []
    with serving(raw_server(http_server(heads), connections)) as port:
        journey = journey_to(port)
    assert journey.exit_code == 0
    span = revalidate_span(journey)
    assert span.facts.connection == "reused"
    assert len(connections) == 1
    assert heads[1]["if-none-match"] == ETAG
    assert heads[1]["if-modified-since"] == MODIFIED
    assert http_of(span).facts.status == 304
    check = analyze(journey.to_dict())["caching"]["revalidation"]
    assert check["outcome"] == "not_modified"
    assert check["first_body_bytes"] == len(BODY)
    assert check["body_bytes"] == 0


def test_a_server_that_ignores_validators_is_explained() -> None:
    heads: Heads = []
    with serving(raw_server(http_server(heads, honour=False))) as port:
        journey = journey_to(port)
    assert journey.exit_code == 0
    span = revalidate_span(journey)
    assert http_of(span).facts.status == 200
    assert heads[1]["if-none-match"] == ETAG             # it was asked, and ignored it
    check = analyze(journey.to_dict())["caching"]["revalidation"]
    assert check["outcome"] == "full_response"
    assert "ignored If-None-Match" in check["words"]
    assert check["body_bytes"] == len(BODY) == check["first_body_bytes"]


def test_a_closed_connection_means_a_new_one_to_the_same_address_without_dns() -> None:
    heads: Heads = []
    connections: list[int] = []
    with serving(raw_server(http_server(heads, close=True),
                            connections)) as port:
        journey = journey_to(port)
    span = revalidate_span(journey)
    assert span.facts.connection == "new"
    assert len(connections) == 2
    assert "127.0.0.1" in (span.facts.connection_why or "")
    assert [c.name for c in span.children] == ["tcp", "http"]   # no DNS of its own
    assert http_of(span).facts.status == 304


def test_a_failed_revalidation_is_its_own_step_and_keeps_the_exit_code() -> None:
    heads: Heads = []
    with serving(raw_server(http_server(heads, fail_second=True))) as port:
        journey = journey_to(port)
    assert journey.error is None
    assert journey.exit_code == 0
    span = revalidate_span(journey)
    assert span.facts.outcome == "failed"
    assert span.error is not None
    assert span.facts.why
    check = analyze(journey.to_dict())["caching"]["revalidation"]
    assert check["outcome"] == "failed"
    assert "journey's result stands" in check["words"]
    out = io.StringIO()
    render_terminal(journey.to_dict(), out, color=False, width=120)
    assert re.search(r" revalidate .* failed", out.getvalue())
    assert "the revalidation failed: " in out.getvalue()
    assert "revalidation failed" in render_html(journey.to_dict())
    assert step_event(span.to_dict(), 1)["failed"] is True


def test_no_validator_no_revalidation_and_says_why() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()

    with serving(raw_server(plain)) as port:
        journey = journey_to(port)
    span = revalidate_span(journey)
    assert span.facts.outcome == "skipped"
    assert span.children == []
    assert "no validator" in (span.facts.why or "")
    assert span.end_ns == span.start_ns


def test_a_silent_server_bounds_the_revalidation_by_max_time() -> None:
    """The second request gets no answer at all: the revalidation gives up when the
    journey's --max-time runs out, says so, and the journey still succeeds."""
    async def silent_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 200 OK\r\nETag: {ETAG}\r\nContent-Length: 2\r\n\r\nok"
                     .encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(30)  # never answers

    with serving(raw_server(silent_second)) as port:
        started = time.monotonic()
        journey = journey_to(port, "--max-time", "1.5")
        took = time.monotonic() - started
    assert journey.error is None
    assert journey.exit_code == 0
    span = revalidate_span(journey)
    assert span.facts.outcome == "failed"
    assert took < 5
    assert span.duration_ns is not None
    assert span.duration_ns < 1.6e9


def test_every_renderer_shows_the_revalidation(demo_internet: DemoInternet) -> None:
    journey = trace(demo_internet, demo_url(demo_internet))
    doc = journey.to_dict()
    out = io.StringIO()
    render_terminal(doc, out, color=False, width=120)
    text = out.getvalue()
    assert "Caching (RFC 9111)" in text
    assert re.search(r" revalidate .* 304 Not Modified · TTFB [\d.]+ ms", text)
    assert "s-maxage=300" in text
    page = render_html(doc)
    assert '<section id="caching"' in page
    assert "Revalidation, made after the journey" in page
    span = revalidate_span(journey)
    event = step_event(span.to_dict(), 1)
    assert event["title"] == "Revalidation (RFC 9111)"
    assert event["summary"].startswith("304 Not Modified ")
    assert "reused connection" in event["summary"]
