"""The one view of a journey that every renderer lays out.

``journey_view(read(data))`` turns the journey's document (its JSON dict, read into the typed
``contract.document.JourneyDoc``) into plain frozen dataclasses, in reading order: the summary
with the budget verdicts (analysis/), the URL, the set-up, each request (its DNS, TCP, TLS and
HTTP steps: render/steps.py), the page in headless Chromium (render/browser_view.py), the TLS
1.2 vs 1.3 comparison (render/compare.py), the findings, the actors with their roles, the
waterfall, the layers and the cheat sheet. :data:`SECTIONS` names the report's sections in
order. The terminal (render/terminal.py), the HTML report (render/html.py) and the live page
(web/events.py) read this and only lay it out, so a value is worded once and a verdict is the
same everywhere.

Theory of operation: analyses (what is good, who is who, where the time went) are computed
by analysis/ from the document; the view only joins them to the spans they are about (a
verdict carries its span's id) and words them. Nothing here formats for a medium: no HTML,
no terminal styles. Strings are the journey's own; each renderer makes them safe on its way
out (render/visible.py, html.escape).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from whathappens.analysis.actors import actors
from whathappens.analysis.budgets import RULES, verdicts
from whathappens.analysis.document import without_analysis
from whathappens.analysis.model import Actor, AnalysisSummary, Verdict
from whathappens.analysis.summary import summarize
from whathappens.contract.document import HttpCompare, JourneyDoc, SpanDoc, read_journey
from whathappens.contract.facts import LegFacts, PrepareFacts
from whathappens.explain.fill import explain_compare, explain_page, leg_contexts
from whathappens.explain.report import LAYER_NOTES, RULE_WHY
from whathappens.explain.texts import Explanation
from whathappens.journey import LAYERS
from whathappens.render.browser_view import BrowserView, browser_view
from whathappens.render.caching_view import CachingView, caching_view
from whathappens.render.compare import SHORT_TITLE, CompareView, compare_view
from whathappens.render.format import bracket, ms
from whathappens.render.security_view import SecurityView, WhoView, security_view, who_view
from whathappens.render.steps import (
    LegView,
    Problem,
    Timing,
    UrlView,
    facts,
    leg_view,
    problem,
    timing,
    url_view,
)
from whathappens.render.wire_view import GuideLine, WireView, guide_view, wire_view

# The report's sections, in reading order: (id, title in the navigation). Those in
# OCCASIONAL_SECTIONS stand in a report only when the journey has them (a QUIC leg, an
# HTTP-version comparison asked for); the navigation lists them only then.
SECTIONS = (("glance", "At a glance"), ("url", "URL"), ("dns", "DNS"), ("tcp", "TCP"),
            ("tls", "TLS"), ("quic", "QUIC"), ("tls-compare", SHORT_TITLE),
            ("http-compare", "HTTP versions"), ("http", "HTTP"),
            ("caching", "Caching"), ("who", "Who answered"), ("security", "Security"),
            ("browser", "Browser"), ("waterfall", "Waterfall"), ("timing", "Good timing"),
            ("layers", "Layers"),
            ("cheatsheet", "Cheat sheet"))
OCCASIONAL_SECTIONS = frozenset({"quic", "http-compare"})

BUDGET_LABEL = {"dns": "DNS", "tcp": "TCP", "tls": "TLS", "quic": "QUIC", "ttfb": "TTFB"}


@dataclass(frozen=True)
class BudgetView:
    """A step's verdict against its rule of thumb (analysis/budgets.py), in words."""

    leg: int                     # the request's number, from 1
    span_id: int
    label: str                   # DNS, TCP, TLS, TTFB
    rule: str                    # "< 50 ms", "≈ 1 RTT"
    guide: str                   # the rule here: "TTFB < 200 ms", "≈ 1 RTT: 0.027 ms here"
    outcome: str                 # within, over, unknown
    rtts: str | None             # "8.4": how many of the kernel's RTTs the step took
    mark_ms: float | None        # where on the timeline a healthy step ends

    @property
    def item(self) -> str:
        """``TCP over ≈ 1 RTT (8.4 × RTT)``: the verdict in a few words."""
        more = f" ({self.rtts} × RTT)" if self.rtts else ""
        return f"{self.label} {self.outcome} {self.rule}{more}"


