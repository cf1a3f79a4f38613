"""What the data drills (db-pool, slow-query, replica-lag, redis-evict, redis-slow) measure
with: bounded load phases through the front door and what each saw per tier, PgBouncer's
admin console, the replica's replay position, and a Redis client."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from whathappens.lab.exercises import load
from whathappens.lab.exercises.drills.common import _pg, counts, ms, pct
from whathappens.lab.exercises.https import server_timing
from whathappens.lab.running import Lab

# Response headers each load sample keeps: enough to say which tier answered.
CAPTURE = ("server-timing", "x-served-by", "x-backend-server", "x-cache-product")


def run_phase(lab: Lab, path: Callable[[int], str], *, requests: int, concurrency: int,
              rate: float | None = None, seconds: float = 30.0,
              headers: dict[str, str] | None = None) -> load.LoadResult:
    """A bounded load run through the edge (``load.run``), keeping ``CAPTURE``."""
    address, port = lab.front
    return load.run(address, port, path, requests=requests, concurrency=concurrency,
                    seconds=seconds, cafile=lab.cafile, headers=headers, rate=rate,
                    capture=CAPTURE)


def sample_tier(sample: load.Sample) -> str:
    """Which tier produced a load sample's response, from the headers the tiers add (as
    ``common.answered_by``, without the body: HAProxy and the edge are not told apart)."""
    if sample.status == 0:
        return "nobody (no answer)"
    node = sample.headers.get("x-served-by", "")
    if "app" in server_timing(sample.headers.get("server-timing", "")):
        return f"Django on {node or '?'}"
    if node:
        return f"{node}'s nginx"
    return "HAProxy or the edge"


def db_ms(sample: load.Sample) -> float | None:
    """Django's own count of its SQL time for the request (Server-Timing ``db``)."""
    return server_timing(sample.headers.get("server-timing", "")).get("db")


def summary(result: load.LoadResult) -> dict[str, Any]:
    """``load``'s summary, with who answered each status and the failures' own times."""
    out = result.summary()
    out["by_tier"] = dict(Counter(f"{s.status or 'no answer'} from {sample_tier(s)}"
                                  for s in result.samples))
    failed = [s.latency_ms for s in result.failed]
    out["failed_p50_ms"] = pct(failed, 50)
    dbs = [v for v in (db_ms(s) for s in result.ok) if v is not None]
    out["db_p50_ms"], out["db_p95_ms"] = pct(dbs, 50), pct(dbs, 95)
    return out


def phase_lines(label: str, result: load.LoadResult) -> list[str]:
    s = summary(result)
    lines = [f"{label}: {s['requests']} requests in {s['seconds']:.1f} s, "
             f"{counts([x.status for x in result.samples])}"]
    if s["p50_ms"] is not None:
        lines.append(f"  answered: p50 {ms(s['p50_ms'])}, p95 {ms(s['p95_ms'])}, "
                     f"max {ms(s['max_ms'])}" +
                     (f"; Django's SQL time p50 {ms(s['db_p50_ms'])}, p95 "
                      f"{ms(s['db_p95_ms'])} (Server-Timing db)"
                      if s["db_p50_ms"] is not None else ""))
    if result.failed:
        lines.append(f"  failed: after p50 {ms(s['failed_p50_ms'])} each")
    lines.append("  by tier: " + ", ".join(f"{k} × {v}" for k, v in
                                           sorted(s["by_tier"].items())))
    return lines


# ---------------------------------------------------------------------------------------------
# PgBouncer's admin console and the replica's position


def bouncer_show(lab: Lab, what: str) -> list[dict[str, Any]]:
    """``SHOW <what>`` on PgBouncer's admin console (the ``pgbouncer`` database)."""
    from whathappens.lab.tiers.postgres import SUPERUSER, connect

    address, port = lab.endpoint("pgbouncer")
    with connect(address, port, "pgbouncer", SUPERUSER) as conn:
        cur = conn.execute(f"SHOW {what}")
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def bouncer_command(lab: Lab, command: str) -> None:
    """An admin command (RELOAD, RECONNECT …) on PgBouncer's console."""
    from whathappens.lab.tiers.postgres import SUPERUSER, connect

    address, port = lab.endpoint("pgbouncer")
    with connect(address, port, "pgbouncer", SUPERUSER) as conn:
        conn.execute(command)


def primary_lsn(lab: Lab) -> str:
    """The primary's current WAL position, flushed so that it is streamed (the lab commits
    asynchronously; one synchronous commit flushes the WAL up to it)."""
    with _pg(lab, "db-primary") as conn:
        conn.execute("SET synchronous_commit TO on")
        conn.execute("SELECT txid_current()")
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    return str(row[0]) if row else "0/0"


def replayed(lab: Lab, lsn: str) -> bool:
    """Has the replica replayed the WAL up to ``lsn``?"""
    with _pg(lab, "db-replica") as conn:
        row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
    return bool(row and row[0])


def wait_replayed(lab: Lab, timeout: float = 30.0) -> float | None:
    """Seconds until the replica replayed all the primary had written now, or None."""
    lsn = primary_lsn(lab)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if replayed(lab, lsn):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


# ---------------------------------------------------------------------------------------------
# Redis


def redis_client(lab: Lab, timeout: float = 5.0) -> Any:
    """A redis-py client to the lab's Redis (db 0: the cache and the sessions)."""
    import redis

    address, port = lab.endpoint("redis")
    return redis.Redis(address, port, socket_timeout=timeout, socket_connect_timeout=2,
                       client_name="whathappens-drill")
