"""HTTP/2 servers that misbehave, built from raw frames (RFC 9113 §4.1), for the corpus.

``H2Peer`` is the server side of one connection: it reads the client's preface, SETTINGS and
request HEADERS, and then sends whatever frames a case wants, valid or not, as bytes it
assembled itself (hyperframe and h2 refuse to build most of the mistakes). Header blocks are
HPACK-encoded with ``hpack`` or written byte by byte for HPACK abuse.

    def handler(conn):
        peer = H2Peer(conn)
        sid = peer.handshake()
        peer.send(peer.headers(sid, [(":status", "200")]), data(sid, b"hi", end=True))
        peer.hold()

``serve(body)`` turns such a function into a ``misbehaving.RawServer`` handler, over TLS with
ALPN when given an ``ssl.SSLContext``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable

import hpack

from misbehaving import Handler
from misbehaving_http import rst

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0x0, 0x1, 0x2, 0x3, 0x4, 0x5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x6, 0x7, 0x8, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# SETTINGS parameters (RFC 9113 §6.5.2).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x7, 0x8, 0xB

Fields = list[tuple[str, str]]
Conn = socket.socket | ssl.SSLSocket


def frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame, exactly as given: no check of length, stream or flags."""
    return (struct.pack(">I", len(payload))[1:] + bytes([type_, flags])
            + struct.pack(">I", stream_id & 0x7FFFFFFF) + payload)


def data(stream_id: int, payload: bytes, *, end: bool = False) -> bytes:
    return frame(DATA, END_STREAM if end else 0, stream_id, payload)


def settings(*pairs: tuple[int, int], stream_id: int = 0) -> bytes:
    return frame(SETTINGS, 0, stream_id, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def settings_ack() -> bytes:
    return frame(SETTINGS, ACK, 0)


def ping(payload: bytes = b"12345678", *, ack: bool = False) -> bytes:
    return frame(PING, ACK if ack else 0, 0, payload)


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code) + debug)


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def priority(stream_id: int, depends_on: int, weight: int = 15) -> bytes:
    return frame(PRIORITY, 0, stream_id, struct.pack(">IB", depends_on, weight))


def header_block_frames(stream_id: int, block: bytes, *, end_stream: bool = False,
                        size: int = 16384) -> bytes:
    """A header block as HEADERS and as many CONTINUATION frames as ``size`` needs."""
    pieces = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        flags = END_HEADERS if last else 0
        if i == 0:
            out.append(frame(HEADERS, flags | (END_STREAM if end_stream else 0), stream_id,
                             piece))
        else:
            out.append(frame(CONTINUATION, flags, stream_id, piece))
    return b"".join(out)


