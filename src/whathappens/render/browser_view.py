"""The view of the browser phase (issue 10): what every renderer shows about the page loading in
headless Chromium, worked out once.

From the ``browser`` span and its children (``browser.resource``, ``browser.stage``,
``browser.mark``) of the typed document, joined to the analysis (analysis/browser.py: the Core
Web Vitals verdicts and the critical chains), it builds plain frozen dataclasses:

- the navigation: Chromium's timing of the document beside the journey's own DNS, TCP and TLS
  (Chromium preconnects, so its document shows no connect or TLS: ours are the ones to read);
- the subresource waterfall: one row per request with its type, priority, render-blocking
  class, connection and HTTP/2 stream, timing phases, bytes and cache status; each request
  gets a lane within its connection (requests in flight at once on different lanes), so that
  multiplexing reads as parallel bars on one connection;
- the rendering path: the stages in the order they ran, each with its words filled in with this
  page's values (explain/browser.py);
- the metrics (DOMContentLoaded, load, first paint, FCP, LCP and its element, CLS and what
  moved) with their verdicts, the chains in sentences, the filmstrip frames.

Times on the page are counted from the navigation's start (written ``+345.2 ms``); bars are
placed between the navigation's start and the browser span's end. Nothing here formats for a
medium; strings are the journey's own, made safe by each renderer at its exit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from whathappens.analysis.browser import BLOCKING, browser_analysis, moment, navigation_start
from whathappens.analysis.model import BrowserAnalysis, ChainLink, VitalVerdict
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import (
    BrowserFacts,
    BrowserMarkFacts,
    BrowserResourceFacts,
    BrowserStageFacts,
)
from whathappens.explain.browser import ASIDES, SKIPPED_HINT, STAGES
from whathappens.render.format import ms, size
from whathappens.render.steps import Problem, Timing, problem, timing

BLOCKING_WORDS = {"blocking": "render-blocking", "in_body_parser_blocking": "parser-blocking",
                  "potentially_blocking": "potentially blocking", "non_blocking": "non-blocking"}
TYPE_SHORT = {"Document": "doc", "Stylesheet": "css", "Script": "js", "Image": "img",
              "Font": "font", "Fetch": "fetch", "XHR": "xhr", "Media": "media"}
METRIC_LABEL = {"dom_content_loaded": "DOMContentLoaded", "load": "load",
                "first_paint": "first paint", "fcp": "FCP", "lcp": "LCP", "cls": "CLS"}
OUTCOME_WORDS = {"good": "good", "needs_improvement": "needs improvement", "poor": "poor",
                 "unknown": "unknown"}
PHASES = ("queued", "dns", "connect", "tls", "send", "wait", "receive")
# After FCP, the stages shown one by one (the rest is summed up in a line): the page's own work.
WORK = ("script", "long_task", "cssom")


def after(at_ms: float | None, nav: float | None) -> str:
    """``+345.2 ms``: a moment counted from the navigation's start."""
    if at_ms is None or nav is None:
        return "—"
    return "+" + ms(at_ms - nav)


def short_name(url: str) -> str:
    """The last part of a URL's path (``style.css``), or its host for ``/``."""
    parts = urlsplit(url)
    name = parts.path.rstrip("/").rpartition("/")[2]
    return name or parts.netloc or url


# ------------------------------------------------------------------------ subresources
@dataclass(frozen=True)
class Phase:
    name: str                    # queued, dns, connect, tls, send, wait, receive
    ms: float


@dataclass(frozen=True)
class ResourceRow:
    span_id: int
    timing: Timing
    offset: str                  # "+16.2 ms": requested, after the navigation's start
    url: str
    name: str                    # style.css
    navigation: bool
    resource_type: str           # Stylesheet
    kind: str                    # css
    priority: str
    blocking: str                # render-blocking, parser-blocking, non-blocking
    holds_paint: bool            # render- or parser-blocking: FCP waits for it
    initiator: str
    status: int | None
    protocol: str
    connection: int | None
    reused: bool | None
    stream: int | None
    lane: int                    # within its connection, from 0
    remote: str
    phases: list[Phase]
    encoded: int | None
    decoded: int | None
    cache: str                   # "memory cache", "HIT", ""
    failed: str | None
    role: str                    # "FCP bottleneck", "LCP image", ""
    note: str                    # what to know when reading its timing (a preconnect)

    @property
    def where(self) -> str:
        """``conn 42 · stream 3``."""
        parts = [] if self.connection is None else [f"conn {self.connection}"]
        if self.stream is not None:
            parts.append(f"stream {self.stream}")
        return " · ".join(parts) or "—"

    @property
    def bytes_line(self) -> str:
        return f"{size(self.encoded)} on the wire, {size(self.decoded)} decoded"


