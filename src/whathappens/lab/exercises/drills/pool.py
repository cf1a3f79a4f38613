"""db-pool: PgBouncer's read pool made smaller than the site's concurrency; requests queue
for a server connection and, past query_wait_timeout, fail with a 5xx."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from typing import Any

from whathappens.lab.exercises import load
from whathappens.lab.exercises.drills.app import Watch
from whathappens.lab.exercises.drills.common import (
    DrillError,
    Say,
    _nonce,
    _record,
    lb_lines,
    ms,
    pct,
)
from whathappens.lab.exercises.drills.measure import (
    bouncer_command,
    bouncer_show,
    phase_lines,
    run_phase,
    summary,
)
from whathappens.lab.running import Lab
from whathappens.lab.tiers.pgbouncer import READ_ONLY_DB, PgBouncer

POOL_SIZE = 2           # server connections the read pool may open during the drill
WAIT_TIMEOUT = 1        # s: PgBouncer's query_wait_timeout during the drill
QUERY_SECONDS = 0.4     # each request's query holds a server connection this long
CLIENTS = 16             # the load's concurrency: 8 × the pool, all of gunicorn's threads
REQUESTS = 48


def _bouncer(lab: Lab) -> PgBouncer:
    tier = lab.tier("pgbouncer")
    assert isinstance(tier, PgBouncer)
    return tier


def small_pool_config(text: str) -> str:
    """The lab's pgbouncer.ini with the read pool capped at ``POOL_SIZE`` server connections
    and clients waiting at most ``WAIT_TIMEOUT`` s for one."""
    text = re.sub(rf"^({READ_ONLY_DB} = .*)$", rf"\1 pool_size={POOL_SIZE}", text,
                  count=1, flags=re.MULTILINE)
    # (PgBouncer's ini takes no comment after a value: the whole rest is the value, and a
    # reload that fails to parse one puts that setting back to its default.)
    return re.sub(r"^query_wait_timeout = .*$",
                  f"; whathappens lab break db-pool:\nquery_wait_timeout = {WAIT_TIMEOUT}", text,
                  count=1, flags=re.MULTILINE)


def _setting(lab: Lab, key: str) -> str:
    """A setting as the running PgBouncer has it (SHOW CONFIG)."""
    return str(next((r.get("value") for r in bouncer_show(lab, "CONFIG")
                     if r.get("key") == key), "?"))


def _read_pool(lab: Lab, what: str, key: str = "database") -> dict[str, Any]:
    return next((r for r in bouncer_show(lab, what)
                 if r.get(key) == READ_ONLY_DB), {})


def _servers(pool: dict[str, Any]) -> int:
    return sum(int(pool.get(k) or 0) for k in ("sv_active", "sv_idle", "sv_used",
                                                "sv_tested", "sv_login"))


class PoolWatch:
    """SHOW POOLS for the read pool every 100 ms during a load run: the most clients
    waiting, the longest wait, the server connections in use."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):    # a sample missed is only that
                self.samples.append(_read_pool(self.lab, "POOLS"))
            self._stop.wait(0.1)

    def peak(self) -> dict[str, float]:
        def top(f: Any) -> float:
            return max((f(s) for s in self.samples), default=0)
        return {
            "cl_waiting": top(lambda s: int(s.get("cl_waiting") or 0)),
            "cl_active": top(lambda s: int(s.get("cl_active") or 0)),
            "sv_active": top(lambda s: int(s.get("sv_active") or 0)),
            "servers": top(_servers),
            "maxwait_s": top(lambda s: int(s.get("maxwait") or 0)
                             + int(s.get("maxwait_us") or 0) / 1e6),
            "samples": len(self.samples),
        }


def _load(lab: Lab, clients: int, requests: int,
          run_id: str = "") -> tuple[load.LoadResult, dict[str, float]]:
    """A load run; with ``run_id`` its URLs carry ``dbpool=<run_id>-<n>`` (HAProxy's log
    of the same requests is found by it)."""
    def path(n: int) -> str:
        return f"/p/about/?dbpool={run_id}-{n}" if run_id else f"/p/about/?{_nonce()}"

    with PoolWatch(lab) as watch:
        result = run_phase(lab, path, requests=requests, concurrency=clients, seconds=30,
                           headers={"X-Lab-DB-Sleep": str(QUERY_SECONDS)})
    return result, watch.peak()


# HAProxy's termination states (%tsc, its configuration manual §8.5) a 503 of its own
# carries in this drill, in plain words.
LB_503 = {
    "SC": "no server was up to take it (<NOSRV>: HAProxy's health checks had marked every "
          "server DOWN)",
    "sQ": "it waited in HAProxy's queue for a free server slot longer than 'timeout queue'",
    "SQ": "it waited in HAProxy's queue and no server took it",
    "sC": "HAProxy could not connect to a server within 'timeout connect'",
}


