"""What the analyses conclude, as plain dataclasses: the ``analysis`` part of the journey
document (analysis/document.py builds it; contract/codec.py writes it as JSON and generates
its schema, like every span's facts).

Nothing here imports the contract's document, so the contract can carry :class:`Analysis`
(``JourneyDoc.analysis``) without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["within", "over", "unknown"]
Step = Literal["dns", "tcp", "tls", "ttfb"]  # ttfb: the http.wait phase


@dataclass(frozen=True)
class Failure:
    step: str
    message: str
    exit_code: int


@dataclass(frozen=True)
class AnalysisSummary:
    """How the journey ended, what it spoke, and where the time went."""

    outcome: Literal["ok", "failed"]
    status: int | None
    reason: str
    http_version: str | None
    tls_version: str | None
    requests: int
    redirects: int
    total_ms: float | None
    failure: Failure | None
    time_by_step: dict[str, float] = field(
        default_factory=dict,
        metadata={"doc": "each step's time (dns, tcp, tls, http), summed over the requests"})
    slowest_step: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A step against its rule of thumb (analysis/budgets.py): within when it ended by its
    start + limit_ms, over when after, unknown when the rule needs a kernel RTT that was not
    measured. Rules of thumb, not measurements."""

    span_id: int
    leg: int = field(metadata={"doc": "the request's index, from 0"})
    step: Step
    guide: str = field(metadata={"doc": "the rule in words: < 50 ms, ≈ 1 RTT…"})
    took_ms: float | None
    limit_ms: float | None = field(metadata={"doc": "how long the rule allows, here"})
    mark_ms: float | None = field(
        metadata={"doc": "where on the timeline a healthy step would have ended"})
    rtt_ms: float | None = field(metadata={"doc": "the kernel's RTT the limit is priced in"})
    rtt_multiple: float | None = field(metadata={"doc": "took / RTT"})
    outcome: Outcome


@dataclass(frozen=True)
class Actor:
    """Someone the journey met (analysis/actors.py)."""

    role: str = field(metadata={"doc": "you | resolver | root | TLD | authoritative | server "
                                       "| a lab tier (edge, lb, app…)"})
    name: str
    address: str


@dataclass(frozen=True)
class CacheCheck:
    """The resolver view's repeated question (analysis/resolver_cache.py)."""

    span_id: int
    took_ms: float
    first_ms: float = field(metadata={"doc": "the first A question's time"})
    faster: bool = field(metadata={"doc": "took < first / 2: served from the resolver's cache"})


@dataclass(frozen=True)
class Analysis:
    """Analyses of the journey (whathappens.analysis): pure functions of the rest of the
    document, the verdicts every renderer shows."""

    summary: AnalysisSummary
    budgets: list[Verdict]
    actors: list[Actor]
    resolver_cache: list[CacheCheck]
