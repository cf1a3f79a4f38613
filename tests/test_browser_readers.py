"""The browser phase's pure readers, without a browser: handmade CDP Network events and trace
events (shaped as Chromium 156 writes them) in, typed facts on the journey's clock out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from whathappens.browser.chromium import BrowserOptions, dropped_defaults, host_rule, launch_args
from whathappens.browser.live import BINDING, MAX_LIVE, LiveMark, LiveMoments
from whathappens.browser.netlog import (
    assign_streams,
    events_in,
    h2_streams,
    netlog_constants,
    streams_from,
)
from whathappens.browser.network import DOCUMENT_TIMING_NOTE, NetworkLog, initiator_words
from whathappens.browser.trace import (
    NodeInfo,
    PageId,
    analyze,
    cumulative_layout_shift,
    filmstrip,
    jpeg_size,
    parse_trace,
    selector,
)
from whathappens.contract.facts import LayoutShiftFacts

ORIGIN_NS = 1_000_000_000_000  # the journey's t0, raw monotonic ns
T0_US = ORIGIN_NS // 1000      # the same moment as a trace ts
PID, TID, BROWSER_PID = 200, 200, 100
FRAME, LOADER = "F1", "L1"
URL = "https://www.example.com/"


def ev(name: str, t_ms: float, *, dur_ms: float | None = None, pid: int = PID, tid: int = TID,
       **args: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"name": name, "ts": T0_US + t_ms * 1000, "pid": pid, "tid": tid,
                         "ph": "X" if dur_ms is not None else "I", "args": args}
    if dur_ms is not None:
        e["dur"] = dur_ms * 1000
    return e


def paint(name: str, t_ms: float, nav: str = LOADER, **data: Any) -> dict[str, Any]:
    return ev(name, t_ms, data={"navigationId": nav, **data}, frame=FRAME)


def tiny_jpeg(width: int, height: int) -> str:
    """A JPEG head with a baseline start-of-frame: enough for jpeg_size."""
    sof = b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return base64.b64encode(b"\xff\xd8" + b"\xff\xe0\x00\x04\x00\x00" + sof + b"\x00" * 20
                            ).decode()


# A cross-process navigation: the empty document's events first, then the page's.
TRACE = [
    ev("navigationStart", 90, data={"navigationId": "BLANK", "documentLoaderURL": ""}),
    ev("ParseHTML", 91, dur_ms=0.1, beginData={"frame": FRAME, "url": ""}),
    ev("MarkDOMContent", 92, data={"frame": FRAME, "isMainFrame": True}),
    paint("firstPaint", 93, nav="BLANK"),
    ev("navigationStart", 100, data={"navigationId": LOADER, "documentLoaderURL": URL}),
    ev("Screenshot", 101, pid=BROWSER_PID, snapshot=tiny_jpeg(500, 352)),
    ev("ResourceSendRequest", 150, data={"requestId": "9.2", "renderBlocking": "blocking"}),
    ev("ParseHTML", 140, dur_ms=5, beginData={"frame": FRAME, "url": URL}),
    ev("ParseHTML", 146, dur_ms=1, beginData={"frame": FRAME, "url": URL}),
    ev("ParseAuthorStyleSheet", 300, dur_ms=1, data={"styleSheetUrl": URL + "s.css"}),
    ev("EvaluateScript", 302, dur_ms=2, data={"url": URL + "a.js"}),
    ev("RunTask", 305, dur_ms=80),
    ev("RunTask", 305, dur_ms=80, tid=TID + 1),  # another thread: not the page's main one
    ev("UpdateLayoutTree", 390, dur_ms=1),
    ev("Layout", 391, dur_ms=2),
    ev("Paint", 394, dur_ms=1),
    ev("MarkDOMContent", 395, data={"frame": FRAME, "isMainFrame": True}),
    paint("firstPaint", 400),
    paint("firstContentfulPaint", 400),
    paint("largestContentfulPaint::Candidate", 400, nodeId=5, nodeName="H1", size=900),
    paint("largestContentfulPaint::Candidate", 700, nodeId=7,
          nodeName="IMG id='hero' class='big pic'", size=90000),
    ev("MarkLoad", 710, data={"frame": FRAME, "isMainFrame": True}),
    ev("Screenshot", 701, pid=BROWSER_PID, snapshot=tiny_jpeg(500, 352)),
    ev("LayoutShift", 900, frame=FRAME, data={
        "score": 0.08, "weighted_score_delta": 0.08, "had_recent_input": False,
        "is_main_frame": True,
        "impacted_nodes": [{"node_id": 7, "debug_name": "IMG id='hero' class='big pic'"}]}),
    ev("LayoutShift", 1200, frame=FRAME, data={
        "score": 0.05, "weighted_score_delta": 0.05, "had_recent_input": False,
        "is_main_frame": True, "impacted_nodes": [{"node_id": 9, "debug_name": "DIV"}]}),
]
PAGE = PageId(URL, FRAME, LOADER)


def ms_of(ns: int) -> float:
    return ns / 1e6


def test_the_page_is_the_renderer_of_its_documents_first_parse() -> None:
    result = analyze(TRACE, PAGE, ORIGIN_NS)
    assert result.renderer == (PID, TID)
    assert ms_of(result.navigation_start_ns or 0) == 100


def test_the_empty_document_before_the_navigation_is_left_out() -> None:
    result = analyze(TRACE, PAGE, ORIGIN_NS)
    assert [(m.mark, ms_of(m.t_ns)) for m in result.marks] == [
        ("dom_content_loaded", 395), ("first_paint", 400), ("fcp", 400), ("lcp", 700),
        ("load", 710)]


def test_the_last_lcp_candidate_is_the_lcp_named_by_its_node() -> None:
    lcp = analyze(TRACE, PAGE, ORIGIN_NS).mark("lcp")
    assert lcp is not None
    assert (lcp.element, lcp.url) == ("img#hero.big.pic", None)  # from the debug name
    described = analyze(TRACE, PAGE, ORIGIN_NS,
                        nodes={7: NodeInfo("img#hero.big.pic", URL + "hero.jpg")}).mark("lcp")
    assert described is not None
    assert described.url == URL + "hero.jpg"


def test_stages_merge_adjacent_runs_and_keep_long_tasks_of_the_main_thread() -> None:
    result = analyze(TRACE, PAGE, ORIGIN_NS)
    got = [(s.stage, ms_of(s.start_ns), ms_of(s.end_ns), s.count, s.url) for s in result.stages]
    assert got == [
        ("dom", 140, 147, 2, None),
        ("cssom", 300, 301, 1, URL + "s.css"),
        ("script", 302, 304, 1, URL + "a.js"),
        ("long_task", 305, 385, 1, None),
        ("style", 390, 391, 1, None),
        ("layout", 391, 393, 1, None),
        ("paint", 394, 395, 1, None),
    ]
    assert result.long_tasks == 1


def test_render_blocking_comes_from_the_trace_by_request_id() -> None:
    assert analyze(TRACE, PAGE, ORIGIN_NS).render_blocking == {"9.2": "blocking"}


def test_layout_shifts_and_cls_as_the_largest_session_window() -> None:
    result = analyze(TRACE, PAGE, ORIGIN_NS)
    assert [(s.t_ms, s.score, s.moved) for s in result.layout_shifts] == [
        (900, 0.08, ["img#hero.big.pic"]), (1200, 0.05, ["div"])]
    assert result.cls == pytest.approx(0.13)  # 300 ms apart: one session window


@pytest.mark.parametrize(("shifts", "cls"), [
    ([(0, 0.1), (500, 0.1), (2000, 0.05)], 0.2),          # a gap over 1 s starts a new window
    ([(0, 0.1), (900, 0.1), (1800, 0.1), (2700, 0.1), (3600, 0.1), (4500, 0.1),
      (5400, 0.1)], 0.6),                                  # a window is at most 5 s long
    ([(0, 0.3, True), (100, 0.01)], 0.01),                 # a shift after input does not count
    ([], 0.0),
])
def test_session_windows_follow_the_layout_instability_rules(
        shifts: list[tuple[Any, ...]], cls: float) -> None:
    facts = [LayoutShiftFacts(t_ms=s[0], score=s[1], had_recent_input=len(s) > 2 and s[2])
             for s in shifts]
    assert cumulative_layout_shift(facts) == pytest.approx(cls)


def test_the_filmstrip_keeps_frames_from_the_navigation_on_as_data_uris() -> None:
    frames = analyze(TRACE, PAGE, ORIGIN_NS).filmstrip
    assert [f.t_ms for f in frames] == [101, 701]
    assert frames[0].image.startswith("data:image/jpeg;base64,")
    assert (frames[0].width, frames[0].height) == (500, 352)


def test_the_filmstrip_is_capped_evenly_keeping_the_last_frame() -> None:
    shots = [ev("Screenshot", t, snapshot=tiny_jpeg(10, 10)) for t in range(100)]
    frames = filmstrip(shots, lambda ts: round(ts * 1000) - ORIGIN_NS, 12)
    assert len(frames) == 12
    assert frames[0].t_ms == 0
    assert frames[-1].t_ms == 99
    assert jpeg_size("not base64!") == (None, None)


def test_parse_trace_keeps_what_we_use_and_stops_at_its_caps() -> None:
    text = json.dumps({"traceEvents": [*TRACE, ev("UpdateLayer", 1), ev("RunTask", 1,
                                                                         dur_ms=3)]})
    parsed = parse_trace(text, 10_000)
    assert parsed.seen == len(TRACE) + 2
    assert len(parsed.events) == len(TRACE)  # short tasks and other events are not kept
    assert parsed.truncated is None
    capped = parse_trace(text, 5)
    assert (capped.seen, capped.truncated) == (5, "only the first 5 trace events were read")
    cut = parse_trace(text[: len(text) // 2], 10_000)
    assert cut.truncated == "the trace was cut short"
    assert 0 < cut.seen < len(TRACE)
    assert parse_trace("[]", 10).events == []
    assert parse_trace("garbage", 10).truncated == "no trace events"


def test_selectors_from_chromium_debug_names() -> None:
    assert selector("IMG id='hero' class='big pic'") == "img#hero.big.pic"
    assert selector("BODY") == "body"
    assert selector("DIV class='banner'") == "div.banner"


# --------------------------------------------------------------------------- Network.*
def s(t_ms: float) -> float:
    """A CDP timestamp (seconds of the monotonic clock) t_ms after the journey's t0."""
    return (ORIGIN_NS + t_ms * 1e6) / 1e9


