"""What the page says while it loads, from CDP events that arrive live. Pure: no I/O.

The trace (``trace.py``) is exact and complete, but Chromium hands it over only when tracing
ends (measured at 156: even with ``transferMode: ReportEvents`` every ``dataCollected`` comes
after ``Tracing.end``). So that the live page can show the page's moments *as they happen*,
the capture also listens to two live sources, and ``LiveMoments`` turns them into
``LiveMark``s on the journey's clock:

- ``Page.lifecycleEvent`` (``firstPaint``, ``firstContentfulPaint``, ``DOMContentLoaded``,
  ``load``): its ``timestamp`` is seconds of CLOCK_MONOTONIC, the journey's clock, and equals
  the trace's own value for the same moment. The empty document Chromium commits before the
  navigation has lifecycle events of its own: only the navigation's loader counts.
- a ``PerformanceObserver`` in an isolated world of our own (``LIVE_WORLD``: the page cannot
  see it, call it or fake its reports) reporting LCP candidates, layout shifts, long tasks and
  the page's ``performance.mark``/``measure`` through a CDP binding. Their ``startTime`` is
  ms after the document's time origin, placed on our clock with the document's
  navigationStart from ``Performance.getMetrics`` (CLOCK_MONOTONIC seconds, equal to the
  trace's ``navigationStart``). The Performance API coarsens those times (a paint's to whole
  ms), so live values are within a few ms of the trace's.

These are for watching. The report is made from the trace once the load is over: its values
replace the live ones (the live page swaps its lists for the final ones).

The page can flood the observer: at most ``MAX_LIVE`` reports are read, each at most
``MAX_PAYLOAD`` characters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LIVE_WORLD = "whathappens-live"
BINDING = "__whathappensLive"
MAX_LIVE = 300
MAX_PAYLOAD = 4096
LIFECYCLE = {
    "firstPaint": "first_paint",
    "firstContentfulPaint": "fcp",
    "DOMContentLoaded": "dom_content_loaded",
    "load": "load",
}
# Runs in the isolated world at each new document, before the page's own scripts. The
# element is described like capture.DESCRIBE does (a CSS-like selector); times are the
# entries' own startTime/duration (ms after the document's time origin).
OBSERVER_JS = """(() => {
  const name = (node) => {
    const el = node && (node.nodeType === 1 ? node : node.parentElement);
    if (!el) return null;
    let s = el.localName;
    if (el.id) s += '#' + el.id;
    for (const c of el.classList) s += '.' + c;
    return s.slice(0, 200);
  };
  const origin = performance.timeOrigin;
  // At most MAX_LIVE reports a document: a page marking in a loop costs us nothing more.
  let left = MAX_LIVE_COUNT;
  // The binding is looked up when a report is sent: it may be installed after this runs.
  const send = (o) => {
    if (left-- <= 0) return;
    try { o.origin = origin; globalThis[BINDING_NAME](JSON.stringify(o)); } catch (e) {}
  };
  const kinds = {
    'largest-contentful-paint': (e) => ({kind: 'lcp', t: e.startTime, element: name(e.element),
                                         url: e.url || null, value: e.size}),
    'layout-shift': (e) => ({kind: 'layout_shift', t: e.startTime, value: e.value,
                             recent_input: e.hadRecentInput,
                             element: (e.sources || []).map((s) => name(s.node))
                               .filter(Boolean).join(', ') || null}),
    'longtask': (e) => ({kind: 'long_task', t: e.startTime, duration: e.duration}),
    'mark': (e) => ({kind: 'user_mark', t: e.startTime, name: String(e.name).slice(0, 200)}),
    'measure': (e) => ({kind: 'user_measure', t: e.startTime, duration: e.duration,
                        name: String(e.name).slice(0, 200)}),
  };
  for (const [type, make] of Object.entries(kinds)) {
    try {
      new PerformanceObserver((list) => { for (const e of list.getEntries()) send(make(e)); })
        .observe({type, buffered: true});
    } catch (e) { /* an entry type this Chromium does not have */ }
  }
})();""".replace("BINDING_NAME", json.dumps(BINDING)).replace("MAX_LIVE_COUNT", str(MAX_LIVE))


@dataclass
class LiveMark:
    """A moment (or, with ``end_ns``, a stretch: a long task, a measure) seen live."""

    mark: str            # first_paint fcp dom_content_loaded load lcp layout_shift
    t_ns: int            # long_task user_mark user_measure; ns since the journey's t0
    end_ns: int | None = None
    element: str | None = None
    url: str | None = None
    value: float | None = None
    name: str | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) < 1e15 else None  # not NaN, finite


def _text(value: Any, limit: int = 2000) -> str | None:
    return str(value)[:limit] if isinstance(value, str) and value else None


@dataclass
class LiveMoments:
    """Reads the live sources; ``on_mark`` hears each moment on the journey's clock.

    ``loaders``: the main frame's navigations (CDP's loaderId of each document request the
    capture saw); lifecycle events of other loaders (the empty first document, iframes) are
    ignored.
    ``frame_id``: the page's main frame. ``navigation_start_s``: the document's
    navigationStart (CLOCK_MONOTONIC seconds) for the document whose ``performance.timeOrigin``
    is ``time_origin``; binding reports of another document wait in ``pending`` until the
    capture has asked Chromium for its navigationStart (``wants_navigation_start``).
    """

    origin_ns: int
    on_mark: Callable[[LiveMark], None] | None = None
    frame_id: str | None = None
    loaders: set[str] = field(default_factory=set)
    navigation_start_s: float | None = None
    time_origin: float | None = None
    marks: list[LiveMark] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    reports: int = 0

    def lifecycle(self, params: dict[str, Any]) -> None:
        kind = LIFECYCLE.get(str(params.get("name")))
        stamp = _number(params.get("timestamp"))
        if kind is None or stamp is None or params.get("loaderId") not in self.loaders:
            return
        self._tell(LiveMark(kind, round(stamp * 1e9) - self.origin_ns))

    def binding(self, params: dict[str, Any]) -> None:
        """A ``Runtime.bindingCalled`` of ours (JSON); anything malformed is dropped."""
        if params.get("name") != BINDING or self.reports >= MAX_LIVE:
            return
        self.reports += 1
        payload = params.get("payload")
        if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD:
            return
        try:
            report = json.loads(payload)
        except ValueError:
            return
        if isinstance(report, dict):
            self.pending.append(report)
            self.flush()

    def navigation(self, params: dict[str, Any]) -> None:
        """A ``Network.requestWillBeSent``: a document request of the main frame names a
        navigation whose lifecycle events count."""
        if (params.get("type") == "Document" and params.get("loaderId") == params.get("requestId")
                and (self.frame_id is None or params.get("frameId") == self.frame_id)):
            self.loaders.add(str(params.get("loaderId")))

    @property
    def wants_navigation_start(self) -> float | None:
        """The time origin of a document whose reports wait for its navigationStart."""
        for report in self.pending:
            origin = _number(report.get("origin"))
            if origin is not None and origin != self.time_origin:
                return origin
        return None

    def set_navigation_start(self, seconds: float | None, time_origin: float) -> None:
        """``Performance.getMetrics``' NavigationStart, read after a report of the document
        with ``time_origin`` arrived (so it is that document's)."""
        if seconds:
            self.navigation_start_s, self.time_origin = seconds, time_origin
            self.flush()

    def flush(self) -> None:
        if self.navigation_start_s is None:
            return
        waiting: list[dict[str, Any]] = []
        for report in self.pending:
            if _number(report.get("origin")) != self.time_origin:
                waiting.append(report)
                continue
            mark = self._from_report(report)
            if mark is not None:
                self._tell(mark)
        self.pending = waiting

    def _from_report(self, r: dict[str, Any]) -> LiveMark | None:
        assert self.navigation_start_s is not None
        kind, t = r.get("kind"), _number(r.get("t"))
        if kind not in ("lcp", "layout_shift", "long_task", "user_mark", "user_measure") \
                or t is None:
            return None
        start_ns = round((self.navigation_start_s * 1000 + t) * 1e6) - self.origin_ns
        duration = _number(r.get("duration"))
        mark = LiveMark(str(kind), start_ns, element=_text(r.get("element"), 400),
                        url=_text(r.get("url")), value=_number(r.get("value")),
                        name=_text(r.get("name"), 200))
        if duration is not None and kind in ("long_task", "user_measure"):
            mark.end_ns = start_ns + round(max(duration, 0.0) * 1e6)
        if kind == "layout_shift" and r.get("recent_input") is True:
            return None  # a shift right after input does not count (Layout Instability)
        return mark

    def _tell(self, mark: LiveMark) -> None:
        self.marks.append(mark)
        if self.on_mark is not None:
            self.on_mark(mark)
