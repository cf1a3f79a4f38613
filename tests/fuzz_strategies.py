"""Fuzzing the tracer: generators of hostile peers and the harness that runs journeys at them.

Shared by the CI fuzz tests (tests/test_fuzz_*.py, a bounded, derandomized number of
examples) and the long run (bench/fuzz/run.py, which puts tests/ on sys.path).

The generators (Hypothesis strategies)
    * HTTP/1.1 responses from a grammar of valid ones (1xx, status line, fields, framing by
      Content-Length / chunked / close, content codings), then mutated: byte flips,
      truncation, insertion, duplicated / dropped / swapped lines, numbers replaced with huge,
      negative or odd ones (Content-Length, chunk sizes, status codes).
    * HTTP/2 frame sequences built with hyperframe and hpack (SETTINGS, HEADERS and
      CONTINUATION, DATA, every control frame, PUSH_PROMISE, unknown types), then mutated
      frame by frame (length, type, flags, stream id, payload bytes, duplicated, dropped and
      swapped frames) and byte by byte.
    * DNS answers built with dnspython for the journey's own queries (answers, CNAME chains
      and loops, referrals with and without glue, NXDOMAIN, NODATA, SERVFAIL, TC bit, wrong
      id or question), then mutated on the wire (bytes, counts, compression pointers, the
      TCP length prefix); served to the resolver view and to the iterative walk.
    * TLS: raw records in place of a ServerHello; a real handshake (a server-side SSLObject
      over MemoryBIO) whose first flight is mutated; and a real handshake followed by
      application records mutated record by record (flipped, truncated, duplicated, dropped,
      swapped, header fields changed, plaintext alerts / CCS / garbage inserted) with
      close_notify at any point.
    * URLs: the WHATWG vectors (tests/data/whatwg_host_vectors.json) and every string of
      tests/test_url.py, mutated character by character and spliced together.

The harness
    One listening socket per target on 127.0.0.1 (and one UDP+TCP DNS server), reused across
    examples: the example's script is swapped in before each journey. Journeys run in-process
    (``run_journey``) with a short ``--max-time`` and short timeouts; only loopback addresses
    may be reached (an address policy), so nothing a mutation invents leaves the machine.

The properties, for every input (``Outcome.problems``; empty when they hold)
    * no traceback: nothing escapes ``run_journey`` or a renderer, asyncio logs no error;
    * never exit 10: the journey's error is never an internal error;
    * no deadline miss: wall time within ``--max-time`` plus ``WALL_MARGIN_S``, not counting
      time the journey's thread spent waiting for a CPU (``run_queue_wait_s``: on a loaded
      machine that is the machine's doing, noted as ``starved``, not a failure);
    * a failure names its step, carries a message, and has the exit code of its class;
    * the report holds together: the JSON schema, span nesting, and the terminal (plain and
      colour), HTML and HAR renderers all accept the journey;
    * CPU per journey (``facts.resources.cpu_ms``) under ``MAX_CPU_MS``, loosely.
    ``Outcome.notes`` holds softer findings that are counted but not failed on: bare library
    text in a message, raw control characters in the plain terminal report.
"""

from __future__ import annotations

import ast
import asyncio
import collections
import contextlib
import dataclasses
import functools
import gzip
import io
import ipaddress
import json
import logging
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brotli
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import hpack
import zstandard
from hyperframe import frame as hf
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parent
MAX_TIME_S = 2.0          # --max-time of every fuzz journey
WALL_MARGIN_S = 0.75      # a journey may take this much longer than --max-time, no more
READ_TIMEOUT_S = 0.3      # one idle read (Limits.read_timeout)
CONNECT_TIMEOUT_S = 0.5   # --connect-timeout (also the TLS handshake's)
DNS_TIMEOUT_S = 0.15      # --dns-timeout
MAX_CPU_MS = 1000.0       # the journey's own CPU, loosely (the corpus holds cases to 1 s)
MAX_PAYLOAD = 8 << 20     # a mutated payload never grows past this
SCAN = 64 << 10           # line and number mutations look at this much of the payload

STEPS = {"url", "dns", "tcp", "tls", "http", "redirect"}
Op = tuple[Any, ...]

# --------------------------------------------------------------------------- mutations

INTERESTING_BYTES = [
    b"\r\n", b"\n", b"\r", b"\x00", b":", b" ", b"\t", b"\r\n\r\n", b"\xff", b"\x80",
    b"\x1b[2J", b"\x1b]0;owned\x07", b"\x9b", b"%", b";", b",", b"0", b"-1", b"ffffffff",
    b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\n", b"0\r\n\r\n",
    b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n",
    b"\x16\x03\x03\x00\x02\x02\x28", b"\x15\x03\x03\x00\x02\x01\x00",
]
INTERESTING_NUMBERS = [
    b"0", b"1", b"-1", b"-0", b"+1", b"00", b"255", b"256", b"65535", b"65536",
    b"2147483647", b"2147483648", b"4294967295", b"4294967296", b"9223372036854775807",
    b"18446744073709551616", b"9" * 40, b"0x10", b"1e3", b" 5", b"5 ", b"", b"1,1", b"1, 2",
    b"7fffffffffffffff", b"ffffffffffffffffffffffff", b"-ffff", b"1.5", b"\xd9\xa3",
]
_NUMBER = re.compile(rb"\d+")


def byte_ops(max_ops: int = 4) -> st.SearchStrategy[list[Op]]:
    """A list of byte-level mutations; positions are taken modulo the data's length."""
    return st.lists(byte_op(), max_size=max_ops)


def byte_op() -> st.SearchStrategy[Op]:
    pos = st.integers(0, 1 << 16)
    return st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(1, 255)),
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("insert"), pos, st.one_of(st.sampled_from(INTERESTING_BYTES),
                                                    st.binary(min_size=1, max_size=16))),
        st.tuples(st.just("delete"), pos, st.integers(1, 32)),
        st.tuples(st.just("dup_line"), pos),
        st.tuples(st.just("drop_line"), pos),
        st.tuples(st.just("swap_lines"), pos),
        st.tuples(st.just("number"), pos, st.sampled_from(INTERESTING_NUMBERS)),
        st.tuples(st.just("repeat"), pos, st.integers(1, 64), st.integers(2, 300)),
    )


def mutate(data: bytes, ops: Sequence[Op]) -> bytes:
    for op in ops:
        if op[0] in ("dup_line", "drop_line", "swap_lines", "number") and len(data) > SCAN:
            # lines and numbers are looked for in the head: scanning megabytes of body for
            # them would cost more than the journey
            data = _mutate_once(data[:SCAN], op) + data[SCAN:]
        else:
            data = _mutate_once(data, op)
        data = data[:MAX_PAYLOAD]
    return data


def _mutate_once(data: bytes, op: Op) -> bytes:
    kind, n = op[0], len(data)
    at = op[1] % (n + 1) if len(op) > 1 and isinstance(op[1], int) else 0
    if kind == "flip":
        if not n:
            return data
        at %= n
        return data[:at] + bytes([data[at] ^ op[2]]) + data[at + 1:]
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + op[2] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + op[2]:]
    if kind == "repeat":
        piece = data[at:at + op[2]]
        return data[:at] + piece * op[3] + data[at + len(piece):]
    if kind in ("dup_line", "drop_line", "swap_lines"):
        lines = data.splitlines(keepends=True)
        if not lines:
            return data
        i = op[1] % len(lines)
        if kind == "dup_line":
            lines.insert(i, lines[i])
        elif kind == "drop_line":
            del lines[i]
        elif i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return b"".join(lines)
    if kind == "number":
        found = list(_NUMBER.finditer(data))
        if not found:
            return data
        m = found[op[1] % len(found)]
        return data[:m.start()] + op[2] + data[m.end():]
    raise ValueError(f"unknown mutation {op!r}")


# --------------------------------------------------------------------------- HTTP/1.1

# After its bytes the peer closes (fin), resets (rst), holds the connection open in silence
# (hold), or sends the bytes a few at a time, 10 ms apart, and never stops (drip: with
# --max-time 0.5, so that the deadline is what ends the journey).
THEN = st.sampled_from(["fin"] * 16 + ["rst", "rst", "hold", "drip"])
DRIP_ARGS = ("--max-time", "0.5")


def _then_args(then: str) -> tuple[str, ...]:
    return DRIP_ARGS if then == "drip" else ()


@dataclass(frozen=True)
class H1Case:
    """An HTTP/1.1 server's whole answer: ``payload`` after the request head, then ``then``
    (fin: close cleanly; rst: reset; hold: keep the connection open, silent)."""

    payload: bytes
    then: str = "fin"
    args: tuple[str, ...] = ()
    splits: tuple[int, ...] = ()   # the payload goes out in pieces cut at these offsets


SANE_LOCATIONS = ["/next", "/", "next", "?q=1", "http://fuzz.invalid/", "/a/../b"]
LOCATIONS = [
    *SANE_LOCATIONS, "#frag", "//127.0.0.1:1/x", "https://127.0.0.1:1/", "", "http://[::1",
    "/%zz", "javascript:alert(1)", "http://", "http://xn--.test/", "HTTP://127.0.0.1:1/\t",
    "/ünïcode", "/\x1b[2J",
]
SANE_CONTENT_TYPES = ["text/html; charset=utf-8", "application/json", "text/plain"]
CONTENT_TYPES = [*SANE_CONTENT_TYPES, "image/png", "", "text/html; charset=bogus",
                 "application/octet-stream"]
SANE_CODINGS = [None, None, None, "gzip", "deflate", "br", "zstd", "identity"]
CODINGS = [*SANE_CODINGS, "gzip, gzip", "x-bogus", "gzip, br", "deflate-raw"]
FIELD_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x17F,
                                   exclude_characters="\r\n"), max_size=24)
SANE_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
TOKEN = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True)


def _field(name: str, value: str) -> bytes:
    return f"{name}: {value}".encode("utf-8", "surrogateescape")


def sane_h1_fields() -> st.SearchStrategy[bytes]:
    """Fields a correct server sends (framing fields are added by the grammar)."""
    return st.one_of(
        st.builds(lambda v: _field("Content-Type", v), st.sampled_from(SANE_CONTENT_TYPES)),
        st.builds(lambda v: _field("Location", v), st.sampled_from(SANE_LOCATIONS)),
        st.builds(lambda v: _field("Server", v.strip() or "x"), SANE_TEXT),
        st.just(b"Set-Cookie: a=b; Path=/; HttpOnly"),
        st.just(b"Strict-Transport-Security: max-age=31536000; includeSubDomains"),
        st.just(b'Alt-Svc: h3=":443"; ma=86400'),
        st.sampled_from([b"Connection: keep-alive", b"Keep-Alive: timeout=5",
                         b"Date: Thu, 01 Jan 1970 00:00:00 GMT", b"Vary: Accept-Encoding"]),
        st.builds(lambda n, v: _field("X-" + n, v.strip()), TOKEN, SANE_TEXT),
    )


