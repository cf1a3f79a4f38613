"""What the caching analysis concludes (analysis/caching.py), as plain dataclasses: the
``analysis.caching`` part of the journey document.

Kept apart from analysis/model.py so that model.py only carries the one field that holds it;
like model.py, nothing here imports the contract's document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CacheKind = Literal["private", "shared"]
Rule = Literal["no-store", "s-maxage", "max-age", "expires", "heuristic", "none", "invalid"]
RevalidationOutcome = Literal["not_modified", "full_response", "other_status", "failed",
                              "skipped"]


@dataclass(frozen=True)
class Directive:
    """One Cache-Control directive as the response sent it, and what it means."""

    name: str
    value: str | None
    meaning: str
    cite: str = field(metadata={"doc": "the RFC section that defines it"})


@dataclass(frozen=True)
class CacheVerdict:
    """What one kind of cache may do with the response (RFC 9111 §3, §4.2)."""

    cache: CacheKind = field(metadata={"doc": "private: the browser's own cache; shared: a "
                                              "CDN or proxy serving many users"})
    may_store: bool
    why: str
    lifetime_s: float | None = field(
        metadata={"doc": "freshness lifetime in seconds (RFC 9111 §4.2.1); None when not "
                         "stored"})
    rule: Rule = field(metadata={"doc": "which rule decided the lifetime"})
    rule_words: str
    cite: str
    remaining_s: float | None = field(
        metadata={"doc": "lifetime minus the response's current age when it arrived"})
    must_revalidate_before_use: bool = field(
        metadata={"doc": "no-cache, or a lifetime of 0: stored, but each use asks the server"})
    modelled: bool = field(
        default=False, metadata={"doc": "true when the lifetime is the heuristic (10 % of "
                                        "Date - Last-Modified): a rule of thumb, not a value "
                                        "the server sent"})


@dataclass(frozen=True)
class Validator:
    """A validator the response carried (RFC 9110 §8.8)."""

    header: str = field(metadata={"doc": "ETag | Last-Modified"})
    value: str
    strength: Literal["strong", "weak", "invalid"]
    meaning: str
    sent_as: str = field(metadata={"doc": "the conditional request field it becomes"})


@dataclass(frozen=True)
class AgeFacts:
    """The response's age when it arrived (RFC 9111 §4.2.3), in seconds."""

    age_header_s: int | None = field(metadata={"doc": "the Age field (RFC 9111 §5.1)"})
    apparent_age_s: float | None = field(
        metadata={"doc": "our receipt time minus Date (whole seconds on the server's clock)"})
    response_delay_s: float = field(metadata={"doc": "request sent → response headers, "
                                                     "measured on the journey's clock"})
    current_age_s: float
    words: str


@dataclass(frozen=True)
class VaryFacts:
    """Vary: which request fields a cache adds to its key (RFC 9111 §4.1)."""

    fields: list[str]
    any: bool = field(metadata={"doc": "Vary: * — no stored copy matches a later request"})
    key: list[str] = field(metadata={"doc": "the cache key: method, URI, then each varied "
                                            "field with the value this request sent"})
    words: str


@dataclass(frozen=True)
class ResponsePolicy:
    """The caching policy of one response (one request of the journey)."""

    span_id: int
    leg: int = field(metadata={"doc": "the request's index, from 0"})
    url: str
    status: int | None
    final: bool = field(metadata={"doc": "the journey's final response"})
    cache_control: str | None = field(metadata={"doc": "the field as received (joined)"})
    directives: list[Directive]
    caches: list[CacheVerdict] = field(metadata={"doc": "private, then shared"})
    age: AgeFacts | None
    validators: list[Validator]
    vary: VaryFacts | None
    stale_while_revalidate_s: int | None = field(metadata={"doc": "RFC 5861 §3"})
    stale_if_error_s: int | None = field(metadata={"doc": "RFC 5861 §4"})
    immutable: bool = field(metadata={"doc": "RFC 8246: no revalidation on reload while "
                                             "fresh"})
    problems: list[str] = field(metadata={"doc": "malformed or conflicting fields, each with "
                                                 "the verdict taken (never fatal)"})
    summary: str


@dataclass(frozen=True)
class RevalidationCheck:
    """The revalidation the tracer really made after the journey, compared with the
    journey's final response (both on the journey's clock)."""

    span_id: int | None
    outcome: RevalidationOutcome
    words: str = field(metadata={"doc": "what happened, and why when it was not a 304"})
    sent: list[tuple[str, str]] = field(default_factory=list,
                                        metadata={"doc": "the conditional fields sent"})
    connection: str | None = field(default=None, metadata={"doc": "reused | new"})
    status: int | None = None
    ttfb_ms: float | None = field(default=None,
                                  metadata={"doc": "request sent → first byte (http.wait)"})
    first_ttfb_ms: float | None = field(default=None,
                                        metadata={"doc": "the same, for the first response"})
    total_ms: float | None = field(default=None, metadata={"doc": "the revalidation step, "
                                                                  "connection included"})
    wire_bytes_received: int | None = None
    first_wire_bytes_received: int | None = None
    body_bytes: int | None = None
    first_body_bytes: int | None = None


@dataclass(frozen=True)
class CachingAnalysis:
    """RFC 9111 caching, read from the journey's responses, and the real revalidation."""

    responses: list[ResponsePolicy] = field(metadata={"doc": "one per request, in order"})
    revalidation: RevalidationCheck | None
    rules: str = field(metadata={"doc": "the references used"})
