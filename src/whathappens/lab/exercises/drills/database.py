"""db-primary (the primary stops: writes fail, reads go on) and slow-db (a held lock makes
page reads wait until a timeout answers)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whathappens.contract.facts import HttpFacts, ServerFacts
from whathappens.lab import process
from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Reply,
    Say,
    _nonce,
    _pg,
    _record,
    answered_by,
    counts,
    in_force,
    latency,
    ms,
    start_tiers,
    wait_for,
)
from whathappens.lab.running import Lab
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.topology import SITE

if TYPE_CHECKING:
    from whathappens.journey import Journey, Span

HOLDER = "drill-slow-db-lock"   # the slow-db drill's lock holder, a recorded "tier"
HOLD_MAX = 600.0                # it lets go by itself after 10 minutes at the latest
LOCKED_TABLE = "pages"


# ---------------------------------------------------------------------------------------------
# db-primary: writes fail, reads go on


def _receiver(lab: Lab) -> str:
    """The replica's WAL receiver: 'streaming', another state, or 'none'."""
    try:
        with _pg(lab, "db-replica", "postgres") as conn:
            row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
    except Exception as e:
        return f"unreachable ({type(e).__name__})"
    return str(row[0]) if row else "none (no WAL receiver running)"


def break_primary(lab: Lab, say: Say) -> dict[str, Any]:
    if not lab.running("db-primary"):
        raise DrillError("db-primary is not running (whathappens lab heal db-primary)")
    say("drill db-primary: the PostgreSQL primary stops (fast shutdown: clients "
        "disconnected, a clean checkpoint)")
    t0 = time.monotonic()
    process.stop(lab.ctx, "db-primary")
    say(f"  stopped in {time.monotonic() - t0:.2f} s; the replica's WAL receiver: "
        f"{_receiver(lab)}")
    writer, reader = Browser(lab), Browser(lab)
    with ThreadPoolExecutor(max_workers=1) as pool:
        write_future = pool.submit(writer.post_contact, "db-primary drill")
        reads = [reader.get(f"/p/about/?{_nonce()}") for _ in range(5)]
        write = write_future.result()
    again = writer.post_contact("db-primary drill, again")
    say("  writes (POST /contact/, which INSERTs on the primary through PgBouncer's "
        "'site' pool):")
    for reply in (write, again):
        say(f"    {reply.status} after {reply.ms / 1000:.2f} s, answered by "
            f"{answered_by(reply)}: {reply.json().get('error') or reply.error or reply.body[:120]}")
        detail = reply.json().get("detail")
        if detail:
            say(f"      the database error: {detail}")
    say("  reads (GET /p/about/, SELECTs on the replica through PgBouncer's 'site_ro' "
        "pool), while the write waited:")
    say(f"    {counts([r.status for r in reads])}; {latency(reads)}; answered by "
        f"{', '.join(sorted({answered_by(r) for r in reads}))}")
    say("  what it means:")
    say("    Reads go on: the router sends them to the replica, which keeps answering with "
        "the data it had. Writes cannot: nothing promotes the replica (that takes "
        "pg_ctl promote, or a manager such as Patroni), so every write fails until the "
        "primary is back.")
    wait = write.ms / 1000
    say(f"    The first write failed after {wait:.1f} s, not at once: PgBouncer held the "
        f"query while it tried to reach the primary, up to its query_wait_timeout "
        f"({_pgbouncer_setting(lab, 'query_wait_timeout', '120')}), then gave up; the view "
        f"turned the database error into a 503 (Service Unavailable) that says what failed.")
    if again.ms < write.ms / 2:
        say(f"    The next write failed in {again.ms / 1000:.2f} s: after a failed login to "
            f"the primary, PgBouncer turns new clients of that pool away at once for "
            f"server_login_retry ({_pgbouncer_setting(lab, 'server_login_retry', '15')}) "
            f"instead of trying again for each.")
    say("  undo: whathappens lab heal db-primary")
    _record(lab, "db-primary", {"stopped": ["db-primary"]})
    return {"write": write, "again": again, "reads": reads, "receiver": _receiver(lab)}


