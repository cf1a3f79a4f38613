"""The lab, for real: the database step by step (``-H 'X-Explain: 1'``), Django's phases,
each hop's connection, the SQL labels of each profile, and a cached answer's traceresponse.

Both profiles run on 127.<N>.x.y of their own (tests/lab_helpers.py), beside any lab already
up. Needs the Debian packages (``whathappens lab install``) and the ``lab`` Python extra.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from journey_helpers import check_universal, child, legs, options
from lab_helpers import bring_up, needs_lab
from whathappens.contract.facts import ServerFacts
from whathappens.journey import Journey, Span
from whathappens.lab.client import apply, merge_inside
from whathappens.lab.client.cached import trace_of
from whathappens.lab.tier import LabContext
from whathappens.render.html import render_html
from whathappens.render.terminal import render_terminal
from whathappens.trace import run_journey

pytestmark = needs_lab

EDGE_CACHE_S = 10          # the edge's proxy_cache_valid for a page that names no lifetime


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production", prefix="whathappens-labdb-")


def journey(ctx: LabContext, path: str = "/", *args: str) -> Journey:
    manifest = json.loads((ctx.state / "lab.json").read_text())
    front = next(t for t in manifest["tiers"] if t["name"] in ("edge", "nginx"))
    port = "" if front["port"] == 443 else f":{front['port']}"
    opts = options("--dns-views", "system", *args)
    apply(opts, ctx.state)
    j = asyncio.run(run_journey(f"https://www.example.com{port}{path}", opts))
    merge_inside(j, ctx.state)
    assert j.error is None, j.error and j.error.to_dict()
    check_universal(j)      # schema-valid (1.6), every span inside its parent
    return j


def http_of(j: Journey) -> Span[Any]:
    [leg] = legs(j)
    return child(leg, "http")


def servers(span: Span[Any]) -> list[Span[ServerFacts]]:
    return [s for s in span.walk() if s.name.startswith("server.")]


def hops(j: Journey) -> dict[str, Any]:
    return {h.hop: h for s in servers(http_of(j)) for h in s.facts.connections}


def test_x_explain_gives_the_database_step_by_step(production: LabContext) -> None:
    j = journey(production, "/", "-H", "X-Explain: 1")
    explained = [s for s in servers(http_of(j)) if s.facts.db_explain is not None]
    assert [s.name for s in explained] == ["server.sql"]
    sql = explained[0]
    assert sql.actor == "PostgreSQL replica (db-replica) via PgBouncer (pgbouncer)"
    e = sql.facts.db_explain
    assert e is not None
    print(json.dumps(sql.attrs["db_explain"], indent=1))
    assert e.errors == {}
    assert e.chosen is not None
    assert e.rejected is not None
    assert "Index Scan using idx_pages_slug" in "\n".join(e.chosen.tree)
    assert "Seq Scan on pages" in "\n".join(e.rejected.tree)
    assert (e.chosen.total_cost or 0) < (e.rejected.total_cost or 0)
    assert (e.chosen.execution_ms or 0) > 0
    assert (e.rejected.execution_ms or 0) > 0
    assert (e.chosen.shared_hit or 0) + (e.chosen.shared_read or 0) >= 1
    assert (e.btree_index, e.btree_level, e.btree_depth) == ("idx_pages_slug", 0, 1)
    assert (e.stmt_calls or 0) >= 1
    # the explain's own statements are a span of their own, inside the view
    view = next(s for s in servers(http_of(j)) if s.name == "server.view")
    assert "server.explain" in [c.name for c in view.children]
    out = io.StringIO()
    render_terminal(j.to_dict(), out, color=False, width=200)
    text = out.getvalue()
    print(text[text.index("inside"):])
    assert "the database, step by step" in text
    assert "4 B-tree idx_pages_slug: level 0" in text
    # the HTML report (whose sections the live page shows too)
    page = render_html(j.to_dict())
    assert "the database, step by step" in page
    assert "client → edge: new connection, request 1 on it" in page
    # without the header: no extra statements, no facts
    plain = journey(production, "/?plain", "-H", "X-Explain: 0")
    assert all(s.facts.db_explain is None for s in servers(http_of(plain)))


def test_djangos_middleware_view_and_template_are_spans(production: LabContext) -> None:
    j = journey(production, "/", "-H", "X-Explain: 1")      # bypasses the caches
    django = next(s for s in servers(http_of(j)) if s.name == "server.django")
    phases = [(c.name, c.actor) for c in django.children]
    assert phases == [("server.middleware", "Django middleware (request half)"),
                      ("server.view", "Django view home"),
                      ("server.middleware", "Django middleware (response half)")]
    view = django.children[1]
    names = [c.name for c in view.children]
    assert names[-1] == "server.template"
    assert "server.sql" in names
    for outer, inner in ((django, view), (view, view.children[-1])):
        assert outer.start_ns <= inner.start_ns
        assert inner.end_ns is not None
        assert outer.end_ns is not None
        assert inner.end_ns <= outer.end_ns


def test_each_hop_says_new_or_reused(production: LabContext) -> None:
    j = journey(production, "/", "-H", "X-Explain: 1")
    found = hops(j)
    server = next(s for s in servers(http_of(j)) if s.name == "server.lb").attrs["server"]
    node = str(server)
    expected = {"client → edge", "edge → lb", f"lb → {node}-nginx",
                f"{node}-nginx → {node}-gunicorn", f"{node}-gunicorn → pgbouncer",
                "pgbouncer → db-replica"}
    assert expected <= set(found), sorted(found)
    for name, h in found.items():
        print(name, h)
    # a journey's one request is its connection's first
    assert (found["client → edge"].new, found["client → edge"].requests) == (True, 1)
    # nginx keeps no connection to gunicorn: a new one every time, timed by nginx
    app = found[f"{node}-nginx → {node}-gunicorn"]
    assert app.new is True
    assert app.connect_ms is not None
    assert isinstance(found["edge → lb"].new, bool)
    assert isinstance(found["pgbouncer → db-replica"].new, bool)
    again = hops(journey(production, "/", "-H", "X-Explain: 1"))
    # the edge kept its connection to HAProxy (upstream keepalive): the second is reused
    assert again["edge → lb"].new is False
    assert again["edge → lb"].connect_ms is None
    assert (again["edge → lb"].requests or 0) >= 2


def test_a_cached_answer_names_the_request_that_stored_it(production: LabContext) -> None:
    path = f"/?cached={time.time_ns()}"       # a cache key of its own
    first = journey(production, path)
    stored_by = trace_of(str(http_of(first).facts.traceparent))
    edge = servers(http_of(first))[0]
    assert edge.attrs["cache"] == "MISS"
    hit = journey(production, path)
    assert _answer(hit, stored_by, "HIT") is not None
    time.sleep(EDGE_CACHE_S + 1.5)
    stale = journey(production, path)
    note = _answer(stale, stored_by, "STALE")
    assert note is not None
    refresh = [f.message for f in stale.findings if "background" in f.message]
    assert refresh, [f.message for f in stale.findings]


def _answer(j: Journey, stored_by: str | None, cache: str) -> str | None:
    """The edge answered from its cache; the traceresponse is the storing request's and
    is said to be; no span behind the edge is placed under this request."""
    http = http_of(j)
    mine = trace_of(str(http.facts.traceparent))
    response = dict((n.lower(), v) for n, v in http.facts.response_headers)
    assert trace_of(response["traceresponse"]) == stored_by != mine
    [edge] = servers(http)
    assert edge.attrs["cache"] == cache
    assert edge.attrs["response_trace"] == stored_by
    notes = [f.message for f in j.findings if f"names trace {stored_by}" in f.message
             and not f.message.startswith("the revalidation: ")]
    assert len(notes) == 1, [f.message for f in j.findings]
    print(notes[0])
    assert "not merged into this journey" in notes[0]
    assert "edge log: a MISS" in notes[0]
    return notes[0]


def test_the_single_profile_labels_its_own_topology() -> None:
    ctx_iter = bring_up("single", prefix="whathappens-labdb-")
    ctx = next(ctx_iter)
    try:
        j = journey(ctx, "/", "-H", "X-Explain: 1")
        inside = servers(http_of(j))
        sql = [s for s in inside if s.name == "server.sql"]
        assert sql
        assert {s.actor for s in sql} == {"PostgreSQL primary (db-primary), direct"}
        assert not [s.actor for s in inside if "PgBouncer" in s.actor or "replica" in s.actor]
        explained = [s.facts.db_explain for s in sql if s.facts.db_explain is not None]
        assert len(explained) == 1
        assert explained[0].btree_depth == 1
        found = hops(j)
        assert "gunicorn → db-primary" in found, sorted(found)
        assert "app → db-primary" in found        # the backend, from PostgreSQL's log
        assert found["nginx → gunicorn"].new is True   # the single nginx: no keepalive
    finally:
        next(ctx_iter, None)