def lb_own_503s(lines: list[dict[str, Any]]) -> Counter[str]:
    """HAProxy's own 503s among its log ``lines`` (no server answered them: the session
    ended on the server side while queued or connecting), by 'status server termination'."""
    def own(x: dict[str, Any]) -> bool:
        term = str(x.get("termination") or "")
        return str(x.get("status")) == "503" and (
            x.get("server") == "<NOSRV>" or (term[:1] in ("s", "S") and term[1:2] in ("C", "Q")))
    return Counter(f"503 {x.get('server')} {str(x.get('termination'))[:2]}"
                   for x in lines if own(x))


def _say_lb_503s(say: Say, own: Counter[str], downs: list[str]) -> None:
    """What HAProxy's log and its server states say of the 503s Django did not send."""
    if not own:
        return
    say("    HAProxy answered " + ", ".join(f"{n} × {k}" for k, n in own.most_common())
        + " itself (its log: status, server, termination state):")
    for term in sorted({k.rsplit(" ", 1)[1] for k in own}):
        say(f"      {term}: {LB_503.get(term, 'see HAProxy manual §8.5')}")
    if downs:
        say(f"    Its health checks (GET /healthz every 500 ms, DOWN after 2 failures) saw "
            f"{', '.join(downs)}: /healthz needs no database, but it waits for a gunicorn "
            f"thread like any request, and all of them were waiting on the pool. A health "
            f"check that shares the app's threads reports 'busy' as 'dead'.")


def _say_phase(say: Say, label: str, result: load.LoadResult, peak: dict[str, float]) -> None:
    for line in phase_lines(label, result):
        say(f"    {line}")
    say(f"      PgBouncer's SHOW POOLS ({READ_ONLY_DB}, every 100 ms): at most "
        f"{peak['cl_waiting']:.0f} clients waiting (cl_waiting), "
        f"{peak['sv_active']:.0f} server connections busy (sv_active), longest wait "
        f"{peak['maxwait_s']:.2f} s (maxwait)")


def _gunicorns(lab: Lab) -> list[str]:
    return [t for node in lab.app_nodes() for t in lab.node_tiers(node)
            if t.endswith("-gunicorn")]


def _log_sizes(lab: Lab) -> dict[str, int]:
    """Where each log ends now (PgBouncer's, each gunicorn's)."""
    out = {}
    for name in ["pgbouncer", *_gunicorns(lab)]:
        try:
            out[name] = lab.ctx.log(name).stat().st_size
        except OSError:
            out[name] = 0
    return out


def _count_since(lab: Lab, name: str, since: int, needle: str) -> int:
    """Lines of tier ``name``'s log after byte ``since`` that contain ``needle``."""
    try:
        with lab.ctx.log(name).open("rb") as f:
            f.seek(since)
            text = f.read(8 << 20).decode(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if needle in line)


def _evidence(lab: Lab, marks: dict[str, int]) -> tuple[int, int]:
    """(clients PgBouncer closed on query_wait_timeout, OperationalErrors Django logged)
    since ``marks``."""
    closed = _count_since(lab, "pgbouncer", marks.get("pgbouncer", 0),
                          "closing because: query_wait_timeout")
    django = sum(_count_since(lab, g, marks.get(g, 0),
                              "OperationalError: query_wait_timeout")
                 for g in _gunicorns(lab))
    return closed, django