def _pgbouncer_setting(lab: Lab, name: str, default: str) -> str:
    """A PgBouncer setting from its ini file, else PgBouncer's documented default."""
    found = _conf_value(lab.ctx.dir("pgbouncer") / "pgbouncer.ini",
                        rf"^\s*{name}\s*=\s*(\S+)")
    return f"{found} s" if found is not None else f"{default} s, PgBouncer's default"


def heal_primary(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal db-primary: start the primary again (same data directory), wait for the "
        "replica to stream from it and for writes to go through")
    t0 = time.monotonic()
    start_tiers(lab, ["db-primary"], say)
    from whathappens.lab.tiers.postgres import PostgresReplica

    replica = lab.tier("db-replica")
    assert isinstance(replica, PostgresReplica)
    streaming = wait_for(replica.streaming, timeout=30)
    say(f"  the replica streams again after {streaming:.1f} s (its WAL receiver retries every "
        f"wal_retrieve_retry_interval, 5 s by default)" if streaming is not None else
        "  the replica is NOT streaming after 30 s: see logs/db-replica.log")
    ready = time.monotonic()
    browser = Browser(lab)
    write = browser.post_contact("after db-primary heal")
    failures: list[Reply] = []
    while write.status != 202 and time.monotonic() - t0 < 40:
        failures.append(write)
        time.sleep(0.5)
        write = browser.post_contact("after db-primary heal")
    back = time.monotonic() - ready
    say(f"  a write: {write.status} in {write.ms / 1000:.2f} s, {back:.1f} s after the "
        f"primary and the replica were ready ({len(failures)} failed tries before)")
    if failures:
        details = Counter(str(r.json().get("detail") or r.error or r.status)[:90]
                          for r in failures)
        for text, n in details.items():
            say(f"    {n} × {text}")
        say(f"    PgBouncer had failed to log in to the primary while it was down, and "
            f"turns the pool's clients away for server_login_retry "
            f"({_pgbouncer_setting(lab, 'server_login_retry', '15')}) after such a "
            f"failure: the database was back before the writes were.")
    if write.status == 202:
        _record(lab, "db-primary", None)
    return {"streaming_after": streaming, "write": write, "failures": len(failures),
            "writes_back_after": back}


# ---------------------------------------------------------------------------------------------
# slow-db: a lock makes page reads wait; which timeout answers, and where


class LockHolder(Tier):
    """A small process holding ACCESS EXCLUSIVE on ``pages`` in an open transaction on the
    primary. It is started and recorded like a tier, so ``lab down`` stops it too."""

    role = "drill: a transaction holding a lock on the pages table"

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.name = HOLDER
        self.host = lab.topo.spec("db-primary").host
        self.address, self.pg_port = lab.topo.endpoint("db-primary")
        self.port = None

    def prepare(self, ctx: LabContext) -> None:
        pass

    def command(self, ctx: LabContext) -> list[str]:
        return [sys.executable, "-m", "whathappens.lab.exercises.drills", "hold-lock", self.address,
                str(self.pg_port), str(HOLD_MAX)]

    def ready(self, ctx: LabContext) -> bool:
        """The lock is held on the primary and replayed on the replica (where reads go)."""
        return _locked(self.lab, "db-primary") and _locked(self.lab, "db-replica")


def _locked(lab: Lab, tier: str) -> bool:
    with _pg(lab, tier) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass "
            "AND mode = 'AccessExclusiveLock' AND granted", (LOCKED_TABLE,)).fetchone()
    return bool(row and row[0])


