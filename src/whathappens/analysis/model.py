"""What the analyses conclude, as plain dataclasses: the ``analysis`` part of the journey
document (analysis/document.py builds it; contract/codec.py writes it as JSON and generates
its schema, like every span's facts).

Nothing here imports the contract's document, so the contract can carry :class:`Analysis`
(``JourneyDoc.analysis``) without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from whathappens.analysis.caching_model import CachingAnalysis
from whathappens.analysis.security_model import SecurityAnalysis, WhoAnswered

Outcome = Literal["within", "over", "unknown"]
Step = Literal["dns", "tcp", "tls", "quic", "ttfb"]  # ttfb: the http.wait phase


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
    rtt_ms: float | None = field(metadata={"doc": "the RTT the limit is priced in: the "
                                                  "kernel's (TCP_INFO), or QUIC's own "
                                                  "estimate for quic"})
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
    first_ttl: int | None = field(default=None,
                                  metadata={"doc": "the TTL of the first A answer"})
    ttl: int | None = field(default=None, metadata={"doc": "the TTL of this, the repeat"})
    original_ttl: int | None = field(default=None, metadata={
        "doc": "the zone's own TTL for the record, from the iterative walk's authoritative "
               "answer in the same DNS step; null when the walk did not run"})
    slack_s: int = field(default=1, metadata={
        "doc": "how far below the original a fresh answer's TTL can be (whole-second clocks "
               "and the question's own time): only a TTL lower than this proves a cache"})
    ttl_proves: bool = field(default=False, metadata={
        "doc": "this answer's TTL is below the original by more than slack_s: it was "
               "served from a cache, counting down (RFC 1035 §7.4, RFC 2181 §8)"})
    first_cached: bool | None = field(default=None, metadata={
        "doc": "the first answer's TTL proves the resolver had the name before we asked; "
               "null without the original TTL"})
    cached: bool = field(default=False, metadata={
        "doc": "the verdict: served from the resolver's cache (ttl_proves or faster)"})


# ------------------------------------------------------------------ the browser phase
Metric = Literal["fcp", "lcp", "cls"]
VitalOutcome = Literal["good", "needs_improvement", "poor", "unknown"]


@dataclass(frozen=True)
class VitalVerdict:
    """A Core Web Vital against its published thresholds (analysis/browser.py): guidance on
    one page load in one lab browser, not a field measurement of real visitors."""

    metric: Metric
    guide: str = field(metadata={"doc": "the 'good' threshold in words: < 1.8 s, < 0.1"})
    value: float | None = field(
        metadata={"doc": "ms since the navigation started (FCP, LCP), or the CLS score"})
    good: float = field(metadata={"doc": "below this: good"})
    poor: float = field(metadata={"doc": "above this: poor; between: needs improvement"})
    outcome: VitalOutcome
    at_ms: float | None = field(
        default=None, metadata={"doc": "where on the journey's clock (FCP, LCP)"})
    span_id: int | None = field(default=None, metadata={"doc": "the browser.mark span"})


@dataclass(frozen=True)
class ChainLink:
    """One resource on a critical chain, on the journey's clock."""

    span_id: int
    url: str
    resource_type: str
    render_blocking: str | None
    priority: str | None
    requested_ms: float = field(metadata={"doc": "the request's start (discovered)"})
    sent_ms: float = field(metadata={"doc": "after Chromium's queue: the request went out"})
    loaded_ms: float = field(metadata={"doc": "its last byte"})
    took_ms: float


@dataclass(frozen=True)
class FcpChain:
    """What held First Contentful Paint back: the render-blocking resources (stylesheets in
    the head, parser-blocking scripts) that finished before it, the last one the bottleneck;
    then the rendering work from that moment to the paint."""

    fcp_ms: float = field(metadata={"doc": "on the journey's clock"})
    navigation_ms: float
    blocking: list[ChainLink] = field(metadata={"doc": "in the order they finished"})
    bottleneck: ChainLink | None
    rendering_ms: float | None = field(
        metadata={"doc": "from the bottleneck's last byte (or the document's) to FCP"})


