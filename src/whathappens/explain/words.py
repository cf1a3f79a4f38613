"""Small wordings shared by the drivers' messages and the reports, so one fact is said one way.

A certificate's remaining validity is computed once (``net/certs.py``: whole days, truncated
toward zero) and worded here, for the chain table, the terminal line and the verification
reason alike.
"""

from __future__ import annotations


def plural(n: int, word: str) -> str:
    """``1 day``, ``30 days``."""
    return f"{n:,} {word}" if abs(n) == 1 else f"{n:,} {word}s"


def ago(days: int) -> str:
    """``today``, ``1 day ago``, ``30 days ago``: whole days since a date in the past."""
    return "today" if days == 0 else f"{plural(days, 'day')} ago"


def validity(days_left: int | None) -> str:
    """``89 days left``, ``expires today``, ``expired today``, ``expired 30 days ago``.

    ``days_left`` is whole days from now to notAfter, truncated toward zero (so a certificate
    that expired 30.5 days ago has -30 and is "expired 30 days ago", never "-31 days")."""
    if days_left is None:
        return "validity unknown"
    if days_left > 0:
        return f"{plural(days_left, 'day')} left"
    if days_left == 0:
        return "less than a day from its end date (expires or expired today)"
    return f"expired {ago(-days_left)}"
