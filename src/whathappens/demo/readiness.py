"""Is a server really answering? The checks the demo runs before it says "ready".

A listening socket is not an answer: every name server is asked for its zone's SOA over UDP
and over TCP, every HTTPS server must complete a TLS handshake (the good one against the demo
CA, with ALPN), the plain-HTTP port must accept a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import struct
from collections.abc import Iterable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype


class StartupError(Exception):
    """The demo could not start; ``in_use`` when an address was already taken."""

    def __init__(self, message: str, *, in_use: bool = False) -> None:
        super().__init__(message)
        self.in_use = in_use


def as_startup_error(error: BaseException, where: str) -> StartupError:
    """Say in words what went wrong; a taken address is told apart (exit status 98)."""
    if isinstance(error, OSError):
        in_use = error.errno == errno.EADDRINUSE
        reason = "address already in use" if in_use else (error.strerror or str(error))
        return StartupError(f"cannot listen on {where}: {reason}", in_use=in_use)
    return StartupError(f"{where} failed: {type(error).__name__}: {error}")


async def dns_answers(address: str, port: int, origin: dns.name.Name) -> None:
    """Ask for the zone's SOA over UDP, then over TCP; both must be authoritative answers."""
    query = dns.message.make_query(origin, dns.rdatatype.SOA)
    wire = query.to_wire()
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()

    class Probe(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not answered.done():
                answered.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Probe, remote_addr=(address, port))
    try:
        transport.sendto(wire)
        replies = [await answered]
    finally:
        transport.close()
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        replies.append(await reader.readexactly(length))
    finally:
        writer.close()
    for reply in replies:
        response = dns.message.from_wire(reply)
        if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
            raise StartupError(f"{address}:{port} gave a bad answer for {origin} SOA")


async def web_accepts(address: str, port: int, context: ssl.SSLContext | None,
                      hostname: str | None, servers: Iterable[asyncio.Task[None]]) -> None:
    """Connect (and handshake) until it works; a server task that died fails at once."""
    while True:
        for task in servers:
            if task.done():
                error = task.exception()
                raise as_startup_error(error, "a web server") if error else StartupError(
                    "a web server stopped during startup")
        try:
            _, writer = await asyncio.open_connection(
                address, port, ssl=context, server_hostname=hostname)
        except ConnectionRefusedError:
            await asyncio.sleep(0.01)
            continue
        except (OSError, ssl.SSLError) as e:
            raise StartupError(f"{address}:{port} does not answer properly: {e}") from None
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return
