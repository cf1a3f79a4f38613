"""``lab experiment retry-storm``: many clients retrying a dependency that is coming back,
with exponential backoff and no jitter, then with full jitter.

The dependency is a real HTTP server the experiment starts on loopback: it refuses every
request (503) until it "recovers" ``RECOVER_AT`` seconds in, then serves at most
``CAPACITY`` requests a second (a token bucket, burst ``BURST``) and refuses the rest with 503
— a stand-in, said so in the report, for a partner API or a database coming back with little
spare capacity. It stamps every request's arrival (time.monotonic, when its request line was
read), which is what the plot shows: arrivals per ``BUCKET`` at the dependency.

The clients are ``CLIENTS`` threads of this process (http.client, one connection per
attempt) that all make their first request at the same moment, as after a shared failure.
Each retries a refusal after ``min(CAP, BASE × 2^n)`` seconds (no jitter) or a uniformly
random time in ``[0, min(CAP, BASE × 2^n)]`` (full jitter), up to ``MAX_ATTEMPTS`` tries.
The backoff policy is AWS's "Exponential Backoff And Jitter" (Marc Brooker, 2015).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from whathappens.lab.exercises import load

CLIENTS = 40
RECOVER_AT = 1.0           # seconds: the dependency refuses everything before this
CAPACITY = 20.0            # requests per second it can serve once back
BURST = 5                  # … of which this many at once
BASE = 0.1                 # seconds: the first retry's backoff
CAP = 2.0                  # seconds: the largest backoff
MAX_ATTEMPTS = 12
BUCKET = 0.05              # seconds per bar of the arrivals plot
TIMEOUT = 5.0


@dataclass
class Dependency:
    """What the dependency saw: the arrival time of every request, and its answers."""

    t0: float
    arrivals: list[float] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    tokens: float = BURST
    last: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, now: float) -> int:
        """The status for a request arriving ``now`` seconds in."""
        with self.lock:
            self.arrivals.append(now)
            status = 503
            if now >= RECOVER_AT:
                since = max(self.last, RECOVER_AT)
                self.tokens = min(BURST, self.tokens + (now - since) * CAPACITY)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    status = 200
            self.answers.append(status)
            return status


class Server:
    """The dependency: an asyncio HTTP/1.1 server in a thread of its own (asyncio accepts
    every waiting connection in one turn of its loop, so a burst of clients is stamped as
    the burst it is, not smeared by a thread per connection)."""

    def __init__(self, dep: Dependency) -> None:
        self.dep = dep
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            status = self.dep.admit(time.monotonic() - self.dep.t0)
            body = b"ok" if status == 200 else b"busy"
            writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Busy'}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                         .encode() + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError):
            pass
        finally:
            writer.close()

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=256)
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()

    def __enter__(self) -> Server:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        if not self.ready.wait(5):
            raise OSError("the stand-in dependency did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def backoff(attempt: int, jitter: bool, rng: random.Random) -> float:
    """The wait before retry ``attempt`` (1 for the first retry)."""
    ceiling = min(CAP, BASE * 2 ** (attempt - 1))
    return rng.uniform(0, ceiling) if jitter else ceiling


def _client(port: int, jitter: bool, start: threading.Event, t0: float,
            out: list[load.Sample], done: list[float], seed: int) -> None:
    rng = random.Random(seed)
    start.wait()
    for attempt in range(MAX_ATTEMPTS):
        began = time.monotonic()
        status, error = 0, ""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        out.append(load.Sample(began - t0, (time.monotonic() - began) * 1000, status,
                               "dependency", error))
        if status == 200:
            done.append(time.monotonic() - t0)
            return
        time.sleep(backoff(attempt + 1, jitter, rng))


def run(jitter: bool, seed: int = 1) -> tuple[load.LoadResult, Dependency, list[float]]:
    """One setting: a fresh dependency, CLIENTS clients started at once."""
    dep = Dependency(t0=0.0)
    samples: list[load.Sample] = []
    done: list[float] = []
    start = threading.Event()
    with Server(dep) as server:
        t0 = time.monotonic()
        dep.t0 = t0
        threads = [threading.Thread(target=_client, args=(server.port, jitter, start, t0,
                                                           samples, done, seed * 1000 + k),
                                    daemon=True)
                   for k in range(CLIENTS)]
        for t in threads:
            t.start()
        start.set()
        for t in threads:
            t.join(MAX_ATTEMPTS * (CAP + TIMEOUT))
    return load.LoadResult(samples, time.monotonic() - t0), dep, done


def buckets(arrivals: list[float], width: float = BUCKET) -> list[tuple[float, float]]:
    """(bucket start, arrivals in it), every bucket from 0 to the last arrival."""
    counts = Counter(int(a // width) for a in arrivals)
    last = max(counts, default=0)
    return [(round(i * width, 3), float(counts.get(i, 0))) for i in range(last + 1)]


def facts(dep: Dependency, done: list[float]) -> dict[str, Any]:
    after = [a for a in dep.arrivals if a >= RECOVER_AT]
    per = buckets(dep.arrivals)
    peak_after = max((n for t, n in per if t >= RECOVER_AT), default=0.0)
    return {"arrivals": len(dep.arrivals), "arrivals_after_recovery": len(after),
            "refused": sum(1 for s in dep.answers if s != 200),
            "peak_per_bucket": max((n for _, n in per), default=0.0),
            "peak_after_recovery": peak_after,
            "served": sum(1 for s in dep.answers if s == 200),
            "clients_done": len(done),
            "all_done_s": round(max(done), 3) if len(done) == CLIENTS else None,
            "median_done_s": round(sorted(done)[len(done) // 2], 3) if done else None,
            "buckets": per}
