"""What one journey may spend, whatever its peers do: time, CPU, memory and event counts.

Theory of operation
-------------------
A deadline kept by ``asyncio.timeout`` only fires when the event loop gets a turn. A read that
finds data already in the kernel returns without one (that is how the HTTP steps avoid
counting an event-loop trip as network time), so a peer that keeps data always available
could keep the loop from ever running the timer. Therefore every loop that consumes peer data
calls ``await budget.turn()`` once per read. ``turn`` gives the event loop a turn at least
every ``YIELD_EVERY`` reads or ``YIELD_NS`` of time, and checks, itself, the journey's
deadline, the CPU time the journey's thread has used and the process's peak memory. A pure
loop that cannot await (a planner) calls ``budget.check()``.

Peer events that cost us work but carry little data (HTTP/2 frames, control frames among
them, TLS records, HTTP/1.1 chunks, 1xx responses, DNS queries) are counted with
``budget.count(kind)``: each kind has a total for the journey and all of them together a rate
per second. A limit that runs out raises ``LimitExceeded`` in the step that was running (the
innermost open span), with the numbers, so the journey up to there is still reported.

The budget of the running journey is a context variable, so every task the journey starts
sees it; code that runs outside a journey (a test that drives one layer) gets a default
budget with no deadline, which still paces.
"""

from __future__ import annotations

import asyncio
import contextvars
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from whathappens.contract.document import Resources
from whathappens.errors import JourneyTimeout, LimitExceeded

if TYPE_CHECKING:
    from whathappens.journey import Journey

YIELD_EVERY = 16           # reads between two event-loop turns, at most
YIELD_NS = 2_000_000       # ...or this much time (2 ms), whichever comes first
CHECK_NS = 20_000_000      # CPU and memory are read at most every 20 ms
RATE_WINDOW_NS = 1_000_000_000

# What each counted kind is called in a sentence.
EVENT_WORDS = {
    "h2.frame": "HTTP/2 frames",
    "h2.control": "HTTP/2 control frames (SETTINGS, PING, WINDOW_UPDATE, PRIORITY, empty "
                  "DATA, unknown types, resets of other streams)",
    "tls.record": "TLS records",
    "h1.chunk": "chunks of a chunked body",
    "http.1xx": "informational (1xx) responses",
    "dns.query": "DNS queries",
}


@dataclass
class ResourceLimits:
    """Every budget of a journey, with its default. ``None`` turns a limit off."""

    max_cpu: float | None = 5.0                 # seconds of CPU on the journey's thread
    max_memory: int | None = 512 * 1024 * 1024  # growth of the process's peak RSS, bytes
    max_events: dict[str, int] = field(default_factory=lambda: {
        "h2.frame": 50_000,
        "h2.control": 1_000,
        "tls.record": 50_000,
        "h1.chunk": 50_000,
        "http.1xx": 50,
        "dns.query": 200,
    })
    max_event_rate: int | None = 20_000         # all counted kinds together, per second


