"""Reading the tiers' own logs: bounded tails, JSON lines, and the server spans they give.

Each tier driver (``tiers/``) reads its own program's log for one trace
(:meth:`whathappens.lab.tier.Tier.trace_spans`) with these helpers and returns
``ServerSpan`` objects; the timeline (``client/timeline.py``) nests them and merges them into
the journey. Reads are bounded: only the last ``TAIL_BYTES`` of a log are looked at.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from whathappens.contract.facts import DbExplainFacts, HopConnectionFacts

TAIL_BYTES = 4 * 1024 * 1024
# A tier writes a request's log line as the request ends there, which can be a moment after
# the client has read its response (HAProxy in HTTP mode logs at the end of the transaction;
# nginx after the last byte is handed to the kernel). A reader that looks at once can miss
# the last lines: ``settled`` reads again until the log has caught up, within these bounds.
LOG_QUIET_S = 0.2       # not knowing how many lines to expect: none new for this long
LOG_WAIT_S = 3.0        # at the most, whatever is expected
LOG_POLL_S = 0.05

T = TypeVar("T")


@dataclass
class ServerSpan:
    kind: str                 # "edge" | "lb" | "app" | "django" | "sql" | "redis" | ...
    tier: str
    actor: str
    start_wall_ns: int
    end_wall_ns: int
    traceparent: str
    attrs: dict[str, Any] = field(default_factory=dict)
    children: list[ServerSpan] = field(default_factory=list)
    # How spans of two logs meet: a span that names a ``parent_id`` goes under the span
    # (of any tier) whose ``span_id`` it is, e.g. PostgreSQL's statement under Django's SQL
    # span, found by the sqlcommenter traceparent in the statement.
    span_id: str = ""
    parent_id: str = ""
    # Typed facts a driver read from its program: the main query step by step (X-Explain),
    # and the connections of the hops into and out of this tier (joined by hop name in
    # client/timeline.py: the accepting side says new or reused, the connecting side timed
    # the connect).
    db_explain: DbExplainFacts | None = None
    connections: list[HopConnectionFacts] = field(default_factory=list)

    def walk(self) -> Iterator[ServerSpan]:
        yield self
        for child in self.children:
            yield from child.walk()


def tail_lines(path: Path, limit: int = TAIL_BYTES) -> Iterator[str]:
    """The lines of the last ``limit`` bytes of a log (the first, partial one dropped)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > limit and lines:
        lines = lines[1:]
    yield from lines


def json_lines(path: Path, needle: str, limit: int = TAIL_BYTES) -> Iterator[dict[str, Any]]:
    """The JSON objects among the log's last lines that contain ``needle``."""
    for line in tail_lines(path, limit):
        if needle in line and line.lstrip().startswith("{"):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


def settled(read: Callable[[], list[T]], want: int | None = None, *,
            quiet: float = LOG_QUIET_S, timeout: float = LOG_WAIT_S) -> list[T]:
    """``read()`` once the logs have caught up with the requests just made: when it gives
    ``want`` items, or (``want`` unknown) when no new one has come for ``quiet`` s; at most
    ``timeout`` s, then what is there (a request the tier never logged stays missing)."""
    started = time.monotonic()
    items = read()
    changed = started
    while True:
        now = time.monotonic()
        if want is not None and len(items) >= want:
            return items
        if want is None and now - changed >= quiet:
            return items
        if now - started >= timeout:
            return items
        time.sleep(LOG_POLL_S)
        again = read()
        if len(again) != len(items):
            changed = time.monotonic()
        items = again


def logged(path: Path, needle: str, want: int | None = None,
           limit: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The log's JSON lines with ``needle`` once it has caught up (``settled``)."""
    return settled(lambda: list(json_lines(path, needle, limit)), want)


def seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
