"""The SSRF corpus against a real ``whathappens serve``, end to end.

Two real serve processes: ``--public`` (bound to 127.0.0.1, which --public allows for testing)
and the default local mode. Each corpus URL is POSTed as the page does; the text/event-stream
that comes back must refuse the journey in public mode with a clear message (exit 13), while a
real server on 127.0.0.1 sees no connection, and the same URL must go through in local mode.
A tiny DNS server answers evil.test → 127.0.0.1 (a name resolving to loopback).

The two cases a public first hop cannot reach from here are tested on the runner itself:
a redirect to a private address (the first hop on 127.0.0.2, let through as a "public
stand-in"), and an iterative DNS walk whose referral glue points into private space.
Last, the gate: a second journey from the same client while one runs gets 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from journey_helpers import assert_complete, check_universal, child, legs
from misbehaving import (
    RawServer,
    TinyDns,
    ipv6_loopback_works,
    ok_reply,
    read_request_head,
    wait_until_closed,
)
from serve_helpers import Served, Stream, journey, post
from serve_helpers import events as sse_events
from serve_helpers import serve as served_by
from whathappens.errors import DnsError, TargetRefused
from whathappens.guard import public_only
from whathappens.journey import Journey, Span
from whathappens.net.dns.views import DnsOptions
from whathappens.trace import Options, run_journey

CALL_TIMEOUT = 30.0      # seconds for one POST /api/journey, stream included

# URL (PORT = the local target server's port) -> words the refusal must say.
CORPUS: dict[str, tuple[str, ...]] = {
    # loopback, and the spellings of it a URL parser accepts
    "http://127.0.0.1:PORT/": ("127.0.0.1", "loopback"),
    "http://127.0.0.2:PORT/": ("127.0.0.2", "loopback"),
    "http://[::1]:PORT/": ("::1", "loopback"),
    "http://2130706433:PORT/": ("typed as 2130706433", "loopback"),
    "http://0177.0.0.1:PORT/": ("typed as 0177.0.0.1", "loopback"),
    "http://017700000001:PORT/": ("typed as 017700000001", "loopback"),
    "http://0x7f000001:PORT/": ("typed as 0x7f000001", "loopback"),
    "http://0x7f.1:PORT/": ("typed as 0x7f.1", "loopback"),
    "http://127.1:PORT/": ("typed as 127.1", "loopback"),
    # private
    "http://10.0.0.1:PORT/": ("10.0.0.1", "private network"),
    "http://172.16.0.1:PORT/": ("172.16.0.1", "private network"),
    "http://172.31.255.254:PORT/": ("private network",),
    "http://192.168.1.1:PORT/": ("192.168.1.1", "private network"),
    "http://[fc00::1]:PORT/": ("fc00::1", "private"),
    "http://[fd12:3456::1]:PORT/": ("private",),
    # link-local
    "http://169.254.1.1:PORT/": ("169.254.1.1", "link-local"),
    "http://[fe80::1]:PORT/": ("fe80::1", "link-local"),
    # carrier-grade NAT
    "http://100.64.0.1:PORT/": ("100.64.0.1", "carrier-grade NAT"),
    # multicast
    "http://224.0.0.1:PORT/": ("224.0.0.1", "multicast"),
    "http://[ff02::1]:PORT/": ("ff02::1", "multicast"),
    # cloud metadata
    "http://169.254.169.254/latest/meta-data/": ("169.254.169.254", "metadata"),
    "http://[fd00:ec2::254]/latest/meta-data/": ("fd00:ec2::254", "metadata"),
    "http://100.100.100.200/latest/meta-data/": ("100.100.100.200", "metadata"),
    # 'this network' (connecting to 0.0.0.0 reaches this machine)
    "http://0.0.0.0:PORT/": ("0.0.0.0", "this network"),
    "http://0:PORT/": ("typed as 0", "this network"),
    # IPv4 inside IPv6
    "http://[::ffff:127.0.0.1]:PORT/": ("127.0.0.1", "loopback"),
    "http://[::ffff:10.0.0.1]:PORT/": ("10.0.0.1", "private network"),
    "http://[64:ff9b::7f00:1]:PORT/": ("127.0.0.1", "loopback"),
    "http://[2002:7f00:1::]:PORT/": ("127.0.0.1", "loopback"),
}

# The corpus URLs that really reach a server listening on 127.0.0.1 from this machine: in
# local mode each must arrive there, which shows the public refusal is the guard's doing.
REACH_LOOPBACK = [
    "http://127.0.0.1:PORT/", "http://2130706433:PORT/", "http://0177.0.0.1:PORT/",
    "http://017700000001:PORT/", "http://0x7f000001:PORT/", "http://0x7f.1:PORT/",
    "http://127.1:PORT/", "http://0.0.0.0:PORT/", "http://0:PORT/",
    "http://[::ffff:127.0.0.1]:PORT/",
]


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def serve(*args: str) -> Iterator[Served]:
    """``whathappens serve --port 0 ARGS`` without the TLS comparison (not under test here)."""
    with served_by("--no-compare-tls", *args) as served:
        yield served


def assert_refused(stream: Stream, *words: str) -> dict[str, Any]:
    """Refused by the guard: a failed 'Address check' step saying so, exit 13, nothing
    connected. Returns the failed step's event."""
    assert stream.status == 200
    assert stream.content_type.startswith("text/event-stream")
    kinds = stream.kinds()
    assert kinds[0] == "start", kinds
    assert kinds[-2:] == ["report", "end"], kinds
    failed = [s for s in stream.steps() if s["failed"] and s["step"] != "leg"]
    assert len(failed) == 1, stream.steps()
    step = failed[0]
    assert step["step"] == "guard", step
    summary = step["summary"]
    assert "was not contacted" in summary, summary
    assert "only public addresses" in summary, summary
    for word in words:
        assert word.lower() in summary.lower(), f"{word!r} not in {summary!r}"
    assert not [s for s in stream.steps() if s["step"] in ("tcp", "tls", "http")]
    report = stream.one("report")
    assert report["exit_code"] == 13
    assert report["error"]["code"] == "guard.refused"
    assert report["error"]["step"] == "tcp"
    assert report["error"]["message"] == summary
    assert "not contacted" in report["html"]
    assert stream.one("end")["exit_code"] == 13
    return step