@dataclass(frozen=True)
class RuleView:
    """A rule of thumb as the report explains it: its step, its guide, and why."""

    label: str
    guide: str
    why: str


def rule_views() -> list[RuleView]:
    """The rules of analysis/budgets.py, one line per step (TLS's two versions together)."""
    out: list[RuleView] = []
    for step, label in BUDGET_LABEL.items():
        guide = "; ".join(r.guide for r in RULES if r.step == step)
        out.append(RuleView(label, guide, RULE_WHY.get(step, "")))
    return out


@dataclass(frozen=True)
class SummaryView:
    parts: list[str]             # 200 · HTTP/2 · TLSv1.3 · 94.7 ms total · 2 requests
    failure: Problem | None      # where and why the journey stopped
    budgets: list[BudgetView]
    analysis: AnalysisSummary

    @property
    def line(self) -> str:
        return " · ".join(self.parts)


@dataclass(frozen=True)
class PrepareView:
    timing: Timing
    loaded: list[str]


@dataclass(frozen=True)
class FindingView:
    severity: str                # info, warning, error
    step: str
    message: str

    @property
    def mark(self) -> str:
        return {"error": "✗", "warning": "!"}.get(self.severity, "·")


@dataclass(frozen=True)
class WaterfallRow:
    label: str
    depth: int                   # 0: a request or a journey step, 1: its steps, 2: inside
    timing: Timing
    budget: BudgetView | None


@dataclass(frozen=True)
class LayerRow:
    layer: str
    note: str
    steps: list[str]


@dataclass(frozen=True)
class Command:
    title: str
    command: str


@dataclass(frozen=True)
class OtherStep:
    """A top-level span of no known kind, shown by name and time only."""

    name: str
    timing: Timing
    error: Problem | None


@dataclass(frozen=True)
class JourneyView:
    url: str
    clock: str
    total_ms: float | None
    exit_code: int
    redirects: int
    summary: SummaryView
    url_step: UrlView | None
    prepare: PrepareView | None
    legs: list[LegView]
    browser: BrowserView | None  # the page in headless Chromium (render/browser_view.py)
    order: list[UrlView | PrepareView | LegView | BrowserView | OtherStep]  # in order
    compare: CompareView | None
    findings: list[FindingView]
    actors: list[Actor]
    waterfall: list[WaterfallRow]
    layers: list[LayerRow]
    commands: list[Command]
    security: SecurityView | None = None  # render/security_view.py
    who: WhoView | None = None
    caching: CachingView | None = None  # RFC 9111 and the revalidation (caching_view.py)
    # HTTP on the wire, by request index, and the timing guide (render/wire_view.py)
    wire: dict[int, WireView] = field(default_factory=dict)
    guide: list[GuideLine] = field(default_factory=list)
    compare_explain: Explanation | None = None  # the TLS comparison's texts, with its medians
    page_explain: Explanation | None = None     # what a browser does next (no browser phase)
    http_compare: HttpCompare | None = None     # --compare-http: HTTP/1.1 vs 2 vs 3

    @property
    def span_ms(self) -> float:
        """The timeline's length, never zero (bars are placed in fractions of it)."""
        return max(float(self.total_ms or 0.0), 0.001)

    def layer_of(self, step: str) -> str | None:
        """The layer the journey recorded for the first step of this name."""
        return next((ref.timing.layer for leg in self.legs for ref in leg.order
                     if ref.name == step), None)


