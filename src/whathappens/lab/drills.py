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

Drills act only through the lab's own means: ``process`` to stop and start tiers (a tier
started by ``heal`` is recorded like any other, so ``lab down`` stops it), HAProxy's admin
socket to read its view of the servers, ``load.run`` and plain HTTPS requests to the edge,
``--lab`` journeys with the tiers' spans merged in. What is broken is written to
``<state>/drills.json``, so ``heal`` (and ``lab status``) know; an entry made before the
lab's latest ``lab up`` is ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whathappens.lab import load, process
from whathappens.lab.lab import read_manifest
from whathappens.lab.process import LabError
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.tiers import build
from whathappens.lab.topology import Topology, topology

if TYPE_CHECKING:
    from whathappens.journey import Journey, Span
    from whathappens.lab.tiers.haproxy import HAProxy

Say = Callable[[str], None]

SITE = "www.example.com"
STATE_FILE = "drills.json"
EXIT_USAGE = 2
EXIT_FAILED = 12           # as the other lab commands: could not do what was asked

# The load run of the app-node drills: long enough to see the node fall (HAProxy checks
# every 500 ms, down after 2 failures), slow enough that the one node left stays under
# its nginx's per-client rate limit (50 r/s, burst 100).
LOAD_REQUESTS = 200
LOAD_CONCURRENCY = 4
LOAD_RATE = 40.0           # requests started per second
BREAK_AFTER = 1.0          # seconds of normal traffic before the break
POLL = 0.1                 # seconds between two looks at HAProxy's view

TASK_DELAY = 3.0           # the worker drill's task takes this long (X-Lab-Task-Delay)
KILL_AFTER = 1.0           # … and its pool process is killed this far into it

HOLDER = "drill-slow-db-lock"   # the slow-db drill's lock holder, a recorded "tier"
HOLD_MAX = 600.0                # it lets go by itself after 10 minutes at the latest
LOCKED_TABLE = "pages"


class DrillError(Exception):
    """The drill could not be done (no lab, wrong profile, a tier that will not start)."""


# ---------------------------------------------------------------------------------------------
# The lab as the drills see it


@dataclass
class Lab:
    ctx: LabContext
    topo: Topology
    manifest: dict[str, Any]
    tiers: dict[str, Tier] = field(default_factory=dict)

    def tier(self, name: str) -> Tier:
        if name not in self.tiers:
            self.tiers[name] = build(self.topo, self.topo.spec(name))
        return self.tiers[name]

    @property
    def front(self) -> tuple[str, int]:
        return self.topo.endpoint("edge")

    @property
    def cafile(self) -> str:
        return str(self.ctx.pki / "ca.pem")

    def haproxy(self) -> HAProxy:
        from whathappens.lab.tiers.haproxy import HAProxy

        lb = self.tier("lb")
        assert isinstance(lb, HAProxy)
        return lb

    def app_nodes(self) -> list[str]:
        """The app hosts HAProxy balances over (its server names): app-1, app-2."""
        backends = self.topo.spec("lb").options.get("backends", [])
        assert isinstance(backends, list)
        return [self.topo.spec(str(b)).host for b in backends]

    def node_tiers(self, node: str) -> list[str]:
        """The node's tiers, in start order (gunicorn before the nginx in front of it)."""
        order = {"gunicorn": 0, "nginx-app": 1}
        specs = [s for s in self.topo.tiers if s.host == node and s.kind in order]
        return [s.name for s in sorted(specs, key=lambda s: order[s.kind])]

    def running(self, name: str) -> bool:
        rec = process.Record.load(process.record_path(self.ctx, name))
        return rec is not None and process.alive(rec.pid)

    def pid(self, name: str) -> int | None:
        rec = process.Record.load(process.record_path(self.ctx, name))
        return rec.pid if rec is not None and process.alive(rec.pid) else None

    def lab_id(self) -> int:
        """Changes with every ``lab up`` (which rewrites lab.json)."""
        return (self.ctx.state / "lab.json").stat().st_mtime_ns


def open_lab(ctx: LabContext) -> Lab:
    manifest = read_manifest(ctx)
    if not manifest:
        raise DrillError(f"no lab in {ctx.state} (start one: whathappens lab up)")
    ctx.profile = str(manifest["profile"])
    ctx.algorithm = str(manifest.get("algorithm", ctx.algorithm))
    ctx.subnet = int(manifest.get("subnet", 0))
    if ctx.profile != "production":
        raise DrillError("drills need the production profile (an LB, two app nodes, a "
                         "replica, a worker): whathappens lab up --profile production")
    return Lab(ctx, topology(ctx.profile, ctx.subnet), manifest)


# -- drills.json: what is broken now ----------------------------------------------------------


def state_path(ctx: LabContext) -> Path:
    return ctx.state / STATE_FILE


