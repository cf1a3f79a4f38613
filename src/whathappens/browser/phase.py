"""The browser phase on the journey: ``browser_phase(journey, url, options)``.

After the network journey, the same URL loads in headless Chromium (``capture``) and what it
recorded becomes spans on the journey's timeline: one top-level ``browser`` span (step
``browser``, actor ``Chromium <version>``) with, as children, every request the page made
(``browser.resource``, the document first), the rendering stages (``browser.stage``) and the
page's moments (``browser.mark``: first paint, FCP, LCP, DOMContentLoaded, load, layout
shifts). The phase never changes the journey's exit code: without Chromium its span says
``skipped`` and how to install it; a page that fails says ``failed`` and why, in words, and
both leave a finding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from whathappens.browser.capture import Capture, WarmBrowser, launch, load_page
from whathappens.browser.chromium import BrowserOptions, BrowserUnavailable
from whathappens.browser.live import LiveMark
from whathappens.browser.netlog import assign_streams, h2_streams
from whathappens.browser.network import ResourceRecord
from whathappens.browser.trace import TraceResult, analyze
from whathappens.clock import ms
from whathappens.contract.facts import (
    BrowserFacts,
    BrowserMarkFacts,
    BrowserResourceFacts,
    BrowserStageFacts,
    Facts,
)
from whathappens.journey import Span

if TYPE_CHECKING:
    from whathappens.journey import Journey

__all__ = ["BrowserOptions", "WarmBrowser", "after_journey", "browser_phase"]

F = TypeVar("F", bound=Facts)
ACTOR = "Chromium"
# Chromium's net errors a reader meets here, in words (net/base/net_error_list.h).
NET_ERRORS = {
    "ERR_CERT_AUTHORITY_INVALID": "Chromium does not trust the certificate's issuer: it is "
                                  "not the CA the journey trusted",
    "ERR_CERT_COMMON_NAME_INVALID": "the certificate is not for this host name",
    "ERR_CERT_DATE_INVALID": "the certificate has expired or is not valid yet",
    "ERR_NAME_NOT_RESOLVED": "Chromium could not resolve the host name",
    "ERR_CONNECTION_REFUSED": "the server refused the connection",
    "ERR_CONNECTION_RESET": "the connection was reset",
    "ERR_TIMED_OUT": "the connection timed out",
    "ERR_PROXY_CONNECTION_FAILED": "the proxy Chromium was told to use could not be reached",
    "ERR_BLOCKED_BY_CLIENT": "the request was blocked",
}


async def browser_phase(journey: Journey, url: str, options: BrowserOptions, *,
                        warm: WarmBrowser | None = None) -> Span[BrowserFacts]:
    """Load ``url`` in headless Chromium and attach what happened to ``journey``."""
    facts = BrowserFacts(url=url, address=options.address,
                         trusted_ca=options.cafile or "Chromium's own trust store")
    span = journey.span("browser", "browser", ACTOR, "application", facts)
    deadline = time.monotonic() + options.timeout
    live = _LiveResources(journey, span)
    try:
        async with asyncio.timeout(options.timeout + 5):
            capture = await _load(journey, span, url, options, warm, deadline, live)
        _record(journey, span, capture, options, live)
    except BrowserUnavailable as exc:
        facts.outcome, facts.why = "skipped", str(exc)
        journey.note("info", "browser", f"browser phase skipped: {exc}")
    except TimeoutError:
        _failed(journey, facts, f"the browser phase ran out of its {options.timeout:g} s")
    except Exception as exc:  # Chromium crashed, the CDP session broke: never the journey's
        _failed(journey, facts, f"{type(exc).__name__}: {str(exc).strip()[:300]}")
    finally:
        journey.end(span)
        _fit(span)
        journey.close_open(span)
        journey.ended(span)
    return span


async def _load(journey: Journey, span: Span[BrowserFacts], url: str, options: BrowserOptions,
                warm: WarmBrowser | None, deadline: float, live: _LiveResources) -> Capture:
    """The page through the warm browser when it serves these options (its launch counted
    only if this journey started it), else through a browser launched for this journey."""
    facts = span.facts
    if warm is not None and not warm.started and warm.options == options:
        started = journey.clock.now()
        await warm.start()
        facts.launch_ms = ms(journey.clock.now() - started)
    if warm is not None and warm.serves(options):
        facts.warm = facts.launch_ms is None
        span.actor = facts.browser = warm.version
        return await warm.load(url, options, journey.clock.origin_ns, deadline, live.done,
                               live.mark)
    started = journey.clock.now()
    chromium = await launch(options, netlog=True)
    facts.launch_ms = ms(journey.clock.now() - started)
    span.actor = facts.browser = chromium.version
    try:
        capture = await load_page(chromium, url, options, journey.clock.origin_ns, deadline,
                                  on_done=live.done, on_mark=live.mark)
    finally:
        await chromium.close()  # inside the phase: its NetLog is complete once it has closed
    capture.netlog = chromium.netlog
    return capture


def _failed(journey: Journey, facts: BrowserFacts, why: str) -> None:
    facts.outcome, facts.why = "failed", why
    journey.note("warning", "browser", f"browser phase failed: {why}")


def net_error_words(error: str) -> str:
    """Chromium's ``net::ERR_…`` with what it means."""
    for code, words in NET_ERRORS.items():
        if code in error:
            return f"{words} (Chromium: net::{code})"
    return f"Chromium could not load the page: {error}"


