"""The one view of a journey (render/view.py, steps.py, compare.py) that the terminal, the
HTML report and the live page lay out: its shape for the recorded demo journey, and the TLS
1.2 vs 1.3 comparison built once and shown by all three (tests/data/tls_compare.json is the
``facts.tls_compare`` of a real ``--compare-tls`` run against the demo internet)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from whathappens.contract.codec import from_json
from whathappens.contract.document import TlsCompare
from whathappens.journey import LAYERS
from whathappens.render.compare import ROWS, compare_view
from whathappens.render.html import render_html
from whathappens.render.steps import LegView, UrlView
from whathappens.render.terminal import render_terminal
from whathappens.render.view import OCCASIONAL_SECTIONS, SECTIONS, JourneyView, journey_view, read
from whathappens.web.events import compare_event

DATA = Path(__file__).parent / "data"


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "journey_demo.json").read_text(encoding="utf-8"))
    return doc


def view() -> JourneyView:
    return journey_view(read(load()))


def test_sections_in_reading_order() -> None:
    assert [i for i, _ in SECTIONS] == ["glance", "url", "dns", "tcp", "tls", "quic",
                                        "tls-compare", "http-compare",
                                        "http", "caching", "who", "security",
                                        "browser", "waterfall", "timing", "layers",
                                        "cheatsheet"]
    page = render_html(load())
    # An HTTP/2 journey: no QUIC section, no HTTP-version comparison, and no links to them.
    shown = [i for i, _ in SECTIONS if i not in OCCASIONAL_SECTIONS]
    at = [page.index(f"<section id=\"{i}\"") for i in shown]
    assert at == sorted(at)
    nav = page[page.index("<nav"):page.index("</nav>")]
    assert [i for i, _ in SECTIONS if f'href="#{i}"' in nav] == shown


def test_the_demo_journey_viewed() -> None:
    v = view()
    assert [type(x).__name__ for x in v.order] == ["UrlView", "PrepareView", "LegView"]
    assert isinstance(v.url_step, UrlView)
    assert v.url_step.origin_line == "https://www.example.com"
    assert v.summary.line == "200 · HTTP/2 · TLSv1.3 · 94.7 ms total"
    (leg,) = v.legs
    assert isinstance(leg, LegView)
    assert [r.name for r in leg.order] == ["dns", "tcp", "tls", "http"]
    assert leg.dns is not None
    assert [(s.kind, s.used) for s in leg.dns.sources] == [("resolver", True), ("walk", False)]
    resolver, walk = leg.dns.sources
    repeat = resolver.queries[-1]
    assert repeat.cache is not None
    assert repeat.cache.verdict == ("faster: served from the resolver's cache; its TTL "
                                    "(3,599 of the zone's 3,600) is within the 2 s a fresh "
                                    "answer can lose, so it cannot tell")
    hops = [h for q in walk.questions for h in q.hops]
    assert [h.role for h in hops] == ["root", "TLD", "authoritative", "authoritative",
                                      "authoritative"]
    assert leg.tcp is not None
    assert leg.tcp.tcp_info is not None
    assert leg.tcp.tcp_info.rtt_ms == 0.027
    assert leg.tls is not None
    assert leg.tls.chain[0].leaf
    assert leg.http is not None
    assert leg.http.status == 200
    assert [layer.layer for layer in v.layers][:4] == list(LAYERS)
    judged = {r.label: r.budget.label for r in v.waterfall if r.budget is not None}
    assert judged == {"dns": "DNS", "tcp": "TCP", "tls": "TLS", "http.wait": "TTFB"}
    assert v.commands[0].command == "dig +trace -p 10053 www.example.com"


def test_the_tls_comparison_is_one_table_for_every_renderer() -> None:
    raw = json.loads((DATA / "tls_compare.json").read_text(encoding="utf-8"))
    tc = compare_view(from_json(TlsCompare, raw))
    assert tc is not None
    assert tc.measured
    assert tc.head == ["TLS 1.2", "TLS 1.3"]
    assert [r.label for r in tc.rows] == [label for label, _, _ in ROWS]
    rt = next(r for r in tc.rows if r.label == "round trips waited for")
    assert [c.text for c in rt.cells] == ["2", "1"]
    doc = load()
    doc["facts"]["tls_compare"] = raw
    out = io.StringIO()
    render_terminal(doc, out, color=False, width=200)
    terminal = out.getvalue()
    page = render_html(doc)
    for row in tc.rows:
        assert f">{row.label}</td>" in page.replace("&#x27;", "'"), row.label
        assert (f"        {row.label} " in terminal) is row.brief, row.label
    for v in tc.versions:
        assert v.headline in compare_event(raw)["summary"]
    assert "TLS 1.2: 2.36 ms, 2 round trips" in tc.summary
    assert tc.model is not None
    assert tc.model.available
    assert f"measured difference (1.2 − 1.3): {tc.model.measured}" in terminal


def server_span(ident: int, kind: str, actor: str, attrs: dict[str, Any],
                children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": ident, "name": f"server.{kind}", "step": "http", "actor": actor,
            "layer": "application", "start_ms": 93.0, "end_ms": 94.0, "duration_ms": 1.0,
            "attrs": attrs, "error": None, "children": children or []}


def test_the_server_inside_is_one_tree_for_every_renderer() -> None:
    """The lab's tiers under the HTTP step: the terminal's line per tier and the report's
    tree come from one view (their log fields ride along in ServerFacts)."""
    doc = load()
    leg = next(s for s in doc["spans"] if s["name"] == "leg")
    http = next(c for c in leg["children"] if c["name"] == "http")
    sql = server_span(103, "sql", "Django ORM", {
        "alias": "replica", "sql": "SELECT * FROM pages", "rows": 3,
        "explain": "Seq Scan on pages\n  Filter: published"})
    django = server_span(102, "django", "gunicorn app-1", {
        "view": "home", "status": 200, "pid": 4242, "gunicorn_request_ms": 0.9}, [sql])
    http["children"].append(server_span(101, "edge", "nginx edge", {
        "tier": "edge", "cache": "MISS", "status": 200}, [django]))
    v = journey_view(read(doc))
    (edge,) = v.legs[0].http.inside if v.legs[0].http else ()
    assert (edge.kind, edge.facts) == ("edge", "cache MISS  status 200")
    assert edge.children[0].facts == ("view home  status 200  worker pid 4242  (gunicorn: "
                                      "0.9 ms)")
    assert edge.children[0].children[0].plan == "Seq Scan on pages\n  Filter: published"
    out = io.StringIO()
    render_terminal(doc, out, color=False, width=160)
    text = out.getvalue()
    assert "└ nginx edge  1.00 ms  cache MISS  status 200" in text
    assert "└ Django ORM  1.00 ms  [replica] SELECT * FROM pages  rows 3" in text
    assert "    Filter: published" in text  # the plan, line by line
    page = render_html(doc)
    assert '<section id="inside"' in page
    assert "<pre>Seq Scan on pages\n  Filter: published</pre>" in page
    assert "cache <code>MISS</code>" in page