def assert_reached(stream: Stream) -> None:
    assert stream.status == 200
    assert stream.kinds()[0] == "start"
    assert stream.kinds()[-1] == "end"
    report = stream.one("report")
    assert report["exit_code"] == 0, report["error"]
    assert report["error"] is None
    assert stream.one("end")["exit_code"] == 0
    http_steps = [s for s in stream.steps() if s["step"] == "http"]
    assert len(http_steps) == 1
    assert http_steps[0]["summary"].startswith("200 OK"), http_steps[0]
    assert not [s for s in stream.steps() if s["failed"]]


def evil_resolver(query: dns.message.Message) -> dns.message.Message:
    """A recursive resolver that says evil.test is 127.0.0.1 (no AAAA)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    q = query.question[0]
    if q.name.to_text().lower() == "evil.test." and q.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text("evil.test.", 60, "IN", "A", "127.0.0.1"))
    return response


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def target() -> Iterator[RawServer]:
    """The local server the corpus aims at: it must see no connection in public mode."""
    with RawServer(ok_reply) as server:
        yield server


@pytest.fixture(scope="module")
def target6() -> Iterator[RawServer | None]:
    """The same on ::1, when this machine has IPv6 loopback."""
    if not ipv6_loopback_works():
        yield None
        return
    with RawServer(ok_reply, host="::1") as server:
        yield server


@pytest.fixture(scope="module")
def resolver() -> Iterator[TinyDns]:
    with TinyDns(evil_resolver) as server:
        yield server


def dns_args(resolver: TinyDns) -> list[str]:
    return ["--resolver", resolver.address, "--dns-views", "resolver", "--connect-timeout", "3"]


@pytest.fixture(scope="module")
def public(resolver: TinyDns) -> Iterator[Served]:
    with serve("--public", "--bind", "127.0.0.1", *dns_args(resolver)) as served:
        yield served


@pytest.fixture(scope="module")
def local(resolver: TinyDns) -> Iterator[Served]:
    with serve(*dns_args(resolver)) as served:
        yield served


def accepted(*servers: RawServer | None) -> int:
    return sum(s.accepted for s in servers if s is not None)


# ------------------------------------------------------------------- public mode: refused


@pytest.mark.parametrize("url", CORPUS)
def test_public_mode_refuses_the_corpus(public: Served, target: RawServer,
                                        target6: RawServer | None, url: str) -> None:
    port = (target6 or target).port if "[::1]" in url else target.port
    before = accepted(target, target6)
    stream = journey(public, url.replace("PORT", str(port)))
    assert stream.one("start")["public"] is True
    step = assert_refused(stream, *CORPUS[url])
    # The steps before the refusal are there and succeeded: the URL, and DNS (no lookup
    # for an address).
    done = {s["step"]: s for s in stream.steps()}
    assert not done["url"]["failed"]
    assert not done["dns"]["failed"]
    assert step["leg"] == done["dns"]["leg"] == 0  # the first leg (index 0)
    assert accepted(target, target6) == before, "a connection reached the local server"


def test_public_mode_refuses_a_name_that_resolves_to_loopback(
        public: Served, target: RawServer, resolver: TinyDns) -> None:
    before = target.accepted
    stream = journey(public, f"http://evil.test:{target.port}/")
    step = assert_refused(stream, "evil.test was not contacted", "127.0.0.1", "loopback")
    steps = stream.steps()
    dns_steps = [s for s in steps if s["step"] == "dns"]
    assert len(dns_steps) == 1
    assert not dns_steps[0]["failed"]
    assert "evil.test → 127.0.0.1" in dns_steps[0]["summary"]
    assert steps.index(dns_steps[0]) < steps.index(step), [s["step"] for s in steps]
    assert "evil.test. A" in resolver.queries
    assert target.accepted == before


def test_public_mode_still_answers_to_any_host_but_only_fetches_public(public: Served) -> None:
    """A refusal is a journey like any other: the report is kept for download."""
    stream = journey(public, "http://[::ffff:169.254.169.254]/latest/meta-data/")
    assert_refused(stream, "169.254.169.254", "metadata")
    ident = stream.one("report")["id"]
    conn = http.client.HTTPConnection("127.0.0.1", public.port, timeout=CALL_TIMEOUT)
    try:
        conn.request("GET", f"/journeys/{ident}.json")
        resp = conn.getresponse()
        doc = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 200
    assert doc["exit_code"] == 13
    assert doc["error"]["code"] == "guard.refused"


# ----------------------------------------------------------------- local mode: allowed


@pytest.mark.parametrize("url", REACH_LOOPBACK)
def test_local_mode_reaches_the_same_urls(local: Served, target: RawServer, url: str) -> None:
    before = target.accepted
    stream = journey(local, url.replace("PORT", str(target.port)))
    assert stream.one("start")["public"] is False
    assert_reached(stream)
    assert target.accepted == before + 1


def test_local_mode_reaches_ipv6_loopback(local: Served, target6: RawServer | None) -> None:
    if target6 is None:
        pytest.skip("no IPv6 loopback on this machine")
    before = target6.accepted
    assert_reached(journey(local, f"http://[::1]:{target6.port}/"))
    assert target6.accepted == before + 1


def test_local_mode_follows_a_name_to_loopback(local: Served, target: RawServer) -> None:
    before = target.accepted
    stream = journey(local, f"http://evil.test:{target.port}/")
    assert_reached(stream)
    dns_step = next(s for s in stream.steps() if s["step"] == "dns")
    assert "evil.test → 127.0.0.1" in dns_step["summary"]
    assert target.accepted == before + 1


# ------------------------------------------------- runner: a redirect to a private address


def redirect_to(location: str) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location.encode() +
                     b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        wait_until_closed(conn, 2)
    return handler


def stand_in_policy(stand_in: str) -> Callable[[str], str | None]:
    """public_only, except for one loopback address that plays a public server."""
    return lambda address: None if address == stand_in else public_only(address)


def run(url: str, opts: Options) -> Journey:
    done = asyncio.run(run_journey(url, opts))
    check_universal(done)
    return done


@pytest.mark.parametrize(("location", "words"), [
    ("http://127.0.0.1:OTHER/", ("127.0.0.1 was not contacted", "loopback")),
    ("http://2130706433:OTHER/", ("127.0.0.1 (typed as 2130706433) was not contacted",
                                  "loopback")),
    ("http://0x7f.1:OTHER/admin", ("typed as 0x7f.1", "loopback")),
    ("http://[::ffff:127.0.0.1]:OTHER/", ("carries the IPv4 address 127.0.0.1", "loopback")),
    ("http://localhost:OTHER/", ("localhost was not contacted", "loopback")),
    ("http://10.0.0.1:OTHER/", ("10.0.0.1", "private network")),
    ("http://169.254.169.254/latest/meta-data/", ("169.254.169.254", "metadata")),
])
def test_a_redirect_to_a_private_address_is_refused(location: str,
                                                    words: tuple[str, ...]) -> None:
    with RawServer(ok_reply) as other:
        loc = location.replace("OTHER", str(other.port))
        with RawServer(redirect_to(loc), host="127.0.0.2") as first:
            opts = Options(dns=DnsOptions(views=frozenset({"system"})),
                           address_policy=stand_in_policy("127.0.0.2"),
                           connect_timeout=3, max_time=20)
            done = run(first.url(), opts)
            assert isinstance(done.error, TargetRefused), done.error
            assert done.exit_code == 13
            for word in words:
                assert word in done.error.message, done.error.message
            first_leg, second_leg = legs(done)
            # The first hop happened, its 302 is in the journey ...
            http = child(first_leg, "http")
            assert_complete(http)
            assert http.attrs["status"] == 302
            assert first.accepted == 1
            # ... the second stopped at the guard, after its DNS step, before any packet.
            assert second_leg.attrs["index"] == 1
            assert_complete(child(second_leg, "dns"))
            guard = child(second_leg, "guard")
            assert guard.error is not None
            assert guard.error["code"] == "guard.refused"
            assert not [c for c in second_leg.children if c.name in ("tcp", "http")]
            assert other.accepted == 0


def test_the_redirect_goes_through_without_the_guard() -> None:
    """The control: same servers, no policy, the second hop reaches the other server."""
    with RawServer(ok_reply) as other:
        loc = f"http://2130706433:{other.port}/"
        with RawServer(redirect_to(loc), host="127.0.0.2") as first:
            done = run(first.url(), Options(dns=DnsOptions(views=frozenset({"system"})),
                                            connect_timeout=3, max_time=20))
            assert done.error is None, done.error
            assert [child(leg, "http").attrs["status"] for leg in legs(done)] == [302, 200]
            assert (first.accepted, other.accepted) == (1, 1)


# ------------------------------------------------- runner: the walk's glue into private space


class TinyDnsAt(TinyDns):
    """TinyDns on another loopback address and a given port (walk servers share a port)."""

    def __init__(self, policy: Callable[[dns.message.Message], dns.message.Message | None],
                 host: str, port: int) -> None:
        super().__init__(policy)
        self.sock.close()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.05)
        self.port = port


def fake_root(query: dns.message.Message) -> dns.message.Message:
    """A root that refers test. to ns1.test (glue 10.0.0.1) and ns2.test (glue 127.0.0.2)."""
    response = dns.message.make_response(query)
    response.authority.append(dns.rrset.from_text("test.", 3600, "IN", "NS", "ns1.test.",
                                                  "ns2.test."))
    response.additional.append(dns.rrset.from_text("ns1.test.", 3600, "IN", "A", "10.0.0.1"))
    response.additional.append(dns.rrset.from_text("ns2.test.", 3600, "IN", "A", "127.0.0.2"))
    return response


def zone_server(query: dns.message.Message) -> dns.message.Message:
    """test.'s authoritative server: evil.test is 127.0.0.1, no other types."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    q = query.question[0]
    if q.name.to_text().lower() == "evil.test." and q.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text("evil.test.", 60, "IN", "A", "127.0.0.1"))
    return response


