"""The caching section's view: each response's RFC 9111 policy and the revalidation, in words.

Built from analysis/caching.py's verdicts (the same the JSON's ``analysis.caching`` carries)
and the revalidate span's timing; the terminal (render/terminal_caching.py), the HTML report
(render/html_caching.py) and the live page lay it out. Nothing here formats for a medium.
"""

from __future__ import annotations

from dataclasses import dataclass

from whathappens.analysis.caching import analyze_caching, lifetime_words
from whathappens.analysis.caching_model import (
    CacheVerdict,
    Directive,
    ResponsePolicy,
    RevalidationCheck,
)
from whathappens.contract.document import JourneyDoc
from whathappens.contract.facts import HttpFacts, RevalidateFacts
from whathappens.render.format import ms, size
from whathappens.render.steps import Problem, Timing, problem, timing

TITLE = "Caching (RFC 9111)"
WHO = {"private": "browser (private cache)", "shared": "CDN / proxy (shared cache)"}
NOTE = ("Read from the response's own fields by RFC 9111's rules; lifetimes are what the "
        "server allowed, not measurements; the age and the revalidation are measured.")


@dataclass(frozen=True)
class CacheLine:
    who: str
    verdict: str                 # "may store · fresh 1 min (max-age=60) · 59.2 s left"
    cite: str
    tone: str                    # ok, warn, bad


@dataclass(frozen=True)
class ResponseCaching:
    label: str                   # "request 1 · 200 · https://…/"
    final: bool
    summary: str
    cache_control: str           # as received, or "(none)"
    directives: list[Directive]
    caches: list[CacheLine]
    validators: list[str]        # 'ETag "…" (strong) → sent back as If-None-Match'
    vary: str | None
    extras: list[str]            # stale-while-revalidate, stale-if-error, immutable
    age: str
    problems: list[str]


@dataclass(frozen=True)
class RevalidationView:
    outcome: str                 # not_modified, full_response, other_status, failed, skipped
    headline: str                # "304 Not Modified · TTFB 1.2 ms · reused connection"
    words: str
    sent: list[str]
    connection: str
    rows: list[tuple[str, str, str]]   # what, the first response, the revalidation
    timing: Timing | None
    error: Problem | None
    tone: str


@dataclass(frozen=True)
class CachingView:
    title: str
    responses: list[ResponseCaching]
    revalidation: RevalidationView | None
    rules: str
    note: str

    @property
    def final(self) -> ResponseCaching | None:
        return next((r for r in self.responses if r.final), None)


def cache_line(c: CacheVerdict) -> CacheLine:
    who = WHO[c.cache]
    if not c.may_store:  # the reason names its RFC section
        return CacheLine(who, f"may not store it: {c.why}", "", "bad")
    life = c.lifetime_s or 0.0
    head = f"may store it · fresh {lifetime_words(life)} ({c.rule_words})"
    if c.modelled:
        head += " — modelled, not sent by the server"
    if c.must_revalidate_before_use:
        return CacheLine(who, f"may store it, but must ask the server before each use "
                              f"({c.rule_words})", c.cite, "warn")
    left = c.remaining_s if c.remaining_s is not None else life
    return CacheLine(who, f"{head} · {lifetime_words(round(max(left, 0.0), 1))} left on "
                          "arrival", c.cite, "ok")


def response_caching(p: ResponsePolicy) -> ResponseCaching:
    validators = [f"{v.header} {v.value} ({v.strength}) → sent back as {v.sent_as}"
                  for v in p.validators]
    if not validators and any(c.may_store for c in p.caches):
        validators = ["none: once stale, it can only be fetched again in full"]
    extras: list[str] = []
    if p.stale_while_revalidate_s is not None:
        extras.append(f"stale-while-revalidate={p.stale_while_revalidate_s}: once stale, "
                      f"served for {lifetime_words(p.stale_while_revalidate_s)} more while a "
                      "cache checks it in the background (RFC 5861 §3)")
    if p.stale_if_error_s is not None:
        extras.append(f"stale-if-error={p.stale_if_error_s}: served stale for "
                      f"{lifetime_words(p.stale_if_error_s)} if the server fails (RFC 5861 "
                      "§4)")
    if p.immutable:
        extras.append("immutable: a reload does not revalidate it while fresh (RFC 8246)")
    for d in p.directives:
        if d.name in ("must-revalidate", "proxy-revalidate", "no-cache", "no-store",
                      "private"):
            extras.append(f"{d.name}: {d.meaning} ({d.cite})")
    vary = None
    if p.vary is not None:
        vary = f"Vary: {', '.join(p.vary.fields)} — {p.vary.words}; key: " + \
            " · ".join(p.vary.key)
    return ResponseCaching(
        label=f"request {p.leg + 1} · {p.status} · {p.url}", final=p.final, summary=p.summary,
        cache_control=p.cache_control or "(none)", directives=list(p.directives),
        caches=[cache_line(c) for c in p.caches], validators=validators, vary=vary,
        extras=extras, age=p.age.words if p.age is not None else "", problems=p.problems)


def _status_words(status: int | None) -> str:
    return {304: "304 Not Modified", 200: "200 OK"}.get(status or 0, str(status))


def revalidation_view(check: RevalidationCheck, doc: JourneyDoc) -> RevalidationView:
    span = next((s for s in doc.spans if s.id == check.span_id), None)
    facts = span.facts_as(RevalidateFacts) if span is not None else None
    sent = [f"{n}: {v}" for n, v in check.sent]
    conn = ""
    if facts is not None and facts.connection:
        conn = f"{facts.connection} connection: {facts.connection_why or ''}".rstrip(": ")
    if check.outcome in ("skipped", "failed"):
        head = "not made" if check.outcome == "skipped" else "failed"
        http = span.child("http") if span is not None else None
        err = problem(span.error if span is not None and span.error is not None
                      else http.error if http is not None else None)
        return RevalidationView(check.outcome, head, check.words, sent, conn, [],
                                timing(span) if span is not None and check.outcome ==
                                "failed" else None, err, "warn")
    first = _first_status(doc)
    rows = [("status", "—" if first is None else str(first), str(check.status)),
            ("time to first byte", ms(check.first_ttfb_ms), ms(check.ttfb_ms)),
            ("bytes received on the wire", size(check.first_wire_bytes_received),
             size(check.wire_bytes_received)),
            ("body bytes (as sent)", size(check.first_body_bytes), size(check.body_bytes))]
    head = (f"{_status_words(check.status)} · TTFB {ms(check.ttfb_ms)} · "
            f"{size(check.wire_bytes_received)} received · {facts.connection if facts else ''}"
            " connection")
    tone = "ok" if check.outcome == "not_modified" else "warn"
    return RevalidationView(check.outcome, head, check.words, sent, conn, rows,
                            timing(span) if span is not None else None, None, tone)


def _first_status(doc: JourneyDoc) -> int | None:
    legs = [s for s in doc.spans if s.name == "leg"]
    http = legs[-1].child("http") if legs else None
    f = http.facts_as(HttpFacts) if http is not None else None
    return f.status if f is not None else None


def caching_view(doc: JourneyDoc) -> CachingView | None:
    """The section, or None when no response came back."""
    analysis = analyze_caching(doc)
    if analysis is None:
        return None
    reval = (revalidation_view(analysis.revalidation, doc)
             if analysis.revalidation is not None else None)
    return CachingView(TITLE, [response_caching(p) for p in analysis.responses], reval,
                       analysis.rules, NOTE)
