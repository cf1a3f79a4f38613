"""HTTP caching (RFC 9111), read from the journey's own responses: who may keep each one, for
how long and by which rule, how old it already was, how a cache would check it again, and
what the real revalidation after the journey showed.

Pure: headers and the journey's measured times in, verdicts out. Nothing a server sends
makes this raise; a malformed field becomes a stated verdict in ``problems``, taken the way
RFC 9111 asks a cache to take it (§4.2.1: "caches are encouraged to consider responses that
have invalid freshness information ... to be stale").

The rules, in the order a cache applies them:

- may it store the response at all (§3): not with ``no-store`` (§5.2.2.5); a shared cache
  not with ``private`` (§5.2.2.7) nor, when the request carried Authorization, without
  ``public``, ``s-maxage`` or ``must-revalidate`` (§3.5); and only when something says how
  long it stays fresh or a validator or a heuristically cacheable status lets it be checked;
- the freshness lifetime (§4.2.1): a shared cache takes ``s-maxage`` first (§5.2.2.10), then
  ``max-age`` (§5.2.2.1), then ``Expires`` minus ``Date`` (§5.3), then a heuristic (§4.2.2,
  10 % of ``Date`` minus ``Last-Modified``: the fraction the RFC suggests, a rule of thumb);
- the current age (§4.2.3) from ``Age`` and our own clock; the rest is what remains fresh;
- when stale: ``must-revalidate`` (§5.2.2.2) forbids serving it without asking;
  ``stale-while-revalidate`` and ``stale-if-error`` (RFC 5861) allow it for a while;
  ``immutable`` (RFC 8246) says a reload need not ask while fresh;
- validators (RFC 9110 §8.8): ETag → If-None-Match, Last-Modified → If-Modified-Since
  (RFC 9110 §13.1), and Vary (RFC 9111 §4.1) adds request fields to the cache key.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from whathappens.analysis.caching_model import (
    AgeFacts,
    CacheKind,
    CacheVerdict,
    CachingAnalysis,
    Directive,
    ResponsePolicy,
    RevalidationCheck,
    RevalidationOutcome,
    Rule,
    Validator,
    VaryFacts,
)
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import HttpFacts, LegFacts, RevalidateFacts

Fields = Sequence[tuple[str, str]]

RULES = ("RFC 9111 (HTTP Caching), RFC 9110 §8.8 and §13 (validators, conditional "
         "requests), RFC 5861 (stale-while-revalidate, stale-if-error), RFC 8246 (immutable)")

# RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2^31.
DELTA_MAX = 2**31
HEURISTIC_FRACTION = 0.10  # RFC 9111 §4.2.2 "a typical setting of this fraction might be 10%"
# RFC 9110 §15.1: statuses a cache may store with a heuristic lifetime.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})

MEANINGS: dict[str, tuple[str, str]] = {
    "no-store": ("no cache may keep any of it", "RFC 9111 §5.2.2.5"),
    "no-cache": ("may be kept, but must be checked with the server before every use",
                 "RFC 9111 §5.2.2.4"),
    "private": ("only the user's own (browser) cache may keep it; a CDN or proxy must not",
                "RFC 9111 §5.2.2.7"),
    "public": ("any cache may keep it, even where it otherwise could not (e.g. with "
               "Authorization)", "RFC 9111 §5.2.2.9"),
    "max-age": ("fresh for this many seconds after it was generated", "RFC 9111 §5.2.2.1"),
    "s-maxage": ("for shared caches (CDN, proxy) only: fresh for this many seconds, "
                 "overriding max-age and Expires", "RFC 9111 §5.2.2.10"),
    "must-revalidate": ("once stale, it must not be used without a successful check with "
                        "the server", "RFC 9111 §5.2.2.2"),
    "proxy-revalidate": ("must-revalidate, for shared caches only", "RFC 9111 §5.2.2.8"),
    "no-transform": ("caches and proxies must not change the content (recompress images, "
                     "…)", "RFC 9111 §5.2.2.6"),
    "must-understand": ("store only if the cache understands the status code's caching "
                        "rules", "RFC 9111 §5.2.2.3"),
    "immutable": ("the content will not change while fresh: a reload need not revalidate",
                  "RFC 8246 §2"),
    "stale-while-revalidate": ("for this many seconds after it goes stale, a cache may "
                               "serve it while it revalidates in the background",
                               "RFC 5861 §3"),
    "stale-if-error": ("for this many seconds after it goes stale, a cache may serve it "
                       "when the server errs (5xx) or cannot be reached", "RFC 5861 §4"),
}
_DELTA = ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


# ------------------------------------------------------------------------------ parsing
def field_values(headers: Fields, name: str) -> list[str]:
    """Every line of the field ``name`` (case-insensitive), in order."""
    return [v for n, v in headers if n.lower() == name]


def split_list(value: str) -> list[str]:
    """A comma-separated list (RFC 9110 §5.6.1), commas inside quoted strings kept."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    return [i for i in items if i]


