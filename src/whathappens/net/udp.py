"""A connected UDP socket on the event loop that says when each datagram *arrived*.

asyncio's datagram transport reads with ``recvfrom()``, so the only time it can give a
datagram is when the event loop got round to reading it: a datagram that arrives while the
loop is busy (aioquic working on the previous one — deriving keys, checking a certificate)
looks as late as that work took. Through a real path this splits one flight of the server's
into two around our own answer. The kernel stamps every datagram as it lands on the socket
(``SO_TIMESTAMPNS``, socket(7)); reading with ``recvmsg()`` hands that stamp over, and it is
placed on the journey's monotonic clock here. Where the stamp is missing, the read time
stands in.

Linux stamps received packets only while some socket on the machine asks for stamps, and it
turns that on *later*, from a work queue (``net_enable_timestamp``): a datagram that lands in
between carries no stamp, and ``recvmsg()`` then stamps it with the time of the read — a
late read passed off as an arrival. :func:`keep_stamping` holds one stamping socket open for
the process's life; the journey opens it in its setup step, before any network step.

Sending is ``send()`` on the non-blocking socket: a datagram the kernel cannot take at once
is dropped, as the network may drop it (QUIC recovers, RFC 9002). ICMP errors the kernel
reports on the connected socket (port unreachable) go to ``on_error``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time
from collections.abc import Callable

from whathappens.clock import Clock

# SO_TIMESTAMPNS on Linux's generic ABI (x86-64, arm64): 35; its control message has the same
# type and carries a struct timespec of two longs (CLOCK_REALTIME).
SO_TIMESTAMPNS = 35 if sys.platform == "linux" else None
_TIMESPEC = struct.Struct("@ll")
MAX_DATAGRAM = 65535
BURST = 64                   # datagrams read per wake-up at most


_KEEPER: list[socket.socket] = []


def keep_stamping() -> bool:
    """Keep the kernel's receive stamps on for this process (see the module's docstring):
    one UDP socket asking for them, opened once and never closed. False where there are
    none to keep."""
    if _KEEPER:
        return True
    if SO_TIMESTAMPNS is None:
        return False
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if not _stamp(sock):
        sock.close()
        return False
    _KEEPER.append(sock)
    return True


def arrival_ns(ancillary: list[tuple[int, int, bytes]], read_ns: int, clock: Clock,
               realtime_minus_monotonic: int) -> int:
    """The kernel's receive stamp (CLOCK_REALTIME) on the journey's clock, or ``read_ns``
    when there is none or it is not plausible (after the read, or over a second before)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and \
                len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            t = int(sec) * 1_000_000_000 + int(nsec) - realtime_minus_monotonic - clock.origin_ns
            if read_ns - 1_000_000_000 <= t <= read_ns:
                return t
    return read_ns


class UdpSocket:
    """One connected, non-blocking UDP socket; ``on_datagram(data, arrived_ns, read_ns)``."""

    def __init__(self, address: str, port: int, clock: Clock,
                 on_datagram: Callable[[bytes, int, int], None],
                 on_error: Callable[[OSError], None]) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            self.stamped = _stamp(self.sock)
            self.sock.connect((address, port))
        except OSError:
            self.sock.close()
            raise
        self.clock, self.on_datagram, self.on_error = clock, on_datagram, on_error
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self._readable)
        self.closed = False

    @property
    def sockname(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return str(name[0]), int(name[1])

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.sock.send(data)
        except BlockingIOError:
            pass                     # the send buffer is full: lost, as on the path
        except OSError as exc:
            self.on_error(exc)

    def _readable(self) -> None:
        space = socket.CMSG_SPACE(_TIMESPEC.size) if self.stamped else 0
        for _ in range(BURST):
            if self.closed:
                return
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(MAX_DATAGRAM, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.on_error(exc)
                return
            read = self.clock.now()
            offset = time.time_ns() - time.perf_counter_ns()
            self.on_datagram(data, arrival_ns(ancillary, read, self.clock, offset), read)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


def _stamp(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram received; False where it cannot."""
    if SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True
