"""The demo's DNS servers bound what a client can make them hold: the recursive resolver as
much as the authoritative servers, since both answer through one transport
(demo/dns_transport.py).

Real servers on 127.0.0.0/8, real sockets: an authoritative server for a root zone, and the
recursive resolver walking from it, both started here with small limits so the bounds show in
a fraction of a second; and the demo internet's own resolver with its real limits.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import dns.zone
import pytest

from misbehaving import free_port
from whathappens.demo.authoritative import AuthoritativeServer
from whathappens.demo.authority import Authority
from whathappens.demo.dns_transport import DnsServerLimits, DnsServerTransport
from whathappens.demo.internet import DemoInternet
from whathappens.demo.recursive import start_resolver

AUTHORITATIVE = "127.0.77.1"
RESOLVER = "127.0.77.53"
TXT = " ".join(f'"{"x" * 250}-{i}"' for i in range(4))  # a 1 KB answer
ROOT_ZONE = f"""
$ORIGIN .
$TTL 300
@                 IN SOA a.root. admin.root. 1 7200 3600 1209600 60
@                 IN NS  a.root.
a.root.           IN A   {AUTHORITATIVE}
www.example.      IN A   192.0.2.1
big.example.      IN TXT {TXT}
"""
LIMITS = DnsServerLimits(max_udp_query=512, max_tcp_query=512, max_tcp_connections=4,
                         tcp_idle_timeout=0.5)


@dataclass
class Running:
    address: str
    port: int
    transport: DnsServerTransport


class Loop:
    """An event loop on a thread of its own, where the servers run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def start_both(loop: Loop, hints: Path) -> tuple[AuthoritativeServer, DnsServerTransport, int]:
    zone = dns.zone.from_text(ROOT_ZONE, relativize=False)
    for _ in range(8):
        port = free_port(AUTHORITATIVE)
        auth = AuthoritativeServer(Authority([zone]), limits=LIMITS)
        try:
            loop.run(auth.start(AUTHORITATIVE, port))
            hints.write_text(f".  3600000  NS  a.root.\na.root.  3600000  A  {AUTHORITATIVE}\n")
            resolver = loop.run(start_resolver(RESOLVER, port, str(hints), upstream_port=port,
                                               limits=LIMITS))
        except OSError:  # someone took the port in between: another one
            loop.run(auth.aclose())
            continue
        return auth, resolver, port
    raise AssertionError("no free port on 127.0.77.0/24")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    loop = Loop()
    auth, resolver, port = start_both(loop, tmp_path_factory.mktemp("dns") / "root.hints")
    try:
        yield {"authoritative": Running(AUTHORITATIVE, port, auth.transport),
               "resolver": Running(RESOLVER, port, resolver)}
    finally:
        loop.run(resolver.aclose())
        loop.run(auth.aclose())
        loop.stop()


@pytest.fixture(params=["authoritative", "resolver"])
def server(request: pytest.FixtureRequest, servers: dict[str, Running]) -> Running:
    running = servers[request.param]
    wait_for(lambda: running.transport.tcp_connections == 0, 5)  # the last test's are gone
    return running


def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition`` held; fails after ``seconds``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - start


def query(name: str = "www.example.", rdtype: str = "A") -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    q.flags |= dns.flags.RD  # the resolver answers stub queries; the authority ignores RD
    wire: bytes = q.to_wire()
    return wire


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def connect(s: Running) -> socket.socket:
    sock = socket.create_connection((s.address, s.port), timeout=5)
    return sock


def ask_tcp(sock: socket.socket, name: str = "www.example.") -> dns.message.Message:
    sock.sendall(framed(query(name)))
    (length,) = struct.unpack("!H", read_exactly(sock, 2))
    return dns.message.from_wire(read_exactly(sock, length))


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "closed by the server"
        data += chunk
    return data