# ---------------------------------------------------------------------------- builders
def budget_view(v: Verdict) -> BudgetView:
    guide = v.guide
    if v.rtt_ms is not None and v.limit_ms is not None:
        guide = f"{v.guide}: {v.limit_ms:.3f} ms here"
    if v.step == "ttfb":
        guide = f"TTFB {v.guide}"
    rtts = None
    if v.rtt_multiple is not None:
        x = v.rtt_multiple
        rtts = f"{x:,.0f}" if x >= 10 else f"{x:,.1f}"
    return BudgetView(v.leg + 1, v.span_id, BUDGET_LABEL.get(v.step, v.step), v.guide,
                      guide, v.outcome, rtts, v.mark_ms)


def summary_view(doc: JourneyDoc, budgets: list[BudgetView],
                 browser: BrowserView | None = None) -> SummaryView:
    s = summarize(doc)
    parts: list[str] = []
    if s.status:
        parts.append(f"{s.status} {s.reason}".strip())
    parts += [v for v in (s.http_version, s.tls_version) if v]
    parts.append(f"{ms(s.total_ms)} total")
    if s.requests > 1:
        parts.append(f"{s.requests} requests")
    if browser is not None:
        parts += [f"{m.label} {m.value}" for m in browser.metrics
                  if m.key in ("fcp", "lcp") and m.at_ms is not None]
    return SummaryView(parts, problem(doc.error), budgets, s)


def waterfall(spans: list[SpanDoc], budgets: dict[int, BudgetView]) -> list[WaterfallRow]:
    """Each step and, under a request, its steps; DNS views and HTTP phases one deeper."""
    def row(label: str, span: SpanDoc, depth: int) -> WaterfallRow:
        return WaterfallRow(label, depth, timing(span), budgets.get(span.id))

    rows: list[WaterfallRow] = []
    for s in spans:
        if s.name != "leg":
            rows.append(row(s.name, s, 0))
            continue
        rows.append(row(f"request {facts(s, LegFacts).index + 1}", s, 0))
        for c in s.children:
            rows.append(row(c.name, c, 1))
            if c.name in ("dns", "http"):
                rows += [row(v.name.replace("dns.", "DNS "), v, 2) for v in c.children]
    return rows


def layer_rows(doc: JourneyDoc) -> list[LayerRow]:
    by: dict[str, list[str]] = {}
    for s in doc.all_spans():
        if s.layer and (s.name in ("url", "dns", "tcp", "tls", "quic", "http", "prepare", "browser")
                        or s.name.startswith("server.")):
            names = by.setdefault(s.layer, [])
            if s.name not in names:
                names.append(s.name)
    order = list(LAYERS) + [k for k in by if k not in LAYERS]
    return [LayerRow(layer, LAYER_NOTES.get(layer, ""), by.get(layer, [])) for layer in order]