def h1_fields() -> st.SearchStrategy[bytes]:
    """Any field line: correct ones, and the odd, conflicting and malformed ones."""
    return st.one_of(
        sane_h1_fields(),
        st.builds(lambda v: _field("Content-Type", v), st.sampled_from(CONTENT_TYPES)),
        st.builds(lambda v: _field("Location", v), st.sampled_from(LOCATIONS)),
        st.builds(lambda v: _field("Server", v), FIELD_TEXT),
        st.sampled_from([b"Connection: close", b"Connection: upgrade", b"Upgrade: h2c"]),
        st.sampled_from([b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: identity",
                         b"Transfer-Encoding: chunked, chunked", b"Transfer-Encoding: xyz"]),
        st.builds(lambda n: b"Content-Length: " + n, st.sampled_from(INTERESTING_NUMBERS)),
        st.builds(lambda n, v: _field("X-" + n, v), TOKEN, FIELD_TEXT),
        st.sampled_from([b"X-Folded: a\r\n b", b"Bad Name: x", b": empty", b"X\x00: y",
                         b"X-Esc: \x1b[2J\x1b]0;title\x07", b"X-C1: \x9b31m", b"NoColon",
                         b"X-Long: " + b"v" * 5000]),
    )


@functools.lru_cache(maxsize=64)
def _encode(body: bytes, coding: str | None) -> bytes:
    """``body`` in ``coding`` (fast levels: the decoder does the same work either way)."""
    if coding in (None, "identity", "x-bogus"):
        return body
    out = body
    for c in [c.strip() for c in coding.split(",")]:
        if c == "gzip":
            out = gzip.compress(out, compresslevel=1, mtime=0)
        elif c == "deflate":
            out = zlib.compress(out, 1)
        elif c == "deflate-raw":
            co = zlib.compressobj(1, wbits=-15)
            out = co.compress(out) + co.flush()
        elif c == "br":
            out = brotli.compress(out, quality=1)
        elif c == "zstd":
            out = zstandard.ZstdCompressor(level=1).compress(out)
    return out


def bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"", b"hello\n", b"<!doctype html><title>x</title>\xff\xfe",
                         b'{"a": [1, 2, 3]}', b"\x1b[2J\x1b[31mred\x9b"]),
        st.builds(lambda n: b"z" * n, st.sampled_from([1000, 70_000, 300_000])),
        st.builds(lambda n: b"\0" * n, st.sampled_from([1 << 20, 4 << 20])),  # bombs once encoded
    )


def _wild(draw: st.DrawFn, sane: st.SearchStrategy[Any], wild: st.SearchStrategy[Any],
          is_wild: bool) -> Any:
    return draw(wild if is_wild else sane)


@st.composite
def h1_message(draw: st.DrawFn) -> bytes:
    """One HTTP/1.1 response from the grammar: 1xx responses, then a final one. One in three
    draws from the wild pools too (odd versions, statuses, separators, line ends, fields,
    framings and codings); the others are correct responses."""
    wild = draw(st.integers(0, 2)) == 0
    eol = _wild(draw, st.just(b"\r\n"), st.sampled_from([b"\r\n"] * 4 + [b"\n", b"\r", b"\n\r"]),
                wild)
    fields_of = h1_fields() if wild else sane_h1_fields()
    out = b""
    for _ in range(draw(st.integers(0, 3)) if draw(st.integers(0, 4)) == 0 else 0):
        code = _wild(draw, st.sampled_from([100, 102, 103]),
                     st.sampled_from([100, 102, 103, 101, 199, 150]), wild)
        extra = draw(st.lists(fields_of, max_size=2))
        out += f"HTTP/1.1 {code} Info".encode() + eol + b"".join(f + eol for f in extra) + eol
    version = _wild(draw, st.sampled_from([b"HTTP/1.1"] * 4 + [b"HTTP/1.0"]),
                    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2",
                                     b"HTTP/0.9", b"http/1.1", b"HTTP/11"]), wild)
    statuses = [200, 200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 404, 500, 503]
    status = _wild(draw, st.sampled_from(statuses),
                   st.one_of(st.sampled_from(statuses), st.integers(0, 1000)), wild)
    reason = _wild(draw, st.sampled_from(["OK", "", "Not Found", "Moved"]),
                   st.one_of(st.sampled_from(["Ça va", "a\x7fb", "\x1b[2Jowned", "x" * 300]),
                             FIELD_TEXT), wild)
    sep = _wild(draw, st.just(b" "), st.sampled_from([b" ", b"  ", b"\t"]), wild)
    head = version + sep + str(status).encode() + (b" " + reason.encode("utf-8")
                                                   if reason or draw(st.booleans()) else b"")
    fields = draw(st.lists(fields_of, max_size=6))
    body = draw(bodies())
    coding = _wild(draw, st.sampled_from(SANE_CODINGS), st.sampled_from(CODINGS), wild)
    encoded = _encode(body, coding)
    if coding and wild and draw(st.integers(0, 2)) == 0:   # a coding that does not decode
        encoded = encoded[: len(encoded) // 2] + b"\x00garbage"
    if coding:
        fields.append(_field("Content-Encoding", coding))
    framing = _wild(draw, st.sampled_from(["length", "length", "chunked", "close", "none"]),
                    st.sampled_from(["length", "chunked", "close", "none", "both", "double"]),
                    wild)
    payload = encoded
    if framing in ("length", "both", "double"):
        n = len(encoded)
        spelled = str(n).encode()
        if wild:
            n += draw(st.sampled_from([0, 0, 1, -1, 100, -100]))
            spelled = draw(st.sampled_from([str(n).encode()] * 3 + INTERESTING_NUMBERS))
        fields.append(b"Content-Length: " + spelled)
        if framing == "double":
            fields.append(b"Content-Length: " + str(len(encoded) + 1).encode())
    if framing in ("chunked", "both"):
        fields.append(b"Transfer-Encoding: chunked")
        payload = draw(chunked(encoded, eol, wild))
    if framing == "close":
        fields.append(b"Connection: close")
    if framing == "none":
        payload = b""
    out += head + eol + b"".join(f + eol for f in fields) + eol + payload
    return out


@st.composite
def chunked(draw: st.DrawFn, body: bytes, eol: bytes = b"\r\n", wild: bool = True) -> bytes:
    """``body`` in chunks (RFC 9112 §7.1), sizes spelt correctly or not, extensions, trailers."""
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out = b""
    for piece in [*pieces, b""]:
        if not wild:
            out += b"%x" % len(piece) + eol + piece + (eol if piece else b"")
            continue
        size = draw(st.sampled_from([b"%x" % len(piece)] * 6 + [
            b"%X" % len(piece), b"000%x" % len(piece), b"%x " % len(piece), b"0x%x" % len(piece),
            b"%x" % (len(piece) + 1), b"-%x" % len(piece), b"ffffffffffffffffffff", b"",
            b"%x" % max(len(piece) - 1, 0)]))
        ext = draw(st.sampled_from([b""] * 6 + [b";a=b", b"; x", b";" + b"e" * 200]))
        out += size + ext + eol + piece + (eol if piece else b"")
    trailers = draw(st.lists(st.sampled_from([b"X-Trailer: 1", b"Content-Length: 99",
                                              b"bad trailer"] if wild else [b"X-Trailer: 1"]),
                             max_size=2))
    return out + b"".join(t + eol for t in trailers) + eol


@st.composite
def h1_cases(draw: st.DrawFn) -> H1Case:
    payload = draw(h1_message())
    if draw(st.integers(0, 5)) == 0:               # something after the response
        payload += draw(st.one_of(h1_message(), st.binary(max_size=32)))
    if draw(st.booleans()):                        # half are mutated
        payload = mutate(payload, draw(st.lists(byte_op(), min_size=1, max_size=3)))
    then = draw(THEN)
    args = draw(st.sampled_from([(), (), (), (), ("-X", "HEAD"), ("-X", "POST"),
                                 ("--no-follow",), ("--max-body", "100"),
                                 ("--max-decoded", "1000"), ("--max-redirects", "2")]))
    splits = tuple(draw(st.lists(st.integers(1, max(1, len(payload))), max_size=3)))
    return H1Case(payload, then, (*args, *_then_args(then)), splits)


# --------------------------------------------------------------------------- HTTP/2

@dataclass(frozen=True)
class H2Case:
    """An HTTP/2 server's bytes after the client's connection preface (prior knowledge)."""

    payload: bytes
    then: str = "fin"
    args: tuple[str, ...] = ()
    splits: tuple[int, ...] = ()


@dataclass
class RawFrame:
    type: int
    flags: int
    stream_id: int
    payload: bytes
    length: int | None = None  # the length field, when it lies about the payload

    def wire(self) -> bytes:
        n = len(self.payload) if self.length is None else self.length
        return ((n & 0xFFFFFF).to_bytes(3, "big") + bytes([self.type & 0xFF, self.flags & 0xFF])
                + (self.stream_id & 0xFFFFFFFF).to_bytes(4, "big") + self.payload)

    @classmethod
    def of(cls, frame: hf.Frame) -> RawFrame:
        data = frame.serialize()
        return cls(data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9:])


SANE_H2_STATUSES = ["200", "200", "200", "204", "301", "302", "304", "404", "500"]
H2_STATUSES = [*SANE_H2_STATUSES, "103", "100", "abc", "20", "2000", "", "099", " 200", "2OO",
               "-1", "200\x00"]


def sane_h2_fields() -> st.SearchStrategy[list[tuple[str, str]]]:
    one = st.one_of(
        st.tuples(st.just("content-type"), st.sampled_from(SANE_CONTENT_TYPES)),
        st.tuples(st.just("location"), st.sampled_from(SANE_LOCATIONS)),
        st.tuples(st.just("server"), SANE_TEXT.map(lambda v: v.strip() or "x")),
        st.tuples(st.sampled_from(["set-cookie", "vary", "x-id"]), st.just("a=b")),
        st.tuples(st.just("alt-svc"), st.just('h3=":443"; ma=86400')),
    )
    return st.lists(one, max_size=5)


def h2_fields() -> st.SearchStrategy[list[tuple[str, str]]]:
    one = st.one_of(
        st.tuples(st.just("content-type"), st.sampled_from(CONTENT_TYPES)),
        st.tuples(st.just("location"), st.sampled_from(LOCATIONS)),
        st.tuples(st.just("server"), FIELD_TEXT),
        st.tuples(st.just("content-length"),
                  st.sampled_from([s.decode("latin-1") for s in INTERESTING_NUMBERS])),
        st.tuples(st.sampled_from(["connection", "transfer-encoding", "keep-alive", "upgrade",
                                   "te", "Upper-Case", ":path", ":status", ":weird", "x y",
                                   "set-cookie", "alt-svc", "x-esc"]), FIELD_TEXT),
        st.tuples(st.just("x-esc"), st.sampled_from(["\x1b[2J", "\x1b]0;title\x07", "\x9b"])),
        st.tuples(st.just("x-big"), st.sampled_from(["v" * 5000, "w" * 40_000])),
    )
    return st.lists(one, max_size=5)


def _header_block(encoder: hpack.Encoder, fields: list[tuple[str, str]], huffman: bool) -> bytes:
    return bytes(encoder.encode([(n.encode("utf-8", "surrogateescape"),
                                  v.encode("utf-8", "surrogateescape")) for n, v in fields],
                                huffman=huffman))