class _LiveResources:
    """Each request's span as soon as it ends, told to the journey's listener (the live
    page streams them); the trace's facts (render-blocking) are added when the load is over.

    The page's moments seen live (``live.LiveMark``: paints, DOMContentLoaded, load, LCP
    candidates, layout shifts, long tasks, user timing) are told to the listener too, as
    spans that are not kept: the journey's own marks and stages come from the trace, exact
    and complete, once the load is over."""

    def __init__(self, journey: Journey, span: Span[BrowserFacts]) -> None:
        self.journey, self.span = journey, span
        self.spans: dict[int, Span[BrowserResourceFacts]] = {}

    def done(self, record: ResourceRecord) -> None:
        child = self.add(record)
        self.journey.ended(child)

    def mark(self, mark: LiveMark) -> None:
        facts: Facts
        if mark.mark in ("long_task", "user_measure"):
            name = "browser.stage"
            facts = BrowserStageFacts(stage=mark.mark, event="PerformanceObserver",
                                      name=mark.name)
        else:
            name = "browser.mark"
            facts = BrowserMarkFacts(mark=mark.mark, element=mark.element, url=mark.url,
                                     value=mark.value if mark.mark == "layout_shift" else None,
                                     name=mark.name)
        start = max(mark.t_ns, self.span.start_ns)
        end = max(mark.end_ns if mark.end_ns is not None else start, start)
        self.journey.ended(Span(name=name, step="browser", actor="Chromium renderer",
                                layer="application", start_ns=start, end_ns=end, facts=facts))

    def add(self, record: ResourceRecord) -> Span[BrowserResourceFacts]:
        found = self.spans.get(id(record))
        if found is None:
            found = _child(self.journey, self.span, "browser.resource",
                           _host(record.facts.url), record.facts, record.start_ns)
            self.spans[id(record)] = found
        if record.end_ns is None:
            record.facts.interrupted = True
        self.journey.end(found, record.end_ns)
        return found


def _record(journey: Journey, span: Span[BrowserFacts], capture: Capture,
            options: BrowserOptions, live: _LiveResources) -> None:
    facts = span.facts
    records = capture.network.records()
    result = analyze(capture.trace.events if capture.trace else [], capture.page,
                     journey.clock.origin_ns, max_frames=options.max_frames,
                     nodes=capture.nodes)
    nav_ns = result.navigation_start_ns
    if nav_ns is None and records:
        nav_ns = records[0].start_ns
    facts.navigation_start_ms = ms(nav_ns)
    if capture.netlog is not None:
        assign_streams(records, h2_streams(capture.netlog))
    elif capture.streams is not None:
        assign_streams(records, capture.streams)
    elif any(r.facts.protocol == "h2" for r in records):
        facts.notes.append("HTTP/2 stream ids are unknown: Chromium's NetLog could not be "
                           "read")
    for r in records:  # the requests still open, and the trace's word on each
        r.facts.render_blocking = result.render_blocking.get(r.request_id,
                                                             r.facts.render_blocking)
        if id(r) not in live.spans:
            live.add(r)
    # The document first, then the requests in the order they were sent.
    order = {id(live.spans[id(r)]): i for i, r in enumerate(records)}
    span.children.sort(key=lambda c: order.get(id(c), len(order)))
    _stages(journey, span, result)
    _marks(journey, span, result)
    _page_numbers(facts, result, nav_ns)
    facts.settle_ms, facts.settle_ended = capture.settle_ms, capture.settle_ended
    facts.requests = len(records)
    facts.bytes_on_wire = sum(r.facts.encoded_bytes or 0 for r in records)
    document = next((r for r in reversed(records) if r.facts.navigation), None)
    facts.final_url = capture.final_url or (document.facts.url if document else None)
    facts.status = capture.status or (document.facts.status if document else None)
    if capture.trace is not None:
        facts.trace_events, facts.trace_bytes = capture.trace.seen, capture.trace_bytes
        if capture.trace.truncated:
            facts.notes.append(capture.trace.truncated)
    if result.work_dropped:
        facts.notes.append(f"{result.work_dropped} later font loads, image decodes and "
                           "measures left out")
    if result.stages_dropped:
        facts.notes.append(f"{result.stages_dropped} later rendering stages left out")
    if result.shifts_dropped:
        facts.notes.append(f"{result.shifts_dropped} later layout shifts left out of the list "
                           "(CLS counts them)")
    if capture.load_error is not None:
        _failed(journey, facts, net_error_words(capture.load_error))
    elif capture.stopped is not None:
        _failed(journey, facts, f"the page was stopped: {capture.stopped}")
    else:
        facts.outcome = "loaded"


