"""CDP ``Network.*`` events → one record per request, on the journey's clock. Pure: no I/O.

``NetworkLog.feed(method, params)`` takes the events as Chromium sends them (the capture
calls it from its CDP listeners; tests call it with handmade lists); ``records()`` returns
every request the page made, the document first, each with its
``BrowserResourceFacts`` and its start/end in ns since the journey's t0.

Clock: CDP's ``timestamp`` and ``timing.requestTime`` are seconds of CLOCK_MONOTONIC, the
journey's clock, so ``ts * 1e9 - origin_ns`` places them exactly. The ``timing`` object's
fields are ms after ``requestTime``; -1 means the phase did not happen.

The budget: past ``max_requests`` requests or ``max_bytes`` on the wire the log says
``over_budget`` (the capture then stops the page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from whathappens.contract.facts import BrowserResourceFacts, ResourceTiming

# Chromium (as at 156) preconnects to the URL's origin when a navigation starts, so the
# document's own timing shows the connection as already made (connect/TLS 0, reused).
DOCUMENT_TIMING_NOTE = (
    "Chromium opened this connection itself before the request was sent (a preconnect at "
    "navigation start), so its timing for the document shows no DNS, connect or TLS; the "
    "journey's own DNS, TCP and TLS steps measured them.")

CACHE_HEADERS = ("x-cache", "cf-cache-status", "x-cache-status", "x-proxy-cache",
                 "cache-status")


@dataclass
class ResourceRecord:
    request_id: str
    facts: BrowserResourceFacts
    start_ns: int
    end_ns: int | None = None
    start_s: float = 0.0               # the raw CDP timestamp of requestWillBeSent
    frame_id: str | None = None
    loader_id: str | None = None
    raw_timing: dict[str, Any] | None = None


@dataclass
class NetworkLog:
    origin_ns: int                     # the journey's t0, raw CLOCK_MONOTONIC ns
    max_requests: int = 300
    max_bytes: int = 50 * 1024 * 1024
    _live: dict[str, ResourceRecord] = field(default_factory=dict)
    _all: list[ResourceRecord] = field(default_factory=list)
    _decoded: dict[str, int] = field(default_factory=dict)
    bytes_on_wire: int = 0
    over_budget: str | None = None
    # Told of each request as it ends (finished, failed, or redirected): the live page.
    on_done: Callable[[ResourceRecord], None] | None = None
    # --lab: the traceparent each request was sent with, by its Network request id.
    traceparents: dict[str, str] = field(default_factory=dict)

    def _done(self, record: ResourceRecord) -> None:
        record.facts.traceparent = self.traceparents.get(record.request_id)
        if self.on_done is not None:
            record.facts.decoded_bytes = self._decoded.get(record.request_id)
            self.on_done(record)

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet ended (finished, failed or redirected)."""
        return len(self._live)

    def ns(self, seconds: float) -> int:
        return round(seconds * 1e9) - self.origin_ns

    def feed(self, method: str, params: dict[str, Any]) -> None:
        handler = _HANDLERS.get(method)
        if handler is not None:
            handler(self, params)

    def records(self) -> list[ResourceRecord]:
        """Every request, the navigation first, then in the order they were sent."""
        for record in self._all:
            record.facts.decoded_bytes = self._decoded.get(record.request_id,
                                                           record.facts.decoded_bytes or 0)
            record.facts.traceparent = self.traceparents.get(record.request_id)
        return sorted(self._all, key=lambda r: (not r.facts.navigation, r.start_ns))

    # -- the events -----------------------------------------------------------------------
    def _will_be_sent(self, p: dict[str, Any]) -> None:
        rid = str(p["requestId"])
        redirect = p.get("redirectResponse")
        previous = self._live.get(rid)
        if redirect is not None and previous is not None:
            # The same request id goes on after a redirect: the hop so far is its own record.
            _respond(previous, redirect)
            previous.end_ns = max(self.ns(p["timestamp"]), previous.start_ns)
            _receive_phase(previous, p["timestamp"])
            previous.request_id = f"{rid}#redirect{len(self._all)}"
            self._done(previous)
        request = p.get("request", {})
        kind = str(p.get("type") or "Other")
        facts = BrowserResourceFacts(
            url=str(request.get("url", "")),
            navigation=kind == "Document" and p.get("loaderId") == rid,
            resource_type=kind,
            method=str(request.get("method", "GET")),
            initiator=initiator_words(p.get("initiator") or {}),
            priority=request.get("initialPriority"),
        )
        record = ResourceRecord(rid, facts, self.ns(p["timestamp"]), start_s=p["timestamp"],
                                frame_id=p.get("frameId"), loader_id=p.get("loaderId"))
        self._live[rid] = record
        self._all.append(record)
        if len(self._all) > self.max_requests and self.over_budget is None:
            self.over_budget = f"the page made more than {self.max_requests} requests"

    def _response(self, p: dict[str, Any]) -> None:
        record = self._live.get(str(p["requestId"]))
        if record is not None:
            _respond(record, p.get("response", {}))
            if record.facts.resource_type == "Other" and p.get("type"):
                record.facts.resource_type = str(p["type"])

    def _data(self, p: dict[str, Any]) -> None:
        rid = str(p["requestId"])
        self._decoded[rid] = self._decoded.get(rid, 0) + int(p.get("dataLength", 0))
        self._count_wire(int(p.get("encodedDataLength", 0)))

    def _finished(self, p: dict[str, Any]) -> None:
        record = self._live.pop(str(p["requestId"]), None)
        if record is None:
            return
        record.end_ns = max(self.ns(p["timestamp"]), record.start_ns)
        record.facts.encoded_bytes = int(p.get("encodedDataLength", 0))
        _receive_phase(record, p["timestamp"])
        self._done(record)

    def _failed(self, p: dict[str, Any]) -> None:
        record = self._live.pop(str(p["requestId"]), None)
        if record is None:
            return
        record.end_ns = max(self.ns(p["timestamp"]), record.start_ns)
        why = str(p.get("errorText") or "failed")
        if p.get("blockedReason"):
            why += f" (blocked: {p['blockedReason']})"
        if p.get("canceled"):
            why += " (cancelled)"
        record.facts.failed = why
        self._done(record)

    def _from_cache(self, p: dict[str, Any]) -> None:
        record = self._live.get(str(p["requestId"]))
        if record is not None:
            record.facts.from_cache = "memory"

    def _priority(self, p: dict[str, Any]) -> None:
        record = self._live.get(str(p["requestId"]))
        if record is not None:
            record.facts.priority = str(p.get("newPriority") or record.facts.priority)

    def _count_wire(self, n: int) -> None:
        self.bytes_on_wire += n
        if self.bytes_on_wire > self.max_bytes and self.over_budget is None:
            self.over_budget = f"the page pulled more than {self.max_bytes} bytes"