SANE_CONTROL = ["ping", "ping_ack", "window", "priority", "settings", "settings_ack", "altsvc",
                "unknown"]
WILD_CONTROL = [*SANE_CONTROL, "rst", "goaway", "push", "data_other", "headers_other", "empty_data"]


@st.composite
def h2_control_frame(draw: st.DrawFn, encoder: hpack.Encoder, wild: bool = True) -> RawFrame:
    kind = draw(st.sampled_from(WILD_CONTROL if wild else SANE_CONTROL))
    sid = draw(st.sampled_from([0, 1, 1, 3, 2, 0x7FFFFFFF]))
    if kind in ("ping", "ping_ack"):
        f: hf.Frame = hf.PingFrame(0, opaque_data=draw(st.binary(min_size=8, max_size=8)),
                                   flags=["ACK"] if kind == "ping_ack" else [])
    elif kind == "window":
        f = hf.WindowUpdateFrame(draw(st.sampled_from([0, 1])), window_increment=draw(
            st.sampled_from([1, 65535] + ([0, 0x7FFFFFFF] if wild else []))))
    elif kind == "priority":
        f = hf.PriorityFrame(draw(st.sampled_from([1, 3] + ([5, 0x7FFFFFFF] if wild else []))),
                             depends_on=draw(st.sampled_from([0, 1, 3] if wild else [0])),
                             stream_weight=draw(st.integers(0, 255)))
    elif kind == "rst":
        f = hf.RstStreamFrame(sid or 1, error_code=draw(st.integers(0, 15)))
    elif kind == "goaway":
        f = hf.GoAwayFrame(0, last_stream_id=draw(st.sampled_from([0, 1, 3, 0x7FFFFFFF])),
                           error_code=draw(st.integers(0, 15)),
                           additional_data=draw(st.sampled_from([b"", b"bye", b"\x1b[2J"])))
    elif kind == "settings":
        f = hf.SettingsFrame(0, settings=draw(h2_settings(wild)))
    elif kind == "settings_ack":
        f = hf.SettingsFrame(0, flags=["ACK"])
    elif kind == "push":
        block = _header_block(encoder, [(":method", "GET"), (":path", "/pushed"),
                                        (":scheme", "http"), (":authority", "x")], False)
        f = hf.PushPromiseFrame(1, promised_stream_id=2, data=block, flags=["END_HEADERS"])
    elif kind == "altsvc":
        f = hf.AltSvcFrame(0, origin=b"http://127.0.0.1", field=b'h3=":443"')
    elif kind == "unknown":
        return RawFrame(draw(st.integers(0x0A, 0xFF)), draw(st.integers(0, 255)), sid,
                        draw(st.binary(max_size=16)))
    elif kind == "data_other":
        f = hf.DataFrame(3, data=b"other")
        return dataclasses.replace(RawFrame.of(f), stream_id=draw(st.sampled_from([0, 3, 5])))
    elif kind == "headers_other":
        f = hf.HeadersFrame(3, data=_header_block(encoder, [(":status", "200")], False),
                            flags=["END_HEADERS"])
        return dataclasses.replace(RawFrame.of(f), stream_id=draw(st.sampled_from([2, 3, 0])))
    else:
        f = hf.DataFrame(1, data=b"")
    return RawFrame.of(f)


def h2_settings(wild: bool = True) -> st.SearchStrategy[dict[int, int]]:
    if not wild:   # values RFC 9113 §6.5.2 allows
        return st.dictionaries(
            st.sampled_from([1, 3, 6, 0x99]), st.sampled_from([0, 100, 4096, 65535, 2**31 - 1]),
            max_size=3).map(lambda d: {**d, **{4: 65535, 5: 16384}})
    return st.dictionaries(
        st.sampled_from([1, 2, 3, 4, 5, 6, 8, 0x99]),
        st.sampled_from([0, 1, 2, 100, 4096, 16384, 65535, 2**24 - 1, 2**24, 2**31 - 1, 2**31,
                         2**32 - 1]),
        max_size=4)


@st.composite
def h2_frames(draw: st.DrawFn) -> list[RawFrame]:
    """A response on stream 1 as a server sends it, with control frames mixed in. One in
    three draws from the wild pools (odd statuses and fields, RST/GOAWAY/PUSH_PROMISE and
    frames on other streams, settings out of range, oversized DATA)."""
    wild = draw(st.integers(0, 2)) == 0
    encoder = hpack.Encoder()
    huffman = draw(st.booleans())
    frames: list[RawFrame] = []
    if not wild or draw(st.integers(0, 7)):
        settings = draw(h2_settings(wild)) if draw(st.booleans()) else {}
        frames.append(RawFrame.of(hf.SettingsFrame(0, settings=settings)))
    if draw(st.booleans()):
        frames.append(RawFrame.of(hf.SettingsFrame(0, flags=["ACK"])))
    for _ in range(draw(st.integers(0, 2)) if draw(st.integers(0, 4)) == 0 else 0):
        block = _header_block(encoder, [(":status", draw(st.sampled_from(["100", "103"])))],
                              huffman)
        frames.append(RawFrame.of(hf.HeadersFrame(1, data=block, flags=["END_HEADERS"])))
    status = draw(st.sampled_from(H2_STATUSES if wild else SANE_H2_STATUSES))
    fields = ([(":status", status)] if not wild or draw(st.integers(0, 9)) else [])
    fields += draw(h2_fields() if wild else sane_h2_fields())
    if wild and draw(st.integers(0, 9)) == 0:
        fields.reverse()   # a pseudo-header after regular ones
    body = draw(bodies())
    coding = draw(st.sampled_from(CODINGS if wild else SANE_CODINGS))
    body = _encode(body, coding)
    if coding:
        fields.append(("content-encoding", coding))
    if draw(st.integers(0, 3)) == 0:
        fields.append(("content-length", str(len(body) + (draw(st.sampled_from([0, 1, -1]))
                                                          if wild else 0))))
    block = _header_block(encoder, fields, huffman)
    end_on_headers = not body and draw(st.booleans())
    cuts = set(range(16384, len(block), 16384)) | set(draw(st.lists(st.integers(0, len(block)),
                                                                    max_size=2)))
    cuts = sorted(cuts - {0, len(block)})
    parts = [block[a:b] for a, b in zip([0, *cuts], [*cuts, len(block)], strict=True)]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        flags = (["END_HEADERS"] if last else []) + (["END_STREAM"] if end_on_headers and i == 0
                                                     else [])
        if i == 0:
            h = hf.HeadersFrame(1, data=part, flags=flags)
            if len(part) < 16000 and draw(st.integers(0, 5)) == 0:
                h.flags.add("PADDED")
                h.pad_length = draw(st.integers(0, 255))
            frames.append(RawFrame.of(h))
        else:
            frames.append(RawFrame.of(hf.ContinuationFrame(1, data=part, flags=flags)))
    if not end_on_headers:
        size = draw(st.sampled_from([16384, 16384, 1, 100] + ([16385] if wild else [])))
        if len(body) > 4096:
            size = max(size, 16384)   # not a million frames of one byte
        chunks = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
        trailers = draw(st.integers(0, 5)) == 0
        for i, data in enumerate(chunks):
            last = i == len(chunks) - 1 and not trailers
            d = hf.DataFrame(1, data=data, flags=["END_STREAM"] if last else [])
            if len(data) < 16000 and draw(st.integers(0, 7)) == 0:
                d.flags.add("PADDED")
                d.pad_length = draw(st.integers(0, 255))
            frames.append(RawFrame.of(d))
        if trailers:
            block = _header_block(encoder, [("x-trailer", "1")], huffman)
            frames.append(RawFrame.of(hf.HeadersFrame(1, data=block,
                                                      flags=["END_HEADERS", "END_STREAM"])))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(frames)))
        frames.insert(at, draw(h2_control_frame(encoder, wild)))
    return frames


def frame_ops(max_ops: int = 3) -> st.SearchStrategy[list[Op]]:
    idx = st.integers(0, 64)
    op = st.one_of(
        st.tuples(st.just("length"), idx, st.sampled_from([0, 1, 8, 9, 16384, 16385, 2**24 - 1,
                                                           -1, +1])),
        st.tuples(st.just("type"), idx, st.integers(0, 255)),
        st.tuples(st.just("flags"), idx, st.integers(1, 255)),
        st.tuples(st.just("stream"), idx, st.sampled_from([0, 1, 2, 3, 2**31 - 1, 2**31 | 1])),
        st.tuples(st.just("payload"), idx, byte_ops(2)),
        st.tuples(st.just("dup"), idx),
        st.tuples(st.just("drop"), idx),
        st.tuples(st.just("swap"), idx),
    )
    return st.lists(op, max_size=max_ops)


def mutate_frames(frames: list[RawFrame], ops: Sequence[Op]) -> list[RawFrame]:
    frames = [dataclasses.replace(f) for f in frames]
    for op in ops:
        if not frames:
            break
        kind, i = op[0], op[1] % len(frames)
        f = frames[i]
        if kind == "length":
            f.length = (len(f.payload) + op[2]) if op[2] in (-1, 1) else op[2]
        elif kind == "type":
            f.type = op[2]
        elif kind == "flags":
            f.flags ^= op[2]
        elif kind == "stream":
            f.stream_id = op[2]
        elif kind == "payload":
            f.payload = mutate(f.payload, op[2])
        elif kind == "dup":
            frames.insert(i, dataclasses.replace(f))
        elif kind == "drop":
            del frames[i]
        elif kind == "swap" and i + 1 < len(frames):
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
    return frames


@st.composite
def h2_payload(draw: st.DrawFn) -> bytes:
    frames = draw(h2_frames())
    if draw(st.booleans()):                        # half are mutated frame by frame
        frames = mutate_frames(frames, draw(frame_ops()))
    payload = b"".join(f.wire() for f in frames)
    if draw(st.integers(0, 4)) == 0:               # and some byte by byte
        payload = mutate(payload, draw(st.lists(byte_op(), min_size=1, max_size=2)))
    return payload


@st.composite
def h2_cases(draw: st.DrawFn) -> H2Case:
    payload = draw(h2_payload())
    then = draw(THEN)
    args = draw(st.sampled_from([(), (), (), (), ("-X", "HEAD"), ("--no-follow",),
                                 ("--max-body", "100"), ("--max-redirects", "2")]))
    splits = tuple(draw(st.lists(st.integers(1, max(1, len(payload))), max_size=3)))
    return H2Case(payload, then, ("--http2", *args, *_then_args(then)), splits)


def describe_h2(payload: bytes, limit: int = 40) -> list[str]:
    """The frames of ``payload`` as a reader would cut them (for reports)."""
    out, i = [], 0
    while i + 9 <= len(payload) and len(out) < limit:
        n = int.from_bytes(payload[i:i + 3], "big")
        sid = int.from_bytes(payload[i + 5:i + 9], "big")
        out.append(f"type={payload[i + 3]} flags={payload[i + 4]:#x} stream={sid} len={n} "
                   f"payload={payload[i + 9:i + 9 + min(n, 24)]!r}")
        i += 9 + n
    if i < len(payload):
        out.append(f"... {len(payload) - i} bytes left over")
    return out


