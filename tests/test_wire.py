"""HTTP on the wire (issue 11): HTTP/2 frames with HPACK sizes, an HTTP/1.1 chunked body as
it arrived. Real servers on 127.0.0.1 (h2's server side, raw asyncio), the client's own
drivers; the lists are bounded, tested against servers that send many frames and chunks."""

from __future__ import annotations

from h2.errors import ErrorCodes
from hyperframe.frame import HeadersFrame

from journey_helpers import options, run
from test_http1 import fetch, replying
from test_http2 import TEXT, Peer, fetch_all, h2_server, ok
from threaded_server import raw_server, request, serving
from whathappens.net.h2wire import CAP, FrameLog, block_payload, detail, flag_names, header_block
from whathappens.net.http1 import CHUNKS_KEPT
from whathappens.net.http2 import request_headers_h2


def test_every_frame_of_an_exchange_is_recorded_in_order() -> None:
    peers: list[Peer] = []
    with serving(h2_server(ok, peers)) as port:
        (ex,) = fetch_all(port, request(port, "/page"))
    wire = ex.h2_wire
    assert wire is not None
    assert wire.dropped == 0
    assert wire.total == len(wire.frames)
    sent = [f for f in wire.frames if f.direction == "sent"]
    got = [f for f in wire.frames if f.direction == "received"]
    # Ours: SETTINGS (RFC 9113 §3.4), the connection's WINDOW_UPDATE, the request's HEADERS.
    assert [f.type for f in sent[:3]] == ["SETTINGS", "WINDOW_UPDATE", "HEADERS"]
    assert "ENABLE_PUSH=0" in (sent[0].detail or "")
    assert sent[1].detail == f"+{15 * 1024 * 1024 - 65535:,}"
    assert sent[2].stream_id == 1
    assert sent[2].flags == ["END_STREAM", "END_HEADERS"]
    # Theirs: SETTINGS first, the HEADERS of stream 1, DATA up to END_STREAM.
    assert got[0].type == "SETTINGS"
    assert any(f.type == "SETTINGS" and f.flags == ["ACK"] for f in got)
    heads = [f for f in got if f.type == "HEADERS"]
    assert len(heads) == 1
    assert heads[0].stream_id == 1
    data = [f for f in got if f.type == "DATA"]
    assert sum(f.length for f in data) == len(TEXT)
    assert data[-1].flags == ["END_STREAM"]
    # Every frame on the exchange's clock, received ones when their first byte came.
    assert all(ex.t_request_start_ns <= f.t_ns <= ex.t_body_done_ns for f in got)
    assert heads[0].t_ns == ex.t_first_byte_ns
    assert [f.t_ns for f in got] == sorted(f.t_ns for f in got)
    assert sum(f.length + 9 for f in got) == ex.wire_bytes_received


def test_header_blocks_before_and_after_hpack() -> None:
    peers: list[Peer] = []
    with serving(h2_server(ok, peers)) as port:
        first, second = fetch_all(port, request(port, "/a"), request(port, "/a"))
    req = first.h2_wire and first.h2_wire.request_block
    resp = first.h2_wire and first.h2_wire.response_block
    assert req is not None
    assert resp is not None
    fields = request_headers_h2(request(port, "/a"))
    octets = sum(len(n) + len(v) for n, v in fields)
    assert (req.fields, req.octets, req.list_size) == (len(fields), octets,
                                                       octets + 32 * len(fields))
    head = next(f for f in first.h2_wire.frames if f.direction == "sent" and f.type == "HEADERS")
    assert req.encoded == head.length
    assert req.ratio == round(req.encoded / octets, 3)
    # The server's HEADERS frame, minus its 9-octet header, is the encoded response block
    # (the last one the server wrote was the second response's).
    got = next(f for f in first.h2_wire.frames if f.direction == "received"
               and f.type == "HEADERS")
    assert resp.encoded == got.length
    last = second.h2_wire and second.h2_wire.response_block
    assert last is not None
    assert last.encoded == peers[0].header_frames - 9
    assert resp.octets == len(":status") + 3 + len("content-type") + len("text/html")
    # The second request's fields are in the dynamic table (RFC 7541 §2.3.2): far smaller.
    again = second.h2_wire and second.h2_wire.request_block
    assert again is not None
    assert again.octets == octets
    assert again.encoded < req.encoded / 3