_HANDLERS = {
    "Network.requestWillBeSent": NetworkLog._will_be_sent,
    "Network.responseReceived": NetworkLog._response,
    "Network.dataReceived": NetworkLog._data,
    "Network.loadingFinished": NetworkLog._finished,
    "Network.loadingFailed": NetworkLog._failed,
    "Network.requestServedFromCache": NetworkLog._from_cache,
    "Network.resourceChangedPriority": NetworkLog._priority,
}
EVENTS = tuple(_HANDLERS)


def initiator_words(initiator: dict[str, Any]) -> str | None:
    """``parser https://x/ line 12``: who asked for the request, where."""
    kind = initiator.get("type")
    if not kind:
        return None
    url = initiator.get("url")
    line = initiator.get("lineNumber")
    if url is None:
        frames = (initiator.get("stack") or {}).get("callFrames") or []
        if frames:
            url, line = frames[0].get("url") or None, frames[0].get("lineNumber")
    words = str(kind)
    if url:
        words += f" {url}"
        if isinstance(line, int | float):
            words += f" line {int(line) + 1}"
    return words


def _respond(record: ResourceRecord, response: dict[str, Any]) -> None:
    facts = record.facts
    facts.status = response.get("status")
    facts.mime_type = response.get("mimeType")
    facts.protocol = response.get("protocol")
    cid = response.get("connectionId")
    facts.connection_id = int(cid) if cid is not None else None
    facts.connection_reused = response.get("connectionReused")
    ip = response.get("remoteIPAddress")
    facts.remote_address = _address(ip, response.get("remotePort")) if ip else None
    if response.get("fromDiskCache"):
        facts.from_cache = "disk"
    elif response.get("fromServiceWorker"):
        facts.from_cache = "service worker"
    elif response.get("fromPrefetchCache"):
        facts.from_cache = "prefetch"
    headers = {str(k).lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    facts.cache_status = next((headers[h] for h in CACHE_HEADERS if h in headers), None)
    timing = response.get("timing")
    if isinstance(timing, dict):
        facts.timing = timing_phases(timing)
        record.raw_timing = timing
    if facts.navigation and facts.timing is not None and (
            facts.connection_reused or not facts.timing.connect_ms):
        facts.note = DOCUMENT_TIMING_NOTE


def _address(ip: str, port: object) -> str:
    host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
    return f"{host}:{port}" if port else host


def _span(timing: dict[str, Any], start: str, end: str) -> float | None:
    a, b = timing.get(start, -1), timing.get(end, -1)
    if a is None or b is None or a < 0 or b < 0:
        return None
    return round(float(b) - float(a), 3)


def timing_phases(timing: dict[str, Any]) -> ResourceTiming:
    """CDP's ResourceTiming (ms after ``requestTime``) as the phases of one request."""
    tls = _span(timing, "sslStart", "sslEnd")
    connect = _span(timing, "connectStart", "connectEnd")
    if connect is not None and tls is not None:
        connect = round(connect - tls, 3)  # like HAR's, our connect excludes the handshake
    headers = timing.get("receiveHeadersStart", -1)
    first_byte = "receiveHeadersStart" if headers is not None and headers > 0 \
        else "receiveHeadersEnd"
    return ResourceTiming(
        dns_ms=_span(timing, "dnsStart", "dnsEnd"),
        connect_ms=connect,
        tls_ms=tls,
        send_ms=_span(timing, "sendStart", "sendEnd"),
        wait_ms=_span(timing, "sendEnd", first_byte),
    )


def _receive_phase(record: ResourceRecord, finished_s: float) -> None:
    """Queued (from the request's start to its first phase) and receive (first byte to last
    byte) need times from outside the timing object."""
    timing, raw = record.facts.timing, record.raw_timing
    if timing is None or raw is None:
        return
    base_ms = float(raw["requestTime"]) * 1000
    first = next((float(raw[k]) for k in ("dnsStart", "connectStart", "sendStart")
                  if (raw.get(k) or -1) >= 0), 0.0)
    timing.queued_ms = round(max(base_ms + first - record.start_s * 1000, 0.0), 3)
    headers = raw.get("receiveHeadersStart") or -1
    if headers <= 0:
        headers = raw.get("receiveHeadersEnd") or -1
    if headers >= 0:
        timing.receive_ms = round(max(finished_s * 1000 - (base_ms + headers), 0.0), 3)