def timing(request_ms: float, **phases: float) -> dict[str, float]:
    base = {k: -1.0 for k in ("dnsStart", "dnsEnd", "connectStart", "connectEnd", "sslStart",
                              "sslEnd")}
    base.update(requestTime=s(request_ms), sendStart=1.0, sendEnd=1.5,
                receiveHeadersStart=20.0, receiveHeadersEnd=21.0)
    base.update(phases)
    return base


def feed_page(log: NetworkLog) -> None:
    log.feed("Network.requestWillBeSent", {
        "requestId": LOADER, "loaderId": LOADER, "frameId": FRAME, "type": "Document",
        "timestamp": s(100), "initiator": {"type": "other"},
        "request": {"url": URL, "method": "GET", "initialPriority": "VeryHigh"}})
    log.feed("Network.responseReceived", {
        "requestId": LOADER, "type": "Document", "timestamp": s(130), "response": {
            "url": URL, "status": 200, "mimeType": "text/html", "protocol": "h2",
            "connectionId": 65, "connectionReused": True, "remoteIPAddress": "127.0.0.1",
            "remotePort": 443, "headers": {"X-Cache": "HIT"}, "timing": timing(102)}})
    log.feed("Network.dataReceived", {"requestId": LOADER, "dataLength": 500,
                                      "encodedDataLength": 300})
    log.feed("Network.loadingFinished", {"requestId": LOADER, "timestamp": s(140),
                                         "encodedDataLength": 400})
    log.feed("Network.requestWillBeSent", {
        "requestId": "9.2", "loaderId": LOADER, "frameId": FRAME, "type": "Stylesheet",
        "timestamp": s(150), "initiator": {"type": "parser", "url": URL, "lineNumber": 2},
        "request": {"url": URL + "s.css", "method": "GET", "initialPriority": "VeryHigh"}})
    log.feed("Network.requestWillBeSent", {
        "requestId": "9.3", "loaderId": LOADER, "frameId": FRAME, "type": "Image",
        "timestamp": s(151), "initiator": {"type": "parser", "url": URL, "lineNumber": 5},
        "request": {"url": URL + "gone.png", "method": "GET", "initialPriority": "Low"}})
    log.feed("Network.resourceChangedPriority", {"requestId": "9.3", "newPriority": "High"})
    log.feed("Network.loadingFailed", {"requestId": "9.3", "timestamp": s(160),
                                       "errorText": "net::ERR_ABORTED", "canceled": True})


