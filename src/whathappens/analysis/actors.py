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
    QuicFacts,
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


def _first_connection(journey: JourneyDoc) -> TcpFacts | QuicFacts | None:
    """The first leg's connection: TCP, or QUIC when HTTP/3 carried it (both name the
    local and remote ends)."""
    for leg in journey.spans:
        for c in leg.children if leg.name == "leg" else []:
            facts = c.facts_as(TcpFacts) if c.name == "tcp" else \
                c.facts_as(QuicFacts) if c.name == "quic" else None
            lost = isinstance(facts, QuicFacts) and facts.race in ("lost", "failed")
            if facts is not None and not lost:
                return facts
    return None


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
    conn = _first_connection(journey)
    out = [Actor("you", "whathappens", (conn.local if conn else None) or "this machine")]
    dns = _first(journey, "dns")
    if dns is not None:
        out += _resolvers(dns)
    if conn is not None:
        out.append(Actor("server", url.host if url is not None else "",
                         conn.remote or conn.address or ""))
    for s in journey.all_spans():
        if s.name.startswith("server."):
            out.append(Actor(s.name.removeprefix("server."), s.actor, ""))
    return out