def in_force(lab: Lab) -> dict[str, dict[str, Any]]:
    """Drills in force for this lab (entries from before its latest ``lab up`` are dropped)."""
    try:
        data = json.loads(state_path(lab.ctx).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(v, dict) and v.get("lab_id") == lab.lab_id()}


def _record(lab: Lab, target: str, facts: dict[str, Any] | None) -> None:
    data = in_force(lab)
    if facts is None:
        data.pop(target, None)
    else:
        data[target] = {"lab_id": lab.lab_id(), "since": time.time(), **facts}
    path = state_path(lab.ctx)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def status_lines(ctx: LabContext) -> list[str]:
    """For ``lab status``: one line per drill in force."""
    try:
        lab = open_lab(LabContext(state=ctx.state))
    except DrillError:
        return []
    now = time.time()
    return [f"drill in force: {target} (broken {now - float(v.get('since', now)):.0f} s ago; "
            f"undo: whathappens lab heal {target})" for target, v in in_force(lab).items()]


# ---------------------------------------------------------------------------------------------
# HTTPS to the lab's front door, as a browser would (cookies, CSRF), one connection each


class _HTTPSTo(http.client.HTTPSConnection):
    """HTTPS to an address with the site's name in SNI and the certificate checked for it."""

    def __init__(self, address: str, port: int, context: ssl.SSLContext,
                 timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self._tls = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=SITE)


@dataclass
class Reply:
    status: int                  # 0: no answer at all
    headers: dict[str, str]      # lower-case names
    body: str
    ms: float
    error: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def timing(self) -> dict[str, float]:
        """Server-Timing entries in ms: app (Django), db, cache …"""
        out: dict[str, float] = {}
        for part in self.header("server-timing").split(","):
            name, _, rest = part.strip().partition(";")
            found = re.search(r"dur=([\d.]+)", rest)
            if name and found:
                out[name] = float(found.group(1))
        return out

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