def test_network_events_become_records_on_the_journey_s_clock() -> None:
    log = NetworkLog(ORIGIN_NS)
    feed_page(log)
    doc, css, img = log.records()
    assert doc.facts.navigation
    assert (ms_of(doc.start_ns), ms_of(doc.end_ns or 0)) == pytest.approx((100, 140))
    f = doc.facts
    assert (f.status, f.protocol, f.connection_id, f.connection_reused) == (200, "h2", 65, True)
    assert f.remote_address == "127.0.0.1:443"
    assert f.cache_status == "HIT"
    assert (f.encoded_bytes, f.decoded_bytes) == (400, 500)
    assert f.note == DOCUMENT_TIMING_NOTE
    t = f.timing
    assert t is not None
    assert (t.dns_ms, t.connect_ms, t.tls_ms) == (None, None, None)
    assert (t.send_ms, t.wait_ms) == (0.5, 18.5)
    assert t.queued_ms == pytest.approx(3.0)    # 100 → 102 + 1 (sendStart)
    assert t.receive_ms == pytest.approx(18.0)  # 102 + 20 → 140
    assert css.facts.initiator == f"parser {URL} line 3"
    assert css.end_ns is None                   # still open: the phase ends it
    assert img.facts.failed == "net::ERR_ABORTED (cancelled)"
    assert img.facts.priority == "High"
    assert log.bytes_on_wire == 300


