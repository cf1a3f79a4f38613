"""The live page's server for ``whathappens serve``: the listening socket, hypercorn, and the
bounds a stranger's connections and journeys meet. Its arguments, and the choice of what a
journey runs against (demo internet, lab, public mode), are ``whathappens.commands.serve``.

Clients that misbehave: hypercorn closes a connection that has not completed a request head
within ``IDLE_TIMEOUT`` (its idle timer runs from the connection's start until a head is
complete, and again between requests), and answers 431 to a head over ``MAX_HEAD``; it has no
limit on connections, on the time a body takes or on how long a send may wait, so the
listening socket counts connections (``--max-connections``, ``--max-connections-per-client``)
and the kernel drops a connection whose data the client does not take (TCP_USER_TIMEOUT, with
a bounded send buffer); the app bounds the body and every send (web/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import signal
import socket
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from whathappens.trace import Options
    from whathappens.web.app import ServeConfig

# --public bounds: a stranger's journey may not hold a worker long or read much.
PUBLIC_MAX_TIME = 30.0
PUBLIC_MAX_BODY = 5 * 1024 * 1024
PUBLIC_MAX_DECODED = 20 * 1024 * 1024
PUBLIC_MAX_REDIRECTS = 10

# Connections. hypercorn's idle timer closes a connection that has not sent a complete request
# head within this many seconds of opening (or of its previous response): the deadline for a
# head sent a byte at a time, and for a connection left open and idle.
IDLE_TIMEOUT = 5.0
# An unfinished request head may grow to this much before h11 refuses it (431); hypercorn
# reads 64 KiB at a time, so a head that arrives whole in one read may be up to that.
MAX_HEAD = 16 * 1024
# Cleartext HTTP/2 (prior knowledge or h2c upgrade) is accepted by hypercorn although no
# browser uses it over http://: each stream is a request handler with up to 32 KiB buffered,
# so a connection gets a few streams, not hypercorn's 100; a ninth is a connection error.
H2_MAX_STREAMS = 8
BACKLOG = 128               # connections the kernel completes before we accept them
# Open connections in total and per client address; more are answered 503 and closed as they
# are accepted. A browser opens at most 6 to a server over HTTP/1.1 (plus one per journey it
# is watching); the total keeps file descriptors for the journeys' own sockets.
MAX_CONNECTIONS = 256
MAX_CONNECTIONS_PER_CLIENT = 32
FD_RESERVE = 128            # descriptors kept for journeys, the demo internet, logs
ACCEPT_BATCH = 64           # connections refused in one go before the event loop has a turn
# The kernel's buffer for what a client has not yet taken (SO_SNDBUF; Linux doubles it for its
# bookkeeping): without it loopback autotuning let one connection hold 900 KB of unread
# events, up to tcp_wmem's 4 MB. 128 KiB still moves a journey's events at ~1 MB/s over a
# 100 ms round trip.
SEND_BUFFER = 128 * 1024


def bound_for_public(opts: Options,
                     policy: Callable[[str], str | None] | None = None) -> None:
    """Public mode: only public addresses (``policy``, by default ``guard.public_only``; an
    operator's --allow-address ranges make it ``guard.allowing``), and each journey bounded
    in time and bytes."""
    if policy is None:
        from whathappens.guard import public_only

        policy = public_only
    opts.address_policy = policy
    opts.dns.address_policy = policy
    opts.max_time = min(opts.max_time, PUBLIC_MAX_TIME)
    opts.connect_timeout = min(opts.connect_timeout, 10.0)
    opts.limits.max_body_bytes = min(opts.limits.max_body_bytes, PUBLIC_MAX_BODY)
    opts.limits.max_decoded_bytes = min(opts.limits.max_decoded_bytes, PUBLIC_MAX_DECODED)
    opts.max_redirects = min(opts.max_redirects, PUBLIC_MAX_REDIRECTS)


T = TypeVar("T")


async def on_own_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run one journey on a thread of its own, with its own event loop.

    Its budget's CPU clock (time.thread_time) then counts that journey's work alone, not the
    page's or other journeys' (they would all share one thread otherwise), and a journey that
    keeps its loop busy delays nobody else's events. Cancelling the caller (the client went
    away) cancels the journey's task, which then closes its connections on its own loop.
    """
    caller = asyncio.get_running_loop()
    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)  # the loop is not running yet: no other thread touches it
    outcome: asyncio.Future[T] = caller.create_future()

    def settle() -> None:
        if outcome.done():
            return
        if task.cancelled():
            outcome.cancel()
        elif (exc := task.exception()) is not None:
            outcome.set_exception(exc)
        else:
            outcome.set_result(task.result())

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(asyncio.wait([task]))  # the task's outcome is settle's
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            with contextlib.suppress(RuntimeError):  # the page's loop may be gone
                caller.call_soon_threadsafe(settle)

    threading.Thread(target=main, name="journey", daemon=True).start()
    try:
        return await asyncio.shield(outcome)
    except asyncio.CancelledError:
        with contextlib.suppress(RuntimeError):  # the journey's loop has already closed
            loop.call_soon_threadsafe(task.cancel)
        raise


