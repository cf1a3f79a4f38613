"""What the live page is told about the browser phase (web/events.py sends it).

Each request the page made is a ``detail`` event as its span ends, and so is each moment
seen live while the page loads (paints, DOMContentLoaded, load, LCP candidates, layout shifts,
long tasks, the page's user timing: browser/live.py). The rendering stages come from the
trace, which Chromium hands over only once tracing ends. The ``browser`` span's own ``step``
event, at the end, carries the final lists (the trace's values replace the live ones), the
metrics with their verdicts, the chains in words and the filmstrip (its frames as
``data:image/`` URIs: the live page's CSP allows ``img-src data:``, and app.js sets no other
``src``). Worded by the view (render/browser_view.py), like the reports; events.py makes every
string visible on the way out.
"""

from __future__ import annotations

from typing import Any

from whathappens.contract.document import SpanDoc
from whathappens.contract.facts import BrowserMarkFacts, BrowserResourceFacts, BrowserStageFacts
from whathappens.explain.browser import ASIDES, STAGES
from whathappens.render.browser_view import (
    METRIC_LABEL,
    ResourceRow,
    after,
    browser_view,
    resource_rows,
    short_name,
)
from whathappens.render.format import ms, size

BROWSER_DETAILS = ("browser.resource", "browser.stage", "browser.mark")


def browser_line(span: SpanDoc) -> str:
    """The browser step's one line: what loaded, or why nothing did."""
    b = browser_view(span)
    return f"{b.url} in {b.line}" if b.loaded else b.skipped_line


def browser_step(span: SpanDoc) -> dict[str, Any]:
    """The browser step's extras: metrics, chains, filmstrip; and the final list of requests,
    stages and moments, which the page shows in place of what streamed in (the trace's facts,
    render-blocking and the rendering stages, are known only once the load is over)."""
    b = browser_view(span)
    marks = [(c, f) for c in span.children if (f := c.facts_as(BrowserMarkFacts)) is not None]
    return {
        "resources": [{"summary": _resource(r), "offset": r.offset,
                       "took": ms(r.timing.duration_ms), "failed": bool(r.failed)}
                      for r in sorted(b.resources, key=lambda r: r.timing.start_ms)],
        "stages": [{"summary": s.line, "offset": s.offset, "took": ms(s.timing.duration_ms),
                    "failed": False} for s in b.shown_stages]
        + ([{"summary": b.later_line, "offset": "", "took": "", "failed": False}]
           if b.later_line else [])
        + [{"summary": f"{a.label} {a.what}", "offset": a.offset,
            "took": "" if a.kind == "user_mark" else ms(a.timing.duration_ms),
            "failed": False} for a in b.asides if a.kind != "user_mark"],  # a moment
        "settle": b.settle_line,
        "marks": [{"summary": _mark(f), "offset": after(c.start_ms, b.navigation_ms),
                   "took": "", "failed": False}
                  for c, f in sorted(marks, key=lambda x: x[0].start_ms)],
        "metrics": [{"label": m.label, "value": m.value, "outcome": m.outcome,
                     "guide": m.guide, "detail": m.detail} for m in b.metrics],
        "chains": [x for x in (b.chains.fcp, b.chains.lcp) if x],
        "notes": b.notes,
        "filmstrip": [{"offset": f.offset, "image": f.image, "width": f.width,
                       "height": f.height} for f in b.filmstrip
                      if f.image.startswith("data:image/")],
    }


def _resource(r: ResourceRow) -> str:
    parts = [f"{r.kind} {r.name}", r.priority, r.blocking, r.where, size(r.encoded)]
    if r.cache:
        parts.append(r.cache)
    if r.failed:
        parts.append(f"✗ {r.failed}")
    return " · ".join(p for p in parts if p)


def _mark(f: BrowserMarkFacts) -> str:
    if f.mark == "user_mark":
        return f"mark {f.name!r}" if f.name else "mark"
    label = METRIC_LABEL.get(f.mark, f.mark.replace("_", " "))
    if f.mark == "layout_shift":
        score = "" if f.value is None else f" {f.value:.3g}"
        return f"layout shift{score}" + (f": {f.element} moved" if f.element else "")
    return label + (f": {f.element}" if f.element else "")


def browser_detail(span: SpanDoc, leg: int | None) -> dict[str, Any]:
    """One request, stage or moment of the browser phase, as it ends (the page computes
    offsets from the first navigation request it was told about)."""
    out: dict[str, Any] = {"step": span.name, "leg": leg, "start_ms": span.start_ms,
                           "end_ms": span.end_ms, "duration_ms": span.duration_ms,
                           "took": ms(span.duration_ms), "failed": span.error is not None}
    resource, stage = span.facts_as(BrowserResourceFacts), span.facts_as(BrowserStageFacts)
    if resource is not None:
        r = resource_rows([(span, resource)], None, {})[0]
        out.update(kind=r.kind, summary=_resource(r), navigation=r.navigation,
                   connection=r.connection, stream=r.stream,
                   failed=out["failed"] or bool(r.failed))
    elif stage is not None:
        text = STAGES.get(stage.stage) or ASIDES.get(stage.stage)
        label = text.label if text else stage.stage
        what = (f" {short_name(stage.url)}" if stage.url else "") + (
            f" {stage.name!r}" if stage.name and stage.stage == "user_measure" else "")
        out.update(kind=stage.stage, summary=label + what, does=text.does if text else "")
    else:
        mark = span.facts_as(BrowserMarkFacts)
        out.update(kind="mark", summary=_mark(mark) if mark is not None else span.name)
    return out
