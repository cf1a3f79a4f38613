"""The journey in one line: how it ended, what it spoke, how long it took and where the time
went (each step's time summed over the requests, and the step that took longest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

STEPS = ("dns", "tcp", "tls", "http")


@dataclass(frozen=True)
class Failure:
    step: str
    message: str
    exit_code: int


@dataclass(frozen=True)
class Summary:
    outcome: Literal["ok", "failed"]
    status: int | None
    reason: str
    http_version: str | None
    tls_version: str | None
    requests: int
    redirects: int
    total_ms: float | None
    failure: Failure | None
    time_by_step: dict[str, float] = field(default_factory=dict)
    slowest_step: str | None = None


def summarize(journey: dict[str, Any]) -> Summary:
    facts = journey.get("facts") or {}
    s = facts.get("summary") or {}
    by_step: dict[str, float] = {}
    for leg in (x for x in journey.get("spans") or [] if x.get("name") == "leg"):
        for span in leg.get("children") or []:
            name = str(span.get("name"))
            if name in STEPS and span.get("duration_ms") is not None:
                by_step[name] = round(by_step.get(name, 0.0) + float(span["duration_ms"]), 3)
    err = journey.get("error")
    failure = None if not err else Failure(str(err.get("step") or ""),
                                           str(err.get("message") or ""),
                                           int(err.get("exit_code") or 0))
    total = journey.get("total_ms")
    return Summary(
        outcome="ok" if failure is None else "failed",
        status=int(s["status"]) if s.get("status") else None,
        reason=str(s.get("reason") or ""),
        http_version=str(s["http_version"]) if s.get("http_version") else None,
        tls_version=str(s["tls_version"]) if s.get("tls_version") else None,
        requests=int(s.get("legs") or 0),
        redirects=int(facts.get("redirects") or 0),
        total_ms=None if total is None else float(total),
        failure=failure,
        time_by_step=by_step,
        slowest_step=max(by_step, key=lambda k: by_step[k]) if by_step else None)