@contextlib.contextmanager
def walk_servers(tmp_path: Path) -> Iterator[tuple[TinyDns, TinyDns, Path]]:
    with TinyDns(fake_root) as root:
        try:
            zone = TinyDnsAt(zone_server, "127.0.0.2", root.port)
        except OSError as exc:
            pytest.skip(f"cannot listen on 127.0.0.2:{root.port}: {exc}")
        with zone:
            hints = tmp_path / "root.hints"
            hints.write_text(". 3600000 NS a.root.test.\na.root.test. 3600000 A 127.0.0.1\n")
            yield root, zone, hints


def walk_options(hints: Path, port: int, policy: Callable[[str], str | None]) -> Options:
    dns_opts = DnsOptions(root_hints=str(hints), dns_port=port, views=frozenset({"walk"}),
                          query_timeout=1.0, view_timeout=5.0, address_policy=policy)
    return Options(dns=dns_opts, address_policy=policy, connect_timeout=3, max_time=20)


def hops(done: Journey) -> list[Span]:
    return [s for leg in legs(done) for s in leg.walk() if s.name == "dns.hop"]


def test_the_walk_does_not_query_name_servers_in_private_space(tmp_path: Path) -> None:
    with RawServer(ok_reply) as target, walk_servers(tmp_path) as (root, zone, hints):
        policy = stand_in_policy("127.0.0.1")   # the root: the only address allowed
        started = time.monotonic()
        done = run(f"http://evil.test:{target.port}/", walk_options(hints, root.port, policy))
        assert time.monotonic() - started < 3, "a refused server was waited for"
        assert isinstance(done.error, DnsError), done.error
        assert done.error.code == "dns.servfail"
        assert root.queries, "the root was never asked"
        assert zone.queries == [], "a query went to a refused name server"
        assert target.accepted == 0
        by_address: dict[str, list[dict[str, Any]]] = {}
        for hop in hops(done):
            by_address.setdefault(str(hop.attrs["address"]), []).append(hop.attrs)
        assert set(by_address) == {"127.0.0.1", "10.0.0.1", "127.0.0.2"}
        for attrs in by_address["10.0.0.1"]:
            assert attrs["kind"] == "error"
            assert attrs["note"] == "not queried: 10.0.0.1 is a private network (RFC 1918)"
        for attrs in by_address["127.0.0.2"]:
            assert attrs["kind"] == "error"
            assert attrs["note"].startswith("not queried: 127.0.0.2 is loopback")
        assert all(a["kind"] == "referral" for a in by_address["127.0.0.1"])