def break_pool(lab: Lab, say: Say) -> dict[str, Any]:
    if not lab.running("pgbouncer"):
        raise DrillError("pgbouncer is not running")
    say(f"drill db-pool: PgBouncer's read pool ({READ_ONLY_DB}, to the replica) capped at "
        f"{POOL_SIZE} server connections, clients waiting at most {WAIT_TIMEOUT} s for one "
        f"(query_wait_timeout); the load: {CLIENTS} clients at once")
    say(f"  each request's page read first runs SELECT pg_sleep({QUERY_SECONDS}) on the "
        f"replica (the site's lab-only X-Lab-DB-Sleep header): a query that holds a pooled "
        f"server connection {QUERY_SECONDS * 1000:.0f} ms, as a slow report would")
    before, before_peak = _load(lab, CLIENTS, REQUESTS)
    say(f"  before, with the lab's pool ({_read_pool(lab, 'DATABASES', 'name').get('pool_size')}"
        f" server connections):")
    _say_phase(say, f"{CLIENTS} clients", before, before_peak)
    bouncer = _bouncer(lab)
    ini = bouncer.ini(lab.ctx)
    ini.write_text(small_pool_config(ini.read_text()))
    bouncer_command(lab, "RELOAD")
    if _setting(lab, "query_wait_timeout") != str(WAIT_TIMEOUT):
        ini.write_text(bouncer.config(lab.ctx))
        bouncer_command(lab, "RELOAD")
        raise DrillError("PgBouncer did not take the drill's configuration (see its log)")
    # The pool keeps the server connections it has; PgBouncer's janitor closes the idle
    # ones above the new size. RECONNECT closes each once it is released, at once.
    bouncer_command(lab, f"RECONNECT {READ_ONLY_DB}")
    time.sleep(0.5)
    _record(lab, "db-pool", {"pool_size": POOL_SIZE, "query_wait_timeout": WAIT_TIMEOUT})
    db = _read_pool(lab, "DATABASES", "name")
    say(f"  reloaded: SHOW DATABASES says pool_size {db.get('pool_size')} for {READ_ONLY_DB}; "
        f"SHOW CONFIG says query_wait_timeout {_setting(lab, 'query_wait_timeout')}")
    within, within_peak = _load(lab, POOL_SIZE, 10)
    say("  during:")
    _say_phase(say, f"{POOL_SIZE} clients (as many as the pool)", within, within_peak)
    marks = _log_sizes(lab)
    run_id = _nonce()
    watch = Watch(lab, time.monotonic())
    watch.start()
    try:
        above, above_peak = _load(lab, CLIENTS, REQUESTS, run_id)
    finally:
        watch.stop()
    _say_phase(say, f"{CLIENTS} clients ({CLIENTS // POOL_SIZE} × the pool)", above,
               above_peak)
    closed, django = _evidence(lab, marks)
    say(f"      PgBouncer's log: {closed} client connection(s) closed 'because: "
        f"query_wait_timeout' (each waited over {WAIT_TIMEOUT} s for a server connection)")
    say(f"      gunicorn's logs: {django} × django.db.utils.OperationalError: "
        f"query_wait_timeout (the error PgBouncer sent before closing)")
    own = lb_own_503s(lb_lines(lab, f"dbpool={run_id}-"))
    downs = sorted({f"{server} DOWN" for _, states in watch.changes
                    for server, state in states.items() if state.startswith("DOWN")})
    _say_pool_meaning(say, above, above_peak, closed)
    _say_lb_503s(say, own, downs)
    say("  undo: whathappens lab heal db-pool")
    return {"before": summary(before), "before_peak": before_peak,
            "within": summary(within), "within_peak": within_peak,
            "above": summary(above), "above_peak": above_peak, "log_timeouts": closed,
            "django_errors": django, "lb_503s": dict(own), "lb_downs": downs,
            "pool_size": db.get("pool_size")}


def _say_pool_meaning(say: Say, above: load.LoadResult, peak: dict[str, float],
                      closed: int) -> None:
    capacity = POOL_SIZE / QUERY_SECONDS
    say("  what it means:")
    say(f"    {POOL_SIZE} server connections each busy {QUERY_SECONDS * 1000:.0f} ms per "
        f"request serve at most {capacity:.0f} requests/s (arithmetic, not measured); "
        f"{CLIENTS} clients ask for more, so the rest queue inside PgBouncer "
        f"(cl_waiting reached {peak['cl_waiting']:.0f}).")
    if any(x.status == 500 for x in above.failed):
        say(f"    A client that waited {WAIT_TIMEOUT} s without a connection was closed by "
            f"PgBouncer (query_wait_timeout); Django's query raised an OperationalError and "
            f"the page view, which does not catch it, became a 500 — produced by "
            f"Django, passed on unchanged by the app nginx, HAProxy and the edge. PostgreSQL "
            f"never ran more than {peak['sv_active']:.0f} of the site's queries at once: "
            f"the bottleneck is the pool, not the database.")
    if closed > len(above.failed):
        say("    PgBouncer closed more clients than requests failed: a connection Django "
            "reuses is first checked with a query of its own (CONN_HEALTH_CHECKS), which "
            "queues too; when that check fails, Django opens a new connection instead of "
            "failing the request.")
        ok = [s.latency_ms for s in above.ok]
        if ok:
            say(f"    The requests that got through waited too: p50 "
                f"{ms(pct(ok, 50))} against {QUERY_SECONDS * 1000:.0f} ms of "
                f"query.")
    say("    The fix is not only a bigger pool (PostgreSQL pays per connection): shorter "
        "transactions, a timeout that fails fast with a clear 503, and limits on the "
        "app's concurrency that match the pool.")


def heal_pool(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal db-pool: PgBouncer's configuration as the lab wrote it, reloaded")
    bouncer = _bouncer(lab)
    bouncer.ini(lab.ctx).write_text(bouncer.config(lab.ctx))
    bouncer_command(lab, "RELOAD")
    db = _read_pool(lab, "DATABASES", "name")
    wait = _setting(lab, "query_wait_timeout")
    say(f"  SHOW DATABASES: pool_size {db.get('pool_size')} for {READ_ONLY_DB}; SHOW CONFIG: "
        f"query_wait_timeout {wait}")
    after, peak = _load(lab, CLIENTS, REQUESTS)
    _say_phase(say, f"{CLIENTS} clients", after, peak)
    _record(lab, "db-pool", None)
    return {"after": summary(after), "peak": peak, "pool_size": db.get("pool_size"),
            "query_wait_timeout": wait}
