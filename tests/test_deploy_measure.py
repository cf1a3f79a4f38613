"""The deploys' measurements as pure functions over load samples (no lab needed): phases cut
at the deploy's marks, the switch's effect on requests in flight, and a load run that a
stop event ends early."""

from __future__ import annotations

import threading
import time

from whathappens.lab.exercises import load
from whathappens.lab.exercises.deploy.bluegreen import Switch, measure_switch
from whathappens.lab.exercises.deploy.measure import Mark, phases, timeline


def sample(start: float, ms: float, version: str, status: int = 200,
           server: str = "app-1") -> load.Sample:
    return load.Sample(start, ms, status, server, headers={"x-site-version": version})


def run_of(*samples: load.Sample) -> load.LoadResult:
    return load.LoadResult(list(samples), seconds=max(s.start for s in samples) + 0.1)


def test_phases_cut_at_marks_by_when_each_request_started() -> None:
    result = run_of(sample(0.1, 5, "v1"), sample(0.9, 500, "v1"), sample(1.2, 5, "v2"),
                    sample(1.5, 5, "", status=502), sample(2.5, 5, "v2", server="app-2"))
    rows = phases(result, [Mark(0, "before"), Mark(1.0, "switching"), Mark(1.0, "same"),
                           Mark(2.0, "after")])
    assert [r.label for r in rows] == ["before", "same", "after"]   # empty instant dropped
    assert rows[0].versions == {"v1": 2}
    assert (rows[1].requests, rows[1].failed, rows[1].versions) == (2, 1, {"v2": 1})
    assert rows[2].servers == {"app-2": 1}
    assert any("v2" in line for line in timeline(result))


def test_a_switch_counts_requests_in_flight_and_the_first_new_answer() -> None:
    result = run_of(sample(0.90, 200, "v1"),     # in flight across the switch at 1.0 s
                    sample(1.01, 10, "v2"), sample(1.05, 10, "v2"),
                    sample(1.10, 10, "v1"))       # a new request the old side answered
    sw = measure_switch(Switch("green", 1.0, 0.3, {}, 0, 0, None, None, 0, 0), result,
                        new="v2", old="v1")
    assert sw.in_flight == 1
    assert sw.in_flight_failed == 0
    assert sw.first_new_ms is not None
    assert abs(sw.first_new_ms - 20) < 1e-6
    assert sw.last_old_ms is not None
    assert abs(sw.last_old_ms - 110) < 1e-6
    assert sw.old_after == 1
    assert sw.failed_after == 0


def test_a_load_run_ends_when_its_stop_event_is_set() -> None:
    """Paced at 20/s with nothing listening: each request fails at once; the stop ends
    the run long before its 100 requests or 30 s."""
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    t0 = time.monotonic()
    result = load.run("127.0.0.1", 9, "/", requests=100, concurrency=2, rate=20,
                      seconds=30, tls=False, stop=stop)
    assert time.monotonic() - t0 < 3
    assert 5 <= len(result.samples) < 20
