"""The journey in one line: how it ended, what it spoke, how long it took and where the time
went (each step's time summed over the requests, and the step that took longest)."""

from __future__ import annotations

from whathappens.analysis.model import AnalysisSummary, Failure
from whathappens.contract.document import JourneyDoc

STEPS = ("dns", "tcp", "tls", "quic", "http")


def summarize(journey: JourneyDoc) -> AnalysisSummary:
    s = journey.facts.summary
    by_step: dict[str, float] = {}
    for leg in (x for x in journey.spans if x.name == "leg"):
        for span in leg.children:
            if span.name in STEPS and span.duration_ms is not None:
                by_step[span.name] = round(by_step.get(span.name, 0.0) + span.duration_ms, 3)
    err = journey.error
    failure = None if err is None else Failure(err.step, err.message, err.exit_code)
    return AnalysisSummary(
        outcome="ok" if failure is None else "failed",
        status=s.status if s is not None and s.status else None,
        reason=(s.reason if s is not None else None) or "",
        http_version=(s.http_version if s is not None else None) or None,
        tls_version=(s.tls_version if s is not None else None) or None,
        requests=s.legs if s is not None else 0,
        redirects=journey.facts.redirects or 0,
        total_ms=journey.total_ms,
        failure=failure,
        time_by_step=by_step,
        slowest_step=max(by_step, key=lambda k: by_step[k]) if by_step else None)
