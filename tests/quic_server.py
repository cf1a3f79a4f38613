"""A real HTTP/3 server for the tests: aioquic's asyncio server on 127.0.0.1, in a thread
with its own event loop, presenting a certificate from tests/certgen.py.

``behaviour`` picks what it does with a request: ``ok`` (200 with a body), ``reset`` (the
response's headers, then RESET_STREAM), ``close`` (CONNECTION_CLOSE with an HTTP/3 code and a
reason), ``badframe`` (a DATA frame before any HEADERS), ``gzip`` (a compressed body).
``retry=True`` makes it validate the address with a Retry first; it keeps session tickets, so
a client can resume and send 0-RTT data. ``udp_black_hole()`` is a UDP socket that reads and
drops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent
from aioquic.tls import SessionTicket

BODY = b"<!doctype html><title>h3</title><p>hello over HTTP/3</p>\n" * 20


@dataclass
class QuicServer:
    address: tuple[str, int]
    requests: list[list[tuple[str, str]]] = field(default_factory=list)


def _protocol(behaviour: str, server: QuicServer) -> type[QuicConnectionProtocol]:
    class H3Protocol(QuicConnectionProtocol):
        h3: H3Connection | None = None

        def quic_event_received(self, event: QuicEvent) -> None:
            if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
                self.h3 = H3Connection(self._quic)
            if self.h3 is None:
                return
            for h in self.h3.handle_event(event):
                if isinstance(h, HeadersReceived):
                    server.requests.append([(n.decode(), v.decode()) for n, v in h.headers])
                    self.answer(h.stream_id)

        def answer(self, stream_id: int) -> None:
            assert self.h3 is not None
            body = gzip.compress(BODY) if behaviour == "gzip" else BODY
            head = [(b":status", b"200"), (b"content-type", b"text/html"),
                    (b"content-length", str(len(body)).encode()),
                    (b"alt-svc", b'h3=":443"; ma=60')]
            if behaviour == "gzip":
                head.append((b"content-encoding", b"gzip"))
            if behaviour == "close":
                self._quic.close(error_code=ErrorCode.H3_INTERNAL_ERROR,
                                 reason_phrase="test server gives up")
            elif behaviour == "badframe":  # DATA before HEADERS: H3_FRAME_UNEXPECTED
                self._quic.send_stream_data(stream_id, b"\x00\x03abc", end_stream=True)
            elif behaviour == "reset":
                self.h3.send_headers(stream_id, head)
                self._quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            else:
                self.h3.send_headers(stream_id, head)
                self.h3.send_data(stream_id, body, end_stream=True)
            self.transmit()

    return H3Protocol


@contextlib.contextmanager
def serve_h3(certfile: str, keyfile: str, *, behaviour: str = "ok",
             retry: bool = False) -> Iterator[QuicServer]:
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(certfile, keyfile)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = QuicServer(("127.0.0.1", port))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            tickets: dict[bytes, SessionTicket] = {}  # so a client can resume (and 0-RTT)
            holder["server"] = await serve("127.0.0.1", port, configuration=config,
                                           create_protocol=_protocol(behaviour, server),
                                           retry=retry, session_ticket_fetcher=tickets.pop,
                                           session_ticket_handler=lambda t: tickets.__setitem__(
                                               t.ticket, t))
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "the QUIC test server did not start"
    try:
        yield server
    finally:
        def stop() -> None:
            quic = holder.get("server")
            if quic is not None:
                quic.close()  # type: ignore[attr-defined]
            loop.stop()

        loop.call_soon_threadsafe(stop)
        thread.join(5)
        loop.close()


@contextlib.contextmanager
def udp_black_hole() -> Iterator[tuple[str, int]]:
    """A UDP socket on 127.0.0.1 that reads every datagram and answers none."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                sock.recv(65535)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[:2]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


@contextlib.contextmanager
def udp_relay(target: tuple[str, int], *, drop_first: int = 0) -> Iterator[tuple[str, int]]:
    """A UDP relay on 127.0.0.1 in front of ``target`` (one client at a time) that drops the
    first ``drop_first`` datagrams from the client: a lost QUIC Initial, chosen, not random."""
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.connect(target)
    for s in (front, back):
        s.settimeout(0.05)
    stop = threading.Event()
    client: list[tuple[str, int]] = []
    dropped = [0]

    def forward() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                data, peer = front.recvfrom(65535)
                client[:] = [peer]
                if dropped[0] < drop_first:
                    dropped[0] += 1
                    continue
                back.send(data)

    def backward() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                data = back.recv(65535)
                if client:
                    front.sendto(data, client[0])

    threads = [threading.Thread(target=f, daemon=True) for f in (forward, backward)]
    for t in threads:
        t.start()
    try:
        yield front.getsockname()[:2]
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        front.close()
        back.close()
