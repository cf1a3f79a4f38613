"""DNS caches (issue 11): a second lookup of a name within one journey is answered from the
journey's own host cache, as a browser's is, while the answer's TTL lasts. End to end on the
demo internet (http:// redirected to https:// on the same host: a new connection, no new
question), and the cache's rules on its own."""

from __future__ import annotations

from journey_helpers import child, demo_url, legs, trace
from whathappens.contract.facts import (
    DnsFacts,
    DnsQueryFacts,
    DnsResolverFacts,
    DnsSystemFacts,
)
from whathappens.demo.internet import DemoInternet
from whathappens.journey import Journey, Span
from whathappens.net.dns.host_cache import SYSTEM_TTL_S, HostCache, answer_ttl
from whathappens.net.dns.views import Resolution

S = 1_000_000_000


def test_a_redirect_to_the_same_host_asks_no_second_question(
        demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, scheme="http"))
    assert j.error is None
    first, second = legs(j)
    dns1, dns2 = child(first, "dns"), child(second, "dns")
    assert dns1.facts.view_used == "resolver"
    assert dns1.facts.host_cache is None
    # The second leg is a new connection (another origin), but the name is known.
    assert second.facts.connection == "new"
    hit = dns2.facts.host_cache
    assert dns2.facts.view_used == "host_cache"
    assert dns2.children == []  # not one question
    assert dns2.facts.addresses == dns1.facts.addresses
    assert hit is not None
    assert hit.dns_span_id == dns1.span_id
    ttls = [q.facts.ttl for v in dns1.children if v.name == "dns.resolver"
            for q in v.children if q.facts.qtype in ("A", "AAAA")
            and "again" not in q.facts.purpose]
    assert hit.ttl_s == min(t for t in ttls if t is not None)
    assert 0 < hit.ttl_left_s <= hit.ttl_s
    assert 0 < hit.age_ms < 5_000
    assert f"TTL {hit.ttl_left_s:,} s left of {hit.ttl_s:,}" in (dns2.facts.note or "")
    took = [(d.end_ns or 0) - d.start_ns for d in (dns1, dns2)]
    assert took[1] < 1_000_000  # < 1 ms: a dictionary, not a round trip
    assert took[1] < took[0]


def _dns_span(journey: Journey, view: str, ttls: dict[str, int | None]) -> Span[DnsFacts]:
    dns = journey.span("dns", "dns", "you", "application", DnsFacts(view_used=view))
    parent = journey.span(f"dns.{view}", "dns", "x", "application",
                          DnsResolverFacts() if view == "resolver" else DnsSystemFacts(),
                          parent=dns)
    for qtype, ttl in ttls.items():
        journey.span("dns.query", "dns", "x", "application",
                     DnsQueryFacts(qtype=qtype, ttl=ttl, records=["x"], purpose=qtype),
                     parent=parent)
    journey.span("dns.query", "dns", "x", "application",
                 DnsQueryFacts(qtype="A", ttl=1, records=["x"],
                               purpose="the same question again"), parent=parent)
    return dns


def test_an_entry_lives_for_the_smallest_address_ttl_and_then_expires() -> None:
    j = Journey(url="x")
    dns = _dns_span(j, "resolver", {"A": 300, "AAAA": 120, "HTTPS": 5})
    assert answer_ttl(dns) == (120, "the smallest TTL of the resolver view's A and AAAA "
                                    "answers")
    cache = HostCache()
    res = Resolution("resolver", ["::1"], ["127.0.0.1"])
    cache.store("WWW.Example.com", res, dns, 10 * S)
    got = cache.lookup("www.example.com", 10 * S + 30 * S + 5)
    assert got is not None
    again, hit = got
    assert again.addresses == ["::1", "127.0.0.1"]
    assert (hit.ttl_s, hit.ttl_left_s) == (120, 90)
    assert cache.lookup("www.example.com", 130 * S) is None  # 120 s later: expired
    assert cache.lookup("www.example.com", 11 * S) is None   # and gone


def test_a_zero_ttl_is_not_cached_and_a_system_answer_lives_60_s() -> None:
    j = Journey(url="x")
    cache = HostCache()
    res = Resolution("resolver", [], ["127.0.0.1"])
    cache.store("a.test", res, _dns_span(j, "resolver", {"A": 0}), 0)
    assert cache.lookup("a.test", 1) is None  # RFC 1035 §3.2.1: 0 means do not cache
    system = j.span("dns", "dns", "you", "application", DnsFacts(view_used="system"))
    assert answer_ttl(system) is not None
    cache.store("b.test", res, system, 0)
    got = cache.lookup("b.test", 59 * S)
    assert got is not None
    assert got[1].ttl_s == SYSTEM_TTL_S
    assert cache.lookup("b.test", 60 * S) is None
