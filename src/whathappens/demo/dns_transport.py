"""A DNS server's transport: UDP and TCP on one address, every read from the network bounded.

The demo's authoritative servers and its recursive resolver (and the lab's DNS tier) answer
through this one transport; what they answer is theirs, a coroutine
``answer(wire, max_size) -> bytes | None`` (None: no answer at all, the client's timer runs).
``max_size`` is the largest UDP response this server sends (``SERVER_MAX_UDP``), or None
over TCP; an answerer cuts a UDP response to what the client can take and sets TC.

- UDP: a query over ``max_udp_query`` bytes is dropped, and so is any query that arrives
  while ``max_pending`` are being answered (a flood costs a bounded number of tasks).
- TCP: every message is preceded by its length in two bytes (RFC 1035 §4.2.2), and several
  queries may come over one connection, answered in order (RFC 7766 §6.2.1). A connection
  beyond ``max_tcp_connections`` is closed at once; a declared length over ``max_tcp_query``
  closes the connection before any of it is read; a query must arrive whole within
  ``tcp_idle_timeout`` of the previous answer (RFC 7766 §6.2.3: servers close idle
  connections), which bounds a client that sends nothing, a byte at a time or a length it
  never completes; and a client that takes none of our answers for that long is dropped,
  with what was waiting for it (the kernel keeps at most ``tcp_send_buffer`` of it per
  connection, asyncio 64 KiB more).
- An answerer that fails is a dropped query, never a stopped server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

SERVER_MAX_UDP = 1232  # the DNS Flag Day 2020 value: no fragmented UDP answers

Answer = Callable[[bytes, int | None], Awaitable[bytes | None]]


@dataclass(frozen=True)
class DnsServerLimits:
    max_udp_query: int = 4096
    max_tcp_query: int = 16384
    max_pending: int = 1024           # UDP queries being answered at once
    max_tcp_connections: int = 256
    tcp_idle_timeout: float = 10.0    # seconds for a whole query to arrive, or an answer to leave
    tcp_send_buffer: int = 64 * 1024  # SO_SNDBUF: one TCP answer is at most 64 KiB
    server_max_udp: int = SERVER_MAX_UDP


class DnsServerTransport:
    """Serves ``answer`` on ``host``:``port`` over UDP and TCP, within ``limits``."""

    def __init__(self, answer: Answer, limits: DnsServerLimits | None = None) -> None:
        self.answer = answer
        self.limits = limits or DnsServerLimits()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._pending: set[asyncio.Task[None]] = set()   # UDP answers being worked on
        self._handlers: set[asyncio.Task[Any]] = set()   # TCP connection handlers
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def tcp_connections(self) -> int:
        """TCP connections open now (those over the cap included, until they are closed)."""
        return len(self._writers)

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port, reuse_address=True)
        for sock in self._tcp.sockets:  # accepted connections inherit it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.tcp_send_buffer)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port))
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
        for task in list(self._pending):
            task.cancel()
        waiting = self._pending | self._handlers
        if waiting:
            await asyncio.wait(list(waiting), timeout=1.0)

    async def _answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        try:
            return await self.answer(wire, max_size)
        except asyncio.CancelledError:
            raise
        except Exception:  # the answerer's fault, for this one query only
            return None

    # ------------------------------------------------------------------------------ UDP
    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > self.limits.max_udp_query or len(self._pending) >= self.limits.max_pending:
            return
        self._track(self._pending, self._reply_udp(data, addr))

    def _track(self, tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _reply_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self._answer(data, self.limits.server_max_udp)
        if reply is not None and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(reply, addr)

    # ------------------------------------------------------------------------------ TCP
    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        try:
            if len(self._writers) <= self.limits.max_tcp_connections:
                await self._tcp_queries(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # close() would wait for a client that does not read
            else:
                writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _tcp_queries(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        while True:
            async with asyncio.timeout(limits.tcp_idle_timeout):
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                if length > limits.max_tcp_query:
                    return
                wire = await reader.readexactly(length)
            reply = await self._answer(wire, None)
            if reply is None:
                continue  # dropped on purpose (or garbage); the client's timer runs
            writer.write(struct.pack("!H", len(reply)) + reply)
            async with asyncio.timeout(limits.tcp_idle_timeout):
                await writer.drain()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServerTransport) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._datagram(data, addr)