def test_the_walk_skips_private_glue_and_uses_an_allowed_server(tmp_path: Path) -> None:
    """The control: ns2.test (127.0.0.2) allowed too; the walk reaches the answer through it
    (so the listener on 127.0.0.2 does record queries that reach it), still without a query
    to 10.0.0.1, and the journey reaches the server."""
    with RawServer(ok_reply) as target, walk_servers(tmp_path) as (root, zone, hints):
        allowed = {"127.0.0.1", "127.0.0.2"}

        def policy(address: str) -> str | None:
            return None if address in allowed else public_only(address)

        done = run(f"http://evil.test:{target.port}/", walk_options(hints, root.port, policy))
        assert done.error is None, done.error
        assert "evil.test. A" in zone.queries
        # Whether ns1.test comes up before ns2.test answers depends on the order of the NS
        # set; when it does, it is skipped, never asked.
        skipped = [h.attrs for h in hops(done) if h.attrs["address"] == "10.0.0.1"]
        assert all(a["note"].startswith("not queried: 10.0.0.1") for a in skipped), skipped
        assert target.accepted == 1


# ------------------------------------------------------------------------------ the gate


def slow_reply(conn: socket.socket) -> None:
    """A tiny 200 after a 2 s stall."""
    read_request_head(conn)
    time.sleep(2)
    ok = b"slow but fine\n"
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                 + str(len(ok)).encode() + b"\r\nConnection: close\r\n\r\n" + ok)
    wait_until_closed(conn, 2)