def parse_cache_control(lines: Sequence[str]) -> list[tuple[str, str | None]]:
    """(name lower-cased, value unquoted or None) for each directive, in order, duplicates
    kept: RFC 9111 §5.2 allows both ``max-age=5`` and ``max-age="5"``."""
    out: list[tuple[str, str | None]] = []
    for line in lines:
        for item in split_list(line):
            name, eq, value = item.partition("=")
            v: str | None = value.strip() if eq else None
            if v is not None and len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            out.append((name.strip().lower(), v))
    return out


def delta_seconds(value: str | None) -> int | None:
    """A delta-seconds (RFC 9111 §1.2.2), None when it is not one; too large → 2^31."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return min(int(value), DELTA_MAX)


def http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7) as an aware datetime, None when it is not one."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def single_field(headers: Fields, name: str, problems: list[str]) -> str | None:
    """A field that may appear once: the first line, with a stated verdict when there are
    several that disagree (RFC 9111 §4.2.1: the first, or stale)."""
    values = field_values(headers, name)
    if len(set(values)) > 1:
        problems.append(f"{len(values)} different {name} lines ({', '.join(values[:3])}): "
                        "the first is used")
    return values[0] if values else None


# ------------------------------------------------------------------------------ pieces
class _Directives:
    """The Cache-Control directives of one response, with verdicts on bad ones."""

    def __init__(self, headers: Fields, problems: list[str]) -> None:
        self.lines = field_values(headers, "cache-control")
        self.parsed = parse_cache_control(self.lines)
        self.problems = problems
        self.names = {n for n, _ in self.parsed}
        # private="Set-Cookie" / no-cache="Set-Cookie": only those fields are concerned
        # (RFC 9111 §5.2.2.4, §5.2.2.7); the response itself is not
        self.whole = {n for n, v in self.parsed if not v}
        self.invalid: set[str] = set()
        self.deltas: dict[str, int | None] = {}
        for name in _DELTA:
            self.deltas[name] = self._delta(name)
        if "no-cache" not in self.names and not self.lines:
            pragma = ", ".join(field_values(headers, "pragma")).lower()
            if "no-cache" in pragma:
                self.names.add("no-cache")
                self.whole.add("no-cache")
                problems.append("no Cache-Control, but Pragma: no-cache: taken as no-cache, "
                                "as caches do (RFC 9111 §5.4; Pragma is deprecated)")
        for name, _ in self.parsed:
            if not _TOKEN.match(name):
                problems.append(f"'{name}' is not a valid directive name: ignored "
                                "(RFC 9111 §5.2)")

    def _delta(self, name: str) -> int | None:
        values = [v for n, v in self.parsed if n == name]
        if not values:
            return None
        parsed = [delta_seconds(v) for v in values]
        if any(p is None for p in parsed):
            bad = next(v for v, p in zip(values, parsed, strict=True) if p is None)
            self.problems.append(f"{name}={bad if bad is not None else ''} is not a number "
                                 "of seconds: taken as 0, stale at once (RFC 9111 §4.2.1 "
                                 "encourages treating invalid freshness as stale)")
            self.invalid.add(name)
            return 0
        if len(set(parsed)) > 1:
            self.problems.append(f"{name} appears {len(values)} times with different values "
                                 f"({', '.join(str(p) for p in parsed)}): taken as 0, stale "
                                 "(RFC 9111 §4.2.1: use the first or consider it stale; "
                                 "the safer is chosen)")
            self.invalid.add(name)
            return 0
        return parsed[0]

    def has(self, name: str) -> bool:
        return name in self.names

    def views(self) -> list[Directive]:
        out: list[Directive] = []
        for name, value in self.parsed:
            meaning, cite = MEANINGS.get(name, (
                "an extension this analysis does not know; a cache that does not know it "
                "ignores it", "RFC 9111 §5.2.3"))
            if name in ("no-cache", "private") and value:
                meaning = (f"only the fields {value} are affected: "
                           + meaning[0].lower() + meaning[1:])
            out.append(Directive(name, value, meaning, cite))
        return out


def validators(headers: Fields, problems: list[str]) -> list[Validator]:
    """The ETag and Last-Modified the response carried (RFC 9110 §8.8)."""
    out: list[Validator] = []
    etag = single_field(headers, "etag", problems)
    if etag is not None:
        tag = etag.strip()
        weak = tag.startswith("W/")
        opaque = tag[2:] if weak else tag
        strength: Literal["strong", "weak", "invalid"]
        if len(opaque) >= 2 and opaque[0] == opaque[-1] == '"' and '"' not in opaque[1:-1]:
            strength = "weak" if weak else "strong"
            meaning = ("weak: the same meaning, not necessarily the same bytes (RFC 9110 "
                       "§8.8.1); enough for If-None-Match" if weak else
                       "strong: changes whenever the bytes change (RFC 9110 §8.8.3)")
        else:
            strength = "invalid"
            meaning = ("not a valid entity-tag (RFC 9110 §8.8.3 wants it in double quotes, "
                       "W/ for weak); a cache may still send it back as it came")
            problems.append(f"ETag {tag!r} is malformed: sent back as received")
        out.append(Validator("ETag", tag, strength, meaning, "If-None-Match"))
    modified = single_field(headers, "last-modified", problems)
    if modified is not None:
        when = http_date(modified)
        if when is None:
            problems.append(f"Last-Modified {modified!r} is not an HTTP-date: no heuristic "
                            "freshness from it")
        out.append(Validator(
            "Last-Modified", modified, "weak" if when is not None else "invalid",
            "a date: weak by nature (two changes within one second look the same, RFC 9110 "
            "§8.8.2.2)" if when is not None else "not an HTTP-date (RFC 9110 §5.6.7)",
            "If-Modified-Since"))
    return out


def conditional_fields(headers: Fields) -> list[tuple[str, str]]:
    """The fields a cache sends to revalidate this response (RFC 9111 §4.3.1): the ETag in
    If-None-Match, Last-Modified in If-Modified-Since; both when both are known, as
    browsers do (the server then decides on If-None-Match, RFC 9110 §13.2.2)."""
    out: list[tuple[str, str]] = []
    etag = field_values(headers, "etag")
    if etag and etag[0].strip():
        out.append(("if-none-match", etag[0].strip()))
    modified = field_values(headers, "last-modified")
    if modified and modified[0].strip():
        out.append(("if-modified-since", modified[0].strip()))
    return out


def revalidation_plan(method: str, status: int, headers: Fields) -> tuple[
        list[tuple[str, str]], str | None]:
    """What to send to revalidate the journey's final response, or why not (no I/O)."""
    if method not in ("GET", "HEAD"):
        return [], f"the request was {method}: only GET and HEAD responses are revalidated"
    if status < 200 or (status >= 300 and status not in HEURISTIC_STATUSES):
        return [], (f"the final response was {status}, not a status a cache keeps and "
                    "revalidates by default")
    names = {n for n, _ in parse_cache_control(field_values(headers, "cache-control"))}
    if "no-store" in names:
        return [], ("the response said no-store: no cache kept it, so none would revalidate "
                    "it (RFC 9111 §5.2.2.5)")
    fields = conditional_fields(headers)
    if not fields:
        return [], ("the response carried no validator (no ETag, no Last-Modified): a cache "
                    "can only fetch it again in full (RFC 9111 §4.3.1)")
    return fields, None


