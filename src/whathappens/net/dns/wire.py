"""Sending one DNS message and getting its answer, over UDP or TCP, with bounded reads.

UDP (RFC 1035 §4.2.1): one datagram each way; a reply whose id or question does not match is
ignored (it may be a late answer to an earlier query, or spoofed), and we keep waiting until
the timeout. TCP (RFC 1035 §4.2.2, RFC 7766): a two-byte length prefix; used when the UDP
answer came back truncated (TC bit).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.message

MAX_UDP = 65535
MAX_TCP = 65535


@dataclass
class WireResult:
    response: dns.message.Message
    transport: str           # "udp" | "tcp"
    bytes_sent: int
    bytes_received: int
    local: str               # "ip:port" we sent from


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _local(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def query_udp(
    query: dns.message.Message, address: str, port: int, timeout: float
) -> WireResult:
    import dns.message

    wire = query.to_wire()
    loop = asyncio.get_running_loop()
    sock = socket.socket(_family(address), socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect((address, port))
        await loop.sock_sendall(sock, wire)
        deadline = loop.time() + timeout
        received = 0
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(loop.sock_recv(sock, MAX_UDP), left)
            received += len(data)
            try:
                response = dns.message.from_wire(data, ignore_trailing=True)
            except Exception:  # dnspython raises many kinds for garbage
                continue
            if query.is_response(response):
                return WireResult(response, "udp", len(wire), received, _local(sock))
    finally:
        sock.close()


async def query_tcp(
    query: dns.message.Message, address: str, port: int, timeout: float
) -> WireResult:
    import dns.message

    wire = query.to_wire()
    loop = asyncio.get_running_loop()
    sock = socket.socket(_family(address), socket.SOCK_STREAM)
    sock.setblocking(False)

    async def read_exact(n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = await loop.sock_recv(sock, n - len(buf))
            if not chunk:
                raise ConnectionResetError("the server closed the TCP connection early")
            buf += chunk
        return bytes(buf)

    async def run() -> WireResult:
        await loop.sock_connect(sock, (address, port))
        await loop.sock_sendall(sock, struct.pack("!H", len(wire)) + wire)
        (length,) = struct.unpack("!H", await read_exact(2))
        data = await read_exact(min(length, MAX_TCP))
        response = dns.message.from_wire(data, ignore_trailing=True)
        if not query.is_response(response):
            raise ValueError("the TCP answer does not match the question")
        return WireResult(response, "tcp", len(wire) + 2, length + 2, _local(sock))

    try:
        return await asyncio.wait_for(run(), timeout)
    finally:
        sock.close()