def hold_lock(address: str, port: int, seconds: float) -> int:
    """The holder's body (``python -m whathappens.lab.exercises.drills hold-lock ADDR PORT
    SECONDS``)."""
    from whathappens.lab.tiers.postgres import SITE_DB, SUPERUSER, connect

    # SIGTERM (lab heal, lab down) ends the process; closing the connection rolls the
    # transaction back, which releases the lock.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with connect(address, port, SITE_DB, SUPERUSER) as conn:
        conn.autocommit = False
        conn.execute(f"LOCK TABLE {LOCKED_TABLE} IN ACCESS EXCLUSIVE MODE")
        # The lock's WAL record reaches the replica only once it is flushed, and the lab's
        # primary commits asynchronously: with nothing else writing, the record would sit
        # in the WAL buffers. One synchronous commit from a second session flushes the
        # WAL up to it (as the next write of any real site would).
        with connect(address, port, SITE_DB, SUPERUSER) as other:
            other.execute("SET synchronous_commit TO on")
            other.execute("SELECT txid_current()")
        print(f"holding ACCESS EXCLUSIVE on {LOCKED_TABLE} for at most {seconds:g} s",
              flush=True)
        time.sleep(seconds)
    return 0


def _conf_value(path: Path, pattern: str) -> str | None:
    try:
        found = re.search(pattern, path.read_text(), re.MULTILINE)
    except OSError:
        return None
    return found.group(1) if found else None


def timeouts(lab: Lab) -> list[tuple[str, str, str]]:
    """(tier, setting, value) on the read path, from the running configuration."""
    ctx = lab.ctx
    node = lab.app_nodes()[0]
    app_nginx = next(t for t in lab.node_tiers(node) if t.endswith("-nginx"))
    gunicorn = next(t for t in lab.node_tiers(node) if t.endswith("-gunicorn"))
    rec = process.Record.load(process.record_path(ctx, gunicorn))
    g_timeout = None
    if rec is not None and "--timeout" in rec.argv:
        g_timeout = rec.argv[rec.argv.index("--timeout") + 1]
    read = r"^\s*proxy_read_timeout\s+(\S+);"
    out = [
        ("edge", "proxy_read_timeout", _conf_value(ctx.dir("edge") / "nginx.conf", read)),
        ("lb", "timeout server",
         _conf_value(ctx.dir("lb") / "haproxy.cfg", r"^\s*timeout server\s+(\S+)")),
        (app_nginx, "proxy_read_timeout", _conf_value(ctx.dir(app_nginx) / "nginx.conf", read)),
        (gunicorn, "--timeout (gthread)", f"{g_timeout}s" if g_timeout else None),
        ("pgbouncer", "query_wait_timeout", _pgbouncer_setting(lab, "query_wait_timeout",
                                                               "120")),
    ]
    with contextlib.suppress(Exception), _pg(lab, "db-replica") as conn:
        for setting in ("statement_timeout", "lock_timeout"):
            row = conn.execute(f"SHOW {setting}").fetchone()
            out.append(("db-replica", setting, str(row[0]) if row else None))
    return [(t, s, v or "?") for t, s, v in out]


def _chain(http: Span[Any]) -> list[Span[ServerFacts]]:
    out = []
    node = next((c for c in http.children if c.name.startswith("server.")), None)
    while node is not None:
        out.append(node)
        node = next((c for c in node.children if c.name.startswith("server.")), None)
    return out


def lab_journey(lab: Lab, path: str) -> Journey:
    """``whathappens https://www.example.com<path> --lab``, in-process."""
    from whathappens.lab.client import apply, merge_inside
    from whathappens.trace import Options, run_journey

    options = Options(max_time=45.0)
    apply(options, lab.ctx.state)
    port = lab.front[1]
    url = f"https://{SITE}{'' if port == 443 else f':{port}'}{path}"
    journey = asyncio.run(run_journey(url, options))
    merge_inside(journey, lab.ctx.state)
    return journey


def _http_span(journey: Journey) -> Span[HttpFacts] | None:
    # the journey's own requests (its legs), not the revalidation made after it
    spans = [c for leg in journey.spans if leg.name == "leg" for c in leg.children
             if c.name == "http"]
    return spans[-1] if spans else None


def _span_status(span: Span[ServerFacts]) -> int | None:
    """The status a tier logged for the request, when it logged one."""
    value = span.facts.extra.get("status")  # as the tier logged it: a number or its text
    with contextlib.suppress(TypeError, ValueError):
        return int(value) if isinstance(value, int | float | str) else None
    return None


def _last_error_line(path: Path, needle: str) -> str | None:
    from whathappens.lab.logs import tail_lines

    found = None
    for line in tail_lines(path, 256 * 1024):
        if needle in line:
            found = line
    return found