def test_connect_and_tls_phases_are_separate_like_har() -> None:
    log = NetworkLog(ORIGIN_NS)
    feed_page(log)
    log.feed("Network.responseReceived", {"requestId": "9.2", "timestamp": s(200), "response": {
        "status": 200, "connectionReused": False, "connectionId": 70,
        "timing": timing(150, dnsStart=0, dnsEnd=2, connectStart=2, connectEnd=12,
                         sslStart=5, sslEnd=12, sendStart=12, sendEnd=13,
                         receiveHeadersStart=40)}})
    t = log.records()[1].facts.timing
    assert t is not None
    assert (t.dns_ms, t.connect_ms, t.tls_ms, t.send_ms, t.wait_ms) == (2, 3, 7, 1, 27)


def test_a_redirect_is_its_own_record() -> None:
    log = NetworkLog(ORIGIN_NS)
    req = {"requestId": "R", "loaderId": "R", "type": "Document",
           "request": {"url": "http://x.test/", "method": "GET"}}
    log.feed("Network.requestWillBeSent", {**req, "timestamp": s(10)})
    log.feed("Network.requestWillBeSent", {
        **req, "timestamp": s(20), "request": {"url": "https://x.test/", "method": "GET"},
        "redirectResponse": {"status": 301, "protocol": "http/1.1"}})
    first, second = log.records()
    assert (first.facts.url, first.facts.status, ms_of(first.end_ns or 0)) == (
        "http://x.test/", 301, pytest.approx(20))
    assert second.facts.url == "https://x.test/"
    assert second.end_ns is None


def test_the_budget_says_when_a_page_asks_too_much() -> None:
    log = NetworkLog(ORIGIN_NS, max_requests=1)
    feed_page(log)
    assert log.over_budget == "the page made more than 1 requests"
    log = NetworkLog(ORIGIN_NS, max_bytes=100)
    feed_page(log)
    assert log.over_budget == "the page pulled more than 100 bytes"


def test_initiator_words() -> None:
    assert initiator_words({"type": "script", "stack": {"callFrames": [
        {"url": URL + "a.js", "lineNumber": 9}]}}) == f"script {URL}a.js line 10"
    assert initiator_words({}) is None