# --------------------------------------------------------------------------- DNS

QNAMES = ["fuzz.test", "www.fuzz.test", "xn--bcher-kva.fuzz.test", "a-b.c.d.fuzz.test"]
CNAME_TARGETS = ["alias.fuzz.test.", "$q", "target.other.", "a.b.c.d.e.f.", "alias2.fuzz.test.",
                 "x" * 63 + ".test.", "ns1.test.", "."]
NS_NAMES = ["ns1.$zone", "ns2.$zone", "ns.elsewhere.", "$q", "ns.$q", "a.root.fuzz.",
            "ns." + "y" * 60 + ".other."]
ADDRESSES = ["127.0.0.1"] * 6 + ["127.0.0.2", "::1", "10.0.0.1", "0.0.0.0", "fe80::1",
                                 "255.255.255.255"]


@dataclass(frozen=True)
class DnsPlan:
    """How the DNS server answers one query; the n-th query for a (name, type) gets the
    case's n-th plan (the last one repeats)."""

    kind: str = "answer"   # answer referral nxdomain nodata servfail refused notimp garbage drop
    addresses: tuple[str, ...] = ("127.0.0.1",)
    cnames: tuple[str, ...] = ()      # qname -> cnames[0] -> cnames[1] ...; "$q" is the qname
    at_end: bool = True               # the records sit at the end of the CNAME chain
    https: bool = False
    zone: str = "parent"              # referral: parent self root other child
    ns: tuple[str, ...] = ("ns1.$zone",)
    glue: tuple[str, ...] = ("127.0.0.1",)
    aa: bool = True
    tc: bool = False
    qr: bool = True
    id_delta: int = 0
    question: str = "same"            # same none other twice type
    ttl: int = 300
    before: tuple[bytes, ...] = ()    # datagrams sent ahead of the answer
    repeat: int = 1
    ops: tuple[Op, ...] = ()          # mutations of the answer's wire form
    tcp_length_delta: int = 0


@dataclass(frozen=True)
class DnsCase:
    view: str                         # "resolver" (--resolver) or "walk" (--root-hints)
    host: str
    plans: tuple[DnsPlan, ...]


def dns_ops() -> st.SearchStrategy[list[Op]]:
    header = st.tuples(st.just("u16"), st.sampled_from([2, 4, 6, 8, 10]),
                       st.sampled_from([0, 1, 2, 0xFF, 0xFFFF]))
    pointer = st.tuples(st.just("pointer"), st.integers(0, 1 << 12), st.integers(0, 1 << 12))
    return st.lists(st.one_of(byte_op(), header, pointer), max_size=3)


def mutate_dns(wire: bytes, ops: Sequence[Op]) -> bytes:
    for op in ops:
        if op[0] == "u16":
            if len(wire) >= op[1] + 2:
                wire = wire[:op[1]] + struct.pack("!H", op[2]) + wire[op[1] + 2:]
        elif op[0] == "pointer":   # a compression pointer to anywhere, itself included
            if len(wire) > 12:
                at = 12 + op[1] % (len(wire) - 12)
                wire = wire[:at] + struct.pack("!H", 0xC000 | (op[2] % len(wire))) + wire[at + 2:]
        else:
            wire = mutate(wire, [op])
    return wire


@st.composite
def dns_plans(draw: st.DrawFn) -> DnsPlan:
    kind = draw(st.sampled_from(["answer"] * 5 + ["referral"] * 4 + [
        "nxdomain", "nodata", "servfail", "refused", "notimp", "garbage", "drop"]))
    flip = st.integers(0, 9).map(lambda n: n == 0)
    return DnsPlan(
        kind=kind,
        addresses=tuple(draw(st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3))),
        cnames=tuple(draw(st.lists(st.sampled_from(CNAME_TARGETS), max_size=3)))
        if draw(flip) or draw(flip) else (),
        at_end=not draw(flip),
        https=draw(st.booleans()),
        zone=draw(st.sampled_from(["parent", "parent", "self", "root", "other", "child"])),
        ns=tuple(draw(st.lists(st.sampled_from(NS_NAMES), min_size=1, max_size=3))),
        glue=tuple(draw(st.lists(st.sampled_from(ADDRESSES), max_size=3))),
        aa=kind != "referral" and not draw(flip),
        tc=draw(flip),
        qr=not draw(flip),
        id_delta=1 if draw(flip) else 0,
        question="same" if not draw(flip) else draw(st.sampled_from(
            ["none", "other", "twice", "type"])),
        ttl=draw(st.sampled_from([300, 0, 2**31 - 1, 2**32 - 1])),
        before=tuple(draw(st.lists(st.binary(max_size=40), max_size=1))) if draw(flip) else (),
        repeat=2 if draw(flip) else 1,
        ops=tuple(draw(dns_ops())) if draw(st.integers(0, 2)) == 0 else (),
        tcp_length_delta=draw(st.sampled_from([0] * 8 + [1, -1, 100, -2])),
    )


@st.composite
def sane_dns_plans(draw: st.DrawFn, view: str) -> list[DnsPlan]:
    """What correct servers answer: for the walk, referrals down to the zone, then the
    answer; for a resolver, the answer (through an in-zone CNAME chain, sometimes)."""
    addresses = tuple(draw(st.lists(st.sampled_from(["127.0.0.1", "::1"]), min_size=1,
                                    max_size=2, unique=True)))
    if "127.0.0.1" not in addresses:
        addresses = ("127.0.0.1", *addresses)
    cnames = tuple(draw(st.sampled_from([(), (), ("alias.fuzz.test.",),
                                         ("alias.fuzz.test.", "alias2.fuzz.test.")])))
    answer = DnsPlan("answer", addresses, cnames, https=draw(st.booleans()),
                     ttl=draw(st.sampled_from([300, 0, 86400])))
    if view == "resolver":
        return [answer]
    ns = tuple(draw(st.sampled_from([("ns1.$zone",), ("ns1.$zone", "ns2.$zone")])))
    glue = ("127.0.0.1",) * len(ns)
    referral = DnsPlan("referral", zone="parent", ns=ns, glue=glue, aa=False)
    down = DnsPlan("referral", zone="self", ns=ns, glue=glue, aa=False)
    return draw(st.sampled_from([[answer], [referral, answer], [referral, down, answer]]))


@st.composite
def dns_cases(draw: st.DrawFn) -> DnsCase:
    """Two in three cases are correct answers (so the journey goes on to connect); the others
    draw every plan from the wild pool: any kind, flags, ids, questions, wire mutations."""
    view = draw(st.sampled_from(["resolver", "walk"]))
    host = draw(st.sampled_from(QNAMES))
    if draw(st.integers(0, 2)):
        plans = draw(sane_dns_plans(view))
        if draw(st.booleans()):   # one of them replaced by a wild one
            plans[draw(st.integers(0, len(plans) - 1))] = draw(dns_plans())
        return DnsCase(view, host, tuple(plans))
    return DnsCase(view, host, tuple(draw(st.lists(dns_plans(), min_size=1, max_size=4))))


def _names(template: str, qname: dns.name.Name, zone: dns.name.Name) -> dns.name.Name:
    text = template.replace("$q", qname.to_text()).replace("$zone", zone.to_text())
    text = text.replace("..", ".")
    return dns.name.from_text(text if text != "" else ".")


def build_dns_answer(query: dns.message.Message, plan: DnsPlan) -> bytes:
    """The answer ``plan`` describes to ``query``, on the wire, mutations applied."""
    if plan.kind == "garbage":
        return mutate(b"\x00" * 12 + b"garbage", list(plan.ops))
    q = query.question[0]
    qname, rdtype = q.name, q.rdtype
    r = dns.message.make_response(query)
    r.flags |= dns.flags.RA
    if plan.aa:
        r.flags |= dns.flags.AA
    if plan.tc:
        r.flags |= dns.flags.TC
    if plan.kind == "answer":
        owner = qname
        for target in plan.cnames:
            t = _names(target, qname, qname)
            r.answer.append(dns.rrset.from_text(owner, plan.ttl, "IN", "CNAME", t.to_text()))
            owner = t
        if plan.at_end or not plan.cnames:
            _add_records(r, owner if plan.at_end else qname, rdtype, plan)
    elif plan.kind == "referral":
        zone = {"parent": qname.parent() if qname != dns.name.root else qname,
                "self": qname, "root": dns.name.root,
                "other": dns.name.from_text("other."),
                "child": dns.name.from_text("sub", qname)}[plan.zone]
        names = [_names(n, qname, zone) for n in plan.ns]
        r.authority.append(dns.rrset.from_text_list(zone, plan.ttl, "IN", "NS",
                                                    [n.to_text() for n in names]))
        for name, address in zip(names, plan.glue, strict=False):
            kind = "AAAA" if ":" in address else "A"
            r.additional.append(dns.rrset.from_text(name, plan.ttl, "IN", kind, address))
    elif plan.kind in ("nxdomain", "nodata"):
        if plan.kind == "nxdomain":
            r.set_rcode(dns.rcode.NXDOMAIN)
        zone = qname.parent() if qname != dns.name.root else qname
        r.authority.append(dns.rrset.from_text(zone, plan.ttl, "IN", "SOA",
                                               "ns1.test. host.test. 1 7200 900 1209600 300"))
    else:
        r.set_rcode({"servfail": dns.rcode.SERVFAIL, "refused": dns.rcode.REFUSED,
                     "notimp": dns.rcode.NOTIMP}[plan.kind])
    if plan.question == "none":
        r.question = []
    elif plan.question == "other":
        r.question = [dns.rrset.RRset(dns.name.from_text("other.test."), q.rdclass, rdtype)]
    elif plan.question == "twice":
        r.question = [q, q]
    elif plan.question == "type":
        r.question = [dns.rrset.RRset(qname, q.rdclass, dns.rdatatype.MX)]
    wire = bytearray(r.to_wire())
    wire[0:2] = struct.pack("!H", (query.id + plan.id_delta) & 0xFFFF)
    if not plan.qr:
        wire[2] &= 0x7F
    return mutate_dns(bytes(wire), plan.ops)


def _add_records(r: dns.message.Message, owner: dns.name.Name, rdtype: int,
                 plan: DnsPlan) -> None:
    if rdtype == dns.rdatatype.A:
        texts = [a for a in plan.addresses if ":" not in a]
    elif rdtype == dns.rdatatype.AAAA:
        texts = [a for a in plan.addresses if ":" in a]
    elif rdtype == dns.rdatatype.HTTPS and plan.https:
        texts = ['1 . alpn="h2,http/1.1" ipv4hint=127.0.0.1', "0 svc.fuzz.test."]
    else:
        texts = []
    if texts:
        r.answer.append(dns.rrset.from_text_list(owner, plan.ttl, "IN",
                                                 dns.rdatatype.to_text(rdtype), texts))