def break_slow_db(lab: Lab, say: Say) -> dict[str, Any]:
    if lab.running(HOLDER):
        raise DrillError("slow-db is already in force (whathappens lab heal slow-db)")
    say(f"drill slow-db: a transaction on the primary takes ACCESS EXCLUSIVE on the "
        f"'{LOCKED_TABLE}' table and keeps it (a held lock, as a migration or a forgotten "
        f"session would)")
    t0 = time.monotonic()
    process.start(LockHolder(lab), lab.ctx, timeout=15)
    say(f"  held on the primary and replayed on the replica after {time.monotonic() - t0:.2f} "
        f"s (the lock is written to the WAL, so the replica's readers wait too)")
    say("  the read path's timeouts, from the running configuration:")
    for tier, setting, value in timeouts(lab):
        say(f"    {tier:<16} {setting:<22} {value}")
    path = f"/p/about/?{_nonce()}"
    say(f"  a --lab journey to {path} (waits on the lock), and meanwhile a product page "
        f"(another table):")
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(lab_journey, lab, path)
        time.sleep(0.3)
        product = Browser(lab).get(f"/product/1/?{_nonce()}")
        journey = future.result()
    say(f"    the product page: {product.status} in {ms(product.ms)} ({answered_by(product)})")
    http = _http_span(journey)
    status = http.facts.status if http is not None else None
    took = (http.duration_ns or 0) / 1e9 if http is not None else 0.0
    say(f"    the journey: HTTP {status} after {took:.2f} s" +
        (f" ({journey.error.message})" if journey.error is not None else ""))
    chain = _chain(http) if http is not None else []
    say("    inside, from the tiers' logs (same clock):")
    for span in chain:
        a = span.facts.extra  # the tier's log fields, as logged
        extra = ""
        if span.name == "server.lb":
            extra = (f"→ {a.get('server')}, server response headers after {a.get('Tr')} ms, "
                     f"termination {a.get('termination')}")
        elif span.name == "server.app":
            extra = (f"upstream {a.get('upstream_addr', '-')}, response time "
                     f"{a.get('upstream_response_time', '-')} s, no response header"
                     if not a.get("upstream_header_time") else
                     f"upstream header after {a.get('upstream_header_time')} s")
        elif span.name == "server.edge":
            extra = f"cache {a.get('cache', '-')}"
        say(f"      {span.actor:<48} {(span.duration_ns or 0) / 1e9:6.2f} s  status "
            f"{a.get('status')}  {extra}")
    if chain and not any(s.name == "server.django" for s in chain):
        say("      (no Django span: the view is still waiting for PostgreSQL; it logs its "
            "span when it finishes)")
    # Which tier gave the status: the innermost one that reports it.
    origin = None
    for span in chain:
        if _span_status(span) == status:
            origin = span
    origin_tier = origin.facts.tier if origin is not None else "?"
    evidence = None
    if origin is not None and origin.name == "server.app":
        evidence = _last_error_line(lab.ctx.log(origin_tier), "upstream timed out")
    elif origin is not None and origin.name == "server.edge":
        evidence = _last_error_line(lab.ctx.log(lab.topo.front().name), "upstream timed out")
    say(f"  where it surfaced: {origin_tier} produced the {status}"
        + (f" after {(origin.duration_ns or 0) / 1e9:.2f} s" if origin is not None else ""))
    if evidence:
        say(f"    its error log: {evidence.split('] ', 1)[-1][:240]}")
    say("  why that tier, and why that status:")
    for line in _explain_timeout(origin, status):
        say(f"    {line}")
    trace_id = journey.facts.trace_id
    say("  undo: whathappens lab heal slow-db")
    _record(lab, "slow-db", {"holder": HOLDER, "trace_id": trace_id, "path": path})
    return {"status": status, "seconds": took, "origin": origin_tier,
            "origin_kind": origin.name if origin is not None else None,
            "chain": [(s.name, s.facts.tier, _span_status(s)) for s in chain],
            "product": product, "trace_id": trace_id, "journey": journey}


