"""Reading a tier's log just after the requests: ``logs.settled`` waits for the lines a tier
writes a moment after the client has its response, against a real file written by a thread
the way a tier appends to its log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from whathappens.lab import logs


def write_later(path: Path, lines: list[str], delay: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        with path.open("a") as f:
            for line in lines:
                f.write(line + "\n")
    thread = threading.Thread(target=write)
    thread.start()
    return thread


def line(i: int, label: str = "run-") -> str:
    return json.dumps({"request_id": i, "url": f"/?label={label}{i}"})


def test_the_last_line_written_after_the_first_read_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "haproxy.log"
    log.write_text("".join(line(i) + "\n" for i in range(39)))
    late = write_later(log, [line(39), line(0, "other-")], 0.3)
    assert len(list(logs.json_lines(log, "label=run-"))) == 39  # what a reader at once sees
    got = logs.logged(log, "label=run-", want=40)
    late.join()
    assert [g["request_id"] for g in got] == list(range(40))


def test_not_knowing_how_many_it_waits_until_none_new_come(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(line(0) + "\n")
    late = write_later(log, [line(1)], 0.1)
    got = logs.logged(log, "label=run-")
    late.join()
    assert len(got) == 2


def test_a_line_never_written_costs_the_bound_and_no_more(tmp_path: Path) -> None:
    log = tmp_path / "haproxy.log"
    log.write_text(line(0) + "\n")
    started = time.monotonic()
    got = logs.settled(lambda: list(logs.json_lines(log, "label=run-")), want=2, timeout=0.3)
    took = time.monotonic() - started
    assert len(got) == 1
    assert 0.3 <= took < 5  # the bound, and a runaway guard
    # A missing log reads as no lines, not an error.
    assert logs.logged(tmp_path / "absent.log", "x", want=0) == []


def span(kind: str, traceparent: str, **attrs: object) -> logs.ServerSpan:
    return logs.ServerSpan(kind, kind, kind, 0, 1, traceparent, dict(attrs))


KINDS = {"edge", "lb", "app", "django"}


def test_a_stale_answer_waits_for_the_edge_not_for_its_background_refresh() -> None:
    """A STALE answer: nginx logs the request only after its background refresh, whose lines
    behind the edge come first; they are not the request's, and their kinds must not make
    the logs look complete (CI saw them placed under the request)."""
    from whathappens.lab.client.timeline import logged_in_full

    mine = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    refresh = [span("lb", mine), span("app", mine), span("django", mine)]
    assert not logged_in_full(refresh, KINDS, frozenset({mine}))
    assert logged_in_full([*refresh, span("edge", mine, cache="STALE")], KINDS,
                          frozenset({mine}))
    # A hit at the edge: its line alone is the whole story, no waiting for tiers behind.
    assert logged_in_full([span("edge", mine, cache="HIT")], KINDS, frozenset({mine}))
    # A miss: every tier behind it too.
    miss = span("edge", mine, cache="MISS")
    assert not logged_in_full([miss, span("lb", mine)], KINDS, frozenset({mine}))
    assert logged_in_full([miss, *refresh], KINDS, frozenset({mine}))
    # Two requests: both fronts' lines.
    other = mine.replace("b" * 16, "c" * 16)
    assert not logged_in_full([miss, *refresh], KINDS, frozenset({mine, other}))
    # A lab with no front tier: the kinds alone.
    assert logged_in_full(refresh, {"lb", "app", "django"}, frozenset({mine}))
