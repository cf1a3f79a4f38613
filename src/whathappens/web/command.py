"""``whathappens serve``: the live page on http://127.0.0.1:PORT.

Every trace option (DNS, TLS, HTTP, limits) applies to each journey the page runs. ``--demo``
starts the offline demo internet beside the page and aims journeys at it; ``--lab DIR`` aims
them at a running lab and merges its tiers. Binding anything but loopback needs ``--public``,
which turns the guards on: only public addresses, tighter time and size bounds.

Clients that misbehave: hypercorn closes a connection that has not completed a request head
within ``IDLE_TIMEOUT`` (its idle timer runs from the connection's start until a head is
complete, and again between requests), and answers 431 to a head over ``MAX_HEAD``; it has no
limit on connections, on the time a body takes or on how long a send may wait, so the
listening socket counts connections (``--max-connections``, ``--max-connections-per-client``)
and the kernel drops a connection whose data the client does not take (TCP_USER_TIMEOUT, with
a bounded send buffer); the app bounds the body and every send (web/app.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ipaddress
import os
import resource
import signal
import socket
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from whathappens.cli import EPILOG, add_trace_arguments, options_from

if TYPE_CHECKING:
    from whathappens.demo.internet import DemoInternet
    from whathappens.journey import Journey
    from whathappens.trace import Options
    from whathappens.web.app import ServeConfig

EXIT_SERVE_FAILED = 2

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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whathappens serve",
        description="The live page: type a URL, watch its journey arrive step by step.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; others need --public)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    p.add_argument("--public", action="store_true",
                   help="serve other people: refuse private, loopback, link-local, CGNAT, "
                        "multicast and metadata targets, bound each journey's time and bytes")
    p.add_argument("--per-client", type=int, default=2,
                   help="journeys one client address may run at once (default 2)")
    p.add_argument("--max-journeys", type=int, default=4,
                   help="journeys running at once in total (default 4)")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS,
                   help="open connections in total; more are answered 503 and closed "
                        f"(default {MAX_CONNECTIONS})")
    p.add_argument("--max-connections-per-client", type=int,
                   default=MAX_CONNECTIONS_PER_CLIENT,
                   help="open connections from one address (not applied with "
                        f"--client-header) (default {MAX_CONNECTIONS_PER_CLIENT})")
    p.add_argument("--send-timeout", type=float, default=None, metavar="SECONDS",
                   help="a client that takes none of what the page sends for this long is "
                        "dropped and its journey stopped (default 20)")
    p.add_argument("--demo", action="store_true",
                   help="start the offline demo internet too and trace through it")
    p.add_argument("--demo-state", default="demo", metavar="DIR",
                   help="where the demo internet keeps its CA and logs (default ./demo)")
    p.add_argument("--no-compare-tls", action="store_true",
                   help="skip the two extra handshakes (TLS 1.2 vs 1.3) after each journey")
    p.add_argument("--client-header", metavar="NAME",
                   help="behind a reverse proxy: count journeys per the address the proxy "
                        "appends to this header (e.g. X-Forwarded-For), not per connection")
    p.add_argument("--no-capture", action="store_true",
                   help="do not capture the TCP handshake's segments (done by default as root)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="also answer to this Host header (the page checks Host against "
                        "DNS rebinding)")
    add_trace_arguments(p, outputs=False)
    return p


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def allowed_hosts(bind: str, port: int, extra: list[str]) -> frozenset[str]:
    """Host header values the page answers to when bound to loopback."""
    names = {bind, "localhost", "127.0.0.1"} if ":" not in bind else {f"[{bind}]", "localhost"}
    hosts = {f"{n}:{port}" for n in names} | ({*names} if port == 80 else set())
    hosts |= {h.lower() if ":" in h else f"{h.lower()}:{port}" for h in extra}
    return frozenset(hosts)


def journey_options(args: argparse.Namespace) -> Options:
    opts = options_from(args)
    opts.compare_tls = False  # the page runs its own comparison, as a step of its stream
    # The page is where people look at the handshake: capture it whenever we may (root).
    opts.capture = opts.capture or (os.geteuid() == 0 and not args.no_capture)
    if args.public:
        from whathappens.guard import public_only

        opts.address_policy = public_only
        opts.dns.address_policy = public_only
        opts.max_time = min(opts.max_time, PUBLIC_MAX_TIME)
        opts.connect_timeout = min(opts.connect_timeout, 10.0)
        opts.limits.max_body_bytes = min(opts.limits.max_body_bytes, PUBLIC_MAX_BODY)
        opts.limits.max_decoded_bytes = min(opts.limits.max_decoded_bytes, PUBLIC_MAX_DECODED)
        opts.max_redirects = min(opts.max_redirects, PUBLIC_MAX_REDIRECTS)
    if args.lab:
        from whathappens.lab.client import apply

        apply(opts, Path(args.lab).resolve())
    return opts


def make_config(args: argparse.Namespace, demo: DemoInternet | None) -> ServeConfig:
    from whathappens.trace import run_journey
    from whathappens.web.app import ServeConfig
    from whathappens.web.gate import Gate

    async def run(url: str, journey: Journey) -> Journey:
        opts = journey_options(args)
        done = await on_own_thread(run_journey(url, opts, journey=journey))
        if demo is not None:
            from whathappens.demo.command import annotate

            annotate(done, demo, opts.dns.views)
        if args.lab:
            from whathappens.lab.client import merge_inside

            await asyncio.to_thread(merge_inside, done, Path(args.lab).resolve())
        return done

    compare = None if args.no_compare_tls else compare_tls_after(args)
    example = "https://www.example.com/"
    if demo is not None:
        from whathappens.demo.command import demo_url

        example = demo_url(demo, None)
    note = ("Public mode: only public addresses are fetched; each journey is bounded to "
            f"{PUBLIC_MAX_TIME:g} s and {PUBLIC_MAX_BODY // 2**20} MiB."
            if args.public else "Local mode: any address this machine can reach may be "
            "traced, including private ones.")
    if demo is not None:
        note += " Journeys go through the offline demo internet (its own DNS servers and CA)."
    if args.lab:
        note += " Journeys go to the lab; every tier's part is merged into the timeline."
    return ServeConfig(
        run=run, public=args.public,
        allowed_hosts=frozenset() if args.public else allowed_hosts(
            args.bind, args.port, args.allow_host),
        gate=Gate(per_client=max(args.per_client, 1), total=max(args.max_journeys, 1)),
        compare_tls=compare, example_url=example, mode_note=note,
        client_header=args.client_header, send_timeout=send_timeout(args))


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


def send_timeout(args: argparse.Namespace) -> float:
    from whathappens.web.app import SEND_TIMEOUT

    return SEND_TIMEOUT if args.send_timeout is None else max(args.send_timeout, 0.1)


def compare_tls_after(args: argparse.Namespace
                      ) -> Callable[[Journey], Awaitable[dict[str, Any] | None]]:
    """TLS 1.2 vs 1.3 on the address the journey used (real handshakes, median of 3 rounds)."""
    from whathappens.net.tls_compare import compare_after_journey

    async def compare(journey: Journey) -> dict[str, Any] | None:
        opts = journey_options(args)
        return await compare_after_journey(journey, opts.tls,
                                           timeout=min(opts.connect_timeout, 10.0),
                                           address_policy=opts.address_policy)

    return compare


def warm_up() -> None:
    """Load, once, what every journey needs, so that the first visitor's URL, DNS and TLS
    steps measure the network and not this process's start-up (imports, OpenSSL's init)."""
    import ssl

    from whathappens.net import http1, http2, tls_compare  # noqa: F401
    from whathappens.net.dns.views import prepare
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


class _Listener(socket.socket):
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


def _listen(bind: str, port: int) -> _Listener:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = _Listener(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(BACKLOG)
    return sock


def limit_connections(sock: _Listener, args: argparse.Namespace) -> None:
    """Apply --max-connections and --send-timeout to the listening socket; accepted
    connections inherit the socket options."""
    total = max(args.max_connections, 1)
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
    per_client = 0 if args.client_header else max(args.max_connections_per_client, 0)
    sock.limit = ConnectionLimit(total=total, per_client=per_client)
    # A client that takes none of our bytes for the send timeout is dropped by the kernel
    # too: the app gives up on its send then, but hypercorn's close waits for the unsent
    # bytes to leave, which they never would; TCP_USER_TIMEOUT also covers a zero window.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                        int(send_timeout(args) * 1000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


async def _serve(config: ServeConfig, sock: socket.socket) -> None:
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


def serve_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not _is_loopback(args.bind) and not args.public:
        print(f"whathappens serve: binding {args.bind} lets other machines use this page to "
              "fetch URLs from here; add --public to turn on the guards (only public "
              "addresses, bounded journeys)", file=sys.stderr)
        return EXIT_SERVE_FAILED
    if args.public and (args.demo or args.lab):
        print("whathappens serve: --public refuses private and loopback addresses, and the "
              "demo internet and the lab live on 127.0.0.0/8; use one or the other",
              file=sys.stderr)
        return EXIT_SERVE_FAILED
    try:
        sock = _listen(args.bind, args.port)
    except OSError as exc:
        print(f"whathappens serve: cannot listen on {args.bind}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_SERVE_FAILED
    args.port = sock.getsockname()[1]
    limit_connections(sock, args)
    with contextlib.ExitStack() as stack:
        demo = None
        if args.demo:
            from whathappens.demo.command import point_at
            from whathappens.demo.internet import DemoInternet, DemoInternetError

            try:
                try:
                    demo = DemoInternet.start(Path(args.demo_state), high_ports=None)
                except DemoInternetError as err:
                    if not err.address_in_use:
                        raise
                    # Another demo holds 53/443 (e.g. `whathappens demo --serve`): high ports.
                    demo = DemoInternet.start(Path(args.demo_state), high_ports=True)
            except DemoInternetError as err:
                print(f"whathappens serve: could not start the demo internet: {err}",
                      file=sys.stderr)
                return 11
            stack.enter_context(demo)
            point_at(demo, args)
        config = make_config(args, demo)
        warm_up()
        host = f"[{args.bind}]" if ":" in args.bind else args.bind
        mode = "public mode: guards on" if args.public else "local mode"
        print(f"whathappens serve: http://{host}:{args.port}/  ({mode}; Ctrl-C stops)",
              flush=True)
        asyncio.run(_serve(config, sock))
    return 0