class DnsResponder:
    """Answers each query by the current case's plans: the n-th query for a (name, type)
    gets plan n (the last repeats). Keeps what it sent, for the reproduction."""

    def __init__(self, plans: Sequence[DnsPlan]) -> None:
        self.plans = list(plans)
        self.counts: dict[tuple[str, int], int] = {}
        self.sent: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def plan_for(self, query: dns.message.Message) -> DnsPlan:
        q = query.question[0]
        key = (q.name.to_text().lower(), q.rdtype)
        with self.lock:
            n = self.counts.get(key, 0)
            self.counts[key] = n + 1
        return self.plans[min(n, len(self.plans) - 1)]

    def udp(self, data: bytes) -> list[bytes]:
        query = dns.message.from_wire(data)
        plan = self.plan_for(query)
        if plan.kind == "drop":
            return []
        answer = build_dns_answer(query, plan)
        out = [*plan.before, *[answer] * plan.repeat]
        self.sent.extend(("udp", d) for d in out)
        return out

    def tcp(self, data: bytes) -> bytes | None:
        query = dns.message.from_wire(data)
        plan = self.plan_for(query)
        if plan.kind == "drop":
            return None
        answer = build_dns_answer(query, dataclasses.replace(plan, tc=False))
        length = max(0, min(0xFFFF, len(answer) + plan.tcp_length_delta))
        out = struct.pack("!H", length) + answer
        self.sent.append(("tcp", out))
        return out


class SinkResponder(DnsResponder):
    """A well-behaved resolver: every name has 127.0.0.1 (``answer``) or does not exist."""

    def __init__(self, answer: bool) -> None:
        super().__init__([DnsPlan("answer") if answer else DnsPlan("nxdomain")])

    def plan_for(self, query: dns.message.Message) -> DnsPlan:
        return self.plans[0]


ROOT_HINTS = ".  3600000  NS  a.root.fuzz.\na.root.fuzz.  3600000  A  127.0.0.1\n"


# --------------------------------------------------------------------------- TLS

@dataclass(frozen=True)
class TlsCase:
    """mode raw: ``raw`` instead of a ServerHello. mode flight: a real handshake whose first
    flight has ``flight_ops`` applied. mode after: a real handshake, then the response (h1 or
    h2 after ALPN) in ``pieces``, close_notify before piece ``close_notify_at`` (None: never),
    the records mutated by ``record_ops``."""

    mode: str
    version: str = "1.3"                     # the server's highest version
    alpn: tuple[str, ...] = ("h2", "http/1.1")
    raw: bytes = b""
    flight_ops: tuple[Op, ...] = ()
    h1: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    h2: bytes = b""
    pieces: tuple[int, ...] = ()
    close_notify_at: int | None = None
    record_ops: tuple[Op, ...] = ()
    then: str = "fin"
    args: tuple[str, ...] = ()