def vary(headers: Fields, request: Fields, method: str, url: str) -> VaryFacts | None:
    lines = field_values(headers, "vary")
    if not lines:
        return None
    names = [n for line in lines for n in split_list(line)]
    star = any(n == "*" for n in names)
    key = [method, url]
    for n in names:
        if n != "*":
            sent = ", ".join(field_values(request, n.lower()))
            key.append(f"{n}: {sent}" if sent else f"{n}: (not sent)")
    if star:
        words = ("Vary: * — a stored copy never matches a later request without asking the "
                 "server (RFC 9111 §4.1)")
    else:
        words = (f"a cache keys the stored copy by {', '.join(names)} too: a later request "
                 "reuses it only when it sends the same value(s) (RFC 9111 §4.1)")
    return VaryFacts(names, star, key, words)


def age_facts(headers: Fields, http: HttpFacts, t0_wall_ns: int,
              problems: list[str]) -> AgeFacts:
    """The response's current age on arrival (RFC 9111 §4.2.3), resident time 0."""
    raw_age = single_field(headers, "age", problems)
    age = delta_seconds(raw_age.strip()) if raw_age is not None else None
    if raw_age is not None and age is None:
        problems.append(f"Age {raw_age!r} is not a number of seconds: ignored "
                        "(RFC 9111 §5.1)")
    sent, got = http.t_request_sent_ns, http.t_headers_ns
    delay = (got - sent) / 1e9 if sent is not None and got is not None else 0.0
    date = http_date(single_field(headers, "date", []))
    apparent = None
    if date is not None and got is not None:
        received = (t0_wall_ns + got) / 1e9
        apparent = max(0.0, received - date.timestamp())
    corrected = (age or 0) + delay
    current = max(apparent or 0.0, corrected)
    parts = [f"Age {age} s (how long a cache on the way had held it)" if age is not None
             else "no Age field: no cache on the way said it held it (some, nginx among them, "
                  "never send one)"]
    if apparent is not None:
        parts.append(f"arrived {apparent:.1f} s after its Date (Date counts whole seconds, "
                     "on the server's clock)")
    words = f"{current:.1f} s old on arrival: " + "; ".join(parts) + " (RFC 9111 §4.2.3)"
    return AgeFacts(age, None if apparent is None else round(apparent, 3), round(delay, 6),
                    round(current, 3), words)


