"""HTTP/2 exchanges against real servers on 127.0.0.1 over cleartext TCP with prior knowledge
(RFC 9113 §3.3): a small server written here with the h2 library, scripted per test to behave
or misbehave, and hypercorn. Servers run in their own thread and event loop."""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame

from threaded_server import Serve, connect, raw_server, request, serving
from whathappens.errors import HttpError
from whathappens.net.http2 import H2Connection, request_headers_h2
from whathappens.net.http_types import Exchange, Limits, Request
from whathappens.net.stream import PlainStream

TEXT = b"<!doctype html><title>hello</title><p>what happens?</p>\n" * 500


class Peer:
    """The server side of one HTTP/2 connection, driven by h2, counting what it writes."""

    def __init__(self, writer: asyncio.StreamWriter, settings: dict[SettingCodes, int]) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        if settings:
            self.conn.local_settings = Settings(client=False, initial_values=settings)
        self.writer = writer
        self.written = 0
        self.header_frames = 0  # bytes of the last HEADERS frames sent
        self.requests: dict[int, list[tuple[bytes, bytes]]] = {}
        self.bodies: dict[int, bytes] = {}
        self.events: list[h2.events.Event] = []
        self._pending: dict[int, bytes] = {}

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.written += len(data)
        await self.writer.drain()

    async def flush(self) -> None:
        if data := self.conn.data_to_send():
            await self.write(data)

    async def headers(
        self, stream_id: int, status: int = 200, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        await self.flush()
        fields = [(b":status", str(status).encode()), *extra]
        self.conn.send_headers(stream_id, fields)
        frames = self.conn.data_to_send()
        self.header_frames = len(frames)
        await self.write(frames)

    async def body(self, stream_id: int, data: bytes) -> None:
        self._pending[stream_id] = data
        self.pump()
        await self.flush()

    def pump(self) -> None:
        """Send what flow control allows (RFC 9113 §5.2); the rest waits for WINDOW_UPDATE."""
        for stream_id, data in list(self._pending.items()):
            while data:
                window = self.conn.local_flow_control_window(stream_id)
                size = min(len(data), window, self.conn.max_outbound_frame_size)
                if size <= 0:
                    break
                self.conn.send_data(stream_id, data[:size], end_stream=size == len(data))
                data = data[size:]
            if data:
                self._pending[stream_id] = data
            else:
                del self._pending[stream_id]


Respond = Callable[[Peer, int], Awaitable[None]]


def h2_server(
    respond: Respond, peers: list[Peer], settings: dict[SettingCodes, int] | None = None
) -> Serve:
    """Runs ``respond(peer, stream_id)`` for every complete request."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(writer, settings or {})
        peers.append(peer)
        peer.conn.initiate_connection()
        await peer.flush()
        while data := await reader.read(65536):
            try:
                events = peer.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                return
            for event in events:
                peer.events.append(event)
                if isinstance(event, h2.events.RequestReceived):
                    peer.requests[event.stream_id] = list(event.headers)
                    peer.bodies[event.stream_id] = b""
                elif isinstance(event, h2.events.DataReceived):
                    peer.bodies[event.stream_id] += event.data
                    peer.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    await respond(peer, event.stream_id)
            peer.pump()
            await peer.flush()

    return raw_server(handler)


async def ok(peer: Peer, stream_id: int) -> None:
    await peer.headers(stream_id, extra=((b"content-type", b"text/html"),))
    await peer.body(stream_id, TEXT)


def fetch_all(port: int, *requests: Request, limits: Limits | None = None) -> list[Exchange]:
    """Sequential exchanges on one HTTP/2 connection."""

    async def go() -> list[Exchange]:
        conn = H2Connection(connect(port))
        try:
            return [
                await conn.exchange(r, time.perf_counter_ns, limits or Limits()) for r in requests
            ]
        finally:
            conn.close()

    return asyncio.run(go())


def fails(port: int, limits: Limits | None = None, **kw: Any) -> HttpError:
    with pytest.raises(HttpError) as err:
        fetch_all(port, request(port, **kw), limits=limits)
    return err.value


def assert_ordered(ex: Exchange) -> None:
    assert (
        ex.t_request_start_ns
        <= ex.t_request_sent_ns
        <= ex.t_first_byte_ns
        <= ex.t_headers_ns
        <= ex.t_body_done_ns
    )


# --- behaving servers -------------------------------------------------------------------------


def test_an_exchange_is_measured_exactly() -> None:
    peers: list[Peer] = []
    with serving(h2_server(ok, peers)) as port:
        (ex,) = fetch_all(port, request(port, "/page?q=1"))
    peer = peers[0]
    assert ex.http_version == "HTTP/2"
    assert (ex.status, ex.reason, ex.stream_id) == (200, "", 1)
    assert ex.body == TEXT
    assert ex.request_headers[:4] == [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", "/page?q=1"),
    ]
    assert [(n.decode(), v.decode()) for n, v in peer.requests[1]] == ex.request_headers
    assert ex.response_headers == [("content-type", "text/html")]
    assert ex.header_bytes == peer.header_frames
    assert ex.wire_bytes_received == peer.written  # SETTINGS, its ACK, HEADERS, DATA
    assert ex.body_bytes_encoded == ex.body_bytes_decoded == len(TEXT)
    assert ex.reusable
    assert_ordered(ex)


def test_the_servers_settings_are_recorded() -> None:
    settings = {
        SettingCodes.MAX_CONCURRENT_STREAMS: 7,
        SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
        SettingCodes.MAX_FRAME_SIZE: 32768,
        SettingCodes.HEADER_TABLE_SIZE: 8192,
    }

    async def go(port: int) -> H2Connection:
        conn = H2Connection(connect(port))
        await conn.exchange(request(port), time.perf_counter_ns, Limits())
        conn.close()
        return conn

    with serving(h2_server(ok, [], settings)) as port:
        conn = asyncio.run(go(port))
    got = conn.server_settings
    assert got is not None
    assert (got.max_concurrent_streams, got.initial_window_size) == (7, 1 << 20)
    assert (got.max_frame_size, got.header_table_size) == (32768, 8192)
    assert got.announced["MAX_CONCURRENT_STREAMS"] == 7


def test_two_exchanges_share_one_connection_on_new_streams() -> None:
    peers: list[Peer] = []
    with serving(h2_server(ok, peers)) as port:
        first, second = fetch_all(port, request(port, "/a"), request(port, "/b"))
    assert len(peers) == 1
    assert sorted(peers[0].requests) == [1, 3]
    assert (first.stream_id, second.stream_id) == (1, 3)
    assert first.reusable
    assert second.reusable
    assert second.body == TEXT
    assert first.t_body_done_ns <= second.t_request_start_ns
    assert_ordered(second)


def test_first_byte_is_our_streams_not_the_servers_settings() -> None:
    async def slow(peer: Peer, stream_id: int) -> None:
        await peer.flush()  # SETTINGS ACK now; the response 0.2 s later
        await asyncio.sleep(0.2)
        await ok(peer, stream_id)

    with serving(h2_server(slow, [])) as port:
        (ex,) = fetch_all(port, request(port))
    assert ex.t_first_byte_ns - ex.t_request_sent_ns >= 190_000_000
    assert_ordered(ex)


def test_a_gzip_body_is_decoded() -> None:
    packed = gzip.compress(TEXT)

    async def gz(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id, extra=((b"content-encoding", b"gzip"),))
        await peer.body(stream_id, packed)

    with serving(h2_server(gz, [])) as port:
        (ex,) = fetch_all(port, request(port))
    assert ex.content_encoding == ["gzip"]
    assert (ex.body, ex.body_bytes_encoded) == (TEXT, len(packed))


def test_flow_control_windows_are_given_back_for_a_body_bigger_than_them() -> None:
    big = os.urandom(16 << 20)  # more than our 15 MiB connection window

    async def large(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        await peer.body(stream_id, big)

    with serving(h2_server(large, [])) as port:
        (ex,) = fetch_all(port, request(port), limits=Limits(max_body_bytes=20 << 20))
    assert ex.body_bytes_encoded == len(big)
    assert ex.body == big[: Limits().keep_body_bytes]


def test_a_request_body_waits_for_the_servers_window() -> None:
    upload = os.urandom(200_000)  # the server's initial window is 65,535 bytes
    peers: list[Peer] = []

    async def echo_size(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        await peer.body(stream_id, str(len(peer.bodies[stream_id])).encode())

    with serving(h2_server(echo_size, peers)) as port:
        (ex,) = fetch_all(port, request(port, method="POST", body=upload))
    assert peers[0].bodies[1] == upload
    assert ex.body == b"200000"
    assert ("content-length", "200000") in ex.request_headers
    assert_ordered(ex)


def test_pings_are_answered_while_waiting() -> None:
    peers: list[Peer] = []

    async def ping_first(peer: Peer, stream_id: int) -> None:
        peer.conn.ping(b"whathapp")
        await peer.flush()
        await asyncio.sleep(0.1)
        await ok(peer, stream_id)

    with serving(h2_server(ping_first, peers)) as port:
        fetch_all(port, request(port))
    assert any(isinstance(e, h2.events.PingAckReceived) for e in peers[0].events)


def test_request_headers_follow_h2_rules() -> None:
    req = Request(
        method="GET",
        authority="example.com",
        target="/",
        scheme="https",
        headers=[("Host", "other.example"), ("Connection", "close"), ("X-Thing", "1")],
    )
    fields = request_headers_h2(req)
    assert (":authority", "other.example") in fields
    assert ("x-thing", "1") in fields
    assert all(n not in ("host", "connection") for n, _ in fields)


def test_against_hypercorn_with_prior_knowledge() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": TEXT})

    async def run(listener: socket.socket, stop: asyncio.Event) -> None:
        config = Config()
        config.bind = [f"fd://{os.dup(listener.fileno())}"]  # hypercorn closes what it gets
        config.accesslog = None
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    with serving(run) as port:
        first, second = fetch_all(port, request(port, "/1"), request(port, "/2"))
    assert [s["http_version"] for s in seen] == ["2", "2"]
    assert len({s["client"] for s in seen}) == 1
    assert first.body == second.body == TEXT
    assert second.stream_id == 3


# --- misbehaving servers ----------------------------------------------------------------------


def test_rst_stream_is_a_stream_reset_naming_the_code() -> None:
    async def reset(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        peer.conn.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)

    with serving(h2_server(reset, [])) as port:
        err = fails(port)
    assert err.code == "http.stream_reset"
    assert "INTERNAL_ERROR (0x2)" in err.message
    assert "after 0 bytes of the body" in err.message


def test_goaway_before_our_stream_says_it_may_be_retried() -> None:
    async def refuse(peer: Peer, stream_id: int) -> None:
        peer.conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=0)

    with serving(h2_server(refuse, [])) as port:
        err = fails(port)
    assert err.code == "http.goaway"
    assert "NO_ERROR" in err.message
    assert "may be sent again" in err.message


def test_a_graceful_goaway_still_lets_our_response_finish() -> None:
    async def graceful(peer: Peer, stream_id: int) -> None:
        await peer.flush()
        # h2 cannot send after its own GOAWAY (python-hyper/h2#1181): write the frame by hand.
        await peer.write(GoAwayFrame(0, last_stream_id=stream_id, error_code=0).serialize())
        await ok(peer, stream_id)

    async def go(port: int) -> tuple[Exchange, H2Connection]:
        conn = H2Connection(connect(port))
        ex = await conn.exchange(request(port), time.perf_counter_ns, Limits())
        conn.close()
        return ex, conn

    with serving(h2_server(graceful, [])) as port:
        ex, conn = asyncio.run(go(port))
    assert ex.body == TEXT
    assert not ex.reusable
    assert not conn.reusable
    assert conn.goaway is not None
    assert "NO_ERROR" in conn.goaway


def test_goaway_with_an_error_mid_response() -> None:
    async def broken(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        peer.conn.close_connection(ErrorCodes.ENHANCE_YOUR_CALM, additional_data=b"slow down")

    with serving(h2_server(broken, [])) as port:
        err = fails(port)
    assert err.code == "http.goaway"
    assert "ENHANCE_YOUR_CALM" in err.message
    assert "slow down" in err.message


class RecordingStream(PlainStream):
    """A real TCP stream that also keeps every byte it sent."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.sent = bytearray()

    async def send(self, data: bytes) -> None:
        await super().send(data)
        self.sent += data


def frames_sent(stream: RecordingStream) -> list[Frame]:
    data = bytes(stream.sent[len(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") :])
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def test_a_body_over_the_limit_cancels_the_stream_and_stops_reading() -> None:
    async def huge(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        await peer.body(stream_id, b"x" * (4 << 20))

    async def go(port: int) -> RecordingStream:
        stream = RecordingStream(socket.create_connection(("127.0.0.1", port), timeout=5))
        conn = H2Connection(stream)
        with pytest.raises(HttpError) as err:
            await conn.exchange(request(port), time.perf_counter_ns, Limits(max_body_bytes=100_000))
        assert err.value.code == "http.body_too_large"
        assert "97.7 KiB" in err.value.message
        return stream

    with serving(h2_server(huge, [])) as port:
        stream = asyncio.run(go(port))
    assert stream.closed
    assert stream.wire_received < 100_000 + 2 * 65536  # stopped near the limit
    last = frames_sent(stream)[-2:]  # RFC 9113 §8.1: cancel the stream, then leave
    assert isinstance(last[0], RstStreamFrame)
    assert (last[0].stream_id, last[0].error_code) == (1, ErrorCodes.CANCEL)
    assert isinstance(last[1], GoAwayFrame)


def test_headers_over_the_limit() -> None:
    async def fat(peer: Peer, stream_id: int) -> None:
        padding = tuple((f"x-pad-{i}".encode(), b"v" * 1000) for i in range(40))
        await peer.headers(stream_id, extra=padding)
        await peer.body(stream_id, b"")

    with serving(h2_server(fat, [])) as port:
        err = fails(port, limits=Limits(max_header_bytes=16 * 1024))
    assert err.code == "http.headers_too_large"
    assert "16 KiB" in err.message


def test_a_stall_is_a_read_timeout_that_says_where() -> None:
    async def stall(peer: Peer, stream_id: int) -> None:
        await peer.headers(stream_id)
        peer.conn.send_data(stream_id, b"0123456789")
        await peer.flush()

    with serving(h2_server(stall, [])) as port:
        err = fails(port, limits=Limits(read_timeout=0.25))
    assert err.code == "http.read_timeout"
    assert "0.25 s" in err.message
    assert "more of the body (10 bytes received)" in err.message


def test_a_close_before_the_response() -> None:
    async def hang_up(peer: Peer, stream_id: int) -> None:
        await peer.flush()
        peer.writer.close()

    with serving(h2_server(hang_up, [])) as port:
        err = fails(port)
    assert err.code == "http.connection_closed"
    assert "before the response headers arrived" in err.message


def test_an_http1_answer_to_the_preface_is_named() -> None:
    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3600)

    with serving(raw_server(http1)) as port:
        err = fails(port)
    assert err.code == "http.malformed"
    assert "HTTP/1.x, not HTTP/2" in err.message
    assert "'HTTP/1.1 400 Bad Request\\r\\n" in err.message


def test_garbage_frames_are_malformed() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x00\x00\x02\x04\x00\x00\x00\x00\x00ab")  # SETTINGS of 2 bytes
        await writer.drain()
        await asyncio.sleep(3600)

    with serving(raw_server(garbage)) as port:
        err = fails(port)
    assert err.code == "http.malformed"
    assert "broke the HTTP/2 protocol" in err.message
