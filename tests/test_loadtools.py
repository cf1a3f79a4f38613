"""wrk's and h2load's output, parsed: pure tests on real outputs captured from the lab.

Captured (tests/data/loadtools/) with Debian 12's wrk 4.1.0 and h2load (nghttp2 1.52.0)
against a lab's nginx on loopback, over TLS:

- wrk_tls_static.txt: a static file, ``--latency`` and the P95_LUA done() hook;
- wrk_single_429.txt: the single profile's home page from one address: the per-client rate
  limit answered 429 to most (wrk: "Non-2xx or 3xx responses");
- wrk_refused.txt: nothing listening;
- h2load_h2_keepalive_requests.txt: -n 20000 -c 8 over HTTP/2: nginx closed each connection
  after 1000 requests (keepalive_requests), h2load did not reconnect: 12,000 failed;
- h2load_h2.log: the first 50 lines of that run's ``--log-file``;
- h2load_h1.txt: --h1, 5,000 requests, all 2xx;
- h2load_refused.txt: nothing listening.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from whathappens.lab.exercises import load
from whathappens.lab.exercises.loadtools import (
    ToolError,
    ToolResult,
    check_loopback,
    duration_ms,
    parse_h2load,
    parse_wrk,
    percentile,
)
from whathappens.lab.exercises.throughput import limit_line, table_lines

DATA = Path(__file__).parent / "data" / "loadtools"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_durations_in_every_unit_the_tools_print() -> None:
    assert duration_ms("276.00us") == 0.276
    assert duration_ms("1.22ms") == 1.22
    assert duration_ms("2.01s") == 2010.0
    assert duration_ms("406.17ms") == 406.17
    with pytest.raises(ValueError, match="not a duration"):
        duration_ms("fast")


def test_wrk_with_the_lua_hook() -> None:
    r = parse_wrk(read("wrk_tls_static.txt"))
    assert (r.tool, r.protocol, r.requests, r.ok, r.failed) == ("wrk", "http/1.1", 28136,
                                                               28136, 0)
    assert r.seconds == pytest.approx(2.01)
    assert r.rps == pytest.approx(14011.80)
    # The hook's percentiles (µs → ms), 95th included; the max from the Latency line.
    assert (r.p50_ms, r.p95_ms, r.p99_ms) == (0.276, 4.021, 7.378)
    assert r.max_ms == 14.71
    assert r.errors == []


def test_wrk_counts_non_2xx_answers_as_failed() -> None:
    r = parse_wrk(read("wrk_single_429.txt"))
    assert r.requests == 24945
    assert r.failed == 24745
    assert r.ok == 200
    assert r.errors == ["24745 non-2xx/3xx responses"]
    # Without the hook: --latency's own 50/75/90/99 (no 95th, so none is made up).
    assert (r.p50_ms, r.p95_ms, r.p99_ms) == (0.293, None, 51.55)


def test_wrk_without_a_result_is_an_error_not_a_zero() -> None:
    with pytest.raises(ToolError, match="unable to connect"):
        parse_wrk(read("wrk_refused.txt"))


def test_h2load_http1_with_its_log_for_percentiles() -> None:
    r = parse_h2load(read("h2load_h1.txt"))
    assert (r.tool, r.protocol, r.requests, r.ok, r.failed) == ("h2load", "http/1.1", 5000,
                                                               5000, 0)
    assert r.seconds == pytest.approx(0.40617)
    assert r.rps == pytest.approx(12310.27)
    assert r.p50_ms is None          # no log given: no percentiles invented
    assert r.max_ms == 14.29


def test_h2load_keepalive_requests_failures_are_reported() -> None:
    log = read("h2load_h2.log").splitlines()
    r = parse_h2load(read("h2load_h2_keepalive_requests.txt"), log)
    assert r.protocol == "h2"
    assert (r.requests, r.ok, r.failed) == (8000, 8000, 12000)
    assert r.errors[0] == "12000 failed, 12000 errored, 0 timeout (of 20000)"
    assert "keepalive_requests" in r.errors[1]
    durations = sorted(int(line.split("\t")[2]) / 1000 for line in log)
    assert r.p50_ms == percentile(durations, 50)
    assert r.max_ms == durations[-1]


def test_h2load_that_reached_nothing() -> None:
    r = parse_h2load(read("h2load_refused.txt"))
    assert (r.requests, r.ok, r.failed, r.rps) == (0, 0, 10, 0.0)
    assert r.max_ms is None
    with pytest.raises(ToolError):
        parse_h2load("starting benchmark...\n")


def test_h2load_log_lines_of_the_wrong_shape_are_skipped() -> None:
    r = parse_h2load(read("h2load_h1.txt"), ["garbage", "1\t200\t1500", "2\t0\t9", "3\t503\t1"])
    assert (r.p50_ms, r.max_ms) == (1.5, 1.5)


@given(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=200))
def test_percentile_is_the_python_clients_rule(values: list[float]) -> None:
    ours = percentile(sorted(values), 95)
    result = load.LoadResult()
    result.samples = [load.Sample(0.0, v, 200, "") for v in values]
    theirs = result.percentile(95)
    assert theirs is not None
    assert ours == pytest.approx(theirs, abs=1e-3)


def test_only_loopback() -> None:
    check_loopback("127.235.90.1")
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("192.0.2.1")


def test_which_client_was_the_limit() -> None:
    py = ToolResult("python (load.py)", rps=2995)
    wrk = ToolResult("wrk", rps=10846)
    h2 = ToolResult("h2load", rps=6877)
    line = limit_line([py, wrk, h2])
    assert line.startswith("the limit was the client: python (load.py) 2,995 req/s (3.6× "
                           "slower)")
    assert "wrk reached 10,846" in line
    assert "h2load" not in line.split("where")[0]      # within 2× of wrk: not named
    assert limit_line([wrk, h2]).startswith("all clients within 2×")
    lines = table_lines([py, wrk], 8)
    assert lines[1].split()[:3] == ["client", "protocol", "req/s"]
