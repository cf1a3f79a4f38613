"""The database, step by step, for the request's main query (request header ``X-Explain: 1``).

What PostgreSQL itself says about one SELECT, asked on the same connection right after the
query ran (outside its span's time; it costs about five more statements, so only on request):

1. ``EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)``: the plan it chose, the plan's
   estimated cost, planning and execution time, and the shared buffers the execution found
   in PostgreSQL's cache (hit) or had to read from the kernel (read).
   https://www.postgresql.org/docs/15/sql-explain.html
2. The plan it rejected, really run: the same EXPLAIN in a transaction with the chosen access
   method switched off (``SET LOCAL enable_indexscan = off`` … for an index plan,
   ``enable_seqscan = off`` for a sequential scan), rolled back. Its cost is what the planner
   compared; its execution time is measured, not estimated.
   https://www.postgresql.org/docs/15/runtime-config-query.html#RUNTIME-CONFIG-QUERY-ENABLE
3. The B-tree depth of the index either plan used: ``bt_metap``'s ``level`` (pageinspect;
   the site calls it through ``lab_btree_level``, see tiers/postgres.py); level 0 means the
   root is the leaf, so a lookup reads level + 1 index pages.
   https://www.postgresql.org/docs/15/pageinspect.html#PAGEINSPECT-B-TREE-FUNCS
4. ``pg_stat_statements`` for the statement (matched by the queryid EXPLAIN VERBOSE shows):
   how often this server ran it, its mean time, the rows it returned in all.

Every step reports its own error instead of failing the request. The result is a small dict
(bounded: the plan tree at most ``TREE_LINES`` lines) that rides in the SQL span's ``explain``
key of the span log, which the gunicorn tier's driver turns into typed facts.
"""

from __future__ import annotations

import json
from typing import Any

TREE_LINES = 12
# The settings that switch off the access method a plan used, to make the planner show
# the plan it would have taken instead.
INDEX_METHODS = ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan")
INDEX_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan", "Bitmap Heap Scan")


def explain_query(raw: Any, sql: str, params: Any) -> dict[str, Any]:
    """Steps 1–4 for ``sql`` on the DB-API connection ``raw`` (psycopg 3, Django's own)."""
    out: dict[str, Any] = {}
    chosen = _step(out, "chosen", lambda: _analyze(raw, sql, params, ()))
    if chosen is None:
        return out
    out.update(summary(chosen))
    disabled = disable_for(chosen["Plan"])
    out["rejected_by"] = list(disabled)
    rejected = _step(out, "rejected", lambda: _analyze(raw, sql, params, disabled))
    if rejected is not None:
        out["rejected"] = summary(rejected)
    index = first_index(chosen["Plan"]) or \
        (first_index(rejected["Plan"]) if rejected is not None else None)
    if index is not None:
        level = _step(out, "btree", lambda: _one(raw, "SELECT public.lab_btree_level(%s)",
                                                 (index,)))
        if level is not None:
            out["btree"] = {"index": index, "level": int(level), "depth": int(level) + 1}
    queryid = chosen.get("Query Identifier")
    if queryid is None:     # compute_query_id is on only where the lab's config loads it
        out.setdefault("errors", {})["statements"] = (
            "EXPLAIN named no queryid: pg_stat_statements is not loaded on this server (a lab "
            "started before it was configured: lab down, then lab up)")
        return out
    stats = _step(out, "statements", lambda: _statements(raw, int(queryid)))
    if stats is not None:
        out["statements"] = stats
    return out


def _step(out: dict[str, Any], name: str, run: Any) -> Any:
    try:
        return run()
    except Exception as e:      # one step's failure is reported, the others still run
        out.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}".strip()[:300]
        return None


def _analyze(raw: Any, sql: str, params: Any, disabled: tuple[str, ...]) -> dict[str, Any]:
    # force_rollback: SET LOCAL ends with the transaction, and nothing the EXPLAIN ran stays
    with raw.transaction(force_rollback=True), raw.cursor() as cur:
        for setting in disabled:
            cur.execute(f"SET LOCAL {setting} = off")
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) " + sql, params)
        row = cur.fetchone()
    doc = row[0] if row else None
    if isinstance(doc, str):
        doc = json.loads(doc)
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict):
        raise ValueError("EXPLAIN returned no plan")
    return doc[0]


