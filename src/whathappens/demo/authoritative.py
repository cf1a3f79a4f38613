"""A small authoritative DNS server on asyncio: UDP and TCP on one address.

The answers come from :class:`whathappens.demo.authority.Authority`; this module only moves
bytes. Rules it follows:

- UDP: a response larger than the client can take — 512 bytes without EDNS, else the payload
  size the client advertised, never more than our own 1232 (the DNS Flag Day 2020 value) —
  is cut to what fits and marked TC, so the client retries over TCP (RFC 1035 §4.2.1,
  RFC 6891 §6.2.5, RFC 2181 §9).
- TCP: every message is preceded by its length in two bytes (RFC 1035 §4.2.2). Several
  queries may come over one connection (RFC 7766 §6.2.1); an idle connection is closed.
- Garbage is dropped without an answer; nothing read from the network is unbounded: a UDP
  query over 4 KiB, a TCP query over 16 KiB, or a TCP connection beyond the cap is dropped.
- ``delay_ms`` is waited before every answer: the demo's stand-in for distance.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Coroutine
from typing import Any

import dns.exception
import dns.flags
import dns.message

from whathappens.demo.authority import Authority

MAX_UDP_QUERY = 4096
MAX_TCP_QUERY = 16384
MAX_PENDING = 1024
MAX_TCP_CONNECTIONS = 256
TCP_IDLE_TIMEOUT = 10.0
SERVER_MAX_UDP = 1232


class AuthoritativeServer:
    """Serves one :class:`Authority` on ``host``:``port`` over UDP and TCP."""

    def __init__(self, authority: Authority, *, delay_ms: float = 0.0) -> None:
        self.authority = authority
        self.delay = delay_ms / 1000
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()  # TCP connection handlers
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port, reuse_address=True)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port)
        )
        self._udp = transport

    async def aclose(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        # Hang up on TCP clients rather than cancel their handlers: a cancelled stream
        # handler makes asyncio (3.11) log a spurious traceback.
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            if task not in self._handlers:
                task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    def answer(self, wire: bytes, *, max_size: int | None) -> bytes | None:
        """The response to one query in wire format; ``max_size`` None means TCP."""
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
        limit = 512 if query.edns < 0 else min(max(query.payload, 512), SERVER_MAX_UDP)
        try:
            return response.to_wire(max_size=limit, prefer_truncation=True)
        except dns.exception.TooBig:
            return None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > MAX_UDP_QUERY or len(self._tasks) >= MAX_PENDING:
            return
        reply = self.answer(data, max_size=SERVER_MAX_UDP)
        if reply is not None:
            self._spawn(self._send_udp(reply, addr))

    async def _send_udp(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(reply, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            self._handlers.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        try:
            if len(self._writers) <= MAX_TCP_CONNECTIONS:
                await self._tcp_queries(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _tcp_queries(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        while True:
            async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                if length > MAX_TCP_QUERY:
                    return
                wire = await reader.readexactly(length)
            reply = self.answer(wire, max_size=None)
            if reply is None:
                continue  # dropped on purpose (or garbage); the client's timer runs
            if self.delay:
                await asyncio.sleep(self.delay)
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: AuthoritativeServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._datagram(data, addr)
