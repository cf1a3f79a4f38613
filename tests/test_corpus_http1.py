"""The misbehaving-server corpus, HTTP/1.1: every framing mistake, 1xx of every kind, bodies
where none may be, header abuse, slow drips, endless and bomb bodies, lengths that lie,
keep-alive confusion and redirects that go nowhere (issue 8, item 3).

Each case is one small server on loopback (tests/misbehaving_http.py) and one run of the real
command (tests/corpus_harness.py), checked for the step, the exit class, plain words naming
what the server did, wall time within --max-time, CPU and memory. Where the right outcome is
a judgement call, the case says why, with the RFC or what curl and browsers do.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import zstandard

from corpus_harness import Outcome, check, run_cli
from misbehaving import Handler, RawServer, read_request_head, wait_until_closed
from misbehaving_http import (
    MIB,
    brotli_bomb,
    chunked,
    deflate_bomb,
    drip,
    forever,
    gzip_bomb,
    gzip_of,
    reply,
    reply_stream,
    response,
    routes,
    zstd_bomb,
)

Check = Callable[[Outcome], None]
_EMPTY_GZ_FLOOD = gzip.compress(b"", mtime=0) * 200_000
_EMPTY_ZSTD_FLOOD = zstandard.ZstdCompressor().compress(b"") * 200_000


@dataclass(frozen=True)
class Case:
    id: str
    handler: Callable[[], Handler]
    exit_code: int = 7
    says: tuple[str, ...] = ()
    step: str | None = "http"
    args: tuple[str, ...] = ("--max-time", "3")
    path: str = "/"
    then: tuple[Check, ...] = field(default=())
    terminal: bool = False  # also render for a terminal: no raw control characters


def ok(*, status: int = 200, body: int | None = None, reusable: bool | None = None,
       informational: list[int] | None = None, excerpt: str | None = None,
       header: tuple[str, str] | None = None) -> Check:
    """What the final HTTP span of a journey that completed must show."""

    def verify(out: Outcome) -> None:
        spans = [s for s in out.spans() if s.get("name") == "http"]
        assert spans, out.describe()
        attrs: dict[str, Any] = spans[-1].get("attrs", {})
        assert attrs.get("status") == status, attrs.get("status")
        if body is not None:
            assert attrs.get("body_bytes_decoded") == body, attrs.get("body_bytes_decoded")
        if reusable is not None:
            assert attrs.get("reusable") is reusable, "reusable should be " + str(reusable)
        if informational is not None:
            assert attrs.get("informational") == informational, attrs.get("informational")
        if excerpt is not None:
            assert excerpt in (attrs.get("body_excerpt") or ""), attrs.get("body_excerpt")
        if header is not None:
            names = {str(n).lower() for n, _ in attrs.get("response_headers", [])}
            assert header[0].lower() in names, attrs.get("response_headers")

    return verify


def no_raw_controls(out: Outcome) -> None:
    """Nothing the peer sent reaches the user's terminal as a control character."""
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]", out.message), out.message


LF_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


def head(*lines: str) -> bytes:
    return ("\r\n".join(["HTTP/1.1 200 OK", *lines]) + "\r\n\r\n").encode("latin-1")


# --- servers that need more than one reply ------------------------------------------------

def informational_then_ok(statuses: list[int], extra: str = "") -> Handler:
    interim = b"".join(f"HTTP/1.1 {s} Interim\r\n{extra}\r\n".encode() for s in statuses)
    return reply(interim + response("200 OK", b"hello"))


def endless_1xx(pace: float) -> Handler:
    return reply_stream(forever(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                                pace=pace, batch=1 if pace else 64))


def redirect_chain(n: int) -> Handler:
    """/r/1 → /r/2 → … → /r/n → 200, every hop on the same keep-alive connection."""

    def answer(method: str, target: str) -> bytes:
        hop = int(target.rsplit("/", 1)[1]) if target.startswith("/r/") else 0
        if hop < n:
            return response("302 Found", b"", f"Location: /r/{hop + 1}")
        return response("200 OK", b"done", "Content-Type: text/plain")

    return routes(answer)


