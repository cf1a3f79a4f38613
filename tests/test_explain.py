"""The explanations: every span kind has texts, every value a text names is one its span can
carry, and the filled texts are true for real journeys of the demo internet (the path, the
status, the views that ran, the TLS step's parts), in every renderer. Also the report errors
of issue 11 this part fixed (1, 2, 5, 6, 7, 9), each with its test.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journey_helpers import demo_url, legs, trace
from test_lab_timeline import TRACE, TRACEPARENT, renamed_lab  # noqa: F401  (a fixture)
from whathappens.contract.document import SpanDoc, read_journey
from whathappens.contract.facts import SPAN_FACTS, HttpFacts, LegFacts, TlsFacts, facts_class
from whathappens.demo.internet import DemoInternet
from whathappens.explain.fill import (
    DERIVE,
    DERIVED_SLOTS,
    Context,
    allowed_slots,
    explain_response,
    explain_span,
    leg_contexts,
    sentence,
    slots,
)
from whathappens.explain.texts import LOGGED, SPAN_TEXTS, SpanText
from whathappens.explain.words import validity
from whathappens.journey import Journey
from whathappens.lab.client.timeline import collect, merge
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers import caddy, haproxy, nginx
from whathappens.lab.tiers.django_spans import INNER_ACTORS
from whathappens.net.certs import whole_days
from whathappens.render.format import ms
from whathappens.render.html import render_html
from whathappens.render.terminal import render_terminal
from whathappens.render.view import journey_view, read
from whathappens.web.events import step_event

# "None" as a word of its own (not If-None-Match or SameSite=None): a value that was missing.
NONE = re.compile(r"(?<![\w=-])None(?![\w-])")

ROOT = Path(__file__).resolve().parents[1]

# Every kind of span the lab's tiers and the site can leave (lab/tiers/*, lab/site/*).
LAB_KINDS = {"edge", "pop", "lb", "app", "django", "postgres", "celery", "sql", "connect",
             *INNER_ACTORS, "think", "task", "queue-wait", "dead-letter"}


def templates(text: SpanText) -> list[str]:
    return [*text.beginner, *text.advanced, *text.measures, text.title]


# ------------------------------------------------------------------------ coverage, slots
def test_every_span_kind_the_code_can_produce_has_texts() -> None:
    missing = [n for n in SPAN_FACTS if n not in SPAN_TEXTS]
    missing += [f"server.{k}" for k in LAB_KINDS if f"server.{k}" not in SPAN_TEXTS]
    assert missing == []
    for name, text in SPAN_TEXTS.items():
        assert text.beginner, f"{name} lacks a beginner text"
        assert text.advanced, f"{name} lacks an advanced text"


def test_every_value_a_template_names_is_one_its_span_carries() -> None:
    wrong = {}
    for name, text in SPAN_TEXTS.items():
        bad = {s for t in templates(text) for s in slots(t)} - allowed_slots(name)
        if bad:
            wrong[name] = sorted(bad)
    assert wrong == {}


def test_the_check_catches_a_value_the_facts_do_not_carry() -> None:
    assert "colour" not in allowed_slots("http")
    assert "status" in allowed_slots("http")            # an HttpFacts field
    assert "path" in allowed_slots("http")              # worked out (derive)
    assert "Tw" in allowed_slots("server.lb")           # HAProxy logs it
    assert "Tw" not in allowed_slots("server.edge")


def test_the_logged_fields_are_the_ones_the_tiers_log() -> None:
    assert set(LOGGED["edge"]) == set(nginx.SPAN_FIELDS) == set(LOGGED["app"])
    assert set(LOGGED["lb"]) == {*haproxy.SPAN_FIELDS, "algorithm", "timers"}
    assert set(LOGGED["pop"]) == set(caddy.SPAN_FIELDS)


def test_derived_names_are_declared_for_a_known_span() -> None:
    assert set(DERIVE) == set(DERIVED_SLOTS)
    assert set(DERIVE) <= set(SPAN_TEXTS)


# -------------------------------------------------------------------------------- engine
def test_a_sentence_with_an_absent_value_is_left_out() -> None:
    assert sentence("Took {took}.", {"took": "3 ms"}) == "Took 3 ms."
    assert sentence("Took {took}.", {"took": None}) is None
    assert sentence("Took {took}.", {}) is None
    assert sentence("{if:reused}Reused.", {"reused": True}) == "Reused."
    assert sentence("{if:reused}Reused.", {"reused": False}) is None
    assert sentence("{not:reused}New.", {"reused": False}) == "New."
    assert sentence("{not:reused}New.", {"reused": None}) is None   # unknown is not false
    assert sentence("{not:reused}New.", {}) is None


@pytest.mark.parametrize("name", sorted(SPAN_TEXTS))
def test_empty_facts_never_show_none_or_a_brace(name: str) -> None:
    if name in ("tls-compare",):
        return
    span = SpanDoc(id=1, name=name if name != "response" else "http", step="x", actor="",
                   layer="", start_ms=0.0, end_ms=None, duration_ms=None,
                   facts=facts_class(name)(), error=None, children=[])
    e = explain_span(span) if name != "response" else explain_response(span)
    assert e is not None
    for text in (e.beginner, e.advanced, e.measures):
        assert not NONE.search(text)
        assert "{" not in text
        assert "}" not in text


# ---------------------------------------------------------------- real journeys (the demo)
def _doc(journey: Journey) -> Any:
    return read_journey(json.loads(json.dumps(journey.to_dict())))


def all_explanations(journey: Journey) -> dict[int, list[str]]:
    """Every span's filled texts, each in its leg's context, by span id."""
    doc = _doc(journey)
    contexts = leg_contexts(doc.spans)
    out: dict[int, list[str]] = {}
    for top in doc.spans:
        ctx = contexts.get(top.id, Context())
        for span in top.walk():
            e = explain_span(span, ctx)
            if e is not None:
                out[span.id] = [e.beginner, e.advanced, e.measures]
            derived = DERIVE.get(span.name)
            if derived is not None:
                assert set(derived(span, ctx)) <= DERIVED_SLOTS[span.name], span.name
    return out


def _text(journey: Journey, leg: int, name: str) -> str:
    doc = _doc(journey)
    contexts = leg_contexts(doc.spans)
    leg_span = [s for s in doc.spans if s.name == "leg"][leg]
    span = leg_span if name == "leg" else leg_span.child(name)
    assert span is not None
    e = explain_span(span, contexts[leg_span.id])
    assert e is not None
    return " ".join((e.beginner, e.advanced, e.measures))


def test_http_texts_name_each_legs_own_path_and_status(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/3"))
    assert len(legs(j)) == 4
    for i, (path, status) in enumerate([("/redirect/3", "302"), ("/redirect/2", "302"),
                                        ("/redirect/1", "302"), ("/", "200")]):
        text = _text(j, i, "http")
        assert f"“GET {path} on www.example.com" in text
        assert f"The answer: {status}" in text
    assert "please give me / on" not in _text(j, 0, "http")
    # Legs 2-4 are redirects on the connection leg 1 opened.
    second = _text(j, 1, "leg")
    assert "The answer to request 1 was 302" in second
    assert "travels on the connection already open" in second
    assert "It needs a connection of its own" in _text(j, 0, "leg")
    for texts in all_explanations(j).values():
        for t in texts:
            assert not NONE.search(t)
            assert "{" not in t


def test_a_plain_http_leg_and_its_https_redirect(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, scheme="http"))
    first = _text(j, 0, "http")
    assert "“GET / on www.example.com" in first
    assert "The answer: 301" in first
    assert "HTTP/1.1" in first
    assert "It pointed to https://www.example.com" in first
    doc = _doc(j)
    first_leg = next(s for s in doc.spans if s.name == "leg")
    back = explain_response(first_leg.child("http"), leg_contexts(doc.spans)[first_leg.id])
    assert "in the clear (plain http" in back.beginner
    assert "encryption" not in back.beginner
    second = _text(j, 1, "leg")
    assert "The answer to request 1 was 301" in second
    assert "a DNS lookup, a QUIC handshake (TLS 1.3 inside it)" in second
    assert "HTTP/3" in _text(j, 1, "http")     # the HTTPS record advertises h3: QUIC won


def test_dns_text_says_which_views_ran_and_how_browsers_resolve(
        demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net))
    text = _text(j, 0, "dns")
    assert "Three views" not in text
    assert "Views that ran for this journey: recursive resolver, iterative walk" in text
    assert "did not run here" in text
    assert "RFC 8484" in text
    assert "what a browser uses" not in text
    assert re.search(r"TTL [\d,]+ s left of [\d,]+|[\d,]+ s of the zone's [\d,]+, is within", text)
    only = trace(net, demo_url(net), "--dns-views", "resolver")
    text = _text(only, 0, "dns")
    assert "Views that ran for this journey: recursive resolver;" in text
    assert "iterative walk" not in text.split(";")[0]


def test_tls_text_shows_the_context_setup_apart(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net), "--http3=off")
    tls = next(s for s in _doc(j).all_spans() if s.name == "tls")
    facts = tls.facts_as(TlsFacts)
    assert facts is not None
    setup = facts.context_setup_ms
    text = _text(j, 0, "tls")
    assert "building the TLS context and loading the trust store" in text
    assert f"({ms(setup)})" in text
    assert "RFC 9525" in text
    assert "RFC 6125" not in text


# ------------------------------------------------------------------------------ renderers
def test_terminal_explain_fills_every_leg(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/1"), "--http3=off")
    out = io.StringIO()
    render_terminal(j.to_dict(), out, explain=True, color=False, width=200)
    text = out.getvalue()
    assert "“GET /redirect/1 on www.example.com" in text
    assert "“GET / on www.example.com" in text
    assert "The answer to request 1 was 302" in text
    assert "The answer's trip back" in text
    assert "Wall time on the journey's monotonic clock" in text
    assert "CPU time to parse" not in text
    assert "= building the TLS context" in text           # the TLS row, in two parts
    assert "What a browser does next" in text
    assert "The answer is text/html" in text
    assert not NONE.search(text)


def test_html_report_explains_each_leg_and_labels_the_times(
        demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/1"), "--http3=off")
    page = render_html(j.to_dict())
    assert "GET /redirect/1 on www.example.com" in page
    assert "(CPU time" not in page
    assert "wall time, monotonic" in page
    assert "HSTS preload table" in page
    assert "ClientHello sent → our Finished sent" in page
    assert "building the TLS context and loading the trust store" in page
    assert "three views" not in page.lower()


def test_live_page_events_carry_the_filled_texts(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/1"))
    doc = j.to_dict()
    first_http = doc["spans"][2]["children"][-1]
    assert first_http["name"] == "http"
    event = step_event(first_http, 1)
    assert "GET /redirect/1" in event["beginner"]
    assert "302" in event["beginner"]


# ------------------------------------------------------------------------------ the lab
def test_lab_tiers_are_explained_with_their_own_values(
        demo_internet: DemoInternet, renamed_lab: LabContext) -> None:  # noqa: F811
    net = demo_internet
    j = trace(net, demo_url(net))
    http = next(s for s in j.all_spans() if s.name == "http")
    http.facts.traceparent = TRACEPARENT
    assert merge(j, collect(renamed_lab.state, TRACE)) > 0
    view = journey_view(read(j.to_dict()))
    [top] = view.legs[0].http.inside  # type: ignore[union-attr]
    nodes = {}
    stack = [top]
    while stack:
        n = stack.pop()
        nodes[n.kind] = n
        stack += n.children
    words = {k: " ".join((n.explain.beginner, n.explain.advanced))  # type: ignore[union-attr]
             for k, n in nodes.items()}
    assert "For / its cache said MISS" in words["edge"]
    assert "sent this request to app-1 by the roundrobin rule" in words["lb"]
    assert "It waited 0 ms in the queue and 0 ms to connect to app-1" in words["lb"]
    assert "worker 42" in words["django"]
    assert "WSGI" in words["django"]
    assert "the view home" in words["django"]
    assert "5.10 ms, from parsing it" in words["django"]
    assert "SELECT 1" in words["sql"]
    assert "replica" in words["sql"]
    assert "1.50 ms on the statement" in words["postgres"]
    assert "backend pid 4242" in words["postgres"]
    page = render_html(j.to_dict())
    inside = page[page.index('id="inside"'):]
    assert "by the roundrobin rule" in inside
    out = io.StringIO()
    render_terminal(j.to_dict(), out, explain=True, color=False, width=200)
    assert "by the roundrobin rule" in out.getvalue()
    response = view.legs[0].http.response  # type: ignore[union-attr]
    assert response is not None
    assert "each server handing it" in response.beginner


# ------------------------------------------------------------- report errors 7 and 9
def test_rfc_6125_is_cited_nowhere() -> None:
    """RFC 9525 replaced RFC 6125 (2023)."""
    files = [p for p in (ROOT / "src").rglob("*") if p.suffix in (".py", ".md", ".html",
                                                                  ".js", ".json")]
    files.append(ROOT / "README.md")
    assert [str(p) for p in files if "6125" in p.read_text(encoding="utf-8")] == []


def test_days_left_is_one_computation_and_one_wording() -> None:
    import datetime as dt
    assert whole_days(dt.timedelta(days=-30.5)) == -30
    assert whole_days(dt.timedelta(days=89.9)) == 89
    assert validity(-30) == "expired 30 days ago"
    assert validity(89) == "89 days left"
    assert validity(1) == "1 day left"
    assert validity(None) == "validity unknown"


def test_an_expired_certificate_says_the_same_days_everywhere(
        demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, host="expired.example.com"))
    assert j.error is not None
    match = re.search(r"\((\d+) days? ago\)", j.error.message)
    assert match, j.error.message
    days = match[1]
    out = io.StringIO()
    render_terminal(j.to_dict(), out, color=False, width=200)
    text = out.getvalue()
    page = render_html(j.to_dict())
    for shown in (text, page):
        assert re.search(r"\(-\d+ days", shown) is None     # never "(-31 days)"
    tls = next(s for s in j.all_spans() if s.name == "tls")
    chain = tls.facts.chain or []
    if chain:   # the chain table (when the handshake got that far) says the same days
        assert chain[0].days_left == -int(days)
        assert f"expired {days} day" in text


def test_leg_context_names_the_previous_response() -> None:
    leg = LegFacts(index=1, url="https://x.test/", connection="reused")
    span = SpanDoc(id=2, name="leg", step="leg", actor="", layer="", start_ms=0.0,
                   end_ms=1.0, duration_ms=1.0, facts=leg, error=None, children=[])
    e = explain_span(span, Context(leg, HttpFacts(status=308), 1))
    assert e is not None
    assert "The answer to request 1 was 308" in e.beginner
    assert "it moved for good, ask the same way" in e.beginner


def test_the_tls_comparison_is_explained_with_its_medians() -> None:
    from whathappens.contract.codec import from_json
    from whathappens.contract.document import TlsCompare
    from whathappens.explain.fill import explain_compare

    data = json.loads((ROOT / "tests/data/tls_compare.json").read_text(encoding="utf-8"))
    e = explain_compare(from_json(TlsCompare, data))
    assert e is not None
    assert "Here TLS 1.2 took 2.36 ms (2 round trips) and TLS 1.3 1.71 ms (1 round trip)" \
        in e.beginner
    assert "not faster" not in e.beginner                 # 1.3 was faster in this run
    assert "RFC 8446" in e.advanced
    not_measured = from_json(TlsCompare, {"measured": False, "reason": "plain http"})
    assert explain_compare(not_measured) is None


@given(st.dictionaries(st.sampled_from(["took", "path", "status", "reused", "host"]),
                       st.one_of(st.none(), st.booleans(), st.text(max_size=8))))
def test_a_filled_sentence_is_whole_or_left_out(values: dict[str, Any]) -> None:
    """Whatever a span has, each template either comes out with every value in place or not
    at all: no brace, no "None" where a value was absent."""
    for name, text in SPAN_TEXTS.items():
        for template in templates(text):
            out = sentence(template, values)
            if out is None:
                continue
            assert not slots(out) or any("{" in str(v) for v in values.values())
            assert all(values.get(n) is not None for n in slots(template)), name


def test_every_rule_of_thumb_says_why() -> None:
    """The cheat sheet lists every rule with the reason it is what it is (QUIC's once had
    none: an empty line in every report)."""
    from whathappens.analysis.budgets import RULES
    from whathappens.explain.report import RULE_WHY

    assert {r.step for r in RULES} <= {k for k, v in RULE_WHY.items() if v.strip()}