@dataclass(frozen=True)
class ConnectionView:
    """One connection the page's requests used: how many, and how many at once."""

    id: int | None
    protocol: str
    remote: str
    requests: int
    streams: list[int]
    lanes: int                   # the most requests in flight at once

    @property
    def line(self) -> str:
        if self.id is None:
            return (f"no connection: {self.requests} request{'s' if self.requests != 1 else ''}"
                    " answered by the browser's own cache, or never sent")
        name = f"connection {self.id}"
        what = f"{self.requests} request{'s' if self.requests != 1 else ''}"
        if self.streams:
            what += f" on streams {', '.join(str(s) for s in self.streams)}"
        return (f"{name} ({self.protocol or '?'}, {self.remote or '?'}): {what}; up to "
                f"{self.lanes} in flight at once")


def _phases(f: BrowserResourceFacts) -> list[Phase]:
    t = f.timing
    if t is None:
        return []
    values = (t.queued_ms, t.dns_ms, t.connect_ms, t.tls_ms, t.send_ms, t.wait_ms,
              t.receive_ms)
    return [Phase(n, v) for n, v in zip(PHASES, values, strict=True) if v is not None]


def _lanes(spans: list[tuple[SpanDoc, BrowserResourceFacts]]) -> dict[int, int]:
    """Per connection, each request on the first lane free when it started."""
    out: dict[int, int] = {}
    busy: dict[int | None, list[float]] = {}
    for span, f in sorted(spans, key=lambda x: (x[0].start_ms, x[0].id)):
        ends = busy.setdefault(_connection(f), [])
        end = span.end_ms if span.end_ms is not None else span.start_ms
        lane = next((i for i, e in enumerate(ends) if e <= span.start_ms), len(ends))
        if lane == len(ends):
            ends.append(end)
        else:
            ends[lane] = end
        out[span.id] = lane
    return out


def _cache(f: BrowserResourceFacts) -> str:
    if f.from_cache:
        return f"{f.from_cache} cache"
    # With --lab, the tiers the request went through (their spans are merged under it).
    inside = f" via {' → '.join(f.inside)}" if f.inside else ""
    return (f.cache_status or "") + inside


def _connection(f: BrowserResourceFacts) -> int | None:
    """The connection a request went over; none when the browser's cache answered it (CDP
    says connection 0 then)."""
    return None if f.from_cache or f.connection_id == 0 else f.connection_id


def resource_rows(spans: list[tuple[SpanDoc, BrowserResourceFacts]], nav: float | None,
                  roles: dict[int, str]) -> list[ResourceRow]:
    lanes = _lanes(spans)
    return [ResourceRow(
        s.id, timing(s), after(s.start_ms, nav), f.url, short_name(f.url), f.navigation,
        f.resource_type, TYPE_SHORT.get(f.resource_type, f.resource_type.lower()),
        f.priority or "", BLOCKING_WORDS.get(f.render_blocking or "", f.render_blocking or ""),
        f.render_blocking in BLOCKING, f.initiator or "", f.status, f.protocol or "",
        _connection(f), f.connection_reused, f.stream_id, lanes.get(s.id, 0),
        f.remote_address or "", _phases(f), f.encoded_bytes, f.decoded_bytes, _cache(f),
        f.failed, roles.get(s.id, ""), f.note or "") for s, f in spans]


def connections(rows: list[ResourceRow]) -> list[ConnectionView]:
    out: list[ConnectionView] = []
    for cid in dict.fromkeys(r.connection for r in rows):
        mine = [r for r in rows if r.connection == cid]
        out.append(ConnectionView(
            cid, mine[0].protocol, mine[0].remote, len(mine),
            sorted(r.stream for r in mine if r.stream is not None),
            max(r.lane for r in mine) + 1))
    return out


