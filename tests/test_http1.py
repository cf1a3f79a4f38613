"""HTTP/1.1 exchanges against real servers on 127.0.0.1: hypercorn, and raw asyncio servers
that misbehave on purpose. Each server runs in its own thread and event loop; the client runs
in the test's own ``asyncio.run``."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import time
from typing import Any

import brotli
import pytest
import zstandard
from hypercorn.asyncio import serve
from hypercorn.config import Config

from threaded_server import Handler, Serve, connect, raw_server, request, serving
from whathappens import __version__
from whathappens.errors import HttpError
from whathappens.net.http1 import H1Connection, exchange_h1
from whathappens.net.http_types import ACCEPT, Exchange, Limits
from whathappens.net.stream import PlainStream

TEXT = b"<!doctype html><title>hello</title><p>what happens?</p>\n" * 500


def hypercorn_server(seen: list[dict[str, Any]]) -> Serve:
    """hypercorn serving a small ASGI app; every request's scope is appended to ``seen``."""

    bodies: dict[str, tuple[bytes, list[tuple[bytes, bytes]]]] = {
        "/": (TEXT, []),
        "/gzip": (gzip.compress(TEXT), [(b"content-encoding", b"gzip")]),
        "/br": (brotli.compress(TEXT), [(b"content-encoding", b"br")]),
        "/zstd": (zstandard.compress(TEXT), [(b"content-encoding", b"zstd")]),
        "/bomb": (gzip.compress(b"\0" * (8 << 20)), [(b"content-encoding", b"gzip")]),
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(scope)
        if scope["path"] == "/headers":
            body = json.dumps([[n.decode(), v.decode()] for n, v in scope["headers"]]).encode()
            extra: list[tuple[bytes, bytes]] = []
        else:
            body, extra = bodies[scope["path"]]
        headers = [(b"content-type", b"text/html; charset=utf-8"), *extra]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def run(listener: socket.socket, stop: asyncio.Event) -> None:
        config = Config()
        config.bind = [f"fd://{os.dup(listener.fileno())}"]  # hypercorn closes what it gets
        config.accesslog = None
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    return run


def fetch(port: int, target: str = "/", limits: Limits | None = None, **kw: Any) -> Exchange:
    async def go() -> Exchange:
        stream = connect(port)
        try:
            return await exchange_h1(
                stream,
                request(port, target, **kw),
                clock=time.perf_counter_ns,
                limits=limits or Limits(),
            )
        finally:
            stream.close()

    return asyncio.run(go())


def fails(port: int, target: str = "/", limits: Limits | None = None, **kw: Any) -> HttpError:
    with pytest.raises(HttpError) as err:
        fetch(port, target, limits, **kw)
    return err.value


def assert_ordered(ex: Exchange) -> None:
    assert (
        ex.t_request_start_ns
        <= ex.t_request_sent_ns
        <= ex.t_first_byte_ns
        <= ex.t_headers_ns
        <= ex.t_body_done_ns
    )


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def replying(*parts: bytes | float, then_close: bool = True) -> Handler:
    """A handler that reads one request head, then writes ``parts`` (a float is a pause)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        for part in parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                writer.write(part)
                await writer.drain()
        if not then_close:
            await asyncio.sleep(3600)

    return handler


# --- against hypercorn ------------------------------------------------------------------------


def test_get_sends_browser_like_headers_and_measures_the_response() -> None:
    seen: list[dict[str, Any]] = []
    with serving(hypercorn_server(seen)) as port:
        ex = fetch(port, "/headers")
    expected = [
        ("Host", f"127.0.0.1:{port}"),
        ("User-Agent", f"whathappens/{__version__}"),
        ("Accept", ACCEPT),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ]
    assert ex.request_headers == expected
    assert json.loads(ex.body) == [[n.lower(), v] for n, v in expected]  # as the server saw it
    assert ex.http_version == "HTTP/1.1"
    assert ex.status == 200
    assert ex.header("content-type") == "text/html; charset=utf-8"
    assert ex.body_bytes_encoded == ex.body_bytes_decoded == len(ex.body)
    assert ex.wire_bytes_received == ex.header_bytes + len(ex.body)
    assert ex.reusable
    assert_ordered(ex)


def test_caller_headers_replace_defaults_in_place_and_add_after() -> None:
    seen: list[dict[str, Any]] = []
    with serving(hypercorn_server(seen)) as port:
        ex = fetch(port, "/headers", headers=[("user-agent", "curl/8"), ("X-Trace", "1")])
    names = [n for n, _ in ex.request_headers]
    assert names == ["Host", "user-agent", "Accept", "Accept-Encoding", "X-Trace"]
    assert ["user-agent", "curl/8"] in json.loads(ex.body)


def test_keep_alive_carries_two_exchanges_on_one_connection() -> None:
    seen: list[dict[str, Any]] = []

    async def go() -> list[Exchange]:
        conn = H1Connection(connect(port))
        try:
            first = await conn.exchange(request(port, "/"), time.perf_counter_ns, Limits())
            assert conn.reusable
            second = await conn.exchange(request(port, "/gzip"), time.perf_counter_ns, Limits())
            return [first, second]
        finally:
            conn.close()

    with serving(hypercorn_server(seen)) as port:
        first, second = asyncio.run(go())
    assert len(seen) == 2
    assert len({scope["client"] for scope in seen}) == 1  # one TCP connection, two requests
    assert first.body == second.body == TEXT
    assert first.reusable
    assert second.reusable
    assert first.t_body_done_ns <= second.t_request_start_ns
    assert_ordered(second)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_encoded_bodies_are_decoded_and_both_sizes_reported(coding: str) -> None:
    with serving(hypercorn_server([])) as port:
        ex = fetch(port, f"/{coding}")
    assert ex.content_encoding == [coding]
    assert ex.body == TEXT
    assert ex.body_bytes_decoded == len(TEXT)
    assert ex.body_bytes_encoded < len(TEXT) / 10
    assert ex.wire_bytes_received == ex.header_bytes + ex.body_bytes_encoded


def test_a_decompression_bomb_is_stopped_at_the_decoded_limit() -> None:
    with serving(hypercorn_server([])) as port:
        err = fails(port, "/bomb", Limits(max_decoded_bytes=1 << 20))
    assert err.code == "http.decoded_too_large"
    assert "1 MiB" in err.message


def test_to_dict_is_json_with_sizes_and_an_excerpt_but_no_body() -> None:
    with serving(hypercorn_server([])) as port:
        ex = fetch(port, "/gzip", Limits(keep_body_bytes=1000))
    out = json.loads(json.dumps(ex.to_dict()))
    assert out["body_bytes_decoded"] == len(TEXT)
    assert out["body_truncated"] is True
    assert out["body_excerpt"] == TEXT[:500].decode()
    assert "body" not in out
    assert ex.body == TEXT[:1000]


# --- exact measurements against a raw server --------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"


def test_byte_counts_are_exact_and_the_request_is_what_was_recorded() -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_head(reader))
        writer.write(HEAD + b"hello")
        await writer.drain()

    with serving(raw_server(handler)) as port:
        ex = fetch(port, "/x?y=1")
    lines = [f"{n}: {v}".encode() for n, v in ex.request_headers]
    assert received == [b"\r\n".join([b"GET /x?y=1 HTTP/1.1", *lines]) + b"\r\n\r\n"]
    assert ex.wire_bytes_sent == len(received[0])
    assert ex.wire_bytes_received == len(HEAD) + 5
    assert ex.header_bytes == len(HEAD)
    assert (ex.status, ex.reason, ex.body) == (200, "OK", b"hello")


def test_timestamps_put_server_pauses_where_they_happened() -> None:
    with serving(raw_server(replying(0.2, HEAD, 0.2, b"hello"))) as port:
        ex = fetch(port)
    assert ex.t_first_byte_ns - ex.t_request_sent_ns >= 190_000_000  # waiting for the server
    assert ex.t_headers_ns - ex.t_first_byte_ns < 100_000_000  # the head came in one go
    assert ex.t_body_done_ns - ex.t_headers_ns >= 190_000_000  # the body came later
    assert_ordered(ex)


def test_a_chunked_body_counts_payload_apart_from_framing() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    with serving(raw_server(replying(head, chunks))) as port:
        ex = fetch(port)
    assert ex.body == b"hello world"
    assert ex.body_bytes_encoded == 11
    assert ex.header_bytes == len(head)
    assert ex.wire_bytes_received == len(head) + len(chunks)
    assert ex.reusable


def test_connection_close_and_http10_make_the_connection_not_reusable() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    old = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"

    async def go(port: int) -> None:
        conn = H1Connection(connect(port))
        ex = await conn.exchange(request(port), time.perf_counter_ns, Limits())
        assert not ex.reusable
        assert not conn.reusable
        with pytest.raises(RuntimeError):
            await conn.exchange(request(port), time.perf_counter_ns, Limits())
        conn.close()

    with serving(raw_server(replying(close))) as port:
        asyncio.run(go(port))
    with serving(raw_server(replying(old))) as port:
        ex = fetch(port)
    assert (ex.http_version, ex.body, ex.reusable) == ("HTTP/1.0", b"until the end", False)


def test_informational_responses_are_noted_before_the_final_one() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    with serving(raw_server(replying(early, 0.1, HEAD, b"hello"))) as port:
        ex = fetch(port)
    assert ex.informational == [103]
    assert ex.status == 200
    assert ex.header_bytes == len(HEAD)
    assert ex.t_headers_ns - ex.t_first_byte_ns >= 90_000_000  # first byte was the 103


def test_head_response_announcing_a_huge_length_is_not_too_large() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n"
    with serving(raw_server(replying(head))) as port:
        ex = fetch(port, method="HEAD")
    assert (ex.status, ex.body, ex.body_bytes_encoded) == (200, b"", 0)


# --- misbehaving servers ----------------------------------------------------------------------


def test_garbage_instead_of_a_status_line_is_shown_escaped() -> None:
    with serving(raw_server(replying(b"SSH-2.0-OpenSSH_9.6\r\n", then_close=False))) as port:
        err = fails(port)
    assert err.code == "http.malformed"
    assert "'SSH-2.0-OpenSSH_9.6\\r\\n'" in err.message
    assert "SSH" in err.message.split("began")[1]


def test_tls_bytes_suggest_the_port_expects_https() -> None:
    alert = b"\x15\x03\x01\x00\x02\x02\x46"
    with serving(raw_server(replying(alert, then_close=False))) as port:
        err = fails(port)
    assert err.code == "http.malformed"
    assert "https" in err.message


def test_a_bad_header_line_is_malformed() -> None:
    bad = b"HTTP/1.1 200 OK\r\nthis is no header\r\n\r\n"
    with serving(raw_server(replying(bad))) as port:
        err = fails(port)
    assert err.code == "http.malformed"
    assert "this is no header" in err.message


def test_headers_over_the_limit_stop_the_read() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 100_000
    with serving(raw_server(replying(endless, then_close=False))) as port:
        err = fails(port, limits=Limits(max_header_bytes=16 * 1024))
    assert err.code == "http.headers_too_large"
    assert "16 KiB" in err.message


def test_an_endless_body_stops_at_the_body_limit() -> None:
    stream_box: list[PlainStream] = []

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        while True:
            writer.write(b"x" * 65536)
            await writer.drain()

    async def go(port: int) -> None:
        stream = connect(port)
        stream_box.append(stream)
        limits = Limits(max_body_bytes=200_000)
        await exchange_h1(stream, request(port), clock=time.perf_counter_ns, limits=limits)

    with serving(raw_server(endless)) as port, pytest.raises(HttpError) as err:
        asyncio.run(go(port))
    assert err.value.code == "http.body_too_large"
    assert "195.3 KiB" in err.value.message
    assert stream_box[0].wire_received < 200_000 + 2 * 65536  # stopped near the limit
    assert stream_box[0].closed


def test_an_announced_length_over_the_limit_is_refused_unread() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\n\r\n"
    with serving(raw_server(replying(head, then_close=False))) as port:
        err = fails(port)
    assert err.code == "http.body_too_large"
    assert "was not read" in err.message


def test_a_stall_after_the_headers_is_a_read_timeout_that_says_where() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    with serving(raw_server(replying(head, b"0123456789", then_close=False))) as port:
        started = time.monotonic()
        err = fails(port, limits=Limits(read_timeout=0.3))
        waited = time.monotonic() - started
    assert err.code == "http.read_timeout"
    assert "0.3 s" in err.message
    assert "more of the body (10 of 100 bytes received)" in err.message
    assert 0.3 <= waited < 2


def test_a_silent_server_is_a_read_timeout_before_the_first_byte() -> None:
    with serving(raw_server(replying(then_close=False))) as port:
        err = fails(port, limits=Limits(read_timeout=0.2))
    assert err.code == "http.read_timeout"
    assert "the first byte of the response" in err.message


def test_a_close_mid_body_says_how_far_it_got() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    with serving(raw_server(replying(head, b"0123456789"))) as port:
        err = fails(port)
    assert err.code == "http.connection_closed"
    assert "after 10 bytes of the body of the 1000 announced" in err.message


def test_a_close_before_any_response() -> None:
    with serving(raw_server(replying())) as port:
        err = fails(port)
    assert err.code == "http.connection_closed"
    assert "before sending any of the response" in err.message


def test_a_close_in_the_middle_of_the_headers() -> None:
    with serving(raw_server(replying(b"HTTP/1.1 200 OK\r\nContent-"))) as port:
        err = fails(port)
    assert err.code == "http.connection_closed"
    assert "in the middle of the response headers (25 bytes received)" in err.message


def test_a_kept_alive_connection_closed_by_the_server_says_a_retry_may_work() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(HEAD + b"hello")
        await writer.drain()
        await read_head(reader)  # then close without answering the second request

    async def go(port: int) -> None:
        conn = H1Connection(connect(port))
        await conn.exchange(request(port), time.perf_counter_ns, Limits())
        await conn.exchange(request(port), time.perf_counter_ns, Limits())

    with serving(raw_server(once)) as port, pytest.raises(HttpError) as err:
        asyncio.run(go(port))
    assert err.value.code == "http.connection_closed"
    assert "already carried 1 exchange" in err.value.message


def test_a_truncated_gzip_body_fails_to_decode() -> None:
    body = gzip.compress(TEXT)[:-8]
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    with serving(raw_server(replying(head, body))) as port:
        err = fails(port)
    assert err.code == "http.content_decode_failed"
