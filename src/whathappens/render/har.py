"""The journey as HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/), one entry per leg.

Timing semantics follow the spec: ``blocked`` (waiting before the connection work began: our
set-up between steps), ``dns``, ``connect`` (TCP **including** TLS), ``ssl`` (TLS alone, so it
is counted once inside ``connect``), ``send``, ``wait`` (time to first byte) and ``receive``;
``-1`` where a phase did not happen, as on a reused connection. ``time`` is the sum of the
non-negative phases except ``ssl``. Redirect legs are entries of their own. Reads only the
journey's dict, like every renderer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from whathappens import __version__

Span = dict[str, Any]


def _child(span: Span, name: str) -> Span | None:
    return next((c for c in span.get("children", []) if c["name"] == name), None)


def _iso(t0_wall_ns: int, at_ms: float) -> str:
    moment = datetime.fromtimestamp((t0_wall_ns + at_ms * 1e6) / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(span: Span | None) -> float:
    if span is None or span.get("duration_ms") is None:
        return -1
    return round(float(span["duration_ms"]), 3)


def _headers(pairs: list[list[str]]) -> list[dict[str, str]]:
    return [{"name": str(n), "value": str(v)} for n, v in pairs]


def _client_port(tcp: Span | None) -> str:
    """HAR 1.2 ``connection``: "unique ID of the parent TCP/IP connection, can be the client or
    server port number": the client's port is unique per connection."""
    local = str((tcp or {}).get("attrs", {}).get("local", ""))
    port = local.rpartition(":")[2]
    return port if port.isdigit() else str((tcp or {}).get("id", ""))


def _entry(leg: Span, t0_wall_ns: int, page: str,
           tcp_by_id: dict[int, Span] | None = None) -> dict[str, Any] | None:
    http = _child(leg, "http")
    if http is None or "status" not in http.get("attrs", {}):
        return None
    a = http["attrs"]
    dns, tcp, tls = _child(leg, "dns"), _child(leg, "tcp"), _child(leg, "tls")
    send = _duration(_child(http, "http.send"))
    wait = _duration(_child(http, "http.wait"))
    receive = _duration(_child(http, "http.receive"))
    connect = -1.0
    if tcp is not None:
        # HAR: connect covers the TLS handshake too, and runs until the request can go.
        end = tls["end_ms"] if tls is not None else tcp["end_ms"]
        connect = round(float(end) - float(tcp["start_ms"]), 3)
    ssl = _duration(tls)
    dns_ms = _duration(dns)
    if dns is not None and dns.get("attrs", {}).get("view_used") == "none":
        dns_ms = -1  # an IP address or --resolve: no lookup happened
    # blocked: the leg's time not spent in any phase (our own work between the steps)
    phases = sum(x for x in (dns_ms, connect, send, wait, receive) if x > 0)
    blocked = round(max(0.0, float(leg["duration_ms"] or 0) - phases), 3)
    url = str(leg["attrs"].get("url", ""))
    version = str(a.get("http_version", "HTTP/1.1"))
    headers = {k.lower(): v for k, v in a.get("response_headers", [])}
    request_headers = a.get("request_headers", [])
    timings = {"blocked": blocked, "dns": dns_ms, "connect": connect, "send": send,
               "wait": wait, "receive": receive, "ssl": ssl}
    entry: dict[str, Any] = {
        "pageref": page,
        "startedDateTime": _iso(t0_wall_ns, float(leg["start_ms"])),
        "time": round(sum(v for k, v in timings.items() if k != "ssl" and v > 0), 3),
        "request": {
            "method": str(leg["attrs"].get("method", "GET")),
            "url": url,
            "httpVersion": version,
            "cookies": [],
            "headers": _headers(request_headers),
            "queryString": [{"name": k, "value": v}
                            for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": int(a["status"]),
            "statusText": str(a.get("reason") or ""),
            "httpVersion": version,
            "cookies": [],
            "headers": _headers(a.get("response_headers", [])),
            "content": {
                "size": int(a.get("body_bytes_decoded") or 0),
                "compression": int(a.get("body_bytes_decoded") or 0)
                - int(a.get("body_bytes_encoded") or 0),
                "mimeType": str(headers.get("content-type", "x-unknown")),
                **({"text": a["body_excerpt"],
                    "comment": "text is the start of the body only (an excerpt); size is the "
                               "whole body, decoded"} if a.get("body_excerpt") else {}),
            },
            "redirectURL": str(headers.get("location", "")),
            "headersSize": int(a.get("header_bytes") or -1),
            "bodySize": int(a.get("body_bytes_encoded") or 0),
        },
        "cache": {},
        "timings": timings,
        "serverIPAddress": str((tcp or {}).get("attrs", {}).get("address", "")),
        "connection": _client_port(tcp or (tcp_by_id or {}).get(
            int(leg["attrs"].get("reused_from_tcp_span") or 0))),
        "comment": f"leg {int(leg['attrs'].get('index', 0)) + 1}: "
                   f"{leg['attrs'].get('connection', 'new')} connection",
    }
    return entry


def to_har(journey: dict[str, Any]) -> dict[str, Any]:
    t0 = int(journey["clock"]["t0_wall_ns"])
    legs = [s for s in journey["spans"] if s["name"] == "leg"]
    page = "page_1"
    tcp_by_id = {int(c["id"]): c for leg in legs for c in leg.get("children", [])
                 if c["name"] == "tcp"}
    entries = [e for e in (_entry(leg, t0, page, tcp_by_id) for leg in legs) if e is not None]
    first = legs[0]["start_ms"] if legs else 0.0
    return {"log": {
        "version": "1.2",
        "creator": {"name": "whathappens", "version": __version__},
        "pages": [{
            "startedDateTime": _iso(t0, float(first)),
            "id": page,
            "title": str(journey["url"]),
            "pageTimings": {"onContentLoad": -1, "onLoad": -1},
        }],
        "entries": entries,
        "comment": "timings measured by whathappens on a monotonic clock; dns is the view "
                   "the connection used; connect includes ssl, as HAR 1.2 says",
    }}
