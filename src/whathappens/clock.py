"""The journey's clock.

Every timestamp in a journey is nanoseconds since the journey's t0 on one monotonic clock
(``time.perf_counter_ns``, CLOCK_MONOTONIC on Linux). It never jumps with wall-clock changes,
so durations are honest; the wall time of t0 is recorded once so the timeline can be placed
in the world (and merged with server logs on the same machine).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

CLOCK_NAME = "monotonic (time.perf_counter_ns)"


@dataclass(frozen=True)
class Clock:
    """Reads the monotonic clock relative to a fixed origin."""

    origin_ns: int = field(default_factory=time.perf_counter_ns)
    wall_origin_ns: int = field(default_factory=time.time_ns)

    def now(self) -> int:
        """Nanoseconds since t0."""
        return time.perf_counter_ns() - self.origin_ns

    def monotonic_of(self, t_ns: int) -> int:
        """The raw monotonic value of a journey timestamp."""
        return self.origin_ns + t_ns


def ms(ns: int | None) -> float | None:
    """Nanoseconds to milliseconds, keeping microsecond precision."""
    return None if ns is None else round(ns / 1e6, 3)