def tls_record_bytes(rtype: int, payload: bytes, version: int = 0x0303,
                     length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return struct.pack("!BHH", rtype, version, n & 0xFFFF) + payload


@st.composite
def tls_records(draw: st.DrawFn) -> bytes:
    """One record, plausible or not: alerts, CCS, handshake messages, data, unknown types."""
    rtype = draw(st.sampled_from([21, 21, 20, 22, 22, 23, 24, 0, 255, 25]))
    version = draw(st.sampled_from([0x0303] * 4 + [0x0301, 0x0304, 0x0300, 0xFEFD, 0x0202]))
    if rtype == 21:
        payload = draw(st.one_of(
            st.tuples(st.sampled_from([1, 2, 0, 255]),
                      st.sampled_from([0, 10, 20, 40, 42, 48, 70, 80, 86, 90, 109, 110, 112,
                                       116, 120, 255])).map(bytes),
            st.binary(max_size=4)))
    elif rtype == 20:
        payload = draw(st.sampled_from([b"\x01", b"\x00", b"\x01\x01", b""]))
    elif rtype == 22:
        payload = draw(handshake_messages())
    else:
        payload = draw(st.binary(max_size=64))
    length = None if draw(st.integers(0, 5)) else draw(st.sampled_from([0, 1, 16384, 16385,
                                                                        18432, 0xFFFF]))
    return tls_record_bytes(rtype, payload, version, length)


@st.composite
def handshake_messages(draw: st.DrawFn) -> bytes:
    mtype = draw(st.sampled_from([2, 2, 2, 11, 12, 13, 14, 4, 8, 15, 20, 24, 0, 1, 255]))
    if mtype == 2:   # a ServerHello (RFC 8446 §4.1.3), fields drawn
        sid = draw(st.binary(max_size=32))
        exts = b""
        if draw(st.booleans()):
            exts += b"\x00\x2b\x00\x02" + draw(st.sampled_from([b"\x03\x04", b"\x03\x03",
                                                                 b"\x7f\x1c", b"\x03\x05"]))
        if draw(st.booleans()):
            share = draw(st.binary(min_size=0, max_size=40))
            exts += b"\x00\x33" + struct.pack("!HHH", len(share) + 4, 0x001D, len(share)) + share
        if draw(st.booleans()):
            exts += b"\x00\x10\x00\x05\x00\x03\x02h2"
        body = (draw(st.sampled_from([b"\x03\x03", b"\x03\x01", b"\x03\x04", b"\x02\x00"]))
                + draw(st.binary(min_size=32, max_size=32)) + bytes([len(sid)]) + sid
                + draw(st.sampled_from([b"\x13\x01", b"\xc0\x2f", b"\x00\x00", b"\xff\xff"]))
                + b"\x00" + struct.pack("!H", len(exts)) + exts)
    else:
        body = draw(st.binary(max_size=48))
    n = len(body) + draw(st.sampled_from([0] * 5 + [1, -1, 1000, 0xFFFFFF - len(body)]))
    return bytes([mtype]) + (n & 0xFFFFFF).to_bytes(3, "big") + body


def record_ops(max_ops: int = 3) -> st.SearchStrategy[list[Op]]:
    return st.lists(record_op(), max_size=max_ops)


def record_op() -> st.SearchStrategy[Op]:
    idx = st.integers(0, 64)
    return st.one_of(
        st.tuples(st.just("rflip"), idx, st.integers(0, 1 << 16), st.integers(1, 255)),
        st.tuples(st.just("rtrunc"), idx, st.integers(0, 64)),
        st.tuples(st.just("rdup"), idx),
        st.tuples(st.just("rdrop"), idx),
        st.tuples(st.just("rswap"), idx),
        st.tuples(st.just("rinsert"), idx, tls_records()),
        st.tuples(st.just("rtype"), idx, st.sampled_from([20, 21, 22, 23, 24, 0, 255])),
        st.tuples(st.just("rversion"), idx, st.sampled_from([0x0301, 0x0300, 0x0304, 0xFFFF])),
        st.tuples(st.just("rlength"), idx, st.sampled_from([-1, 1, 0, 16384 + 256, 0xFFFF])),
        st.tuples(st.just("rcut"), idx),
    )


def split_records(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 5 <= len(data):
        n = struct.unpack("!H", data[i + 3:i + 5])[0]
        out.append(data[i:i + 5 + n])
        i += 5 + n
    if i < len(data):
        out.append(data[i:])
    return out


def mutate_records(records: list[bytes], ops: Sequence[Op]) -> list[bytes]:
    records = list(records)
    for op in ops:
        kind = op[0]
        if kind == "rinsert":
            records.insert(op[1] % (len(records) + 1), op[2])
            continue
        if not records:
            break
        i = op[1] % len(records)
        rec = records[i]
        if kind == "rflip":
            at = op[2] % len(rec)
            records[i] = rec[:at] + bytes([rec[at] ^ op[3]]) + rec[at + 1:]
        elif kind == "rtrunc":
            records[i] = rec[:op[2]]
        elif kind == "rdup":
            records.insert(i, rec)
        elif kind == "rdrop":
            del records[i]
        elif kind == "rswap" and i + 1 < len(records):
            records[i], records[i + 1] = records[i + 1], records[i]
        elif kind == "rtype" and rec:
            records[i] = bytes([op[2]]) + rec[1:]
        elif kind == "rversion" and len(rec) >= 3:
            records[i] = rec[:1] + struct.pack("!H", op[2]) + rec[3:]
        elif kind == "rlength" and len(rec) >= 5:
            n = len(rec) - 5 + op[2] if op[2] in (-1, 1) else op[2]
            records[i] = rec[:3] + struct.pack("!H", n & 0xFFFF) + rec[5:]
        elif kind == "rcut":
            records = records[:i + 1]
    return records


@st.composite
def tls_cases(draw: st.DrawFn) -> TlsCase:
    mode = draw(st.sampled_from(["raw", "flight", "after", "after", "after"]))
    version = draw(st.sampled_from(["1.3", "1.3", "1.2"]))
    alpn = draw(st.sampled_from([("h2", "http/1.1"), ("http/1.1",), (), ("h2",)]))
    then = draw(THEN)
    args = draw(st.sampled_from([(), (), (), ("-k",), ("--tls-max", "1.2"), ("--http1.1",),
                                 ("--http2",), ("--no-follow",)]))
    args = (*args, *_then_args(then))
    if mode == "raw":
        raw = b"".join(draw(st.lists(tls_records(), min_size=1, max_size=4)))
        if draw(st.integers(0, 6)) == 0:
            raw = draw(st.sampled_from([b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x80\x2e\x02",
                                        b"SSH-2.0-x\r\n", b"\x00" * 7]))
        raw = mutate(raw, draw(byte_ops(2)))
        return TlsCase("raw", version, alpn, raw=raw, then=then, args=args)
    if mode == "flight":
        ops = draw(st.lists(st.one_of(record_op(), byte_op()), min_size=1, max_size=2))
        return TlsCase("flight", version, alpn, flight_ops=tuple(ops), then=then, args=args)
    h1 = draw(h1_message()) if draw(st.integers(0, 3)) else TlsCase.h1
    h1 = mutate(h1, draw(byte_ops(1))) if draw(st.integers(0, 4)) == 0 else h1
    h2 = draw(h2_payload()) if "h2" in alpn else b""
    cuts = tuple(sorted(draw(st.lists(st.integers(1, 1 << 16), max_size=3))))
    close_at = draw(st.one_of(st.none(), st.integers(0, len(cuts) + 1)))
    ops = tuple(draw(st.lists(record_op(), min_size=1, max_size=3))) if draw(st.booleans()) \
        else ()
    return TlsCase("after", version, alpn, h1=h1, h2=h2, pieces=cuts, close_notify_at=close_at,
                   record_ops=ops, then=then, args=args)


# --------------------------------------------------------------------------- URLs

@dataclass(frozen=True)
class UrlCase:
    """mode parse: the whole URL, any host (no packet leaves: every address is refused after
    DNS). mode fetch: ``http://127.0.0.1:PORT`` + ``text`` (path, query, fragment)."""

    text: str
    mode: str = "parse"
    args: tuple[str, ...] = ()


def _url_seeds() -> list[str]:
    seeds: set[str] = set()
    data = json.loads((TESTS / "data" / "whatwg_host_vectors.json").read_text("utf-8"))
    for v in data["urltestdata"]:
        if isinstance(v, dict):
            seeds.add(v["input"])
    for v in data["toascii"]:
        seeds.add(f"https://{v['input']}/x")
    source = TESTS / "test_url.py"
    if source.exists():
        for node in ast.walk(ast.parse(source.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and 0 < len(node.value) <= 300 and "\n" not in node.value.strip("\n"):
                seeds.add(node.value)
    return sorted(seeds)


URL_SEEDS = _url_seeds()
_AUTHORITY = re.compile(r"^[^/?#]*//[^/?#\\]*")
URL_TAILS = sorted({_AUTHORITY.sub("", s) for s in URL_SEEDS if "//" in s} | {"/"})
URL_PIECES = [":", "/", "//", "\\", "@", "[", "]", "%", "%2e", "%00", "%zz", "%25", "?", "#",
              "\t", "\n", " ", "\x00", "\x7f", "\u3002", "\uff0e", "\uff21", "ß", "ü", "xn--",
              "xn--zca", "0x", "0x7f.1", "::", "::1", "[::1]", "1.2.3.4", "256", "4294967296",
              ".", "..", "-", "_", "a" * 64, "b" * 250, ".test", ":0", ":65536", ":443",
              "https://", "http:", "user:pass@", "\ud800", "\U0001f600", "\u200b", "\u00ad",
              "ᯓ", "\u0661"]


def url_ops() -> st.SearchStrategy[list[Op]]:
    pos = st.integers(0, 1 << 10)
    piece = st.one_of(st.sampled_from(URL_PIECES), st.text(max_size=4))
    op = st.one_of(
        st.tuples(st.just("insert"), pos, piece),
        st.tuples(st.just("delete"), pos, st.integers(1, 8)),
        st.tuples(st.just("replace"), pos, piece),
        st.tuples(st.just("repeat"), pos, st.integers(1, 8), st.integers(2, 40)),
        st.tuples(st.just("splice"), pos, st.sampled_from(URL_SEEDS), pos),
        st.tuples(st.just("swapcase"), pos, st.integers(1, 8)),
        st.tuples(st.just("percent"), pos),
    )
    return st.lists(op, max_size=4)


def mutate_text(text: str, ops: Sequence[Op]) -> str:
    for op in ops:
        kind, at = op[0], op[1] % (len(text) + 1)
        if kind == "insert":
            text = text[:at] + op[2] + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + op[2]:]
        elif kind == "replace":
            text = text[:at] + op[2] + text[at + 1:]
        elif kind == "repeat":
            piece = text[at:at + op[2]]
            text = text[:at] + piece * op[3] + text[at + len(piece):]
        elif kind == "splice":
            other = op[2]
            text = text[:at] + other[op[3] % (len(other) + 1):]
        elif kind == "swapcase":
            text = text[:at] + text[at:at + op[2]].swapcase() + text[at + op[2]:]
        elif kind == "percent" and at < len(text):
            text = text[:at] + "".join(f"%{b:02X}" for b in text[at].encode(
                "utf-8", "surrogatepass")) + text[at + 1:]
    return text[:4096]


@st.composite
def url_cases(draw: st.DrawFn) -> UrlCase:
    args = draw(st.sampled_from([(), (), (), ("--no-hsts",), ("-X", "HEAD")]))
    if draw(st.integers(0, 2)) == 0:
        tail = mutate_text(draw(st.sampled_from(URL_TAILS)), draw(url_ops()))
        return UrlCase(tail, "fetch", args)
    return UrlCase(mutate_text(draw(st.sampled_from(URL_SEEDS)), draw(url_ops())), "parse", args)


# =========================================================================== harness

def loopback_only(address: str) -> str | None:
    """The fuzz journeys' address policy: this machine only."""
    try:
        if ipaddress.ip_address(address.split("%")[0]).is_loopback:
            return None
    except ValueError:
        pass
    return f"{address} is not a loopback address, and fuzzing stays on this machine"


def refuse_all(address: str) -> str | None:
    return f"{address} is not contacted while fuzzing URLs"


def _drain(conn: socket.socket, limit: float = 3.0) -> None:
    """Read and discard until the client closes (or ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    conn.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def finish(conn: socket.socket, then: str) -> None:
    if then == "rst":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        return
    if then == "fin":
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
    _drain(conn, 5.0)   # fin, hold, drip: until the client goes


def read_until(conn: socket.socket, done: Callable[[bytes], bool], limit: float = 3.0,
               first: bytes = b"") -> bytes:
    data = first
    deadline = time.monotonic() + limit
    while not done(data) and len(data) < 1 << 20:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def send_payload(conn: socket.socket, payload: bytes, splits: Sequence[int], then: str) -> None:
    """``payload`` as ``then`` wants it: dripped, or in pieces cut at ``splits``."""
    if then == "drip":
        drip(conn, payload)
    else:
        send_pieces(conn, payload, splits)


def drip(conn: socket.socket, payload: bytes, every: float = 0.01, limit: float = 5.0) -> None:
    """A few bytes every ``every`` seconds, then spaces, until the client goes (or ``limit``)."""
    deadline = time.monotonic() + limit
    at = 0
    while time.monotonic() < deadline:
        piece = payload[at:at + 3] or b" "
        at += 3
        try:
            conn.sendall(piece)
        except OSError:
            return
        time.sleep(every)


def send_pieces(conn: socket.socket, payload: bytes, splits: Sequence[int]) -> None:
    cuts = sorted({s % (len(payload) + 1) for s in splits})
    last = 0
    for cut in [*cuts, len(payload)]:
        if cut > last:
            conn.sendall(payload[last:cut])
            if cut < len(payload):
                time.sleep(0.001)
        last = cut


Script = Callable[[socket.socket], None]


class ScriptServer:
    """One listening TCP socket on 127.0.0.1; each connection runs the current ``script``."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.script: Script | None = None
        self.errors: list[str] = []     # exceptions in scripts: the harness's own bugs
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True, name="fuzz-accept")
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(target=self._serve, args=(conn, self.script), daemon=True,
                                 name="fuzz-conn")
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket, script: Script | None) -> None:
        try:
            conn.settimeout(3)
            if script is not None:
                script(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass   # the client went away, or gave up on us: expected
        except Exception:
            self.errors.append(traceback.format_exc())
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(2)
        for t in self.threads:
            t.join(5)


class DnsServer:
    """UDP and TCP on one port of 127.0.0.1, answering through the current ``responder``."""

    def __init__(self, responder: DnsResponder) -> None:
        self.responder = responder
        self.errors: list[str] = []
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port: int = self.udp.getsockname()[1]
            try:
                self.tcp = socket.create_server(("127.0.0.1", self.port), backlog=32)
                break
            except OSError:
                self.udp.close()
        self.udp.settimeout(0.05)
        self.tcp.settimeout(0.05)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True, name=f"fuzz-dns-{f.__name__}")
                        for f in (self._serve_udp, self._serve_tcp)]
        for t in self.threads:
            t.start()

    def _serve_udp(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                for out in self.responder.udp(data):
                    self.udp.sendto(out, peer)
            except OSError:
                pass
            except Exception:
                self.errors.append(traceback.format_exc())

    def _serve_tcp(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn: socket.socket) -> None:
        try:
            data = read_until(conn, lambda d: len(d) >= 2 and len(d) >= 2 + struct.unpack(
                "!H", d[:2])[0], 2.0)
            if len(data) < 2:
                return
            out = self.responder.tcp(data[2:2 + struct.unpack("!H", data[:2])[0]])
            if out is not None:
                conn.sendall(out)
            finish(conn, "fin")
        except OSError:
            pass
        except Exception:
            self.errors.append(traceback.format_exc())
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.udp.close()
        self.tcp.close()
        for t in self.threads:
            t.join(2)


# --------------------------------------------------------------------------- outcomes

# Text that comes from a library, not from us (as in tests/corpus_harness.py): counted.
BARE_LIBRARY_TEXT = [
    re.compile(r"_ssl\.c"), re.compile(r"\[Errno \d+\]"), re.compile(r"\[SSL[:\]]"),
    re.compile(r"bytearray\("), re.compile(r"(?:^|[\s(=:,\[])b['\"]"),
    re.compile(r"<[\w.]+ object at 0x"),
    re.compile(r"Traceback"), re.compile(r"\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+){2,}\b"),
]
# C0 (but \t \n), DEL and C1 controls: what a hostile peer could use to drive a terminal.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class Outcome:
    target: str
    url: str
    exit_code: int | None = None
    step: str | None = None
    code: str | None = None
    message: str = ""
    wall_s: float = 0.0
    starved_s: float = 0.0    # of wall_s, time the journey's thread waited for a CPU
    cpu_ms: float = 0.0
    problems: list[str] = field(default_factory=list)   # the properties broken: failures
    notes: list[str] = field(default_factory=list)      # softer findings: counted only
    internal_where: str | None = None                   # src file:line of an internal error
    trace: str | None = None                            # its traceback, or an escaped one

    @property
    def ok(self) -> bool:
        return not self.problems

    def signature(self) -> str | None:
        """A stable name for the failure, to tell distinct bugs apart."""
        if not self.problems:
            return None
        kinds = sorted({p.split(":", 1)[0] for p in self.problems})
        where = self.internal_where or f"{self.step}/{self.code}"
        return f"{self.target}:{'+'.join(kinds)}:{where}"

    def describe(self) -> str:
        lines = [f"{self.target} {self.url!r}: exit {self.exit_code} step {self.step} "
                 f"code {self.code} wall {self.wall_s:.3f} s (waiting for a CPU "
                 f"{self.starved_s:.3f} s) cpu {self.cpu_ms:.0f} ms",
                 f"message: {self.message!r}"]
        lines += [f"PROBLEM {p}" for p in self.problems]
        lines += [f"note {n}" for n in self.notes]
        if self.trace:
            lines.append(self.trace)
        return "\n".join(lines)


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self.records.append(text)


@contextlib.contextmanager
def _watch_internal() -> Iterator[list[str]]:
    """Keep the traceback of an internal error: ``run_journey`` turns any exception of ours
    into an InternalError in its ``except`` block, so the exception is current right there."""
    import whathappens.trace as trace_module
    from whathappens.errors import InternalError

    seen: list[str] = []

    class Watched(InternalError):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            if sys.exc_info()[0] is not None:
                seen.append(traceback.format_exc())

    Watched.__name__ = Watched.__qualname__ = "InternalError"
    original = trace_module.InternalError
    trace_module.InternalError = Watched  # type: ignore[misc]
    try:
        yield seen
    finally:
        trace_module.InternalError = original  # type: ignore[misc]


def _where(tb: str) -> str | None:
    """The innermost frame of ours (src/whathappens) in a traceback: ``http2.py:123``."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', tb)
    ours = [(f, n) for f, n in frames if "/whathappens/" in f and "/tests/" not in f]
    pick = ours[-1] if ours else (frames[-1] if frames else None)
    if pick is None:
        return None
    exc = tb.strip().splitlines()[-1].split(":")[0]
    return f"{exc}@{Path(pick[0]).name}:{pick[1]}"


def run_queue_wait_s() -> float:
    """Time this thread has spent runnable but waiting for a CPU (Linux schedstat), seconds.

    On a loaded machine (or under ``nice``) a journey can overrun --max-time only because
    the kernel did not run it when its timer expired; this tells that apart from a deadline
    the tracer failed to keep. 0 where the kernel does not say."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def fuzz_options(args: Sequence[str], *, policy: Callable[[str], str | None] = loopback_only,
                 resolver: int | None = None, views: str = "resolver",
                 max_time: float = MAX_TIME_S) -> Any:
    """Options as ``whathappens URL ARGS`` builds them, with the fuzz timeouts and policy."""
    from journey_helpers import options

    cli = ["--max-time", f"{max_time:g}", "--connect-timeout", f"{CONNECT_TIMEOUT_S:g}",
           "--dns-timeout", f"{DNS_TIMEOUT_S:g}", "--dns-views", views]
    if resolver is not None:
        cli += ["--resolver", f"127.0.0.1:{resolver}"]
    opts = options(*cli, *args)
    return dataclasses.replace(
        opts, address_policy=policy,
        limits=dataclasses.replace(opts.limits, read_timeout=READ_TIMEOUT_S),
        dns=dataclasses.replace(opts.dns, address_policy=policy))