# ------------------------------------------------------------------ rendering path
@dataclass(frozen=True)
class StageRow:
    span_id: int
    timing: Timing
    offset: str
    stage: str                   # dom, cssom, …
    label: str                   # DOM, CSSOM, Style…
    does: str                    # what the stage is
    event: str                   # the trace event
    url: str
    count: int
    words: str                   # this page's values in a sentence (--explain)
    critical: bool               # it ran before FCP: on the critical rendering path

    @property
    def line(self) -> str:
        what = f" {short_name(self.url)}" if self.url else ""
        times = f" ×{self.count}" if self.count > 1 else ""
        return f"{self.label}{what}{times}"


def times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def stage_rows(span: SpanDoc, nav: float | None, fcp_at: float | None) -> list[StageRow]:
    out: list[StageRow] = []
    stages = sorted(((c, f) for c in span.children
                     if (f := c.facts_as(BrowserStageFacts)) is not None
                     and f.stage not in ASIDES),
                    key=lambda x: (x[0].start_ms, x[0].id))
    for c, f in stages:
        text = STAGES.get(f.stage)
        label = text.label if text else f.stage
        words = "" if text is None else text.template.format(
            took=ms(c.duration_ms), times=times(f.count), at=after(c.start_ms, nav),
            what=short_name(f.url) if f.url else "the page")
        out.append(StageRow(c.id, timing(c), after(c.start_ms, nav), f.stage, label,
                            text.does if text else "", f.event, f.url or "", f.count, words,
                            fcp_at is None or c.start_ms <= fcp_at))
    return out


# ---------------------------------------------------------- beside the rendering path
@dataclass(frozen=True)
class AsideRow:
    """What the page waited on or timed itself: a web font's load, an image's decode, a
    ``performance.measure`` (stretches) or a ``performance.mark`` (a moment)."""

    kind: str                    # font_load, image_decode, user_measure, user_mark
    label: str                   # Font, Decode, Measure, Mark
    what: str                    # the font file and family, the image, the measure's name
    offset: str
    timing: Timing
    words: str                   # this page's values in a sentence (--explain)

    @property
    def line(self) -> str:
        took = "" if self.kind == "user_mark" else f" ({ms(self.timing.duration_ms)})"
        return f"{self.label} {self.what} at {self.offset}{took}"


def _aside_what(kind: str, url: str | None, name: str | None) -> str:
    if kind == "font_load":
        return (short_name(url) if url else "a font") + (f" ({name})" if name else "")
    if kind == "image_decode":
        return short_name(url) if url else f"an image ({name or 'unknown type'})"
    return repr(name) if name else "(no name)"


def aside_rows(span: SpanDoc, nav: float | None) -> list[AsideRow]:
    """Font loads, image decodes and the page's own user timing, in the order they began."""
    out: list[tuple[float, int, AsideRow]] = []
    for c in span.children:
        stage, mark = c.facts_as(BrowserStageFacts), c.facts_as(BrowserMarkFacts)
        if stage is not None and stage.stage in ASIDES:
            kind, url, name = stage.stage, stage.url, stage.name
        elif mark is not None and mark.mark == "user_mark":
            kind, url, name = "user_mark", None, mark.name
        else:
            continue
        text = ASIDES[kind]
        what = _aside_what(kind, url, name)
        words = text.template.format(what=what, took=ms(c.duration_ms),
                                     at=after(c.start_ms, nav))
        out.append((c.start_ms, c.id, AsideRow(kind, text.label, what, after(c.start_ms, nav),
                                                timing(c), words)))
    return [row for *_, row in sorted(out, key=lambda x: (x[0], x[1]))]


# --------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class MetricRow:
    key: str                     # dom_content_loaded, load, first_paint, fcp, lcp, cls
    label: str
    value: str                   # "+345.2 ms", "0.12"
    at_ms: float | None          # on the journey's clock (none for CLS)
    guide: str                   # "≤ 1.8 s" for the vitals
    outcome: str                 # good, needs improvement, poor, unknown; "" for the others
    detail: str                  # the LCP element, what moved

    @property
    def item(self) -> str:
        """``FCP +345.2 ms good (≤ 1.8 s)``."""
        verdict = f" {self.outcome} ({self.guide})" if self.outcome else ""
        more = f": {self.detail}" if self.detail else ""
        return f"{self.label} {self.value}{verdict}{more}"


