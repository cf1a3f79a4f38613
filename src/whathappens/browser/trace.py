"""A Chromium performance trace → the page's rendering stages, marks, CLS and filmstrip. Pure.

Theory of operation. ``parse_trace`` reads the JSON that ``Tracing.end`` streamed back
(``{"traceEvents": [...]}``) one event at a time, keeps only the events named here (and tasks
over 50 ms) and stops at a cap, so a hostile page cannot make us hold an unbounded trace.
``analyze`` then finds *the page* in it and reads it:

- the page's renderer is the process (and main thread) of the first ``ParseHTML`` of the
  document's URL in the document's frame. A cross-process navigation first commits an empty
  document (about:blank) in the same frame, with its own DOMContentLoaded and paints; those
  come before that ParseHTML, or carry another ``navigationId``, and are dropped;
- stages (``ParseHTML`` → dom, ``ParseAuthorStyleSheet`` → cssom, ``UpdateLayoutTree`` →
  style, ``Layout``, ``PrePaint``, ``Paint``, ``Layerize``, ``Commit``, ``DrawFrame`` →
  composite, ``EvaluateScript`` → script, ``RunTask`` over 50 ms → long_task), adjacent ones
  of the same stage merged;
- what the page waited on or timed itself (``work``): each web font's load
  (``BeginRemoteFontLoad`` → ``RemoteFontLoaded`` of the same URL), each image decode
  (``Decode Image``; its image found through the ``Decode LazyPixelRef`` around it, whose id
  a ``Draw LazyPixelRef`` inside a main-thread ``PaintImage`` carries with the image's URL),
  and each ``performance.measure`` (a ``blink.user_timing`` async begin/end pair);
- marks: first paint, FCP, the last LCP candidate, DOMContentLoaded, load, layout shifts,
  the page's own ``performance.mark``s (``blink.user_timing`` instant events; Chromium's
  navigation-timing marks in that category are ``R`` events, left out);
  CLS is the largest session window of shifts (Layout Instability API: shifts less than 1 s
  apart, a window at most 5 s long; shifts right after input do not count);
- the filmstrip: ``Screenshot`` events (JPEG, one per visual change), at most ``max_frames``
  spread evenly, the last one always kept.

Clock: a trace ``ts`` is µs of CLOCK_MONOTONIC, the journey's clock: ``ts * 1000 -
origin_ns`` is ns since the journey's t0.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from whathappens.contract.facts import FilmstripFrame, LayoutShiftFacts

Event = dict[str, Any]
Clock = Callable[[float], int]  # a trace ts (µs) → ns since the journey's t0

STAGES = {
    "ParseHTML": "dom",
    "ParseAuthorStyleSheet": "cssom",
    "UpdateLayoutTree": "style",
    "Layout": "layout",
    "PrePaint": "prepaint",
    "Paint": "paint",
    "Layerize": "layerize",
    "Commit": "commit",
    "DrawFrame": "composite",
    "EvaluateScript": "script",
}
LONG_TASK_US = 50_000  # a task over 50 ms (the Long Tasks API's threshold)
MARKS = {
    "firstPaint": "first_paint",
    "firstContentfulPaint": "fcp",
    "largestContentfulPaint::Candidate": "lcp",
    "MarkDOMContent": "dom_content_loaded",
    "MarkLoad": "load",
    "LayoutShift": "layout_shift",
}
OTHER = {"Screenshot", "ResourceSendRequest", "navigationStart", "RunTask"}
FONTS = {"BeginRemoteFontLoad", "RemoteFontLoaded"}
DECODES = {"Decode Image", "Decode LazyPixelRef", "Draw LazyPixelRef", "PaintImage"}
KEPT = frozenset(STAGES) | frozenset(MARKS) | OTHER | FONTS | DECODES
USER_TIMING = "blink.user_timing"
MAX_STAGES = 300           # stage spans kept after merging (the earliest: the critical path)
MAX_WORK = 100             # font loads, image decodes and measures listed (the earliest)
MAX_USER_MARKS = 50        # performance.mark()s listed (the earliest)
MAX_LINKED = 1000          # paint and decode events looked at to link a decode to its image
MAX_SHIFTS = 100           # layout shifts listed (all of them count in CLS)
SESSION_GAP_US = 1_000_000  # Layout Instability: a session window ends after 1 s without shifts
SESSION_MAX_US = 5_000_000  # … or when it is 5 s long


# -------------------------------------------------------------------------------- reading
@dataclass
class ParsedTrace:
    events: list[Event]
    seen: int                    # every event read, kept or not
    truncated: str | None = None


def _wanted(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    name = event.get("name")
    if name == "RunTask":
        return bool(event.get("dur", 0) > LONG_TASK_US)
    if name in KEPT:
        return True
    return event.get("cat") == USER_TIMING and event.get("ph") in ("I", "b", "e")


def parse_trace(text: str, max_events: int) -> ParsedTrace:
    """The events we use from a trace's JSON (object or bare array form), at most
    ``max_events`` read; a cut or broken trace keeps what came before the cut."""
    decoder = json.JSONDecoder()
    start = text.find("[", max(text.find('"traceEvents"'), 0))
    out = ParsedTrace([], 0)
    if start < 0:
        out.truncated = "no trace events"
        return out
    i = start + 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text):
            out.truncated = "the trace was cut short"
            return out
        if text[i] == "]":
            return out
        if out.seen >= max_events:
            out.truncated = f"only the first {max_events} trace events were read"
            return out
        try:
            event, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            out.truncated = "the trace was cut short"
            return out
        out.seen += 1
        if _wanted(event):
            out.events.append(event)


# -------------------------------------------------------------------------------- results
@dataclass
class PageId:
    """How the page is named in the trace: its document URL, frame and loader
    (``navigationId`` in the trace equals CDP's ``loaderId``)."""

    url: str
    frame_id: str | None = None
    loader_id: str | None = None


@dataclass
class StageRecord:
    stage: str
    event: str
    start_ns: int
    end_ns: int
    url: str | None = None
    count: int = 1
    name: str | None = None


@dataclass
class MarkRecord:
    mark: str
    t_ns: int
    element: str | None = None
    url: str | None = None
    value: float | None = None
    name: str | None = None


@dataclass
class NodeInfo:
    """An element as the capture described it (DOM.resolveNode): a CSS-like selector and,
    for an image, its URL."""

    selector: str
    url: str | None = None


@dataclass
class TraceResult:
    renderer: tuple[int, int] | None = None     # (pid, main thread tid)
    navigation_start_ns: int | None = None
    stages: list[StageRecord] = field(default_factory=list)
    stages_dropped: int = 0
    work: list[StageRecord] = field(default_factory=list)   # fonts, decodes, measures
    work_dropped: int = 0
    shifts_dropped: int = 0                     # counted in CLS, not listed
    marks: list[MarkRecord] = field(default_factory=list)
    layout_shifts: list[LayoutShiftFacts] = field(default_factory=list)
    cls: float | None = None
    long_tasks: int = 0
    filmstrip: list[FilmstripFrame] = field(default_factory=list)
    render_blocking: dict[str, str] = field(default_factory=dict)

    def mark(self, name: str) -> MarkRecord | None:
        found = [m for m in self.marks if m.mark == name]
        return found[-1] if found else None


# ------------------------------------------------------------------------------- analysis
def _data(event: Event) -> dict[str, Any]:
    args = event.get("args") or {}
    data = args.get("data") or args.get("beginData") or {}
    return data if isinstance(data, dict) else {}


def _frame(event: Event) -> str | None:
    args = event.get("args") or {}
    frame = args.get("frame") or _data(event).get("frame")
    return str(frame) if frame else None


def find_renderer(events: list[Event], page: PageId) -> tuple[int, int, float] | None:
    """(pid, tid, ts) of the first ParseHTML of the page's document."""
    for want_url in (True, False):
        for e in events:
            if e.get("name") != "ParseHTML":
                continue
            url = _data(e).get("url") or ""
            if page.frame_id and _frame(e) not in (page.frame_id, None):
                continue
            if (url == page.url) if want_url else (url and url != "about:blank"):
                return int(e["pid"]), int(e["tid"]), float(e["ts"])
    return None


def wanted_nodes(events: list[Event]) -> set[int]:
    """DOM node ids worth describing: LCP candidates and elements that moved."""
    ids: set[int] = set()
    for e in events:
        if e.get("name") == "largestContentfulPaint::Candidate":
            nid = _data(e).get("nodeId")
            if isinstance(nid, int):
                ids.add(nid)
        elif e.get("name") == "LayoutShift":
            for node in _data(e).get("impacted_nodes") or []:
                if isinstance(node.get("node_id"), int):
                    ids.add(node["node_id"])
    return ids


def analyze(events: list[Event], page: PageId, origin_ns: int, *, max_frames: int = 12,
            nodes: Mapping[int, NodeInfo] | None = None) -> TraceResult:
    """Everything the trace says about the page, on the journey's clock."""
    nodes = nodes or {}
    out = TraceResult()
    out.render_blocking = {str(_data(e).get("requestId")): str(_data(e)["renderBlocking"])
                           for e in events if e.get("name") == "ResourceSendRequest"
                           and _data(e).get("renderBlocking")}
    found = find_renderer(events, page)
    if found is None:
        return out
    pid, tid, ts0 = found
    out.renderer = (pid, tid)

    def ns(ts: float) -> int:
        return round(ts * 1000) - origin_ns

    ours = [e for e in events if e.get("pid") == pid and float(e.get("ts", 0)) >= ts0]
    nav = [e for e in events if e.get("name") == "navigationStart" and e.get("pid") == pid
           and (_data(e).get("navigationId") == page.loader_id
                or _data(e).get("documentLoaderURL") == page.url)]
    if nav:
        out.navigation_start_ns = ns(float(nav[-1]["ts"]))
    out.stages, out.stages_dropped = _stages(ours, tid, ns)
    out.long_tasks = sum(1 for s in out.stages if s.stage == "long_task")
    out.marks = _marks(ours, page, ns, nodes) + user_marks(ours, page, ns)
    work = sorted(font_loads(ours, ns) + image_decodes(ours, ns) + user_measures(ours, ns),
                  key=lambda w: (w.start_ns, w.end_ns))
    out.work, out.work_dropped = work[:MAX_WORK], max(len(work) - MAX_WORK, 0)
    shifts = _shifts(ours, page, ns, nodes)
    out.cls = cumulative_layout_shift(shifts) if out.marks else None
    out.layout_shifts, out.shifts_dropped = shifts[:MAX_SHIFTS], max(len(shifts) - MAX_SHIFTS, 0)
    start_ts = float(nav[-1]["ts"]) if nav else ts0
    shots = [e for e in events if e.get("name") == "Screenshot"
             and float(e.get("ts", 0)) >= start_ts]
    out.filmstrip = filmstrip(shots, ns, max_frames)
    return out


def _stages(ours: list[Event], main_tid: int, ns: Clock) -> tuple[list[StageRecord], int]:
    raw: list[StageRecord] = []
    for e in ours:
        name = str(e.get("name"))
        if name == "RunTask":
            if e.get("tid") != main_tid:
                continue
            stage = "long_task"
        elif name in STAGES:
            stage = STAGES[name]
        else:
            continue
        start = ns(float(e["ts"]))
        end = start + round(float(e.get("dur", 0)) * 1000)
        url = None
        if stage == "cssom":
            url = _data(e).get("styleSheetUrl")
        elif stage == "script":
            url = _data(e).get("url") or None
        raw.append(StageRecord(stage, name, start, end, url))
    raw.sort(key=lambda s: (s.start_ns, s.end_ns))
    merged = merge_adjacent(raw)
    return merged[:MAX_STAGES], max(len(merged) - MAX_STAGES, 0)


def merge_adjacent(stages: list[StageRecord]) -> list[StageRecord]:
    """Runs of the same stage (and the same URL) in a row become one span with a count.
    Long tasks are never merged: each one is a fact on its own."""
    out: list[StageRecord] = []
    for s in stages:
        last = out[-1] if out else None
        if (last is not None and last.stage == s.stage and last.url == s.url
                and s.stage != "long_task"):
            last.end_ns = max(last.end_ns, s.end_ns)
            last.count += 1
        else:
            out.append(StageRecord(s.stage, s.event, s.start_ns, s.end_ns, s.url, s.count))
    return out


def _ours(e: Event, page: PageId) -> bool:
    """A mark of the page's document, not of the empty one before it or of an iframe."""
    data = _data(e)
    nav_id = data.get("navigationId")
    if nav_id is not None and page.loader_id is not None:
        return bool(nav_id == page.loader_id)
    frame = _frame(e)
    if page.frame_id is not None and frame is not None and frame != page.frame_id:
        return False
    main = data.get("isMainFrame", data.get("is_main_frame", True))
    return bool(main)


def _marks(ours: list[Event], page: PageId, ns: Clock,
           nodes: Mapping[int, NodeInfo]) -> list[MarkRecord]:
    marks: list[MarkRecord] = []
    lcp: MarkRecord | None = None
    for e in ours:
        kind = MARKS.get(str(e.get("name")))
        if kind is None or kind == "layout_shift" or not _ours(e, page):
            continue
        mark = MarkRecord(kind, ns(float(e["ts"])))
        if kind == "lcp":
            data = _data(e)
            info = nodes.get(data.get("nodeId", -1))
            mark.element = info.selector if info else selector(str(data.get("nodeName", "")))
            mark.url = info.url if info else None
            mark.value = data.get("size")
            lcp = mark  # only the last candidate is the LCP
            continue
        if any(m.mark == kind for m in marks) and kind in ("first_paint", "fcp"):
            continue
        marks.append(mark)
    if lcp is not None:
        marks.append(lcp)
    return sorted(marks, key=lambda m: m.t_ns)


def _shifts(ours: list[Event], page: PageId, ns: Clock,
            nodes: Mapping[int, NodeInfo]) -> list[LayoutShiftFacts]:
    shifts: list[LayoutShiftFacts] = []
    for e in ours:
        if e.get("name") != "LayoutShift" or not _ours(e, page):
            continue
        data = _data(e)
        moved = []
        for node in data.get("impacted_nodes") or []:
            info = nodes.get(node.get("node_id", -1))
            moved.append(info.selector if info else selector(str(node.get("debug_name", ""))))
        score = data.get("weighted_score_delta", data.get("score", 0.0))
        shifts.append(LayoutShiftFacts(
            t_ms=round(ns(float(e["ts"])) / 1e6, 3), score=round(float(score), 6),
            had_recent_input=bool(data.get("had_recent_input")), moved=moved))
    return shifts


def font_loads(ours: list[Event], ns: Clock) -> list[StageRecord]:
    """Each web font from the request Blink began (``BeginRemoteFontLoad``) to the font
    being ready (``RemoteFontLoaded``, which names its family); one never loaded ends where
    it began."""
    out: list[StageRecord] = []
    open_: dict[str, StageRecord] = {}
    for e in sorted(ours, key=lambda e: float(e.get("ts", 0))):
        args = e.get("args") or {}
        url = str(args.get("url") or "")[:2000] or None
        if e.get("name") == "BeginRemoteFontLoad" and url:
            start = ns(float(e["ts"]))
            record = StageRecord("font_load", "BeginRemoteFontLoad", start, start, url,
                                 name=None)
            open_[url] = record
            out.append(record)
        elif e.get("name") == "RemoteFontLoaded" and url and url in open_:
            record = open_.pop(url)
            record.end_ns = max(ns(float(e["ts"])), record.start_ns)
            record.event = "BeginRemoteFontLoad → RemoteFontLoaded"
            family = args.get("name")
            record.name = str(family)[:200] if family else None
    return out


def _within(outer: Event, inner: Event) -> bool:
    start, ts = float(outer.get("ts", 0)), float(inner.get("ts", 0))
    return outer.get("tid") == inner.get("tid") and start <= ts <= start + float(
        outer.get("dur", 0))


def image_decodes(ours: list[Event], ns: Clock) -> list[StageRecord]:
    """Each ``Decode Image``, with the image it decoded when the trace links it: a decode on
    a raster thread runs inside a ``Decode LazyPixelRef`` whose id a ``Draw LazyPixelRef``
    inside the main thread's ``PaintImage`` of that image carries; a decode on the main
    thread runs inside the ``PaintImage`` itself."""
    paints = [e for e in ours if e.get("name") == "PaintImage"][:MAX_LINKED]
    by_ref: dict[Any, str] = {}
    for draw in [e for e in ours if e.get("name") == "Draw LazyPixelRef"][:MAX_LINKED]:
        paint = next((p for p in paints if _within(p, draw)), None)
        if paint is not None and _data(paint).get("url"):
            by_ref[(draw.get("args") or {}).get("LazyPixelRef")] = str(_data(paint)["url"])
    lazies = [e for e in ours if e.get("name") == "Decode LazyPixelRef"][:MAX_LINKED]
    out: list[StageRecord] = []
    for e in [e for e in ours if e.get("name") == "Decode Image"][:MAX_WORK]:
        url = None
        lazy = next((z for z in lazies if _within(z, e)), None)
        if lazy is not None:
            url = by_ref.get((lazy.get("args") or {}).get("LazyPixelRef"))
        else:
            paint = next((p for p in paints if _within(p, e)), None)
            url = str(_data(paint).get("url") or "") or None if paint is not None else None
        start = ns(float(e["ts"]))
        kind = (e.get("args") or {}).get("imageType")
        out.append(StageRecord("image_decode", "Decode Image", start,
                               start + round(float(e.get("dur", 0)) * 1000),
                               url[:2000] if url else None,
                               name=str(kind)[:40] if kind else None))
    return out


def user_marks(ours: list[Event], page: PageId, ns: Clock) -> list[MarkRecord]:
    """The page's own ``performance.mark()``s (User Timing), the earliest MAX_USER_MARKS."""
    out = [MarkRecord("user_mark", ns(float(e["ts"])), name=str(e.get("name"))[:200])
           for e in ours if e.get("cat") == USER_TIMING and e.get("ph") == "I"
           and _ours(e, page)]
    return sorted(out, key=lambda m: m.t_ns)[:MAX_USER_MARKS]


def user_measures(ours: list[Event], ns: Clock) -> list[StageRecord]:
    """The page's own ``performance.measure()``s: begin and end events paired by id."""
    def key(e: Event) -> tuple[str, str]:
        ident = e.get("id2") or e.get("id") or ""
        return str(e.get("name")), json.dumps(ident, sort_keys=True, default=str)

    begun: dict[tuple[str, str], Event] = {}
    out: list[StageRecord] = []
    for e in sorted(ours, key=lambda e: float(e.get("ts", 0))):
        if e.get("cat") != USER_TIMING:
            continue
        if e.get("ph") == "b":
            begun[key(e)] = e
        elif e.get("ph") == "e" and key(e) in begun:
            b = begun.pop(key(e))
            start = ns(float(b["ts"]))
            out.append(StageRecord("user_measure", "performance.measure", start,
                                   max(ns(float(e["ts"])), start),
                                   name=str(e.get("name"))[:200]))
    return out


def cumulative_layout_shift(shifts: list[LayoutShiftFacts]) -> float:
    """The largest session window's total (web.dev/articles/cls; Layout Instability API)."""
    best = window = 0.0
    first = last = None
    for s in sorted(shifts, key=lambda s: s.t_ms):
        if s.had_recent_input:
            continue
        t = s.t_ms * 1000  # µs
        if first is None or last is None or t - last > SESSION_GAP_US or t - first > SESSION_MAX_US:
            first, window = t, 0.0
        window += s.score
        last = t
        best = max(best, window)
    return round(best, 6)


_DEBUG_NAME = re.compile(r"^(\S+)(?:\s+id='([^']*)')?(?:\s+class='([^']*)')?")


def selector(debug_name: str) -> str:
    """Chromium's debug name of a node (``IMG id='hero' class='big pic'``) as a CSS-like
    selector (``img#hero.big.pic``)."""
    m = _DEBUG_NAME.match(debug_name.strip())
    if not m:
        return debug_name
    tag, ident, classes = m.groups()
    out = tag.lower() if tag.isalpha() or tag.isalnum() else tag
    if ident:
        out += f"#{ident}"
    if classes:
        out += "".join(f".{c}" for c in classes.split())
    return out


def filmstrip(shots: list[Event], ns: Clock, max_frames: int) -> list[FilmstripFrame]:
    """Screenshots as data: URIs, at most ``max_frames`` spread evenly, the last kept."""
    shots = sorted(shots, key=lambda e: float(e["ts"]))
    if max_frames <= 0 or not shots:
        return []
    if len(shots) > max_frames:
        n = len(shots)
        picks = sorted({round(i * (n - 1) / (max_frames - 1)) for i in range(max_frames)}) \
            if max_frames > 1 else [n - 1]
        shots = [shots[i] for i in picks]
    frames = []
    for e in shots:
        snapshot = str((e.get("args") or {}).get("snapshot") or "")
        if not snapshot:
            continue
        width, height = jpeg_size(snapshot)
        frames.append(FilmstripFrame(t_ms=round(ns(float(e["ts"])) / 1e6, 3),
                                     image="data:image/jpeg;base64," + snapshot,
                                     width=width, height=height))
    return frames


def jpeg_size(b64: str) -> tuple[int | None, int | None]:
    """Width and height from a base64 JPEG's start-of-frame marker."""
    try:
        data = base64.b64decode(b64[:64 * 1024 - (64 * 1024) % 4] if len(b64) > 65536
                                else b64, validate=False)
    except (binascii.Error, ValueError):
        return None, None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None, None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return (int.from_bytes(data[i + 7:i + 9], "big"),
                    int.from_bytes(data[i + 5:i + 7], "big"))
        i += 2 + length
    return None, None
