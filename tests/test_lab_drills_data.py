"""The database and Redis drills, for real: db-pool, slow-query, replica-lag, redis-evict and
redis-slow each break a running production lab, what surfaced (and at which tier) is
asserted, then each is healed and the lab is asserted back to normal; nothing is left
running after ``lab down``.

One production lab for the module, on 127.<N>.x.y so it can run beside a developer's lab.
Every load is bounded (a few seconds a phase). Needs the Debian packages (`whathappens lab
install`) and the `lab` Python extra.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab_helpers import bring_up, healing, in_force, needs_lab
from whathappens.lab import lab, process
from whathappens.lab.exercises import drills
from whathappens.lab.exercises.drills import evict, pool, redis_slow, slowquery
from whathappens.lab.exercises.drills.common import _pg
from whathappens.lab.tier import LabContext

pytestmark = needs_lab


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production", "whathappens-drills-data-")



def test_haproxys_own_503s_are_told_from_the_apps() -> None:
    lines = [{"status": "503", "server": "<NOSRV>", "termination": "SC--"},
             {"status": "503", "server": "app-1", "termination": "sQ--"},
             {"status": "503", "server": "app-2", "termination": "----"},   # the app's own
             {"status": "500", "server": "app-1", "termination": "----"},
             {"status": "503", "server": "app-1", "termination": ""}]
    assert pool.lb_own_503s(lines) == {"503 <NOSRV> SC": 1, "503 app-1 sQ": 1}


def test_db_pool_exhausted_surfaces_as_500s_from_django(production: LabContext) -> None:
    facts = drills.do(production, "break", "db-pool", say=print)
    with healing(production, "db-pool") as healed:
        assert "db-pool" in in_force(production)
        assert facts["pool_size"] == pool.POOL_SIZE
        # The same load with the lab's pool, and as many clients as the small pool: nothing
        # fails and nobody waits long.
        assert facts["before"]["failed"] == 0
        assert facts["within"]["failed"] == 0
        # The site's X-Lab-DB-Sleep made each request's SQL take the query's time.
        assert facts["within"]["db_p50_ms"] >= 0.9 * pool.QUERY_SECONDS * 1000
        above = facts["above"]
        assert above["failed"] > 0, above
        # The failures are Django's 500s (Server-Timing app on them), passed on unchanged,
        # and, when gunicorn's busy threads made the health checks time out, HAProxy's own
        # 503s: every one of those is in HAProxy's log as its own (no server answered).
        failed = {k: v for k, v in above["by_tier"].items() if not k.startswith("200 ")}
        assert any(k.startswith("500 from Django on app-") for k in failed), failed
        lb = failed.pop("503 from HAProxy or the edge", 0)
        assert all(k.startswith("500 from Django on app-") for k in failed), failed
        assert sum(facts["lb_503s"].values()) == lb, facts["lb_503s"]
        # PgBouncer saw the queue and closed the clients that waited too long.
        peak = facts["above_peak"]
        assert peak["cl_waiting"] >= pool.CLIENTS // 2
        assert peak["sv_active"] <= pool.POOL_SIZE
        assert peak["maxwait_s"] >= 0.8 * pool.WAIT_TIMEOUT
        assert facts["log_timeouts"] >= sum(failed.values())   # each 500 was one closed
        # … and each of Django's 500s is one OperationalError in gunicorn's (Django's) log
        # (HAProxy's own 503s never reached Django).
        assert facts["django_errors"] == sum(failed.values())
    assert healed["pool_size"] == 20
    assert healed["query_wait_timeout"] == "5"
    assert healed["after"]["failed"] == 0
    assert "db-pool" not in in_force(production)


def test_slow_query_raises_latency_and_pg_stat_statements_names_it(
        production: LabContext) -> None:
    facts = drills.do(production, "break", "slow-query", say=print)
    with healing(production, "slow-query") as healed:
        before, during = facts["before"], facts["during"]
        assert before["failed"] == during["failed"] == 0     # slow, not broken
        assert during["p50_ms"] > before["p50_ms"]
        assert during["db_p50_ms"] > 5 * before["db_p50_ms"]
        top = facts["statements"][0]
        assert 'FROM "pages"' in top["query"]
        assert top["calls"] >= slowquery.REQUESTS
        page_before = next(s for s in facts["statements_before"]
                           if 'FROM "pages"' in s["query"])
        assert top["mean_ms"] > 10 * page_before["mean_ms"]
        assert any("Seq Scan on pages" in line for line in facts["plan"])
    assert healed["deleted"] == slowquery.FILLER
    assert healed["after"]["failed"] == 0
    assert healed["statements"][0]["mean_ms"] < 5
    assert "slow-query" not in in_force(production)


def test_replica_lag_gives_stale_reads_until_replay_resumes(production: LabContext) -> None:
    facts = drills.do(production, "break", "replica-lag", say=print)
    with healing(production, "replica-lag") as healed:
        assert facts["write"].status == 202
        assert facts["on_primary"]
        assert not facts["on_replica"]
        assert facts["stale_reads"] == len(facts["reads"]) == 3
        assert all(r.status == 200 for r in facts["reads"])
        assert facts["lag"]["pause"] == "paused"
        assert facts["lag"]["behind_primary_bytes"] > 0
        assert facts["unseen_s"] >= 1.0
    assert healed["caught_up"] is not None
    assert healed["fresh_reads"] == 3
    assert healed["on_replica"] is True
    assert healed["lag"]["pause"] == "not paused"
    with _pg(drills.open_lab(production), "db-replica") as conn:
        row = conn.execute("SELECT title FROM pages WHERE slug = 'about'").fetchone()
    assert row == (facts["old"],)
    assert "replica-lag" not in in_force(production)


def test_redis_evict_the_hit_ratio_falls(production: LabContext) -> None:
    facts = drills.do(production, "break", "redis-evict", say=print)
    with healing(production, "redis-evict") as healed:
        before, during = facts["before"], facts["during"]
        assert before["drill_hit_ratio"] == 1.0
        assert before["evicted"] == 0
        assert during["drill_hit_ratio"] < 0.5
        assert during["evicted"] > evict.KEYS // 2
        assert during["redis_hit_ratio"] < before["redis_hit_ratio"]
        assert during["used_memory"] <= facts["cap"] * 1.05
        # The site's own product entries were evicted with the rest.
        assert during["products"].get("miss", 0) > before["products"].get("miss", 0)
        assert set(during["product_statuses"]) == {200}
        assert facts["broker_binding"] is True       # volatile-lru spares keys without TTL
    assert healed["config"]["maxmemory"] == "0"
    assert healed["config"]["maxmemory-policy"] == "noeviction"
    assert healed["products"].get("hit", 0) >= 10
    assert "redis-evict" not in in_force(production)


def test_redis_slow_command_blocks_the_other_clients(production: LabContext) -> None:
    facts = drills.do(production, "break", "redis-slow", say=print)
    with healing(production, "redis-slow") as healed:
        assert drills.open_lab(production).running(redis_slow.HOLDER)
        during = facts["during"]
        # A PING that runs nothing slow waited behind the script.
        assert during["ping"]["max"] >= 0.5 * redis_slow.BLOCK_MS
        assert during["pages"]["max"] >= 400
        culprit = facts["culprits"][0]
        assert culprit["client"] == redis_slow.HOLDER
        assert culprit["command"].startswith("EVAL")
        assert culprit["duration_ms"] >= 0.9 * redis_slow.BLOCK_MS
    assert healed["stopped"] is True
    assert healed["after"]["ping"]["max"] < 0.9 * redis_slow.BLOCK_MS
    assert not drills.open_lab(production).running(redis_slow.HOLDER)
    assert "redis-slow" not in in_force(production)


def test_down_stops_the_slow_client_left_running(production: LabContext) -> None:
    drills.do(production, "break", "redis-slow", say=print)
    records = process.records(production)
    assert redis_slow.HOLDER in {r.tier for r in records}
    lab.down(production)
    for rec in records:
        assert not process.alive(rec.pid), rec.tier
    assert process.records(production) == []