def metric_rows(span: SpanDoc, f: BrowserFacts, nav: float | None,
                vitals: dict[str, VitalVerdict]) -> list[MetricRow]:
    """Each moment where its mark put it on the journey's clock (else the navigation's start
    plus the facts' time after it), with its verdict when it is a Core Web Vital."""
    def row(key: str, after_nav: float | None, detail: str = "") -> MetricRow:
        v = vitals.get(key)
        at_ms, _ = moment(span, key, nav, after_nav)
        return MetricRow(key, METRIC_LABEL[key], after(at_ms, nav), at_ms,
                         v.guide if v else "", OUTCOME_WORDS[v.outcome] if v else "", detail)

    moved = list(dict.fromkeys(m for s in f.layout_shifts for m in s.moved))
    cls = vitals.get("cls")
    return [
        row("dom_content_loaded", f.dom_content_loaded_ms), row("load", f.load_ms),
        row("first_paint", f.first_paint_ms), row("fcp", f.fcp_ms),
        row("lcp", f.lcp_ms, f.lcp_element or ""),
        MetricRow("cls", "CLS", "—" if f.cls is None else f"{f.cls:.3g}", None,
                  cls.guide if cls else "", OUTCOME_WORDS[cls.outcome] if cls else "",
                  f"{', '.join(moved)} moved" if moved else ""),
    ]


# ---------------------------------------------------------------------------- chains
@dataclass(frozen=True)
class ChainStep:
    label: str                   # discovered, requested, loaded, painted (LCP)
    at_ms: float
    offset: str


@dataclass(frozen=True)
class ChainsView:
    fcp: str                     # "FCP waited 308.3 ms for style.css, …"; "" when unknown
    fcp_blocking: list[str]      # every render-blocking resource that finished before FCP
    lcp: str                     # "LCP img.hero: its image hero.jpg …"
    lcp_steps: list[ChainStep]


def _link_words(x: ChainLink, nav: float) -> str:
    kind = {"Stylesheet": "stylesheet", "Script": "script"}.get(x.resource_type,
                                                                x.resource_type.lower())
    return (f"{short_name(x.url)}, a {BLOCKING_WORDS.get(x.render_blocking or '', '')} "
            f"{kind} requested at {after(x.requested_ms, nav)}, loaded at "
            f"{after(x.loaded_ms, nav)}")


def chains(a: BrowserAnalysis) -> ChainsView:
    fcp, blocking, lcp, steps = "", [], "", []
    if a.fcp_chain is not None:
        c = a.fcp_chain
        blocking = [_link_words(x, c.navigation_ms) for x in c.blocking]
        if c.bottleneck is not None:
            b = c.bottleneck
            fcp = (f"FCP waited {ms(b.took_ms)} for {_link_words(b, c.navigation_ms)}; then "
                   f"{ms(c.rendering_ms)} of style, layout and paint to FCP at "
                   f"{after(c.fcp_ms, c.navigation_ms)}.")
        else:
            fcp = (f"No render-blocking resource held FCP back: it came "
                   f"{ms(c.rendering_ms)} after the document's last byte, at "
                   f"{after(c.fcp_ms, c.navigation_ms)}.")
    if a.lcp_chain is not None:
        lc, nav = a.lcp_chain, a.lcp_chain.navigation_ms
        r = lc.resource
        if r is not None:
            steps = [ChainStep("discovered", r.requested_ms, after(r.requested_ms, nav)),
                     ChainStep("requested", r.sent_ms, after(r.sent_ms, nav)),
                     ChainStep("loaded", r.loaded_ms, after(r.loaded_ms, nav))]
            lcp = (f"LCP {lc.element or 'element'}: its image {short_name(r.url)} was "
                   f"discovered at {after(r.requested_ms, nav)}, loaded in {ms(r.took_ms)}"
                   + (f", decoded in {ms(lc.decoded_ms)}" if lc.decoded_ms is not None else "")
                   + f" and painted {ms(lc.render_delay_ms)} later, at "
                   f"{after(lc.painted_ms, nav)}.")
        else:
            lcp = (f"LCP {lc.element or 'element'} (no resource of its own: text) painted "
                   f"at {after(lc.painted_ms, nav)}.")
        steps.append(ChainStep("painted (LCP)", lc.painted_ms, after(lc.painted_ms, nav)))
    return ChainsView(fcp, blocking, lcp, steps)