def test_launch_arguments_point_chromium_at_the_journey_s_address() -> None:
    opts = BrowserOptions(host="www.example.com", address="127.0.0.7")
    args = launch_args(opts)
    assert "--host-resolver-rules=MAP www.example.com 127.0.0.7" in args
    assert "--ignore-certificate-errors" not in args
    assert host_rule("h", "::1") == "--host-resolver-rules=MAP h [::1]"
    hardened = BrowserOptions(host="h", address="1.2.3.4",
                              extra_args=["--host-resolver-rules=MAP * ~NOTFOUND"])
    rules = [a for a in launch_args(hardened) if a.startswith("--host-resolver-rules")]
    assert rules == ["--host-resolver-rules=MAP * ~NOTFOUND"]  # the caller's replaces ours


def test_the_netlog_names_each_request_s_http2_stream() -> None:
    types = {"HTTP2_SESSION_INITIALIZED": 1, "HTTP2_SESSION_SEND_HEADERS": 2, "OTHER": 3}

    def send(stream: int, path: str, session: int = 71) -> dict[str, Any]:
        return {"type": 2, "source": {"id": session}, "params": {
            "stream_id": stream, "headers": [":method: GET", ":authority: x.test:8443",
                                             ":scheme: https", f":path: {path}"]}}

    netlog = json.dumps({"constants": {"logEventTypes": types}, "events": [
        {"type": 1, "source": {"id": 71}, "params": {"source_dependency": {"id": 65}}},
        send(1, "/"), send(3, "/a.css"), send(5, "/img?x=1"), send(7, "/a.css"),
        send(9, "/elsewhere", session=99),  # a session we never saw bound: ignored
        {"type": 3, "source": {"id": 1}}]})
    log = NetworkLog(ORIGIN_NS)
    for i, path in enumerate(["/", "/a.css", "/img?x=1", "/a.css", "/elsewhere"]):
        rid = f"r{i}"
        log.feed("Network.requestWillBeSent", {"requestId": rid, "timestamp": s(i),
                                               "request": {"url": f"https://x.test:8443{path}"}})
        log.feed("Network.responseReceived", {"requestId": rid, "response": {
            "protocol": "h2", "connectionId": 65}})
    records = log.records()
    assert assign_streams(records, h2_streams(netlog)) == 4
    assert [r.facts.stream_id for r in records] == [1, 3, 5, 7, None]
    assert h2_streams("not json") == {}
    # A NetLog still being written, as Chromium leaves it on disk while it runs: one event a
    # line, no closing brackets, the last event cut mid-way: the events before it count.
    lines = [json.dumps({"constants": {"logEventTypes": types}})[:-1] + ',\n"events": [']
    lines += [json.dumps(e) + "," for e in json.loads(netlog)["events"][:4]]
    partial = "\n".join(lines) + "\n" + json.dumps(send(7, "/a.css"))[:30]
    assert h2_streams(partial) == {(65, "x.test:8443/"): [1], (65, "x.test:8443/a.css"): [3],
                                   (65, "x.test:8443/img?x=1"): [5]}
    # A warm browser reads only what was written since its page started: a piece cut at any
    # byte, with the constants from the head.
    start = partial.index('{"type": 1') - 7  # mid-line: the cut line is skipped
    piece = "xx\n" + partial[partial.index('{"type": 1'):]
    constants = netlog_constants(partial[:start])
    assert constants == {"logEventTypes": types}
    assert streams_from(constants, events_in(piece)) == h2_streams(partial)
    assert events_in(partial[start + 3:]) == events_in(piece)


def test_a_page_that_shifts_endlessly_gets_a_bounded_list_and_a_full_cls() -> None:
    shifts = [ev("LayoutShift", 400 + i, frame=FRAME, data={
        "score": 0.001, "weighted_score_delta": 0.001, "had_recent_input": False,
        "is_main_frame": True, "impacted_nodes": []}) for i in range(250)]
    result = analyze(TRACE[:19] + shifts, PAGE, ORIGIN_NS)
    assert len(result.layout_shifts) == 100
    assert result.shifts_dropped == 150
    assert result.cls == pytest.approx(0.25)


