"""The analyses (analysis/): budgets and their verdicts, actor roles, the summary — pure
functions over the journey document, whose JSON (``analyze``) matches its schema and whose
verdicts the terminal, the HTML report and the live page all show the same."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from whathappens.analysis.actors import zone_role
from whathappens.analysis.budgets import verdicts
from whathappens.analysis.document import SCHEMA, analyze, analyze_journey
from whathappens.analysis.model import Analysis
from whathappens.contract.codec import from_json
from whathappens.contract.document import read_journey
from whathappens.render.html import render_html
from whathappens.render.terminal import render_terminal
from whathappens.web.events import step_event

DATA = Path(__file__).parent / "data" / "journey_demo.json"


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return doc


def leg_child(doc: dict[str, Any], name: str) -> dict[str, Any]:
    leg = next(s for s in doc["spans"] if s["name"] == "leg")
    found: dict[str, Any] = next(c for c in leg["children"] if c["name"] == name)
    return found


def test_the_demo_journeys_analysis() -> None:
    a = analyze(load())
    Draft202012Validator(SCHEMA).validate(a)
    s = a["summary"]
    assert (s["outcome"], s["status"], s["http_version"], s["requests"]) == (
        "ok", 200, "HTTP/2", 1)
    assert s["time_by_step"] == {"dns": 16.269, "tcp": 0.228, "tls": 3.593, "http": 2.07}
    assert s["slowest_step"] == "dns"
    by = {b["step"]: b for b in a["budgets"]}
    assert [b["step"] for b in a["budgets"]] == ["dns", "tcp", "tls", "ttfb"]
    assert (by["dns"]["outcome"], by["dns"]["limit_ms"]) == ("within", 50.0)
    assert by["ttfb"]["outcome"] == "within"
    # TCP and TLS are priced in the kernel's RTT for the connection (TCP_INFO)
    assert by["tcp"]["rtt_ms"] == by["tls"]["rtt_ms"] == 0.027
    assert by["tls"]["guide"] == "≈ 1 RTT for TLS 1.3"
    assert by["tcp"]["outcome"] == "over"  # 0.228 ms against one 0.027 ms round trip
    assert by["tcp"]["rtt_multiple"] == 8.44
    roles = [(x["role"], x["name"]) for x in a["actors"]]
    assert roles[:5] == [("you", "whathappens"),
                         ("resolver", "recursive resolver 127.0.53.53:10053"),
                         ("root", "a.root-servers.net."), ("TLD", "a.gtld-servers.net."),
                         ("authoritative", "ns1.example.com.")]
    assert roles[5] == ("server", "www.example.com")
    assert len(roles) == 6  # each name server once, though it answered three questions
    (cache,) = a["resolver_cache"]  # the first A question, asked again
    assert (cache["took_ms"], cache["first_ms"], cache["faster"]) == (1.0, 12.666, True)


def test_the_json_reads_back_into_the_dataclasses() -> None:
    """What lets the contract carry it typed (``JourneyDoc.analysis: Analysis | None``)."""
    doc = load()
    assert from_json(Analysis, analyze(doc)) == analyze_journey(read_journey(doc))


def test_analysis_is_pure_and_ignores_a_previous_analysis() -> None:
    doc = load()
    before = json.dumps(doc, sort_keys=True)
    first = analyze(doc)
    assert json.dumps(doc, sort_keys=True) == before
    doc["analysis"] = {"stale": True}
    assert analyze(doc) == first


@pytest.mark.parametrize(("dns_ms", "outcome"), [(49.9, "within"), (50.1, "over")])
def test_dns_budget_edge(dns_ms: float, outcome: str) -> None:
    doc = load()
    dns = leg_child(doc, "dns")
    dns["end_ms"] = dns["start_ms"] + dns_ms
    dns["duration_ms"] = dns_ms
    v = next(v for v in verdicts(read_journey(doc)) if v.step == "dns")
    assert v.outcome == outcome


def test_tls_12_gets_two_round_trips_and_no_rtt_means_unknown() -> None:
    doc = load()
    leg_child(doc, "tls")["attrs"]["version"] = "TLSv1.2"
    v = next(v for v in verdicts(read_journey(doc)) if v.step == "tls")
    assert v.guide == "≈ 2 RTT for TLS 1.2"
    assert v.limit_ms == 0.054
    for attempt in leg_child(doc, "tcp")["children"]:
        attempt["attrs"]["tcp_info"] = None
    judged = {v.step: v for v in verdicts(read_journey(doc))}
    assert judged["tls"].outcome == judged["tcp"].outcome == "unknown"
    assert judged["tls"].limit_ms is None
    assert judged["dns"].outcome == "within"  # a fixed limit needs no RTT


@pytest.mark.parametrize(("zone", "role"), [(".", "root"), ("com.", "TLD"), ("com", "TLD"),
                                            ("example.com.", "authoritative"),
                                            ("co.uk.", "authoritative")])
def test_zone_roles(zone: str, role: str) -> None:
    assert zone_role(zone) == role


def test_a_failed_journey_summary() -> None:
    doc = copy.deepcopy(load())
    err = {"step": "tcp", "code": "tcp.refused", "message": "refused", "exit_code": 5}
    doc["error"], doc["exit_code"] = err, 5
    s = analyze(doc)["summary"]
    assert s["outcome"] == "failed"
    assert s["failure"] == {"step": "tcp", "message": "refused", "exit_code": 5}


def test_every_output_shows_the_same_verdicts() -> None:
    """JSON, terminal, HTML and the live page: the verdict of each judged step, once worked
    out (analysis/budgets.py) and worded once (render/view.py)."""
    doc = load()
    words = {"dns": "DNS within < 50 ms", "tcp": "TCP over ≈ 1 RTT (8.4 × RTT)",
             "tls": "TLS over ≈ 1 RTT for TLS 1.3 (133 × RTT)", "ttfb": "TTFB within < 200 ms"}
    assert {b["step"]: b["outcome"] for b in analyze(doc)["budgets"]} == {
        "dns": "within", "tcp": "over", "tls": "over", "ttfb": "within"}
    out = io.StringIO()
    render_terminal(doc, out, color=False, width=400)
    terminal = out.getvalue()
    page = render_html(doc).replace("&lt;", "<")
    for text in words.values():
        assert text in terminal, text
        assert text in page, text
    assert step_event(leg_child(doc, "dns"), 0)["budget"] == words["dns"]
    assert step_event(leg_child(doc, "tcp"), 0)["budget"] == words["tcp"]
    assert step_event(leg_child(doc, "http"), 0)["budget"] == words["ttfb"]