def warm_up() -> None:
    """Load, once, what every journey needs, so that the first visitor's URL, DNS and TLS
    steps measure the network and not this process's start-up (imports, OpenSSL's init)."""
    import ssl

    from whathappens.net import http1, http2  # noqa: F401
    from whathappens.net.dns.views import prepare
    from whathappens.probes import tls_compare  # noqa: F401
    from whathappens.render import har, html  # noqa: F401
    from whathappens.url import parse_url, public_suffix_of

    parse_url("https://www.example.com/")
    public_suffix_of("www.example.com")
    prepare()
    ssl.create_default_context()


@dataclass
class ConnectionLimit:
    """Open connections, in total and per client address (``per_client`` 0: no per-address
    limit, as behind a reverse proxy where every connection comes from the proxy)."""

    total: int = MAX_CONNECTIONS
    per_client: int = MAX_CONNECTIONS_PER_CLIENT
    open: Counter[str] = field(default_factory=Counter)

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``, or say why it is refused."""
        if self.per_client and self.open[address] >= self.per_client:
            return f"{self.per_client} connections from your address are open already"
        if sum(self.open.values()) >= self.total:
            return f"the server has {self.total} connections open already; try again shortly"
        self.open[address] += 1
        return None

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class _Connection(socket.socket):
    """An accepted connection that gives its place back when closed (asyncio's transport
    closes the socket object it was given, once, when the connection is lost)."""

    release: Callable[[], None] | None = None

    def close(self) -> None:
        release, self.release = self.release, None
        if release is not None:
            release()
        super().close()


class Listener(socket.socket):
    """The listening socket, counting what it accepts. asyncio's server calls ``accept()``
    on the very socket object it is given (start_server(sock=...)) until it raises
    BlockingIOError: a refused connection is answered and closed here and never reaches
    hypercorn."""

    limit = ConnectionLimit()

    def accept(self) -> tuple[socket.socket, Any]:
        for _ in range(ACCEPT_BATCH):
            plain, addr = super().accept()  # BlockingIOError when none is waiting
            conn = _Connection(plain.family, plain.type, plain.proto, fileno=plain.detach())
            host = str(addr[0])
            refused = self.limit.admit(host)
            if refused is None:
                conn.release = functools.partial(self.limit.release, host)
                return conn, addr
            _shed(conn, refused)
        raise BlockingIOError  # asyncio stops for this turn and comes back when it is readable


def _shed(conn: socket.socket, why: str) -> None:
    """Say why in one packet and close, without waiting for anything from the client."""
    body = f"{why}\n".encode()
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; "
                  b"charset=utf-8\r\nRetry-After: 5\r\nConnection: close\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        conn.recv(MAX_HEAD)  # what has arrived: closing with it unread would reset instead
    conn.close()


def listen(bind: str, port: int) -> Listener:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = Listener(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(BACKLOG)
    return sock


def limit_connections(sock: Listener, *, total: int, per_client: int,
                      send_timeout: float) -> None:
    """Apply --max-connections, --max-connections-per-client (0: none) and --send-timeout
    (seconds) to the listening socket; accepted connections inherit the socket options."""
    total = max(total, 1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < total + FD_RESERVE:
        # Each connection is a descriptor: ask for what the limit needs (the hard limit
        # allows it unless an administrator lowered it), else serve fewer connections.
        want = total + FD_RESERVE if hard == resource.RLIM_INFINITY else min(
            total + FD_RESERVE, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        total = max(min(total, soft - FD_RESERVE), 1)
    sock.limit = ConnectionLimit(total=total, per_client=max(per_client, 0))
    # A client that takes none of our bytes for the send timeout is dropped by the kernel
    # too: the app gives up on its send then, but hypercorn's close waits for the unsent
    # bytes to leave, which they never would; TCP_USER_TIMEOUT also covers a zero window.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                        int(send_timeout * 1000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


async def serve_page(config: ServeConfig, sock: socket.socket) -> None:
    """Serve the page on the listening socket until SIGINT or SIGTERM."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config, Sockets

    from whathappens.web.app import WebApp

    class OurSocket(Config):
        """hypercorn serves the listening socket we made (its fd:// bind would wrap the
        descriptor in a plain socket, without our connection count)."""

        def create_sockets(self) -> Sockets:
            return Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])

    hc = OurSocket()
    hc.accesslog = None
    hc.loglevel = "WARNING"
    hc.graceful_timeout = 1.0
    hc.keep_alive_timeout = IDLE_TIMEOUT
    hc.h11_max_incomplete_size = MAX_HEAD
    hc.h2_max_concurrent_streams = H2_MAX_STREAMS
    hc.backlog = BACKLOG
    # hypercorn's read_timeout stays off: it bounds every read, and a client watching its
    # journey sends nothing at all until the stream ends (the body has its own deadline).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.set_exception_handler(_quiet_dropped_clients)
    await serve(WebApp(config), hc, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def _quiet_dropped_clients(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A connection the kernel gave up on (TCP_USER_TIMEOUT: ETIMEDOUT) or the client reset
    ends hypercorn's connection task with that error, which asyncio would log with a traceback
    for every such client: it is the limit working, not a fault of ours."""
    exc = context.get("exception")
    if isinstance(exc, TimeoutError | ConnectionError) and "client_connected_cb" in str(
            context.get("message", "")):
        return
    loop.default_exception_handler(context)
