"""The resolver's cache verdict uses the TTL (issue 11, report error 3): a TTL below the zone's
original proves a cached answer (RFC 1035 §7.4), as well as the time. Pure: journeys built
span by span, read back as the typed document, analysed."""

from __future__ import annotations

from whathappens.analysis.document import analyze_journey
from whathappens.analysis.model import CacheCheck
from whathappens.contract.document import read_journey
from whathappens.contract.facts import (
    DnsFacts,
    DnsQueryFacts,
    DnsResolverFacts,
    DnsWalkFacts,
    DnsWalkQuestionFacts,
)
from whathappens.journey import Journey
from whathappens.render.steps import CacheView

MS = 1_000_000


def check(first_ttl: int, repeat_ttl: int, original: int | None, *, first_ms: float = 20.0,
          repeat_ms: float = 1.0) -> CacheCheck:
    j = Journey(url="https://www.example.com/")
    dns = j.span("dns", "dns", "you", "application", DnsFacts(view_used="resolver"),
                 start_ns=0)
    resolver = j.span("dns.resolver", "dns", "r", "application", DnsResolverFacts(),
                      parent=dns, start_ns=0)
    at = 0
    for qtype, ttl, took, purpose in (("A", first_ttl, first_ms, "IPv4 address"),
                                      ("AAAA", first_ttl, first_ms, "IPv6 address"),
                                      ("A", repeat_ttl, repeat_ms,
                                       "the same question again, to see the resolver's cache")):
        q = j.span("dns.query", "dns", "r", "application",
                   DnsQueryFacts(qname="www.example.com.", qtype=qtype, ttl=ttl,
                                 records=["192.0.2.1"], purpose=purpose),
                   parent=resolver, start_ns=at)
        at += int(took * MS)
        q.end_ns = at
    resolver.end_ns = at
    if original is not None:
        walk = j.span("dns.walk", "dns", "walk", "application", DnsWalkFacts(), parent=dns,
                      start_ns=0)
        question = j.span("dns.walk.question", "dns", "you", "application",
                          DnsWalkQuestionFacts(qname="www.example.com.", qtype="A",
                                               ttl=original, records=["192.0.2.1"]),
                          parent=walk, start_ns=0)
        question.end_ns = walk.end_ns = at
    dns.end_ns = at
    (got,) = analyze_journey(read_journey(j.to_dict())).resolver_cache
    return got


def view(c: CacheCheck) -> CacheView:
    return CacheView(c.faster, c.took_ms, c.first_ms, c.ttl, c.first_ttl, c.original_ttl,
                     c.slack_s, c.ttl_proves, c.first_cached)


def test_a_ttl_below_the_zones_original_proves_a_cached_answer_even_when_not_faster() -> None:
    c = check(3487, 3487, 3600, first_ms=2.0, repeat_ms=1.5)
    assert (c.original_ttl, c.ttl, c.first_ttl) == (3600, 3487, 3487)
    assert not c.faster
    assert c.ttl_proves
    assert c.cached
    assert c.first_cached  # the resolver had it before we asked
    words = view(c).verdict
    assert words.startswith("served from the resolver's cache: TTL 3,487 s left of the "
                            "zone's 3,600 (RFC 1035 §7.4), though not faster")
    assert "the first answer came from its cache too (TTL 3,487 of 3,600)" in words


def test_a_fresh_answer_a_second_short_proves_nothing_and_the_time_decides() -> None:
    c = check(3600, 3599, 3600)
    assert c.slack_s == 2
    assert not c.ttl_proves
    assert c.first_cached is False
    assert c.faster
    assert c.cached
    assert view(c).verdict.endswith("is within the 2 s a fresh answer can lose, so it cannot "
                                    "tell")


def test_neither_faster_nor_counted_down_is_no_sign_of_a_cache() -> None:
    c = check(300, 300, 300, first_ms=2.0, repeat_ms=2.0)
    assert not c.faster
    assert not c.ttl_proves
    assert not c.cached
    assert view(c).verdict.startswith("not faster")


def test_without_the_walk_the_first_answer_stands_in_for_the_original() -> None:
    c = check(600, 590, None, first_ms=3.0, repeat_ms=3.0)
    assert c.original_ttl is None
    assert c.first_cached is None
    assert c.ttl_proves  # 10 s below the first answer: a countdown
    assert view(c).verdict.startswith("served from the resolver's cache: TTL 590 s, below the "
                                      "first answer's 600")
    same = check(600, 600, None)
    assert not same.ttl_proves
    assert "the walk did not run" in view(same).verdict


def test_a_slow_first_question_widens_the_slack() -> None:
    c = check(3600, 3597, 3600, first_ms=2500.0, repeat_ms=1.0)
    assert c.slack_s == 1 + 3  # whole-second clock + 2.501 s rounded up
    assert not c.ttl_proves
