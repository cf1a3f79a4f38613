"""Who the journey met, and in which role: you, the resolvers, the root, TLD and
authoritative name servers of the walk, the server, and in the lab each tier inside it.

A walk hop's role comes from the zone the server was asked as (RFC 1034 §4.3.2): the root
zone ``.``; a top-level domain (one label: ``com.``); anything below is a zone's own
authoritative server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Span = dict[str, Any]


@dataclass(frozen=True)
class Actor:
    role: str       # you, resolver, root, TLD, authoritative, server, or a lab tier (edge, lb…)
    name: str
    address: str


def zone_role(zone: str) -> str:
    """root, TLD or authoritative, for the zone a walk hop asked a server as."""
    if zone == ".":
        return "root"
    return "TLD" if zone.rstrip(".").count(".") == 0 else "authoritative"


def _walk(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s in spans:
        out.append(s)
        out.extend(_walk(s.get("children") or []))
    return out


def _first(legs: list[Span], name: str) -> Span | None:
    return next((c for leg in legs for c in leg.get("children") or []
                 if c.get("name") == name), None)


def _resolvers(dns: Span) -> list[Actor]:
    out: list[Actor] = []
    for view in dns.get("children") or []:
        a = view.get("attrs") or {}
        if view.get("name") == "dns.resolver":
            out.append(Actor("resolver", str(view.get("actor") or "recursive resolver"),
                             str(a.get("resolver") or "")))
        elif view.get("name") == "dns.system":
            out.append(Actor("resolver", "system resolver (getaddrinfo)",
                             ", ".join(a.get("addresses") or [])))
    seen: set[tuple[str, str]] = set()
    for hop in (h for h in _walk([dns]) if h.get("name") == "dns.hop"):
        a = hop.get("attrs") or {}
        key = (str(a.get("server")), str(a.get("address")))
        if key not in seen:
            seen.add(key)
            out.append(Actor(zone_role(str(a.get("zone") or "")), *key))
    return out


def actors(journey: dict[str, Any]) -> list[Actor]:
    """Everyone the journey met, in the order it met them (each name server once)."""
    spans: list[Span] = list(journey.get("spans") or [])
    legs = [s for s in spans if s.get("name") == "leg"]
    url = next((s for s in spans if s.get("name") == "url"), None) or {}
    tcp = _first(legs, "tcp")
    tcp_attrs = (tcp or {}).get("attrs") or {}
    out = [Actor("you", "whathappens", str(tcp_attrs.get("local") or "this machine"))]
    dns = _first(legs, "dns")
    if dns is not None:
        out += _resolvers(dns)
    if tcp is not None:
        host = str((url.get("attrs") or {}).get("host") or "")
        out.append(Actor("server", host,
                         str(tcp_attrs.get("remote") or tcp_attrs.get("address") or "")))
    for s in _walk(spans):
        name = str(s.get("name") or "")
        if name.startswith("server."):
            out.append(Actor(name.removeprefix("server."), str(s.get("actor") or ""), ""))
    return out
