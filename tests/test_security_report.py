"""The security grade over a real demo journey (its JSON, schema-valid), and in every
renderer — the terminal, the HTML report, the live page's note — with hostile header values
(markup, terminal escape sequences, bidi overrides) shown as text, never obeyed."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

from journey_helpers import demo_url, schema_errors, trace
from whathappens.demo.internet import DemoInternet
from whathappens.demo.web import SECURITY_HEADERS
from whathappens.render.html import render_html
from whathappens.render.terminal import render_terminal
from whathappens.render.view import SECTIONS
from whathappens.web.events import step_event

DATA = Path(__file__).parent / "data"
HOSTILE = "<script>alert(1)</script>\x1b[31mRED\x1b]8;;https://evil.test\x07\u202eTXT"


def test_the_demo_grades_a_minus_with_two_lessons(demo_internet: DemoInternet) -> None:
    journey = trace(demo_internet, demo_url(demo_internet, scheme="http")).to_dict()
    assert schema_errors(journey) == []
    s = journey["analysis"]["security"]
    assert (s["grade"], s["score"]) == ("A-", 85)
    results = {r["test"]: (r["result"], r["modifier"], r["counted"]) for r in s["rules"]}
    assert results["strict-transport-security"] == (
        "hsts-implemented-max-age-less-than-six-months", -10, True)
    assert results["referrer-policy"] == ("referrer-policy-unsafe", -5, True)
    assert results["redirection"] == ("redirection-to-https", 0, True)
    assert results["content-security-policy"] == (
        "csp-implemented-with-unsafe-inline-in-style-src-only", 0, True)
    # 85 < 90: the Observatory adds no bonus, and the report says which were left out
    assert [t for t, (_, m, counted) in results.items() if not counted] == [
        "cookies", "x-frame-options", "cross-origin-resource-policy"]
    (cookie,) = s["cookies"]
    assert (cookie["name"], cookie["verdict"], cookie["leg"]) == ("demo_session", "good", 1)
    assert s["hsts"]["preload_ready"] is False
    sent = {k.decode() for k, _ in SECURITY_HEADERS}
    shown = {h["header"].lower(): h for h in s["headers"]}
    assert sent - {"x-frame-options"} <= set(shown)
    assert shown["permissions-policy"]["verdict"] == "good"


def hostile_journey() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "journey_demo.json").read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    for s in doc["spans"]:
        for c in s.get("children", []):
            if c["name"] == "http":
                c["attrs"]["response_headers"] += [
                    ["content-security-policy", f"default-src 'self' {HOSTILE}"],
                    ["referrer-policy", HOSTILE],
                    ["set-cookie", f"{HOSTILE}=1; Secure"],
                    ["via", f"1.1 {HOSTILE}"],
                    ["x-powered-by", HOSTILE],
                ]
    return doc


def test_hostile_values_in_the_terminal_are_text() -> None:
    out = io.StringIO()
    render_terminal(hostile_journey(), out, color=False, width=200)
    text = out.getvalue()
    assert "Security headers and cookies" in text
    assert "Who answered" in text
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\x07" not in text
    assert "\\x1b[31mRED" in text
    assert "\\u202e" in text
    assert "X-Powered-By: <script>alert(1)</script>" in text   # shown, as text


def test_hostile_values_in_the_html_report_are_escaped() -> None:
    page = render_html(hostile_journey())
    for ident in ("who", "security"):
        assert f"<section id=\"{ident}\"" in page
    body = page.split("<script type=\"application/json\"")[0]
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "\x1b" not in page
    assert "\u202e" not in page
    assert "\\x1b[31mRED" in body


def test_the_live_note_is_escaped_too() -> None:
    doc = hostile_journey()
    http = next(c for s in doc["spans"] for c in s.get("children", []) if c["name"] == "http")
    event = step_event(http, 0)
    assert "answered by" in event["summary"]
    assert "\x1b" not in json.dumps(event, ensure_ascii=False)
    assert "\\x1b" in event["summary"]


def test_the_sections_are_in_the_navigation() -> None:
    ids = [i for i, _ in SECTIONS]
    assert ids.index("http") < ids.index("who") < ids.index("security") < ids.index("browser")


def test_explain_words_carry_this_journeys_values() -> None:
    doc: dict[str, Any] = json.loads((DATA / "journey_demo.json").read_text(encoding="utf-8"))
    out = io.StringIO()
    render_terminal(doc, out, color=False, width=100, explain=True)
    flat = " ".join(out.getvalue().split())
    assert "remember for 1 hour to come back to www.example.com only over https" in flat
    assert "max-age 3,600 s" in flat
    assert "gives 40 points: D+" in flat
    assert "Here: app server Hypercorn (possible)." in flat
    assert "[hsts-implemented-max-age-less-than-six-months]" in flat   # the rule, cited
    plain = io.StringIO()
    render_terminal(doc, plain, color=False, width=100)
    assert "gives 40 points" not in plain.getvalue()
    assert "[hsts-implemented" not in plain.getvalue()
    page = render_html(doc)
    section = page.split("<section id=\"security\"")[1].split("</section>")[0]
    assert "explain beginner" in section
    assert "explain advanced" in section
