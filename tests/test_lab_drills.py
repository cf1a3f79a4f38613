"""The drills, for real: each breaks a tier of a running production lab, and what surfaced is
asserted — then it is healed and the lab is asserted back to normal.

One production lab for the module, on 127.<N>.x.y so it can run beside a developer's lab.
Load runs are bounded (a few seconds each); the slow-db drill waits out nginx's 10 s
proxy_read_timeout, which is the point of it. Needs the Debian packages (`whathappens lab
install`) and the `lab` Python extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from lab_helpers import bring_up, needs_lab
from whathappens.lab import lab, process
from whathappens.lab.exercises import drills
from whathappens.lab.tier import LabContext

pytestmark = needs_lab

LOAD = 120          # requests per app-node drill: 3 s at 40 r/s, the node killed after 1 s


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production", "whathappens-drills-")


def in_force(ctx: LabContext) -> set[str]:
    return set(drills.in_force(drills.open_lab(ctx)))


@contextlib.contextmanager
def healing(ctx: LabContext, target: str) -> Iterator[dict[str, Any]]:
    """Heal ``target`` after the block, even when one of its assertions failed (so the next
    drill starts from a whole lab); the heal's facts fill the dict once the block is done."""
    healed: dict[str, Any] = {}
    try:
        yield healed
    finally:
        healed.update(drills.do(ctx, "heal", target, say=print))


def test_app_node_dies_and_no_request_fails_after_the_checks(production: LabContext) -> None:
    facts = drills.break_app(drills.open_lab(production), "app-2", print, requests=LOAD)
    with healing(production, "app-2") as healed:
        assert facts["summary"]["requests"] == LOAD
        assert facts["t_down"] is not None, "HAProxy never marked app-2 DOWN"
        assert facts["t_down"] - facts["t_break"] < 2.0      # checks every 500 ms, fall 2
        assert facts["failed_after_down"] == 0
        # The node's nginx is gone: connections refused or cut, which HAProxy retries
        # on the other node.
        assert facts["failed"] <= 2, facts["failed_statuses"]
        assert facts["servers_after"]["app-2"] == "DOWN"
        assert "app-2" in in_force(production)
        assert not any(r.tier.startswith("app-2-") for r in process.records(production))
    assert healed["servers"] == {"app-1": "UP", "app-2": "UP"}
    assert healed["summary"]["failed"] == 0
    assert healed["summary"]["served_by"].get("app-2", 0) > 0
    assert "app-2" not in in_force(production)


def test_app_gunicorn_dies_and_its_nginx_answers_502_until_the_checks(
        production: LabContext) -> None:
    facts = drills.break_app(drills.open_lab(production), "app-1", print, only_gunicorn=True,
                             requests=LOAD)
    with healing(production, "app-1-gunicorn") as healed:
        assert facts["victims"] == ["app-1-gunicorn"]
        assert facts["t_down"] is not None
        # nginx's 502 is an answer, not a connection failure: HAProxy passes it on. After
        # the checks took the node out, nothing fails.
        assert set(facts["failed_statuses"]) <= {502}
        assert facts["failed_after_down"] == 0
    assert healed["servers"]["app-1"] == "UP"
    assert healed["started"] == ["app-1-gunicorn"]


def test_primary_down_writes_fail_reads_go_on(production: LabContext) -> None:
    facts = drills.do(production, "break", "db-primary", say=print)
    with healing(production, "db-primary") as healed:
        write = facts["write"]
        assert write.status == 503
        assert drills.answered_by(write).startswith("Django on app-")   # the view's own 503
        assert write.ms > 4000            # PgBouncer held it for query_wait_timeout (5 s)
        assert "primary is unavailable" in write.body
        assert [r.status for r in facts["reads"]] == [200] * len(facts["reads"])
        assert all(drills.answered_by(r).startswith("Django on") for r in facts["reads"])
        assert "db-primary" in in_force(production)
    assert healed["streaming_after"] is not None
    assert healed["write"].status == 202
    assert "db-primary" not in in_force(production)
    assert [r.name for r in lab.status(production) if not r.healthy] == []


def test_redis_down_the_site_serves_from_the_database(production: LabContext) -> None:
    facts = drills.do(production, "break", "redis", say=print)
    with healing(production, "redis") as healed:
        assert {r.header("x-cache-product") for r in facts["before"]} <= {"hit", "miss"}
        assert [r.status for r in facts["after"]] == [200] * len(facts["after"])
        assert {r.header("x-cache-product") for r in facts["after"]} == {"bypass"}
        assert facts["home"].status == 200
        assert facts["remembered_before"] is True
        assert facts["form"].status == 200
        assert facts["remembered_after"] is False
        assert facts["write"].status == 503
        assert "queue" in facts["write"].body
        assert any("redis" in line for line in drills.status_lines(production))
    assert [r.header("x-cache-product") for r in healed["products"]] == ["miss", "hit"]
    assert healed["write"].status == 202
    assert healed["sent"] is True
    assert drills.status_lines(production) == []


def test_slow_db_surfaces_as_the_app_nginx_504(production: LabContext) -> None:
    facts = drills.do(production, "break", "slow-db", say=print)
    with healing(production, "slow-db") as healed:
        # recorded like a tier, so lab down stops it too
        assert drills.HOLDER in {r.tier for r in process.records(production)}
        assert facts["status"] == 504
        assert 9.5 < facts["seconds"] < 15        # the app nginx's proxy_read_timeout: 10 s
        assert facts["origin_kind"] == "server.app"
        assert facts["origin"].endswith("-nginx")
        kinds = {kind: status for kind, _tier, status in facts["chain"]}
        assert kinds["server.edge"] == kinds["server.lb"] == kinds["server.app"] == 504
        assert "server.django" not in kinds       # still waiting on the lock
        assert facts["product"].status == 200     # another table: not slow
    assert healed["read"].status == 200
    assert healed["read"].ms < 2000
    assert healed["django"] is not None
    assert healed["django"]["status"] == 200
    assert drills.HOLDER not in {r.tier for r in process.records(production)}


def test_worker_killed_mid_task_the_task_completes(production: LabContext) -> None:
    facts = drills.do(production, "break", "worker", say=print)
    with healing(production, "worker") as healed:
        assert facts["victims"], "the worker had no pool process"
        assert facts["t_done"] is not None
        assert facts["attempts"] >= 2             # killed once, delivered again
        assert facts["new_children"]
        assert not set(facts["new_children"]) & set(facts["victims"])
    assert healed["started"] == []                # the worker replaced its pool itself


def test_unknown_target_and_down_stops_what_heal_started(production: LabContext) -> None:
    with pytest.raises(KeyError):
        drills.do(production, "break", "nothing-of-that-name", say=print)
    records = process.records(production)
    assert {"app-2-nginx", "app-2-gunicorn", "db-primary", "redis"} <= {r.tier for r in records}
    lab.down(production)
    for rec in records:
        assert not process.alive(rec.pid), rec.tier
    assert process.records(production) == []