def closed_after(sock: socket.socket, seconds: float = 5) -> float:
    """Seconds until the server closed ``sock`` (EOF or reset), reading and dropping data."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"still open after {seconds} s")
    return time.monotonic() - start


def assert_answers(s: Running) -> None:
    with connect(s) as sock:
        assert ask_tcp(sock).answer[0].to_text().endswith("192.0.2.1")


def test_both_answer_over_udp_and_tcp(server: Running) -> None:
    assert_answers(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(query(), (server.address, server.port))
        assert dns.message.from_wire(udp.recv(4096)).answer


def test_connections_beyond_the_cap_are_closed_and_the_others_still_answer(
        server: Running) -> None:
    held = [connect(server) for _ in range(LIMITS.max_tcp_connections)]
    try:
        wait_for(lambda: server.transport.tcp_connections == len(held), 5)
        with connect(server) as extra:
            assert closed_after(extra, 2) < LIMITS.tcp_idle_timeout  # at once, not when idle
        assert ask_tcp(held[0]).answer
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: server.transport.tcp_connections == 0, 5)
    assert_answers(server)


@pytest.mark.parametrize("sends", [
    [],                                             # connects and says nothing
    [b"\x00"],                                      # half a length
    [framed(query())[:-4]],                         # a query that never completes
    [framed(query())[:3]] + [b"\x00"] * 20,         # a query a byte at a time, forever
], ids=["silent", "half-length", "incomplete", "trickle"])
def test_an_idle_or_slow_client_is_closed_after_the_idle_timeout(
        server: Running, sends: list[bytes]) -> None:
    with connect(server) as sock:
        start = time.monotonic()
        for chunk in sends:
            try:
                sock.sendall(chunk)
            except OSError:  # closed already (a reset, or a broken pipe)
                break
            time.sleep(0.1)
        took = time.monotonic() - start + closed_after(sock, 5)
    assert LIMITS.tcp_idle_timeout * 0.9 < took < LIMITS.tcp_idle_timeout + 2
    assert_answers(server)


def test_an_answered_connection_is_closed_once_idle(server: Running) -> None:
    with connect(server) as sock:
        assert ask_tcp(sock).answer
        assert ask_tcp(sock).answer  # several queries over one connection (RFC 7766)
        took = closed_after(sock, 5)
    assert LIMITS.tcp_idle_timeout * 0.9 < took < LIMITS.tcp_idle_timeout + 2


def test_an_oversized_tcp_query_closes_before_it_is_read(server: Running) -> None:
    with connect(server) as sock:
        sock.sendall(struct.pack("!H", LIMITS.max_tcp_query + 1) + b"\x00" * 100)
        assert closed_after(sock, 2) < LIMITS.tcp_idle_timeout
    with connect(server) as sock:  # the largest allowed one is read (and is garbage: dropped)
        sock.sendall(struct.pack("!H", LIMITS.max_tcp_query) + b"\x00" * LIMITS.max_tcp_query)
        assert ask_tcp(sock).answer


def test_an_oversized_udp_query_gets_no_answer(server: Running) -> None:
    padded = dns.message.make_query("www.example.", "A", use_edns=0, payload=1232,
                                    pad=LIMITS.max_udp_query + 100)
    padded.flags |= dns.flags.RD
    big = padded.to_wire()
    assert len(big) > LIMITS.max_udp_query
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(1)
        udp.sendto(big, (server.address, server.port))
        with pytest.raises(TimeoutError):
            udp.recv(4096)
        udp.sendto(query(), (server.address, server.port))
        assert dns.message.from_wire(udp.recv(4096)).answer


def test_a_client_that_sends_queries_and_never_reads_is_dropped(server: Running) -> None:
    """An endless stream of queries for a 1 KB answer, none of the answers read: once the
    answers it does not take have filled the bounded buffers, the server waits the idle
    timeout for it and then hangs up, instead of holding the connection (and the answers)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.connect((server.address, server.port))
    wait_for(lambda: server.transport.tcp_connections == 1, 5)
    sock.setblocking(False)
    one = framed(query("big.example."))
    stream = one * 256
    sent = 0
    deadline = time.monotonic() + 20
    with sock:
        while server.transport.tcp_connections and time.monotonic() < deadline:
            try:
                sent += sock.send(stream)
            except BlockingIOError:
                time.sleep(0.05)  # the server stopped reading: it is waiting for us
            except (BrokenPipeError, ConnectionResetError):
                break
        assert server.transport.tcp_connections == 0, "the connection is still held"
    assert sent // len(one) > 100  # it did answer for a while before giving up
    assert_answers(server)


def test_the_demo_internets_resolver_is_bounded_too(demo_internet: DemoInternet) -> None:
    """The real demo resolver, started by the demo internet with its real limits."""
    assert demo_internet.resolver
    address = (demo_internet.resolver, demo_internet.resolver_port)
    limits = DnsServerLimits()
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(struct.pack("!H", limits.max_tcp_query + 1))
        assert closed_after(sock, 2) < 1.0  # at once, without waiting for the 16 KiB
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(framed(query("www.example.com.")))
        (length,) = struct.unpack("!H", read_exactly(sock, 2))
        answer = dns.message.from_wire(read_exactly(sock, length)).answer
        assert dns.rdatatype.A in {rrset.rdtype for rrset in answer}
