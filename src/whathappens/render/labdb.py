"""The lab's database step by step, and each hop's connection: the lines every renderer shows.

Pure text from a tier span's typed facts (``ServerFacts.db_explain``, ``.connections``); the
terminal prints the lines under the span, the HTML report (and so the live page, which shows
its sections) lists them. Figures are the programs' own: PostgreSQL's EXPLAIN timers and
counters, nginx's and HAProxy's log fields, Django's and redis-py's own bookkeeping.
"""

from __future__ import annotations

from whathappens.contract.facts import DbExplainFacts, DbPlanFacts, HopConnectionFacts

EXPLAIN_HEAD = ("the database, step by step (asked with X-Explain: 1, which costs extra "
                "statements; PostgreSQL's own timers):")


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f} ms"


def _plan_name(p: DbPlanFacts) -> str:
    scan = p.tree[-1].strip().removeprefix("-> ").split("  (")[0] if p.tree else p.node
    return str(scan or "?")


def explain_lines(e: DbExplainFacts) -> list[str]:
    """Steps 1–5 of the main query, each a sentence with this request's figures."""
    out = [EXPLAIN_HEAD]
    c = e.chosen
    if c is not None:
        out.append(f"1 plan chosen: {_plan_name(c)}; planned in {_ms(c.planning_ms)}, "
                   f"executed in {_ms(c.execution_ms)}, {c.actual_rows} row(s) "
                   f"(estimated {c.plan_rows})")
        out.append(f"2 buffers: {c.shared_hit} page(s) found in shared buffers (hit), "
                   f"{c.shared_read} read from the kernel (8 kB pages)")
        r = e.rejected
        if r is not None:
            off = ", ".join(f"{s}=off" for s in e.rejected_by)
            out.append(f"3 cost (planner units, not ms): chosen {c.total_cost} vs "
                       f"{r.total_cost} for the plan it rejected, {_plan_name(r)} (really run "
                       f"with {off}: executed in {_ms(r.execution_ms)}, "
                       f"{r.shared_hit} hit / {r.shared_read} read)")
    if e.btree_index is not None and e.btree_level is not None:
        out.append(f"4 B-tree {e.btree_index}: level {e.btree_level} (pageinspect bt_metap), "
                   f"so a lookup reads {e.btree_depth} index page(s) root to leaf")
    if e.stmt_calls is not None:
        out.append(f"5 pg_stat_statements on this server: {e.stmt_calls} call(s), mean "
                   f"{_ms(e.stmt_mean_ms)}, {e.stmt_rows} row(s) in all "
                   f"(queryid {e.stmt_queryid})")
    for step, why in e.errors.items():
        out.append(f"not measured ({step}): {why}")
    return out


def connection_line(h: HopConnectionFacts) -> str:
    """One hop: new or reused, the connect time when there was one, its request number."""
    state = {True: "new connection", False: "reused connection", None: "connection"}[h.new]
    parts = [f"{h.hop}: {state}"]
    if h.requests is not None:
        parts.append(f"request {h.requests} on it")
    if h.connect_ms is not None:
        # nginx and HAProxy log whole milliseconds: 0 there means under one
        parts.append(f"connect {h.connect_ms:g} ms" if h.connect_ms else
                     "connect under 1 ms (the log's resolution)")
    if h.age_ms is not None and h.new is not True:
        parts.append(f"opened {h.age_ms:,.1f} ms before")
    return ", ".join(parts)


def server_details(explain: DbExplainFacts | None,
                   connections: list[HopConnectionFacts]) -> tuple[str, ...]:
    lines = [connection_line(h) for h in connections]
    if explain is not None:
        lines += explain_lines(explain)
    return tuple(lines)
