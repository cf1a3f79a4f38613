"""The demo internet's recursive resolver: the same walk planner the tracer uses, plus a cache.

It answers stub queries (RD=1) by walking from the demo's root hints, remembering answers for
their TTL (and NXDOMAIN/NODATA for the SOA minimum, RFC 2308) so that a repeated question is
answered from the cache with the TTL counting down — which is what the tracer's "repeat" query
shows. Listens on UDP and TCP (RFC 7766) through the bounded transport the authoritative
servers use (:mod:`whathappens.demo.dns_transport`: query sizes, pending UDP answers, TCP
connections, idle and slow TCP clients).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from whathappens.demo.dns_transport import DnsServerLimits, DnsServerTransport
from whathappens.net.dns.hints import NameServer, load_root_hints
from whathappens.net.dns.walk import HopKind, Walk
from whathappens.net.dns.wire import query_tcp, query_udp

QUERY_TIMEOUT = 2.0
MAX_TCP_MESSAGE = 65535


@dataclass
class CacheEntry:
    expires: float
    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]


class RecursiveResolver:
    def __init__(self, roots: list[NameServer], upstream_port: int, delay_ms: float) -> None:
        self.roots = roots
        self.upstream_port = upstream_port
        self.delay = delay_ms / 1000
        self.cache: dict[tuple[str, dns.rdatatype.RdataType], CacheEntry] = {}

    async def resolve(self, qname: str, rdtype: dns.rdatatype.RdataType) -> CacheEntry:
        key = (qname.lower(), rdtype)
        entry = self.cache.get(key)
        if entry is not None and entry.expires > time.monotonic():
            return entry
        walk = Walk(qname, dns.rdatatype.to_text(rdtype), self.roots)
        while (action := walk.next_action()) is not None:
            q = dns.message.make_query(action.qname, action.qtype, use_edns=0, payload=1232)
            q.flags &= ~dns.flags.RD
            try:
                send = query_tcp if action.tcp else query_udp
                res = await send(q, action.address, self.upstream_port, QUERY_TIMEOUT)
            except TimeoutError:
                walk.handle_timeout(action)
            except (OSError, ValueError) as exc:
                walk.handle_error(action, str(exc))
            else:
                walk.handle_response(action, res.response)
        result = walk.result
        assert result is not None
        answer: list[dns.rrset.RRset] = []
        authority: list[dns.rrset.RRset] = []
        seen: set[str] = set()
        for hop in walk.hops:
            if hop.action.depth != 0:
                continue
            if hop.kind in (HopKind.ANSWER, HopKind.CNAME):
                for line in hop.answers:
                    if line not in seen:
                        seen.add(line)
                        answer.append(_rrset(line))
            if hop.kind in (HopKind.NXDOMAIN, HopKind.NODATA):
                authority = [_rrset(line) for line in hop.answers]
        rcode = {"answer": dns.rcode.NOERROR, "nodata": dns.rcode.NOERROR,
                 "nxdomain": dns.rcode.NXDOMAIN}.get(result.outcome, dns.rcode.SERVFAIL)
        ttl = min([r.ttl for r in answer] or [result.ttl or 0])
        entry = CacheEntry(time.monotonic() + ttl, rcode, answer, authority)
        if rcode != dns.rcode.SERVFAIL and ttl > 0:
            self.cache[key] = entry
        return entry

    async def answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        """The response to one stub query; ``max_size`` is the largest UDP response this
        server sends, None over TCP."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None  # not a DNS message: drop it, as real servers do
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: answering it could start a loop
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if not query.question or not query.flags & dns.flags.RD:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        q = query.question[0]
        entry = await self.resolve(q.name.to_text(), q.rdtype)
        if self.delay:
            await asyncio.sleep(self.delay)
        left = max(0, int(entry.expires - time.monotonic()))
        response.set_rcode(entry.rcode)
        for rrset in entry.answer:
            response.answer.append(_aged(rrset, left))
        for rrset in entry.authority:
            response.authority.append(_aged(rrset, left))
        # UDP: what the client can take (512 without EDNS), never more than our own maximum
        # (RFC 6891 §6.2.5); over TCP, a whole message.
        limit = MAX_TCP_MESSAGE if max_size is None else (
            512 if query.edns < 0 else min(max(query.payload, 512), max_size))
        try:
            out = response.to_wire(max_size=MAX_TCP_MESSAGE)
        except dns.exception.TooBig:
            out = b"\0" * (MAX_TCP_MESSAGE + 1)
        if len(out) > limit:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
            out = response.to_wire()
        return out


def _rrset(line: str) -> dns.rrset.RRset:
    name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)


def _aged(rrset: dns.rrset.RRset, ttl_left: int) -> dns.rrset.RRset:
    """The cached rrset with its TTL counted down, as a caching resolver serves it."""
    return dns.rrset.from_rdata_list(rrset.name, min(rrset.ttl, ttl_left), list(rrset))


async def start_resolver(address: str, port: int, root_hints: str, *, upstream_port: int,
                         delay_ms: float = 0.0,
                         limits: DnsServerLimits | None = None) -> DnsServerTransport:
    """The resolver listening on ``address``:``port`` (UDP and TCP); ``aclose()`` stops it."""
    resolver = RecursiveResolver(load_root_hints(root_hints), upstream_port, delay_ms)
    server = DnsServerTransport(resolver.answer, limits)
    await server.start(address, port)
    return server
