"""The browser's vetting proxy (whathappens.browser.guard) without a browser: real sockets.

A client speaks to ``VettingProxy`` as Chromium does (CONNECT for https/WebSockets,
absolute-form for plain http). What it refuses never gets a packet: the origin servers here
count every connection they accept. What it allows is carried byte for byte. Each budget of a
page (requests, bytes, time, connections, head size) is met and named. Then the Chromium
switches ``hardening_args`` builds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from whathappens.browser.guard import (
    MAX_RECORDED,
    BadRequest,
    PageBudget,
    VettingProxy,
    hardening_args,
    parse_request,
    resolver_rules,
)
from whathappens.guard import allowing, parse_network, public_only

ORIGIN = "127.0.77.7"      # exempted, as an operator's --allow-address would
FORBIDDEN = "127.0.88.8"   # loopback, refused


@dataclass
class Origin:
    """A TCP server that counts connections and records what it receives; it echoes, or
    answers one HTTP response when ``http`` is set."""

    address: str
    http: bool = False
    accepted: int = 0
    received: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        with contextlib.suppress(OSError):
            if self.http:
                await asyncio.sleep(0.2)  # a pipelined second request would have arrived
                self.received.append(await reader.read(65536))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive"
                             b"\r\n\r\nok")
                await writer.drain()
            else:
                while data := await reader.read(65536):
                    self.received.append(data)
                    writer.write(data)
                    await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def origin(address: str, *, http: bool = False) -> AsyncIterator[Origin]:
    o = Origin(address, http)
    server = await asyncio.start_server(o.handle, address, 0)
    o.port = server.sockets[0].getsockname()[1]
    try:
        yield o
    finally:
        server.close()


def proxy_for(budget: PageBudget | None = None, **kw: Any) -> VettingProxy:
    return VettingProxy(allowing([parse_network(f"{ORIGIN}/32")]), budget=budget, **kw)


async def ask(proxy: VettingProxy, head: bytes
              ) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a request head to the proxy; its answer's head and the open connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(head)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return answer, reader, writer


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def connect(host: str, port: int) -> bytes:
    return f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


@pytest.mark.parametrize("host", [FORBIDDEN, "[::ffff:127.0.88.8]", "2130728968"])
def test_a_tunnel_to_a_refused_address_gets_no_packet(host: str) -> None:
    async def test() -> None:
        async with origin(FORBIDDEN) as target, proxy_for() as proxy:
            answer, _, w = await ask(proxy, connect(host, target.port))
            w.close()
            assert answer.startswith(b"HTTP/1.1 403 ")
            assert target.accepted == 0
            [refusal] = proxy.refused
            assert (refusal.method, refusal.port) == ("CONNECT", target.port)
            assert refusal.reason.endswith("127.0.88.8 is loopback: this machine itself "
                                           "(RFC 1122)")
            assert str(refusal).startswith(f"the page asked for {host}:{target.port}; "
                                           "refused: ")
            assert proxy.passed == []
    run(test)


def test_a_tunnel_to_an_allowed_address_carries_bytes_both_ways() -> None:
    async def test() -> None:
        async with origin(ORIGIN) as target, proxy_for() as proxy:
            answer, r, w = await ask(proxy, connect(ORIGIN, target.port))
            assert answer == b"HTTP/1.1 200 Connection established\r\n\r\n"
            w.write(b"hello through the tunnel")
            assert await r.readexactly(24) == b"hello through the tunnel"
            w.close()
            assert [p.address for p in proxy.passed] == [ORIGIN]
            assert proxy.refused == []
    run(test)


def test_a_pinned_name_goes_to_its_address_and_other_names_are_vetted_after_resolving() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"rebind.test": [FORBIDDEN]}.get(host, [])

    async def test() -> None:
        async with origin(ORIGIN) as target, proxy_for(
                pinned={"Page.Test.": [ORIGIN]}, resolver=resolver) as proxy:
            answer, _, w = await ask(proxy, connect("page.test", target.port))
            w.close()
            assert answer.startswith(b"HTTP/1.1 200 ")
            for name, words in (("rebind.test", "loopback"), ("nowhere.test", "no address")):
                answer, _, w = await ask(proxy, connect(name, target.port))
                w.close()
                assert answer.startswith(b"HTTP/1.1 403 ")
                assert words in proxy.refused[-1].reason
            assert target.accepted == 1
    run(test)


def test_plain_http_is_forwarded_alone_in_origin_form() -> None:
    async def test() -> None:
        async with origin(ORIGIN, http=True) as target, proxy_for() as proxy:
            first = (f"GET http://{ORIGIN}:{target.port}/a?b HTTP/1.1\r\nHost: {ORIGIN}\r\n"
                     "Proxy-Connection: keep-alive\r\nUser-Agent: t\r\n\r\n").encode()
            # A second request rides the same connection, for a forbidden host.
            second = f"GET http://{FORBIDDEN}/ HTTP/1.1\r\nHost: {FORBIDDEN}\r\n\r\n".encode()
            answer, r, w = await ask(proxy, first + second)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Connection: close\r\n" in answer
            assert b"keep-alive" not in answer
            assert await r.read() == b"ok"
            w.close()
            assert target.received == [
                b"GET /a?b HTTP/1.1\r\nHost: 127.0.77.7\r\nUser-Agent: t\r\n"
                b"Connection: close\r\n\r\n"]
    run(test)


def test_a_request_body_without_a_length_is_refused() -> None:
    async def test() -> None:
        async with origin(ORIGIN, http=True) as target, proxy_for() as proxy:
            answer, _, w = await ask(proxy, (
                f"POST http://{ORIGIN}:{target.port}/ HTTP/1.1\r\nHost: x\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode())
            w.close()
            assert answer.startswith(b"HTTP/1.1 411 ")
            assert target.accepted == 0
    run(test)


def test_the_request_budget() -> None:
    async def test() -> None:
        async with origin(ORIGIN) as target, proxy_for(PageBudget(max_requests=2)) as proxy:
            answers = []
            for _ in range(3):
                answer, _, w = await ask(proxy, connect(ORIGIN, target.port))
                answers.append(answer.split(b"\r\n")[0])
                w.close()
            assert answers[2] == b"HTTP/1.1 429 Too Many Requests"
            assert proxy.refused[-1].reason == "the page's request budget (2 requests) is spent"
            assert target.accepted == 2
    run(test)


def test_the_byte_budget_cuts_a_tunnel() -> None:
    async def test() -> None:
        async with origin(ORIGIN) as target, proxy_for(PageBudget(max_bytes=1000)) as proxy:
            _, r, w = await ask(proxy, connect(ORIGIN, target.port))
            w.write(b"x" * 400)
            assert await r.readexactly(400) == b"x" * 400  # 800 bytes moved
            w.write(b"y" * 400)  # 1200 with its echo: the echo is cut, the tunnel closed
            assert await r.read() == b""
            w.close()
            assert "byte budget (1000 bytes) is spent" in proxy.refused[-1].reason
            assert proxy.refused[-1].reason.startswith("cut: ")
    run(test)


def test_the_time_budget_cuts_what_is_open_and_refuses_what_comes() -> None:
    async def test() -> None:
        async with origin(ORIGIN) as target, proxy_for(PageBudget(max_time=0.5)) as proxy:
            _, r, w = await ask(proxy, connect(ORIGIN, target.port))
            assert await asyncio.wait_for(r.read(), 3) == b""  # cut at 0.5 s
            w.close()
            answer, _, w = await ask(proxy, connect(ORIGIN, target.port))
            w.close()
            assert answer.startswith(b"HTTP/1.1 429 ")
            assert proxy.refused[-1].reason == "the page's time budget (0.5 s) is spent"
    run(test)


def test_the_connection_budget_and_the_head_size() -> None:
    async def test() -> None:
        budget = PageBudget(max_connections=1, max_header_bytes=1024)
        async with origin(ORIGIN) as target, proxy_for(budget) as proxy:
            _, _, held = await ask(proxy, connect(ORIGIN, target.port))
            answer, _, w = await ask(proxy, connect(ORIGIN, target.port))
            w.close()
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert str(proxy.refused[-1]) == ("the page's connection to the proxy was refused: "
                                              "the page already holds 1 connections")
            held.close()
            await asyncio.sleep(0.2)
            answer, _, w = await ask(proxy, connect(ORIGIN, target.port)[:-2]
                                     + b"X-Big: " + b"a" * 2000 + b"\r\n\r\n")
            w.close()
            assert answer.startswith(b"HTTP/1.1 431 ")
            assert target.accepted == 1
    run(test)


def test_without_a_policy_everything_passes_and_is_recorded() -> None:
    async def test() -> None:
        async with origin(FORBIDDEN) as target, VettingProxy(None) as proxy:
            answer, _, w = await ask(proxy, connect(FORBIDDEN, target.port))
            w.close()
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert [(p.method, p.address) for p in proxy.passed] == [("CONNECT", FORBIDDEN)]
    run(test)


def test_parse_request_forms() -> None:
    r = parse_request(b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (r.method, r.host, r.port) == ("CONNECT", "::1", 8443)
    r = parse_request(b"POST http://user@Example.COM./f HTTP/1.1\r\nContent-Length: 3\r\n\r\n")
    assert (r.host, r.port, r.body_length) == ("example.com", 80, 3)
    for bad in (b"GET /relative HTTP/1.1\r\n\r\n", b"GET https://x/ HTTP/1.1\r\n\r\n",
                b"CONNECT x:99999 HTTP/1.1\r\n\r\n", b"nonsense\r\n\r\n"):
        with pytest.raises(BadRequest):
            parse_request(bad)


def test_hardening_args_leave_the_page_one_way_out() -> None:
    args = hardening_args("www.example.com", "93.184.215.14", "http://127.0.0.1:4321")
    assert args[:2] == ["--proxy-server=http://127.0.0.1:4321",
                        "--proxy-bypass-list=<-loopback>"]
    assert ("--host-resolver-rules=MAP www.example.com 93.184.215.14, MAP * ~NOTFOUND, "
            "EXCLUDE 127.0.0.1") in args
    assert "--webrtc-ip-handling-policy=disable_non_proxied_udp" in args
    assert "--force-webrtc-ip-handling-policy" in args
    assert not any("ignore-certificate-errors" in a for a in args)


def test_resolver_rules_bracket_ipv6_and_can_do_without_a_target() -> None:
    assert resolver_rules("Example.COM.", "2001:db8::1", "http://127.0.0.1:1") == (
        "MAP example.com [2001:db8::1], MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    assert resolver_rules(None, None, "http://127.0.0.1:1") == (
        "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


def test_the_proxy_uses_the_tracers_policy() -> None:
    assert VettingProxy(public_only).vet(["8.8.8.8", "10.0.0.1"]) == (
        ["8.8.8.8"], {"10.0.0.1": "10.0.0.1 is a private network (RFC 1918)"})


def test_a_guarded_page_reaches_no_low_port_but_the_webs() -> None:
    async def test() -> None:
        async with proxy_for(pinned={"page.test": [ORIGIN]}) as proxy:
            answer, _, w = await ask(proxy, connect("8.8.8.8", 25))
            w.close()
            assert answer.startswith(b"HTTP/1.1 403 ")
            assert proxy.refused[-1].reason == ("port 25: below 1024 a page may reach only "
                                                "the web's ports (80, 443)")
        request = parse_request(connect("page.test", 25))
        assert proxy.port_refusal(request) is None  # the journey's own target keeps its port
        for port in (80, 443, 8443):
            assert proxy.port_refusal(parse_request(connect("x.test", port))) is None
        assert VettingProxy(None).port_refusal(parse_request(connect("x.test", 25))) is None
    run(test)


def test_refusals_past_the_record_are_counted() -> None:
    proxy = proxy_for()
    for n in range(MAX_RECORDED + 7):
        proxy.refuse(f"no {n}")
    assert len(proxy.refused) == MAX_RECORDED
    assert proxy.unrecorded == 7
    assert str(proxy.refused[0]) == "the page's request was refused: no 0"