def commands(doc: JourneyDoc, url: UrlView | None, legs: list[LegView]) -> list[Command]:
    """The same steps with dig, curl and openssl, filled in for this URL."""
    host = url.host if url is not None and url.parsed else ""
    target = doc.url or (url.url if url else "")
    port = (url.port if url and url.port else 443 if url and url.scheme == "https" else 80)
    q = shlex.quote
    out: list[Command] = []
    dns = next((leg.dns for leg in legs if leg.dns is not None), None)
    sources = {s.kind: s for s in (dns.sources if dns else [])}
    if host:
        walk_port = sources["walk"].port if "walk" in sources else None
        p = f" -p {walk_port}" if walk_port and walk_port != 53 else ""
        out.append(Command("Walk DNS from the root, as the walk view did",
                           f"dig +trace{p} {q(host)}"))
        if "resolver" in sources:
            r = sources["resolver"].resolver
            rhost, _, rport = r.rpartition(":") if r.count(":") == 1 else (r, "", "")
            rp = f" -p {int(rport)}" if rport.isdigit() and int(rport) != 53 else ""
            out.append(Command("Ask the same resolver",
                               f"dig @{q(rhost.strip('[]'))}{rp} {q(host)} A"))
        else:
            out.append(Command("Ask your resolver", f"dig {q(host)} A"))
    fmt = ("dns %{time_namelookup}s  connect %{time_connect}s  tls %{time_appconnect}s  "
           "ttfb %{time_starttransfer}s  total %{time_total}s\\n")
    out.append(Command("Time the same phases with curl",
                       f"curl -so /dev/null -w {q(fmt)} {q(target)}"))
    if url is not None and url.scheme == "https" and host:
        out.append(Command("See the TLS handshake and certificate chain",
                           f"openssl s_client -connect {q(f'{host}:{port}')} -servername "
                           f"{q(host)} -alpn h2 </dev/null"))
    tcp = next((leg.tcp for leg in legs if leg.tcp is not None), None)
    if tcp is not None and tcp.address and host:
        pinned = f"{host}:{port}:{bracket(tcp.address)}"
        out.append(Command("Skip DNS and connect to the address this journey used",
                           f"curl -sv --resolve {q(pinned)} -o /dev/null {q(target)}"))
    if host:
        out.append(Command("Run this journey again",
                           f"whathappens {q(target)} --html report.html"))
    return out


def read(data: Mapping[str, object]) -> JourneyDoc:
    """A journey's JSON dict as the typed document the view reads."""
    return read_journey(without_analysis(data))


def journey_view(doc: JourneyDoc) -> JourneyView:
    """The whole journey, viewed once for every renderer."""
    budgets = [budget_view(v) for v in verdicts(doc)]
    order: list[UrlView | PrepareView | LegView | BrowserView | OtherStep] = []
    contexts = leg_contexts(doc.spans)
    for s in doc.spans:
        if s.name == "url":
            order.append(url_view(s))
        elif s.name == "leg":
            order.append(leg_view(s, contexts.get(s.id)))
        elif s.name == "prepare":
            order.append(PrepareView(timing(s), list(facts(s, PrepareFacts).loaded)))
        elif s.name == "browser":
            order.append(browser_view(s, doc))
        else:
            order.append(OtherStep(s.name, timing(s), problem(s.error)))
    url = next((x for x in order if isinstance(x, UrlView)), None)
    legs = [x for x in order if isinstance(x, LegView)]
    return JourneyView(
        url=doc.url, clock=doc.clock.name or "unknown clock", total_ms=doc.total_ms,
        exit_code=doc.exit_code, redirects=doc.facts.redirects or 0,
        summary=summary_view(doc, budgets, next(
            (x for x in order if isinstance(x, BrowserView)), None)), url_step=url,
        prepare=next((x for x in order if isinstance(x, PrepareView)), None), legs=legs,
        browser=next((x for x in order if isinstance(x, BrowserView)), None), order=order,
        compare=compare_view(doc.facts.tls_compare),
        findings=[FindingView(f.severity, f.step, f.message) for f in doc.findings],
        actors=actors(doc), waterfall=waterfall(doc.spans, {b.span_id: b for b in budgets}),
        layers=layer_rows(doc), commands=commands(doc, url, legs),
        security=security_view(doc), who=who_view(doc), caching=caching_view(doc),
        wire=wires(doc), guide=guide_view(doc),
        compare_explain=explain_compare(doc.facts.tls_compare),
        page_explain=None if any(s.name == "browser" for s in doc.spans)
        else explain_page(doc.spans), http_compare=doc.facts.http_compare)


def wires(doc: JourneyDoc) -> dict[int, WireView]:
    """Each request's HTTP step on the wire, when its driver recorded it."""
    out: dict[int, WireView] = {}
    for leg in doc.spans:
        http = leg.child("http") if leg.name == "leg" else None
        w = None if http is None else wire_view(http)
        if w is not None:
            out[facts(leg, LegFacts).index] = w
    return out
