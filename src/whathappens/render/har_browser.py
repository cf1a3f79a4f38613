"""The browser phase as HAR 1.2: the page Chromium loaded, and one entry per request it made.

The page starts at the navigation (the document request's start); its ``pageTimings`` are
DOMContentLoaded and load after the navigation's start, as Chromium reported them and as HAR
1.2 defines them ("milliseconds since page load started").

Each request is an entry with the fields DevTools writes and reads back when it imports a HAR
(front_end/models/har):

- ``_initiator``: CDP's ``Network.Initiator`` object (type, url, lineNumber from 0);
- ``_priority``: ``VeryHigh`` … ``VeryLow`` (CDP's ``ResourcePriority``);
- ``_resourceType``: DevTools' lower-case names (``stylesheet``, ``script``…);
- ``_fromCache``, ``response._transferSize`` (headers and body on the wire),
  ``response._error``, ``timings._blocked_queueing`` (inside ``blocked``);
- ``_renderBlocking`` in CDP's spelling (``Blocking``, ``InBodyParserBlocking``,
  ``NonBlocking``…).

Chromium's phases map onto HAR's: queued is ``blocked``, ``connect`` includes ``ssl`` (HAR
1.2), ``-1`` where a phase did not happen (a reused connection). Chromium gives no request or
response headers here: they are empty lists, their sizes -1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from whathappens.analysis.browser import browser_span, navigation_start
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import BrowserFacts, BrowserResourceFacts, ResourceTiming

RENDER_BLOCKING = {"blocking": "Blocking", "in_body_parser_blocking": "InBodyParserBlocking",
                   "potentially_blocking": "PotentiallyBlocking",
                   "non_blocking": "NonBlocking", "non_blocking_dynamic": "NonBlockingDynamic"}
HTTP_VERSION = {"h2": "HTTP/2", "h3": "HTTP/3", "http/1.1": "HTTP/1.1", "http/1.0": "HTTP/1.0"}
_INITIATOR = re.compile(r"(?P<type>\S+)(?:\s+(?P<url>\S+?)(?:\s+line\s+(?P<line>\d+))?)?\s*")


def iso(t0_wall_ns: int, at_ms: float) -> str:
    moment = datetime.fromtimestamp((t0_wall_ns + at_ms * 1e6) / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class BrowserPage:
    page: dict[str, Any]
    entries: list[dict[str, Any]]


def initiator(text: str | None) -> dict[str, Any]:
    """``parser https://host/style.css line 3`` (the capture's words, line from 1) as CDP's
    Initiator object (lineNumber from 0)."""
    m = _INITIATOR.fullmatch(text or "")
    if m is None or not text:
        return {"type": "other"}
    out: dict[str, Any] = {"type": m["type"]}
    if m["url"]:
        out["url"] = m["url"]
    if m["line"]:
        out["lineNumber"] = max(int(m["line"]) - 1, 0)
    return out


def timings(t: ResourceTiming | None) -> dict[str, float]:
    def v(x: float | None) -> float:
        return -1 if x is None else round(x, 3)

    if t is None:
        return {"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": 0, "receive": 0,
                "ssl": -1}
    connect = -1.0 if t.connect_ms is None and t.tls_ms is None else round(
        (t.connect_ms or 0.0) + (t.tls_ms or 0.0), 3)
    return {"blocked": v(t.queued_ms), "dns": v(t.dns_ms), "connect": connect,
            "send": max(v(t.send_ms), 0), "wait": max(v(t.wait_ms), 0),
            "receive": max(v(t.receive_ms), 0), "ssl": v(t.tls_ms),
            "_blocked_queueing": v(t.queued_ms)}


def _address(remote: str | None) -> str:
    """``[::1]:10443`` → ``::1`` (HAR has no port; DevTools writes no brackets)."""
    host = (remote or "").rsplit(":", 1)[0] if (remote or "").count(":") == 1 or (
        remote or "").startswith("[") else remote or ""
    return host.strip("[]")


def entry(span: SpanDoc, f: BrowserResourceFacts, t0: int, page: str) -> dict[str, Any]:
    version = HTTP_VERSION.get((f.protocol or "").lower(), f.protocol or "")
    t = timings(f.timing)
    out: dict[str, Any] = {
        "pageref": page,
        "startedDateTime": iso(t0, span.start_ms),
        "time": round(sum(v for k, v in t.items() if k in ("blocked", "dns", "connect",
                                                            "send", "wait", "receive")
                          and v > 0), 3),
        "request": {"method": f.method, "url": f.url, "httpVersion": version, "cookies": [],
                    "headers": [], "headersSize": -1, "bodySize": 0,
                    "queryString": [{"name": k, "value": v} for k, v in
                                    parse_qsl(urlsplit(f.url).query, keep_blank_values=True)]},
        "response": {"status": f.status or 0, "statusText": "", "httpVersion": version,
                     "cookies": [], "headers": [], "redirectURL": "", "headersSize": -1,
                     "bodySize": -1, "_transferSize": f.encoded_bytes or 0,
                     "content": {"size": f.decoded_bytes or 0,
                                 "mimeType": f.mime_type or "x-unknown"}},
        "cache": {},
        "timings": t,
        "serverIPAddress": _address(f.remote_address),
        "connection": "" if f.connection_id is None else str(f.connection_id),
        "_initiator": initiator(f.initiator),
        "_priority": f.priority or "",
        "_resourceType": f.resource_type.lower() or "other",
        "comment": "measured by Chromium (CDP Network events) on the journey's clock"
                   + (f"; HTTP/2 stream {f.stream_id}" if f.stream_id is not None else ""),
    }
    if f.render_blocking:
        out["_renderBlocking"] = RENDER_BLOCKING.get(f.render_blocking, f.render_blocking)
    if f.from_cache in ("memory", "disk"):
        out["_fromCache"] = f.from_cache
    if f.failed:
        out["response"]["_error"] = f.failed
    return out


def browser_page(journey: JourneyDoc, page: str) -> BrowserPage | None:
    """The page Chromium loaded and its requests; None without a loaded browser phase."""
    span = browser_span(journey)
    facts = span.facts_as(BrowserFacts) if span is not None else None
    nav = navigation_start(span) if span is not None else None
    if span is None or facts is None or facts.outcome != "loaded" or nav is None:
        return None
    t0 = journey.clock.t0_wall_ns

    def since(after_nav: float | None) -> float:
        return -1 if after_nav is None else round(max(after_nav, 0.0), 3)

    spans = sorted(((c, r) for c in span.children
                    if (r := c.facts_as(BrowserResourceFacts)) is not None),
                   key=lambda x: (x[0].start_ms, x[0].id))
    return BrowserPage(
        {"startedDateTime": iso(t0, nav), "id": page,
         "title": facts.final_url or facts.url,
         "pageTimings": {"onContentLoad": since(facts.dom_content_loaded_ms),
                         "onLoad": since(facts.load_ms),
                         "comment": f"loaded in {facts.browser or 'Chromium'}"}},
        [entry(c, r, t0, page) for c, r in spans])