def _peak_rss() -> int:
    """The process's peak resident memory, bytes.

    VmHWM from /proc, not getrusage's ru_maxrss: ru_maxrss also counts the memory of the
    parent at the fork that started us (a process spawned by a 350 MiB test runner reports
    350 MiB before it does anything); VmHWM belongs to our own address space since exec.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


class Budget:
    def __init__(self, limits: ResourceLimits | None = None, *,
                 journey: Journey | None = None, max_time: float | None = None) -> None:
        self.limits = limits or ResourceLimits()
        self.journey = journey
        self.max_time = max_time
        now = time.perf_counter_ns()
        self.deadline_ns = None if max_time is None else now + int(max_time * 1e9)
        self.cpu0 = time.thread_time()
        self.rss0 = _peak_rss()
        self.counts: dict[str, int] = {}
        self.reads = 0
        self.yields = 0
        self._since_yield = 0
        self._last_yield_ns = now
        self._last_check_ns = now
        self._window_start_ns = now
        self._window_events = 0
        # What the running step is waiting for, in words, asked only when time runs out
        # (a bound method such as the HTTP layer's "more of the body (57 of 1760 bytes)").
        self.waiting_for: Callable[[], str] | None = None

    # ------------------------------------------------------------ pacing
    async def turn(self) -> None:
        """Once per read of peer data: pace, and check every limit."""
        self.reads += 1
        self._since_yield += 1
        now = time.perf_counter_ns()
        if self._since_yield >= YIELD_EVERY or now - self._last_yield_ns >= YIELD_NS:
            self._check(now)
            self._since_yield = 0
            self.yields += 1
            # A turn of the event loop: timers (asyncio.timeout, --max-time) may fire here.
            await asyncio.sleep(0)
            self._last_yield_ns = time.perf_counter_ns()

    def check(self) -> None:
        """The checks of ``turn`` without awaiting, for loops that cannot await."""
        self._check(time.perf_counter_ns())

    def _check(self, now: int) -> None:
        if self.deadline_ns is not None and now > self.deadline_ns:
            raise self.timeout_error()
        if now - self._last_check_ns < CHECK_NS:
            return
        self._last_check_ns = now
        limits = self.limits
        if limits.max_cpu is not None:
            cpu = self.cpu_seconds()
            if cpu > limits.max_cpu:
                self._exceeded("limit.cpu", f"kept us busy for {cpu:.1f} s of CPU, over the "
                               f"limit of {limits.max_cpu:g} s (--max-cpu), without the "
                               f"journey moving on{self._counts_words()}")
        if limits.max_memory is not None:
            grown = _peak_rss() - self.rss0
            if grown > limits.max_memory:
                self._exceeded("limit.memory", f"made us hold {grown / 2**20:.0f} MiB more "
                               f"memory, over the limit of {limits.max_memory / 2**20:.0f} "
                               f"MiB (--max-memory){self._counts_words()}")

    def timeout_error(self) -> JourneyTimeout:
        """--max-time ran out: say where the journey was and what it was waiting for."""
        where = ""
        step = _running_step(self.journey)
        if step != "journey":
            where = f", during the {step.upper() if step != 'redirect' else step} step"
            try:
                waiting = self.waiting_for() if self.waiting_for is not None else ""
            except Exception:  # words for a message must never cost the report
                waiting = ""
            if waiting:
                where += f" while waiting for {waiting}"
        limit = f"{self.max_time:g} s" if self.max_time is not None else "its time"
        return JourneyTimeout("journey.timeout", f"the whole journey took longer than "
                              f"--max-time {limit} and was stopped{where}")

    # ------------------------------------------------------------ counting
    def count(self, kind: str, n: int = 1) -> None:
        """Count ``n`` peer events of ``kind``; over a total or the rate, LimitExceeded."""
        total = self.counts.get(kind, 0) + n
        self.counts[kind] = total
        cap = self.limits.max_events.get(kind)
        words = EVENT_WORDS.get(kind, kind)
        if cap is not None and total > cap:
            verb = "made us send" if kind == "dns.query" else "sent"  # queries are ours
            self._exceeded(f"limit.{kind}", f"{verb} more than {cap:,} {words} in this "
                           f"journey, the limit (--max-events {kind}={cap}); reading "
                           "stopped there")
        rate = self.limits.max_event_rate
        if rate is None:
            return
        now = time.perf_counter_ns()
        if now - self._window_start_ns >= RATE_WINDOW_NS:
            self._window_start_ns = now
            self._window_events = 0
        self._window_events += n
        if self._window_events > rate:
            self._exceeded("limit.rate", f"sent more than {rate:,} small protocol events "
                           f"within one second (--max-event-rate), a flood rather than a "
                           f"transfer{self._counts_words()}")

    # ------------------------------------------------------------ reporting
    def cpu_seconds(self) -> float:
        return time.thread_time() - self.cpu0

    def report(self) -> Resources:
        """What the journey spent, for ``facts.resources``."""
        return Resources(
            cpu_ms=round(self.cpu_seconds() * 1000, 1),
            cpu_clock="CPU time of the thread that ran the journey (time.thread_time); "
                      "serve gives each journey a thread of its own",
            peak_rss_kib=_peak_rss() // 1024,
            peak_rss_growth_kib=max(0, (_peak_rss() - self.rss0) // 1024),
            reads=self.reads,
            event_loop_turns=self.yields,
            events=dict(self.counts),
        )

    def _counts_words(self) -> str:
        if not self.counts:
            return ""
        parts = [f"{n:,} {EVENT_WORDS.get(k, k).split(' (')[0]}" for k, n in self.counts.items()]
        return "; so far: " + ", ".join(parts)

    def _exceeded(self, code: str, what: str) -> None:
        step = _running_step(self.journey)
        who = {"dns": "the name servers", "tcp": "the server", "tls": "the server",
               "http": "the server"}.get(step, "the peer")
        raise LimitExceeded(code, f"stopped: {who} {what}.", step=step,
                            detail=f"counts {self.counts}")


def _running_step(journey: Journey | None) -> str:
    """The step of the innermost span still open (or just interrupted): where the limit ran
    out."""
    if journey is None:
        return "journey"
    step = "journey"
    spans = journey.spans
    while True:
        # Open, or cut short by the cancellation that a timeout sends through the journey.
        open_spans = [s for s in spans if s.end_ns is None or s.facts.interrupted]
        if not open_spans:
            return step
        span = open_spans[-1]
        if span.step in ("url", "dns", "tcp", "tls", "quic", "http", "redirect"):
            step = span.step
        spans = span.children


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "whathappens_budget", default=None)


# Outside a journey (a test driving one layer, a tool of the lab): pacing only, no limits.
_PACING_ONLY = Budget(ResourceLimits(max_cpu=None, max_memory=None, max_events={},
                                     max_event_rate=None))


def current() -> Budget:
    """The running journey's budget; outside a journey, one that only paces."""
    budget = _current.get()
    return _PACING_ONLY if budget is None else budget


def install(budget: Budget) -> contextvars.Token[Budget | None]:
    """Make ``budget`` the current one (for this task and the tasks it starts)."""
    return _current.set(budget)


def uninstall(token: contextvars.Token[Budget | None]) -> None:
    _current.reset(token)
