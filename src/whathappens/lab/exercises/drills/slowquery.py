"""slow-query: the index the page lookup uses is dropped from a table grown large; every
page read becomes a sequential scan and the p95 rises; pg_stat_statements names the query."""

from __future__ import annotations

import re
from typing import Any

from whathappens.lab.exercises import load
from whathappens.lab.exercises.drills.common import (
    DrillError,
    Say,
    _nonce,
    _pg,
    _record,
    in_force,
    ms,
)
from whathappens.lab.exercises.drills.measure import (
    phase_lines,
    run_phase,
    summary,
    wait_replayed,
)
from whathappens.lab.running import Lab

INDEX = "idx_pages_slug"        # the unique constraint (and B-tree) the page lookup uses
FILLER = 200_000                # unpublished pages the drill adds: the site shows none
FILLER_PREFIX = "drill-filler-"
PATH = "/p/about/"
REQUESTS, CLIENTS, RATE = 60, 4, 20.0       # a phase: 3 s
LOOKUP = "SELECT id, title, content FROM pages WHERE slug = 'about' AND published"


def _load(lab: Lab) -> load.LoadResult:
    return run_phase(lab, lambda n: f"{PATH}?{_nonce()}", requests=REQUESTS,
                     concurrency=CLIENTS, rate=RATE, seconds=20)


def _has_index(lab: Lab) -> bool:
    with _pg(lab, "db-primary") as conn:
        row = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'pages' "
                           "AND indexname = %s", (INDEX,)).fetchone()
    return bool(row and row[0])


def _reset_statements(lab: Lab) -> None:
    """pg_stat_statements on the replica (where page reads run) starts from nothing."""
    with _pg(lab, "db-replica") as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def top_statements(lab: Lab, n: int = 3) -> list[dict[str, Any]]:
    """The replica's statements of the site's database by total time, as
    pg_stat_statements has them (times in ms, since its last reset)."""
    with _pg(lab, "db-replica") as conn:
        rows = conn.execute(
            "SELECT s.query, s.calls, s.mean_exec_time, s.max_exec_time, s.total_exec_time, "
            "s.rows FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = 'site' AND s.query NOT LIKE '%%pg_stat_statements%%' "
            "ORDER BY s.total_exec_time DESC LIMIT %s", (n,)).fetchall()
    return [{"query": _short(str(r[0])), "calls": int(r[1]), "mean_ms": float(r[2]),
             "max_ms": float(r[3]), "total_ms": float(r[4]), "rows": int(r[5])}
            for r in rows]


def _short(sql: str) -> str:
    """The statement without its sqlcommenter comment, on one line."""
    sql = re.sub(r"/\*.*?\*/", "", sql, flags=re.DOTALL)
    return " ".join(sql.split())[:200]


def _plan(lab: Lab) -> list[str]:
    with _pg(lab, "db-replica") as conn:
        return [str(r[0]) for r in conn.execute(f"EXPLAIN ANALYZE {LOOKUP}").fetchall()]


def _say_statements(say: Say, stats: list[dict[str, Any]]) -> None:
    for s in stats:
        say(f"      calls {s['calls']:>4}  mean {s['mean_ms']:8.3f} ms  max "
            f"{s['max_ms']:8.3f} ms  total {s['total_ms']:9.1f} ms  {s['query'][:150]}")


def _grow(lab: Lab, say: Say) -> None:
    with _pg(lab, "db-primary") as conn:
        conn.execute(
            "INSERT INTO pages (slug, title, content, published) "
            "SELECT %s || g, 'filler', 'a page the slow-query drill added', false "
            "FROM generate_series(1, %s) g", (FILLER_PREFIX, FILLER))
        conn.execute("ANALYZE pages")
    waited = wait_replayed(lab)
    say(f"  the pages table grown by {FILLER:,} unpublished rows (the site shows none of "
        f"them), replayed on the replica after "
        f"{'-' if waited is None else f'{waited * 1000:.0f} ms'}")