# ------------------------------------------------------------------------------ freshness
def _explicit(d: _Directives, headers: Fields, cache: CacheKind, receipt: datetime | None,
              problems: list[str]) -> tuple[float, Rule, str, str] | None:
    if cache == "shared" and d.deltas["s-maxage"] is not None:
        v = d.deltas["s-maxage"] or 0
        return v, "s-maxage", f"s-maxage={v}", "RFC 9111 §5.2.2.10"
    if d.deltas["max-age"] is not None:
        v = d.deltas["max-age"] or 0
        return v, "max-age", f"max-age={v}", "RFC 9111 §5.2.2.1"
    expires = single_field(headers, "expires", problems)
    if expires is None:
        return None
    when = http_date(expires)
    date = http_date(single_field(headers, "date", [])) or receipt
    if when is None:
        problems.append(f"Expires {expires!r} is not an HTTP-date: taken as already "
                        "expired (RFC 9111 §5.3)")
        return 0.0, "expires", "Expires is not a date: already stale", "RFC 9111 §5.3"
    if date is None:
        return 0.0, "expires", "Expires without Date or receipt time: stale", "RFC 9111 §5.3"
    lifetime = max(0.0, (when - date).total_seconds())
    return lifetime, "expires", f"Expires − Date = {lifetime:g} s", "RFC 9111 §4.2.1, §5.3"


def _heuristic(headers: Fields, status: int | None, public: bool,
               receipt: datetime | None) -> tuple[float, str] | None:
    if not (status in HEURISTIC_STATUSES or public):
        return None
    modified = http_date(single_field(headers, "last-modified", []))
    date = http_date(single_field(headers, "date", [])) or receipt
    if modified is None or date is None:
        return None
    span = max(0.0, (date - modified).total_seconds())
    return span * HEURISTIC_FRACTION, (
        f"heuristic: 10 % of Date − Last-Modified ({span:g} s) — a rule of thumb the RFC "
        "suggests, not a value the server sent")


def _may_store(d: _Directives, cache: CacheKind, status: int | None, request: Fields,
               explicit: bool, has_validator: bool) -> tuple[bool, str]:
    if d.has("no-store"):
        return False, "no-store (RFC 9111 §5.2.2.5)"
    if status is None or status < 200:
        return False, "no final status"
    if cache == "shared" and "private" in d.whole:
        return False, "private: only the browser's own cache may keep it (RFC 9111 §5.2.2.7)"
    if cache == "shared" and field_values(request, "authorization") and not (
            d.has("public") or d.has("must-revalidate") or d.deltas["s-maxage"] is not None):
        return False, ("the request carried Authorization and the response says neither "
                       "public, s-maxage nor must-revalidate (RFC 9111 §3.5)")
    if explicit or d.has("public") or (cache == "private" and d.has("private")):
        return True, "it says how long it stays fresh, or that caches may keep it (RFC 9111 §3)"
    if status in HEURISTIC_STATUSES:
        return True, (f"status {status} may be cached by default (RFC 9110 §15.1)"
                      + ("" if has_validator else "; with no validator it can only be "
                         "fetched again in full once stale"))
    return False, (f"status {status} is not cacheable by default and nothing says otherwise "
                   "(RFC 9111 §3)")