class H2Peer:
    """The server side of one HTTP/2 connection, frame by frame."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.buf = bytearray()
        self.encoder = hpack.Encoder()
        self.client_settings: dict[int, int] = {}
        self.stream_window = 65535   # what we may send the client, per RFC 9113 §6.9
        self.conn_window = 65535
        self.closed = False

    # -- reading
    def _fill(self) -> bool:
        chunk = self.conn.recv(65536)
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def read_frame(self) -> tuple[int, int, int, bytes] | None:
        """The next frame from the client (type, flags, stream, payload); None at its end."""
        while len(self.buf) < 9:
            if not self._fill():
                return None
        length = int.from_bytes(self.buf[:3], "big")
        while len(self.buf) < 9 + length:
            if not self._fill():
                return None
        type_, flags = self.buf[3], self.buf[4]
        stream_id = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = bytes(self.buf[9:9 + length])
        del self.buf[:9 + length]
        self._note(type_, flags, stream_id, payload)
        return type_, flags, stream_id, payload

    def _note(self, type_: int, flags: int, stream_id: int, payload: bytes) -> None:
        if type_ == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                key, value = struct.unpack(">HI", payload[i:i + 6])
                self.client_settings[key] = value
                if key == INITIAL_WINDOW_SIZE:
                    self.stream_window = value
        elif type_ == WINDOW_UPDATE and len(payload) == 4:
            increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if stream_id == 0:
                self.conn_window += increment
            else:
                self.stream_window += increment

    def handshake(self, *, send_settings: bool = True,
                  server_settings: Iterable[tuple[int, int]] = ()) -> int:
        """Read the client preface up to its request's HEADERS; answer with our SETTINGS (and
        an ACK of theirs). Returns the request's stream id."""
        while len(self.buf) < len(PREFACE):
            if not self._fill():
                raise ConnectionError("the client went away before its preface")
        if bytes(self.buf[:len(PREFACE)]) != PREFACE:
            raise ConnectionError("not an HTTP/2 client preface")
        del self.buf[:len(PREFACE)]
        if send_settings:
            self.send(settings(*server_settings))
        acked = False
        while True:
            got = self.read_frame()
            if got is None:
                raise ConnectionError("the client went away before its request")
            type_, flags, stream_id, _ = got
            if type_ == SETTINGS and not flags & ACK and send_settings and not acked:
                self.send(settings_ack())
                acked = True
            if type_ in (HEADERS, CONTINUATION) and flags & END_HEADERS:
                return stream_id

    # -- writing
    def send(self, *frames: bytes) -> None:
        self.conn.sendall(b"".join(frames))

    def block(self, fields: Fields) -> bytes:
        out: bytes = self.encoder.encode([(n.encode(), v.encode("latin-1")) for n, v in fields])
        return out

    def headers(self, stream_id: int, fields: Fields, *, end_stream: bool = False) -> bytes:
        return header_block_frames(stream_id, self.block(fields), end_stream=end_stream)

    def respond(self, stream_id: int, body: bytes = b"hello", *extra: tuple[str, str],
                status: str = "200") -> None:
        """A whole, correct response."""
        fields = [(":status", status), ("content-type", "text/plain"), *extra]
        self.send(self.headers(stream_id, fields), data(stream_id, body, end=True))

    def send_body(self, stream_id: int, body: bytes, *, frame_size: int = 16384) -> None:
        """DATA frames within the client's flow-control windows, waiting for its
        WINDOW_UPDATEs as a correct server must (RFC 9113 §6.9); the last ends the stream."""
        view = memoryview(body)
        while view:
            room = min(self.stream_window, self.conn_window, frame_size, len(view))
            if room <= 0:
                if self.read_frame() is None:
                    return
                continue
            piece = bytes(view[:room])
            view = view[room:]
            self.stream_window -= room
            self.conn_window -= room
            self.send(data(stream_id, piece, end=not view))

    # -- endings
    def drain(self) -> bool:
        """Read whatever the client sent without waiting; False once it has gone."""
        while select.select([self.conn], [], [], 0)[0] or (
                isinstance(self.conn, ssl.SSLSocket) and self.conn.pending()):
            try:
                chunk = self.conn.recv(65536)
            except ssl.SSLWantReadError:
                return True
            if not chunk:
                return False
        return True

    def flood(self, one: bytes | Callable[[int], bytes], *, batch: int = 256,
              pace: float = 0.0, limit: float = 15.0) -> None:
        """Send ``one`` (or ``one(i)``) again and again until the client goes away."""
        deadline = time.monotonic() + limit
        i = 0
        while time.monotonic() < deadline:
            chunk = (b"".join(one(i + k) for k in range(batch)) if callable(one)
                     else one * batch)
            i += batch
            self.conn.sendall(chunk)
            if not self.drain():
                return
            if pace:
                time.sleep(pace)

    def hold(self, limit: float = 10.0) -> None:
        """Keep the connection open, reading, until the client closes it."""
        deadline = time.monotonic() + limit
        self.conn.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                if not self.conn.recv(65536):
                    return
            except (TimeoutError, ssl.SSLWantReadError):
                continue

    def fin(self) -> None:
        """A clean end of our side (TCP FIN, or close_notify then FIN over TLS)."""
        if isinstance(self.conn, ssl.SSLSocket):
            with contextlib.suppress(OSError, ssl.SSLError):
                self.conn.unwrap()
        self.conn.shutdown(socket.SHUT_WR)
        self.hold(3)

    def rst(self) -> None:
        rst(self.conn)  # type: ignore[arg-type]


Body = Callable[[H2Peer], None]


def serve(body: Body, context: ssl.SSLContext | None = None) -> Handler:
    """A RawServer handler that runs ``body`` on an H2Peer (over TLS if ``context``)."""

    def handler(conn: socket.socket) -> None:
        sock: Conn = conn
        if context is not None:
            try:
                sock = context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            body(H2Peer(sock))

    return handler