# ------------------------------------------------------------------------ the phase
@dataclass(frozen=True)
class FrameView:
    t_ms: float
    offset: str
    image: str                   # a data: URI
    width: int | None
    height: int | None


@dataclass(frozen=True)
class NavigationView:
    """The document as Chromium timed it, beside the journey's own steps."""

    url: str
    status: int | None
    protocol: str
    chromium: list[Phase]        # Chromium's phases of the document request
    preconnected: bool           # no connect/TLS of its own: the connection was there
    ours: list[tuple[str, float | None]]  # the journey's DNS, TCP, TLS, TTFB
    note: str                    # the capture's word on the document's timing, if any


@dataclass(frozen=True)
class BrowserView:
    span_id: int
    timing: Timing
    end_ms: float                # the page's last request, stage, moment or frame
    error: Problem | None        # the span's error, when the phase failed with one
    outcome: str                 # loaded, failed, skipped
    why: str
    browser: str
    url: str
    warm: bool
    launch_ms: float | None
    navigation_ms: float | None
    requests: int
    bytes_on_wire: int
    long_tasks: int
    navigation: NavigationView | None
    resources: list[ResourceRow]
    connections: list[ConnectionView]
    stages: list[StageRow]
    metrics: list[MetricRow]
    chains: ChainsView
    filmstrip: list[FrameView]
    notes: list[str]             # what to know when reading the numbers (a cut trace…)
    asides: list[AsideRow] = field(default_factory=list)
    settle_ms: float | None = None   # the wait after load for the page to go quiet
    settle_ended: str = ""           # why it ended

    @property
    def settle_line(self) -> str:
        """``waited 532.1 ms after load for the page to settle (quiet: …)``."""
        if self.settle_ms is None:
            return ""
        why = f" ({self.settle_ended})" if self.settle_ended else ""
        return f"waited {ms(self.settle_ms)} after load for the page to settle{why}"

    @property
    def loaded(self) -> bool:
        return self.outcome == "loaded"

    @property
    def skipped_line(self) -> str:
        """One line for a phase that did not load: what happened, why, and how to get it."""
        what = {"skipped": "skipped", "failed": "failed"}.get(self.outcome, self.outcome)
        hint = f" {SKIPPED_HINT}" if self.outcome == "skipped" else ""
        return f"The browser phase {what}: {self.why or 'no reason given'}.{hint}"

    @property
    def line(self) -> str:
        """``Chromium 130 · 9 requests, 92.7 KiB · launch 195.0 ms (cold)``."""
        parts = [self.browser or "Chromium", f"{self.requests} requests, "
                 f"{size(self.bytes_on_wire)} on the wire"]
        if self.launch_ms is not None:
            parts.append(f"launch {ms(self.launch_ms)} ({'warm' if self.warm else 'cold'})")
        if self.long_tasks:
            parts.append(f"{self.long_tasks} long task{'s' if self.long_tasks != 1 else ''}")
        return " · ".join(parts)

    @property
    def start_ms(self) -> float:
        """Where the page's own timeline starts: the navigation (else the span's start)."""
        return self.navigation_ms if self.navigation_ms is not None else self.timing.start_ms

    @property
    def span_ms(self) -> float:
        """The page's timeline: from its start to the last thing the page did (a request, a
        stage, a moment, a frame), not to the span's end, which includes closing the
        browser and reading the trace back."""
        return max(self.end_ms - self.start_ms, 0.001)

    @property
    def shown_stages(self) -> list[StageRow]:
        """The rendering path to FCP, and after it the page's own work (scripts, long tasks,
        late stylesheets); :attr:`later_line` sums up the rest."""
        return [s for s in self.stages if s.critical or s.stage in WORK]

    @property
    def later_stages(self) -> list[StageRow]:
        return [s for s in self.stages if not s.critical]

    @property
    def later_line(self) -> str:
        """After FCP, in one line: the frames redrawn and the work each stage did."""
        later = self.later_stages
        if not later:
            return ""
        by: dict[str, tuple[int, float]] = {}
        for s in later:
            n, took = by.get(s.label, (0, 0.0))
            by[s.label] = (n + s.count, took + (s.timing.duration_ms or 0.0))
        frames = by.get(STAGES["composite"].label, (0, 0.0))[0]
        parts = ", ".join(f"{label} ×{n} ({ms(took)})" for label, (n, took) in by.items())
        return (f"after FCP, until {later[-1].offset}: {len(later)} more stages, "
                f"{frames} frame{'s' if frames != 1 else ''} drawn — {parts}")

    @property
    def metrics_line(self) -> str:
        return " · ".join(m.item for m in self.metrics if m.value != "—")


