"""The paced load a deploy runs under, and what it saw: per phase (between the deploy's
steps) the requests, failures, p50/p95 and which version answered, and the versions over time.

The load is ``load.run`` through the CDN edge, each URL its own (so no cache answers for
the app), at 40 requests/s, 4 at a time: under the app nginx's per-client limit (50 r/s)
even when one node takes all of it. Times are ``time.monotonic()`` seconds since the load
began; a request belongs to the phase in which it started.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from whathappens.lab.exercises import load
from whathappens.lab.exercises.deploy.runtime import VERSION_HEADER
from whathappens.lab.exercises.drills.common import ms, pct

if TYPE_CHECKING:
    from whathappens.lab.running import Lab

RATE = 40.0
CONCURRENCY = 4
CAPTURE = (VERSION_HEADER, "x-backend-server", "x-served-by")


@dataclass
class Mark:
    t: float          # seconds since the load began
    label: str


@dataclass
class Phase:
    label: str
    start: float
    end: float
    requests: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None
    versions: dict[str, int]
    servers: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoadRun:
    """A paced load in a thread, from ``start()`` until ``finish()``; ``mark`` notes the
    deploy's steps on the load's clock."""

    lab: Lab
    rate: float = RATE
    concurrency: int = CONCURRENCY
    marks: list[Mark] = field(default_factory=list)
    result: load.LoadResult | None = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def start(self) -> None:
        address, port = self.lab.front

        def run() -> None:
            self.result = load.run(
                address, port, lambda n: f"/p/about/?deploy={self.run_id}-{n}",
                requests=load.MAX_REQUESTS, concurrency=self.concurrency, rate=self.rate,
                seconds=load.MAX_SECONDS, cafile=self.lab.cafile, capture=CAPTURE,
                stop=self._stop)

        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, label: str) -> float:
        t = self.now()
        self.marks.append(Mark(t, label))
        return t

    def finish(self, tail: float = 1.5) -> load.LoadResult:
        """Keep the load ``tail`` s more, stop it, wait for the requests in flight."""
        time.sleep(tail)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.result is None:
            raise RuntimeError("the load run did not finish")
        return self.result


def version(sample: load.Sample) -> str:
    return sample.headers.get(VERSION_HEADER, "") or "-"


def phases(result: load.LoadResult, marks: list[Mark]) -> list[Phase]:
    """The run cut at each mark (a request in the phase in which it started)."""
    bounds = [*marks, Mark(float("inf"), "")]
    out = []
    for here, after in itertools.pairwise(bounds):
        inside = [s for s in result.samples if here.t <= s.start < after.t]
        if not inside and after.t - here.t < 0.05:     # a step straight after another
            continue
        ok = [s for s in inside if 200 <= s.status < 400]
        lat = [s.latency_ms for s in ok]
        out.append(Phase(here.label, here.t, min(after.t, result.seconds), len(inside),
                         len(inside) - len(ok), pct(lat, 50), pct(lat, 95),
                         dict(Counter(version(s) for s in ok)),
                         dict(Counter(s.served_by or "-" for s in ok))))
    return out


def phase_lines(rows: list[Phase]) -> list[str]:
    out = [f"  {'phase':<34} {'from':>6} {'reqs':>5} {'failed':>6} {'p50':>7} {'p95':>7}  "
           f"versions (servers)"]
    for p in rows:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(p.versions.items())) or "-"
        where = ", ".join(f"{k} {v}" for k, v in sorted(p.servers.items())) or "-"
        out.append(f"  {p.label:<34} {p.start:>5.1f}s {p.requests:>5} {p.failed:>6} "
                   f"{ms(p.p50_ms):>7} {ms(p.p95_ms):>7}  {versions} ({where})")
    return out


def timeline(result: load.LoadResult, step: float = 2.0) -> list[str]:
    """Versions answered per ``step`` s of the run (by when the request started)."""
    if not result.samples:
        return []
    end = max(s.start for s in result.samples)
    lines = []
    t = 0.0
    while t <= end:
        inside = [s for s in result.samples if t <= s.start < t + step]
        seen = Counter(version(s) if 200 <= s.status < 400 else "failed" for s in inside)
        lines.append(f"    {t:>5.1f}–{t + step:<5.1f}s  " +
                     "  ".join(f"{k} {'#' * (v // 2)} {v}" for k, v in sorted(seen.items())))
        t += step
    return lines


def failures(result: load.LoadResult) -> list[str]:
    return [f"    failed at {s.start:.2f} s: {s.error or f'HTTP {s.status}'}"
            for s in result.failed[:5]]
