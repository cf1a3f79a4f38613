"""A small authoritative DNS server on asyncio: UDP and TCP on one address.

The answers come from :class:`whathappens.demo.authority.Authority`; the bytes move through
:mod:`whathappens.demo.dns_transport`, which bounds everything read from the network (query
sizes, pending UDP answers, TCP connections, idle and slow TCP clients). Rules this module adds:

- UDP: a response larger than the client can take — 512 bytes without EDNS, else the payload
  size the client advertised, never more than our own 1232 (the DNS Flag Day 2020 value) —
  is cut to what fits and marked TC, so the client retries over TCP (RFC 1035 §4.2.1,
  RFC 6891 §6.2.5, RFC 2181 §9).
- A response sent to us (QR set) and garbage are dropped without an answer.
- ``delay_ms`` is waited before every answer: the demo's stand-in for distance.
"""

from __future__ import annotations

import asyncio

import dns.exception
import dns.flags
import dns.message

from whathappens.demo.authority import Authority
from whathappens.demo.dns_transport import DnsServerLimits, DnsServerTransport


class AuthoritativeServer:
    """Serves one :class:`Authority` on ``host``:``port`` over UDP and TCP."""

    def __init__(self, authority: Authority, *, delay_ms: float = 0.0,
                 limits: DnsServerLimits | None = None) -> None:
        self.authority = authority
        self.delay = delay_ms / 1000
        self.transport = DnsServerTransport(self._respond, limits)

    async def start(self, host: str, port: int) -> None:
        await self.transport.start(host, port)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def answer(self, wire: bytes, *, max_size: int | None) -> bytes | None:
        """The response to one query in wire format; ``max_size`` is the largest UDP response
        this server sends, None over TCP."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # anything unparsable from the network is dropped, never fatal
            return None
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: answering it could start a loop
        response = self.authority.respond(query)
        if response is None:
            return None
        if max_size is None:
            return response.to_wire(max_size=65535, prefer_truncation=True)
        limit = 512 if query.edns < 0 else min(max(query.payload, 512), max_size)
        try:
            return response.to_wire(max_size=limit, prefer_truncation=True)
        except dns.exception.TooBig:
            return None

    async def _respond(self, wire: bytes, max_size: int | None) -> bytes | None:
        reply = self.answer(wire, max_size=max_size)
        if reply is not None and self.delay:
            await asyncio.sleep(self.delay)
        return reply
