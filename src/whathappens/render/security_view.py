"""The security grade and "who answered", viewed once for every renderer.

Reads the analyses (analysis/security.py, analysis/who_answered.py) and words them: each
Observatory test as a row (its modifier written "+5", "-10", "+5, not counted"), the header
readings, the HSTS preload checklist, the CSP directives, each cookie, the notes per request,
and each inference with its evidence. No markup: the terminal (render/terminal_security.py),
the HTML report (render/html_security.py) and the live page (web/events.py) lay it out and
escape it on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from whathappens.analysis.security import duration, security
from whathappens.analysis.security_model import (
    CookieCheck,
    CspDirective,
    HeaderCheck,
    HstsReading,
    LegNote,
    SecurityAnalysis,
    WhoAnswered,
)
from whathappens.analysis.who_answered import who_answered
from whathappens.contract.document import JourneyDoc
from whathappens.explain.security import (
    NOT_TESTED,
    SCORING,
    WHO_ADVANCED,
    WHO_INTRO,
    security_advanced,
    security_beginner,
    who_beginner,
)

TONE = {"good": "ok", "weak": "warn", "bad": "bad", "missing": "warn", "invalid": "bad",
        "info": "", "not_tested": ""}


@dataclass(frozen=True)
class RuleRow:
    test: str
    result: str
    points: str        # "+5", "-10", "0", "+5, not counted"
    says: str
    change: str | None
    tone: str          # ok, warn, bad, ""


@dataclass(frozen=True)
class SecurityView:
    url: str
    grade: str
    score: int
    scoring: str
    rows: list[RuleRow]
    headers: list[HeaderCheck]
    hsts: HstsReading | None
    csp: list[CspDirective]
    cookies: list[CookieCheck]
    legs: list[LegNote]
    beginner: str = ""
    advanced: str = ""

    @property
    def line(self) -> str:
        """``A- (85) by MDN HTTP Observatory's scoring``."""
        return f"{self.grade} ({self.score}) by MDN HTTP Observatory's scoring"

    @property
    def bonus_note(self) -> str | None:
        """Why some bonuses are not in the score, when they are not."""
        left = [r for r in self.rows if r.points.endswith("not counted")]
        if not left:
            return None
        total = sum(points_value(r.points) for r in left)
        return (f"bonuses worth +{total} not counted: the penalties left less than 90, and "
                "the Observatory adds bonuses only from 90")

    @property
    def changes(self) -> list[str]:
        """What to change, the costliest first (each rule's and each header's advice)."""
        ranked = sorted((r for r in self.rows if r.change and r.result != NOT_TESTED),
                        key=lambda r: points_value(r.points))
        out = [f"{r.test}: {r.change}" for r in ranked]
        for h in self.headers:
            line = f"{h.header}: {h.change}"
            if h.change and h.verdict != "good" and not any(
                    h.change in o for o in out):
                out.append(line)
        return out


def points_value(points: str) -> int:
    head = points.split(",")[0].strip()
    try:
        return int(head)
    except ValueError:
        return 0


def _points(modifier: int, counted: bool) -> str:
    text = f"{modifier:+d}" if modifier else "0"
    return text if counted else f"{text}, not counted"


def rule_rows(s: SecurityAnalysis) -> list[RuleRow]:
    return [RuleRow(r.test, r.result, _points(r.modifier, r.counted), r.says, r.change,
                    "" if r.result == NOT_TESTED else "bad" if r.modifier < 0
                    else "warn" if r.change else "ok") for r in s.rules]


def security_view(doc: JourneyDoc) -> SecurityView | None:
    s = doc.analysis.security if doc.analysis is not None else None
    s = s or security(doc)
    if s is None:
        return None
    return SecurityView(s.url, s.grade, s.score, s.scoring or SCORING, rule_rows(s),
                        s.headers, s.hsts, s.csp, s.cookies, s.legs, *texts(s))


def texts(s: SecurityAnalysis) -> tuple[str, str]:
    """The beginner and advanced words, filled with this response's values."""
    try:
        host = (urlsplit(s.url).hostname or s.url)
    except ValueError:
        host = s.url
    max_age = s.hsts.max_age if s.hsts is not None else None
    script = next((d.sources for d in s.csp if d.name == "script-src"), None) or next(
        (d.sources for d in s.csp if d.name == "default-src"), None)
    penalties = sum(r.modifier for r in s.rules if r.modifier < 0)
    bonuses = sum(r.modifier for r in s.rules if r.modifier > 0)
    counted = all(r.counted for r in s.rules)
    return (security_beginner(s.grade, s.score, host, max_age,
                              duration(max_age) if max_age is not None else None, script,
                              len(s.cookies)),
            security_advanced(penalties, bonuses, counted, len(s.rules), max_age))


@dataclass(frozen=True)
class WhoView:
    intro: str
    parties: list[WhoAnswered]
    advanced: str = WHO_ADVANCED

    @property
    def beginner(self) -> str:
        return who_beginner(self.line)

    @property
    def line(self) -> str:
        """``CDN Cloudflare (likely) · app server gunicorn (possible)``."""
        return " · ".join(f"{p.role} {p.who} ({p.confidence})" for p in self.parties)


def who_view(doc: JourneyDoc) -> WhoView:
    found = doc.analysis.who_answered if doc.analysis is not None else []
    return WhoView(WHO_INTRO, list(found or who_answered(doc)))
