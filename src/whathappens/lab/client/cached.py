"""An answer from the edge's cache belongs to the request that stored it, not to this one.

When the CDN edge answers from its cache (X-Cache HIT, STALE, UPDATING), the response is the
copy it stored earlier, headers and all: its ``traceresponse`` (W3C Trace Context level 2)
names the trace of the request whose trip to the origin produced it, not this request's.
Reading it as this request's would put another journey's trace id, and its timings, on this
one. So:

- the spans this request's traceparent left behind the edge, when the edge served a STALE
  copy, are its *background refresh* (nginx ``proxy_cache_background_update``): they ran
  after this response was sent and did not produce it. They are not placed under this
  request's time; a note says what they were.
- a ``traceresponse`` naming another trace is attributed to the request that stored the
  copy: the edge's cache entry (the headers nginx stored with it) and the edge's access log
  line of that trace (when, and whether it was a MISS that stored it directly or a STALE
  answer whose background refresh did). Its spans are never merged here.
https://www.w3.org/TR/trace-context-2/#traceresponse-header
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from whathappens.contract.facts import HttpFacts, ServerFacts
from whathappens.journey import Journey, Span
from whathappens.lab.logs import ServerSpan, json_lines
from whathappens.lab.running import Lab
from whathappens.lab.topology import SITE

FROM_CACHE = ("HIT", "STALE", "UPDATING")
_TRACE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_of(header: str | None) -> str | None:
    """The trace id of a traceparent or traceresponse value, or None."""
    m = _TRACE.match((header or "").strip().lower())
    return m[1] if m else None


def split_refresh(mine: list[ServerSpan]) -> tuple[list[ServerSpan], list[ServerSpan]]:
    """(the spans that made this response, those of the edge's background refresh)."""
    edge = next((s for s in mine if s.kind == "edge"), None)
    if edge is None or str(edge.attrs.get("cache", "")) not in FROM_CACHE:
        return mine, []
    return [edge], [s for s in mine if s is not edge]


def refresh_note(refresh: list[ServerSpan]) -> str:
    top = min(refresh, key=lambda s: s.start_wall_ns)
    end = max(s.end_wall_ns for s in refresh)
    tiers = " → ".join(dict.fromkeys(s.tier for s in sorted(refresh,
                                                             key=lambda s: s.start_wall_ns)))
    return (f"the edge answered from its cache (STALE) and then refreshed the copy in the "
            f"background ({tiers}, {(end - top.start_wall_ns) / 1e6:.1f} ms by their logs): "
            "those spans carry this request's traceparent but ran after its response and "
            "did not produce it, so they are not placed under it")


def _header(facts: HttpFacts, name: str) -> str | None:
    return next((v for n, v in facts.response_headers if n.lower() == name), None)


def _host(facts: HttpFacts) -> str:
    return next((v for n, v in facts.request_headers if n.lower() in (":authority", "host")),
                SITE).split(":")[0]


def who_stored(lab: Lab, edge_name: str, trace_id: str) -> dict[str, Any] | None:
    """The edge's access log line of ``trace_id``: when that request ended, and its cache
    status (MISS: it stored the copy; STALE/EXPIRED: its refresh did)."""
    from whathappens.lab.tiers.nginx import access_log

    for item in json_lines(access_log(lab.ctx, edge_name), trace_id):
        if trace_of(str(item.get("traceparent", ""))) == trace_id:
            return item
    return None


def attribute(journey: Journey, lab: Lab) -> None:
    """Say whose ``traceresponse`` each answer carries when it is not this request's."""
    fronts = lab.topo.of_kind("nginx-edge")
    if not fronts:
        return
    edge_name = fronts[0].name
    for top in journey.spans:
        for http in (s for s in top.walk() if s.name == "http"):
            _attribute_one(journey, lab, edge_name, http,
                           "the revalidation: " if top.name == "revalidate" else "")


def _attribute_one(journey: Journey, lab: Lab, edge_name: str, http: Span[Any],
                   whose: str) -> None:
    """One request's answer: whose copy its traceresponse names, in a note and on its edge."""
    facts = http.facts
    if not isinstance(facts, HttpFacts):
        return
    mine, other = trace_of(facts.traceparent), trace_of(_header(facts, "traceresponse"))
    if mine is None or other is None or other == mine:
        return
    edge = next((c for c in http.children if c.name == "server.edge"), None)
    text = whose + _owner(lab, edge_name, facts, other)
    journey.note("info", "server", text)
    if edge is not None and isinstance(edge.facts, ServerFacts):
        edge.facts.extra["response_trace"] = other
        edge.facts.extra["response_trace_owner"] = text


def _owner(lab: Lab, edge_name: str, facts: HttpFacts, other: str) -> str:
    head = (f"the response's traceresponse names trace {other}, not this request's: the "
            f"edge answered from its cache (X-Cache {_header(facts, 'x-cache') or '?'})")
    driver: Any = lab.tier(edge_name)
    uri = next((v for n, v in facts.request_headers if n.lower() == ":path"), None) or "/"
    entry = driver.cache_entry(lab.ctx, _host(facts), uri) \
        if hasattr(driver, "cache_entry") else None
    stored = who_stored(lab, edge_name, other)
    parts = [head]
    if stored is not None:
        when = datetime.fromtimestamp(float(stored.get("time") or 0), UTC)
        how = ("a MISS, so the copy it got from the origin was stored"
               if stored.get("cache") in ("MISS", "EXPIRED", "")
               else f"{stored.get('cache')}: its background refresh stored the copy")
        parts.append(f"the copy was stored for the request of that trace, which ended at "
                     f"{when:%H:%M:%S.%f}"[:-3] + f" UTC ({stored.get('method')} "
                     f"{stored.get('uri')}, edge log: {how})")
    else:
        parts.append("that request is no longer in the edge's log: whose it was cannot be said")
    if entry is not None:
        same = trace_of(entry.get("traceresponse")) == other
        holds = "still holds that" if same else "now holds another"
        parts.append(f"the edge's cache entry {holds} copy (stored response Date "
                     f"{entry.get('date', '?')})")
    parts.append("that trace's spans are not merged into this journey")
    return "; ".join(parts)

