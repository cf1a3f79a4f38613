"""Did the recursive resolver answer from its cache? Two kinds of evidence.

The resolver view asks the first A question twice; a resolver keeps what it learnt for the
record's TTL and answers the same question from that cache (RFC 1034 §5.3.1), without asking
the authoritative servers again.

- **The TTL.** A cache hands a record out with the time it has left, counting down (RFC 1035
  §7.4: the TTL is decremented by the time the record spent in the cache; RFC 2181 §8), while
  the zone's authoritative servers always give the original. So a TTL below the original
  proves a cached answer, for the repeat and for the first answer too (the resolver may have
  had the name before we asked). The original is known when the iterative walk ran in the same
  DNS step: its authoritative answer carries it. Resolvers count in whole seconds, so a fresh
  answer can already be a second short, more if the question took long; only a TTL below the
  original by more than that slack proves anything. Without the original, the first answer's
  TTL stands in for it; within one second of it, a countdown cannot show.
- **The time.** The repeat counts as faster when it took less than half the first question's
  time: a cache hit skips at least one round trip to another server, a miss repeats the work.

The verdict (``cached``) is either. Pure: the typed journey in, checks out.
"""

from __future__ import annotations

import math

from whathappens.analysis.model import CacheCheck
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import DnsQueryFacts, DnsWalkQuestionFacts


def original_ttls(dns: SpanDoc | None) -> dict[tuple[str, str], int]:
    """The zone's own TTLs, by (name, type), from the walk's authoritative answers in this
    DNS step."""
    out: dict[tuple[str, str], int] = {}
    walk = None if dns is None else dns.child("dns.walk")
    for q in walk.children if walk is not None else []:
        f = q.facts_as(DnsWalkQuestionFacts)
        if f is not None and f.ttl is not None and f.records and q.error is None:
            out.setdefault((_name(f.qname), f.qtype), f.ttl)
    return out


def _name(qname: str) -> str:
    return qname.lower().rstrip(".")


def _slack(took_ms: float) -> int:
    """How many seconds short a fresh answer's TTL can be: one for a whole-second clock,
    plus the question's own time, rounded up."""
    return 1 + math.ceil(max(took_ms, 0.0) / 1000)


def repeat_check(span: SpanDoc, first: SpanDoc | None,
                 original: dict[tuple[str, str], int] | None = None) -> CacheCheck | None:
    """The check of one question, when it is the repeat of the first A question ``first``."""
    q = span.facts_as(DnsQueryFacts)
    took = span.duration_ms
    f = None if first is None else first.facts_as(DnsQueryFacts)
    first_ms = None if first is None else first.duration_ms
    if q is None or "cache" not in q.purpose or not first_ms or took is None or f is None:
        return None
    faster = took < first_ms / 2
    orig = (original or {}).get((_name(q.qname), q.qtype))
    slack = _slack(first_ms + took)
    first_cached = None
    if orig is not None and f.ttl is not None:
        first_cached = orig - f.ttl > _slack(first_ms)
    base = orig if orig is not None else f.ttl
    proves = base is not None and q.ttl is not None and base - q.ttl > slack
    return CacheCheck(span.id, took, first_ms, faster, first_ttl=f.ttl, ttl=q.ttl,
                      original_ttl=orig, slack_s=slack, ttl_proves=proves,
                      first_cached=first_cached, cached=proves or faster)


def resolver_checks(resolver: SpanDoc,
                    original: dict[tuple[str, str], int] | None = None) -> dict[int, CacheCheck]:
    """The checks of one resolver view's questions, by the question's span id; ``original``:
    the zone's TTLs when the walk ran beside it (:func:`original_ttls`)."""
    out: dict[int, CacheCheck] = {}
    first: SpanDoc | None = None
    for span in resolver.children:
        check = repeat_check(span, first, original)
        if check is not None:
            out[span.id] = check
        q = span.facts_as(DnsQueryFacts)
        if q is not None and q.qtype == "A" and first is None:
            first = span
    return out


def cache_checks(journey: JourneyDoc) -> list[CacheCheck]:
    """Every repeated question of every resolver view, in the journey's order."""
    return [check for dns in journey.all_spans() if dns.name == "dns"
            for resolver in dns.children if resolver.name == "dns.resolver"
            for check in resolver_checks(resolver, original_ttls(dns)).values()]
