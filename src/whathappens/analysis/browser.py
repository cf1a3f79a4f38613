"""The browser phase judged: Core Web Vitals as guidance, and why the paints came when they did.

Thresholds are Core Web Vitals' published ones (web.dev, "Web Vitals"): First Contentful Paint
is good at 1.8 s or less and poor above 3 s; Largest Contentful Paint good at 2.5 s or less,
poor above 4 s; Cumulative Layout Shift good at 0.1 or less, poor above 0.25. They are meant
for the 75th percentile of real visits; here one load in a lab browser is held against them, so
a verdict is guidance, never a field measurement.

FCP and LCP count from the navigation's start on the journey's clock: Chromium's own when the
facts name it, else the document request's start (the ``browser.resource`` span with
``navigation``). A paint's moment is its ``browser.mark`` span, else the navigation's start plus
the facts' ``fcp_ms`` / ``lcp_ms`` (which, like Web Vitals and Lighthouse, count from the
navigation).

The critical chains:

- FCP: nothing is painted while a render-blocking resource is outstanding — a stylesheet in
  the head (CSSOM, HTML Standard §4.2.4 "contributes a script-blocking style sheet", and the
  render-blocking rules of §8.1.4.7), a parser-blocking script before the content. The ones
  that finished before FCP are the chain; the last to finish is the bottleneck, and what
  follows it up to FCP is the renderer's own work (style, layout, paint, composite).
- LCP: the element's resource (its image) was discovered (the request's start), sent (after
  Chromium's queue), loaded (last byte), then painted: LCP. Text has no resource.

Pure: the typed journey in, :class:`~whathappens.analysis.model.BrowserAnalysis` out.
"""

from __future__ import annotations

from dataclasses import dataclass

from whathappens.analysis.model import (
    BrowserAnalysis,
    ChainLink,
    FcpChain,
    LcpChain,
    Metric,
    VitalOutcome,
    VitalVerdict,
)
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import (
    BrowserFacts,
    BrowserMarkFacts,
    BrowserResourceFacts,
    BrowserStageFacts,
)


@dataclass(frozen=True)
class Threshold:
    metric: Metric
    guide: str
    good: float
    poor: float


FCP = Threshold("fcp", "≤ 1.8 s", 1800.0, 3000.0)
LCP = Threshold("lcp", "≤ 2.5 s", 2500.0, 4000.0)
CLS = Threshold("cls", "≤ 0.1", 0.1, 0.25)
THRESHOLDS = (FCP, LCP, CLS)

# Render-blocking as Chromium classifies a request (CDP Network.RenderBlockingBehavior): these
# hold the first paint back; "potentially_blocking" and "non_blocking" do not.
BLOCKING = ("blocking", "in_body_parser_blocking")


def browser_span(journey: JourneyDoc) -> SpanDoc | None:
    return next((s for s in journey.spans if s.name == "browser"), None)


def resources(span: SpanDoc) -> list[tuple[SpanDoc, BrowserResourceFacts]]:
    return [(c, f) for c in span.children
            if (f := c.facts_as(BrowserResourceFacts)) is not None]


def marks(span: SpanDoc, mark: str) -> list[SpanDoc]:
    return [c for c in span.children
            if (f := c.facts_as(BrowserMarkFacts)) is not None and f.mark == mark]


def navigation_start(span: SpanDoc) -> float | None:
    """The navigation's start on the journey's clock: Chromium's own (``navigation_start_ms``),
    else the document request's start, else the launch's end when the launch was timed."""
    b = span.facts_as(BrowserFacts)
    if b is not None and b.navigation_start_ms is not None:
        return b.navigation_start_ms
    nav = next((c for c, f in resources(span) if f.navigation), None)
    if nav is not None:
        return nav.start_ms
    return None if b is None or b.launch_ms is None else span.start_ms + b.launch_ms


def moment(span: SpanDoc, mark: str, nav: float | None,
           after_nav: float | None) -> tuple[float | None, int | None]:
    """Where a moment of the page happened on the journey's clock, and its mark's span: the
    last mark of its kind (LCP's candidates are replaced by larger ones; the last is the LCP),
    else the navigation's start + the facts' time after it."""
    found = marks(span, mark)
    if found:
        return found[-1].start_ms, found[-1].id
    return (None if nav is None or after_nav is None else nav + after_nav), None