def run_journey_checked(target: str, url: str, opts: Any, *, render: bool = True) -> Outcome:
    """Run one journey in-process and check every property (see the module's docstring)."""
    from whathappens.errors import STEP_EXIT_CODES, InternalError, LimitExceeded, TargetRefused
    from whathappens.trace import run_journey

    out = Outcome(target, url)
    handler = _Captured()
    log = logging.getLogger("asyncio")
    log.addHandler(handler)
    unraisable: list[str] = []
    old_hook = sys.unraisablehook

    def hook(u: Any) -> None:
        unraisable.append(f"{u.exc_type.__name__}: {u.exc_value} in {u.object!r}")

    sys.unraisablehook = hook
    journey = None
    wait0 = run_queue_wait_s()
    t0 = time.perf_counter()
    try:
        with _watch_internal() as internal:
            journey = asyncio.run(run_journey(url, opts))
    except BaseException as exc:  # what would reach the user as a traceback
        if isinstance(exc, KeyboardInterrupt):
            raise
        out.trace = traceback.format_exc()
        out.internal_where = _where(out.trace)
        out.problems.append(f"traceback: {type(exc).__name__}: {exc}")
    finally:
        out.wall_s = time.perf_counter() - t0
        out.starved_s = run_queue_wait_s() - wait0
        log.removeHandler(handler)
        sys.unraisablehook = old_hook
    for text in handler.records:
        out.problems.append(f"traceback: asyncio logged an error: {text[:300]}")
        out.trace = out.trace or text
    for text in unraisable:
        out.notes.append(f"unraisable: {text[:200]}")
    max_time = opts.max_time
    if out.wall_s > max_time + WALL_MARGIN_S:
        late = f"{out.wall_s:.2f} s for --max-time {max_time:g}"
        if out.wall_s - out.starved_s > max_time + WALL_MARGIN_S:
            out.problems.append(f"deadline: {late} ({out.starved_s:.2f} s of it waiting for "
                                "a CPU)")
        else:   # the machine, not the tracer: the journey's thread was kept off the CPU
            out.notes.append(f"starved: {late}, of which {out.starved_s:.2f} s waiting for a "
                             "CPU")
    if journey is None:
        return out
    err = journey.error
    out.exit_code = journey.exit_code
    resources = journey.facts.resources
    out.cpu_ms = resources.cpu_ms if resources is not None else 0.0
    if err is not None:
        out.step, out.code, out.message = err.step, err.code, err.message
    if internal:
        out.trace = internal[-1]
        out.internal_where = _where(internal[-1])
    if journey.exit_code == 10 or isinstance(err, InternalError) or \
            (err is not None and err.code == "internal.error"):
        out.problems.append(f"internal: exit {journey.exit_code}: {out.message[:300]}")
    elif err is not None:
        expected = 13 if isinstance(err, TargetRefused) else STEP_EXIT_CODES.get(err.step)
        if err.step not in STEPS and not (err.step == "journey" and err.code ==
                                          "journey.timeout" and not isinstance(err,
                                                                               LimitExceeded)):
            out.problems.append(f"nostep: the error names no step ({err.step}, {err.code})")
        if not err.message.strip():
            out.problems.append(f"nostep: the error has no message ({err.code})")
        if journey.exit_code != expected:
            out.problems.append(f"nostep: exit {journey.exit_code} for a failure in "
                                f"{err.step} ({err.code})")
        for bare in BARE_LIBRARY_TEXT:
            if bare.search(err.message):
                out.notes.append(f"library-text: /{bare.pattern}/ in {err.message[:200]!r}")
                break
    if out.cpu_ms > MAX_CPU_MS:
        out.problems.append(f"cpu: the journey used {out.cpu_ms:.0f} ms of CPU")
    if render:
        _check_report(journey, out)
    return out


_RENDERS = [0]


def _check_report(journey: Any, out: Outcome) -> None:
    from journey_helpers import nesting_errors, schema_errors
    from whathappens.render.har import to_har
    from whathappens.render.html import render_html
    from whathappens.render.terminal import render_terminal

    try:
        doc = journey.to_dict()
        json.dumps(doc)
    except Exception as exc:
        out.problems.append(f"report: the journey does not serialize: {exc!r}")
        out.trace = out.trace or traceback.format_exc()
        return
    problems = schema_errors(doc)[:3] + nesting_errors(journey)[:3]
    for p in problems:
        out.problems.append(f"report: {p[:300]}")
    # The terminal report is the costly one (rich): plain on one journey, in colour with
    # --explain on the next.
    _RENDERS[0] += 1
    plain = _RENDERS[0] % 2 == 1
    for name, render in (
        ("terminal" if plain else "terminal-color",
         lambda: _terminal(render_terminal, doc, color=not plain, explain=not plain)),
        ("html", lambda: render_html(doc)),
        ("har", lambda: json.dumps(to_har(doc))),
    ):
        try:
            text = render()
        except Exception as exc:
            out.problems.append(f"render: the {name} renderer raised {type(exc).__name__}: "
                                f"{exc}"[:300])
            out.trace = out.trace or traceback.format_exc()
            out.internal_where = out.internal_where or _where(traceback.format_exc())
            continue
        if name == "terminal" and (m := RAW_CONTROL.search(text)):
            out.notes.append(f"terminal-control: {m.group()!r} reaches the plain terminal "
                             "report raw")


def _terminal(render: Any, doc: dict[str, Any], *, color: bool, explain: bool = False) -> str:
    buf = io.StringIO()
    render(doc, buf, color=color, explain=explain, width=100)
    return buf.getvalue()


# --------------------------------------------------------------------------- peers
#
# The servers run in a process of their own (``PeerProcess``), not in threads beside the
# journey: a server thread holding the GIL while the kernel keeps it off a busy CPU would
# stall the journey's event loop too, and a deadline missed for that reason says nothing
# about the tracer. The journey's process then looks like the command's: one thread.

def _request_done(data: bytes) -> bool:
    return b"\r\n\r\n" in data


def _preface_done(data: bytes) -> bool:
    return len(data) >= 24


def _record_done(data: bytes) -> bool:
    """A whole first TLS record (the ClientHello) is in, or it is clearly not TLS."""
    if len(data) < 5:
        return False
    return len(data) >= 5 + struct.unpack("!H", data[3:5])[0]


def _ok_script(conn: socket.socket) -> None:
    read_until(conn, _request_done)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                 b"Connection: close\r\n\r\nok\n")
    finish(conn, "fin")


def _mutate_flight(data: bytes, ops: Sequence[Op]) -> bytes:
    for op in ops:
        if op[0].startswith("r"):
            data = b"".join(mutate_records(split_records(data), [op]))
        else:
            data = mutate(data, [op])
    return data


class Peer:
    """The server side of a target, in the peer process: ``info`` is what the journey needs
    to know (ports, files); ``set_case`` swaps the next example in; ``report`` says what was
    sent and what went wrong in the servers themselves."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.servers: list[ScriptServer | DnsServer] = []

    def info(self) -> dict[str, Any]:
        return {}

    def set_case(self, case: Any) -> None:
        self.sent = []

    def report(self) -> dict[str, Any]:
        return {"sent": list(self.sent),
                "errors": [e for s in self.servers for e in s.errors]}

    def close(self) -> None:
        for server in self.servers:
            server.close()


class StreamPeer(Peer):
    """HTTP/1.1 or HTTP/2 (prior knowledge): the case's bytes after the request."""

    def __init__(self) -> None:
        super().__init__()
        self.server = ScriptServer()
        self.sink = DnsServer(SinkResponder(answer=False))
        self.servers = [self.server, self.sink]

    def info(self) -> dict[str, Any]:
        return {"port": self.server.port, "sink": self.sink.port}

    def set_case(self, case: H1Case | H2Case) -> None:
        super().set_case(case)
        done = _preface_done if isinstance(case, H2Case) else _request_done

        def script(conn: socket.socket) -> None:
            read_until(conn, done)
            send_payload(conn, case.payload, case.splits, case.then)
            finish(conn, case.then)

        self.server.script = script


class DnsPeer(Peer):
    def __init__(self) -> None:
        super().__init__()
        self.responder = DnsResponder([DnsPlan()])
        self.dns = DnsServer(self.responder)
        self.web = ScriptServer()
        self.web.script = _ok_script
        self.servers = [self.dns, self.web]
        self.dir = tempfile.TemporaryDirectory(prefix="whathappens-fuzz-")
        self.hints = Path(self.dir.name) / "root.hints"
        self.hints.write_text(ROOT_HINTS)

    def info(self) -> dict[str, Any]:
        return {"dns": self.dns.port, "web": self.web.port, "hints": str(self.hints)}

    def set_case(self, case: DnsCase) -> None:
        super().set_case(case)
        self.responder = DnsResponder(case.plans)
        self.dns.responder = self.responder

    def report(self) -> dict[str, Any]:
        return {**super().report(), "sent": list(self.responder.sent)}

    def close(self) -> None:
        super().close()
        self.dir.cleanup()


