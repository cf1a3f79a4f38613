"""The journey's own host cache: a name looked up once is not looked up again while its
answer lives, as a browser's host cache does (Chromium's HostCache, Firefox's DNS cache).

A second leg to the same host (a redirect from http:// to https://, or back to a host seen
earlier) opens a new connection but asks no DNS question: the addresses come from here and
the DNS step says so, with the time left. An entry lives for the answer's TTL (RFC 1035
§3.2.1: the time a record may be cached), the smallest of the A and AAAA answers of the view
in use. getaddrinfo gives no TTL; Chromium keeps such answers 60 s (``kCacheEntryTTLSeconds``,
"default TTL for successful resolutions with HostResolverSystemTask", in
net/dns/host_resolver_manager_job.cc), and so do we. A TTL of 0 means "do not cache" (RFC 1035
§3.2.1): such an answer is not stored.

No I/O: the runner stores what the DNS step resolved and asks before the next one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from whathappens.contract.facts import (
    DnsFacts,
    DnsQueryFacts,
    DnsWalkQuestionFacts,
    HostCacheHit,
)
from whathappens.journey import Span
from whathappens.net.dns.views import Resolution

SYSTEM_TTL_S = 60  # what Chromium's host cache gives a getaddrinfo answer, which has no TTL


@dataclass(frozen=True)
class Entry:
    resolution: Resolution
    stored_ns: int
    ttl_s: int
    ttl_source: str
    span_id: int


def answer_ttl(dns: Span[DnsFacts]) -> tuple[int, str] | None:
    """The lifetime of the DNS step's answer: the smallest TTL of the A/AAAA answers of the
    view in use, or Chromium's 60 s for the system view; None when no answer had one."""
    view = dns.facts.view_used
    if view == "system":
        return SYSTEM_TTL_S, ("60 s: getaddrinfo gives no TTL, and Chromium's host cache "
                              "keeps such answers 60 s")
    ttls: list[int] = []
    for child in dns.children:
        if child.name != f"dns.{view}" or child.error is not None:
            continue
        for q in child.children:
            ttl = _address_ttl(q)
            if ttl is not None:
                ttls.append(ttl)
    if not ttls:
        return None
    return min(ttls), f"the smallest TTL of the {view} view's A and AAAA answers"


def _address_ttl(span: Span[Any]) -> int | None:
    f = span.facts
    if span.error is not None:
        return None
    if isinstance(f, DnsQueryFacts) and "again" not in f.purpose:
        return f.ttl if f.qtype in ("A", "AAAA") and f.records else None
    if isinstance(f, DnsWalkQuestionFacts):
        return f.ttl if f.qtype in ("A", "AAAA") and f.records else None
    return None


class HostCache:
    """Host name → the addresses resolved, until the answer's TTL runs out."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def store(self, host: str, resolution: Resolution, dns: Span[DnsFacts],
              now_ns: int) -> None:
        ttl = answer_ttl(dns)
        if ttl is None or ttl[0] <= 0 or not resolution.addresses:
            return
        self.entries[host.lower()] = Entry(dataclasses.replace(resolution), now_ns, ttl[0],
                                           ttl[1], dns.span_id)

    def lookup(self, host: str, now_ns: int) -> tuple[Resolution, HostCacheHit] | None:
        """The cached answer and what to say about it; None when absent or expired."""
        entry = self.entries.get(host.lower())
        if entry is None:
            return None
        age_ns = now_ns - entry.stored_ns
        left_s = entry.ttl_s - age_ns // 1_000_000_000
        if left_s <= 0:
            del self.entries[host.lower()]
            return None
        hit = HostCacheHit(dns_span_id=entry.span_id, ttl_s=entry.ttl_s,
                           ttl_source=entry.ttl_source, age_ms=round(age_ns / 1e6, 3),
                           ttl_left_s=int(left_s))
        return dataclasses.replace(entry.resolution), hit