@dataclass(frozen=True)
class LcpChain:
    """The Largest Contentful Paint element's own chain: its resource discovered, requested,
    loaded, then painted (= LCP). No resource for a text element."""

    element: str | None
    url: str | None
    navigation_ms: float
    resource: ChainLink | None
    painted_ms: float = field(metadata={"doc": "LCP, on the journey's clock"})
    render_delay_ms: float | None = field(
        metadata={"doc": "from the resource's last byte to the paint"})
    decoded_ms: float | None = field(
        default=None, metadata={"doc": "of that delay, the image's decode (Decode Image) "
                                       "between its last byte and the paint, when the trace "
                                       "ties one to the image"})


@dataclass(frozen=True)
class BrowserAnalysis:
    """The browser phase judged (analysis/browser.py)."""

    span_id: int
    outcome: str = field(metadata={"doc": "loaded | failed | skipped"})
    navigation_ms: float | None = field(
        metadata={"doc": "the navigation's start on the journey's clock (the document's "
                         "request); FCP and LCP are counted from it"})
    vitals: list[VitalVerdict]
    fcp_chain: FcpChain | None
    lcp_chain: LcpChain | None


# -------------------------------------------------------- what good timing looks like
@dataclass(frozen=True)
class GuideRow:
    """A rule of thumb beside this journey's own figure (analysis/timing_guide.py). The rule
    is guidance from experience and published targets, never a measurement; the figure is
    measured (or, for CLS, a score)."""

    metric: str = field(metadata={"doc": "dns | tcp | tls | quic | ttfb | navigation_ttfb | fcp | "
                                         "lcp | cls"})
    leg: int | None = field(metadata={"doc": "the request's index, from 0; null for the "
                                             "journey or the page"})
    span_id: int | None
    rule: str = field(metadata={"doc": "the rule of thumb, in words"})
    basis: str = field(metadata={"doc": "where the rule comes from"})
    value: float | None = field(metadata={"doc": "this journey's figure: ms, or the CLS score"})
    limit: float | None = field(
        metadata={"doc": "the rule's mark for this journey (ms, or the score): a fixed "
                         "limit, or round trips priced with the kernel's RTT"})
    outcome: str = field(metadata={"doc": "within | over | unknown (network steps); good | "
                                          "needs_improvement | poor | unknown (the page)"})
    note: str = field(metadata={"doc": "what this figure was: from a cache or cold, how "
                                       "many round trips, what it counts from"})


@dataclass(frozen=True)
class TimingGuide:
    """What good timing looks like, for this journey: one row per judged step and, after a
    browser phase, per Core Web Vital."""

    rows: list[GuideRow]


@dataclass(frozen=True)
class Analysis:
    """Analyses of the journey (whathappens.analysis): pure functions of the rest of the
    document, the verdicts every renderer shows."""

    summary: AnalysisSummary
    budgets: list[Verdict]
    actors: list[Actor]
    resolver_cache: list[CacheCheck]
    browser: BrowserAnalysis | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "the browser phase: Core Web Vitals and critical "
                                       "chains (absent without one)"})
    security: SecurityAnalysis | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "the final response's security headers and the "
                                       "journey's cookies, graded with MDN HTTP "
                                       "Observatory's scoring (absent without a response)"})
    who_answered: list[WhoAnswered] = field(
        default_factory=list,
        metadata={"doc": "who answered (CDN, cache, load balancer, proxy, app server, "
                         "framework), inferred from the journey's evidence"})
    caching: CachingAnalysis | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "HTTP caching (RFC 9111) of each response, and the "
                                       "revalidation made after the journey "
                                       "(analysis/caching.py; absent without a response)"})
    timing_guide: TimingGuide | None = field(
        default=None, metadata={"omit_default": True,
                                "doc": "rules of thumb beside this journey's figures"})