def test_each_request_carries_the_traceparent_it_was_sent_with() -> None:
    """--lab: the traceparent added at the request stage (CDP Fetch, by Network request id)
    is on the request's facts, so the lab's tiers can be merged under it."""
    log = NetworkLog(ORIGIN_NS)
    log.traceparents[LOADER] = "00-" + "a" * 32 + "-" + "1" * 16 + "-01"
    log.traceparents["9.2"] = "00-" + "a" * 32 + "-" + "2" * 16 + "-01"
    feed_page(log)
    doc, css, img = log.records()
    assert doc.facts.traceparent == log.traceparents[LOADER]
    assert css.facts.traceparent == log.traceparents["9.2"]
    assert img.facts.traceparent is None  # never paused: nothing was added


# ------------------------------------------------------- fonts, image decodes, user timing
RASTER = TID + 7  # a raster worker of the renderer
WORK_TRACE = [
    *TRACE[4:9],  # the page's navigationStart and first ParseHTML: the renderer is known
    ev("BeginRemoteFontLoad", 320, dur_ms=0.5, url=URL + "f.ttf", display="swap"),
    {**ev("RemoteFontLoaded", 580, dur_ms=0.01, url=URL + "f.ttf"),
     "args": {"url": URL + "f.ttf", "name": "Serif Bold"}},
    ev("BeginRemoteFontLoad", 330, dur_ms=0.5, url=URL + "never.ttf"),
    # the hero painted on the main thread, decoded on a raster thread (LazyPixelRef 8)
    ev("PaintImage", 690, dur_ms=1, data={"url": URL + "hero.png", "nodeId": 7}),
    ev("Draw LazyPixelRef", 690.5, LazyPixelRef=8),
    ev("Decode LazyPixelRef", 692, dur_ms=21, tid=RASTER, LazyPixelRef=8),
    ev("Decode Image", 692.5, dur_ms=20, tid=RASTER, imageType="png"),
    # a decode inside the main thread's PaintImage of the logo
    ev("PaintImage", 400, dur_ms=2, data={"url": URL + "logo.png"}),
    ev("Decode Image", 400.5, dur_ms=0.5, imageType="png"),
    # one the trace does not link to any image
    ev("Decode Image", 800, dur_ms=0.1, tid=RASTER, imageType="webp"),
    # user timing: the page's marks (instant events with the navigation's id) and measure
    {**ev("app-start", 200, data={"navigationId": LOADER, "startTime": 100.0}),
     "cat": "blink.user_timing"},
    {**ev("responseEnd", 130, frame=FRAME), "cat": "blink.user_timing", "ph": "R"},
    {**ev("other-doc", 210, data={"navigationId": "BLANK"}), "cat": "blink.user_timing"},
    {**ev("boot", 200), "cat": "blink.user_timing", "ph": "b", "id2": {"local": "0x28"}},
    {**ev("boot", 450), "cat": "blink.user_timing", "ph": "e", "id2": {"local": "0x28"}},
]


def test_font_loads_image_decodes_and_measures_from_the_trace() -> None:
    parsed = parse_trace(json.dumps({"traceEvents": WORK_TRACE}), 1000)
    assert len(parsed.events) == len(WORK_TRACE) - 1  # responseEnd (an R event) left out
    r = analyze(parsed.events, PAGE, ORIGIN_NS)
    work = [(w.stage, round(ms_of(w.start_ns), 1), round(ms_of(w.end_ns), 1), w.url, w.name)
            for w in r.work]
    assert work == [
        ("user_measure", 200.0, 450.0, None, "boot"),
        ("font_load", 320.0, 580.0, URL + "f.ttf", "Serif Bold"),
        ("font_load", 330.0, 330.0, URL + "never.ttf", None),   # never loaded
        ("image_decode", 400.5, 401.0, URL + "logo.png", "png"),
        ("image_decode", 692.5, 712.5, URL + "hero.png", "png"),
        ("image_decode", 800.0, 800.1, None, "webp"),
    ]
    users = [(m.name, ms_of(m.t_ns)) for m in r.marks if m.mark == "user_mark"]
    assert users == [("app-start", 200.0)]  # not Chromium's responseEnd, not another document


def test_a_page_marking_endlessly_gets_a_bounded_list() -> None:
    marks = [{**ev(f"m{i}", 200 + i / 100, data={"navigationId": LOADER}),
              "cat": "blink.user_timing"} for i in range(500)]
    r = analyze([*TRACE[4:9], *marks], PAGE, ORIGIN_NS)
    assert sum(1 for m in r.marks if m.mark == "user_mark") == 50