def redirect_loop() -> Handler:
    def answer(method: str, target: str) -> bytes:
        return response("302 Found", b"", "Location: " + ("/b" if target == "/a" else "/a"))

    return routes(answer)


def redirect_to(location: str) -> Handler:
    def answer(method: str, target: str) -> bytes:
        if target == "/":
            return response("302 Found", b"", f"Location: {location}")
        return response("200 OK", b"elsewhere", "Content-Type: text/plain")

    return routes(answer)


def close_after_first() -> Handler:
    """A keep-alive 302 (no Connection: close), then the server closes that connection as
    soon as the next request arrives on it, without a word: an idle keep-alive close that
    crossed our request."""

    def answer(method: str, target: str) -> bytes | None:
        if target == "/":
            return response("302 Found", b"", "Location: /next")
        return None

    return routes(answer)


def unsolicited_second_response() -> Handler:
    """The 302 comes with a second, unrequested response right behind it in the same write
    (a desynchronised or smuggled response). On any other connection /next is answered
    properly."""

    def handler(conn: Any) -> None:
        data = read_request_head(conn)
        if data.startswith(b"GET / "):
            conn.sendall(response("302 Found", b"", "Location: /next")
                         + response("200 OK", b"stale", "Content-Type: text/plain"))
            wait_until_closed(conn, 5)
        else:
            conn.sendall(response("200 OK", b"fresh", "Content-Type: text/plain",
                                  "Connection: close"))
            wait_until_closed(conn, 2)

    return handler


def many_headers(n: int, line: Callable[[int], str]) -> bytes:
    return head(*(line(i) for i in range(n)), "Content-Length: 5") + b"hello"


def paced_tiny_chunks() -> Iterator[bytes]:
    yield head("Transfer-Encoding: chunked")
    while True:
        time.sleep(0.002)
        yield b"1\r\nx\r\n"


# --- the corpus ---------------------------------------------------------------------------

GZ = "Content-Encoding: gzip"
SLOW = ("--max-time", "2")

