"""Misbehaving name servers on loopback: real UDP and TCP sockets, one port for all of them.

A ``DnsWorld`` is a small internet of name servers. Each server has an address of its own in
127.0.0.0/8 (Linux routes the whole block to the loopback interface) and they all listen on
one port, the way every name server of the real internet listens on 53: the walk is given
that port with ``--dns-port`` and the root's address with ``--root-hints``.

A server is a *policy*: a function from the query (parsed) and the transport ("udp" or
"tcp") to what the server does:

* a ``dns.message.Message``, or ``bytes`` (sent as they are, however broken), as the reply;
  over TCP either gets its two-byte length prefix (RFC 1035 §4.2.2);
* ``None``: say nothing (the client's timer runs out);
* ``Later(seconds, reply)``: the reply, after a while;
* ``Raw(bytes)``: over TCP, bytes without a length prefix (a prefix that lies, a stream cut
  short); ``CLOSE``: over TCP, close the connection without a word;
* ``Several(replies)``: each of them, in order.

One thread serves every socket of a world (a selector and a timer heap), so a slow server
does not hold the others up.

    with DnsWorld() as world:
        root = world.add("a.root.test.", lambda q, t: nxdomain(q))
        hints = world.root_hints(tmp_path)
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass(frozen=True)
class Later:
    seconds: float
    reply: Reply


@dataclass(frozen=True)
class Raw:
    data: bytes


@dataclass(frozen=True)
class Several:
    """Several replies to one query, in this order (a stray one before the answer, a
    flood)."""
    replies: tuple[Reply, ...]


class _Close:
    pass


CLOSE = _Close()

Reply = dns.message.Message | bytes | Later | Raw | Several | _Close | None
Policy = Callable[[dns.message.Message, str], Reply]


@dataclass
class Server:
    name: str                   # the name server's own name ("ns1.example.test.")
    address: str
    policy: Policy
    tcp: bool                   # whether anything listens on TCP
    queries: list[str]          # "udp www.example.test. A", in arrival order


class DnsWorld:
    """Name servers on distinct 127.x.y.z addresses sharing one port; see the module doc."""

    def __init__(self) -> None:
        # A /24 of the loopback block picked at random: test processes running side by side
        # are unlikely to meet on one.
        self._base = f"127.{random.randint(64, 250)}.{random.randint(0, 255)}."
        self._next = itertools.count(1)
        self.servers: dict[str, Server] = {}
        self.errors: list[str] = []     # exceptions of policies (bugs of a test)
        self.port = 0
        self._socks: list[socket.socket] = []
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    # ------------------------------------------------------------------ building
    def add(self, name: str, policy: Policy, *, tcp: bool = True) -> str:
        """A server called ``name``; returns its address. Add every server before start."""
        address = f"{self._base}{next(self._next)}"
        self.servers[address] = Server(name, address, policy, tcp, [])
        return address

    def root_hints(self, directory: Path, root: str | None = None) -> Path:
        """A hints file naming one root server (the first added, unless ``root``)."""
        address = root or next(iter(self.servers))
        server = self.servers[address]
        path = directory / "root.hints"
        path.write_text(f".  3600000  NS  {server.name}\n"
                        f"{server.name}  3600000  A  {address}\n")
        return path

    def queries(self, address: str | None = None) -> list[str]:
        if address is not None:
            return list(self.servers[address].queries)
        return [q for s in self.servers.values() for q in s.queries]

    # ------------------------------------------------------------------ running
    def start(self) -> DnsWorld:
        for _ in range(20):
            try:
                self._bind_all()
                break
            except OSError:
                self._close_socks()
        else:
            raise OSError("no port free on every address of the world")
        self._thread.start()
        return self

    def _bind_all(self) -> None:
        # The first address takes a free port; the others must get the same one (the walk
        # has one --dns-port). If one of them cannot, start again with another port.
        port = 0
        for address, server in self.servers.items():
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socks.append(udp)
            udp.bind((address, port))
            port = udp.getsockname()[1]
            udp.setblocking(False)
            self._sel.register(udp, selectors.EVENT_READ, ("udp", server))
            if server.tcp:
                lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._socks.append(lst)
                lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lst.bind((address, port))
                lst.listen(16)
                lst.setblocking(False)
                self._sel.register(lst, selectors.EVENT_READ, ("listen", server))
        self.port = port

    def _close_socks(self) -> None:
        for s in self._socks:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            s.close()
        self._socks.clear()

    def __enter__(self) -> DnsWorld:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(2)
        self._close_socks()
        self._sel.close()

    def _later(self, seconds: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._seq), fn))

    def _loop(self) -> None:
        buffers: dict[socket.socket, bytearray] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                with contextlib.suppress(OSError):
                    fn()
            wait = 0.05 if not self._timers else max(0.0, min(0.05, self._timers[0][0] - now))
            for key, _ in self._sel.select(wait):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                kind, server = key.data
                try:
                    if kind == "udp":
                        self._udp(sock, server)
                    elif kind == "listen":
                        conn, _ = sock.accept()
                        conn.setblocking(False)
                        buffers[conn] = bytearray()
                        self._socks.append(conn)
                        self._sel.register(conn, selectors.EVENT_READ, ("conn", server))
                    else:
                        self._tcp(sock, server, buffers)
                except OSError:
                    pass  # the client went away: expected
                except Exception as exc:  # a policy's bug: kept for the test to fail on
                    self.errors.append(f"the policy of {server.name} failed: {exc!r}")
                    print(f"DnsWorld: {self.errors[-1]}", file=sys.stderr)

    def _udp(self, sock: socket.socket, server: Server) -> None:
        wire, peer = sock.recvfrom(4096)
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # not DNS: dropped, as real servers do
            return
        server.queries.append(f"udp {_question(query)}")

        def send(reply: Reply) -> None:
            if isinstance(reply, Later):
                self._later(reply.seconds, lambda: send(reply.reply))
            elif isinstance(reply, Several):
                for one in reply.replies:
                    with contextlib.suppress(BlockingIOError):
                        send(one)
            elif isinstance(reply, Raw):
                sock.sendto(reply.data, peer)
            elif isinstance(reply, bytes | dns.message.Message):
                sock.sendto(_wire(reply), peer)

        send(server.policy(query, "udp"))

    def _tcp(self, conn: socket.socket, server: Server,
             buffers: dict[socket.socket, bytearray]) -> None:
        data = conn.recv(65536)
        buf = buffers[conn]
        if not data:
            self._drop(conn, buffers)
            return
        buf += data
        while len(buf) >= 2:
            (length,) = struct.unpack("!H", buf[:2])
            if len(buf) < 2 + length:
                return
            wire = bytes(buf[2:2 + length])
            del buf[:2 + length]
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                self._drop(conn, buffers)
                return
            server.queries.append(f"tcp {_question(query)}")

            def send(reply: Reply, conn: socket.socket = conn) -> None:
                if isinstance(reply, Later):
                    self._later(reply.seconds, lambda: send(reply.reply))
                elif isinstance(reply, Several):
                    for one in reply.replies:
                        send(one)
                elif isinstance(reply, _Close):
                    self._drop(conn, buffers)
                elif isinstance(reply, Raw):
                    _send_all(conn, reply.data)
                elif isinstance(reply, bytes | dns.message.Message):
                    out = _wire(reply)
                    _send_all(conn, struct.pack("!H", len(out)) + out)

            send(server.policy(query, "tcp"))

    def _drop(self, conn: socket.socket, buffers: dict[socket.socket, bytearray]) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)
        buffers.pop(conn, None)
        conn.close()


def _send_all(conn: socket.socket, data: bytes) -> None:
    conn.setblocking(True)
    conn.settimeout(1)
    try:
        conn.sendall(data)
    finally:
        conn.setblocking(False)


def _wire(reply: dns.message.Message | bytes) -> bytes:
    if isinstance(reply, bytes):
        return reply
    return reply.to_wire(max_size=65535)


def _question(query: dns.message.Message) -> str:
    if not query.question:
        return "(no question)"
    q = query.question[0]
    return f"{q.name} {dns.rdatatype.to_text(q.rdtype)}"


# ------------------------------------------------------------------ message builders
def response(query: dns.message.Message, *, rcode: int = dns.rcode.NOERROR, aa: bool = True,
             ra: bool = False, answer: Iterable[str] = (), authority: Iterable[str] = (),
             additional: Iterable[str] = (), tc: bool = False) -> dns.message.Message:
    """A reply to ``query``; records in presentation form, "name ttl type rdata"."""
    r = dns.message.make_response(query)
    r.set_rcode(dns.rcode.Rcode(rcode))
    r.flags &= ~dns.flags.RA
    if aa:
        r.flags |= dns.flags.AA
    if ra:
        r.flags |= dns.flags.RA
    if tc:
        r.flags |= dns.flags.TC
    for section, lines in ((r.answer, answer), (r.authority, authority),
                           (r.additional, additional)):
        # Records of one owner and type go in one rrset, made in one call (thousands of
        # records one by one would make a slow server of every test).
        groups: dict[tuple[str, str], tuple[int, list[str]]] = {}
        for line in lines:
            name, ttl, rtype, rdata = line.split(None, 3)
            groups.setdefault((name.lower(), rtype.upper()), (int(ttl), []))[1].append(rdata)
        for (name, rtype), (ttl, rdatas) in groups.items():
            section.append(dns.rrset.from_text_list(name, ttl, "IN", rtype, rdatas))
    return r


def qname(query: dns.message.Message) -> str:
    return str(query.question[0].name).lower()


def qtype(query: dns.message.Message) -> str:
    return dns.rdatatype.to_text(query.question[0].rdtype)


def soa(zone: str) -> str:
    inside = "" if zone == "." else zone
    return f"{zone} 300 SOA ns1.{inside or 'root.'} hostmaster.{inside} 1 7200 900 1209600 60"


def nxdomain(query: dns.message.Message, zone: str = "test.") -> dns.message.Message:
    return response(query, rcode=dns.rcode.NXDOMAIN, authority=[soa(zone)])


def nodata(query: dns.message.Message, zone: str = "test.") -> dns.message.Message:
    return response(query, authority=[soa(zone)])


def referral(query: dns.message.Message, zone: str, ns: Iterable[str],
             glue: dict[str, str] | None = None) -> dns.message.Message:
    """A delegation of ``zone`` to the names ``ns`` (RFC 1034 §4.3.2 step 3b), not
    authoritative, with A records for the names in ``glue``."""
    names = list(ns)
    return response(query, aa=False,
                    authority=[f"{zone} 172800 NS {n}" for n in names],
                    additional=[f"{n} 172800 A {a}" for n, a in (glue or {}).items()])


def address_answer(query: dns.message.Message, address: str = "127.0.0.1"
                   ) -> dns.message.Message:
    """The A record asked for; an empty (NODATA) answer to any other type."""
    if qtype(query) != "A":
        return nodata(query)
    return response(query, answer=[f"{qname(query)} 300 A {address}"])


def header(ident: int, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def question_wire(query: dns.message.Message) -> bytes:
    """The question of ``query`` in wire form (name, type, class)."""
    q = query.question[0]
    return q.name.to_wire() + struct.pack("!HH", q.rdtype, q.rdclass)


def name_wire(name: str) -> bytes:
    return dns.name.from_text(name).to_wire()