class TlsPeer(Peer):
    def __init__(self) -> None:
        import certgen

        super().__init__()
        self.dir = tempfile.TemporaryDirectory(prefix="whathappens-fuzz-tls-")
        pki = certgen.make_pki(["localhost", "127.0.0.1"])
        self.certfile, self.keyfile = certgen.write_server_files(Path(self.dir.name), pki.chain)
        self.cafile = certgen.write_cafile(Path(self.dir.name), [pki.root])
        self.contexts: dict[tuple[str, tuple[str, ...]], ssl.SSLContext] = {}
        self.server = ScriptServer()
        self.sink = DnsServer(SinkResponder(answer=False))
        self.servers = [self.server, self.sink]

    def info(self) -> dict[str, Any]:
        return {"port": self.server.port, "sink": self.sink.port, "cafile": self.cafile}

    def context(self, version: str, alpn: tuple[str, ...]) -> ssl.SSLContext:
        key = (version, alpn)
        if key not in self.contexts:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.certfile, self.keyfile)
            ctx.maximum_version = (ssl.TLSVersion.TLSv1_2 if version == "1.2"
                                   else ssl.TLSVersion.TLSv1_3)
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            self.contexts[key] = ctx
        return self.contexts[key]

    def set_case(self, case: TlsCase) -> None:
        super().set_case(case)
        sent = self.sent

        def send(conn: socket.socket, data: bytes) -> None:
            sent.append(("tcp", data))
            conn.sendall(data)

        def script(conn: socket.socket) -> None:
            hello = read_until(conn, _record_done)
            if case.mode == "raw":
                if hello:
                    sent.append(("tcp", case.raw))
                    send_payload(conn, case.raw, (), case.then)
                finish(conn, case.then)
                return
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = self.context(case.version, case.alpn).wrap_bio(incoming, outgoing,
                                                                 server_side=True)
            incoming.write(hello)
            flight = 0
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    data = outgoing.read()
                    if data:
                        if flight == 0 and case.flight_ops:
                            data = _mutate_flight(data, case.flight_ops)
                        send(conn, data)
                        flight += 1
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    incoming.write(chunk)
                except ssl.SSLError:
                    with contextlib.suppress(OSError):
                        send(conn, outgoing.read())
                    finish(conn, "fin")
                    return
            alpn = obj.selected_alpn_protocol()
            done = _preface_done if alpn == "h2" else _request_done
            request = b""
            while not done(request):
                try:
                    request += obj.read(65536)
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        send(conn, outgoing.read())
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    incoming.write(chunk)
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return
            records = split_records(outgoing.read())
            plain = case.h2 if alpn == "h2" else case.h1
            cuts = sorted({c % (len(plain) + 1) for c in case.pieces} - {0})
            pieces = [plain[a:b] for a, b in zip([0, *cuts], [*cuts, len(plain)], strict=True)]
            for i, piece in enumerate([*pieces, b""]):
                if case.close_notify_at == i:
                    with contextlib.suppress(ssl.SSLError):
                        obj.unwrap()
                    records += split_records(outgoing.read())
                    break
                if piece:
                    obj.write(piece)
                    records += split_records(outgoing.read())
            data = b"".join(mutate_records(records, case.record_ops))
            sent.append(("tcp", data))
            send_payload(conn, data, (), case.then)
            finish(conn, case.then)

        self.server.script = script

    def close(self) -> None:
        super().close()
        self.dir.cleanup()


class UrlPeer(Peer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []
        self.server = ScriptServer()
        self.server.script = self._record
        self.sink = DnsServer(SinkResponder(answer=True))
        self.servers = [self.server, self.sink]

    def info(self) -> dict[str, Any]:
        return {"port": self.server.port, "sink": self.sink.port}

    def _record(self, conn: socket.socket) -> None:
        head = read_until(conn, _request_done)
        self.requests.append(head.split(b"\r\n", 1)[0])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        finish(conn, "fin")

    def set_case(self, case: UrlCase) -> None:
        super().set_case(case)
        self.requests = []

    def report(self) -> dict[str, Any]:
        return {**super().report(), "requests": list(self.requests)}


PEERS: dict[str, Callable[[], Peer]] = {
    "http1": StreamPeer, "http2": StreamPeer, "dns": DnsPeer, "tls": TlsPeer, "url": UrlPeer,
}


def peer_main(name: str, conn: Any) -> None:
    """The peer process: serve the target's servers, one case at a time, as told."""
    peer = PEERS[name]()
    conn.send(peer.info())
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg[0] == "case":
                peer.set_case(msg[1])
                conn.send("ok")
            elif msg[0] == "report":
                conn.send(peer.report())
            else:
                return
    finally:
        peer.close()


def peer_child(name: str, fd: int) -> None:
    """Entry point of the peer process (see ``PeerProcess``)."""
    from multiprocessing.connection import Connection

    peer_main(name, Connection(fd))


class PeerProcess:
    """A target's peer in a child process of its own: a fresh interpreter (no threads or
    locks of ours carried over), started with ``python -c``, so that it does not depend on
    how the caller's ``__main__`` is written; pickled messages over a socket pair."""

    def __init__(self, name: str) -> None:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        code = ("import sys, json; sys.path[:0] = json.loads(sys.argv[1]); "
                "from fuzz_strategies import peer_child; "
                "peer_child(sys.argv[2], int(sys.argv[3]))")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps([str(TESTS), *sys.path]), name,
             str(theirs.fileno())], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.info: dict[str, Any] = self._answer(120)

    def _answer(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the fuzz peer process did not answer in {timeout:g} s")
        return self.conn.recv()

    def call(self, *msg: Any) -> Any:
        self.conn.send(msg)
        return self._answer(30)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("close",))
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.conn.close()


# --------------------------------------------------------------------------- targets

class Target:
    """A kind of hostile peer, seen from the journey's side: its generator, its peer process,
    and how one case is run."""

    name = ""
    # Exit codes a healthy run of this target's generator reaches (see ``check_variety``).
    expected_exits: frozenset[int] = frozenset({0})

    def __init__(self) -> None:
        self.peer = PeerProcess(self.name)
        self.info = self.peer.info
        self.last: dict[str, Any] = {"sent": [], "errors": []}
        self.errors: list[str] = []

    def strategy(self) -> st.SearchStrategy[Any]:
        raise NotImplementedError

    def journey(self, case: Any) -> Outcome:
        raise NotImplementedError

    def run(self, case: Any) -> Outcome:
        """Swap ``case`` in at the peer, run the journey, collect what the peer did."""
        self.peer.call("case", case)
        out = self.journey(case)
        self.last = self.peer.call("report")
        self.errors += self.last["errors"]
        return out

    def repro(self, case: Any) -> bytes:
        """The bytes to save for a failing case: the case, and what the peer sent last."""
        lines = [repr(case).encode()]
        lines += [f"{kind} {data.hex()}".encode() for kind, data in self.last["sent"]]
        return b"\n".join(lines)

    def harness_errors(self) -> list[str]:
        return list(self.errors)

    def close(self) -> None:
        self.peer.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Http1Target(Target):
    name = "http1"
    expected_exits = frozenset({0, 7})

    def strategy(self) -> st.SearchStrategy[Any]:
        return h1_cases()

    def journey(self, case: H1Case | H2Case) -> Outcome:
        opts = fuzz_options(case.args, resolver=self.info["sink"])
        return run_journey_checked(self.name, f"http://127.0.0.1:{self.info['port']}/", opts)

    def repro(self, case: H1Case | H2Case) -> bytes:
        return case.payload


class Http2Target(Http1Target):
    name = "http2"

    def strategy(self) -> st.SearchStrategy[Any]:
        return h2_cases()


class DnsTarget(Target):
    name = "dns"
    expected_exits = frozenset({0, 4})

    def strategy(self) -> st.SearchStrategy[Any]:
        return dns_cases()

    def journey(self, case: DnsCase) -> Outcome:
        if case.view == "resolver":
            opts = fuzz_options([], resolver=self.info["dns"], views="resolver")
        else:
            opts = fuzz_options(["--root-hints", self.info["hints"], "--dns-port",
                                 str(self.info["dns"])], views="walk")
        return run_journey_checked(self.name, f"http://{case.host}:{self.info['web']}/", opts)


class TlsTarget(Target):
    name = "tls"
    expected_exits = frozenset({0, 6, 7})

    def strategy(self) -> st.SearchStrategy[Any]:
        return tls_cases()

    def journey(self, case: TlsCase) -> Outcome:
        opts = fuzz_options(["--cacert", self.info["cafile"], *case.args],
                            resolver=self.info["sink"])
        return run_journey_checked(self.name, f"https://127.0.0.1:{self.info['port']}/", opts)


class UrlTarget(Target):
    name = "url"
    expected_exits = frozenset({0, 3, 13})

    def strategy(self) -> st.SearchStrategy[Any]:
        return url_cases()

    def journey(self, case: UrlCase) -> Outcome:
        if case.mode == "fetch":
            url = f"http://127.0.0.1:{self.info['port']}{case.text}"
            opts = fuzz_options(case.args, resolver=self.info["sink"])
        else:
            url = case.text
            opts = fuzz_options(case.args, resolver=self.info["sink"], policy=refuse_all)
        return run_journey_checked(self.name, url, opts)

    def run(self, case: UrlCase) -> Outcome:
        out = super().run(case)
        for line in self.last.get("requests", []):
            parts = line.split(b" ")
            if len(parts) != 3 or not all(0x21 <= b < 0x7F for b in parts[1]):
                out.notes.append(f"request-line: we sent {line[:200]!r}")
        return out

    def repro(self, case: UrlCase) -> bytes:
        return case.text.encode("utf-8", "surrogatepass")


TARGETS: dict[str, type[Target]] = {
    "http1": Http1Target, "http2": Http2Target, "dns": DnsTarget, "tls": TlsTarget,
    "url": UrlTarget,
}


@dataclass(frozen=True)
class Known:
    """A failure found by fuzzing and reported, not yet fixed: the CI fuzz tests let inputs
    that fail only this way pass (each has its own strict-xfail regression test, which starts
    failing the day it is fixed: then delete the entry)."""

    name: str
    target: str
    kind: str      # the kind of problem: internal, traceback, deadline, nostep, cpu, report...
    pattern: str   # a regex found in the problems or the traceback
    reason: str


# Fixed so far (each keeps its regression example): h2-body-limit-on-ended-stream, --max-body
# passed in the DATA frame that ends the stream: StreamClosedError, exit 10 (877058a).
KNOWN: list[Known] = []


def known(name: str) -> Known:
    return next(k for k in KNOWN if k.name == name)


def known_failure(out: Outcome) -> Known | None:
    if out.ok:
        return None
    kinds = {p.split(":", 1)[0] for p in out.problems}
    text = "\n".join(out.problems) + "\n" + (out.trace or "")
    for known in KNOWN:
        if known.target == out.target and kinds == {known.kind} and \
                re.search(known.pattern, text):
            return known
    return None


def check(target: Target, case: Any, *, tolerate_known: bool = True) -> Outcome:
    """The fuzz tests' assertion: every property held for this input (and the harness's own
    servers did not fail). Failures listed in ``KNOWN`` pass unless ``tolerate_known`` is
    False (the regression tests)."""
    out = target.run(case)
    SEEN.setdefault(target.name, collections.Counter())[out.exit_code] += 1
    if not (tolerate_known and known_failure(out)):
        assert out.ok, f"{out.describe()}\npeer sent: {target.repro(case)[:2000]!r}"
    errors = target.harness_errors()
    assert not errors, f"the fuzz servers failed (a harness bug): {errors[-1]}"
    return out


SEEN: dict[str, collections.Counter[int | None]] = {}   # exit codes met, per target


def check_variety(target: Target, least: int = 50) -> None:
    """The properties hold vacuously if every journey fails the same early way (a harness
    server that no longer answers, a generator gone degenerate): after ``least`` inputs or
    more, every exit code the target expects must have been met."""
    seen = SEEN.get(target.name, collections.Counter())
    if sum(seen.values()) < least:
        return
    missing = set(target.expected_exits) - set(seen)
    assert not missing, (f"{target.name}: no journey ended with exit {sorted(missing)} in "
                         f"{sum(seen.values())} inputs ({dict(seen)}): the fuzzer has gone "
                         "degenerate")


def ci_settings(max_examples: int) -> Callable[[Any], Any]:
    """Bounded and repeatable: the same examples on every CI run, no example database."""
    from hypothesis import HealthCheck, settings

    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.filter_too_much],
                    print_blob=False)
