"""How every renderer writes a number: one place, so the terminal, the HTML report, the live
page and the HAR comments say "12.7 ms" and "1,359 B" the same way.

Times are milliseconds on the journey's monotonic clock. Below 10 ms two decimals are kept
(loopback steps take fractions of a millisecond), above it one is enough. The kernel's RTT
estimates are microseconds (TCP_INFO), so :func:`precise_ms` keeps three decimals for them.
"""

from __future__ import annotations

DASH = "—"


def ms(value: float | None) -> str:
    """``12.7 ms``, ``0.23 ms``; a dash when the step has no time."""
    if value is None:
        return DASH
    return f"{value:,.1f} ms" if value >= 10 else f"{value:,.2f} ms"


def precise_ms(value: float | None) -> str:
    """``0.027 ms``: for the kernel's RTT and a handshake's samples, below 1 ms the third
    decimal is the measurement; from 1 ms on, as :func:`ms`."""
    if value is None:
        return DASH
    return f"{value:.3f} ms" if value < 1 else ms(value)


def three(value: float | None) -> str:
    """``0.027`` — a time with three decimals and no unit (a column already says ms)."""
    return DASH if value is None else f"{value:.3f}"


def at(value: float | None) -> str:
    """``88.50`` — where on the timeline (ms since t0) something happened."""
    return DASH if value is None else f"{value:.2f}"


def size(n: int | None) -> str:
    """``1,359 B``, ``12.3 KiB``; a dash when nothing was counted."""
    if n is None:
        return DASH
    return f"{n:,} B" if n < 10_000 else f"{n / 1024:,.1f} KiB"


def plural(n: int, word: str) -> str:
    """``1 round trip``, ``2 round trips``."""
    return f"{n} {word}" if abs(n) == 1 else f"{n} {word}s"


def bracket(address: str) -> str:
    """An IPv6 address in brackets, as it is written before a port (RFC 3986 §3.2.2)."""
    return f"[{address}]" if ":" in address else address
