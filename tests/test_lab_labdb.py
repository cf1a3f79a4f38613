"""The lab's database step by step, Django's phases, each hop's connection, the SQL labels
from the running lab's topology, and a cached answer's traceresponse: the pure parts.

The logs here are written in each program's own format (nginx's JSON access log, HAProxy's
JSON lines, the site's span log, PostgreSQL's statement log, an nginx cache file); the real
programs write them in tests/test_lab_labdb_real.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from whathappens.contract.codec import from_json, to_json
from whathappens.contract.facts import DbExplainFacts, HopConnectionFacts, ServerFacts
from whathappens.lab.client.cached import refresh_note, split_refresh, trace_of
from whathappens.lab.client.timeline import join_hops, settle_backends
from whathappens.lab.logs import ServerSpan
from whathappens.lab.site.explain import disable_for, first_index, summary, tree_lines
from whathappens.lab.tiers.django_spans import db_actor, django_span, explain_facts
from whathappens.lab.tiers.haproxy import requests_on_connection
from whathappens.lab.tiers.nginx import hop_facts, last_timer, stored_headers
from whathappens.lab.topology import production, single
from whathappens.render.labdb import connection_line, explain_lines, server_details

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

# What PostgreSQL 15 answers to EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) for the
# home page's query (trimmed to the keys read).
INDEX_PLAN: dict[str, Any] = {
    "Plan": {"Node Type": "Limit", "Startup Cost": 0.14, "Total Cost": 8.16, "Plan Rows": 1,
             "Actual Rows": 1, "Shared Hit Blocks": 2, "Shared Read Blocks": 0,
             "Plans": [{"Node Type": "Index Scan", "Index Name": "idx_pages_slug",
                        "Relation Name": "pages", "Startup Cost": 0.14, "Total Cost": 8.16,
                        "Plan Rows": 1, "Actual Rows": 1, "Shared Hit Blocks": 2,
                        "Shared Read Blocks": 0}]},
    "Planning Time": 0.041, "Execution Time": 0.034, "Query Identifier": 2233312625373722998}
SEQ_PLAN: dict[str, Any] = {
    "Plan": {"Node Type": "Seq Scan", "Relation Name": "pages", "Startup Cost": 0.0,
             "Total Cost": 11.38, "Plan Rows": 1, "Actual Rows": 1, "Shared Hit Blocks": 1,
             "Shared Read Blocks": 0},
    "Planning Time": 0.03, "Execution Time": 0.013}


# ------------------------------------------------------------ site/explain.py (pure part)
def test_a_plan_document_summarised() -> None:
    s = summary(INDEX_PLAN)
    assert (s["planning_ms"], s["execution_ms"]) == (0.041, 0.034)
    assert (s["shared_hit"], s["shared_read"]) == (2, 0)
    assert (s["node"], s["relation"], s["index"], s["total_cost"]) == (
        "Limit", "pages", "idx_pages_slug", 8.16)
    assert s["tree"] == [
        "Limit  (cost=0.14..8.16 rows=1) (actual rows=1)",
        "  -> Index Scan using idx_pages_slug on pages  (cost=0.14..8.16 rows=1) "
        "(actual rows=1)"]


def test_the_rejected_plan_is_asked_for_by_switching_off_the_chosen_method() -> None:
    assert disable_for(INDEX_PLAN["Plan"]) == ("enable_indexscan", "enable_bitmapscan",
                                               "enable_indexonlyscan")
    assert disable_for(SEQ_PLAN["Plan"]) == ("enable_seqscan",)
    assert first_index(SEQ_PLAN["Plan"]) is None
    assert tree_lines(SEQ_PLAN["Plan"]) == [
        "Seq Scan on pages  (cost=0.0..11.38 rows=1) (actual rows=1)"]


def _explain_line() -> dict[str, object]:
    chosen = summary(INDEX_PLAN)
    return {**chosen, "rejected_by": list(disable_for(INDEX_PLAN["Plan"])),
            "rejected": summary(SEQ_PLAN),
            "btree": {"index": "idx_pages_slug", "level": 0, "depth": 1},
            "statements": {"queryid": "2233312625373722998", "calls": 4, "mean_ms": 0.034,
                           "rows": 4}}


# ---------------------------------------------------------------- the gunicorn driver
def _line(**extra: object) -> dict[str, object]:
    ns = time.time_ns()
    pool = "127.0.93.10:6432"
    return {
        "trace_id": TRACE, "parent_id": "00f067aa0ba902b7", "span_id": "1" * 16,
        "kind": "django", "start_ns": ns, "end_ns": ns + 10_000_000, "view": "home",
        "status": 200, "pid": 7,
        "spans": [
            {"name": "middleware", "phase": "request", "start_ns": ns + 100_000,
             "end_ns": ns + 500_000},
            {"name": "view", "start_ns": ns + 500_000, "end_ns": ns + 9_000_000},
            {"name": "middleware", "phase": "response", "start_ns": ns + 9_000_000,
             "end_ns": ns + 9_500_000},
            {"name": "connect", "start_ns": ns + 600_000, "end_ns": ns + 1_600_000,
             "alias": "replica", "server": pool, "database": "site_ro"},
            {"name": "sql", "span_id": "2" * 16, "start_ns": ns + 1_700_000,
             "end_ns": ns + 2_000_000, "alias": "replica", "server": pool,
             "database": "site_ro", "sql": "SELECT …", "rows": 1,
             "explain": _explain_line()},
            {"name": "template", "template": "site/page.html", "start_ns": ns + 7_000_000,
             "end_ns": ns + 8_900_000},
        ],
        "connections": [{"hop": f"app → {pool} (site_ro)", "alias": "replica", "new": True,
                         "connect_ms": 1.0, "age_ms": 0.1, "requests": 1,
                         "conn_max_age_s": 60}],
        **extra}


def test_django_phases_nest_the_view_and_what_ran_inside_it() -> None:
    top = django_span(_line(), "app-1-gunicorn", "app-1", TRACE, production())
    assert [(c.kind, c.actor) for c in top.children] == [
        ("middleware", "Django middleware (request half)"), ("view", "Django view home"),
        ("middleware", "Django middleware (response half)")]
    view = top.children[1]
    assert [c.kind for c in view.children] == ["connect", "sql", "template"]
    assert view.children[2].actor == "Django template site/page.html"


def test_the_main_query_comes_out_as_typed_facts() -> None:
    top = django_span(_line(), "app-1-gunicorn", "app-1", TRACE, production())
    sql = top.children[1].children[1]
    e = sql.db_explain
    assert e is not None
    assert e.chosen is not None
    assert e.rejected is not None
    assert (e.chosen.total_cost, e.rejected.total_cost) == (8.16, 11.38)
    assert (e.btree_index, e.btree_level, e.btree_depth) == ("idx_pages_slug", 0, 1)
    assert (e.stmt_calls, e.stmt_rows, e.stmt_mean_ms) == (4, 4, 0.034)
    # the plan text stays the span's "explain", as for every other query
    assert sql.attrs["explain"].startswith("Limit  (cost=0.14..8.16")
    # and it survives the journey's JSON
    facts = ServerFacts(tier="app-1-gunicorn", db_explain=e)
    assert from_json(ServerFacts, json.loads(json.dumps(to_json(facts)))) == facts
    [conn] = top.connections
    assert conn == HopConnectionFacts(
        hop="app-1-gunicorn → pgbouncer", new=True, connect_ms=1.0, requests=1, age_ms=0.1,
        evidence=conn.evidence)


def test_a_malformed_explain_is_read_without_failing() -> None:
    e = explain_facts({"node": 3, "tree": "not a list", "rejected": "x", "btree": [1],
                       "statements": {"calls": "many"}, "errors": {"btree": "x" * 999}})
    assert e.chosen is not None
    assert e.chosen.node is None
    assert e.chosen.tree == []
    assert e.rejected is None
    assert e.btree_level is None
    assert e.stmt_calls is None
    assert len(e.errors["btree"]) == 300


# ----------------------------------------------- report error 4: labels from the topology
def test_sql_labels_name_where_the_connection_went_in_each_profile() -> None:
    prod, one = production(), single()
    assert db_actor(prod, "127.0.93.10:6432", "site_ro", "replica") == \
        "PostgreSQL replica (db-replica) via PgBouncer (pgbouncer)"
    assert db_actor(prod, "127.0.93.10:6432", "site", "default") == \
        "PostgreSQL primary (db-primary) via PgBouncer (pgbouncer)"
    # the single profile: no pool, no replica; both aliases reach the primary
    for alias in ("default", "replica"):
        label = db_actor(one, "127.0.96.1:5432", "site", alias)
        assert label == "PostgreSQL primary (db-primary), direct"
        assert db_actor(one, None, None, alias) == label      # a log from before "server"
    top = django_span(_line(spans=[{"name": "sql", "start_ns": 1, "end_ns": 2,
                                    "alias": "replica", "server": "127.0.96.1:5432",
                                    "database": "site"}]), "gunicorn", "server", TRACE, one)
    assert "PgBouncer" not in top.children[0].actor
    assert "replica" not in top.children[0].actor


# ------------------------------------------------------------------ each hop's connection
def test_nginx_says_new_or_reused_and_times_the_connect_out() -> None:
    item: dict[str, object] = {"connection_requests": "3", "connection": "17",
            "upstream_connect_time": "0.002, 0.001"}
    into, out = hop_facts(item, "lb", "app-1-nginx", ("app-1-gunicorn", False))
    assert (into.hop, into.new, into.requests) == ("lb → app-1-nginx", False, 3)
    assert (out.hop, out.new, out.connect_ms) == ("app-1-nginx → app-1-gunicorn", True, 1.0)
    assert last_timer("") is None
    assert hop_facts({}, "client", "edge", ("lb", True)) == []


def test_haproxy_counts_requests_on_the_clients_kept_alive_connection(tmp_path: Path) -> None:
    log = tmp_path / "lb.log"
    t = time.time()
    rows = [(t, 40000, "a"), (t + 0.5, 40000, "b"), (t + 0.6, 40002, "c"),
            (t + 30, 40000, "d")]   # 40000 again, after the keep-alive timeout: new
    log.write_text("[NOTICE] not JSON\n" + "".join(json.dumps(
        {"accept_time": at, "client": "127.0.90.1", "client_port": port, "Tt": 5,
         "request_id": rid}) + "\n" for at, port, rid in rows))
    n = {rid: requests_on_connection(log, {"client": "127.0.90.1", "client_port": port,
                                           "request_id": rid}) for _, port, rid in rows}
    assert n == {"a": 1, "b": 2, "c": 1, "d": 1}


def _span(kind: str, *hops: HopConnectionFacts, start: int = 0) -> ServerSpan:
    span = ServerSpan(kind, kind, kind, start, start + 10, "tp")
    span.connections = list(hops)
    return span


def test_a_hop_is_one_fact_joined_from_both_ends() -> None:
    edge = _span("edge", HopConnectionFacts(hop="edge → lb", connect_ms=0.0, evidence="nginx"))
    lb = _span("lb", HopConnectionFacts(hop="edge → lb", new=False, requests=4,
                                        evidence="haproxy"),
               HopConnectionFacts(hop="lb → app-1-nginx", connect_ms=1.0, evidence="Tc"))
    app = _span("app", HopConnectionFacts(hop="lb → app-1-nginx", new=True, requests=1,
                                          evidence="nginx"))
    join_hops([edge, lb, app])
    assert edge.connections == []
    [into_lb] = lb.connections
    assert (into_lb.new, into_lb.requests, into_lb.connect_ms) == (False, 4, None)  # reused
    assert into_lb.evidence == "haproxy; nginx"
    [into_app] = app.connections
    assert (into_app.new, into_app.connect_ms) == (True, 1.0)


def test_a_backend_opened_during_the_request_is_new() -> None:
    django = _span("django", start=1_000_000_000)
    old = _span("postgres", HopConnectionFacts(hop="pgbouncer → db-replica", age_ms=5000.0),
                start=1_002_000_000)
    fresh = _span("postgres", HopConnectionFacts(hop="pgbouncer → db-replica", age_ms=1.0),
                  start=1_003_000_000)
    django.children = [old, fresh]
    settle_backends(django)
    assert [s.connections[0].new for s in (old, fresh)] == [False, True]


# ------------------------------------------- report error 10: a cached answer's trace
def test_an_nginx_cache_file_gives_the_stored_headers() -> None:
    head = (b"\x05\x00\x00\x00binary header\x00\x00\nKEY: httpswww.example.com/\n"
            b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 15:57:44 GMT\r\n"
            b"traceresponse: 00-" + TRACE.encode() + b"-b50bf32aae47a764-01\r\n\r\n<html>")
    headers = stored_headers(head, "httpswww.example.com/")
    assert headers is not None
    assert trace_of(headers["traceresponse"]) == TRACE
    assert headers["date"] == "Mon, 07 Dec 2026 15:57:44 GMT"
    assert stored_headers(head, "httpswww.example.com/other") is None


def test_a_stale_answers_background_refresh_is_not_placed_under_the_request() -> None:
    edge = _span("edge")
    edge.attrs["cache"] = "STALE"
    lb, app = _span("lb", start=20), _span("app", start=21)
    made, refresh = split_refresh([edge, lb, app])
    assert made == [edge]
    assert refresh == [lb, app]
    assert "background" in refresh_note(refresh)
    edge.attrs["cache"] = "MISS"
    assert split_refresh([edge, lb, app]) == ([edge, lb, app], [])
    assert trace_of("00-zz-1-01") is None


# ------------------------------------------------------------------------- render/labdb
def test_the_report_lines_carry_this_requests_figures() -> None:
    top = django_span(_line(), "app-1-gunicorn", "app-1", TRACE, production())
    e = top.children[1].children[1].db_explain
    assert isinstance(e, DbExplainFacts)
    lines = explain_lines(e)
    assert lines[1] == ("1 plan chosen: Index Scan using idx_pages_slug on pages; planned in "
                        "0.041 ms, executed in 0.034 ms, 1 row(s) (estimated 1)")
    assert lines[2].startswith("2 buffers: 2 page(s) found in shared buffers (hit), 0 read")
    assert "chosen 8.16 vs 11.38 for the plan it rejected, Seq Scan on pages" in lines[3]
    assert "enable_indexscan=off" in lines[3]
    assert lines[4].startswith("4 B-tree idx_pages_slug: level 0")
    assert lines[5].startswith("5 pg_stat_statements on this server: 4 call(s)")
    assert connection_line(HopConnectionFacts(hop="edge → lb", new=True, connect_ms=0.0,
                                              requests=1)) == \
        "edge → lb: new connection, request 1 on it, connect under 1 ms (the log's resolution)"
    assert connection_line(HopConnectionFacts(hop="a → b", new=False, age_ms=1234.5)) == \
        "a → b: reused connection, opened 1,234.5 ms before"
    assert server_details(None, []) == ()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["tree", "node", "rejected", "btree", "statements", "errors", "level",
                         "calls", "index", "hop", "new", "requests", "x"]), inner, max_size=5),
    max_leaves=20)


@given(JSON, JSON)
def test_any_log_content_is_read_without_an_exception(explain: object, conns: object) -> None:
    """The span log is another process's output: whatever it holds, the driver reads it."""
    line = _line()
    line["connections"] = conns
    line["spans"][4]["explain"] = explain   # type: ignore[index]
    top = django_span(line, "app-1-gunicorn", "app-1", TRACE, production())
    for span in top.walk():
        if span.db_explain is not None:
            explain_lines(span.db_explain)
    for hop in top.connections:
        connection_line(hop)


def test_each_tier_knows_who_connects_to_it_from_the_topology() -> None:
    from whathappens.lab.tiers import build
    from whathappens.lab.tiers.haproxy import HAProxy
    from whathappens.lab.tiers.nginx import NginxTier

    prod, one = production(), single()
    app = build(prod, prod.spec("app-2-nginx"))
    lb = build(prod, prod.spec("lb"))
    edge = build(one, one.spec("nginx"))
    assert isinstance(app, NginxTier)
    assert isinstance(lb, HAProxy)
    assert isinstance(edge, NginxTier)
    assert (app.client_tier(), app.upstream_hop()) == ("lb", ("app-2-gunicorn", False))
    assert lb.client_tier() == "edge"
    assert (edge.client_tier(), edge.upstream_hop()) == ("client", ("gunicorn", False))
