"""The analyses of one journey as JSON: the ``analysis`` key of the journey document.

:func:`analyze` is the one entry point: the journey's dict in (as ``Journey.to_dict()``
builds it; an ``analysis`` key in it is ignored), a JSON-ready dict out, with three parts
(:func:`analyze_journey` does the same from the typed ``JourneyDoc``):

- ``summary``: how it ended, what it spoke, the time per step summed over requests;
- ``budgets``: each judged step's verdict against its rule of thumb (analysis/budgets.py);
- ``actors``: everyone the journey met, with their role (analysis/actors.py);
- ``resolver_cache``: whether each repeated question came from the resolver's cache
  (analysis/resolver_cache.py).

:data:`SCHEMA` is its JSON Schema (draft 2020-12), for the journey schema's ``analysis``
property. The terminal, the HTML report and the live page show these same verdicts: they
read them through the view (render/view.py), which calls the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from whathappens.analysis.actors import actors
from whathappens.analysis.budgets import verdicts
from whathappens.analysis.resolver_cache import cache_checks
from whathappens.analysis.summary import summarize
from whathappens.contract.document import JourneyDoc, read_journey


class FailureDoc(TypedDict):
    step: str
    message: str
    exit_code: int


class SummaryDoc(TypedDict):
    outcome: Literal["ok", "failed"]
    status: int | None
    reason: str
    http_version: str | None
    tls_version: str | None
    requests: int
    redirects: int
    total_ms: float | None
    failure: FailureDoc | None
    time_by_step: dict[str, float]
    slowest_step: str | None


class VerdictDoc(TypedDict):
    span_id: int
    leg: int
    step: str
    guide: str
    took_ms: float | None
    limit_ms: float | None
    mark_ms: float | None
    rtt_ms: float | None
    rtt_multiple: float | None
    outcome: Literal["within", "over", "unknown"]


class ActorDoc(TypedDict):
    role: str
    name: str
    address: str


class CacheCheckDoc(TypedDict):
    span_id: int
    took_ms: float
    first_ms: float
    faster: bool


class AnalysisDoc(TypedDict):
    summary: SummaryDoc
    budgets: list[VerdictDoc]
    actors: list[ActorDoc]
    resolver_cache: list[CacheCheckDoc]


def analyze(data: Mapping[str, object]) -> AnalysisDoc:
    """The journey's analyses, JSON-ready, from its JSON dict (an ``analysis`` key already
    there is ignored). Pure: reads the dict, changes nothing."""
    return analyze_journey(read_journey(without_analysis(data)))


def without_analysis(data: Mapping[str, object]) -> Mapping[str, object]:
    """The document as the contract reads it: ``analysis`` is derived, not read back."""
    return {k: v for k, v in data.items() if k != "analysis"} if "analysis" in data else data


def analyze_journey(journey: JourneyDoc) -> AnalysisDoc:
    """The analyses of the typed journey document, JSON-ready."""
    s = summarize(journey)
    failure: FailureDoc | None = None
    if s.failure is not None:
        failure = FailureDoc(step=s.failure.step, message=s.failure.message,
                             exit_code=s.failure.exit_code)
    summary = SummaryDoc(
        outcome=s.outcome, status=s.status, reason=s.reason, http_version=s.http_version,
        tls_version=s.tls_version, requests=s.requests, redirects=s.redirects,
        total_ms=s.total_ms, failure=failure, time_by_step=dict(s.time_by_step),
        slowest_step=s.slowest_step)
    budgets = [VerdictDoc(span_id=v.span_id, leg=v.leg, step=v.step, guide=v.guide,
                          took_ms=v.took_ms, limit_ms=v.limit_ms, mark_ms=v.mark_ms,
                          rtt_ms=v.rtt_ms, rtt_multiple=v.rtt_multiple, outcome=v.outcome)
               for v in verdicts(journey)]
    return AnalysisDoc(summary=summary, budgets=budgets,
                       actors=[ActorDoc(role=a.role, name=a.name, address=a.address)
                               for a in actors(journey)],
                       resolver_cache=[CacheCheckDoc(span_id=c.span_id, took_ms=c.took_ms,
                                                     first_ms=c.first_ms, faster=c.faster)
                                       for c in cache_checks(journey)])


_NUM_OR_NULL = {"type": ["number", "null"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Analyses of this journey (whathappens.analysis): pure functions of the "
                   "rest of the document, the same verdicts every renderer shows.",
    "required": ["summary", "budgets", "actors", "resolver_cache"],
    "additionalProperties": False,
    "properties": {
        "summary": {
            "type": "object",
            "required": ["outcome", "requests", "total_ms", "time_by_step"],
            "additionalProperties": False,
            "properties": {
                "outcome": {"enum": ["ok", "failed"]},
                "status": {"type": ["integer", "null"]},
                "reason": {"type": "string"},
                "http_version": {"type": ["string", "null"]},
                "tls_version": {"type": ["string", "null"]},
                "requests": {"type": "integer", "minimum": 0},
                "redirects": {"type": "integer", "minimum": 0},
                "total_ms": _NUM_OR_NULL,
                "failure": {
                    "type": ["object", "null"],
                    "required": ["step", "message", "exit_code"],
                    "properties": {"step": {"type": "string"}, "message": {"type": "string"},
                                   "exit_code": {"type": "integer"}},
                },
                "time_by_step": {"type": "object",
                                 "additionalProperties": {"type": "number", "minimum": 0}},
                "slowest_step": {"type": ["string", "null"]},
            },
        },
        "budgets": {
            "type": "array",
            "description": "Each judged step against its rule of thumb (not a measurement): "
                           "within when it ended by start + limit_ms, over when after, "
                           "unknown when the rule needs a kernel RTT that was not measured.",
            "items": {
                "type": "object",
                "required": ["span_id", "leg", "step", "guide", "outcome"],
                "additionalProperties": False,
                "properties": {
                    "span_id": {"type": "integer"},
                    "leg": {"type": "integer", "minimum": 0},
                    "step": {"enum": ["dns", "tcp", "tls", "ttfb"]},
                    "guide": {"type": "string"},
                    "took_ms": _NUM_OR_NULL,
                    "limit_ms": _NUM_OR_NULL,
                    "mark_ms": _NUM_OR_NULL,
                    "rtt_ms": _NUM_OR_NULL,
                    "rtt_multiple": _NUM_OR_NULL,
                    "outcome": {"enum": ["within", "over", "unknown"]},
                },
            },
        },
        "resolver_cache": {
            "type": "array",
            "description": "The resolver view's repeated question: faster when it took less "
                           "than half the first A question's time (served from its cache).",
            "items": {
                "type": "object",
                "required": ["span_id", "took_ms", "first_ms", "faster"],
                "additionalProperties": False,
                "properties": {"span_id": {"type": "integer"},
                               "took_ms": {"type": "number"}, "first_ms": {"type": "number"},
                               "faster": {"type": "boolean"}},
            },
        },
        "actors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "name", "address"],
                "additionalProperties": False,
                "properties": {"role": {"type": "string"}, "name": {"type": "string"},
                               "address": {"type": "string"}},
            },
        },
    },
}
