"""Byte streams the HTTP layer talks through: plain TCP, or TLS on top of it.

Both count bytes at two levels: ``wire_*`` is what crossed the TCP socket (TLS records, headers
and all), ``app_*`` is what the layer above handed in or got out. Every read is bounded by the
caller's ``max_bytes``; a read that waits longer than ``timeout`` seconds raises TimeoutError.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

from whathappens.net import budget


class Stream(Protocol):
    @property
    def wire_sent(self) -> int: ...

    @property
    def wire_received(self) -> int: ...

    @property
    def app_sent(self) -> int: ...

    @property
    def app_received(self) -> int: ...

    async def send(self, data: bytes) -> None: ...

    async def recv(self, max_bytes: int, timeout: float) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` at end of stream."""
        ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...

    def poll_idle(self) -> tuple[int, bool]:
        """Without waiting: (bytes of application data that arrived while idle, whether the
        peer has closed). Used before a connection is reused."""
        ...


class PlainStream:
    """A connected, non-blocking TCP socket driven by the running event loop."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.wire_sent = 0
        self.wire_received = 0
        self._closed = False

    @property
    def app_sent(self) -> int:
        return self.wire_sent

    @property
    def app_received(self) -> int:
        return self.wire_received

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)
        self.wire_sent += len(data)

    async def recv(self, max_bytes: int, timeout: float) -> bytes:
        # What the kernel already holds is taken at once: a trip through the event loop
        # (a task for wait_for, a reader callback) per read would be measured as network time.
        # The budget still gives the loop a turn every few reads and checks the deadline,
        # so a peer that always has data ready cannot keep timers from firing.
        await budget.current().turn()
        try:
            data = self.sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            async with asyncio.timeout(timeout):
                data = await asyncio.get_running_loop().sock_recv(self.sock, max_bytes)
        self.wire_received += len(data)
        return data

    def poll_idle(self) -> tuple[int, bool]:
        try:
            data = self.sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0, False
        except OSError:
            return 0, True
        return len(data), not data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sock.close()

    @property
    def closed(self) -> bool:
        return self._closed


def closed_how(stream: Stream) -> str:
    """How the server ended a TLS stream, for a sentence: its close_notify alert (a clean
    end, RFC 8446 §6.1) or a bare TCP FIN (which an attacker could also forge); "" for TCP."""
    if getattr(stream, "close_notify", False):
        return " with a TLS close_notify"
    if getattr(stream, "ragged_eof", False):
        return " (a TCP FIN without TLS close_notify)"
    return ""