CASES: list[Case] = [
    # Status line.
    Case("status-line-without-code",
         lambda: reply(b"HTTP/1.1 OK\r\nContent-Length: 5\r\n\r\nhello"),
         says=(r"status line",)),
    Case("status-line-lowercase-http-name",  # RFC 9112 §2.3: HTTP-name is case-sensitive
         lambda: reply(b"http/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
         says=(r"not HTTP|status line",)),
    # RFC 9112 §4 wants "200 " with the space, but h11, curl and browsers accept the bare
    # code; an empty reason is valid.
    Case("status-without-reason-or-space",
         lambda: reply(b"HTTP/1.1 200\r\nContent-Length: 5\r\n\r\nhello"),
         exit_code=0, then=(ok(body=5),)),
    Case("status-with-empty-reason",
         lambda: reply(b"HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\nhello"),
         exit_code=0, then=(ok(body=5),)),
    # RFC 9110 §15: codes outside 100..599 are invalid, and a client SHOULD process one as a
    # 5xx; curl accepts 600..999 too. A response still arrived: exit 0, status as sent.
    Case("status-600",
         lambda: reply(b"HTTP/1.1 600 Beyond\r\nContent-Length: 5\r\n\r\nhello"),
         exit_code=0, then=(ok(status=600, body=5),)),
    # Below 100 is no status at all (curl: "Unsupported response code in HTTP response").
    Case("status-000",
         lambda: reply(b"HTTP/1.1 000 Zero\r\nContent-Length: 5\r\n\r\nhello"),
         says=(r"status",)),
    Case("status-four-digits",
         lambda: reply(b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello"),
         says=(r"status",)),
    # RFC 9112 §2.2: a recipient MAY take a bare LF as a line end (h11, curl, browsers do).
    Case("lf-only-line-ends",
         lambda: reply(b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\nhello"),
         exit_code=0, then=(ok(body=5, excerpt="hello"),)),
    # RFC 9112 §5.2: a user agent replaces obs-fold with SP and goes on.
    Case("obs-fold",
         lambda: reply(head("X-Folded: first", "  second", "Content-Length: 5") + b"hello"),
         exit_code=0, then=(ok(body=5, header=("x-folded", "")),)),
    Case("endless-blank-lines-before-status",
         lambda: reply_stream(forever(b"\r\n", batch=4096)),
         says=(r"status line|response line|blank|empty line",)),
    Case("status-line-1mib",
         lambda: reply(b"HTTP/1.1 200 " + b"O" * MIB + b"\r\n\r\n"),
         says=(r"header", r"64 KiB")),
    # Field lines. A line without a colon or with whitespace before it is not a field
    # (RFC 9112 §5.1: whitespace there has led to smuggling; h11 and curl refuse it).
    Case("header-without-colon",
         lambda: reply(head("NoColonHere", "Content-Length: 5") + b"hello"),
         says=(r"colon|NoColonHere",)),
    Case("space-before-colon",
         lambda: reply(head("Content-Length : 5") + b"hello"),
         says=(r"space|whitespace|'Content-Length : 5'",)),
    # RFC 9110 §8.6: identical repeats may be taken as one value.
    Case("content-length-repeated-same",
         lambda: reply(head("Content-Length: 5", "Content-Length: 5") + b"hello"),
         exit_code=0, then=(ok(body=5),)),
    # RFC 9112 §6.3 (5): differing or invalid lengths are an unrecoverable error.
    Case("content-length-conflicting",
         lambda: reply(head("Content-Length: 5", "Content-Length: 6") + b"hello!"),
         says=(r"Content-Length",)),
    Case("content-length-not-a-number",
         lambda: reply(head("Content-Length: 5abc") + b"hello"),
         says=(r"Content-Length",)),
    Case("content-length-negative",
         lambda: reply(head("Content-Length: -1") + b"hello"),
         says=(r"Content-Length",)),
    # RFC 9112 §6.3 (3): Transfer-Encoding overrides Content-Length (curl and browsers read
    # the chunks); such a message "ought to be handled as an error", so the connection is
    # not used again (the server side of §6.1 MUST close).
    Case("transfer-encoding-and-content-length",
         lambda: reply(head("Transfer-Encoding: chunked", "Content-Length: 100")
                       + chunked(b"hello"), "hold"),
         exit_code=0, then=(ok(body=5, reusable=False),)),
    # Only chunked is a transfer coding anyone uses; we cannot undo another.
    Case("transfer-encoding-unknown",
         lambda: reply(head("Transfer-Encoding: foo") + b"hello"),
         says=(r"Transfer-Encoding|transfer coding",)),
    # Chunked framing (RFC 9112 §7.1).
    Case("chunk-size-not-hex",
         lambda: reply(head("Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n"),
         says=(r"chunk",)),
    Case("chunk-size-overflow",
         lambda: reply(head("Transfer-Encoding: chunked")
                       + b"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
         says=(r"chunk",)),
    Case("chunk-data-longer-than-its-size",
         lambda: reply(head("Transfer-Encoding: chunked") + b"5\r\nhelloEXTRA\r\n0\r\n\r\n"),
         says=(r"chunk",)),
    # The last chunk came but the chunked body's final CRLF did not: curl and Chromium
    # report the transfer incomplete, so do we.
    Case("chunked-without-final-crlf",
         lambda: reply(head("Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n"),
         says=(r"closed", r"chunk")),
    Case("chunked-without-last-chunk",
         lambda: reply(head("Transfer-Encoding: chunked") + b"5\r\nhello\r\n"),
         says=(r"closed", r"chunk")),
    Case("chunked-with-trailers",
         lambda: reply(head("Transfer-Encoding: chunked")
                       + chunked(b"hello", last=b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n")),
         exit_code=0, then=(ok(body=5),)),
    # RFC 9112 §7.1.1: unknown chunk extensions are ignored...
    Case("chunk-extension-harmless",
         lambda: reply(head("Transfer-Encoding: chunked")
                       + b"5;name=value\r\nhello\r\n0\r\n\r\n"),
         exit_code=0, then=(ok(body=5),)),
    # ...but a chunk-size line is bounded like a header line (a megabyte is an attack).
    Case("chunk-extension-1mib",
         lambda: reply(head("Transfer-Encoding: chunked")
                       + b"5;" + b"e" * MIB + b"\r\nhello\r\n0\r\n\r\n"),
         says=(r"chunk",)),
    # 1xx responses (RFC 9110 §15.2): noted, then the final response.
    Case("1xx-100-continue", lambda: informational_then_ok([100]),
         exit_code=0, then=(ok(body=5, informational=[100]),)),
    Case("1xx-102-processing", lambda: informational_then_ok([102]),
         exit_code=0, then=(ok(body=5, informational=[102]),)),
    Case("1xx-103-early-hints",
         lambda: informational_then_ok([103], "Link: </style.css>; rel=preload\r\n"),
         exit_code=0, then=(ok(body=5, informational=[103]),)),
    Case("1xx-twenty-then-200", lambda: informational_then_ok([100, 102] + [103] * 18),
         exit_code=0, then=(ok(body=5, informational=[100, 102] + [103] * 18),)),
    Case("1xx-endless", lambda: endless_1xx(0.0),
         says=(r"informational|1xx", r"more than \d+")),
    Case("1xx-endless-paced", lambda: endless_1xx(0.25), args=SLOW,
         exit_code=9, step="journey", says=(r"max-time",)),
    # RFC 9110 §15.2.2: a server switches protocols only when the client asked (Upgrade).
    Case("101-without-upgrade-asked",
         lambda: reply(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       b"Upgrade: websocket\r\n\r\n\x81\x05hello", "hold"),
         says=(r"101|Switching Protocols", r"upgrade|did not ask|not ask")),
    # 204, 304 and HEAD end at the blank line (RFC 9112 §6.3 (1)): the bytes after them are
    # not a body. The response is complete; the connection, holding stray bytes, is not
    # used again (curl: "Excess found").
    Case("204-with-body",
         lambda: reply(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", "hold"),
         exit_code=0, then=(ok(status=204, body=0, reusable=False),)),
    Case("204-with-chunked-body",
         lambda: reply(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + chunked(b"hello"), "hold"),
         exit_code=0, then=(ok(status=204, body=0, reusable=False),)),
    Case("304-with-body",
         lambda: reply(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", "hold"),
         exit_code=0, then=(ok(status=304, body=0, reusable=False),)),
    Case("head-with-body",
         lambda: reply(head("Content-Length: 5") + b"hello", "hold"),
         args=("--max-time", "3", "-X", "HEAD"),
         exit_code=0, then=(ok(body=0, reusable=False),)),
    # Header size, count and bytes.
    Case("header-1mib-value",
         lambda: reply(head("X-Big: " + "a" * MIB, "Content-Length: 5") + b"hello"),
         says=(r"header", r"64 KiB")),
    Case("headers-10000",
         lambda: reply(many_headers(10_000, lambda i: f"X-Header-{i:05d}: value-{i}")),
         says=(r"header", r"64 KiB")),
    Case("headers-2000-small-within-limit",
         lambda: reply(many_headers(2_000, lambda i: f"a{i}: b")),
         exit_code=0, then=(ok(body=5),)),
    # RFC 9110 §5.5: NUL, CR and LF in a value MUST be refused or replaced by SP.
    Case("header-value-nul",
         lambda: reply(head("X-Nul: a\x00b", "Content-Length: 5") + b"hello"),
         says=(r"header", r"NUL|null|\\x00|\\0|control")),
    Case("header-value-bare-cr",
         lambda: reply(head("X-Cr: a\rb", "Content-Length: 5") + b"hello"),
         says=(r"header", r"CR\b|carriage return|\\r|control")),
    # obs-text (0x80-0xFF) is valid in a value (RFC 9110 §5.5); it is shown, not refused.
    Case("header-value-not-utf8",
         lambda: reply(head("X-Latin: caf\xe9 \xff\xfe", "Content-Length: 5") + b"hello"),
         exit_code=0, then=(ok(body=5, header=("x-latin", "")),), terminal=True),
    # Other control characters are invalid but may be kept (RFC 9110 §5.5); browsers keep
    # them. The report must show them made visible, never raw (issue 8: escape injection).
    Case("header-value-escape-sequences",
         lambda: reply(head("X-Evil: \x1b[2J\x1b[H\x1b]0;pwned\x07gotcha", "Content-Length: 5")
                       + b"hello"),
         exit_code=0, then=(ok(body=5, header=("x-evil", "")),), terminal=True),
    Case("header-value-c1-csi",
         lambda: reply(head("X-C1: \x9b2J\x9b31mred", "Content-Length: 5") + b"hello"),
         exit_code=0, then=(ok(body=5, header=("x-c1", "")),), terminal=True),
    Case("reason-phrase-escape-sequences",
         lambda: reply(b"HTTP/1.1 200 \x1b[2J\x1b]0;pwned\x07OK\r\nContent-Length: 5\r\n\r\nhello"),
         exit_code=0, then=(ok(body=5),), terminal=True),
    # Slow drips: a byte at a time is fine while the journey has time, and stopped at
    # --max-time when it has not (each byte arrives well within the read timeout).
    Case("head-drip-fast",
         lambda: drip(head("Content-Type: text/plain", "Content-Length: 5") + b"hello", 0.002),
         exit_code=0, then=(ok(body=5, excerpt="hello"),)),
    Case("head-drip-slower-than-deadline",
         lambda: drip(head("Content-Type: text/plain", "Content-Length: 5") + b"hello", 0.25),
         args=SLOW, exit_code=9, step="journey", says=(r"max-time",)),
    Case("body-drip-fast",
         lambda: drip(b"x" * 200, 0.002, head=head("Content-Length: 200")),
         exit_code=0, then=(ok(body=200),)),
    Case("body-drip-slower-than-deadline",
         lambda: drip(b"x" * 100, 0.25, head=head("Content-Length: 100")),
         args=SLOW, exit_code=9, step="journey", says=(r"max-time",)),
    # Endless bodies, in every framing.
    Case("endless-close-delimited",
         lambda: reply_stream(forever(b"x" * 16384, head=head())),
         says=(r"body", r"limit")),
    Case("endless-close-delimited-paced",
         lambda: reply_stream(forever(b"x" * 100, head=head(), pace=0.05)),
         args=SLOW, exit_code=9, step="journey", says=(r"max-time",)),
    Case("endless-content-length-announced",
         lambda: reply_stream(forever(b"x" * 16384,
                                      head=head("Content-Length: 10000000000000"))),
         says=(r"announced|Content-Length",)),
    Case("endless-chunked-big-chunks",
         lambda: reply_stream(forever(b"4000\r\n" + b"x" * 0x4000 + b"\r\n",
                                      head=head("Transfer-Encoding: chunked"))),
         says=(r"body", r"limit")),
    Case("endless-tiny-chunks",
         lambda: reply_stream(forever(b"1\r\nx\r\n", head=head("Transfer-Encoding: chunked"),
                                      batch=2048)),
         says=(r"chunks",)),
    Case("endless-tiny-chunks-paced", lambda: reply_stream(paced_tiny_chunks), args=SLOW,
         exit_code=9, step="journey", says=(r"max-time",)),
    # Bombs: stopped at the decoded limit (50 MiB), every stage held to it.
    Case("gzip-bomb-10gib",
         lambda: reply(head(GZ, f"Content-Length: {len(gzip_bomb(10240))}")
                       + gzip_bomb(10240)),
         args=("--max-time", "5", "--max-body", "16000000"),
         says=(r"gzip", r"decoded limit")),
    # With the default limits the 10 MB on the wire already pass --max-body (10 MiB); a
    # decoder that decodes as the body arrives stops at the decoded limit sooner. Either
    # limit will do, named, fast.
    Case("gzip-bomb-10gib-default-limits",
         lambda: reply(head(GZ, f"Content-Length: {len(gzip_bomb(10240))}")
                       + gzip_bomb(10240)),
         args=("--max-time", "5"), says=(r"limit",)),
    Case("deflate-bomb",
         lambda: reply(head("Content-Encoding: deflate",
                            f"Content-Length: {len(deflate_bomb(128))}") + deflate_bomb(128)),
         says=(r"deflate", r"decoded limit")),
    Case("br-bomb",
         lambda: reply(head("Content-Encoding: br",
                            f"Content-Length: {len(brotli_bomb(128))}") + brotli_bomb(128)),
         says=(r"\bbr\b|brotli", r"decoded limit")),
    Case("zstd-bomb",
         lambda: reply(head("Content-Encoding: zstd",
                            f"Content-Length: {len(zstd_bomb(128))}") + zstd_bomb(128)),
         says=(r"zstd", r"decoded limit")),
    # Bodies that decode to nothing but cost a new decoder per member/frame: 10 MiB of empty
    # gzip members took 79 s of CPU before the member bound (each copied the rest of the body).
    Case("gzip-empty-member-flood",
         lambda: reply(head(GZ, f"Content-Length: {len(_EMPTY_GZ_FLOOD)}") + _EMPTY_GZ_FLOOD),
         args=("--max-time", "5"), says=(r"gzip", r"more than 1000 gzip members")),
    Case("zstd-empty-frame-flood",
         lambda: reply(head("Content-Encoding: zstd", f"Content-Length: {len(_EMPTY_ZSTD_FLOOD)}")
                       + _EMPTY_ZSTD_FLOOD),
         args=("--max-time", "5"), says=(r"zstd", r"more than 1000 zstd frames")),
    Case("codings-tower",
         lambda: reply(head("Content-Encoding: " + ", ".join(["gzip"] * 400), "Content-Length: 5")
                       + b"hello"),
         says=(r"stacked 400 content codings",)),
    Case("nested-gzip-gzip-bomb",
         lambda: reply(head("Content-Encoding: gzip, gzip",
                            f"Content-Length: {len(gzip_of(gzip_bomb(10240)))}")
                       + gzip_of(gzip_bomb(10240))),
         args=("--max-time", "5"), says=(r"gzip", r"decoded limit")),
    Case("nested-zstd-br-bomb",
         lambda: reply(head("Content-Encoding: zstd, br",
                            f"Content-Length: {len(_br(zstd_bomb(128)))}")
                       + _br(zstd_bomb(128))),
         says=(r"zstd", r"decoded limit")),
    Case("gzip-bomb-chunked",
         lambda: reply(head(GZ, "Transfer-Encoding: chunked")
                       + chunked(*_pieces(gzip_bomb(128), 4096))),
         says=(r"gzip", r"decoded limit")),
    Case("gzip-not-gzip",
         lambda: reply(head(GZ, "Content-Length: 5") + b"hello"),
         says=(r"gzip", r"does not decode|corrupt|not .*gzip")),
    Case("gzip-truncated",
         lambda: reply(head(GZ, "Content-Length: 30") + gzip_of(bytes(range(256)) * 8)[:30]),
         says=(r"gzip", r"truncated|ends before")),
    Case("content-coding-unknown",
         lambda: reply(head("Content-Encoding: compress", "Content-Length: 5") + b"hello"),
         says=(r"compress",)),
    # Lengths that lie.
    Case("content-length-larger-then-fin",
         lambda: reply(head("Content-Length: 1000") + b"y" * 100),
         says=(r"closed", r"100 bytes", r"1000")),
    Case("content-length-larger-then-silence",
         lambda: reply(head("Content-Length: 1000") + b"y" * 100, "hold"), args=SLOW,
         exit_code=9, step="journey", says=(r"max-time",)),
    Case("rst-mid-body",
         lambda: reply(head("Content-Length: 1000") + b"y" * 100, "rst"),
         says=(r"reset", r"100 bytes")),
    # RFC 9112 §6.3: the body is the Content-Length bytes; what follows is not ours. The
    # response is complete, the extra ignored, the connection not used again.
    Case("body-longer-than-content-length",
         lambda: reply(head("Content-Type: text/plain", "Content-Length: 5")
                       + b"hello, and then some more"),
         exit_code=0, then=(ok(body=5, excerpt="hello", reusable=False),)),
    Case("garbage-after-response",
         lambda: reply(head("Content-Length: 5") + b"hello" + b"\x00\xffGARBAGE\r\n\r\n", "hold"),
         exit_code=0, then=(ok(body=5, reusable=False),)),
    # Keep-alive confusion.
    # HTTP/1.0 without a length: the body ends at the close, whatever Connection says.
    Case("http10-keep-alive-without-length",
         lambda: reply(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                       b"Content-Type: text/plain\r\n\r\nhello"),
         exit_code=0, then=(ok(body=5, excerpt="hello", reusable=False),)),
    # RFC 9112 §9.3.1: a server may close an idle connection as our next request arrives;
    # the report says so and that a new connection may succeed.
    Case("keep-alive-closed-under-the-next-request", close_after_first,
         says=(r"closed", r"keep-alive|already carried")),
    # A response that came before we asked cannot be the answer: the next request goes on a
    # new connection and gets the server's real answer.
    Case("keep-alive-unsolicited-response", unsolicited_second_response,
         exit_code=0, then=(ok(body=5, excerpt="fresh"),)),
    # Redirects (exit 8).
    Case("redirect-loop", redirect_loop, path="/a", step="redirect", exit_code=8,
         says=(r"loop",)),
    Case("redirect-to-itself", lambda: redirect_to("/"), step="redirect", exit_code=8,
         says=(r"loop",)),
    Case("redirects-30", lambda: redirect_chain(30), step="redirect", exit_code=8,
         says=(r"more than 20|too many",)),
    Case("location-garbage", lambda: redirect_to("http://exa mple.com:99999/%%%"),
         step="redirect", exit_code=8, says=(r"redirected to|Location",)),
    Case("location-unsupported-scheme", lambda: redirect_to("javascript:alert(1)"),
         step="redirect", exit_code=8, says=(r"javascript",)),
    Case("location-escape-sequences", lambda: redirect_to("http://\x1b[2J\x1b]0;x\x07/"),
         step="redirect", exit_code=8, says=(r"redirected to|Location",),
         then=(no_raw_controls,)),
]


def _br(data: bytes) -> bytes:
    import brotli

    out: bytes = brotli.compress(data, quality=5)
    return out


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 45


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_http1(case: Case) -> None:
    with RawServer(case.handler()) as server:
        out = run_cli([server.url(path=case.path), *case.args])
        check(out, step=case.step, exit_code=case.exit_code, says=case.says)
        no_raw_controls(out)
        for verify in case.then:
            verify(out)
        if case.terminal:
            shown = run_cli([server.url(path=case.path), *case.args, "--no-color"],
                            json_output=False)
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]", shown.stdout), (
                "a control character from the server reached the terminal: "
                + repr(shown.stdout[-2000:]))
