"""The misbehaving-server corpus, HTTP/2: every frame type misused, floods of each control
frame, flow control, GOAWAY and RST_STREAM at every point, HPACK bombs, CONTINUATION floods,
malformed responses, and servers that do not speak HTTP/2 at all (issue 8, item 3).

Each case is a server built from raw frames (tests/misbehaving_h2.py) spoken to with
``--http2`` over cleartext (prior knowledge, RFC 9113 §3.3), a few over TLS with ALPN h2.
RFC 9113 decides the outcome: a connection error (§5.4.1) or an error on our stream (§5.4.2)
is the server's fault, exit 7, in words that name the frame; what the RFC says to ignore is
ignored. Floods must stop fast, with the count named.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certgen import make_pki, server_context, write_cafile, write_server_files
from corpus_harness import Outcome, check, run_cli
from misbehaving import Handler, RawServer, wait_until_closed
from misbehaving_h2 import (
    CANCEL,
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    INTERNAL_ERROR,
    MAX_FRAME_SIZE,
    NO_ERROR,
    PADDED,
    PING,
    PRIORITY,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    SETTINGS,
    H2Peer,
    data,
    frame,
    goaway,
    header_block_frames,
    ping,
    priority,
    rst_stream,
    serve,
    settings,
    window_update,
)
from misbehaving_http import MIB, gzip_bomb

Step = bytes | Callable[[H2Peer], bytes | None]
Check = Callable[[Outcome], None]
SID = 1  # our request is always the first client stream


@dataclass(frozen=True)
class Case:
    id: str
    body: Callable[[H2Peer], None]
    exit_code: int = 7
    says: tuple[str, ...] = ()
    step: str | None = "http"
    args: tuple[str, ...] = ("--max-time", "3")
    tls: bool = False
    then: tuple[Check, ...] = ()
    terminal: bool = False  # also render for a terminal: no raw control characters


def script(*steps: Step, ending: str = "hold", send_settings: bool = True,
           server_settings: tuple[tuple[int, int], ...] = ()) -> Callable[[H2Peer], None]:
    """Handshake, then each step's frames in order (a callable step may also act itself,
    e.g. flood), then end the connection: "hold", "fin" or "rst"."""

    def body(peer: H2Peer) -> None:
        peer.handshake(send_settings=send_settings, server_settings=server_settings)
        for step in steps:
            out = step(peer) if callable(step) else step
            if out:
                peer.send(out)
        {"hold": peer.hold, "fin": peer.fin, "rst": peer.rst}[ending]()

    return body


def hdrs(*fields: tuple[str, str], end: bool = False) -> Callable[[H2Peer], bytes]:
    return lambda peer: peer.headers(SID, list(fields), end_stream=end)


def block(raw: bytes, *, end: bool = False, stream_id: int = SID) -> bytes:
    """A header block given as raw HPACK bytes."""
    return header_block_frames(stream_id, raw, end_stream=end)


OK_HEAD = hdrs((":status", "200"), ("content-type", "text/plain"))
HELLO = data(SID, b"hello", end=True)


def flood(one: bytes | Callable[[int], bytes], *, pace: float = 0.0,
          batch: int = 256) -> Callable[[H2Peer], None]:
    def step(peer: H2Peer) -> None:
        peer.flood(one, pace=pace, batch=batch)

    return step


def ok(*, status: int = 200, body: int | None = None,
       informational: list[int] | None = None) -> Check:
    def verify(out: Outcome) -> None:
        spans = [s for s in out.spans() if s.get("name") == "http"]
        attrs: dict[str, Any] = spans[-1].get("attrs", {}) if spans else {}
        assert attrs.get("http_version") == "HTTP/2", attrs.get("http_version")
        assert attrs.get("status") == status, attrs.get("status")
        if body is not None:
            assert attrs.get("body_bytes_decoded") == body, attrs.get("body_bytes_decoded")
        if informational is not None:
            assert attrs.get("informational") == informational, attrs.get("informational")

    return verify


# --- HPACK by hand (RFC 7541) -------------------------------------------------------------

def hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) with ``first``'s high bits as the pattern."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_literal_indexed(name: bytes, value: bytes) -> bytes:
    """Literal with incremental indexing, new name (RFC 7541 §6.2.1): enters the table."""
    return (b"\x40" + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0)
            + value)


STATUS_200 = b"\x88"  # static table index 8: ":status: 200"


def hpack_repeat_bomb(peer: H2Peer) -> bytes:
    """One 4000-byte field enters the dynamic table, then 5000 one-byte references to it:
    9 KB on the wire, 20 MB once decoded."""
    raw = STATUS_200 + hpack_literal_indexed(b"x-bomb", b"a" * 4000) + b"\xbe" * 5000
    return block(raw)


def huge_header_list(peer: H2Peer) -> bytes:
    fields = [(":status", "200")] + [(f"x-h{i}", "v" * 1000) for i in range(200)]
    return peer.headers(SID, fields)


def continuation_flood(payload: bytes) -> Callable[[H2Peer], None]:
    """HEADERS without END_HEADERS, then CONTINUATION frames without end (CVE-2024-27316)."""

    def step(peer: H2Peer) -> None:
        peer.send(frame(HEADERS, 0, SID, STATUS_200))
        peer.flood(frame(CONTINUATION, 0, SID, payload), batch=64)

    return step


def informational_flood(peer: H2Peer) -> None:
    peer.flood(lambda i: peer.headers(SID, [(":status", "103"), ("link", "</a.css>")]),
               batch=32)


def pause(seconds: float) -> Callable[[H2Peer], None]:
    return lambda peer: time.sleep(seconds)


def respect_flow_control(size: int) -> Callable[[H2Peer], None]:
    """A correct server with a big body: it sends only what our windows allow and waits for
    our WINDOW_UPDATEs (which must come, or it stalls)."""

    def step(peer: H2Peer) -> None:
        peer.send(peer.headers(SID, [(":status", "200"), ("content-length", str(size))]))
        peer.send_body(SID, b"z" * size)

    return step


def paced_tiny_data(peer: H2Peer) -> None:
    peer.flood(data(SID, b"x"), batch=1, pace=0.002)


def gzip_bomb_response(peer: H2Peer) -> None:
    bomb = gzip_bomb(128)
    peer.send(peer.headers(SID, [(":status", "200"), ("content-encoding", "gzip")]))
    peer.send_body(SID, bomb)


def unknown_frame(i: int) -> bytes:
    return frame(0xFA, 0, 0, b"unknown")


# --- servers that do not speak HTTP/2 -----------------------------------------------------

def speaks_http1() -> Handler:
    """What an HTTP/1.1-only server says to "PRI * HTTP/2.0" (nginx, Apache: a 400)."""

    def handler(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
                     b"Content-Length: 11\r\nConnection: close\r\n\r\nBad Request")
        conn.shutdown(socket.SHUT_WR)
        wait_until_closed(conn, 3)

    return handler


def silent_after_preface() -> Handler:
    def handler(conn: socket.socket) -> None:
        conn.recv(4096)
        wait_until_closed(conn, 10)

    return handler


def close_before_response() -> Callable[[H2Peer], None]:
    """SETTINGS, then the whole socket closed (not just our side): our SETTINGS ACK then
    meets a closed socket, which is where "[Errno 32] Broken pipe" came from."""

    def body(peer: H2Peer) -> None:
        peer.handshake()
        time.sleep(0.05)
        peer.conn.close()

    return body


SLOW = ("--max-time", "2")


def named(token: str) -> str:
    """A protocol name as the RFC spells it (case-sensitive, a whole word): "DATA" must not
    be satisfied by "Frame data missing", nor "CONTINUATION" by "RECV_CONTINUATION"."""
    return rf"(?-i:\b{token}\b)"


_GOAWAY = r"GOAWAY"
_PROTOCOL = r"HTTP/2|protocol"

CASES: list[Case] = [
    # A correct server, to show the peer itself is sound.
    Case("correct-response", script(OK_HEAD, HELLO), exit_code=0, then=(ok(body=5),)),
    # Every frame type misused (RFC 9113 §6).
    Case("data-on-stream-0", script(OK_HEAD, data(0, b"hello")), says=(named("DATA"), r"stream 0")),
    Case("headers-on-even-stream",
         script(lambda p: p.headers(2, [(":status", "200")], end_stream=True)),
         says=(named("HEADERS"), r"stream 2|even")),
    Case("settings-length-not-multiple-of-6",
         script(frame(SETTINGS, 0, 0, b"\x00\x04\x00\x01\x00")), says=(named("SETTINGS"),)),
    Case("settings-on-a-stream", script(settings(stream_id=SID)), says=(named("SETTINGS"),)),
    Case("settings-ack-with-payload",
         script(frame(SETTINGS, 0x1, 0, b"\x00\x04\x00\x01\x00\x00")),
         says=(named("SETTINGS"),)),
    # §6.5.2: a client MUST treat ENABLE_PUSH=1 from a server as a PROTOCOL_ERROR.
    # The setting by name, in words (SETTINGS_ENABLE_PUSH itself reads as a library code to
    # the harness).
    Case("settings-enable-push-from-server", script(settings((ENABLE_PUSH, 1))),
         says=(r"push",)),
    Case("settings-initial-window-over-2-31", script(settings((INITIAL_WINDOW_SIZE, 1 << 31))),
         says=(r"initial window|window size",)),
    Case("settings-max-frame-size-too-small", script(settings((MAX_FRAME_SIZE, 100))),
         says=(r"frame size",)),
    Case("ping-wrong-length", script(frame(PING, 0, 0, b"1234567")), says=(named("PING"),)),
    Case("ping-on-a-stream", script(frame(PING, 0, SID, b"12345678")), says=(named("PING"),)),
    Case("window-update-zero-on-connection", script(window_update(0, 0)),
         says=(named("WINDOW_UPDATE"),)),
    Case("window-update-zero-on-our-stream", script(window_update(SID, 0)),
         says=(named("WINDOW_UPDATE"),)),
    # §6.9.1: a window over 2^31-1 is a FLOW_CONTROL_ERROR.
    Case("window-update-overflow", script(window_update(0, 0x7FFFFFFF)),
         says=(r"WINDOW_UPDATE|flow.control|window",)),
    # §5.3.1 (kept from RFC 7540): a stream cannot depend on itself.
    Case("priority-on-itself", script(priority(SID, SID)), says=(r"PRIORITY|depend",)),
    Case("priority-wrong-length", script(frame(PRIORITY, 0, SID, b"\x00\x00\x00")),
         says=(named("PRIORITY"),)),
    # §6.4: RST_STREAM on an idle stream is a connection error.
    Case("rst-stream-on-idle-stream", script(rst_stream(3, CANCEL)),
         says=(named("RST_STREAM"),)),
    # §4.1 and §5.5: frames of unknown type are ignored.
    Case("unknown-frame-type-ignored",
         script(frame(0xFA, 0, 0, b"what"), frame(0xFB, 0xFF, SID, b"ever"), OK_HEAD, HELLO),
         exit_code=0, then=(ok(body=5),)),
    Case("continuation-without-headers",
         script(frame(CONTINUATION, END_HEADERS, SID, STATUS_200)), says=(named("CONTINUATION"),)),
    # §8.4: we said SETTINGS_ENABLE_PUSH=0, so a PUSH_PROMISE is a PROTOCOL_ERROR.
    Case("push-promise-although-disabled",
         script(lambda p: frame(PUSH_PROMISE, END_HEADERS, SID,
                                struct.pack(">I", 2) + p.block([(":method", "GET"),
                                                                (":path", "/x"),
                                                                (":scheme", "http"),
                                                                (":authority", "a")]))),
         says=(r"(?-i:PUSH_PROMISE)|push",)),
    Case("frame-over-max-frame-size", script(OK_HEAD, data(SID, b"x" * 20000, end=True)),
         says=(r"frame", r"20000|20,000")),
    Case("data-padding-longer-than-frame",
         script(OK_HEAD, frame(DATA, PADDED | END_STREAM, SID, b"\x0ahello")),
         says=(r"pad",)),
    Case("data-before-headers", script(HELLO), says=(r"DATA", r"before|headers")),
    # §5.1: on an idle stream only HEADERS and PRIORITY may come.
    Case("data-on-idle-stream", script(OK_HEAD, data(3, b"hello")),
         says=(named("DATA"), r"stream 3|idle")),
    Case("goaway-on-a-stream", script(frame(0x7, 0, SID, struct.pack(">II", 0, 0))),
         says=(named("GOAWAY"),)),
    Case("goaway-too-short", script(frame(0x7, 0, 0, b"\x00\x00\x00")),
         says=(named("GOAWAY"),)),
    Case("window-update-overflow-on-our-stream",
         script(window_update(SID, 0x7FFFFFFF), OK_HEAD, HELLO),
         says=(r"WINDOW_UPDATE|window",)),
    # §6.5.2: unknown settings are ignored; an unsolicited PING ACK has nothing to match.
    Case("settings-unknown-id-ignored", script(settings((0xF0F0, 7)), OK_HEAD, HELLO),
         exit_code=0, then=(ok(body=5),)),
    Case("ping-ack-unsolicited-ignored", script(ping(b"87654321", ack=True), OK_HEAD, HELLO),
         exit_code=0, then=(ok(body=5),)),
    # Floods of each control frame: stopped fast, the count named.
    Case("flood-settings", script(flood(settings())),
         says=(r"control frames|SETTINGS", r"more than [\d,]+")),
    Case("flood-ping", script(flood(ping())),
         says=(r"control frames|PING", r"more than [\d,]+")),
    Case("flood-window-update", script(OK_HEAD, flood(window_update(0, 1))),
         says=(r"control frames|WINDOW_UPDATE", r"more than [\d,]+")),
    Case("flood-priority", script(flood(lambda i: priority(3 + 2 * (i % 1000), 0))),
         says=(r"control frames|PRIORITY", r"more than [\d,]+")),
    Case("flood-empty-data", script(OK_HEAD, flood(data(SID, b""))),
         says=(r"control frames|DATA", r"more than [\d,]+")),
    Case("flood-unknown-frames", script(OK_HEAD, flood(unknown_frame)),
         says=(r"control frames|unknown", r"more than [\d,]+")),
    # RST_STREAM of streams that are not ours: idle ones, so the first is already an error.
    Case("flood-rst-other-streams", script(flood(lambda i: rst_stream(3 + 2 * i, CANCEL))),
         says=(r"RST_STREAM|reset",)),
    Case("flood-ping-over-tls", script(flood(ping())), tls=True,
         says=(r"control frames|PING", r"more than [\d,]+")),
    # Flow control.
    Case("body-8mib-needs-window-updates", script(respect_flow_control(8 * MIB)),
         args=("--max-time", "5"), exit_code=0, then=(ok(body=8 * MIB),)),
    # §6.9.2: a server's INITIAL_WINDOW_SIZE of 0 only limits what we send (nothing here).
    Case("server-initial-window-zero",
         script(OK_HEAD, HELLO, server_settings=((INITIAL_WINDOW_SIZE, 0),)),
         exit_code=0, then=(ok(body=5),)),
    Case("headers-then-stall", script(OK_HEAD, data(SID, b"part")), args=SLOW,
         exit_code=9, step="journey", says=(r"max-time",)),
    # GOAWAY (§6.8) at every point.
    Case("goaway-before-response", script(goaway(0, NO_ERROR)),
         says=(_GOAWAY, r"before it processed|not processed|sent again|new connection")),
    Case("goaway-graceful-then-response", script(goaway(SID, NO_ERROR), OK_HEAD, HELLO),
         exit_code=0, then=(ok(body=5),)),
    Case("goaway-error-after-headers", script(OK_HEAD, goaway(SID, PROTOCOL_ERROR)),
         says=(_GOAWAY, r"PROTOCOL_ERROR")),
    Case("goaway-error-mid-body",
         script(OK_HEAD, data(SID, b"x" * 100), goaway(SID, INTERNAL_ERROR)),
         says=(_GOAWAY, r"INTERNAL_ERROR", r"100 bytes")),
    Case("goaway-lower-last-stream-after-headers",
         script(OK_HEAD, data(SID, b"x" * 100), goaway(0, NO_ERROR)),
         says=(_GOAWAY,)),
    Case("goaway-graceful-then-fin-mid-body",
         script(OK_HEAD, data(SID, b"x" * 100), goaway(SID, NO_ERROR), ending="fin"),
         says=(r"closed", r"100 bytes")),
    Case("goaway-debug-data-escape-sequences",
         script(goaway(0, PROTOCOL_ERROR, b"\x1b[2J\x1b]0;pwned\x07\x9b31m")),
         says=(_GOAWAY,)),
    # RST_STREAM on our stream at every point.
    Case("rst-stream-before-response", script(rst_stream(SID, REFUSED_STREAM)),
         says=(r"RST_STREAM|reset", r"REFUSED_STREAM|refused")),
    Case("rst-stream-after-headers", script(OK_HEAD, rst_stream(SID, CANCEL)),
         says=(r"RST_STREAM|reset", r"CANCEL")),
    Case("rst-stream-mid-body", script(OK_HEAD, data(SID, b"x" * 100),
                                       rst_stream(SID, INTERNAL_ERROR)),
         says=(r"RST_STREAM|reset", r"100 bytes")),
    # §8.1: a server may reset with NO_ERROR after a complete response.
    Case("rst-stream-no-error-after-complete-response",
         script(OK_HEAD, HELLO, rst_stream(SID, NO_ERROR)), exit_code=0, then=(ok(body=5),)),
    Case("rst-stream-flow-control-error", script(OK_HEAD, rst_stream(SID, FLOW_CONTROL_ERROR)),
         says=(r"RST_STREAM|reset", r"FLOW_CONTROL_ERROR")),
    # HPACK (RFC 7541) abuse.
    Case("hpack-huge-header-list", script(huge_header_list), says=(r"header", r"64 KiB")),
    Case("hpack-dynamic-table-repeat-bomb", script(hpack_repeat_bomb),
         says=(r"header", r"64 KiB")),
    # §4.2 of RFC 7541: a size update over our SETTINGS_HEADER_TABLE_SIZE (4096).
    Case("hpack-table-size-update-too-big",
         script(block(hpack_int(1_000_000, 5, 0x20) + STATUS_200)),
         says=(r"HPACK|header compression|compression|table",)),
    # A Huffman string whose padding is not the EOS prefix (RFC 7541 §5.2).
    Case("hpack-bad-huffman", script(block(STATUS_200 + b"\x40\x81\x00\x81\x00")),
         says=(r"HPACK|header compression|compression|huffman",)),
    Case("hpack-invalid-index", script(block(b"\xc6")),
         says=(r"HPACK|header compression|compression|index",)),
    Case("continuation-flood", script(continuation_flood(b"\x40\x01x\x01y" * 20)),
         says=(r"header|CONTINUATION",)),
    Case("continuation-flood-empty-frames", script(continuation_flood(b"")),
         says=(r"header|CONTINUATION|frames",)),
    # Malformed responses (§8.1.1, §8.3.2): the server's fault, never an internal error.
    Case("status-not-three-digits", script(hdrs((":status", "20"), end=True)),
         says=(r":status|status",)),
    Case("status-not-a-number", script(hdrs((":status", "abc"), end=True)),
         says=(r":status|status",)),
    Case("status-missing", script(hdrs(("content-type", "text/plain"), end=True)),
         says=(r":status|status",)),
    Case("pseudo-header-after-regular",
         script(hdrs(("content-type", "text/plain"), (":status", "200"), end=True)),
         says=(r"pseudo|:status",)),
    Case("connection-specific-header", script(hdrs((":status", "200"), ("connection",
                                                                        "keep-alive"),
                                                   end=True)),
         says=(r"connection",)),
    Case("uppercase-header-name", script(hdrs((":status", "200"), ("X-Upper", "1"), end=True)),
         says=(r"X-Upper|upper|header",)),
    Case("content-length-larger-than-data",
         script(hdrs((":status", "200"), ("content-length", "100")), HELLO),
         says=(r"(?-i:content-length|Content-Length)", r"100")),
    # §8.6: 101 is not a status HTTP/2 has; §8.1: a 1xx cannot end the stream.
    Case("status-101", script(hdrs((":status", "101"))),
         says=(r"101",)),
    Case("1xx-with-end-stream", script(hdrs((":status", "103"), end=True)),
         says=(r"103|informational|1xx",)),
    Case("trailers-after-data",
         script(OK_HEAD, data(SID, b"hello"), hdrs(("x-checksum", "abc"), end=True)),
         exit_code=0, then=(ok(body=5),)),
    # RFC 9113 §8.2.1: NUL, CR, LF are never valid in a value; other control characters
    # may pass, and the report shows them made visible (issue 8: escape injection).
    Case("header-value-nul", script(hdrs((":status", "200"), ("x-nul", "a\x00b"), end=True)),
         says=(r"header|x-nul", r"NUL|null|\\x00|\\0|control")),
    Case("header-value-escape-sequences",
         script(hdrs((":status", "200"), ("x-evil", "\x1b[2J\x1b]0;pwned\x07\x9b31mred"),
                     end=True)),
         exit_code=0, then=(ok(body=0),), terminal=True),
    Case("1xx-then-200", script(hdrs((":status", "103"), ("link", "</a.css>")), OK_HEAD, HELLO),
         exit_code=0, then=(ok(body=5, informational=[103]),)),
    Case("1xx-endless", script(informational_flood),
         says=(r"informational|1xx", r"more than \d+")),
    Case("data-endless-tiny-frames", script(OK_HEAD, flood(data(SID, b"x"))),
         says=(r"frames", r"more than [\d,]+")),
    Case("data-endless-tiny-frames-paced", script(OK_HEAD, paced_tiny_data), args=SLOW,
         exit_code=9, step="journey", says=(r"max-time",)),
    Case("gzip-bomb", script(gzip_bomb_response), says=(r"gzip", r"decoded limit")),
    # The connection ends or never starts properly.
    Case("fin-before-response", script(ending="fin"),
         says=(r"closed", r"before")),
    Case("close-before-response", close_before_response(),
         says=(r"closed|reset", r"before")),
    Case("fin-mid-body", script(OK_HEAD, data(SID, b"x" * 100), ending="fin"),
         says=(r"closed", r"100 bytes")),
    # The RST comes a moment after the data, once we wait in a read: at once, it may meet
    # one of our writes first, and how the kernel then reports it is a race.
    Case("rst-mid-body", script(OK_HEAD, data(SID, b"x" * 100), pause(0.3), ending="rst"),
         says=(r"reset", r"100 bytes")),
    # §3.4: the server's preface is a SETTINGS frame, first.
    Case("no-settings-before-response", script(OK_HEAD, HELLO, send_settings=False),
         says=(r"SETTINGS",)),
    # Over TLS with ALPN h2.
    Case("tls-correct-response", script(OK_HEAD, HELLO), tls=True, exit_code=0,
         then=(ok(body=5),)),
    Case("tls-status-not-three-digits", script(hdrs((":status", "2000"), end=True)), tls=True,
         says=(r":status|status",)),
    Case("tls-goaway-mid-body",
         script(OK_HEAD, data(SID, b"x" * 100), goaway(SID, INTERNAL_ERROR)), tls=True,
         says=(_GOAWAY, r"100 bytes")),
    Case("tls-close-notify-mid-body", script(OK_HEAD, data(SID, b"x" * 100), ending="fin"),
         tls=True, says=(r"closed", r"100 bytes")),
]


@dataclass
class Pki:
    certfile: str
    keyfile: str
    cafile: str

    def context(self, alpn: list[str] | None) -> ssl.SSLContext:
        ctx = server_context(self.certfile, self.keyfile)
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory: Path = tmp_path_factory.mktemp("h2pki")
    issued = make_pki()
    certfile, keyfile = write_server_files(directory, issued.chain)
    return Pki(certfile, keyfile, write_cafile(directory, [issued.root]))


def no_raw_controls(out: Outcome) -> None:
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]", out.message), out.message


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 35


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_http2(case: Case, pki: Pki) -> None:
    handler = serve(case.body, pki.context(["h2"]) if case.tls else None)
    with RawServer(handler) as server:
        if case.tls:
            url = server.url("https")
            args = [url, "--http2", "--cacert", pki.cafile, *case.args]
        else:
            args = [server.url(), "--http2", *case.args]
        out = run_cli(args)
        check(out, step=case.step, exit_code=case.exit_code, says=case.says)
        no_raw_controls(out)
        for verify in case.then:
            verify(out)
        if case.terminal:
            shown = run_cli([*args, "--no-color"], json_output=False)
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]", shown.stdout), (
                "a control character from the server reached the terminal: "
                + repr(shown.stdout[-2000:]))


@pytest.mark.parametrize("server", [speaks_http1, silent_after_preface],
                         ids=["speaks-http1-to-our-preface", "silent-after-our-preface"])
def test_not_http2(server: Callable[[], Handler]) -> None:
    with RawServer(server()) as srv:
        out = run_cli([srv.url(), "--http2", *SLOW])
    if server is speaks_http1:
        check(out, step="http", exit_code=7, says=(r"HTTP/1", r"not HTTP/2|instead of HTTP/2"))
    else:
        check(out, step="journey", exit_code=9, says=(r"max-time",))


@pytest.mark.parametrize("alpn", [None, ["http/1.1"]], ids=["no-alpn", "alpn-http1.1"])
def test_http2_insisted_on_but_refused(alpn: list[str] | None, pki: Pki) -> None:
    """--http2 over TLS to a server that does not agree to h2 in ALPN: the user asked for
    HTTP/2, so falling back silently to HTTP/1.1 would answer another question (issue 8)."""

    def handler(conn: socket.socket) -> None:
        with pki.context(alpn).wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            wait_until_closed(tls, 3)  # type: ignore[arg-type]

    with RawServer(handler) as server:
        out = run_cli([server.url("https"), "--http2", "--cacert", pki.cafile, *SLOW])
    check(out, step="http", exit_code=7,
          says=(r"HTTP/2", r"ALPN|refused|does not speak HTTP/2|declined"))
