"""The browser phase in every output, from a recorded journey with a hand-made browser phase
(tests/data/journey_browser.json, written by tests/make_journey_browser.py to the contract).

The analysis (Core Web Vitals verdicts, the critical chains), the view every renderer lays
out, the terminal and HTML reports (golden files: ``UPDATE_GOLDEN=1 pytest`` regenerates them;
read the diff), the HAR (valid HAR 1.2 with the fields DevTools writes), the live page's
events, a phase that was skipped, and hostile text in every browser field.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import make_journey_browser
from test_render_html import parse
from whathappens.analysis.browser import FCP, outcome
from whathappens.analysis.document import SCHEMA as ANALYSIS_SCHEMA
from whathappens.analysis.document import analyze, analyze_journey
from whathappens.contract.document import read_journey
from whathappens.contract.facts import BrowserFacts
from whathappens.render.browser_view import BrowserView
from whathappens.render.har import to_har
from whathappens.render.html import CSP, render_html
from whathappens.render.terminal import render_terminal
from whathappens.render.view import journey_view, read
from whathappens.web.events import detail_event, step_event

DATA = Path(__file__).parent / "data"
SCHEMA = json.loads((Path(__file__).parent.parent
                     / "src/whathappens/schema/journey.schema.json").read_text())
HAR_SCHEMA = json.loads((DATA / "har-1.2.schema.json").read_text())


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "journey_browser.json").read_text("utf-8"))
    return doc


def browser(j: dict[str, Any]) -> dict[str, Any]:
    span: dict[str, Any] = next(s for s in j["spans"] if s["name"] == "browser")
    return span


def view(j: dict[str, Any] | None = None) -> BrowserView:
    v = journey_view(read(j or load())).browser
    assert v is not None
    return v


def terminal(j: dict[str, Any], **kw: Any) -> str:
    out = io.StringIO()
    render_terminal(j, out, color=False, width=100, **kw)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


# ---------------------------------------------------------------------------- the fixture
def test_the_fixture_follows_the_contract_and_is_the_generators(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    j = load()
    jsonschema.Draft202012Validator(SCHEMA).validate(j)
    doc = read_journey(j)
    names = [s.name for s in doc.all_spans() if s.step == "browser"]
    assert names.count("browser.resource") == 9
    assert {"browser", "browser.stage", "browser.mark"} <= set(names)
    monkeypatch.setattr(make_journey_browser, "DATA", tmp_path)
    (tmp_path / "journey_demo.json").write_text((DATA / "journey_demo.json").read_text())
    make_journey_browser.main()
    assert (tmp_path / "journey_browser.json").read_text() == (
        DATA / "journey_browser.json").read_text()


# ------------------------------------------------------------------------------ analysis
def test_core_web_vitals_verdicts_are_counted_from_the_navigation() -> None:
    a = analyze_journey(read(load())).browser
    assert a is not None
    assert a.navigation_ms == 300.0  # the document request's start
    got = {v.metric: (v.value, v.outcome) for v in a.vitals}
    assert got == {"fcp": (345.2, "good"), "lcp": (645.2, "good"),
                   "cls": (0.12, "needs_improvement")}


@pytest.mark.parametrize(("value", "expected"), [
    (None, "unknown"), (1800.0, "good"), (1800.5, "needs_improvement"),
    (3000.0, "needs_improvement"), (3000.1, "poor")])
def test_thresholds_are_core_web_vitals(value: float | None, expected: str) -> None:
    assert outcome(FCP, value) == expected


def test_the_chain_that_held_fcp_back_ends_at_the_stylesheet() -> None:
    a = analyze_journey(read(load())).browser
    assert a is not None
    assert a.fcp_chain is not None
    chain = a.fcp_chain
    assert [x.url.rsplit("/", 1)[1] for x in chain.blocking] == ["app.js", "style.css"]
    b = chain.bottleneck
    assert b is not None
    assert b.url.endswith("/style.css")
    assert (b.requested_ms, b.loaded_ms, b.took_ms) == (316.2, 624.5, 308.3)
    assert chain.rendering_ms == pytest.approx(645.2 - 624.5)
    # the font and the images are not render-blocking; the late banner came after FCP
    assert all(x.render_blocking in ("blocking", "in_body_parser_blocking")
               for x in chain.blocking)


def test_the_lcp_elements_own_chain() -> None:
    a = analyze_journey(read(load())).browser
    assert a is not None
    assert a.lcp_chain is not None
    lcp = a.lcp_chain
    assert (lcp.element, lcp.url) == ("img.hero", "https://www.example.com/static/hero.jpg")
    r = lcp.resource
    assert r is not None
    assert (r.requested_ms, r.sent_ms, r.loaded_ms, lcp.painted_ms) == (317.0, 318.1, 930.2,
                                                                       945.2)
    assert lcp.render_delay_ms == pytest.approx(15.0)
    assert lcp.decoded_ms == pytest.approx(2.9)  # the hero's Decode Image, within that delay


def test_the_analysis_key_carries_the_browser_part_only_with_a_browser_phase() -> None:
    out = analyze(load())
    jsonschema.Draft202012Validator(ANALYSIS_SCHEMA).validate(out)
    assert out["browser"]["fcp_chain"]["bottleneck"]["url"].endswith("style.css")
    demo = json.loads((DATA / "journey_demo.json").read_text())
    assert "browser" not in analyze(demo)


# ----------------------------------------------------------------------------------- view
def test_the_view_of_the_page() -> None:
    b = view()
    assert b.loaded
    assert b.navigation_ms == 300.0
    names = [(r.name, r.kind, r.priority, r.blocking, r.stream) for r in b.resources]
    assert names[:3] == [("www.example.com", "doc", "VeryHigh", "", 1),
                         ("style.css", "css", "VeryHigh", "render-blocking", 3),
                         ("app.js", "js", "High", "parser-blocking", 5)]
    assert {r.name: r.role for r in b.resources if r.role} == {
        "style.css": "FCP bottleneck", "hero.jpg": "LCP image"}
    # one HTTP/2 connection; the requests in flight together take lanes of their own
    [conn] = b.connections
    assert (conn.id, conn.protocol, conn.requests, conn.lanes) == (42, "h2", 9, 7)
    early = [r.lane for r in b.resources if r.timing.start_ms < 318]
    assert sorted(early) == list(range(7))
    font = next(r for r in b.resources if r.name == "font.woff2")
    assert font.lane == 0  # everything before it but the hero image and app.js had ended
    # the rendering path in the order it ran, worded with this page's values
    stages = [s.stage for s in b.stages]
    assert stages[:5] == ["dom", "script", "cssom", "script", "dom"]
    at = [s.timing.start_ms for s in b.stages]
    assert at == sorted(at)
    assert [s.stage for s in b.later_stages] == ["long_task", "layout", "paint", "composite",
                                                 "layout", "paint"]  # after FCP
    assert b.later_line.startswith("after FCP, until +801.8 ms: 6 more stages, 1 frame drawn")
    cssom = next(s for s in b.stages if s.stage == "cssom")
    assert cssom.words.startswith("style.css was parsed into the CSSOM in 0.80 ms at +324.6 ms")
    # the navigation: Chromium preconnected; our own DNS/TCP/TLS are beside it
    nav = b.navigation
    assert nav is not None
    assert nav.preconnected
    assert [k for k, _ in nav.ours] == ["DNS", "TCP", "TLS", "TTFB"]
    assert dict(nav.ours)["DNS"] == pytest.approx(16.269)


def test_a_request_the_cache_answered_has_no_connection() -> None:
    j = load()
    banner = next(c for c in browser(j)["children"] if c["name"] == "browser.resource"
                  and c["attrs"]["url"].endswith("banner.jpg"))
    banner["attrs"].update(from_cache="disk", connection_id=0, stream_id=None)
    b = view(j)
    assert [c.id for c in b.connections] == [42, None]
    assert b.connections[1].line == ("no connection: 1 request answered by the browser's own "
                                     "cache, or never sent")
    row = next(r for r in b.resources if r.name == "banner.jpg")
    assert (row.connection, row.cache, row.where) == (None, "disk cache", "—")
    assert to_har(j)["log"]["entries"][-1]["_fromCache"] == "disk"


def test_the_metrics_and_the_chains_in_words() -> None:
    b = view()
    items = [m.item for m in b.metrics]
    assert items == ["DOMContentLoaded +332.4 ms", "load +710.0 ms", "first paint +345.2 ms",
                     "FCP +345.2 ms good (≤ 1.8 s)", "LCP +645.2 ms good (≤ 2.5 s): img.hero",
                     "CLS 0.12 needs improvement (≤ 0.1): div.content, footer moved"]
    assert b.chains.fcp == (
        "FCP waited 308.3 ms for style.css, a render-blocking stylesheet requested at "
        "+16.2 ms, loaded at +324.5 ms; then 20.7 ms of style, layout and paint to FCP at "
        "+345.2 ms.")
    assert [(s.label, s.offset) for s in b.chains.lcp_steps] == [
        ("discovered", "+17.0 ms"), ("requested", "+18.1 ms"), ("loaded", "+630.2 ms"),
        ("painted (LCP)", "+645.2 ms")]
    assert [f.offset for f in b.filmstrip] == ["+102.0 ms", "+345.6 ms", "+645.6 ms"]
    summary = journey_view(read(load())).summary.line
    assert summary.endswith("FCP +345.2 ms · LCP +645.2 ms")


def test_without_marks_the_facts_times_count_from_the_navigation() -> None:
    j = load()
    b = browser(j)
    b["children"] = [c for c in b["children"] if c["name"] != "browser.mark"]
    a = analyze_journey(read(j)).browser
    assert a is not None
    assert {v.metric: v.value for v in a.vitals} == {"fcp": 345.2, "lcp": 645.2, "cls": 0.12}
    assert [m.item for m in view(j).metrics][:2] == ["DOMContentLoaded +332.4 ms",
                                                     "load +710.0 ms"]


# ------------------------------------------------------------------------------ terminal
def test_terminal_report_matches_golden_file() -> None:
    text = terminal(load())
    golden = DATA / "journey_browser.golden.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_terminal_browser_section() -> None:
    text = terminal(load())
    section = text[text.index("browser: https://www.example.com/"):text.index("Findings")]
    for words in ("PAGE", "connection 42 (h2, [::1]:10443)", "up to 7 in flight at once",
                  "← FCP bottleneck", "← LCP image", "render-blocking", "parser-blocking",
                  "rendering path", "CSSOM", "Long task", "FCP +345.2 ms good (≤ 1.8 s)",
                  "CLS 0.12 needs improvement", "why: FCP waited 308.3 ms for style.css",
                  "filmstrip: 3 frames", "preconnected", "the journey's own: DNS 16.3 ms"):
        assert words in " ".join(section.split()), words
    rows = [line.split()[1] for line in section.splitlines()
            if line.startswith("   ") and line.split()[0] in ("doc", "css", "js", "img", "font")]
    assert rows == ["www.example.…", "style.css", "app.js", "async.js", "hero.jpg",
                    "logo.png", "thumb-1.jpg", "font.woff2", "banner.jpg"]


def test_explain_adds_each_stages_words_with_this_pages_values() -> None:
    plain, explained = terminal(load()), terminal(load(), explain=True)
    for words in ("style.css was parsed into the CSSOM in 0.80 ms at +324.6 ms",
                  "A task held the main thread for 65.0 ms at +400.0 ms (async.js)",
                  "Drawing the page (the browser)", "Chromium opened this connection itself"):
        assert words not in plain
        assert words in explained.replace("\n        ", " "), words


# ---------------------------------------------------------------------------------- HTML
def test_html_report_matches_golden_file() -> None:
    page = render_html(load())
    golden = DATA / "journey_browser.golden.html"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(page, encoding="utf-8")
    assert page == golden.read_text(encoding="utf-8")


def test_html_browser_section_with_the_filmstrip_inlined() -> None:
    page = render_html(load())
    c = parse(page)
    assert "browser" in c.ids
    assert f"content=\"{CSP}\"" in page
    assert "img-src data:" in CSP
    imgs = [v for tag, k, v in c.attrs if tag == "img" and k == "src"]
    frames = [f["image"] for f in browser(load())["attrs"]["filmstrip"]]
    assert imgs == frames
    assert all(i.startswith("data:image/png;base64,") for i in imgs)
    # still one file that loads nothing
    assert not [v for _, k, v in c.attrs if k in ("src", "href") and v
                and re.match(r"(?i)\s*(https?:|//)", v)]
    text = " ".join(c.text)
    for words in ("Paints and verdicts", "needs improvement", "Why it took that long",
                  "FCP waited 308.3 ms for style.css", "LCP img.hero", "Filmstrip",
                  "Subresources", "conn 42 · stream 11", "Connections", "The rendering path",
                  "Chromium opened this connection itself", "DNS 16.3 ms",
                  "the trace was read back whole"):
        assert words in text, words


# ----------------------------------------------------------------------------------- HAR
def test_har_has_the_page_and_one_entry_per_subresource() -> None:
    har = to_har(load())
    jsonschema.Draft202012Validator(HAR_SCHEMA).validate(har)
    pages = har["log"]["pages"]
    assert [p["id"] for p in pages] == ["page_1", "page_2"]
    assert pages[1]["pageTimings"]["onContentLoad"] == pytest.approx(332.4)
    assert pages[1]["pageTimings"]["onLoad"] == pytest.approx(710.0)
    entries = har["log"]["entries"]
    ours = [e for e in entries if e["pageref"] == "page_1"]
    page = [e for e in entries if e["pageref"] == "page_2"]
    assert len(ours) == 1
    assert ours[0]["response"]["status"] == 200
    assert len(page) == 9
    css = next(e for e in page if e["request"]["url"].endswith("style.css"))
    assert css["_initiator"] == {"type": "parser", "url": "https://www.example.com/",
                                 "lineNumber": 5}  # "parser https://www.example.com/ line 6"
    banner = next(e for e in page if e["request"]["url"].endswith("banner.jpg"))
    assert banner["_initiator"] == {"type": "script", "lineNumber": 8,
                                    "url": "https://www.example.com/static/async.js"}
    assert (css["_priority"], css["_resourceType"], css["_renderBlocking"]) == (
        "VeryHigh", "stylesheet", "Blocking")
    assert css["connection"] == "42"
    assert css["serverIPAddress"] == "::1"
    t = css["timings"]
    assert (t["blocked"], t["dns"], t["connect"], t["ssl"], t["send"], t["wait"],
            t["receive"]) == (0.6, -1, -1, -1, 0.2, 301.4, 6.1)
    assert css["time"] == pytest.approx(308.3)
    assert css["response"]["_transferSize"] == 2411
    assert page[0]["_resourceType"] == "document"
    assert "_renderBlocking" not in page[0]
    assert {e["_renderBlocking"] for e in page[1:]} == {"Blocking", "InBodyParserBlocking",
                                                         "NonBlocking"}


# ----------------------------------------------------------------------------- live page
def test_live_events_for_the_browser_spans() -> None:
    span = browser(load())
    details = [detail_event(c, 1) for c in span["children"]]
    assert {d["step"] for d in details} == {"browser.resource", "browser.stage",
                                            "browser.mark"}
    css = next(d for d in details if "style.css" in d["summary"]
               and d["step"] == "browser.resource")
    assert css["summary"] == ("css style.css · VeryHigh · render-blocking · conn 42 · stream 3 "
                              "· 2,411 B · MISS")
    assert [d["summary"] for d in details if d["step"] == "browser.mark"] == [
        "DOMContentLoaded", "mark 'app:ready'", "first paint", "FCP", "LCP: img.hero", "load",
        "layout shift 0.12: div.content moved"]
    stages = {d["summary"] for d in details if d["step"] == "browser.stage"}
    assert {"Measure 'app:boot'", "Font font.woff2", "Decode hero.jpg"} <= stages
    step = step_event(span, 1)
    assert step["title"] == "The page, in Chromium"
    assert step["summary"].startswith("https://www.example.com/ in Chromium 130")
    assert [m["outcome"] for m in step["metrics"]][-3:] == ["good", "good",
                                                            "needs improvement"]
    assert step["chains"][0].startswith("FCP waited 308.3 ms for style.css")
    assert len(step["filmstrip"]) == 3
    # the final lists, in place of what streamed in before the trace was read
    assert len(step["resources"]) == 9
    assert "render-blocking" in step["resources"][1]["summary"]
    assert [x["summary"] for x in step["stages"]][-5:] == [
        "Long task async.js",
        "after FCP, until +801.8 ms: 6 more stages, 1 frame drawn — Long task ×1 (65.0 ms), "
        "Layout ×2 (2.60 ms), Paint ×4 (2.70 ms), Composite ×1 (0.30 ms)",
        "Measure 'app:boot'", "Font font.woff2 (Example Sans)", "Decode hero.jpg"]
    assert step["settle"].startswith("waited 512.3 ms after load for the page to settle (quiet")
    assert [x["offset"] for x in step["marks"]][:4] == ["+332.4 ms", "+340.2 ms", "+345.2 ms",
                                                        "+345.2 ms"]
    assert step["marks"][1]["summary"] == "mark 'app:ready'"


# ------------------------------------------------------------------------------- skipped
def skipped() -> dict[str, Any]:
    j = load()
    b = browser(j)
    b["children"] = []
    b["end_ms"], b["duration_ms"] = 95.4, 0.4
    b["attrs"].update(outcome="skipped", why="Chromium is not installed (/usr/bin/chromium "
                      "is missing)", launch_ms=None, navigation_start_ms=None, notes=[],
                      dom_content_loaded_ms=None, load_ms=None, first_paint_ms=None,
                      fcp_ms=None, lcp_ms=None, lcp_element=None, lcp_url=None, cls=None,
                      layout_shifts=[], long_tasks=0, requests=0, bytes_on_wire=0, filmstrip=[])
    return j


def test_a_skipped_phase_is_one_line_with_how_to_install_chromium() -> None:
    j = skipped()
    jsonschema.Draft202012Validator(SCHEMA).validate(j)
    line = ("The browser phase skipped: Chromium is not installed (/usr/bin/chromium is "
            "missing).")
    text = terminal(j).replace("\n                                                      ",
                               " ")
    assert line in text
    assert "apt-get install chromium" in text
    assert "rendering path" not in text
    assert line in " ".join(parse(render_html(j)).text)
    assert line in step_event(browser(j), 1)["summary"]
    har = to_har(j)
    assert [p["id"] for p in har["log"]["pages"]] == ["page_1"]
    a = analyze(j)["browser"]
    assert a == {"span_id": browser(j)["id"], "outcome": "skipped", "navigation_ms": None,
                 "vitals": [], "fcp_chain": None, "lcp_chain": None}


# ------------------------------------------------------------------------------ hostile
EVIL = "\x1b[2J\x1b]0;pwned\x07\u202e<script>alert(1)</script>\"'"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile() -> dict[str, Any]:
    j = copy.deepcopy(load())
    b = browser(j)
    for c in b["children"]:
        a = c["attrs"]
        if c["name"] == "browser.resource" and a["url"].endswith("hero.jpg"):
            a["url"] = a["url"] + "?" + EVIL
            a["initiator"] = "parser " + EVIL
            a["cache_status"] = EVIL
        if c["name"] == "browser.mark" and a["mark"] in ("lcp", "layout_shift"):
            a["element"] = "img" + EVIL
        if c["name"] == "browser.stage" and a["url"]:
            a["url"] = a["url"] + "/" + EVIL
    b["attrs"]["lcp_element"] = "img" + EVIL
    b["attrs"]["browser"] = "Chromium " + EVIL
    b["attrs"]["layout_shifts"][0]["moved"] = ["div" + EVIL]
    b["attrs"]["filmstrip"].append({"t_ms": 950.0, "image": "javascript:alert(1)" + EVIL,
                                    "width": 8, "height": 6})
    return j


def test_hostile_browser_text_is_shown_never_obeyed() -> None:
    j = hostile()
    for explain in (False, True):
        text = terminal(j, explain=explain)
        assert RAW.findall(text) == []
        assert "\\x1b[2J" in text
        assert "\\u202e" in text
    page = render_html(j)
    c = parse(page)
    assert "<script>alert(1)" not in page
    assert [d for d, _ in c.scripts] == [{"type": "application/json", "id": "journey-data"}]
    body = page[page.index("<body>"):page.index("<script type=\"application/json\"")]
    assert RAW.findall(body) == []
    assert "\\x1b[2J" in " ".join(c.text)
    assert not [v for _, k, v in c.attrs if k == "src" and v and not v.startswith("data:image/")]
    events = [detail_event(x, 1) for x in browser(j)["children"]] + [
        step_event(browser(j), 1)]
    flat = json.dumps(events, ensure_ascii=False)
    assert RAW.findall(flat.replace("\\n", "")) == []
    assert all(not f["image"].startswith("javascript:") for f in events[-1]["filmstrip"])
    har = to_har(j)  # HAR keeps the exact value: it is data, escaped by JSON
    jsonschema.Draft202012Validator(HAR_SCHEMA).validate(har)
    assert any(EVIL in e["request"]["url"] for e in har["log"]["entries"])


def test_chromiums_own_navigation_start_is_preferred_when_the_facts_name_it() -> None:
    doc = read(load())
    span = next(s for s in doc.spans if s.name == "browser")
    assert isinstance(span.facts, BrowserFacts)
    span.facts.navigation_start_ms = 296.0
    a = analyze_journey(doc).browser
    assert a is not None
    assert a.navigation_ms == 296.0
    assert {v.metric: v.value for v in a.vitals}["fcp"] == pytest.approx(349.2)
    span.facts.navigation_start_ms = None  # without it, the document request's start
    a = analyze_journey(doc).browser
    assert a is not None
    assert a.navigation_ms == 300.0


def test_a_failed_phase_says_why_without_the_install_hint() -> None:
    j = skipped()
    b = browser(j)
    b["attrs"].update(outcome="failed", why="the page did not load within 20 s")
    b["error"] = {"step": "browser", "code": "browser.timeout", "exit_code": 0,
                  "message": "the page did not load within 20 s"}
    text = " ".join(terminal(j).split())
    assert "The browser phase failed: the page did not load within 20 s." in text
    assert "✗ the page did not load within 20 s [browser.timeout]" in text
    assert "apt-get" not in text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=40), number=st.one_of(st.none(), st.floats(0, 1e5)),
       stream=st.one_of(st.none(), st.integers(0, 2**31)))
def test_any_browser_text_renders_everywhere_shown_not_obeyed(text: str, number: float | None,
                                                              stream: int | None) -> None:
    j = load()
    for c in browser(j)["children"]:
        a = c["attrs"]
        if c["name"] == "browser.resource":
            a.update(url=a["url"] + text, initiator=text, priority=text or None,
                     render_blocking=text or None, cache_status=text, stream_id=stream,
                     encoded_bytes=None if number is None else int(number))
        elif c["name"] == "browser.mark":
            a.update(element=text or None, url=text or None)
        else:
            a.update(url=text or None, event=text)
    browser(j)["attrs"].update(lcp_element=text, cls=number, browser=text)
    shown = terminal(j, explain=True)
    assert RAW.findall(shown) == []
    parse(render_html(j))
    jsonschema.Draft202012Validator(HAR_SCHEMA).validate(to_har(j))
    events = [detail_event(c, 1) for c in browser(j)["children"]]
    events.append(step_event(browser(j), 1))
    assert RAW.findall(json.dumps(events, ensure_ascii=False).replace("\\n", "")) == []
