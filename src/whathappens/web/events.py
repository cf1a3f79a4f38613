"""What the live page is told as a journey runs: one small event per finished step.

Pure: a finished span (``Span.to_dict()``) is read into the typed contract and viewed like
every report views it (render/steps.py), then laid out as a JSON-ready event: a one-line
summary in plain words, its time already written ("12.7 ms", render/format.py), and the
budget verdict when the span alone decides it (analysis/budgets.py, the same verdict the
reports show). The page shows events with ``textContent`` only, so no HTML escaping is needed
here; but text is still text to a reader, so every string of an event goes through
:func:`~whathappens.render.visible.visible_tree` on its way out (:func:`_shown`): a control
character or a bidi override from the peer is shown as ``\\x1b`` / ``\\u202e``, as in the
terminal and HTML reports, instead of reordering or hiding the page's words. The full report
that follows the last step is the HTML renderer's, escaped there.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from whathappens.analysis.budgets import judge, kernel_rtt
from whathappens.contract.codec import from_json
from whathappens.contract.document import SpanDoc, TlsCompare, read_span
from whathappens.contract.facts import GuardFacts, RevalidateFacts
from whathappens.explain.fill import explain_compare, explain_span
from whathappens.render.compare import SHORT_TITLE, compare_view
from whathappens.render.format import ms, size
from whathappens.render.steps import (
    dns_view,
    facts,
    hop_row,
    http_view,
    leg_view,
    query_row,
    quic_view,
    tcp_view,
    tls_view,
    url_view,
)
from whathappens.render.view import budget_view
from whathappens.render.visible import visible_tree
from whathappens.render.wire_view import wire_summary
from whathappens.web.browser_events import (
    BROWSER_DETAILS,
    browser_detail,
    browser_line,
    browser_step,
)
from whathappens.web.security_events import live_note

# The spans the page shows as they end, in the order a journey meets them.
LIVE_SPANS = ("url", "dns", "guard", "tcp", "tls", "quic", "http", "leg", "browser",
              "revalidate")
# Inside the DNS step: each question to the resolver and each hop of the walk, as they end;
# inside the browser phase: each request the page made, each rendering stage, each moment.
DETAIL_SPANS = ("dns.query", "dns.hop", *BROWSER_DETAILS)
STEP_TITLE = {
    "url": "URL", "dns": "DNS", "guard": "Address check", "tcp": "TCP", "tls": "TLS",
    "quic": "QUIC (TCP + TLS in one handshake, over UDP)",
    "http": "HTTP", "leg": "Request done", "browser": "The page, in Chromium",
    "revalidate": "Revalidation (RFC 9111)",
}


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    """The one way out of this module: every string of the event made visible."""
    shown: dict[str, Any] = visible_tree(event)
    return shown


# --------------------------------------------------------------------- one line per step
def _url(span: SpanDoc) -> str:
    u = url_view(span)
    return f"{u.scheme}://{u.host} port {u.port}, path {u.request_target or '/'}"


def _dns(span: SpanDoc) -> str:
    d = dns_view(span)
    return f"{d.host} → {d.answer} ({d.used_words})"


def _guard(span: SpanDoc) -> str:
    allowed = ", ".join(facts(span, GuardFacts).allowed) or "none"
    return f"private or reserved addresses skipped; allowed: {allowed}"


def _tcp(span: SpanDoc) -> str:
    t = tcp_view(span)
    text = f"connected from {t.local} to {t.remote}" if t.local and t.remote else "connected"
    if len(t.segments) == 3:
        syn, synack, ack = t.segments
        text += (f"; SYN seq {syn.seq}, SYN-ACK seq {synack.seq} ack {synack.ack}, ACK ack "
                 f"{ack.ack}")
    if t.tcp_info is not None:
        text += f", kernel RTT {t.tcp_info.rtt_ms:.3f} ms"
    return text


def _tls(span: SpanDoc) -> str:
    t = tls_view(span)
    parts = [x for x in (t.version, t.cipher, t.group) if x]
    if t.alpn:
        parts.append(f"ALPN {t.alpn}")
    if t.resumed:
        parts.append("session resumed")
    return " · ".join(parts) or "handshake done"


def _quic(span: SpanDoc) -> str:
    q = quic_view(span)
    flights = " → ".join(f.name for f in q.flights)
    text = " · ".join(x for x in (q.version, q.cipher, q.group,
                                  f"ALPN {q.alpn}" if q.alpn else None) if x)
    return (f"{text}; flights {flights}" if flights else text) + (
        "; a Retry cost one round trip" if q.retry else "") + (
        f"; {len(q.probes)} probe timeout(s), data sent again (RFC 9002 §6.2)"
        if q.probes else "")


def _http(span: SpanDoc) -> str:
    h = http_view(span)
    body = f", {h.body_encoded:,} body bytes" if h.body_encoded is not None else ""
    status = "" if h.status is None else h.status
    return (f"{status} {h.reason} over {h.http_version or h.protocol or 'HTTP'}{body}, "
            f"first byte after {ms(h.wait_ms)}{wire_summary(span)}"
            ).replace("  ", " ") + live_note(span)


def _leg(span: SpanDoc) -> str:
    leg = leg_view(span)
    if leg.incomplete:
        return f"{leg.method} {leg.url} did not complete"
    conn = "a reused connection" if leg.connection == "reused" else "a new connection"
    return f"{leg.method} {leg.url} on {conn}"


def _revalidate(span: SpanDoc) -> str:
    """The final request made again with its validators: its answer, time and bytes."""
    f = facts(span, RevalidateFacts)
    if f.outcome != "made":
        return f"not made: {f.why}" if f.why else "not made"
    http = span.child("http")
    h = http_view(http) if http is not None else None
    if h is None or h.status is None:
        return "no answer"
    sent = " and ".join(n for n, _ in f.conditional)
    reason = h.reason or _phrase(h.status)  # HTTP/2 has no reason phrase (RFC 9113 §8.3.2)
    return (f"{h.status} {reason} to the same request with {sent}, on a {f.connection} "
            f"connection: first byte after {ms(h.wait_ms)}, {size(h.wire_received)} "
            "received").replace("  ", " ")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


SUMMARY = {"url": _url, "dns": _dns, "guard": _guard, "tcp": _tcp, "tls": _tls, "quic": _quic,
           "http": _http, "leg": _leg, "browser": browser_line, "revalidate": _revalidate}


def summary(span: Mapping[str, object]) -> str:
    """One line about a finished step, from its measured facts only."""
    doc = read_span(span)
    if doc.error is not None:
        return doc.error.message or "failed"
    line = SUMMARY.get(doc.name)
    return line(doc) if line is not None else ""


def budget(span: SpanDoc) -> str:
    """The step's verdict against its rule of thumb, when the span alone decides it (DNS, the
    TCP connect with its own RTT, the time to first byte); TLS needs the connection's RTT,
    which the report at the end shows."""
    judged = [span] if span.name in ("dns", "tcp") else [
        c for c in span.children if c.name == "http.wait"] if span.name == "http" else []
    rtt = kernel_rtt(span) if span.name == "tcp" else None
    for s in judged:
        v = judge(s, 0, rtt)
        if v is not None and v.outcome != "unknown":
            return budget_view(v).item
    return ""


# -------------------------------------------------------------------------------- events
def step_event(span: Mapping[str, object], leg: int | None) -> dict[str, Any]:
    doc = read_span(span)
    text = explain_span(doc)   # filled with this span's values (explain/fill.py)
    return _shown({
        "step": doc.name,
        "title": STEP_TITLE.get(doc.name, doc.name),
        "leg": leg,
        "actor": doc.actor,
        "layer": doc.layer,
        "start_ms": doc.start_ms,
        "duration_ms": doc.duration_ms,
        "took": ms(doc.duration_ms),
        "starts": f"{doc.start_ms:.2f} ms",
        "summary": summary(span),
        "budget": "" if doc.error is not None else budget(doc),
        "failed": doc.error is not None,
        "beginner": text.beginner if text else "",
        "advanced": text.advanced if text else "",
        "measures": text.measures if text else "",
        **(browser_step(doc) if doc.name == "browser" else {}),
    })


def compare_event(result: Mapping[str, object]) -> dict[str, Any]:
    """The TLS 1.2 vs 1.3 comparison as one live step (the report has the whole table)."""
    compared = from_json(TlsCompare, dict(result))
    view = compare_view(compared)
    text = explain_compare(compared)
    return _shown({"step": "tls-compare", "title": SHORT_TITLE, "leg": None,
                   "actor": None, "layer": "transport", "start_ms": None, "duration_ms": None,
                   "took": "", "starts": "",
                   "summary": view.summary if view is not None else "not measured",
                   "budget": "", "failed": False,
                   "beginner": text.beginner if text else "",
                   "advanced": text.advanced if text else "",
                   "measures": text.measures if text else ""})


def _hop(span: SpanDoc) -> str:
    hop = hop_row(span)
    who = f"{hop.server.rstrip('.') or '.'} ({hop.address})"
    if hop.kind == "referral":
        what = f"referral to the {hop.referral_zone} servers"
    elif hop.kind == "answer":
        what = f"answer {'; '.join(hop.answers)}" if hop.answers else "answer"
    else:
        what = hop.note or hop.kind or "no answer"
    return f"walk: asked {who} for {hop.qtype} {hop.qname}: {what}"


def _query(span: SpanDoc) -> str:
    q = query_row(span)
    if q.error is not None:
        what = q.error.message
    else:
        what = f"answer {q.records}" if q.found else q.records or "no records"
    again = " (asked again: the resolver's cache)" if q.purpose.startswith(
        "the same question") else ""
    return f"{span.actor}: {q.qtype} {q.qname}{again}: {what}"


def detail_event(span: Mapping[str, object], leg: int | None) -> dict[str, Any]:
    """One DNS question (to the resolver) or one hop of the walk, as it ends; or a request,
    a rendering stage or a moment of the browser phase."""
    doc = read_span(span)
    if doc.name in BROWSER_DETAILS:
        return _shown(browser_detail(doc, leg))
    text = _hop(doc) if doc.name == "dns.hop" else _query(doc)
    return _shown({"step": doc.name, "leg": leg, "start_ms": doc.start_ms,
                   "duration_ms": doc.duration_ms, "took": ms(doc.duration_ms),
                   "summary": text, "failed": doc.error is not None})
