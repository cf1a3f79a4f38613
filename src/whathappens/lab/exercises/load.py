"""A bounded load run against the lab: N requests, C at a time, a time limit, loopback only.

Used by drills (how many requests fail while a tier is down) and experiments (latency
percentiles under each setting). Plain threads with ``http.client``: the load is modest by
design (the machine has 2 cores and the lab runs on them too), and the target must be on
127.0.0.0/8 — anything else is refused.
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from whathappens.lab.exercises.https import HTTPSTo
from whathappens.lab.topology import SITE

MAX_REQUESTS = 5000
MAX_SECONDS = 120.0


@dataclass
class Sample:
    start: float          # seconds since the run began
    latency_ms: float
    status: int           # 0 when the request failed before a status arrived
    served_by: str
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)   # the ones asked for (capture)


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 400]

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not 200 <= s.status < 400]

    def percentile(self, p: float) -> float | None:
        lat = sorted(s.latency_ms for s in self.ok)
        if not lat:
            return None
        k = min(len(lat) - 1, max(0, round(p / 100 * (len(lat) - 1))))
        return lat[k]

    def summary(self) -> dict[str, Any]:
        ok = [s.latency_ms for s in self.ok]
        return {
            "requests": len(self.samples),
            "failed": len(self.failed),
            "statuses": dict(Counter(s.status for s in self.samples)),
            "served_by": dict(Counter(s.served_by for s in self.ok)),
            "p50_ms": self.percentile(50), "p95_ms": self.percentile(95),
            "max_ms": max(ok) if ok else None,
            "mean_ms": statistics.fmean(ok) if ok else None,
            "seconds": round(self.seconds, 3),
            "rps": round(len(self.samples) / self.seconds, 1) if self.seconds else None,
        }


def run(address: str, port: int, path: str | Callable[[int], str], *, requests: int = 100,
        concurrency: int = 4, seconds: float = 30.0, cafile: str | None = None,
        host: str = SITE, tls: bool = True,
        headers: dict[str, str] | None = None, rate: float | None = None,
        sources: tuple[str, ...] = (), capture: tuple[str, ...] = (),
        stop: threading.Event | None = None) -> LoadResult:
    """``requests`` GETs of ``path`` (stops early at ``seconds``), ``concurrency`` at once.

    ``path`` may be a function of the request's number (0, 1, …), e.g. a query string of
    its own per request, so that no cache on the way answers for the origin. ``rate``: at
    most that many requests start per second (request n not before n / rate s), so a run
    lasts long enough to watch something happen during it, at a pace the lab's per-client
    rate limit (50 r/s per app node) accepts. ``sources``: worker k connects from
    ``sources[k % len(sources)]``, so C workers are C clients to that limit (how a hot page
    is really hit: by many clients at once). ``capture``: response headers kept per sample.
    ``stop``: once set, no further request starts (a run as long as what it watches).
    """
    for where in (address, *sources):
        if not ipaddress.ip_address(where).is_loopback:
            raise ValueError(f"load runs only between loopback addresses, not {where}")
    seconds = min(seconds, MAX_SECONDS)
    tickets = _Tickets(min(requests, MAX_REQUESTS), rate, time.monotonic(), seconds)
    tickets.stop = stop
    tls_context = ssl.create_default_context(cafile=cafile) if tls else None
    result = LoadResult()

    def worker(k: int) -> None:
        conn: http.client.HTTPConnection | None = None
        source = (sources[k % len(sources)], 0) if sources else None
        while (ticket := tickets.next()) is not None:
            if conn is None:
                conn = (HTTPSTo(address, port, tls_context, 10, host=host,
                                source_address=source)
                        if tls_context is not None else
                        http.client.HTTPConnection(address, port, timeout=10,
                                                   source_address=source))
            target = path(ticket) if callable(path) else path
            sample, keep = _get(conn, target, {"Host": host, **(headers or {})}, capture,
                                tickets.t0)
            if not keep:
                conn.close()
                conn = None
            with tickets.lock:
                result.samples.append(sample)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True)
               for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 15)
    result.seconds = time.monotonic() - tickets.t0
    result.samples.sort(key=lambda s: s.start)
    return result


class _Tickets:
    """Request numbers for the workers: at most ``requests``, none after the deadline, and
    with a ``rate``, request n not before n / rate seconds into the run."""

    def __init__(self, requests: int, rate: float | None, t0: float, seconds: float) -> None:
        self.requests, self.rate, self.t0 = requests, rate, t0
        self.deadline = t0 + seconds
        self.issued = 0
        self.lock = threading.Lock()
        self.stop: threading.Event | None = None

    def next(self) -> int | None:
        with self.lock:
            if self.issued >= self.requests or time.monotonic() > self.deadline or \
                    (self.stop is not None and self.stop.is_set()):
                return None
            self.issued += 1
            ticket = self.issued - 1
        if self.rate:
            wait = min(self.t0 + ticket / self.rate, self.deadline) - time.monotonic()
            if wait > 0:
                if self.stop is not None:
                    self.stop.wait(wait)
                else:
                    time.sleep(wait)
        return ticket


def _get(conn: http.client.HTTPConnection, target: str, headers: dict[str, str],
         capture: tuple[str, ...], t0: float) -> tuple[Sample, bool]:
    """One GET on ``conn``: its sample, and whether the connection can be used again."""
    start = time.monotonic()
    try:
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        resp.read(1 << 20)
        sample = Sample(start - t0, (time.monotonic() - start) * 1000, resp.status,
                        resp.getheader("x-backend-server") or
                        resp.getheader("x-served-by") or "",
                        headers={h: resp.getheader(h) or "" for h in capture})
        return sample, resp.getheader("connection", "").lower() != "close"
    except (OSError, http.client.HTTPException) as exc:
        return Sample(start - t0, (time.monotonic() - start) * 1000, 0, "",
                      f"{type(exc).__name__}: {exc}"), False