def test_the_gate_refuses_a_second_journey_from_the_same_client(resolver: TinyDns) -> None:
    with RawServer(slow_reply) as slow, RawServer(ok_reply) as quick, \
            serve("--per-client", "1", *dns_args(resolver)) as served:
        conn, resp = post(served, slow.url(), timeout=CALL_TIMEOUT)
        try:
            assert resp.status == 200
            events = sse_events(resp)
            assert next(events)[0] == "start"
            # The first journey holds the client's only slot while the server stalls.
            deadline = time.monotonic() + 5
            while slow.accepted == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert slow.accepted == 1
            second = journey(served, quick.url())
            assert second.status == 429
            assert second.content_type.startswith("text/event-stream")
            assert second.kinds() == ["refused"]
            message = second.one("refused")["message"]
            assert "wait" in message
            assert "already running" in message
            assert quick.accepted == 0
            rest = list(events)
        finally:
            conn.close()
        first = Stream(200, {"content-type": "text/event-stream"}, [("start", {}, 0.0), *rest])
        assert_reached(first)
        # The slot is free again: a new journey runs.
        third = journey(served, quick.url())
        assert_reached(third)
        assert quick.accepted == 1


def test_serve_is_stopped_cleanly() -> None:
    """The helper's serve process ends when asked (no stray processes from this module)."""
    with serve() as served:
        proc = served.proc
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=CALL_TIMEOUT)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    assert proc.returncode is not None
