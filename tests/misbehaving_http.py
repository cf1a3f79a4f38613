"""HTTP/1.1 servers that misbehave, for the corpus (tests/test_corpus_http1.py, _tcp.py).

Each function here returns a ``Handler`` for ``misbehaving.RawServer``: it reads the request
head, then sends exactly the bytes of one mistake and ends the connection in a chosen way
(hold it open, FIN, or RST). The bytes are written out in full in the test cases, so a
reader sees the mistake without reading this module.

    with RawServer(reply(b"HTTP/1.1 200\\r\\nContent-Length: 2\\r\\n\\r\\nok")) as server:
        ...
"""

from __future__ import annotations

import functools
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

from misbehaving import Handler, read_request_head, wait_until_closed

# How a handler ends the connection after its bytes:
#   "hold"  keep it open (reading and discarding) until the client closes it
#   "fin"   shutdown(SHUT_WR): a clean end of stream, then wait for the client to close
#   "close" close at once (a FIN; an RST if the client's bytes are still unread)
#   "rst"   SO_LINGER 0 and close: an RST, whatever is unread
Ending = str


def rst(conn: socket.socket) -> None:
    """Close with an RST (SO_LINGER on, timeout 0) instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def end(conn: socket.socket, ending: Ending, hold: float = 10.0) -> None:
    if ending == "hold":
        wait_until_closed(conn, hold)
    elif ending == "fin":
        conn.shutdown(socket.SHUT_WR)
        wait_until_closed(conn, hold)
    elif ending == "close":
        conn.close()
    elif ending == "rst":
        rst(conn)
    else:
        raise ValueError(ending)


def reply(raw: bytes, ending: Ending = "fin", *, read: bool = True) -> Handler:
    """Read the request head, send ``raw``, end the connection as ``ending`` says."""

    def handler(conn: socket.socket) -> None:
        if read:
            read_request_head(conn)
        conn.sendall(raw)
        end(conn, ending)

    return handler


def reply_stream(parts: Callable[[], Iterable[bytes]], ending: Ending = "fin",
                 *, limit: float = 15.0) -> Handler:
    """Read the request head, send what ``parts()`` yields (possibly without end, and
    possibly paced by the generator's own sleeps) for at most ``limit`` seconds."""

    def handler(conn: socket.socket) -> None:
        read_request_head(conn)
        deadline = time.monotonic() + limit
        for part in parts():
            if time.monotonic() > deadline:
                break
            conn.sendall(part)
        end(conn, ending)

    return handler


def drip(raw: bytes, every: float, ending: Ending = "fin", *, head: bytes = b"") -> Handler:
    """Send ``head`` at once, then ``raw`` one byte at a time, ``every`` seconds apart."""

    def parts() -> Iterator[bytes]:
        if head:
            yield head
        for i in range(len(raw)):
            time.sleep(every)
            yield raw[i:i + 1]

    return reply_stream(parts, ending, limit=60.0)


def forever(block: bytes, *, head: bytes = b"", pace: float = 0.0,
            batch: int = 1) -> Callable[[], Iterator[bytes]]:
    """``head``, then ``block`` repeated without end (``batch`` copies per write), each write
    ``pace`` seconds after the last."""

    def parts() -> Iterator[bytes]:
        if head:
            yield head
        many = block * batch
        while True:
            if pace:
                time.sleep(pace)
            yield many

    return parts


def read_request(conn: socket.socket, buffered: bytearray) -> tuple[str, str] | None:
    """One request head from ``conn`` (bytes after it stay in ``buffered``): method, target.
    None at end of stream."""
    while b"\r\n\r\n" not in buffered:
        if len(buffered) > 64 * 1024:
            return None
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buffered += chunk
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    buffered[:] = rest
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) < 2:
        return None
    return parts[0].decode("latin-1"), parts[1].decode("latin-1")


def routes(answer: Callable[[str, str], bytes | None], *, keep_alive: bool = True) -> Handler:
    """A server that answers each request on the connection with ``answer(method, target)``
    (None: close the connection instead of answering)."""

    def handler(conn: socket.socket) -> None:
        buffered = bytearray()
        while True:
            request = read_request(conn, buffered)
            if request is None:
                return
            raw = answer(*request)
            if raw is None:
                conn.shutdown(socket.SHUT_WR)
                wait_until_closed(conn, 3)
                return
            conn.sendall(raw)
            if not keep_alive:
                conn.shutdown(socket.SHUT_WR)
                wait_until_closed(conn, 3)
                return

    return handler


def response(status: str = "200 OK", body: bytes = b"hello", *headers: str,
             length: bool = True) -> bytes:
    """A response head (and body) with CRLF line ends and the given extra header lines."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes, last: bytes = b"0\r\n\r\n") -> bytes:
    """A chunked body of ``pieces`` (RFC 9112 §7.1), ended with ``last``."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return out + last


# --- decompression bombs ------------------------------------------------------------------

MIB = 1024 * 1024


@functools.cache
def zeros_segment() -> tuple[bytes, bytes]:
    """1 MiB of zeros deflated for a gzip stream, ended with a full flush: the gzip header
    and first segment, and the segment that repeats (byte-identical once the compressor's
    dictionary is reset by the flush)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    z = bytes(MIB)
    first = c.compress(z) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(z) + c.flush(zlib.Z_FULL_FLUSH)
    return first, again


@functools.cache
def gzip_bomb(mib: int) -> bytes:
    """A gzip body that decodes to ``mib`` MiB of zeros (10 GiB is about 10 MB on the wire).

    Its trailer carries the right length (mod 2**32) but not the CRC of the whole: computing
    it would take seconds, and a decoder must stop at its decoded limit long before it."""
    first, again = zeros_segment()
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty last block
    size = (mib * MIB) & 0xFFFFFFFF
    return first + again * (mib - 1) + final + struct.pack("<II", 0, size)


@functools.cache
def deflate_bomb(mib: int) -> bytes:
    """zlib format (RFC 1950), as "deflate" means in HTTP."""
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    z = bytes(MIB)
    return b"".join(c.compress(z) for _ in range(mib)) + c.flush()


@functools.cache
def brotli_bomb(mib: int) -> bytes:
    import brotli

    c = brotli.Compressor(quality=5)
    z = bytes(MIB)
    out = b"".join(c.process(z) for _ in range(mib))
    return out + c.finish()


@functools.cache
def zstd_bomb(mib: int) -> bytes:
    import zstandard

    c = zstandard.ZstdCompressor().compressobj()
    z = bytes(MIB)
    return b"".join(c.compress(z) for _ in range(mib)) + c.flush()


def gzip_of(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()
