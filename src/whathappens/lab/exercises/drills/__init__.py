"""Drills: the failure modes the seeds describe, done for real to the running lab.

``whathappens lab break TARGET`` breaks one thing, measures what clients see while it is
broken and says, in plain words, where the failure surfaced and what it means;
``whathappens lab heal TARGET`` undoes it and checks the lab is back to normal.

    app-N            the app node dies: its nginx and gunicorn are killed (SIGKILL, as in a
                     crash) in the middle of a bounded load run through the edge; HAProxy's
                     health checks take the node out
    app-N-gunicorn   only the node's gunicorn dies: its nginx stays up and answers 502 until
                     HAProxy's checks (which go through that nginx) take the node out
    db-primary       PostgreSQL's primary stops (fast shutdown): writes fail with a 503 after
                     PgBouncer's wait, reads go on from the replica
    redis            Redis stops: product pages come from the database (X-Cache-Product:
                     bypass), sessions read as empty, the task queue is gone
    slow-db          a transaction on the primary holds ACCESS EXCLUSIVE on ``pages``; the lock
                     is replayed on the replica, so page reads wait until a timeout answers
    worker           the Celery pool process is killed (SIGKILL) in the middle of a task; the
                     task is delivered again and completes
    worker-all       the whole worker is killed mid-task and stays down; ``heal`` restarts
                     it and measures when the unacknowledged task comes back (minutes)
    waf              ModSecurity + the OWASP CRS switched on at the edge: an attack gets 403
                     from the edge and never reaches HAProxy; a clean request passes
    rate-limit       limit_req at the edge (per client address, 429), under a load from two
                     addresses: which requests were refused, when, from where
    stale            a page changed at the origin: the edge serves its old copy until it
                     expires (the stale window, measured), or until it is purged
    db-pool          PgBouncer's read pool capped at 2 server connections, 16 clients whose
                     queries hold one 400 ms: they queue (SHOW POOLS), and past
                     query_wait_timeout Django answers 500
    slow-query       the page lookup's index dropped from a grown table: p95 up,
                     pg_stat_statements names the statement, EXPLAIN shows the Seq Scan
    replica-lag      WAL replay paused on the replica: a write, then stale reads through
                     the site; lag in bytes and in time
    redis-evict      Redis capped below its working set (volatile-lru): evictions, the hit
                     ratio falls (INFO stats, X-Cache-Product)
    redis-slow       a client runs an 800 ms Lua script every 1.6 s: other clients wait
                     behind it (PING, product pages); SLOWLOG names it
    queue-backlog    tasks arrive faster than the worker does them: the queue's depth (Redis
                     LLEN) sampled as it grows; ``heal`` waits for the drain, measures it
                     and plots the depth over time
    queue-dlq        a task whose dependency refuses fails every retry and lands in the
                     dead-letter queue; ``heal`` restores the dependency and replays it
    lb-mistarget     every HAProxy backend moved to a port where nothing listens (runtime
                     API): HAProxy's own 503, <NOSRV> and SC in its log
    nginx-saturation an app node's nginx with worker_connections 16 (reload): the latency
                     curve as concurrency rises, before and after, with a plot
    app-timeout      a lab-only slow view behind gunicorn's and nginx's timeouts: which tier
                     cuts it (200, 500, 502 or 504) with which worker class
    app-leak         a lab-only leaking view under a memory cgroup: the OOM killer, the
                     master's new worker, the requests that failed

Drills act only through the lab's own means: ``process`` to stop and start tiers (a tier
started by ``heal`` is recorded like any other, so ``lab down`` stops it), HAProxy's admin
socket to read its view of the servers, ``load.run`` and plain HTTPS requests to the edge,
``--lab`` journeys with the tiers' spans merged in. What is broken is written to
``<state>/drills.json``, so ``heal`` (and ``lab status``) know; an entry made before the
lab's latest ``lab up`` is ignored.

The package: ``common`` (the lab, if it is one the drills can use, drills.json, HTTPS
probes and what answered them, formatting, stopping and starting tiers), one module per
family of drills (``app``, ``database``: db-primary and slow-db, ``cache``: redis,
``worker``: worker and worker-all, ``edge``: waf, rate-limit and stale, ``queue``:
queue-backlog and queue-dlq), and here the
dispatcher (``lab break`` / ``lab heal``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from whathappens.errors import EXIT_LAB_FAILED, EXIT_USAGE
from whathappens.lab.exercises.drills.app import break_app, heal_app
from whathappens.lab.exercises.drills.appfaults import (
    break_app_leak,
    break_app_timeout,
    heal_app_leak,
    heal_app_timeout,
)
from whathappens.lab.exercises.drills.cache import break_redis, heal_redis
from whathappens.lab.exercises.drills.common import (
    DrillError,
    Say,
    answered_by,
    in_force,
    open_lab,
    status_lines,
)
from whathappens.lab.exercises.drills.database import (
    HOLDER,
    break_primary,
    break_slow_db,
    heal_primary,
    heal_slow_db,
    hold_lock,
)
from whathappens.lab.exercises.drills.edge import (
    break_rate_limit,
    break_stale,
    break_waf,
    heal_rate_limit,
    heal_stale,
    heal_waf,
)
from whathappens.lab.exercises.drills.evict import break_evict, heal_evict
from whathappens.lab.exercises.drills.pool import break_pool, heal_pool
from whathappens.lab.exercises.drills.queue import (
    break_backlog,
    break_dlq,
    heal_backlog,
    heal_dlq,
)
from whathappens.lab.exercises.drills.redis_slow import (
    break_redis_slow,
    heal_redis_slow,
    run_slow_client,
)
from whathappens.lab.exercises.drills.replica import break_replica, heal_replica
from whathappens.lab.exercises.drills.serving import (
    break_lb_mistarget,
    break_nginx_saturation,
    heal_lb_mistarget,
    heal_nginx_saturation,
)
from whathappens.lab.exercises.drills.slowquery import break_slow_query, heal_slow_query
from whathappens.lab.exercises.drills.worker import (
    break_worker,
    break_worker_all,
    heal_worker,
    heal_worker_all,
)
from whathappens.lab.process import LabError
from whathappens.lab.running import Lab
from whathappens.lab.tier import LabContext

# The database and Redis drills (pool.py, slowquery.py, replica.py, evict.py, redis_slow.py).
DATA_DRILLS: dict[str, tuple[Callable[[Lab, Say], dict[str, Any]],
                             Callable[[Lab, Say], dict[str, Any]]]] = {
    "db-pool": (break_pool, heal_pool),
    "slow-query": (break_slow_query, heal_slow_query),
    "replica-lag": (break_replica, heal_replica),
    "redis-evict": (break_evict, heal_evict),
    "redis-slow": (break_redis_slow, heal_redis_slow),
}

__all__ = ["HOLDER", "answered_by", "break_app", "dlq_main", "do", "in_force", "main",
           "open_lab", "status_lines"]


# ---------------------------------------------------------------------------------------------
# lab break / lab heal


TARGETS: tuple[str, ...] = ("app-N", "app-N-gunicorn", "db-primary", "redis", "slow-db",
                             "worker", "worker-all")
TARGETS += ("waf", "rate-limit", "stale")           # the CDN edge (drills/edge.py)
TARGETS += ("db-pool", "slow-query", "replica-lag", "redis-evict", "redis-slow")
TARGETS += ("queue-backlog", "queue-dlq")          # the task queue (drills/queue.py)
# The load balancer, nginx and app drills (serving.py, appfaults.py)
TARGETS += ("lb-mistarget", "nginx-saturation", "app-timeout", "app-leak")


SERVING: dict[str, tuple[Callable[[Lab, Say], dict[str, Any]],
                         Callable[[Lab, Say], dict[str, Any]]]] = {
    "lb-mistarget": (break_lb_mistarget, heal_lb_mistarget),
    "nginx-saturation": (break_nginx_saturation, heal_nginx_saturation),
    "app-timeout": (break_app_timeout, heal_app_timeout),
    "app-leak": (break_app_leak, heal_app_leak),
}


def do(ctx: LabContext, action: str, target: str, say: Say = print) -> dict[str, Any]:
    """Break or heal ``target``; returns what was measured (DrillError if it cannot)."""
    lab = open_lab(ctx)
    nodes = lab.app_nodes()
    if target in nodes or (target.endswith("-gunicorn")
                           and target.removesuffix("-gunicorn") in nodes):
        node = target.removesuffix("-gunicorn")
        if action == "break":
            if target in in_force(lab) or any(k.startswith(node) for k in in_force(lab)):
                raise DrillError(f"{node} is already broken (whathappens lab heal {target})")
            others = [n for n in nodes if n != node]
            if not others or not all(lab.haproxy().servers(ctx).get(n) == "UP"
                                     for n in others):
                raise DrillError("the other app node is not UP: breaking this one too would "
                                 "take the site down, which is not this drill")
            return break_app(lab, node, say, only_gunicorn=target != node)
        return heal_app(lab, node, say, target=target)
    table: dict[str, tuple[Callable[[Lab, Say], dict[str, Any]],
                           Callable[[Lab, Say], dict[str, Any]]]] = {
        "db-primary": (break_primary, heal_primary),
        "redis": (break_redis, heal_redis),
        "slow-db": (break_slow_db, heal_slow_db),
        "worker": (break_worker, heal_worker),
        "worker-all": (break_worker_all, heal_worker_all),
        "waf": (break_waf, heal_waf),
        "rate-limit": (break_rate_limit, heal_rate_limit),
        "stale": (break_stale, heal_stale),
        "queue-backlog": (break_backlog, heal_backlog),
        "queue-dlq": (break_dlq, heal_dlq),
    }
    table.update(DATA_DRILLS)
    table.update(SERVING)
    if target not in table:
        raise KeyError(target)
    breaker, healer = table[target]
    if action == "break":
        if target in in_force(lab):
            raise DrillError(f"{target} is already broken (whathappens lab heal {target})")
        return breaker(lab, say)
    return healer(lab, say)


def main(ctx: LabContext, args: argparse.Namespace) -> int:
    action, target = str(args.action), str(args.target)
    from whathappens.lab.metrics_report import cite_metrics, wall_clock

    started = wall_clock()
    try:
        do(ctx, action, target)
    except KeyError:
        print(f"whathappens lab {action}: unknown target {target!r}; targets: "
              f"{', '.join(TARGETS)} (N: an app node's number)", file=sys.stderr)
        return EXIT_USAGE
    except (DrillError, LabError, OSError) as err:
        print(f"whathappens lab {action} {target}: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    except Exception as err:  # the broker's client (redis, kombu) raises its own kinds
        if type(err).__module__.split(".")[0] not in ("redis", "kombu", "celery"):
            raise
        print(f"whathappens lab {action} {target}: the broker: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    cite_metrics(ctx, started)        # with lab up --metrics: the window's metrics
    return 0


def dlq_main(ctx: LabContext, action: str) -> int:
    """``lab dlq list`` / ``lab dlq replay``."""
    import redis

    from whathappens.lab.exercises.drills.queue import dead_letters, replay

    try:
        lab = open_lab(ctx)
        if action == "replay":
            done = replay(lab, print)
            print(f"{len(done)} task(s) published again")
            return 0
        letters = dead_letters(lab)
    except (DrillError, LabError, OSError, redis.RedisError) as err:
        print(f"whathappens lab dlq {action}: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    for e in letters:
        print(f"{e.get('task')} {e.get('task_id')} args {e.get('args')} retries "
              f"{e.get('retries')}: {str(e.get('error'))[:120]}")
    print(f"{len(letters)} task(s) in the dead-letter queue")
    return 0


def _cli(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "hold-lock":
        return hold_lock(argv[1], int(argv[2]), float(argv[3]))
    if len(argv) == 4 and argv[0] == "redis-slow":
        return run_slow_client(argv[1], int(argv[2]), float(argv[3]))
    print("usage: python -m whathappens.lab.exercises.drills hold-lock|redis-slow ADDRESS PORT "
          "SECONDS", file=sys.stderr)
    return EXIT_USAGE