def outcome(t: Threshold, value: float | None) -> VitalOutcome:
    if value is None:
        return "unknown"
    if value <= t.good:
        return "good"
    return "needs_improvement" if value <= t.poor else "poor"


def link(span: SpanDoc, f: BrowserResourceFacts) -> ChainLink:
    queued = f.timing.queued_ms if f.timing is not None else None
    end = span.end_ms if span.end_ms is not None else span.start_ms
    return ChainLink(span.id, f.url, f.resource_type, f.render_blocking, f.priority,
                     span.start_ms, round(span.start_ms + (queued or 0.0), 3), end,
                     round(end - span.start_ms, 3))


def fcp_chain(span: SpanDoc, nav: float, fcp_at: float) -> FcpChain:
    """The render-blocking resources that finished before FCP; the last is the bottleneck."""
    blocking = sorted((link(c, f) for c, f in resources(span)
                       if not f.navigation and f.render_blocking in BLOCKING
                       and c.end_ms is not None and c.end_ms <= fcp_at),
                      key=lambda x: x.loaded_ms)
    bottleneck = blocking[-1] if blocking else None
    document = next((c for c, f in resources(span) if f.navigation), None)
    ready = (bottleneck.loaded_ms if bottleneck is not None
             else document.end_ms if document is not None else None)
    return FcpChain(fcp_at, nav, blocking, bottleneck,
                    None if ready is None else round(fcp_at - ready, 3))


def lcp_chain(span: SpanDoc, nav: float, lcp_at: float, facts: BrowserFacts) -> LcpChain:
    mark = marks(span, "lcp")
    m = mark[-1].facts_as(BrowserMarkFacts) if mark else None
    element = (m.element if m is not None else None) or facts.lcp_element
    url = (m.url if m is not None else None) or facts.lcp_url
    found = [(c, f) for c, f in resources(span) if url and f.url == url]
    before = [(c, f) for c, f in found if c.end_ms is not None and c.end_ms <= lcp_at]
    pick = before or found
    res = link(*pick[-1]) if pick else None
    decodes = [c.duration_ms or 0.0 for c in span.children
               if (f := c.facts_as(BrowserStageFacts)) is not None and f.stage == "image_decode"
               and res is not None and f.url == url
               and res.loaded_ms <= c.start_ms <= lcp_at]
    return LcpChain(element, url, nav, res, lcp_at,
                    None if res is None else round(lcp_at - res.loaded_ms, 3),
                    round(sum(decodes), 3) if decodes else None)


def vital(t: Threshold, value: float | None, at_ms: float | None = None,
          span_id: int | None = None) -> VitalVerdict:
    return VitalVerdict(t.metric, t.guide, None if value is None else round(value, 3),
                        t.good, t.poor, outcome(t, value), at_ms, span_id)


def analyze_browser(journey: JourneyDoc) -> BrowserAnalysis | None:
    """The browser phase's vitals and chains; None when the journey had no browser phase."""
    span = browser_span(journey)
    return None if span is None else browser_analysis(span)


def browser_analysis(span: SpanDoc) -> BrowserAnalysis | None:
    """The vitals and chains of one browser span (alone: the live page has no journey yet)."""
    facts = span.facts_as(BrowserFacts)
    if facts is None:
        return None
    nav = navigation_start(span)
    if facts.outcome != "loaded" or nav is None:
        return BrowserAnalysis(span.id, facts.outcome, nav, [], None, None)
    fcp_at, fcp_id = moment(span, "fcp", nav, facts.fcp_ms)
    lcp_at, lcp_id = moment(span, "lcp", nav, facts.lcp_ms)
    vitals = [vital(FCP, None if fcp_at is None else fcp_at - nav, fcp_at, fcp_id),
              vital(LCP, None if lcp_at is None else lcp_at - nav, lcp_at, lcp_id),
              vital(CLS, facts.cls)]
    return BrowserAnalysis(
        span.id, facts.outcome, nav, vitals,
        None if fcp_at is None else fcp_chain(span, nav, fcp_at),
        None if lcp_at is None else lcp_chain(span, nav, lcp_at, facts))
