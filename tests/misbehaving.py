"""Small misbehaving servers on 127.0.0.1 (or ::1), port 0, for the journey tests.

Each server is a real listening socket served by a thread: it accepts connections and hands
each one to a ``handler(conn)`` that does something a well-behaved server would not (send
garbage, stall, close mid-body, never end the body…). Use it as a context manager; leaving
it closes the listener and every connection still open, so a handler blocked in ``recv`` or
``sendall`` wakes up and ends.

    with RawServer(garbage_reply) as server:
        url = f"http://127.0.0.1:{server.port}/"
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import dns.flags
import dns.message
import dns.rdatatype

Handler = Callable[[socket.socket], None]

MAX_REQUEST = 64 * 1024


class RawServer:
    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((host, port))
        except OSError:
            self.listener.close()
            raise
        self.listener.listen(16)
        self.host = host
        self.port: int = self.listener.getsockname()[1]
        self.handler = handler
        self.stop = threading.Event()
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        self._acceptor.join(2)
        for thread in self._threads:
            thread.join(2)

    def _accept_loop(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with self._lock:
                self.connections.append(conn)
                self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass  # the client went away, or close() shut the socket: both are expected
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def url(self, scheme: str = "http", path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"


# --- handlers -------------------------------------------------------------------------------

def read_request_head(conn: socket.socket) -> bytes:
    """Read until the end of an HTTP/1.1 request head (or EOF); bounded."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def wait_until_closed(conn: socket.socket, limit: float = 10.0) -> None:
    """Hold the connection open, reading and discarding, until the client closes it."""
    deadline = time.monotonic() + limit
    conn.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            continue


def garbage_reply(conn: socket.socket) -> None:
    """Answer the request with something that is not HTTP."""
    read_request_head(conn)
    conn.sendall(b"HELLO THIS IS NOT HTTP\r\nat all\r\n\r\n")
    wait_until_closed(conn, 3)


def endless_body(conn: socket.socket) -> None:
    """A 200 with no length and no chunking: the body ends at close, which never comes."""
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    block = b"x" * 16384
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        conn.sendall(block)


def stall_after_headers(conn: socket.socket) -> None:
    """Send the head announcing 1000 bytes, then nothing, holding the connection open."""
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n")
    wait_until_closed(conn)


def close_mid_body(conn: socket.socket) -> None:
    """Announce 1000 bytes, send 100, close."""
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n"
                 + b"y" * 100)
    conn.shutdown(socket.SHUT_WR)
    wait_until_closed(conn, 2)


def close_at_once(conn: socket.socket) -> None:
    """Accept, then close without a word."""
    conn.close()


def plain_http_only(conn: socket.socket) -> None:
    """An HTTP/1.1 server that meets a TLS ClientHello: it answers 400 in plain text, as
    nginx or Apache do, and closes."""
    conn.recv(4096)
    body = b"<html><body>400 Bad Request</body></html>\n"
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def ok_reply(conn: socket.socket) -> None:
    """A correct, tiny HTTP/1.1 200 (Connection: close)."""
    read_request_head(conn)
    body = b"hello from a tiny server\n"
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    wait_until_closed(conn, 2)


def free_port(host: str = "127.0.0.1") -> int:
    """A port where nothing listens: bound, then closed (nobody else took it a moment later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port


def ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class FullBacklog:
    """A listening socket whose accept queue is full, so the kernel drops further SYNs.

    listen(0) and a few connections that are never accepted fill the queue; a new SYN then
    gets no SYN-ACK (Linux drops it when the accept queue is full), which is what a firewall
    dropping packets looks like to a client: a connect timeout.
    """

    def __init__(self, fillers: int = 4) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _ in range(fillers):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", self.port))
            self.fillers.append(s)
        time.sleep(0.05)  # let the handshakes that can complete complete

    def syn_is_dropped(self, wait: float = 0.3) -> bool:
        """Probe: does a new connect hang (True) rather than complete or fail?"""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(wait)
            try:
                probe.connect(("127.0.0.1", self.port))
            except TimeoutError:
                return True
            except OSError:
                return False
            return False

    def close(self) -> None:
        for s in self.fillers:
            s.close()
        self.listener.close()

    def __enter__(self) -> FullBacklog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TinyDns:
    """A UDP DNS server on 127.0.0.1 whose answers come from ``policy(query)``: a response
    message, or None to drop the query unanswered (the client's timer runs out)."""

    def __init__(self, policy: Callable[[dns.message.Message], dns.message.Message | None]
                 ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.policy = policy
        self.queries: list[str] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:  # not DNS: dropped, as real servers do
                continue
            q = query.question[0]
            self.queries.append(f"{q.name} {dns.rdatatype.to_text(q.rdtype)}")
            response = self.policy(query)
            if response is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(response.to_wire(), peer)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TinyDns:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._thread.join(2)
        self.sock.close()


def drop_a_nodata_aaaa(query: dns.message.Message) -> dns.message.Message | None:
    """A resolver that never answers A (lost, or stuck upstream) but answers the other types
    with NOERROR and an empty answer (NODATA)."""
    if query.question[0].rdtype == dns.rdatatype.A:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    return response
