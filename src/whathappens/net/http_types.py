"""What the HTTP step (step 4) takes in and hands back, shared by HTTP/1.1 and HTTP/2.

A ``Request`` says what to ask for; ``Limits`` bounds every read the exchange makes; an
``Exchange`` is everything measured about one request and its response: the exact header
lines sent, the response head, five timestamps, and byte counts at each layer (what crossed
the socket, the payload as it arrived, the payload after Content-Encoding was undone).

Only the standard library (and the contract's dataclasses) is imported here, so the caller
can build requests and read results without paying for h11 or h2.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass, field

from whathappens import __version__
from whathappens.contract.codec import to_json
from whathappens.contract.facts import ChunkedWire, H2Wire, HttpFacts

USER_AGENT = f"whathappens/{__version__}"
# What a browser asks for on a top-level navigation (RFC 9110 §12.5.1), and every content
# coding we can undo, best first (RFC 9110 §12.5.3).
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate, br, zstd"

# Media types whose body is worth showing as text in an excerpt.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml")
EXCERPT_CHARS = 500


@dataclass
class Limits:
    """Bounds on every read: nothing the server sends can make us read or hold more."""

    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 10 * 1024 * 1024  # on the wire, before Content-Encoding is undone
    max_decoded_bytes: int = 50 * 1024 * 1024  # after Content-Encoding is undone
    read_timeout: float = 30.0  # the longest one read may sit idle, in seconds
    max_informational: int = 20  # 1xx responses before the final one (RFC 9110 §15.2)
    keep_body_bytes: int = 256 * 1024  # decoded body kept for display; the rest is counted


@dataclass
class Request:
    """One request. ``headers`` add to or replace (by name, case-insensitively) the defaults."""

    method: str
    authority: str  # host[:port] as it goes in Host / :authority
    target: str  # origin-form: path and query (RFC 9112 §3.2.1)
    scheme: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass
class Exchange:
    """Everything measured about one request/response on one connection."""

    http_version: str  # "HTTP/1.1", "HTTP/1.0" (as the server answered) or "HTTP/2"
    request_headers: list[tuple[str, str]]  # exactly what was sent, in order
    status: int
    reason: str  # HTTP/2 has no reason phrase (RFC 9113 §8.3.2): ""
    response_headers: list[tuple[str, str]]
    t_request_start_ns: int
    t_request_sent_ns: int
    t_first_byte_ns: int
    t_headers_ns: int
    t_body_done_ns: int
    body: bytes  # decoded, at most Limits.keep_body_bytes of it
    body_truncated: bool  # True when body holds only the first part of the decoded payload
    wire_bytes_sent: int  # what crossed the socket for this exchange, TLS overhead included
    wire_bytes_received: int
    body_bytes_encoded: int  # payload as it arrived (de-chunked / DATA frames), still encoded
    body_bytes_decoded: int
    content_encoding: list[str]  # codings in the order the server applied them
    header_bytes: int  # the response head: status line + fields (h1) or HPACK block (h2)
    reusable: bool  # the connection may carry another request
    alt_svc: str | None = None
    stream_id: int | None = None
    informational: list[int] = field(default_factory=list)  # 1xx statuses seen before it
    notes: list[str] = field(default_factory=list)  # what the reader should know (findings)
    h2_wire: H2Wire | None = None  # HTTP/2: the frames and HPACK sizes (net/h2wire.py)
    chunked: ChunkedWire | None = None  # HTTP/1.1: a chunked body's chunks as they arrived
    h3_wire: H2Wire | None = None  # HTTP/3: the frames and QPACK sizes (net/quic.py)

    def header(self, name: str) -> str | None:
        """The response field ``name``, repeated lines joined with ", " (RFC 9110 §5.3)."""
        return joined_field(self.response_headers, name)

    def text_excerpt(self, chars: int = EXCERPT_CHARS) -> str | None:
        """The start of the body as text when the Content-Type says it is text, else None."""
        media, charset = _media_type(self.header("content-type"))
        if not self.body or not (media.startswith(_TEXT_TYPES) or media.endswith(_TEXT_SUFFIXES)):
            return None
        try:
            text = self.body[: chars * 4].decode(charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            text = self.body[: chars * 4].decode("utf-8", errors="replace")
        return text[:chars]

    def facts(self, base: HttpFacts) -> HttpFacts:
        """``base`` (the HTTP span's facts so far) with what this exchange measured: sizes
        and a short text excerpt, never the body itself."""
        return dataclasses.replace(
            base,
            http_version=self.http_version,
            request_headers=list(self.request_headers),
            status=self.status,
            reason=self.reason,
            response_headers=list(self.response_headers),
            informational=list(self.informational),
            t_request_start_ns=self.t_request_start_ns,
            t_request_sent_ns=self.t_request_sent_ns,
            t_first_byte_ns=self.t_first_byte_ns,
            t_headers_ns=self.t_headers_ns,
            t_body_done_ns=self.t_body_done_ns,
            wire_bytes_sent=self.wire_bytes_sent,
            wire_bytes_received=self.wire_bytes_received,
            header_bytes=self.header_bytes,
            body_bytes_encoded=self.body_bytes_encoded,
            body_bytes_decoded=self.body_bytes_decoded,
            body_truncated=self.body_truncated,
            content_encoding=list(self.content_encoding),
            body_excerpt=self.text_excerpt(),
            reusable=self.reusable,
            alt_svc=self.alt_svc,
            stream_id=self.stream_id,
            h2_wire=self.h2_wire,
            chunked=self.chunked,
            h3_wire=self.h3_wire,
        )

    def to_dict(self) -> dict[str, object]:
        """The exchange's facts as JSON."""
        out = to_json(self.facts(HttpFacts()))
        assert isinstance(out, dict)
        return dict(out)


def with_defaults(
    defaults: list[tuple[str, str]], overrides: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Defaults in order, each replaced in place by the overrides of the same name (spelled
    as the caller spelled them); other overrides appended after them, in their order."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for name, value in overrides:
        by_name.setdefault(name.lower(), []).append((name, value))
    out: list[tuple[str, str]] = []
    for name, value in defaults:
        out.extend(by_name.pop(name.lower(), [(name, value)]))
    out.extend((name, value) for name, value in overrides if name.lower() in by_name)
    return out


def pseudo_first(request: Request, defaults: list[tuple[str, str]],
                 connection_fields: set[str]) -> list[tuple[str, str]]:
    """An HTTP/2 or HTTP/3 request's field section: the pseudo-header fields first, then the
    regular fields with lowercase names, without the ``connection_fields`` that version
    forbids; a Host field becomes :authority (RFC 9113 §8.3.1, RFC 9114 §4.3.1)."""
    authority = request.authority
    regular: list[tuple[str, str]] = []
    for name, value in with_defaults(defaults, request.headers):
        if name.lower() == "host":
            authority = value
        elif name.lower() not in connection_fields:
            regular.append((name.lower(), value))
    return [(":method", request.method), (":scheme", request.scheme),
            (":authority", authority), (":path", request.target), *regular]


def joined_field(headers: list[tuple[str, str]], name: str) -> str | None:
    values = [v for n, v in headers if n.lower() == name]
    return ", ".join(values) if values else None


def decode_field(raw: bytes) -> str:
    """Field bytes as text: UTF-8 when it is valid, else ISO-8859-1 (RFC 9110 §5.5 treats
    other octets as opaque; Latin-1 keeps every byte visible)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def escaped(data: bytes, limit: int = 80) -> str:
    """The first ``limit`` bytes shown safely, quoted, every byte visible: ``'SSH-2.0\\r\\n'``.

    Bytes are read as ISO-8859-1 so each stays one character; ``repr`` then writes control
    characters (C0, DEL, C1) as escapes, so nothing the peer sent reaches a terminal raw.
    """
    shown = repr(bytes(data[:limit]).decode("latin-1"))
    return shown + ("…" if len(data) > limit else "")


# A Python bytes literal inside a library's message: b'...', b"...", bytearray(b'...').
_LITERAL = r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
BYTES_LITERAL = re.compile(rf"bytearray\(b{_LITERAL}\)|\bb{_LITERAL}")


def library_words(message: str) -> str:
    """A library's message with its Python reprs of bytes shown as ``escaped`` text."""

    def one(m: re.Match[str]) -> str:
        literal = m.group(1) or m.group(2)
        try:
            value = ast.literal_eval("b" + literal)
        except (ValueError, SyntaxError):
            return m.group(0)
        return escaped(value) if isinstance(value, bytes) else m.group(0)

    return BYTES_LITERAL.sub(one, message)


def os_error_words(exc: OSError) -> str:
    """Why a socket operation failed, in words (no ``[Errno 32]``)."""
    words = getattr(exc, "words", None)  # TlsStreamError says it already
    if isinstance(words, str):
        return words
    if isinstance(exc, BrokenPipeError):
        return "the server had already closed the connection when we wrote to it"
    if isinstance(exc, ConnectionResetError):
        return "the server reset the connection (a TCP RST)"
    if isinstance(exc, ConnectionAbortedError):
        return "the connection was aborted"
    if isinstance(exc, TimeoutError):
        return "it timed out"
    reason = exc.strerror or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def size_words(n: int) -> str:
    """A byte count for a sentence: ``65536`` → ``"64 KiB"``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    media, *params = (part.strip() for part in content_type.split(";"))
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media.lower(), charset