def cache_verdict(d: _Directives, headers: Fields, request: Fields, cache: CacheKind,
                  status: int | None, current_age: float, receipt: datetime | None,
                  has_validator: bool, problems: list[str]) -> CacheVerdict:
    explicit = _explicit(d, headers, cache, receipt, problems)
    may, why = _may_store(d, cache, status, request, explicit is not None, has_validator)
    if not may:
        rule: Rule = "no-store" if d.has("no-store") else "none"
        return CacheVerdict(cache, False, why, None, rule, why, "RFC 9111 §3", None, False)
    modelled = False
    if explicit is not None:
        lifetime, rule, words, cite = explicit
    elif (h := _heuristic(headers, status, d.has("public"), receipt)) is not None:
        lifetime, words = h
        rule, cite, modelled = "heuristic", "RFC 9111 §4.2.2", True
    else:
        lifetime, rule, cite = 0.0, "none", "RFC 9111 §4.2"
        words = "no max-age, Expires or Last-Modified: no freshness, stale at once"
    if rule in d.invalid:
        rule = "invalid"
    if "no-cache" in d.whole:
        words, cite = f"no-cache; {words}", "RFC 9111 §5.2.2.4"
    lifetime = round(float(lifetime), 3)
    remaining = round(lifetime - current_age, 3)
    check = "no-cache" in d.whole or lifetime <= 0
    return CacheVerdict(cache, True, why, lifetime, rule, words, cite, remaining, check,
                        modelled)


# ------------------------------------------------------------------------------ one response
def response_policy(span: SpanDoc, leg: LegFacts, final: bool,
                    t0_wall_ns: int) -> ResponsePolicy:
    http = span.facts_as(HttpFacts) or HttpFacts()
    headers, request = list(http.response_headers), list(http.request_headers)
    problems: list[str] = []
    d = _Directives(headers, problems)
    found = validators(headers, problems)
    age = age_facts(headers, http, t0_wall_ns, problems)
    receipt = None
    if http.t_headers_ns is not None:
        receipt = datetime.fromtimestamp((t0_wall_ns + http.t_headers_ns) / 1e9, UTC)
    caches = [cache_verdict(d, headers, request, kind, http.status, age.current_age_s,
                            receipt, bool(found), problems) for kind in ("private", "shared")]
    if caches[1].may_store and field_values(headers, "set-cookie"):
        problems.append("Set-Cookie on a response a shared cache may store: a CDN that keeps "
                        "it would hand the same cookie to every visitor (caches store every "
                        "header field, RFC 9111 §3.1), unless it strips it or, as many do, "
                        "refuses to cache it; private or no-store avoids that")
    policy = ResponsePolicy(
        span_id=span.id, leg=leg.index, url=leg.url, status=http.status, final=final,
        cache_control=", ".join(d.lines) if d.lines else None, directives=d.views(),
        caches=caches, age=age, validators=found, vary=vary(headers, request, leg.method, leg.url),
        stale_while_revalidate_s=d.deltas["stale-while-revalidate"],
        stale_if_error_s=d.deltas["stale-if-error"], immutable=d.has("immutable"),
        problems=list(dict.fromkeys(problems)), summary="")
    return _with_summary(policy)


