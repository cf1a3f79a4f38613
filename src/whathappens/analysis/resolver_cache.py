"""Did the recursive resolver answer the repeated question from its cache?

The resolver view asks the first A question twice; a resolver keeps what it learnt for the
record's TTL and answers the same question from that cache (RFC 1034 §5.3.1), without asking
the authoritative servers again. The repeat counts as served from the cache when it took less
than half the first question's time: a cache hit skips at least one round trip to another
server, a miss repeats the same work.
"""

from __future__ import annotations

from whathappens.analysis.model import CacheCheck
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import DnsQueryFacts


def repeat_check(span: SpanDoc, first_a_ms: float | None) -> CacheCheck | None:
    """The check of one question, when it is the repeat of the first A question."""
    q = span.facts_as(DnsQueryFacts)
    took = span.duration_ms
    if q is None or "cache" not in q.purpose or not first_a_ms or took is None:
        return None
    return CacheCheck(span.id, took, first_a_ms, took < first_a_ms / 2)


def resolver_checks(resolver: SpanDoc) -> dict[int, CacheCheck]:
    """The checks of one resolver view's questions, by the question's span id."""
    out: dict[int, CacheCheck] = {}
    first: float | None = None
    for span in resolver.children:
        check = repeat_check(span, first)
        if check is not None:
            out[span.id] = check
        q = span.facts_as(DnsQueryFacts)
        if q is not None and q.qtype == "A" and first is None:
            first = span.duration_ms
    return out


def cache_checks(journey: JourneyDoc) -> list[CacheCheck]:
    """Every repeated question of every resolver view, in the journey's order."""
    return [check for span in journey.all_spans() if span.name == "dns.resolver"
            for check in resolver_checks(span).values()]
