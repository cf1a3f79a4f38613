"""TCP: connect to the resolved addresses (Happy Eyeballs) and read the kernel's TCP_INFO.

Happy Eyeballs v2 (RFC 8305): addresses are interleaved by family, IPv6 first (§4); the first
attempt starts at once, each next one after the "Connection Attempt Delay" of 250 ms (§5) or
as soon as the previous one fails; the first to complete the three-way handshake wins and the
others are abandoned. ``sock_connect`` returns when the kernel has seen the SYN-ACK and sent
the final ACK, so the measured time is one round trip plus the local stack's work.

TCP_INFO (Linux ``struct tcp_info``, include/uapi/linux/tcp.h) is the kernel's own view of
the connection: its smoothed RTT estimate (RFC 6298), MSS, congestion window, retransmits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
from dataclasses import dataclass
from typing import Any

from whathappens.contract.facts import TcpConnectFacts, TcpFacts, TcpInfo
from whathappens.errors import ConnectError
from whathappens.journey import Journey, Span

ATTEMPT_DELAY = 0.25  # RFC 8305 §5 recommended Connection Attempt Delay

# The stable prefix of struct tcp_info: 8 u8, 24 u32, 4 u64, 2 u32.
_TCP_INFO = struct.Struct("=8B24I4Q2I")
_TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1",
               5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK",
               10: "LISTEN", 11: "CLOSING"}


def tcp_info(sock: socket.socket) -> TcpInfo | None:
    """The kernel's TCP_INFO for a connected socket (Linux), in plain units."""
    if not hasattr(socket, "TCP_INFO"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
    except OSError:
        return None
    if len(raw) < _TCP_INFO.size:
        return None
    v = _TCP_INFO.unpack(raw[: _TCP_INFO.size])
    u32 = v[8:32]
    return TcpInfo(
        state=_TCP_STATES.get(v[0], str(v[0])),
        retransmits=v[2],
        rto_ms=u32[0] / 1000,
        snd_mss=u32[2],
        rcv_mss=u32[3],
        unacked=u32[4],
        lost=u32[6],
        pmtu=u32[13],
        rtt_ms=u32[15] / 1000,        # smoothed RTT, kernel microseconds
        rttvar_ms=u32[16] / 1000,
        snd_ssthresh=u32[17],
        snd_cwnd=u32[18],             # in segments
        advmss=u32[19],
        total_retrans=u32[23],
        bytes_acked=v[34],
        bytes_received=v[35],
        segs_out=v[36],
        segs_in=v[37],
    )


def interleave(ipv6: list[str], ipv4: list[str]) -> list[str]:
    """RFC 8305 §4: alternate families, starting with IPv6."""
    out: list[str] = []
    for i in range(max(len(ipv6), len(ipv4))):
        out.extend(x[i] for x in (ipv6, ipv4) if i < len(x))
    return out


def _endpoint(addr: tuple[Any, ...]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Connection:
    sock: socket.socket
    remote: str
    local: str
    address: str
    family: str
    span: Span[TcpConnectFacts]


def _connect_error(address: str, port: int, exc: BaseException, timeout: float) -> ConnectError:
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    if isinstance(exc, TimeoutError):
        return ConnectError("tcp.timeout", f"no answer from {where} within {timeout:g} s: "
                            "our SYN got no SYN-ACK (a firewall dropping packets, or the "
                            "host is down)")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError("tcp.refused", f"{where} refused the connection: the host is "
                            "up but nothing listens on that port (it answered our SYN with "
                            "a RST)")
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH,
                                                  errno.EADDRNOTAVAIL):
        return ConnectError("tcp.unreachable", f"no route to {where}: {exc.strerror}")
    if isinstance(exc, ConnectionResetError) or (isinstance(exc, OSError)
                                                 and exc.errno == errno.ECONNRESET):
        return ConnectError("tcp.reset", f"{where} reset the connection (a TCP RST) as it was "
                            "being set up: the server accepted it and dropped it at once")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return ConnectError("tcp.failed", f"connecting to {where} failed: {reason.lower()}",
                        detail=repr(exc))


async def _attempt(journey: Journey, parent: Span[TcpFacts], address: str, port: int,
                   timeout: float) -> Connection:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    fam = "IPv6" if family == socket.AF_INET6 else "IPv4"
    span = journey.span("tcp.connect", "tcp", "you", "transport",
                        TcpConnectFacts(address=address, port=port, family=fam), parent=parent)
    try:
        # asyncio.timeout, not wait_for: wait_for would wrap the connect in a task of its
        # own, and the SYN would leave one event-loop turn after the span began.
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException as exc:
        journey.end(span)
        sock.close()
        if isinstance(exc, asyncio.CancelledError):
            span.facts.outcome = "abandoned (another address won the race)"
            raise
        err = _connect_error(address, port, exc, timeout)
        span.facts.outcome = err.code
        span.fail(err)
        raise err from None
    journey.end(span)
    try:
        local = _endpoint(sock.getsockname())
        remote = _endpoint(sock.getpeername())
    except OSError as exc:
        # Connected, then reset before we could even ask for the peer's address (ENOTCONN):
        # the server accepted the connection and dropped it at once.
        sock.close()
        err = _connect_error(address, port, ConnectionResetError(exc.errno, exc.strerror),
                             timeout)
        span.facts.outcome = err.code
        span.fail(err)
        raise err from None
    f = span.facts
    f.outcome, f.local, f.remote, f.tcp_info = "connected", local, remote, tcp_info(sock)
    return Connection(sock, remote, local, address, fam, span)


async def connect(journey: Journey, parent: Span[TcpFacts], ipv6: list[str], ipv4: list[str],
                  port: int, timeout: float) -> Connection:
    """Happy Eyeballs over the candidates; raises the last ConnectError when all fail."""
    candidates = interleave(ipv6, ipv4)
    parent.facts.candidates, parent.facts.port = candidates, port
    parent.facts.happy_eyeballs = bool(ipv6 and ipv4)
    if not candidates:
        raise ConnectError("tcp.no_address", "there is no address to connect to")
    pending: set[asyncio.Task[Connection]] = set()
    errors: list[ConnectError] = []
    winner: Connection | None = None
    queue = list(candidates)
    try:
        while winner is None and (queue or pending):
            if queue:
                pending.add(asyncio.create_task(
                    _attempt(journey, parent, queue.pop(0), port, timeout)))
            done, pending = await asyncio.wait(
                pending, timeout=ATTEMPT_DELAY if queue else None,
                return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is None:
                    if winner is None:
                        winner = task.result()
                    else:
                        task.result().sock.close()
                elif isinstance(exc, ConnectError):
                    errors.append(exc)
                else:
                    raise exc
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, ConnectError):
                (await task).sock.close()  # finished just before the cancel landed
    if winner is None:
        raise errors[-1]
    f = parent.facts
    f.address, f.local, f.remote = winner.address, winner.local, winner.remote
    f.family, f.attempts = winner.family, len(candidates) - len(queue)
    return winner
