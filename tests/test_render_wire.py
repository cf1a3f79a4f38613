"""The wire, the timing guide and every header in the reports (issue 11): rendered from the
recorded demo journey with facts added where a test needs them."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from journey_helpers import demo_url, trace
from test_render_terminal import DATA, journey, render
from whathappens.analysis.document import SCHEMA, analyze
from whathappens.demo.internet import DemoInternet
from whathappens.render.html import render_html
from whathappens.web.events import step_event


def http_span(j: dict[str, Any], leg: int = 0) -> dict[str, Any]:
    legs = [s for s in j["spans"] if s["name"] == "leg"]
    span: dict[str, Any] = next(c for c in legs[leg]["children"] if c["name"] == "http")
    return span


# --- report error 8: every response header, or say how many are hidden ----------------
LAB_LIKE = [("server", "nginx"), ("date", "Mon, 07 Dec 2026 16:00:00 GMT"),
            ("content-type", "text/html; charset=utf-8"), ("content-length", "4123"),
            ("vary", "Accept-Encoding"), ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"), ("referrer-policy", "same-origin"),
            ("cross-origin-opener-policy", "same-origin"), ("server-timing", "app;dur=3.1"),
            ("cache-control", "public, max-age=60"), ("etag", '"abc"'), ("age", "3"),
            ("via", "1.1 edge"), ("strict-transport-security", "max-age=31536000"),
            ("x-cache", "HIT"), ("content-encoding", "br"), ("x-request-id", "r-42")]


def test_every_response_header_is_shown_the_late_ones_too() -> None:
    j = journey()
    http_span(j)["attrs"]["response_headers"] = [list(h) for h in LAB_LIKE]
    text = render(j)
    for name, value in LAB_LIKE:
        assert f"< {name}: {value}" in text
    assert "not shown" not in text


def test_a_very_long_list_says_how_many_are_hidden_and_where_to_see_them() -> None:
    j = journey()
    many = [[f"x-h{i}", str(i)] for i in range(65)]
    http_span(j)["attrs"]["response_headers"] = many
    text = render(j)
    assert "< x-h39: 39" in text
    assert "< x-h40: 40" not in text
    assert "… 25 more response headers of 65 not shown: --explain lists every one" in text
    explained = render(j, explain=True)
    assert "< x-h64: 64" in explained
    assert "not shown" not in explained


# --- HTTP/2 on the wire, from a real journey through the demo internet -------------------
def demo_journey(net: DemoInternet, *args: str) -> dict[str, Any]:
    j = trace(net, demo_url(net), *args)
    assert j.error is None
    data = j.to_dict()
    data["analysis"] = analyze(data)
    return data


def test_the_frames_of_a_real_h2_exchange_in_every_output(demo_internet: DemoInternet) -> None:
    data = demo_journey(demo_internet, "--http3=off")
    wire = http_span(data)["attrs"]["h2_wire"]
    types = [(f["direction"], f["type"]) for f in wire["frames"]]
    assert types[:3] == [("sent", "SETTINGS"), ("sent", "WINDOW_UPDATE"), ("sent", "HEADERS")]
    assert ("received", "DATA") in types
    assert wire["request_block"]["encoded"] < wire["request_block"]["octets"]
    # The terminal: one compact line by default, the table with --explain.
    plain = render(data)
    assert "→ SETTINGS  → WINDOW_UPDATE  → HEADERS  ← SETTINGS" in plain
    assert f"{wire['total']} HTTP/2 frames on this exchange" in plain
    assert "after HPACK" in plain
    explained = render(data, explain=True)
    assert "frame          stream  flags" in explained
    assert "END_STREAM" in explained
    assert "END_HEADERS" in explained
    assert "+15,663,105" in explained  # our connection WINDOW_UPDATE (15 MiB − 65,535)
    # The HTML report (and so the live page's report): a table, a row per frame.
    page = render_html(data)
    assert page.count("<td data-label=\"frame\" class=\"nw\">SETTINGS</td>") >= 3
    assert "On the wire" in page
    # The live page's line for the HTTP step.
    event = step_event(http_span(data), 0)
    assert f"; {wire['total']} HTTP/2 frames, response headers" in event["summary"]


def test_a_chunked_body_in_the_terminal_and_the_report() -> None:
    j = journey()
    chunks = [{"size": 100 + i, "t_ns": 90_000_000 + i * 5_000_000} for i in range(12)]
    http_span(j)["attrs"]["chunked"] = {"chunks": chunks, "total": 300, "dropped": 288,
                                        "body_bytes": 40_000}
    plain = render(j)
    assert "chunked transfer (RFC 9112 §7.1): 300 chunks, 39.1 KiB of body" in plain
    assert "100 B, 101 B +5.00 ms, 102 B +5.00 ms" in plain
    assert "… 4 more listed with --explain" in plain
    assert "… 288 more chunks not listed (the first 12 are)" in plain
    explained = render(j, explain=True)
    assert "chunk   size    at ms     after" in explained
    assert "111 B  145.000  +5.00 ms" in explained
    page = render_html(j)
    assert "<th scope=\"col\">after the previous</th>" in page
    assert "288 more chunks not listed" in page


# --- what good timing looks like ---------------------------------------------------------
def test_the_guide_puts_the_rules_beside_the_journeys_figures() -> None:
    j = journey()
    rows = analyze(j)["timing_guide"]["rows"]
    Draft202012Validator(SCHEMA).validate(analyze(j))
    by = {r["metric"]: r for r in rows}
    assert [r["metric"] for r in rows] == ["dns", "tcp", "tls", "ttfb", "navigation_ttfb"]
    budgets = {b["step"]: b for b in analyze(j)["budgets"]}
    for metric in ("dns", "tcp", "tls", "ttfb"):  # budgets.py's verdicts, not new numbers
        assert by[metric]["outcome"] == budgets[metric]["outcome"]
        assert by[metric]["value"] == budgets[metric]["took_ms"]
        assert by[metric]["limit"] == budgets[metric]["limit_ms"]
    assert by["dns"]["rule"] == "from a cache ≈ 1–5 ms · cold tens–hundreds of ms · < 50 ms"
    assert by["dns"]["note"].startswith("cold: the resolver's answer had the zone's full TTL")
    assert by["tcp"]["note"] == "1 RTT = 0.027 ms here (kernel); took 8.4 × RTT"
    nav = by["navigation_ttfb"]
    leg = next(s for s in j["spans"] if s["name"] == "leg")
    first_byte = http_span(j)["attrs"]["t_first_byte_ns"] / 1e6
    assert nav["value"] == round(first_byte - leg["start_ms"], 3)
    assert (nav["limit"], nav["outcome"]) == (800.0, "good")
    text = render(j)
    assert "What good timing looks like  (rules of thumb, not measurements" in text
    assert "TTFB (page)" in text
    page = render_html(j)
    assert "<section id=\"timing\"" in page
    assert "Rules of thumb, not measurements" in page


def test_after_a_browser_phase_the_vitals_join_the_guide() -> None:
    data = json.loads((DATA / "journey_browser.json").read_text())
    rows = analyze(data)["timing_guide"]["rows"]
    vitals = {r["metric"]: r for r in rows if r["metric"] in ("fcp", "lcp", "cls")}
    page = {v["metric"]: v for v in analyze(data)["browser"]["vitals"]}
    assert set(vitals) == {"fcp", "lcp", "cls"}
    for m, row in vitals.items():
        assert (row["value"], row["outcome"], row["limit"]) == (
            page[m]["value"], page[m]["outcome"], page[m]["good"])


def test_a_host_cache_answer_is_in_the_cache_band(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, scheme="http"))
    data = j.to_dict()
    rows = [r for r in analyze(data)["timing_guide"]["rows"] if r["metric"] == "dns"]
    assert [r["leg"] for r in rows] == [0, 1]
    assert rows[1]["note"] == "from the journey's host cache: no question asked"
    assert rows[1]["value"] < 1.0
    text = render(data)
    assert "DNS, request 2" in text
    assert "(from the journey's host cache, TTL" in " ".join(text.split())


def test_a_failed_exchange_shows_the_frames_up_to_the_failure() -> None:
    j = journey()
    span = http_span(j)
    span["attrs"].update(status=None, h2_wire={
        "frames": [{"direction": "received", "type": "RST_STREAM", "stream_id": 1,
                    "flags": [], "length": 4, "t_ns": 91_000_000, "detail": "CANCEL"}],
        "total": 1, "dropped": 0, "request_block": None, "response_block": None})
    span["error"] = {"code": "http.stream_reset", "message": "The server reset the stream",
                     "step": "http", "exit_code": 7}
    text = render(j)
    assert "✗ The server reset the stream" in text
    assert "← RST_STREAM" in text