def break_slow_query(lab: Lab, say: Say) -> dict[str, Any]:
    if not _has_index(lab):
        raise DrillError(f"{INDEX} is already missing (whathappens lab heal slow-query)")
    say(f"drill slow-query: the index the page lookup uses ({INDEX}, a B-tree on "
        f"pages.slug) is dropped; the table first grows to a size where that matters")
    _grow(lab, say)
    _record(lab, "slow-query", {"index": INDEX, "filler": FILLER})
    _reset_statements(lab)
    before = _load(lab)
    stats_before = top_statements(lab)
    say(f"  before (with the index): GET {PATH}?<nonce> through the edge, "
        f"{CLIENTS} clients, {RATE:.0f} requests/s")
    for line in phase_lines("load", before):
        say(f"    {line}")
    say("    pg_stat_statements on the replica (top by total time):")
    _say_statements(say, stats_before)
    with _pg(lab, "db-primary") as conn:
        conn.execute(f"ALTER TABLE pages DROP CONSTRAINT {INDEX}")
    waited = wait_replayed(lab)
    say(f"  dropped (ALTER TABLE pages DROP CONSTRAINT {INDEX}) on the primary; replayed on "
        f"the replica after {'-' if waited is None else f'{waited * 1000:.0f} ms'}; "
        f"pg_stat_statements reset on the replica, so its window is the load's")
    _reset_statements(lab)
    during = _load(lab)
    stats = top_statements(lab)
    say("  during (no index):")
    for line in phase_lines("load", during):
        say(f"    {line}")
    say("    pg_stat_statements on the replica (top by total time) names the culprit:")
    _say_statements(say, stats)
    plan = _plan(lab)
    say(f"    its plan (EXPLAIN ANALYZE {LOOKUP}, on the replica):")
    for line in plan:
        say(f"      {line}")
    b, d = summary(before), summary(during)
    _say_meaning(say, b, d)
    say("  undo: whathappens lab heal slow-query")
    return {"before": b, "during": d, "statements_before": stats_before,
            "statements": stats, "plan": plan}


def _say_meaning(say: Say, b: dict[str, Any], d: dict[str, Any]) -> None:
    say("  what it means:")
    say(f"    p95 went from {ms(b['p95_ms'])} to {ms(d['p95_ms'])} (p50 {ms(b['p50_ms'])} → "
        f"{ms(d['p50_ms'])}) with nothing else changed: without the B-tree, PostgreSQL "
        f"reads every row of the table to find one slug (Seq Scan, 'Rows Removed by "
        f"Filter'); with it, a few pages of the index.")
    say("    Nothing failed: a slow query is not an error, so no status code and no error "
        "line says it. pg_stat_statements (mean and max per normalized statement) and the "
        "Server-Timing db figure show it; the fix is the index, found by EXPLAIN.")
    say("    Under more load the slow query holds its pooled connection longer, and the pool "
        "runs out (the db-pool drill): a slow query is one common way a pool is exhausted.")


def heal_slow_query(lab: Lab, say: Say) -> dict[str, Any]:
    say(f"heal slow-query: the index back ({INDEX}, as the site's migration made it), the "
        f"filler rows deleted")
    facts = in_force(lab).get("slow-query", {})
    with _pg(lab, "db-primary") as conn:
        if not _has_index(lab):
            conn.execute(f"ALTER TABLE pages ADD CONSTRAINT {INDEX} UNIQUE (slug)")
        deleted = conn.execute("DELETE FROM pages WHERE slug LIKE %s",
                               (FILLER_PREFIX + "%",)).rowcount
        conn.execute("VACUUM ANALYZE pages")
    waited = wait_replayed(lab)
    say(f"  index rebuilt, {deleted:,} filler rows deleted; replayed on the replica after "
        f"{'-' if waited is None else f'{waited * 1000:.0f} ms'}")
    _reset_statements(lab)
    after = _load(lab)
    for line in phase_lines("load after", after):
        say(f"    {line}")
    stats = top_statements(lab, 1)
    _say_statements(say, stats)
    _record(lab, "slow-query", None)
    return {"after": summary(after), "deleted": deleted, "statements": stats,
            "was": facts}
