"""Who the journey met, and in which role: you, the resolvers, the root, TLD and
authoritative name servers of the walk, the server, and in the lab each tier inside it.

A walk hop's role comes from the zone the server was asked as (RFC 1034 §4.3.2): the root
zone ``.``; a top-level domain (one label: ``com.``); anything below is a zone's own
authoritative server.
"""

from __future__ import annotations

from whathappens.analysis.model import Actor
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import (
    DnsHopFacts,
    DnsResolverFacts,
    DnsSystemFacts,
    TcpFacts,
    UrlFacts,
)


def zone_role(zone: str) -> str:
    """root, TLD or authoritative, for the zone a walk hop asked a server as."""
    if zone == ".":
        return "root"
    return "TLD" if zone.rstrip(".").count(".") == 0 else "authoritative"


def _first(journey: JourneyDoc, name: str) -> SpanDoc | None:
    return next((c for leg in journey.spans if leg.name == "leg" for c in leg.children
                 if c.name == name), None)


def _resolvers(dns: SpanDoc) -> list[Actor]:
    out: list[Actor] = []
    for view in dns.children:
        resolver, system = view.facts_as(DnsResolverFacts), view.facts_as(DnsSystemFacts)
        if resolver is not None:
            out.append(Actor("resolver", view.actor or "recursive resolver",
                             resolver.resolver or ""))
        elif system is not None:
            out.append(Actor("resolver", "system resolver (getaddrinfo)",
                             ", ".join(system.addresses)))
    seen: set[tuple[str, str]] = set()
    for hop in dns.walk():
        facts = hop.facts_as(DnsHopFacts)
        if facts is not None and (facts.server, facts.address) not in seen:
            seen.add((facts.server, facts.address))
            out.append(Actor(zone_role(facts.zone), facts.server, facts.address))
    return out


def actors(journey: JourneyDoc) -> list[Actor]:
    """Everyone the journey met, in the order it met them (each name server once)."""
    url = next((s.facts for s in journey.spans if isinstance(s.facts, UrlFacts)), None)
    tcp = _first(journey, "tcp")
    tcp_facts = tcp.facts_as(TcpFacts) if tcp is not None else None
    out = [Actor("you", "whathappens", (tcp_facts.local if tcp_facts else None)
                 or "this machine")]
    dns = _first(journey, "dns")
    if dns is not None:
        out += _resolvers(dns)
    if tcp_facts is not None:
        out.append(Actor("server", url.host if url is not None else "",
                         tcp_facts.remote or tcp_facts.address or ""))
    for s in journey.all_spans():
        if s.name.startswith("server."):
            out.append(Actor(s.name.removeprefix("server."), s.actor, ""))
    return out