def test_a_server_that_sends_many_frames_fills_the_list_and_the_rest_are_counted() -> None:
    async def tiny(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        for i in range(600):
            peer.conn.send_data(stream_id, b"x" * 10, end_stream=i == 599)
        await peer.flush()

    with serving(h2_server(tiny, [])) as port:
        (ex,) = fetch_all(port, request(port))
    wire = ex.h2_wire
    assert wire is not None
    assert ex.body == b"x" * 6000
    assert len(wire.frames) == CAP
    assert wire.total > 600
    assert wire.dropped == wire.total - CAP


def test_frame_details_say_what_the_frame_carries() -> None:
    assert detail(0x4, 0, bytes.fromhex("000300000064" "000400010000")) == \
        "MAX_CONCURRENT_STREAMS=100, INITIAL_WINDOW_SIZE=65536"
    assert detail(0x4, 0x1, b"") is None
    assert detail(0x8, 0, (0x80000000 | 1000).to_bytes(4, "big")) == "+1,000"
    assert detail(0x3, 0, (8).to_bytes(4, "big")) == "CANCEL"
    assert detail(0x7, 0, (3).to_bytes(4, "big") + (11).to_bytes(4, "big") + b"calm") == \
        "ENHANCE_YOUR_CALM, last stream 3, 4 octets of debug data"
    assert detail(0x7, 0, bytes(8) + (99).to_bytes(4, "big")[:0]) == "NO_ERROR, last stream 0"
    assert detail(0x3, 0, (0x99).to_bytes(4, "big")) == "0x99"
    assert flag_names(0x1, 0x25) == ["END_STREAM", "END_HEADERS", "PRIORITY"]
    assert flag_names(0x0, 0x41) == ["END_STREAM", "0x40"]


def test_a_padded_prioritised_headers_frame_counts_only_its_block() -> None:
    frame = HeadersFrame(1, data=b"\x82\x84", pad_length=5, flags=["PRIORITY", "PADDED"])
    frame.depends_on, frame.stream_weight = 0, 16
    raw = frame.serialize()
    assert block_payload(raw[3], raw[4], raw[9:]) == 2
    log = FrameLog(1)
    log.sent(raw, 7)
    assert log.sent_block == 2
    assert log.wire.frames[0].flags == ["PADDED", "PRIORITY"]
    assert header_block([(b":method", b"GET")], 1).list_size == 7 + 3 + 32


def test_the_frame_log_is_bounded_whatever_it_is_told() -> None:
    log = FrameLog(3, cap=5)
    frame = bytes.fromhex("000000" "06" "01" "00000000")  # a PING ACK with no payload
    for i in range(1000):
        log.frame("received", frame, i)
    assert (len(log.wire.frames), log.wire.total, log.wire.dropped) == (5, 1000, 995)


# --- HTTP/1.1 chunked -------------------------------------------------------------------


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def test_a_chunked_body_is_recorded_as_it_arrived() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serving(raw_server(replying(head + _chunk(b"a" * 100), 0.05, _chunk(b"b" * 3000),
                                     0.05, _chunk(b"c" * 7) + b"0\r\n\r\n"))) as port:
        ex = fetch(port)
    log = ex.chunked
    assert log is not None
    assert [c.size for c in log.chunks] == [100, 3000, 7]
    assert (log.total, log.dropped, log.body_bytes) == (3, 0, 3107)
    first, second, third = (c.t_ns for c in log.chunks)
    assert first == ex.t_first_byte_ns  # it came with the head
    assert second - first >= 40_000_000  # the server's pauses, as they arrived
    assert third - second >= 40_000_000
    assert third <= ex.t_body_done_ns


def test_a_body_with_a_content_length_has_no_chunks() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    with serving(raw_server(replying(head))) as port:
        ex = fetch(port)
    assert ex.chunked is None
    assert ex.h2_wire is None


def test_a_server_that_sends_many_chunks_fills_the_list_and_the_rest_are_counted() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(_chunk(b"z" * (1 + i % 7)) for i in range(1500)) + b"0\r\n\r\n"
    with serving(raw_server(replying(head, body))) as port:
        ex = fetch(port)
    log = ex.chunked
    assert log is not None
    assert len(log.chunks) == CHUNKS_KEPT
    assert (log.total, log.dropped) == (1500, 1500 - CHUNKS_KEPT)
    assert [c.size for c in log.chunks] == [1 + i % 7 for i in range(CHUNKS_KEPT)]
    assert log.body_bytes == sum(1 + i % 7 for i in range(1500)) == len(ex.body)


# --- a failed exchange keeps what crossed the wire ----------------------------------------
def test_the_frames_before_a_reset_are_kept_in_the_journey() -> None:
    async def reset(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        peer.conn.send_data(stream_id, b"x" * 100)  # no END_STREAM: the body goes on…
        peer.conn.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)  # …until the reset
        await peer.flush()

    with serving(h2_server(reset, [])) as port:
        j = run(f"http://127.0.0.1:{port}/", options("--http2"))
    assert j.error is not None
    assert j.error.code == "http.stream_reset"
    http = next(c for leg in j.spans if leg.name == "leg" for c in leg.children
                if c.name == "http")
    wire = http.facts.h2_wire
    assert wire is not None
    got = [(f.direction, f.type, f.detail) for f in wire.frames]
    assert ("received", "RST_STREAM", "INTERNAL_ERROR") in got
    assert ("received", "DATA", None) in got
    # after it, our GOAWAY (RFC 9113 §6.8), before we closed
    assert got[-1][:2] == ("sent", "GOAWAY")


def test_the_chunks_before_a_cut_are_kept_in_the_journey() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serving(raw_server(replying(head + _chunk(b"a" * 10), 0.02, _chunk(b"b" * 20)))) \
            as port:
        j = run(f"http://127.0.0.1:{port}/")
    assert j.error is not None
    assert j.error.code == "http.connection_closed"
    http = next(c for leg in j.spans if leg.name == "leg" for c in leg.children
                if c.name == "http")
    chunks = http.facts.chunked
    assert chunks is not None
    assert [c.size for c in chunks.chunks] == [10, 20]


def test_a_settings_frame_stuffed_with_values_is_said_in_a_bounded_line() -> None:
    payload = b"".join((0x3).to_bytes(2, "big") + i.to_bytes(4, "big") for i in range(2730))
    said = detail(0x4, 0, payload)
    assert said is not None
    assert said.count("MAX_CONCURRENT_STREAMS=") == 12
    assert said.endswith(", … 2718 more")
    assert detail(0x4, 0, (0xFF).to_bytes(2, "big") + (1).to_bytes(4, "big")) == "0xff=1"