def _ours(doc: JourneyDoc) -> list[tuple[str, float | None]]:
    legs = [s for s in doc.spans if s.name == "leg"]
    first = {name: next((c.duration_ms for leg in legs for c in leg.children if c.name == name),
                        None) for name in ("dns", "tcp", "tls")}
    wait = next((w.duration_ms for leg in reversed(legs) for h in leg.children
                 if h.name == "http" for w in h.children if w.name == "http.wait"), None)
    return [("DNS", first["dns"]), ("TCP", first["tcp"]), ("TLS", first["tls"]),
            ("TTFB", wait)]


def navigation_view(rows: list[ResourceRow], doc: JourneyDoc | None) -> NavigationView | None:
    nav = next((r for r in rows if r.navigation), None)
    if nav is None:
        return None
    names = {p.name for p in nav.phases}
    return NavigationView(nav.url, nav.status, nav.protocol, nav.phases,
                          bool(nav.reused) or not names & {"connect", "tls"},
                          [] if doc is None else _ours(doc), nav.note)


def page_end(span: SpanDoc, f: BrowserFacts) -> float:
    ends = [c.end_ms for c in span.children if c.end_ms is not None]
    ends += [x.t_ms for x in f.filmstrip]
    end = span.end_ms if span.end_ms is not None else span.start_ms
    return max(ends) if ends else end


def roles(a: BrowserAnalysis | None) -> dict[int, str]:
    out: dict[int, str] = {}
    if a is not None and a.fcp_chain is not None and a.fcp_chain.bottleneck is not None:
        out[a.fcp_chain.bottleneck.span_id] = "FCP bottleneck"
    if a is not None and a.lcp_chain is not None and a.lcp_chain.resource is not None:
        out[a.lcp_chain.resource.span_id] = "LCP image"
    return out


def browser_view(span: SpanDoc, doc: JourneyDoc | None = None) -> BrowserView:
    """The browser span as every renderer shows it; ``doc``, the journey it is part of,
    gives the navigation our own DNS, TCP and TLS (the live page views the span alone)."""
    f = span.facts_as(BrowserFacts) or BrowserFacts()
    a = browser_analysis(span)
    nav = a.navigation_ms if a is not None else navigation_start(span)
    res = [(c, r) for c in span.children if (r := c.facts_as(BrowserResourceFacts)) is not None]
    rows = resource_rows(res, nav, roles(a))
    vitals: dict[str, VitalVerdict] = {v.metric: v for v in (a.vitals if a else [])}
    return BrowserView(
        span.id, timing(span), page_end(span, f), problem(span.error), f.outcome, f.why or "",
        f.browser or "", f.final_url or f.url,
        f.warm, f.launch_ms, nav, f.requests or len(rows), f.bytes_on_wire, f.long_tasks,
        navigation_view(rows, doc), rows, connections(rows),
        stage_rows(span, nav, a.fcp_chain.fcp_ms if a and a.fcp_chain else None),
        metric_rows(span, f, nav, vitals) if f.outcome == "loaded" else [],
        chains(a) if a is not None else ChainsView("", [], "", []),
        [FrameView(x.t_ms, after(x.t_ms, nav), x.image, x.width, x.height)
         for x in f.filmstrip], list(f.notes), aside_rows(span, nav), f.settle_ms,
        f.settle_ended or "")