def _one(raw: Any, sql: str, params: tuple[Any, ...]) -> Any:
    with raw.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    if row is None:
        raise ValueError("no row")
    return row[0]


def _statements(raw: Any, queryid: int) -> dict[str, Any]:
    with raw.cursor() as cur:
        cur.execute("SELECT sum(calls), sum(total_exec_time) / nullif(sum(calls), 0), "
                    "sum(rows) FROM pg_stat_statements "
                    "WHERE queryid = %s AND dbid = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())", (queryid,))
        row = cur.fetchone()
    if row is None or row[0] is None:
        raise ValueError(f"queryid {queryid} is not in pg_stat_statements on this server")
    return {"queryid": str(queryid), "calls": int(row[0]),
            "mean_ms": round(float(row[1] or 0), 4), "rows": int(row[2] or 0)}


# ----------------------------------------------------------------- pure: reading the plan
def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The figures of one ``EXPLAIN (FORMAT JSON)`` document that the report shows."""
    plan = doc.get("Plan") or {}
    return {
        "planning_ms": _num(doc.get("Planning Time")),
        "execution_ms": _num(doc.get("Execution Time")),
        "node": plan.get("Node Type"),
        "relation": plan.get("Relation Name") or _first(plan, "Relation Name"),
        "index": first_index(plan),
        "startup_cost": _num(plan.get("Startup Cost")),
        "total_cost": _num(plan.get("Total Cost")),
        "plan_rows": plan.get("Plan Rows"),
        "actual_rows": plan.get("Actual Rows"),
        "shared_hit": _count(plan, "Shared Hit Blocks"),
        "shared_read": _count(plan, "Shared Read Blocks"),
        "tree": tree_lines(plan)[:TREE_LINES],
    }


def disable_for(plan: dict[str, Any]) -> tuple[str, ...]:
    """What to switch off to see the other plan: the index methods when the chosen plan used
    an index, else sequential scans."""
    if first_index(plan) is not None or _has(plan, INDEX_NODES):
        return INDEX_METHODS
    return ("enable_seqscan",)


def first_index(plan: dict[str, Any]) -> str | None:
    found = _first(plan, "Index Name")
    return str(found) if found is not None else None


def tree_lines(plan: dict[str, Any], depth: int = 0) -> list[str]:
    """The plan as EXPLAIN's text format draws it, one line per node, costs included."""
    line = (f"{'  ' * depth}{'-> ' if depth else ''}{plan.get('Node Type')}"
            f"{' using ' + str(plan['Index Name']) if plan.get('Index Name') else ''}"
            f"{' on ' + str(plan['Relation Name']) if plan.get('Relation Name') else ''}"
            f"  (cost={plan.get('Startup Cost')}..{plan.get('Total Cost')} "
            f"rows={plan.get('Plan Rows')}) (actual rows={plan.get('Actual Rows')})")
    out = [line]
    for child in plan.get("Plans") or []:
        if isinstance(child, dict):
            out += tree_lines(child, depth + 1)
    return out


def _walk(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans") or []:
        if isinstance(child, dict):
            out += _walk(child)
    return out


def _first(plan: dict[str, Any], key: str) -> Any:
    return next((n[key] for n in _walk(plan) if n.get(key)), None)


def _has(plan: dict[str, Any], nodes: tuple[str, ...]) -> bool:
    return any(n.get("Node Type") in nodes for n in _walk(plan))


def _count(plan: dict[str, Any], key: str) -> int | None:
    """A node's buffer counts include its children's: the top node's figure is the total."""
    value = plan.get(key)
    return int(value) if isinstance(value, int | float) else None


def _num(value: Any) -> float | None:
    return round(float(value), 4) if isinstance(value, int | float) else None