class Browser:
    def __init__(self, lab: Lab) -> None:
        self.address, self.port = lab.front
        self.context = ssl.create_default_context(cafile=lab.cafile)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None, timeout: float = 45.0) -> Reply:
        sent = {"Host": SITE, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn = _HTTPSTo(self.address, self.port, self.context, timeout)
        start = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            text = resp.read(1 << 20).decode(errors="replace")
            for value in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            # A header sent twice is one list (RFC 9110 §5.3): the edge adds its own
            # Server-Timing entry beside Django's.
            got: dict[str, str] = {}
            for k, v in resp.getheaders():
                got[k.lower()] = f"{got[k.lower()]}, {v}" if k.lower() in got else v
            return Reply(resp.status, got, text, (time.monotonic() - start) * 1000)
        except (OSError, http.client.HTTPException) as e:
            return Reply(0, {}, "", (time.monotonic() - start) * 1000,
                         f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post_contact(self, name: str, headers: dict[str, str] | None = None) -> Reply:
        """GET the form (for the CSRF cookie), then POST it as a browser would."""
        form = self.get(f"/contact/?{_nonce()}")
        token = self.cookies.get("csrftoken", "")
        if form.status != 200 or not token:
            return form
        # TLS ends at the edge; Django still checks the Origin of a POST made over https
        # against the Host it was sent to.
        sent = {"Origin": f"https://{SITE}", "Referer": f"https://{SITE}/contact/",
                **(headers or {})}
        return self.request("POST", "/contact/", headers=sent,
                            form={"name": name, "email": "drill@example.com",
                                  "message": f"sent during a drill by {name}",
                                  "csrfmiddlewaretoken": token})


def _nonce() -> str:
    """A query string of its own, so neither the edge cache nor the micro-cache answers."""
    return f"drill={secrets.token_hex(6)}"


def answered_by(reply: Reply) -> str:
    """Which tier produced this response, read from the headers the tiers add.

    Django sets Server-Timing ``app``; the app node's nginx always adds X-Served-By (also to
    its own error pages); HAProxy names the server in X-Backend-Server only on a server's
    response; HAProxy's and nginx's own error pages tell them apart when nothing else does.
    """
    if reply.status == 0:
        return f"nobody (no answer: {reply.error})"
    node = reply.header("x-served-by")
    if "app" in reply.timing():
        return f"Django on {node or '?'}"
    if node:
        return f"{node}'s nginx (the app node's reverse proxy)"
    if "<center>nginx</center>" in reply.body:
        return "the edge's nginx"
    return "HAProxy (the load balancer)"


def counts(statuses: list[int]) -> str:
    """'200 × 37, 502 × 3' (0 is 'no answer')."""
    c = Counter(statuses)
    return ", ".join(f"{s or 'no answer'} × {n}" for s, n in sorted(c.items())) or "none"


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    return data[min(len(data) - 1, max(0, round(p / 100 * (len(data) - 1))))]


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def latency(replies: list[Reply]) -> str:
    lat = [r.ms for r in replies if r.status]
    return f"p50 {ms(pct(lat, 50))}, p95 {ms(pct(lat, 95))}"


# ---------------------------------------------------------------------------------------------
# Stopping and starting tiers


def kill_tier(lab: Lab, name: str) -> bool:
    """SIGKILL the tier's whole process group, as a crash would; forget its record."""
    rec = process.Record.load(process.record_path(lab.ctx, name))
    if rec is None:
        return False
    was_alive = process.alive(rec.pid)
    if was_alive:
        process.stop_pid(rec.pid, first=signal.SIGKILL)
    process.stop(lab.ctx, name)     # waits for its port to close and removes the record
    return was_alive


def start_tiers(lab: Lab, names: list[str], say: Say) -> list[str]:
    """Start those of ``names`` that are not running, in the order given."""
    started = []
    for name in names:
        if lab.running(name):
            continue
        t0 = time.monotonic()
        process.start(lab.tier(name), lab.ctx)
        started.append(name)
        say(f"  started {name} ({time.monotonic() - t0:.1f} s)")
    return started


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until ``check()`` held, or None after ``timeout``."""
    t0 = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # a probe that fails is simply "not yet"
            pass
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(interval)


def servers_line(states: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "(no answer)"


# ---------------------------------------------------------------------------------------------
# app-N, app-N-gunicorn: a node dies during a load run


@dataclass
class Watch:
    """HAProxy's view of the servers, polled on its admin socket while a drill runs."""

    lab: Lab
    t0: float
    changes: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lb = self.lab.haproxy()
        last: dict[str, str] | None = None
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                states = lb.servers(self.lab.ctx)
                if states != last:
                    self.changes.append((time.monotonic() - self.t0, states))
                    last = states
            self._stop.wait(POLL)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def first(self, server: str, state: str) -> float | None:
        """When ``server`` was first seen in ``state`` (seconds since t0)."""
        for t, states in self.changes:
            if states.get(server) == state:
                return t
        return None


def _lb_lines(lab: Lab, needle: str) -> list[dict[str, Any]]:
    from whathappens.lab.timeline import tail_lines

    out = []
    for line in tail_lines(lab.ctx.log("lb")):
        if needle in line and line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def break_app(lab: Lab, node: str, say: Say, *, only_gunicorn: bool = False,
              requests: int = LOAD_REQUESTS, rate: float = LOAD_RATE,
              concurrency: int = LOAD_CONCURRENCY,
              break_after: float = BREAK_AFTER) -> dict[str, Any]:
    tiers = lab.node_tiers(node)
    victims = [t for t in tiers if t.endswith("-gunicorn")] if only_gunicorn else \
        list(reversed(tiers))   # the node's front door first: HAProxy sees it go at once
    target = victims[0] if only_gunicorn else node
    if not all(lab.running(t) for t in victims):
        raise DrillError(f"{target} is not running (whathappens lab heal {target})")
    lb = lab.haproxy()
    # A lab just brought up can still have a node's first checks failing (its first
    # requests load the app): start from a steady state, every node UP.
    if wait_for(lambda: set(lb.servers(lab.ctx).values()) == {"UP"}, timeout=10) is None:
        raise DrillError(f"HAProxy does not see every app node UP "
                         f"({servers_line(lb.servers(lab.ctx))})")
    address, port = lab.front
    run_id = secrets.token_hex(4)
    what = (f"{node}'s gunicorn is killed (SIGKILL); its nginx stays up" if only_gunicorn
            else f"the app node {node} dies: its nginx and gunicorn are killed (SIGKILL), "
                 f"as in a crash")
    say(f"drill {target}: {what}")
    say(f"  load: {requests} GETs of /p/about/?drill={run_id}-N through the edge "
        f"({address}:{port}), {concurrency} at a time, {rate:g} per second; each URL its "
        f"own, so no cache answers for the app")

    box: dict[str, load.LoadResult] = {}

    def run_load() -> None:
        box["r"] = load.run(address, port, lambda n: f"/p/about/?drill={run_id}-{n}",
                            requests=requests, concurrency=concurrency, rate=rate,
                            cafile=lab.cafile, host=SITE, seconds=requests / rate + 20)

    t0 = time.monotonic()
    loader = threading.Thread(target=run_load, daemon=True)
    watch = Watch(lab, t0)
    watch.start()
    loader.start()
    time.sleep(break_after)
    t_break = time.monotonic() - t0
    for name in victims:
        kill_tier(lab, name)
    t_killed = time.monotonic() - t0
    loader.join(requests / rate + 60)
    watch.stop()
    result = box.get("r")
    if result is None:
        raise DrillError("the load run did not finish")
    t_down = watch.first(node, "DOWN")
    say(f"  killed {', '.join(victims)} {t_break:.2f} s into the run "
        f"(took {1000 * (t_killed - t_break):.0f} ms)")

    # HAProxy's view while it happened
    say("  HAProxy's view of the servers (its admin socket, 'show stat', every "
        f"{POLL * 1000:.0f} ms):")
    for t, states in watch.changes:
        mark = f"{t - t_break:+.2f} s" if t >= t_break else "before"
        say(f"    {mark:>9}  {servers_line(states)}")

    # What the load saw, split at the break and at HAProxy's DOWN
    def phase(lo: float, hi: float) -> list[load.Sample]:
        return [s for s in result.samples if lo <= s.start < hi]

    end = float("inf")
    phases = [("before the break", phase(0, t_break))]
    if t_down is not None:
        phases += [(f"break → DOWN ({t_down - t_break:.2f} s)", phase(t_break, t_down)),
                   ("after DOWN", phase(t_down, end))]
    else:
        phases += [("after the break", phase(t_break, end))]
    say("  what the load saw (by when each request started):")
    for label, samples in phases:
        ok = [s.latency_ms for s in samples if 200 <= s.status < 400]
        failed = [s for s in samples if not 200 <= s.status < 400]
        served = Counter(s.served_by for s in samples if 200 <= s.status < 400)
        served_text = ", ".join(f"{k} {v}" for k, v in sorted(served.items())) or "-"
        say(f"    {label:<24} {len(samples):>4} requests  {len(failed):>3} failed  "
            f"p50 {ms(pct(ok, 50)):>6}  p95 {ms(pct(ok, 95)):>6}  served by {served_text}")
    failed = result.failed
    say(f"  statuses: {counts([s.status for s in result.samples])}")
    for s in failed[:5]:
        why = s.error or f"HTTP {s.status}"
        say(f"    failed at {s.start - t_break:+.2f} s after the break: {why}"
            + (f" (from {s.served_by})" if s.served_by else ""))
    if len(failed) > 5:
        say(f"    … and {len(failed) - 5} more")

    # What HAProxy did about it: its log names retries and the server finally used
    lines = _lb_lines(lab, f"drill={run_id}-")
    retried = [x for x in lines if str(x.get("retries", "0")) not in ("0", "")]
    redispatched = [x for x in retried if str(x.get("retries", "")).startswith("+")]
    if retried:
        say(f"  HAProxy's log: {len(retried)} request(s) retried after a failed attempt on "
            f"{node} ({len(redispatched)} redispatched to another server): "
            f"the client never saw those failures")
    after_down = [s for s in failed if t_down is not None and s.start >= t_down]
    now = lb.servers(lab.ctx)

    # What it means
    say("  what it means:")
    if t_down is not None:
        say(f"    HAProxy marked {node} DOWN {t_down - t_break:.2f} s after the kill: its "
            f"health check (GET /healthz through the node's nginx, every 500 ms) failed "
            f"twice. From then on it sends nothing there.")
    else:
        say(f"    HAProxy never marked {node} DOWN during the run.")
    if only_gunicorn:
        say(f"    The node's nginx stayed up, so HAProxy could connect: each request it sent "
            f"to {node} got nginx's own 502 Bad Gateway (gunicorn refused the connection). "
            f"A 502 is an answer, and HAProxy does not retry answers (retry-on "
            f"conn-failure empty-response): those requests failed until the checks "
            f"caught up. Health checks bound such a window; they do not close it.")
    else:
        say(f"    With the node's nginx gone, HAProxy's connections to {node} were refused "
            f"or cut without an answer: 'retry-on conn-failure empty-response' with "
            f"'option redispatch' replays such a request on the other server, so the "
            f"node's death costs time, not errors.")
    if after_down:
        say(f"    {len(after_down)} request(s) still failed after DOWN: see above.")
    else:
        say("    After the checks took the node out: 0 failed requests.")
    say(f"  now: {servers_line(now)}.  undo: whathappens lab heal {target}")
    _record(lab, target, {"node": node, "stopped": victims})
    return {"target": target, "node": node, "victims": victims, "t_break": t_break,
            "t_down": t_down, "changes": watch.changes, "summary": result.summary(),
            "failed": len(failed), "failed_after_down": len(after_down),
            "failed_statuses": dict(Counter(s.status for s in failed)),
            "retried": len(retried), "servers_after": now}


def heal_app(lab: Lab, node: str, say: Say, *, target: str) -> dict[str, Any]:
    say(f"heal {target}: start {node}'s tiers again, wait until HAProxy sends it traffic")
    t0 = time.monotonic()
    started = start_tiers(lab, lab.node_tiers(node), say)
    lb = lab.haproxy()
    up = wait_for(lambda: lb.servers(lab.ctx).get(node) == "UP", timeout=15)
    t_up = time.monotonic() - t0
    if up is None:
        raise DrillError(f"HAProxy does not see {node} UP 15 s after the start: "
                         f"{servers_line(lb.servers(lab.ctx))}")
    say(f"  HAProxy marked {node} UP {up:.2f} s after its tiers were ready (2 passing checks "
        f"500 ms apart); {t_up:.1f} s in all")
    address, port = lab.front
    run_id = secrets.token_hex(4)
    result = load.run(address, port, lambda n: f"/p/about/?drill={run_id}-{n}", requests=20,
                      concurrency=2, rate=LOAD_RATE, cafile=lab.cafile, host=SITE, seconds=10)
    summary = result.summary()
    served = ", ".join(f"{k} {v}" for k, v in sorted(summary["served_by"].items()))
    say(f"  20 requests after: {counts([s.status for s in result.samples])}; served by "
        f"{served}")
    for name in (node, f"{node}-gunicorn"):     # however the node was broken
        _record(lab, name, None)
    return {"started": started, "up_after": up, "summary": summary,
            "servers": lb.servers(lab.ctx)}


# ---------------------------------------------------------------------------------------------
# db-primary: writes fail, reads go on


def _pg(lab: Lab, tier: str, dbname: str = "site") -> Any:
    from whathappens.lab.tiers.postgres import SUPERUSER, connect

    address, port = lab.topo.endpoint(tier)
    return connect(address, port, dbname, SUPERUSER)


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
# redis: the site serves from the database; sessions and the task queue are gone


def _product_probe(browser: Browser, n: int) -> list[Reply]:
    return [browser.get(f"/product/{1 + i % 3}/?{_nonce()}") for i in range(n)]


def _prefilled(reply: Reply, name: str) -> bool:
    return f'value="{name}"' in reply.body


def break_redis(lab: Lab, say: Say) -> dict[str, Any]:
    if not lab.running("redis"):
        raise DrillError("redis is not running (whathappens lab heal redis)")
    say("drill redis: Redis stops (the cache, the session store and Celery's broker)")
    visitor = Browser(lab)
    first = visitor.post_contact("Ada")          # a session: the form remembers the name
    remembered = _prefilled(visitor.get(f"/contact/?{_nonce()}"), "Ada")
    warm = _product_probe(Browser(lab), 3)       # fill the product cache
    before = _product_probe(Browser(lab), 10)
    t0 = time.monotonic()
    process.stop(lab.ctx, "redis")
    say(f"  stopped in {time.monotonic() - t0:.2f} s")
    after = _product_probe(Browser(lab), 10)
    form = visitor.get(f"/contact/?{_nonce()}")
    home = Browser(lab).get(f"/?{_nonce()}")
    write = visitor.post_contact("Grace")

    def app_ms(replies: list[Reply]) -> str:
        vals = [r.timing().get("app") for r in replies]
        got = [v for v in vals if v is not None]
        return f"Django p50 {ms(pct(got, 50))}"

    say("  product pages (GET /product/N/, cached in Redis for 30 s):")
    say(f"    with Redis:    {counts([r.status for r in before])}; X-Cache-Product "
        f"{dict(Counter(r.header('x-cache-product') for r in before))}; "
        f"{latency(before)}; {app_ms(before)}")
    say(f"    without Redis: {counts([r.status for r in after])}; X-Cache-Product "
        f"{dict(Counter(r.header('x-cache-product') for r in after))}; "
        f"{latency(after)}; {app_ms(after)}")
    say(f"  the home page: {home.status} ({answered_by(home)})")
    say(f"  the session: before, the contact form remembered the visitor's name: "
        f"{'yes' if remembered else 'no'} (first POST: {first.status}); now: "
        f"{form.status}, remembered: {'yes' if _prefilled(form, 'Ada') else 'no'}")
    say(f"  a contact POST: {write.status} from {answered_by(write)}: "
        f"{write.json().get('error') or write.body[:100]}")
    orphan = write.json().get("message_id")
    say("  what it means:")
    say("    The site still serves: the product view catches the Redis error and reads the "
        "database instead (X-Cache-Product: bypass). Each failed Redis call costs a refused "
        "connection (the client is set to give up at once, no retries), and every page "
        "now costs a database query.")
    say("    Sessions live in Redis: Django's cache session backend reads an unreachable "
        "cache as an empty session, so every visitor looks new (logged out, forms "
        "forgotten) while Redis is down.")
    if write.status == 503 and orphan:
        say(f"    The contact message was stored (row {orphan}) but its task could not be "
            f"queued (the broker is Redis): it will not be sent unless something re-queues "
            f"unsent rows. The client got a 503 saying so.")
    say("  undo: whathappens lab heal redis")
    _record(lab, "redis", {"stopped": ["redis"], "orphan": orphan,
                           "session": visitor.cookies.get("sessionid", "")})
    return {"before": before, "after": after, "warm": warm, "home": home, "form": form,
            "remembered_before": remembered, "remembered_after": _prefilled(form, "Ada"),
            "write": write}


def heal_redis(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal redis: start Redis again; check the cache, sessions and the task queue")
    facts = in_force(lab).get("redis", {})
    start_tiers(lab, ["redis"], say)
    browser = Browser(lab)
    replies = [browser.get(f"/product/1/?{_nonce()}") for _ in range(2)]
    say(f"  one product page twice: X-Cache-Product "
        f"{', '.join(r.header('x-cache-product') for r in replies)} (the restarted Redis "
        f"is empty: a miss fills it again)")
    visitor = Browser(lab)
    session = facts.get("session")
    if session:
        visitor.cookies["sessionid"] = str(session)
        form = visitor.get(f"/contact/?{_nonce()}")
        say(f"  the drill's visitor: remembered: {'yes' if _prefilled(form, 'Ada') else 'no'}"
            f" — the lab's Redis keeps nothing on disk, so sessions do not come back: "
            f"everyone was logged out")
    t0 = time.monotonic()
    write = visitor.post_contact("after redis heal")
    sent = None
    if write.status == 202:
        sent = _wait_sent(lab, int(write.json()["message_id"]), timeout=30)
    if sent is not None:
        say(f"  a contact POST: {write.status}; its task ran {sent - t0:.1f} s later (the "
            f"worker is back on the broker)")
    else:
        say(f"  a contact POST: {write.status}; its task did not run within 30 s")
    orphan = facts.get("orphan")
    if orphan:
        say(f"  the message stored while Redis was down (row {orphan}) is still unsent: "
            f"{'yes' if _unsent(lab, int(orphan)) else 'no'}")
    _record(lab, "redis", None)
    return {"products": replies, "write": write, "sent": sent is not None}


def _message(lab: Lab, message_id: int) -> tuple[Any, ...] | None:
    with _pg(lab, "db-primary") as conn:
        row = conn.execute("SELECT attempts, sent_at, worker FROM contact_messages "
                           "WHERE id = %s", (message_id,)).fetchone()
    return tuple(row) if row is not None else None


def _unsent(lab: Lab, message_id: int) -> bool:
    row = _message(lab, message_id)
    return row is not None and row[1] is None


def _wait_sent(lab: Lab, message_id: int, timeout: float) -> float | None:
    """time.monotonic() when the message got its sent_at, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _message(lab, message_id)
        if row is not None and row[1] is not None:
            return time.monotonic()
        time.sleep(0.05)
    return None


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
        return [sys.executable, "-m", "whathappens.lab.drills", "hold-lock", self.address,
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
    """The holder's body (``python -m whathappens.lab.drills hold-lock ADDR PORT SECONDS``)."""
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


def _chain(http: Span) -> list[Span]:
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


def _http_span(journey: Journey) -> Span | None:
    spans = [s for s in journey.all_spans() if s.name == "http"]
    return spans[-1] if spans else None


def _span_status(span: Span) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        return int(span.attrs.get("status"))  # type: ignore[arg-type]
    return None


def _last_error_line(path: Path, needle: str) -> str | None:
    from whathappens.lab.timeline import tail_lines

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
    status = _span_status(http) if http is not None else None
    took = (http.duration_ns or 0) / 1e9 if http is not None else 0.0
    say(f"    the journey: HTTP {status} after {took:.2f} s" +
        (f" ({journey.error.message})" if journey.error is not None else ""))
    chain = _chain(http) if http is not None else []
    say("    inside, from the tiers' logs (same clock):")
    for span in chain:
        a = span.attrs
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
    origin_tier = str(origin.attrs.get("tier")) if origin is not None else "?"
    evidence = None
    if origin is not None and origin.name == "server.app":
        evidence = _last_error_line(lab.ctx.log(origin_tier), "upstream timed out")
    elif origin is not None and origin.name == "server.edge":
        evidence = _last_error_line(lab.ctx.log("edge"), "upstream timed out")
    say(f"  where it surfaced: {origin_tier} produced the {status}"
        + (f" after {(origin.duration_ns or 0) / 1e9:.2f} s" if origin is not None else ""))
    if evidence:
        say(f"    its error log: {evidence.split('] ', 1)[-1][:240]}")
    say("  why that tier, and why that status:")
    for line in _explain_timeout(origin, status):
        say(f"    {line}")
    trace_id = journey.facts.get("trace_id")
    say("  undo: whathappens lab heal slow-db")
    _record(lab, "slow-db", {"holder": HOLDER, "trace_id": trace_id, "path": path})
    return {"status": status, "seconds": took, "origin": origin_tier,
            "origin_kind": origin.name if origin is not None else None,
            "chain": [(s.name, s.attrs.get("tier"), _span_status(s)) for s in chain],
            "product": product, "trace_id": trace_id, "journey": journey}


def _explain_timeout(origin: Span | None, status: int | None) -> list[str]:
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
    from whathappens.lab.timeline import _json_lines

    deadline = time.monotonic() + timeout
    while True:
        for node in lab.app_nodes():
            gunicorn = next(t for t in lab.node_tiers(node) if t.endswith("-gunicorn"))
            for item in _json_lines(lab.ctx.log(gunicorn).with_name(
                    f"{gunicorn}.spans.jsonl"), trace_id):
                if item.get("trace_id") == trace_id and item.get("kind") == "django":
                    return item
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# worker: the pool process killed mid-task


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _log_since(path: Path, offset: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(256 * 1024).decode(errors="replace").splitlines()
    except OSError:
        return []


def _worker_log(lab: Lab, offset: int, say: Say) -> None:
    """The worker's own lines since ``offset`` that tell the story (not its tracebacks)."""
    interesting = ("WorkerLostError", "exited with", "Restoring", "received", "succeeded")
    for line in _log_since(lab.ctx.log("worker"), offset):
        if line.startswith("[") and any(k in line for k in interesting):
            say(f"    worker log: {line.strip()[:160]}")


def _task_in_flight(lab: Lab, say: Say, delay: float) -> tuple[int, float, int]:
    """POST the contact form with a slow task; wait until the task runs.

    Returns (message id, time.monotonic() of the POST, the worker log's size before)."""
    log = lab.ctx.log("worker")
    offset = log.stat().st_size if log.exists() else 0
    t0 = time.monotonic()
    post = Browser(lab).post_contact("worker drill", headers={"X-Lab-Task-Delay": f"{delay:g}"})
    if post.status != 202:
        raise DrillError(f"the contact POST answered {post.status}: {post.body[:200]}")
    message_id = int(post.json()["message_id"])
    # The task counts its attempts in the row as it starts.
    started = wait_for(lambda: (_message(lab, message_id) or (0,))[0] >= 1, timeout=15,
                       interval=0.02)
    if started is None:
        raise DrillError("the task did not start within 15 s")
    say(f"  POST /contact/: 202 (message {message_id}); its task started "
        f"{time.monotonic() - t0:.2f} s later")
    return message_id, t0, offset


def break_worker(lab: Lab, say: Say, *, delay: float = TASK_DELAY,
                 kill_after: float = KILL_AFTER) -> dict[str, Any]:
    main_pid = lab.pid("worker")
    if main_pid is None:
        raise DrillError("the worker is not running (whathappens lab heal worker)")
    say(f"drill worker: a contact POST whose task takes {delay:g} s (X-Lab-Task-Delay); "
        f"the Celery pool process running it is killed (SIGKILL) {kill_after:g} s in")
    message_id, t0, offset = _task_in_flight(lab, say, delay)
    time.sleep(kill_after)
    victims = _children(main_pid)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic() - t0
    sent = _wait_sent(lab, message_id, timeout=30)
    row = _message(lab, message_id)
    attempts = row[0] if row else None
    t_done = (sent - t0) if sent is not None else None
    new_children = _children(main_pid)
    say(f"  killed pool process {', '.join(map(str, victims)) or '(none found)'} at "
        f"{t_kill:.2f} s; the worker's main process (pid {main_pid}) "
        f"{'lives' if process.alive(main_pid) else 'died'}, its pool now "
        f"{', '.join(map(str, new_children)) or '(none)'}")
    _worker_log(lab, offset, say)
    if t_done is not None:
        say(f"  the message was marked sent {t_done:.2f} s after the POST, "
            f"{t_done - t_kill:.2f} s after the kill; the task ran {attempts} times")
    else:
        say("  the message was NOT marked sent within 30 s")
    say("  what it means:")
    say("    The task is acknowledged late (acks_late) and rejected back to the queue if "
        "the process running it dies (reject_on_worker_lost): the main process saw its "
        "pool process die, put the task back and forked a new one, which ran it again at "
        "once. Nothing was lost; the task ran twice, so it must be safe to run twice (it "
        "marks the row sent only once).")
    say("    When the whole worker dies, nobody is left to put the task back: "
        "'lab break worker-all' measures that case.")
    return {"message_id": message_id, "victims": victims, "t_kill": t_kill,
            "t_done": t_done, "attempts": attempts, "new_children": new_children}


def _unacked(lab: Lab) -> int | None:
    """Messages delivered but not acknowledged, in the broker (kombu's 'unacked' hash)."""
    try:
        import redis
    except ImportError:
        return None
    address, port = lab.topo.endpoint("redis")
    try:
        client = redis.Redis(host=address, port=port, db=1, socket_timeout=1)
        return int(client.hlen("unacked"))
    except redis.RedisError:
        return None


def _broker_options() -> dict[str, Any]:
    """The broker transport options the worker runs with (the site's settings: constants,
    read without setting Django up)."""
    from whathappens.lab.site import settings as site_settings

    return dict(site_settings.CELERY_BROKER_TRANSPORT_OPTIONS)


def break_worker_all(lab: Lab, say: Say, *, delay: float = TASK_DELAY,
                     kill_after: float = KILL_AFTER) -> dict[str, Any]:
    if lab.pid("worker") is None:
        raise DrillError("the worker is not running (whathappens lab heal worker-all)")
    say(f"drill worker-all: a contact POST whose task takes {delay:g} s; the whole Celery "
        f"worker (main process and pool) is killed (SIGKILL) {kill_after:g} s in, as when "
        f"its machine dies, and stays down until 'lab heal worker-all'")
    message_id, t0, offset = _task_in_flight(lab, say, delay)
    time.sleep(kill_after)
    kill_tier(lab, "worker")
    t_kill = time.monotonic() - t0
    unacked = _unacked(lab)
    say(f"  killed the worker at {t_kill:.2f} s; the broker holds {unacked} delivered but "
        f"unacknowledged message(s) (Redis db 1, hash 'unacked')")
    options = _broker_options()
    say(f"  the broker's transport options: {options or '(unknown)'}")
    say("  what it means:")
    say("    acks_late kept the message: it is acknowledged only after the task ran, so "
        "the broker still has it. But no process is left to reject it back to the "
        "queue: it comes back only when a running worker sweeps for messages "
        "unacknowledged for longer than the visibility timeout (lab heal worker-all "
        "restarts the worker and measures when the task completes).")
    say("  undo: whathappens lab heal worker-all")
    _record(lab, "worker-all", {"message_id": message_id, "killed": time.time(),
                                "log_offset": offset})
    return {"message_id": message_id, "unacked": unacked, "options": options}


def heal_worker_all(lab: Lab, say: Say, *, wait: float = 180.0) -> dict[str, Any]:
    say("heal worker-all: start the worker again; wait for the task that was running when "
        "it died")
    facts = in_force(lab).get("worker-all", {})
    start_tiers(lab, ["worker"], say)
    restarted = time.time()
    message_id = facts.get("message_id")
    if message_id is None:
        _record(lab, "worker-all", None)
        return {}
    sent = _wait_sent(lab, int(message_id), timeout=wait)
    done = time.time()
    row = _message(lab, int(message_id))
    _worker_log(lab, int(facts.get("log_offset", 0)), say)
    killed = float(facts.get("killed", restarted))
    if sent is not None:
        say(f"  message {message_id} was marked sent {done - killed:.1f} s after the kill, "
            f"{done - restarted:.1f} s after the restart; the task ran {row[0] if row else '?'} "
            f"times")
        visibility = _broker_options().get("visibility_timeout")
        say(f"    The worker looks for messages left unacknowledged longer than the "
            f"visibility timeout ({visibility} s) when it starts, then only every "
            f"unacked_restore_interval × unacked_restore_throttle seconds (kombu's "
            f"defaults: 10 × 10). It restarted {restarted - killed:.1f} s after the kill"
            + (", before the message was old enough, so the sweep at start-up left it and "
               "the next one came much later." if visibility is not None
               and restarted - killed < float(visibility) else "."))
    else:
        say(f"  message {message_id} was NOT marked sent within {wait:.0f} s of the restart")
    _record(lab, "worker-all", None)
    return {"sent": sent is not None, "after_kill": done - killed,
            "after_restart": done - restarted}


def heal_worker(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal worker: make sure the Celery worker runs")
    if lab.running("worker"):
        say("  it runs (a killed pool process is replaced by the worker itself)")
        started: list[str] = []
    else:
        started = start_tiers(lab, ["worker"], say)
    _record(lab, "worker", None)
    return {"started": started}


# ---------------------------------------------------------------------------------------------
# lab break / lab heal


TARGETS = ("app-N", "app-N-gunicorn", "db-primary", "redis", "slow-db", "worker",
           "worker-all")


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
    }
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
    try:
        do(ctx, action, target)
    except KeyError:
        print(f"whathappens lab {action}: unknown target {target!r}; targets: "
              f"{', '.join(TARGETS)} (N: an app node's number)", file=sys.stderr)
        return EXIT_USAGE
    except (DrillError, LabError, OSError) as err:
        print(f"whathappens lab {action} {target}: {err}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _cli(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "hold-lock":
        return hold_lock(argv[1], int(argv[2]), float(argv[3]))
    print("usage: python -m whathappens.lab.drills hold-lock ADDRESS PORT SECONDS",
          file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))

