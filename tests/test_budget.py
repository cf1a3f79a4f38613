"""The per-journey budget: pacing that lets timers fire, the deadline, CPU, counts and rates."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from journey_helpers import options, run
from misbehaving import RawServer, ok_reply, read_request_head
from whathappens.contract.facts import DnsFacts, DnsWalkFacts, HttpFacts, LegFacts
from whathappens.errors import JourneyTimeout, LimitExceeded
from whathappens.journey import Journey
from whathappens.net import budget as budgets
from whathappens.net.budget import Budget, ResourceLimits
from whathappens.net.stream import PlainStream


def test_turn_gives_the_event_loop_turns() -> None:
    """A loop that never waits for the network still lets other tasks (timers) run."""

    async def main() -> int:
        ticks = 0

        async def other() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        b = Budget()
        for _ in range(1600):
            await b.turn()
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 1600 // budgets.YIELD_EVERY


def _always_data(conn: socket.socket) -> None:
    read_request_head(conn)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        conn.sendall(b"x" * 65536)


def test_a_peer_that_always_has_data_cannot_outrun_a_timeout() -> None:
    """Reads that find data in the kernel do not wait; asyncio.timeout still fires."""

    async def main() -> float:
        with RawServer(_always_data) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            await asyncio.sleep(0.1)  # let the kernel's buffer fill
            stream = PlainStream(sock)

            async def read_for_ever() -> None:
                async with asyncio.timeout(0.3):
                    while True:
                        await stream.recv(1, 5.0)  # tiny reads: data is always there

            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await read_for_ever()
            stream.close()
            return time.monotonic() - t0

    assert asyncio.run(main()) < 2.0


def test_the_deadline_is_checked_by_the_budget_itself() -> None:
    b = Budget(max_time=0.02)
    time.sleep(0.03)
    with pytest.raises(JourneyTimeout, match=r"--max-time 0\.02"):
        b.check()


def test_a_count_over_its_total_fails_in_the_running_step() -> None:
    journey = Journey(url="https://example.test/")
    leg = journey.span("leg", "journey", "you", "application", LegFacts())
    journey.span("http", "http", "server", "application", HttpFacts(), parent=leg)
    b = Budget(ResourceLimits(max_events={"h2.control": 3}, max_event_rate=None),
               journey=journey)
    for _ in range(3):
        b.count("h2.control")
    with pytest.raises(LimitExceeded) as info:
        b.count("h2.control")
    err = info.value
    assert err.step == "http"
    assert err.exit_code == 7
    assert err.code == "limit.h2.control"
    assert "more than 3 HTTP/2 control frames" in err.message
    assert "--max-events h2.control=3" in err.message


def test_the_step_is_the_innermost_open_one() -> None:
    journey = Journey(url="https://example.test/")
    leg = journey.span("leg", "journey", "you", "application", LegFacts())
    dns = journey.span("dns", "dns", "you", "application", DnsFacts(), parent=leg)
    journey.span("dns.walk", "dns", "you", "application", DnsWalkFacts(), parent=dns)
    b = Budget(ResourceLimits(max_events={"dns.query": 1}), journey=journey)
    b.count("dns.query")
    with pytest.raises(LimitExceeded) as info:
        b.count("dns.query")
    assert (info.value.step, info.value.exit_code) == ("dns", 4)
    assert "made us send more than 1 DNS queries" in info.value.message


def test_a_rate_over_its_limit_is_a_flood() -> None:
    b = Budget(ResourceLimits(max_events={}, max_event_rate=10))
    for _ in range(10):
        b.count("h1.chunk")
    with pytest.raises(LimitExceeded, match="within one second") as info:
        b.count("h1.chunk")
    assert "11 chunks" in info.value.message  # the counts so far are named


def test_cpu_over_its_budget_is_stopped() -> None:
    b = Budget(ResourceLimits(max_cpu=0.05))
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.1:
        pass
    time.sleep(budgets.CHECK_NS / 1e9)
    with pytest.raises(LimitExceeded, match="--max-cpu") as info:
        b.check()
    assert info.value.code == "limit.cpu"
    assert info.value.exit_code == 9  # no step open: the journey's own class


def test_outside_a_journey_the_budget_only_paces() -> None:
    b = budgets.current()
    for _ in range(100_000):
        b.count("h2.control")
    b.check()


def test_the_report_says_what_the_journey_spent() -> None:
    b = Budget()
    b.count("tls.record", 5)
    report = b.report()
    assert report.events == {"tls.record": 5}
    assert isinstance(report.cpu_ms, float)
    assert "thread_time" in report.cpu_clock


def _drip(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"x")
        time.sleep(0.05)


def test_max_time_says_where_the_journey_was_and_what_it_waited_for() -> None:
    with RawServer(_drip) as server:
        journey = run(server.url(), options("--max-time", "0.8"))
    assert journey.error is not None
    assert journey.exit_code == 9
    message = journey.error.message
    assert "--max-time 0.8 s" in message
    assert "during the HTTP step while waiting for more of the body (" in message
    assert "of 1000 bytes received)" in message


def test_every_journey_reports_what_it_spent() -> None:
    with RawServer(ok_reply) as server:
        journey = run(server.url(), options())
    resources = journey.to_dict()["facts"]["resources"]
    assert resources["reads"] >= 1
    assert 0 < resources["cpu_ms"] < 5000


def test_every_limit_has_its_flag() -> None:
    opts = options("--max-cpu", "2", "--max-memory", "64", "--max-events", "h2.control=10",
                   "--max-events", "dns.query=0", "--max-event-rate", "0", "--max-1xx", "3",
                   "--max-header-bytes", "1000", "--read-timeout", "4", "--dns-max-queries",
                   "9", "--dns-max-nested", "2", "--dns-max-nested-depth", "1",
                   "--dns-max-cname-chain", "5")
    r = opts.resources
    assert (r.max_cpu, r.max_memory, r.max_event_rate) == (2.0, 64 << 20, None)
    assert r.max_events["h2.control"] == 10
    assert "dns.query" not in r.max_events  # 0: no limit
    assert (opts.limits.max_informational, opts.limits.max_header_bytes,
            opts.limits.read_timeout) == (3, 1000, 4.0)
    d = opts.dns
    assert (d.max_queries, d.max_nested, d.max_nested_depth, d.max_cname_chain) == (9, 2, 1, 5)


def test_an_unknown_event_kind_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        options("--max-events", "h3.frame=5")