def _explain_timeout(origin: Span[Any] | None, status: int | None) -> list[str]:
    kind = origin.name if origin is not None else ""
    common = [
        "The query is not waiting for a connection but for a lock, inside PostgreSQL: "
        "PgBouncer's query_wait_timeout only limits the wait for a server connection, and "
        "PostgreSQL has no statement_timeout or lock_timeout set, so nothing below the "
        "web tiers gives up.",
        "gunicorn's --timeout does not either: with the gthread worker it watches the "
        "worker's main loop, which keeps running while a request thread waits.",
    ]
    if kind == "server.app" and status == 504:
        return [
            *common,
            "So the shortest timeout on the way back is the app node's nginx "
            "proxy_read_timeout: it stopped waiting for gunicorn's response header and "
            "answered 504 Gateway Timeout itself. HAProxy (timeout server) and the edge "
            "(proxy_read_timeout) wait longer, so they passed that 504 on.",
            "504 means 'the upstream did not answer in time'; a 502 would mean it answered "
            "badly or broke the connection (gunicorn killed, a crash mid-response).",
            "Django never learns: its thread is still waiting and will finish the page for "
            "nobody once the lock goes (lab heal shows it). Timeouts that shrink inwards "
            "(app nginx < HAProxy < edge) make the tier nearest the problem answer.",
        ]
    if kind == "server.lb":
        return [*common, "HAProxy's 'timeout server' ran out before the app node's "
                "nginx answered: it produced the status itself."]
    if kind == "server.edge":
        return [*common, "The edge's own proxy_read_timeout ran out first."]
    if kind == "server.django":
        return ["Django answered with an error of its own: the database call failed "
                "before any proxy's timeout ran out (see the Django span)."]
    return [*common, "No tier's span carried the final status: see the journey."]


def heal_slow_db(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal slow-db: end the lock holder (its transaction rolls back, the lock goes)")
    facts = in_force(lab).get("slow-db", {})
    t0 = time.monotonic()
    was = process.stop(lab.ctx, HOLDER)
    free = wait_for(lambda: not _locked(lab, "db-replica"), timeout=10)
    say(f"  holder {'stopped' if was else 'was not running'}; the replica's lock gone after "
        f"{time.monotonic() - t0:.2f} s" if free is not None else
        "  the replica still shows the lock after 10 s")
    reply = Browser(lab).get(f"/p/about/?{_nonce()}")
    say(f"  a page read: {reply.status} in {ms(reply.ms)} ({answered_by(reply)})")
    waited = None
    trace_id = facts.get("trace_id")
    if trace_id:
        waited = _django_span(lab, str(trace_id), timeout=5)
        if waited is not None:
            sql = [s for s in waited.get("spans", []) if s.get("name") == "sql"]
            longest = max(((s["end_ns"] - s["start_ns"]) / 1e9 for s in sql), default=0.0)
            say(f"  the drill journey's request finished in Django only now: status "
                f"{waited.get('status')} after "
                f"{(waited['end_ns'] - waited['start_ns']) / 1e9:.1f} s (its query waited "
                f"{longest:.1f} s for the lock). The client had its 504 long ago: that work "
                f"was done for nobody, holding a gunicorn thread and a pooled connection.")
    _record(lab, "slow-db", None)
    return {"read": reply, "django": waited}


def _django_span(lab: Lab, trace_id: str, timeout: float) -> dict[str, Any] | None:
    """Django's span of the trace, from whichever app node's log has it, waited for (it is
    written as the request ends there) at most ``timeout`` s."""
    from whathappens.lab.logs import json_lines, settled
    from whathappens.lab.tiers.gunicorn import span_log

    def found() -> list[dict[str, Any]]:
        return [item for node in lab.app_nodes()
                for tier in lab.node_tiers(node) if tier.endswith("-gunicorn")
                for item in json_lines(span_log(lab.ctx, tier), trace_id)
                if item.get("trace_id") == trace_id and item.get("kind") == "django"]

    spans = settled(found, want=1, timeout=timeout)
    return spans[0] if spans else None

