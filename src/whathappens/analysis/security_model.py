"""What the security-header and who-answered analyses conclude, as plain dataclasses
(analysis/security.py, analysis/who_answered.py build them; analysis/model.py's
:class:`~whathappens.analysis.model.Analysis` carries them into the JSON).

Like analysis/model.py, nothing here imports the contract's document, so the contract can
carry these without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["good", "weak", "bad", "missing", "invalid", "info", "not_tested"]
Confidence = Literal["certain", "likely", "possible"]


@dataclass(frozen=True)
class ScoreRule:
    """One test of MDN HTTP Observatory's scoring, as this journey passes it."""

    test: str = field(metadata={"doc": "the Observatory's test: content-security-policy, "
                                       "cookies, strict-transport-security…"})
    result: str = field(metadata={"doc": "the Observatory's result name, e.g. "
                                         "hsts-implemented-max-age-less-than-six-months, or "
                                         "not-tested-here"})
    modifier: int = field(metadata={"doc": "its published score modifier"})
    counted: bool = field(metadata={"doc": "false for a bonus when the score before bonuses "
                                           "is under 90 (the Observatory's rule)"})
    says: str = field(metadata={"doc": "the rule, in our words"})
    change: str | None = field(metadata={"doc": "what to change, when there is something"})


@dataclass(frozen=True)
class HeaderCheck:
    """One security header of the final response: its value and what it means."""

    header: str
    value: str | None = field(metadata={"doc": "as received (several joined by ', '), or "
                                               "null when absent"})
    verdict: Verdict
    says: str
    change: str | None
    cite: str = field(metadata={"doc": "the specification the reading follows"})


@dataclass(frozen=True)
class CspDirective:
    name: str
    sources: list[str]


@dataclass(frozen=True)
class Requirement:
    """One of hstspreload.org's submission requirements, as this journey shows it."""

    rule: str
    met: bool | None = field(metadata={"doc": "null: this journey cannot tell"})
    why: str


@dataclass(frozen=True)
class HstsReading:
    """Strict-Transport-Security parsed (RFC 6797 §6.1) and its preload eligibility."""

    max_age: int | None
    include_subdomains: bool
    preload: bool
    preload_ready: bool = field(metadata={"doc": "every requirement this journey can check "
                                                 "is met (the rest are listed as unknown)"})
    requirements: list[Requirement]


@dataclass(frozen=True)
class CookieCheck:
    """One Set-Cookie (RFC 6265bis): its attributes and what is wrong with them."""

    leg: int = field(metadata={"doc": "the request that set it, from 0"})
    name: str
    secure: bool
    http_only: bool
    same_site: str | None
    prefix: str | None = field(metadata={"doc": "__Host- or __Secure-"})
    session: bool = field(metadata={"doc": "a session or login cookie by name (the "
                                           "Observatory's test: the name holds sess or login)"})
    persistent: bool = field(metadata={"doc": "Expires or Max-Age given"})
    problems: list[str]
    verdict: Verdict


@dataclass(frozen=True)
class LegNote:
    """Something about one request of the journey that the final response does not show."""

    leg: int
    url: str
    note: str


@dataclass(frozen=True)
class SecurityAnalysis:
    """The final response's security headers and the journey's cookies, graded with MDN HTTP
    Observatory's published scoring (start at 100, each test's modifier; bonuses only when
    the penalties leave 90 or more; the grade from the score rounded down to a multiple of
    5)."""

    span_id: int = field(metadata={"doc": "the final response's http span"})
    url: str
    score: int
    grade: str
    scoring: str = field(metadata={"doc": "the reference the score follows"})
    rules: list[ScoreRule]
    headers: list[HeaderCheck]
    csp: list[CspDirective]
    hsts: HstsReading | None
    cookies: list[CookieCheck]
    legs: list[LegNote]


@dataclass(frozen=True)
class Evidence:
    source: str = field(metadata={"doc": "header | dns | certificate | cookie | lab span"})
    detail: str = field(metadata={"doc": "what was seen, e.g. 'X-Cache: HIT'"})
    leg: int | None = field(default=None, metadata={"doc": "the request it was seen on"})


@dataclass(frozen=True)
class WhoAnswered:
    """One inferred party on the response's path and how sure the inference is: certain
    when the lab's own spans prove it, likely from a vendor's header, possible from a
    Server string or a name alone."""

    role: str = field(metadata={"doc": "cdn | shared cache | proxy | load balancer | "
                                       "reverse proxy | web server | app server | framework "
                                       "| database | cache | queue | worker"})
    who: str
    confidence: Confidence
    evidence: list[Evidence]