def _page_numbers(facts: BrowserFacts, result: TraceResult, nav_ns: int | None) -> None:
    def since_navigation(name: str) -> float | None:
        mark = result.mark(name)
        if mark is None or nav_ns is None:
            return None
        return ms(mark.t_ns - nav_ns)

    facts.first_paint_ms = since_navigation("first_paint")
    facts.fcp_ms = since_navigation("fcp")
    facts.lcp_ms = since_navigation("lcp")
    facts.dom_content_loaded_ms = since_navigation("dom_content_loaded")
    facts.load_ms = since_navigation("load")
    lcp = result.mark("lcp")
    if lcp is not None:
        facts.lcp_element, facts.lcp_url = lcp.element, lcp.url
    facts.cls = result.cls
    facts.layout_shifts = result.layout_shifts
    facts.long_tasks = result.long_tasks
    facts.filmstrip = result.filmstrip


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url[:60]
    except ValueError:
        return url[:60]


def _stages(journey: Journey, span: Span[BrowserFacts], result: TraceResult) -> None:
    for s in sorted(result.stages + result.work, key=lambda s: (s.start_ns, s.end_ns)):
        facts = BrowserStageFacts(stage=s.stage, event=s.event, url=s.url, count=s.count,
                                  name=s.name)
        child = _child(journey, span, "browser.stage", "Chromium renderer", facts, s.start_ns)
        journey.end(child, s.end_ns)
        journey.ended(child)  # the live page shows it (the trace is read after the load)


def _marks(journey: Journey, span: Span[BrowserFacts], result: TraceResult) -> None:
    for m in result.marks:
        facts = BrowserMarkFacts(mark=m.mark, element=m.element, url=m.url,
                                 value=m.value if m.mark == "layout_shift" else None,
                                 name=m.name)
        journey.ended(journey.end(_child(journey, span, "browser.mark", "Chromium renderer",
                                         facts, m.t_ns), m.t_ns))
    for shift in result.layout_shifts:
        t_ns = round(shift.t_ms * 1e6)
        facts = BrowserMarkFacts(mark="layout_shift", value=shift.score,
                                 element=", ".join(shift.moved) or None)
        journey.ended(journey.end(_child(journey, span, "browser.mark", "Chromium renderer",
                                         facts, t_ns), t_ns))


def _child(journey: Journey, span: Span[BrowserFacts], name: str, actor: str,
                     facts: F, start_ns: int) -> Span[F]:
    return journey.span(name, "browser", actor, "application", facts, parent=span,
                        start_ns=max(start_ns, span.start_ns))


def _fit(span: Span[BrowserFacts]) -> None:
    """Every child within the phase (a trace event can end a hair after our last read)."""
    assert span.end_ns is not None
    for child in span.children:
        child.start_ns = min(max(child.start_ns, span.start_ns), span.end_ns)
        if child.end_ns is None or child.end_ns > span.end_ns:
            child.end_ns = span.end_ns
        child.end_ns = max(child.end_ns, child.start_ns)


def journey_target(journey: Journey) -> tuple[str, str, str] | None:
    """(URL, host, address) the journey went to: its URL as the address bar read it, and
    the address of its first connection; None when it never connected."""
    url_span = next((s for s in journey.spans if s.name == "url"), None)
    # TCP's address, or QUIC's when HTTP/3 carried the journey (the same server's address;
    # the browser then connects on its own, over TCP here: it runs with --disable-quic).
    conn = next((s for s in journey.all_spans() if s.name in ("tcp", "quic")
                 and getattr(s.facts, "address", None) and s.error is None), None)
    if url_span is None or conn is None or not url_span.facts.url:
        return None
    return str(url_span.facts.url), str(url_span.facts.host), str(conn.facts.address)


async def after_journey(journey: Journey, options: BrowserOptions | None = None, *,
                        warm: WarmBrowser | None = None) -> Span[BrowserFacts]:
    """The browser phase for a journey just run (``--browser``): the same URL, pointed at the
    address the journey connected to, trusting the CA of ``options.cafile``. A journey
    that never reached its server gets a skipped phase."""
    options = options or BrowserOptions()
    target = journey_target(journey)
    if target is None or journey.error is not None:
        why = ("the journey did not reach the server" if target is None else
               f"the journey failed at its {journey.error.step if journey.error else ''} step")
        span = journey.span("browser", "browser", ACTOR, "application",
                            BrowserFacts(url=journey.url, outcome="skipped", why=why))
        journey.note("info", "browser", f"browser phase skipped: {why}")
        journey.end(span, span.start_ns)
        journey.ended(span)
        return span
    url, host, address = target
    options = dataclasses.replace(options, host=host, address=address)
    return await browser_phase(journey, url, options, warm=warm)
