"""``whathappens serve`` while clients misbehave (issue 8, item 5): a real server, real sockets
from this test doing the abuse from other loopback addresses (127.0.0.2…, so that each abuser
is its own client to the per-address limits), a well-behaved client on 127.0.0.1 running a
journey through the demo internet meanwhile. The server's memory (VmRSS), CPU (utime+stime)
and descriptors are read from /proc before, during and after.

The bounds are generous on purpose (a loaded 2-core CI machine): what is asserted is
behaviour — connections closed by the server, the gate freed, the good journey complete — and
that memory and CPU do not grow with the abuse, not how fast any of it is.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from misbehaving import RawServer, read_request_head, wait_until_closed
from serve_helpers import (
    Served,
    Stream,
    cpu_seconds,
    example_url,
    journey,
    open_fds,
    raw_request,
    rss_mib,
    serve,
    stderr_so_far,
)
from whathappens.web.app import BODY_TIMEOUT, MAX_REQUEST_BODY
from whathappens.web.command import IDLE_TIMEOUT

RSS_GROWTH_MIB = 50     # the server's memory may grow this much under any of the abuse below
GOOD_JOURNEY_S = 30     # a well-behaved journey through the demo internet completes within
JSON = "Content-Type: application/json\r\n"


def abuser_addresses(count: int, first: int = 2) -> list[str]:
    return [f"127.0.0.{n}" for n in range(first, first + count)]


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[Served]:
    """``serve --demo`` (its own demo internet), warmed up by one journey."""
    with serve("--demo", "--demo-state", str(tmp_path / "demo"), *args, cwd=tmp_path) as s:
        assert_good_journey(s)
        yield s
        log = stderr_so_far(s)
        assert "Traceback" not in log, log[-3000:]
        assert "Error in ASGI" not in log, log[-3000:]


def assert_good_journey(served: Served) -> Stream:
    t0 = time.monotonic()
    stream = journey(served, example_url(served), timeout=GOOD_JOURNEY_S)
    assert stream.status == 200, stream.events
    assert stream.kinds()[-2:] == ["report", "end"], stream.kinds()
    assert stream.one("report")["exit_code"] == 0
    assert time.monotonic() - t0 < GOOD_JOURNEY_S
    return stream


def connect_from(served: Served, source: str, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect((served.host, served.port))
    return sock


@dataclass
class Conn:
    """One abusive connection: what the server sent it, and whether (when) it closed it."""

    kind: str
    sock: socket.socket
    received: bytes = b""
    closed_at: float | None = None
    drip: bytes = b""   # still to send, a byte per round

    def poll(self, now: float) -> None:
        """Read what is there without waiting; note a close (FIN or reset)."""
        if self.closed_at is not None:
            return
        try:
            while True:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
                if not data:
                    self.closed_at = now
                    return
                self.received += data
        except BlockingIOError:
            return
        except OSError:
            self.closed_at = now

    def send_next(self, now: float) -> None:
        if self.closed_at is not None or not self.drip:
            return
        try:
            self.sock.send(self.drip[:1], socket.MSG_DONTWAIT)
            self.drip = self.drip[1:]
        except BlockingIOError:
            pass
        except OSError:
            self.closed_at = now

    @property
    def status(self) -> int | None:
        found = re.match(rb"HTTP/1\.1 (\d{3}) ", self.received)
        return int(found.group(1)) if found else None


@dataclass
class Abuse:
    """Abusive connections driven by one thread: a byte per round to each dripping one,
    every connection polled for a close; the server's RSS sampled each round."""

    served: Served
    conns: list[Conn] = field(default_factory=list)
    interval: float = 0.25
    peak_rss: float = 0.0
    peak_fds: int = 0
    start: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, kind: str, sock: socket.socket, first: bytes = b"", drip: bytes = b"") -> None:
        if first:
            sock.sendall(first)
        sock.setblocking(False)  # with a timeout set, even MSG_DONTWAIT waits for it first
        self.conns.append(Conn(kind, sock, drip=drip))

    def run(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self.start
            for conn in list(self.conns):
                conn.send_next(now)
                conn.poll(now)
            self.peak_rss = max(self.peak_rss, rss_mib(self.served))
            self.peak_fds = max(self.peak_fds, open_fds(self.served))
            self._stop.wait(self.interval)

    def open(self, kind: str | None = None) -> list[Conn]:
        return [c for c in self.conns if c.closed_at is None and kind in (None, c.kind)]

    def wait_all_closed(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while self.open() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for conn in self.conns:
            conn.sock.close()


@dataclass
class Usage:
    rss: float
    cpu: float
    fds: int

    @classmethod
    def of(cls, served: Served) -> Usage:
        return cls(rss_mib(served), cpu_seconds(served), open_fds(served))


def wait_for_fds(served: Served, at_most: int, limit: float) -> int:
    deadline = time.monotonic() + limit
    while (fds := open_fds(served)) > at_most and time.monotonic() < deadline:
        time.sleep(0.2)
    return fds


# ------------------------------------------------------------------ idle and slow
def test_idle_and_slow_clients_are_closed_at_their_deadlines(tmp_path: Path) -> None:
    """Idle connections, request heads sent a byte at a time (slowloris), bodies sent a byte
    at a time, chunked bodies that never end, a head with a Content-Length and no body: all
    closed by the server — heads by hypercorn's idle timer, bodies by ours, with a 408 —
    while they cost next to no CPU and the good client's journey completes."""
    with serving(tmp_path) as s:
        before = Usage.of(s)
        abuse = Abuse(s)
        # Ten clients, 20 connections each (under the per-address limit of 32): 200 in all.
        for source in abuser_addresses(10):
            for _ in range(10):
                abuse.add("idle", connect_from(s, source))
        abuse.run()
        time.sleep(1.0)
        cpu_idle_from = cpu_seconds(s)
        time.sleep(2.0)
        cpu_idle = cpu_seconds(s) - cpu_idle_from

        endless_head = raw_request(s, b"", headers="X-Pad: y\r\n" * 2000)[:-2]
        for source in abuser_addresses(10):
            for _ in range(5):
                abuse.add("slow head", connect_from(s, source), drip=endless_head)
            for _ in range(3):
                abuse.add("slow body", connect_from(s, source), drip=b" " * 200,
                          first=raw_request(s, b"", headers=JSON + "Content-Length: 200\r\n"))
            abuse.add("endless chunks", connect_from(s, source), drip=b"1\r\n \r\n" * 1000,
                      first=raw_request(s, b"", headers=JSON + "Transfer-Encoding: chunked\r\n"))
            abuse.add("no body", connect_from(s, source),
                      first=raw_request(s, b"", headers=JSON + "Content-Length: 50\r\n"))
        time.sleep(1.0)
        cpu_drip_from = cpu_seconds(s)
        time.sleep(2.0)
        cpu_drip = cpu_seconds(s) - cpu_drip_from
        during = Usage.of(s)
        assert_good_journey(s)

        abuse.wait_all_closed(IDLE_TIMEOUT + BODY_TIMEOUT + 10)
        abuse.stop()
        after = Usage.of(s)
        closed: dict[str, float] = {}
        for conn in abuse.conns:
            closed[conn.kind] = max(closed.get(conn.kind, 0.0), conn.closed_at or 0.0)
        print(f"\nidle+slow: {len(abuse.conns)} connections; RSS {before.rss:.1f} → "
              f"{during.rss:.1f} (peak {abuse.peak_rss:.1f}) → {after.rss:.1f} MiB; CPU "
              f"{cpu_idle:.2f} s in 2 s of 100 idle, {cpu_drip:.2f} s in 2 s of 200 "
              f"(100 dripping); fds {before.fds} → peak {abuse.peak_fds} → {after.fds}; "
              f"last closed at (s since the abuse began) {closed}")

        still_open = [c.kind for c in abuse.open()]
        assert not still_open, f"{len(still_open)} left open by the server: {still_open[:5]}"
        for conn in abuse.conns:
            if conn.kind in ("slow body", "endless chunks", "no body"):
                assert conn.status == 408, (conn.kind, conn.received[:200])
                assert b"did not arrive" in conn.received
            else:  # an unfinished head gets no answer; the connection is just closed
                assert conn.received == b"", (conn.kind, conn.received[:200])
        assert abuse.peak_fds >= before.fds + 150  # the abuse did reach the server
        assert cpu_idle < 0.3, cpu_idle
        assert cpu_drip < 1.0, cpu_drip
        assert abuse.peak_rss - before.rss < RSS_GROWTH_MIB
        assert wait_for_fds(s, before.fds + 2, 10) <= before.fds + 2


# ------------------------------------------------------------------ request bodies
BAD_BODIES: list[tuple[str, bytes, str, int]] = [
    # name, body, extra headers (Content-Length is added when absent), expected status
    ("not json", b"{not json", JSON, 400),
    ("nested 8000 deep", b"[" * 8000, JSON, 400),
    ("objects nested 1000 deep", b'{"url":' * 1000, JSON, 400),
    ("url a number", b'{"url": 5}', JSON, 400),
    ("url null", b'{"url": null}', JSON, 400),
    ("url a list", b'{"url": ["https://example.com/"]}', JSON, 400),
    ("a list", b'["https://example.com/"]', JSON, 400),
    ("a 4000-digit number", b"1" * 4000, JSON, 400),
    ("invalid UTF-8", b'{"url": "\xff\xfe"}', JSON, 400),
    ("empty", b"", JSON, 400),
    ("not JSON at all", b"url=https://example.com/", "Content-Type: text/plain\r\n", 415),
    ("Content-Length 10^12, nothing sent", b"", JSON + "Content-Length: 1000000000000\r\n",
     413),
    ("more than the cap", b'{"url": "' + b"a" * 9000 + b'"}', JSON, 413),
    ("chunked, over the cap", (b"400\r\n" + b" " * 1024 + b"\r\n") * 20,
     JSON + "Transfer-Encoding: chunked\r\n", 413),
    # h11 refuses an unfinished head over 16 KiB; hypercorn reads 64 KiB at a time.
    ("a 100 KiB head", b"", "X-Pad: " + "y" * 100_000 + "\r\n", 431),
]


def send_and_read(served: Served, body: bytes, headers: str) -> tuple[int | None, bytes, bool]:
    """Status, what came back, and whether the server closed the connection after it (the
    request asks for that, the server must do it even when it does not read the body)."""
    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        headers += f"Content-Length: {len(body)}\r\n"
    headers += "Connection: close\r\n"
    with connect_from(served, "127.0.0.20") as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before all of it
            sock.sendall(raw_request(served, body, headers=headers))
        sock.settimeout(5)
        received, closed = b"", False
        with contextlib.suppress(TimeoutError):
            try:
                while data := sock.recv(65536):
                    received += data
                closed = True
            except ConnectionResetError:
                closed = True
    found = re.match(rb"HTTP/1\.1 (\d{3}) ", received)
    return (int(found.group(1)) if found else None), received, closed


def test_oversized_and_malformed_bodies_are_refused(tmp_path: Path) -> None:
    with serving(tmp_path) as s:
        before = Usage.of(s)
        for name, body, headers, expected in BAD_BODIES:
            status, received, closed = send_and_read(s, body, headers)
            assert status == expected, (name, received[:300])
            if expected == 413:
                assert closed, f"{name}: the connection stayed open after the 413"
                assert str(MAX_REQUEST_BODY).encode() in received, name

        single = rss_mib(s)
        # Forty connections at once, each pouring a body the head says is 1 GB (or a chunked
        # one without end): each is refused at once and its connection closed; what the server
        # read of it is bounded by its buffers (asyncio reads up to 384 KiB ahead of
        # hypercorn), not by the body.
        pouring: list[tuple[socket.socket, list[int]]] = []
        for source in abuser_addresses(4, first=30):
            for i in range(10):
                sock = connect_from(s, source)
                head = (JSON + "Content-Length: 1000000000\r\n" if i < 7
                        else JSON + "Transfer-Encoding: chunked\r\n")
                sock.sendall(raw_request(s, b"", headers=head))
                sock.setblocking(False)
                pouring.append((sock, [0]))
        chunk = b"[" * 65536
        t0, peak = time.monotonic(), 0.0
        while time.monotonic() - t0 < 3 and any(n[0] >= 0 for _, n in pouring):
            for sock, sent in pouring:
                if sent[0] < 0:
                    continue
                try:
                    sent[0] += sock.send(chunk)
                except BlockingIOError:
                    pass
                except OSError:
                    sent[0] = -1  # closed by the server
            peak = max(peak, rss_mib(s))
        closed = sum(1 for _, n in pouring if n[0] < 0)
        still = []
        for sock, sent in pouring:
            if sent[0] >= 0:
                sock.setblocking(True)
                sock.settimeout(5)
                try:
                    while sock.recv(65536):
                        pass
                except TimeoutError:
                    still.append(sock)
                except OSError:
                    pass
            sock.close()
        assert_good_journey(s)
        after = Usage.of(s)
        print(f"\nbodies: {len(BAD_BODIES)} cases, then {len(pouring)} pouring; {closed} saw "
              f"the close while sending; RSS {before.rss:.1f} → {single:.1f} → peak {peak:.1f} "
              f"→ {after.rss:.1f} MiB; "
              f"CPU {after.cpu - before.cpu:.2f} s; fds {before.fds} → {after.fds}")
        assert not still, f"{len(still)} connections still open 5 s after their refusal"
        assert peak - before.rss < RSS_GROWTH_MIB
        assert wait_for_fds(s, before.fds + 2, 10) <= before.fds + 2


# ------------------------------------------------------------------ never reading
def big_redirects(conn: socket.socket) -> None:
    """15 redirects, each with 40 KB of headers: the journey's stream is ~900 KB (steps and
    the report carry the headers), more than the kernel and hypercorn buffer for a client."""
    head = read_request_head(conn)
    hop = int(head.split(b" ", 2)[1].strip(b"/") or b"0")
    filler = b"".join(b"X-Filler-%03d: %s\r\n" % (i, b"v" * 400) for i in range(100))
    if hop < 15:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /%d\r\n" % (hop + 1) + filler
                     + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    else:
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + filler
                     + b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
    wait_until_closed(conn, 5)


def kernel_socket(served: Served, client: tuple[str, int]) -> int | None:
    """Bytes the server's kernel still holds for ``client`` (tx_queue in /proc/net/tcp), or
    None when it holds no socket for it any more (an orphan counts: the process closed it
    but the kernel keeps trying to deliver)."""
    def hexaddr(host: str, port: int) -> str:
        return f"{int.from_bytes(socket.inet_aton(host), 'little'):08X}:{port:04X}"

    local, remote = hexaddr(served.host, served.port), hexaddr(*client)
    for line in Path(f"/proc/{served.proc.pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[0], 16)
    return None


def test_a_client_that_never_reads_its_events_is_dropped(tmp_path: Path) -> None:
    """Three clients start journeys whose streams are ~900 KB and never read a byte. Each send
    waits at most --send-timeout: then the journey is cancelled and its slot in the gate
    freed (the same address can start another), and the kernel gives up on the connection
    (TCP_USER_TIMEOUT) instead of keeping its unread bytes."""
    with serving(tmp_path, "--send-timeout", "2", "--per-client", "1",
                 "--max-journeys", "3") as s, RawServer(big_redirects) as target:
        before = Usage.of(s)
        body = json.dumps({"url": target.url()}).encode()
        sleepers = []
        for source in abuser_addresses(3, first=40):
            sock = connect_from(s, source, rcvbuf=1024)
            sock.sendall(raw_request(s, body, headers=JSON
                                     + f"Content-Length: {len(body)}\r\n"))
            sleepers.append(sock)
        # The gate is full (three journeys) until the sends time out.
        t0, freed = time.monotonic(), None
        while time.monotonic() - t0 < 20:
            stream = journey(s, example_url(s), timeout=GOOD_JOURNEY_S)
            if stream.status == 200:
                freed = time.monotonic() - t0
                break
            assert stream.status == 429
            time.sleep(0.5)
        assert freed is not None, "the gate stayed full of journeys nobody reads"
        # Each sleeper's own address may start a journey again: its slot was given back.
        again = json.dumps({"url": example_url(s)}).encode()
        for source in abuser_addresses(3, first=40):
            with connect_from(s, source) as sock:
                sock.sendall(raw_request(s, again, headers=JSON + "Connection: close\r\n"
                                         + f"Content-Length: {len(again)}\r\n"))
                sock.settimeout(GOOD_JOURNEY_S)
                stream_bytes = b""
                with contextlib.suppress(TimeoutError):
                    while data := sock.recv(65536):
                        stream_bytes += data
                assert stream_bytes.startswith(b"HTTP/1.1 200 "), stream_bytes[:300]
                assert b"event: end" in stream_bytes
        during = Usage.of(s)

        # The server's kernel lets go of them too, unread bytes and all.
        deadline = time.monotonic() + 20
        held = [kernel_socket(s, sock.getsockname()) for sock in sleepers]
        while any(h is not None for h in held) and time.monotonic() < deadline:
            time.sleep(0.5)
            held = [kernel_socket(s, sock.getsockname()) for sock in sleepers]
        # A sleeper that wakes up finds its stream cut short, not waiting for it.
        woken = sleepers[0]
        woken.settimeout(5)
        late = b""
        with contextlib.suppress(OSError):
            while data := woken.recv(65536):
                late += data
        for sock in sleepers:
            sock.close()
        after = Usage.of(s)
        print(f"\nnever reading: gate free after {freed:.1f} s; server kernel holds "
              f"{held} bytes for the sleepers; a woken sleeper got {len(late)} bytes; RSS "
              f"{before.rss:.1f} → {during.rss:.1f} → {after.rss:.1f} MiB; fds {before.fds} → "
              f"{after.fds}")
        assert held == [None, None, None], held
        assert b"event: end" not in late
        assert after.rss - before.rss < RSS_GROWTH_MIB
        assert wait_for_fds(s, before.fds + 2, 10) <= before.fds + 2


# ------------------------------------------------------------------ the gate
def stall_then_ok(conn: socket.socket) -> None:
    read_request_head(conn)
    time.sleep(2.0)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
    wait_until_closed(conn, 2)


def test_journeys_beyond_the_gate_and_abandoned_requests(tmp_path: Path) -> None:
    """Nine journeys at once from three addresses against --per-client 2 --max-journeys 4:
    the rest get 429; sixty connections abandoned at every point of a request (mid-head,
    mid-body, right after the request, mid-stream) leave nothing behind: afterwards the whole
    gate is free again."""
    with serving(tmp_path, "--per-client", "2", "--max-journeys", "4") as s, \
            RawServer(stall_then_ok) as target:
        before = Usage.of(s)
        body = json.dumps({"url": target.url()}).encode()
        post = raw_request(s, body, headers=JSON + f"Content-Length: {len(body)}\r\n")
        results: dict[str, list[int]] = {a: [] for a in abuser_addresses(3, first=50)}

        def run(source: str) -> None:
            with connect_from(s, source) as sock:
                sock.sendall(post)
                sock.settimeout(GOOD_JOURNEY_S)
                data = b""
                with contextlib.suppress(TimeoutError):
                    while b"event: end" not in data and b"event: refused" not in data:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                found = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
                results[source].append(int(found.group(1)) if found else 0)

        threads = [threading.Thread(target=run, args=(a,)) for a in results for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(GOOD_JOURNEY_S)
        ok = sum(r.count(200) for r in results.values())
        assert all(set(r) <= {200, 429} for r in results.values()), results
        assert all(r.count(200) <= 2 for r in results.values()), results
        assert 1 <= ok <= 4, results
        assert sum(r.count(429) for r in results.values()) == 9 - ok

        # Abandoned: each kind from its own address, 15 of each.
        halves = {
            "mid-head": post[: post.index(b"\r\n\r\n") // 2],
            "mid-body": post[: len(post) - len(body) // 2],
            "after the request": post,
        }
        for (kind, data), source in zip(halves.items(), abuser_addresses(3, first=60),
                                        strict=True):
            for _ in range(15):
                with connect_from(s, source) as sock:
                    sock.sendall(data)
                    if kind == "after the request":  # reset, not a polite close
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
        for _ in range(15):  # mid-stream: read the first event, then go
            with connect_from(s, "127.0.0.63") as sock:
                sock.sendall(post)
                sock.settimeout(10)
                first = sock.recv(65536)
                assert first.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 429 ")), first[:200]
        # The gate is empty again (once the server has let go of those connections): four
        # journeys at once, two per address, all run.
        wait_for_fds(s, before.fds + 2, IDLE_TIMEOUT + 10)
        streams: list[Stream] = []
        lock = threading.Lock()

        def good(source: str) -> None:
            with connect_from(s, source) as sock:
                url = json.dumps({"url": example_url(s)}).encode()
                sock.sendall(raw_request(s, url, headers=JSON + "Connection: close\r\n"
                                         + f"Content-Length: {len(url)}\r\n"))
                sock.settimeout(GOOD_JOURNEY_S)
                data = b""
                with contextlib.suppress(TimeoutError):
                    while chunk := sock.recv(65536):
                        data += chunk
                with lock:
                    streams.append(Stream(int(data[9:12] or 0), {},
                                          [(k.decode(), None, 0.0) for k in
                                           re.findall(rb"^event: (\S+)", data, re.M)]))

        goods = [threading.Thread(target=good, args=(a,))
                 for a in ("127.0.0.1", "127.0.0.1", "127.0.0.70", "127.0.0.70")]
        for thread in goods:
            thread.start()
        for thread in goods:
            thread.join(GOOD_JOURNEY_S)
        after = Usage.of(s)
        print(f"\ngate: {results}; afterwards {[st.status for st in streams]}; RSS "
              f"{before.rss:.1f} → {after.rss:.1f} MiB; fds {before.fds} → {after.fds}")
        assert [st.status for st in streams] == [200] * 4
        assert all(st.kinds()[-1] == "end" for st in streams), [st.kinds() for st in streams]
        assert after.rss - before.rss < RSS_GROWTH_MIB
        assert wait_for_fds(s, before.fds + 2, 10) <= before.fds + 2


# ------------------------------------------------------------------ connection limits
def test_connections_beyond_the_limits_are_shed(tmp_path: Path) -> None:
    """--max-connections-per-client: the eleventh connection from one address is answered
    503 and closed as it is accepted; --max-connections: so is any beyond the total; closed
    connections give their places back."""
    with serving(tmp_path, "--max-connections", "40",
                 "--max-connections-per-client", "10") as s:
        before = Usage.of(s)
        abuse = Abuse(s)
        for _ in range(25):
            abuse.add("one address", connect_from(s, "127.0.0.80"))
        abuse.run()
        time.sleep(1.5)
        shed = [c for c in abuse.conns if c.closed_at is not None]
        assert len(abuse.open()) == 10, len(abuse.open())
        assert len(shed) == 15
        assert all(c.status in (503, None) for c in shed)
        assert sum(c.status == 503 for c in shed) >= 10, [c.received[:80] for c in shed]
        assert b"10 connections from your address" in shed[0].received
        for source in abuser_addresses(3, first=81):  # 10 + 30 = the total of 40
            for _ in range(10):
                abuse.add("others", connect_from(s, source))
        time.sleep(1.0)
        late = connect_from(s, "127.0.0.90")
        late.settimeout(5)
        refusal = late.recv(65536)
        late.close()
        assert refusal.startswith(b"HTTP/1.1 503 "), refusal
        assert b"40 connections open" in refusal
        during = Usage.of(s)
        # Closing them gives their places back (as hypercorn lets go of each: it closes its
        # side of a connection the client closed when its idle timer fires).
        abuse.stop()
        assert wait_for_fds(s, before.fds + 2, IDLE_TIMEOUT + 10) <= before.fds + 2
        assert_good_journey(s)
        after = Usage.of(s)
        print(f"\nlimits: 25 from one address → {len(shed)} shed; fds {before.fds} → "
              f"{during.fds} → {after.fds}")
        assert during.fds <= before.fds + 40 + 2