def lifetime_words(seconds: float) -> str:
    """``86400`` → ``1 day``; ``90`` → ``90 s``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 and unit != 'min' else ''}"
    return f"{seconds:g} s"


def _with_summary(p: ResponsePolicy) -> ResponsePolicy:
    parts: list[str] = []
    for c in p.caches:
        who = "browser" if c.cache == "private" else "shared caches (CDN, proxy)"
        if not c.may_store:
            parts.append(f"{who}: may not store it")
        elif c.must_revalidate_before_use:
            parts.append(f"{who}: may store it, must check it before each use")
        else:
            parts.append(f"{who}: fresh for {lifetime_words(c.lifetime_s or 0)} "
                         f"({c.rule}{', modelled' if c.modelled else ''})")
    return dataclasses.replace(p, summary="; ".join(parts))


# ------------------------------------------------------------------------------ revalidation
def _first_ttfb(span: SpanDoc) -> float | None:
    wait = span.child("http.wait")
    return None if wait is None else wait.duration_ms


def revalidation_check(journey: JourneyDoc, final: SpanDoc | None) -> RevalidationCheck | None:
    """The revalidation span (if one ran) read against the final response."""
    span = next((s for s in journey.spans if s.name == "revalidate"), None)
    if span is None:
        return None
    facts = span.facts_as(RevalidateFacts) or RevalidateFacts()
    first = final.facts_as(HttpFacts) if final is not None else None
    http = span.child("http")
    again = http.facts_as(HttpFacts) if http is not None else None
    base = RevalidationCheck(span_id=span.id, outcome="skipped", words=facts.why or "",
                             sent=list(facts.conditional), connection=facts.connection,
                             total_ms=span.duration_ms)
    if facts.outcome == "skipped":
        return base
    err = span.error or (http.error if http is not None else None)
    if err is not None or again is None or again.status is None:
        message = err.message if err is not None else (facts.why or "no response")
        return dataclasses.replace(base, outcome="failed", words=f"the revalidation failed: "
                                   f"{message}; the journey's result stands")
    return dataclasses.replace(
        base, outcome=_outcome(again.status), words=_words(again, first),
        status=again.status, ttfb_ms=_first_ttfb(http) if http is not None else None,
        first_ttfb_ms=_first_ttfb(final) if final is not None else None,
        wire_bytes_received=again.wire_bytes_received,
        first_wire_bytes_received=first.wire_bytes_received if first else None,
        body_bytes=again.body_bytes_encoded,
        first_body_bytes=first.body_bytes_encoded if first else None)


def _outcome(status: int) -> RevalidationOutcome:
    if status == 304:
        return "not_modified"
    return "full_response" if 200 <= status < 300 else "other_status"


def _words(again: HttpFacts, first: HttpFacts | None) -> str:
    status = again.status
    if status == 304:
        return ("304 Not Modified: the stored copy is still good; the server sent headers "
                "only and a cache refreshes its copy's freshness from them (RFC 9111 §4.3.4)")
    before = list(first.response_headers) if first is not None else []
    now = list(again.response_headers)
    etag_then, etag_now = (next(iter(field_values(h, "etag")), None) for h in (before, now))
    lm_then, lm_now = (next(iter(field_values(h, "last-modified")), None)
                       for h in (before, now))
    if status is not None and 200 <= status < 300:
        if etag_then is not None and etag_now is not None and etag_now != etag_then:
            return (f"{status}, a full response: the ETag changed ({etag_then} → {etag_now}), "
                    "so the content did: sending it again was right")
        if etag_then is not None and etag_now == etag_then:
            return (f"{status}, a full response with the same ETag: the server ignored "
                    "If-None-Match; it should have answered 304 (RFC 9110 §13.1.2, "
                    "§15.4.5) and the whole body crossed the network again")
        if lm_then is not None and lm_now == lm_then:
            return (f"{status}, a full response with the same Last-Modified: the server "
                    "ignored If-Modified-Since (RFC 9110 §13.1.3) and sent the body again")
        return (f"{status}, a full response: the server did not confirm the stored copy "
                "(its validators changed or it does not do conditional requests)")
    return (f"{status}: neither 304 nor a new copy; a cache would keep using what it has "
            "only if stale-if-error allows it (RFC 5861 §4), else pass the answer on")


# ------------------------------------------------------------------------------ the journey
def analyze_caching(journey: JourneyDoc) -> CachingAnalysis | None:
    """Each response's policy and the revalidation; None when no response came back."""
    rows: list[tuple[SpanDoc, LegFacts]] = []
    for leg in (s for s in journey.spans if s.name == "leg"):
        http = leg.child("http")
        lf = leg.facts_as(LegFacts)
        facts = http.facts_as(HttpFacts) if http is not None else None
        if http is not None and facts is not None and facts.status is not None and lf:
            rows.append((http, lf))
    if not rows:
        return None
    t0 = journey.clock.t0_wall_ns
    policies = [response_policy(span, lf, i == len(rows) - 1, t0)
                for i, (span, lf) in enumerate(rows)]
    return CachingAnalysis(policies, revalidation_check(journey, rows[-1][0]), RULES)