# ------------------------------------------------------------- the live sources (live.py)
def live_moments() -> tuple[LiveMoments, list[LiveMark]]:
    heard: list[LiveMark] = []
    moments = LiveMoments(ORIGIN_NS, heard.append, frame_id=FRAME)
    moments.navigation({"requestId": LOADER, "loaderId": LOADER, "type": "Document",
                        "frameId": FRAME})
    moments.navigation({"requestId": "IFR", "loaderId": "IFR", "type": "Document",
                        "frameId": "an iframe"})
    return moments, heard


def report(**fields: Any) -> dict[str, Any]:
    return {"name": BINDING, "payload": json.dumps({"origin": 1.7e12, **fields})}


def test_lifecycle_events_of_the_navigation_on_the_journey_s_clock() -> None:
    moments, heard = live_moments()
    at = (ORIGIN_NS + 400_000_000) / 1e9  # CDP's seconds of CLOCK_MONOTONIC
    moments.lifecycle({"name": "firstContentfulPaint", "timestamp": at, "loaderId": LOADER})
    moments.lifecycle({"name": "load", "timestamp": at, "loaderId": "BLANK"})  # the empty doc
    moments.lifecycle({"name": "load", "timestamp": at, "loaderId": "IFR"})    # an iframe
    moments.lifecycle({"name": "networkIdle", "timestamp": at, "loaderId": LOADER})
    assert [(m.mark, m.t_ns) for m in heard] == [("fcp", 400_000_000)]


def test_observer_reports_wait_for_the_navigation_start_then_are_placed() -> None:
    moments, heard = live_moments()
    moments.binding(report(kind="lcp", t=600.5, element="img#hero", url=URL + "hero.png",
                           value=90000))
    moments.binding(report(kind="user_measure", t=100, duration=250, name="boot"))
    assert heard == []
    assert moments.wants_navigation_start == 1.7e12
    nav_s = (ORIGIN_NS + 100_000_000) / 1e9  # navigationStart at +100 ms
    moments.set_navigation_start(nav_s, 1.7e12)
    assert moments.wants_navigation_start is None
    assert [(m.mark, round(ms_of(m.t_ns), 3), m.end_ns and round(ms_of(m.end_ns), 3))
            for m in heard] == [("lcp", 700.5, None), ("user_measure", 200.0, 450.0)]
    assert heard[0].element == "img#hero"
    assert heard[0].url == URL + "hero.png"
    moments.binding(report(kind="layout_shift", t=800, value=0.04, element="p"))
    assert heard[-1].mark == "layout_shift"
    assert heard[-1].value == 0.04


@pytest.mark.parametrize("payload", [
    "not json", "[1, 2]", json.dumps({"kind": "lcp"}), json.dumps({"kind": "exploit", "t": 1}),
    json.dumps({"kind": "lcp", "t": "soon"}), "x" * 5000,
    json.dumps({"kind": "layout_shift", "t": 5, "value": 0.5, "recent_input": True}),
])
def test_malformed_or_forgiven_reports_are_dropped(payload: str) -> None:
    moments, heard = live_moments()
    moments.set_navigation_start(1.0, 1.7e12)
    moments.binding({"name": BINDING, "payload": payload})
    moments.binding({"name": "someone else's binding",
                     "payload": json.dumps({"kind": "lcp", "t": 1})})
    assert heard == []


def test_a_flood_of_reports_is_bounded() -> None:
    moments, heard = live_moments()
    moments.set_navigation_start(1.0, 1.7e12)
    for i in range(MAX_LIVE + 50):
        moments.binding(report(kind="user_mark", t=i, name=str(i)))
    assert len(heard) == MAX_LIVE


def test_chromium_keeps_its_shared_memory_in_dev_shm_when_there_is_room(tmp_path: Any) -> None:
    """Playwright's --disable-dev-shm-usage is left out where /dev/shm has room (it moves
    Chromium's shared memory to /tmp files, slower where /tmp is a disk)."""
    assert dropped_defaults(tmp_path) == ["--disable-dev-shm-usage"]
    assert dropped_defaults(tmp_path / "missing") == []
