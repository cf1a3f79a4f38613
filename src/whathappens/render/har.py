"""The journey as HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/), one entry per leg.

Timing semantics follow the spec: ``blocked`` (waiting before the connection work began: our
set-up between steps), ``dns``, ``connect`` (TCP **including** TLS), ``ssl`` (TLS alone, so it
is counted once inside ``connect``), ``send``, ``wait`` (time to first byte) and ``receive``;
``-1`` where a phase did not happen, as on a reused connection. ``time`` is the sum of the
non-negative phases except ``ssl``. Redirect legs are entries of their own. Reads only the
journey's typed document (contract/), like every renderer.

With a browser phase, the page Chromium loaded is a page of its own (``page_2``, started at
the navigation, ``pageTimings`` onContentLoad/onLoad counted from it) with one entry per request
Chromium made, the document included (render/har_browser.py): the journey's own legs stay the
entries of ``page_1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from whathappens import __version__
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import DnsFacts, HttpFacts, LegFacts, QuicFacts, TcpFacts
from whathappens.render.har_browser import browser_page
from whathappens.render.har_browser import iso as _iso
from whathappens.render.steps import facts
from whathappens.render.view import read


def _duration(span: SpanDoc | None) -> float:
    if span is None or span.duration_ms is None:
        return -1
    return round(span.duration_ms, 3)


def _headers(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "value": v} for n, v in pairs]


def _client_port(tcp: SpanDoc | None) -> str:
    """HAR 1.2 ``connection``: "unique ID of the parent TCP/IP connection, can be the client or
    server port number": the client's port is unique per connection."""
    if tcp is None:
        return ""
    port = (facts(tcp, TcpFacts).local or "").rpartition(":")[2]
    return port if port.isdigit() else str(tcp.id)


def _timings(leg: SpanDoc) -> dict[str, float]:
    """HAR's phases of one request, in ms; -1 where a phase did not happen."""
    http = leg.child("http")
    dns, tcp, tls = leg.child("dns"), leg.child("tcp"), leg.child("tls")
    connect = -1.0
    if tcp is not None:
        # HAR: connect covers the TLS handshake too, and runs until the request can go.
        end = (tls if tls is not None else tcp).end_ms
        connect = round((end if end is not None else tcp.start_ms) - tcp.start_ms, 3)
    dns_ms = _duration(dns)
    if dns is not None and facts(dns, DnsFacts).view_used == "none":
        dns_ms = -1  # an IP address or --resolve: no lookup happened
    send, wait, receive = (_duration(http.child(f"http.{p}") if http else None)
                           for p in ("send", "wait", "receive"))
    ssl = _duration(tls)
    if (quic := leg.child("quic")) is not None:
        # HTTP/3: QUIC sets up transport and TLS in one handshake (RFC 9001), so, as Chrome
        # writes it, connect is the QUIC handshake and ssl the same span inside it.
        connect = ssl = _duration(quic)
    # blocked: the leg's time not spent in any phase (our own work between the steps)
    phases = sum(x for x in (dns_ms, connect, send, wait, receive) if x > 0)
    blocked = round(max(0.0, (leg.duration_ms or 0.0) - phases), 3)
    return {"blocked": blocked, "dns": dns_ms, "connect": connect, "send": send,
            "wait": wait, "receive": receive, "ssl": ssl}


def _response(a: HttpFacts, version: str) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in a.response_headers}
    excerpt: dict[str, str] = {}
    if a.body_excerpt:
        excerpt = {"text": a.body_excerpt,
                   "comment": "text is the start of the body only (an excerpt); size is the "
                              "whole body, decoded"}
    return {
        "status": a.status,
        "statusText": a.reason or "",
        "httpVersion": version,
        "cookies": [],
        "headers": _headers(a.response_headers),
        "content": {
            "size": a.body_bytes_decoded or 0,
            "compression": (a.body_bytes_decoded or 0) - (a.body_bytes_encoded or 0),
            "mimeType": headers.get("content-type", "x-unknown"),
            **excerpt,
        },
        "redirectURL": headers.get("location", ""),
        "headersSize": a.header_bytes or -1,
        "bodySize": a.body_bytes_encoded or 0,
    }


def _entry(leg: SpanDoc, t0_wall_ns: int, page: str,
           tcp_by_id: dict[int, SpanDoc]) -> dict[str, Any] | None:
    http = leg.child("http")
    a = http.facts_as(HttpFacts) if http is not None else None
    if a is None or a.status is None:
        return None
    la = facts(leg, LegFacts)
    tcp = leg.child("tcp")
    url = la.url
    version = a.http_version or "HTTP/1.1"
    if version == "HTTP/3":
        version = "h3"  # what browsers' HAR exports write for HTTP/3
    timings = _timings(leg)
    quic_span = leg.child("quic")
    quic = facts(quic_span, QuicFacts) if quic_span is not None else None
    return {
        "pageref": page,
        "startedDateTime": _iso(t0_wall_ns, leg.start_ms),
        "time": round(sum(v for k, v in timings.items() if k != "ssl" and v > 0), 3),
        "request": {
            "method": la.method,
            "url": url,
            "httpVersion": version,
            "cookies": [],
            "headers": _headers(a.request_headers),
            "queryString": [{"name": k, "value": v}
                            for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": _response(a, version),
        "cache": {},
        "timings": timings,
        "serverIPAddress": (facts(tcp, TcpFacts).address or "") if tcp is not None else
        (quic.address or "") if quic is not None else "",
        "connection": _client_port(tcp or tcp_by_id.get(la.reused_from_tcp_span or 0))
        or ((quic.local or "").rpartition(":")[2] if quic is not None else ""),
        "comment": f"leg {la.index + 1}: {la.connection or 'new'} connection",
    }


def to_har(journey: Mapping[str, object]) -> dict[str, Any]:
    return journey_har(read(journey))


def journey_har(journey: JourneyDoc) -> dict[str, Any]:
    t0 = journey.clock.t0_wall_ns
    legs = [s for s in journey.spans if s.name == "leg"]
    page = "page_1"
    tcp_by_id = {c.id: c for leg in legs for c in leg.children if c.name == "tcp"}
    entries = [e for e in (_entry(leg, t0, page, tcp_by_id) for leg in legs) if e is not None]
    first = legs[0].start_ms if legs else 0.0
    pages: list[dict[str, Any]] = [{
        "startedDateTime": _iso(t0, first),
        "id": page,
        "title": journey.url,
        "pageTimings": {"onContentLoad": -1, "onLoad": -1},
    }]
    browser = browser_page(journey, "page_2")
    if browser is not None:
        pages.append(browser.page)
        entries += browser.entries
    return {"log": {
        "version": "1.2",
        "creator": {"name": "whathappens", "version": __version__},
        "pages": pages,
        "entries": entries,
        "comment": "timings measured by whathappens on a monotonic clock; dns is the view "
                   "the connection used; connect includes ssl, as HAR 1.2 says",
    }}
