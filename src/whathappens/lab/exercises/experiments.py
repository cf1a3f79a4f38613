"""``whathappens lab experiment NAME``: the articles' comparisons, measured on the running lab.

Three experiments, each a bounded load run per setting against a production lab that is up:

``lb-algorithms``
    app-2 is made slow on purpose (its gunicorn restarted with ``WHATHAPPENS_THINK_MS``: the
    site sleeps that long in every request), then HAProxy is restarted with each balance
    algorithm in turn (roundrobin, leastconn, source) and N requests go through the edge,
    each to a URL of its own so that no cache answers. Latency percentiles per algorithm,
    and the share of requests each app node served.
``pooling``
    app-1's gunicorn runs four settings (restarted for each but the lab's own): straight to
    PostgreSQL or through PgBouncer, each with a new connection per request
    (``WHATHAPPENS_DB_CONN_MAX_AGE=0``) or persistent connections. N uncached requests to
    app-1's nginx per setting; the ``dbconnect`` entry of ``Server-Timing`` says which
    requests opened a connection and what it cost.
``microcache``
    One hot page on app-1's nginx, asked N times with and without the 1 s micro-cache. The
    toggle is the one nginx already honours: a ``sessionid`` cookie bypasses the cache (as
    for a logged-in user), so nothing is reconfigured. Requests per second and latency.

``retry-storm``
    Many clients retry a dependency that is coming back, with exponential backoff without
    and with full jitter; the dependency stamps every arrival (``retry_storm.py``). The
    dependency is a stand-in server on loopback, not a lab tier, and says so.

Every experiment puts the lab back as it found it (app nodes' normal environment, the
original balance algorithm) in a ``finally``, so an error or Ctrl-C restores it too. While
one runs, ``lab.json`` says what is changed: the algorithm in use, and an ``env_overrides``
entry on a restarted tier.

Each writes ``<out>/<name>.json`` (settings, summaries and every request's numbers) and
``<out>/<name>.svg``, and prints a table. Load stays on loopback, bounded in count
(``--requests``, at most ``load.MAX_REQUESTS``) and time (``RUN_SECONDS`` per setting).

The app nodes' nginx limits each client address to 50 requests/s (burst 100). A load run
from one address would measure that limit instead of the tiers, so each of the C concurrent
workers is a client of its own, on an address of the lab's client range (``client_sources``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whathappens.errors import EXIT_INTERRUPTED, EXIT_LAB_FAILED, EXIT_USAGE
from whathappens.lab import process
from whathappens.lab.exercises import load, loadtools, plot, throughput
from whathappens.lab.exercises.https import server_timing
from whathappens.lab.lab import status
from whathappens.lab.running import Lab, LabNotRunning, open_lab
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.topology import SITE, Topology

NAMES = ("lb-algorithms", "pooling", "microcache", "retry-storm", "mtls")
# Which client drives each experiment, and why (printed with its method).
CLIENTS = {
    "lb-algorithms": "the Python client (load.py): the question is per request (which node "
                     "served it, how long it waited), which only a client that keeps every "
                     "response can answer; a few hundred req/s, far below its limit",
    "pooling": "the Python client (load.py): each response's Server-Timing says whether it "
               "opened a database connection; wrk and h2load keep no headers",
    "microcache": "the Python client (load.py) for the micro-cache rows (each response's "
                  "X-Microcache, a client address per worker for the app node's 50 r/s "
                  "per-client limit); for the throughput question the same hot page at the "
                  "edge from the Python client, wrk and h2load side by side (throughput.py)",
    "retry-storm": "its own clients (retry_storm.py): the question is when each retry is "
                   "sent, not how many requests per second a server takes",
    "mtls": "the Python client (load.py): the question is per request (each hop's new or "
            "resumed connection and its TLS time, from the tiers' logs), not throughput",
}
ALGORITHMS = ("roundrobin", "leastconn", "source")
THINK_MS = 100            # app-2's extra time per request: a few times a normal request
RUN_SECONDS = 20.0        # one setting's load run stops here whatever --requests says
UP_TIMEOUT = 20.0         # HAProxy must see both app nodes UP again within this
MAX_CONCURRENCY = 64
SLOW_NODE = "app-2"
SLOW_TIER = "app-2-gunicorn"
POOL_TIER = "app-1-gunicorn"
CACHE_TIER = "app-1-nginx"
BYPASS_COOKIE = "sessionid=lab-experiment"
# These load an app node's nginx straight, over plain HTTP: on a lab up --mtls that node
# refuses them (no client certificate), as it should.
DIRECT_TO_APP = ("pooling", "microcache")


class ExperimentError(Exception):
    """The lab is not in a state the experiment can use, or did not come back."""


# -- the lab, as an experiment sees it -------------------------------------------------------


class Adjusted(Tier):
    """A tier exactly as built from the topology, plus environment variables: how one tier
    is restarted with a different setting without touching its module."""

    def __init__(self, base: Tier, extra_env: dict[str, str]) -> None:
        self.base, self.extra_env = base, dict(extra_env)
        self.name, self.host, self.role = base.name, base.host, base.role
        self.address, self.port, self.user = base.address, base.port, base.user
        self.depends, self.stop_signal = base.depends, base.stop_signal

    def prepare(self, ctx: LabContext) -> None:
        self.base.prepare(ctx)

    def command(self, ctx: LabContext) -> list[str]:
        return self.base.command(ctx)

    def env(self, ctx: LabContext) -> dict[str, str]:
        return {**self.base.env(ctx), **self.extra_env}

    def ready(self, ctx: LabContext) -> bool:
        return self.base.ready(ctx)

    def after_ready(self, ctx: LabContext) -> None:
        self.base.after_ready(ctx)


@dataclass
class Bench:
    """The running production lab on the bench: restarts with other settings, load runs."""

    lab: Lab
    requests: int
    concurrency: int
    log: Callable[[str], None] = print
    changed: dict[str, dict[str, str]] = field(default_factory=dict)   # tier → env overrides
    # Tiers stopped and not yet seen ready again: interrupted there, they need a restart too.
    pending: set[str] = field(default_factory=set)

    @property
    def ctx(self) -> LabContext:
        return self.lab.ctx

    @property
    def topo(self) -> Topology:
        return self.lab.topo

    def restart(self, name: str, env: dict[str, str] | None = None, *,
                shown: str = "") -> None:
        """Stop tier ``name`` and start it again, with ``env`` added to its environment
        (None: as the topology builds it). ``lab.json`` records the overrides."""
        tier: Tier = self.lab.tier(name)
        if env:
            tier = Adjusted(tier, env)
        started = time.monotonic()
        self.pending.add(name)
        process.stop(self.ctx, name)
        self._note_overrides(name, env or {})
        process.start(tier, self.ctx)
        self.pending.discard(name)
        shown = (shown or " ".join(f"{k}={v}" for k, v in (env or {}).items())
                 or "its normal settings")
        self.log(f"  restarted {name} with {shown} ({time.monotonic() - started:.1f} s)")

    def set_algorithm(self, algorithm: str) -> None:
        """HAProxy restarted with ``algorithm`` (its config is written on every start)."""
        self.ctx.algorithm = self.lab.manifest.algorithm = algorithm
        self.lab.save_manifest()
        self.restart(self.lab.haproxy().name, shown=f"balance {algorithm}")
        self.wait_servers_up()

    def restore_tier(self, name: str) -> None:
        """``name`` as the topology builds it, if an experiment changed or stopped it."""
        if name in self.changed or name in self.pending:
            self.restart(name)

    def restore_algorithm(self, original: str) -> None:
        if self.ctx.algorithm != original or self.lab.haproxy().name in self.pending:
            self.set_algorithm(original)

    def set_mtls(self, mtls: bool, reuse: bool) -> None:
        """The tiers on the encrypted path restarted with configurations for ``mtls``
        (lab up --mtls) and ``reuse`` (connections to upstreams kept open), lab.json saying
        which; see mtls_cost.py."""
        from whathappens.lab.exercises.mtls_cost import FRONT_KINDS

        if (self.ctx.mtls, self.ctx.upstream_reuse) == (mtls, reuse):
            return
        self.ctx.mtls = self.lab.manifest.mtls = mtls
        self.ctx.upstream_reuse = reuse
        self.lab.save_manifest()
        shown = f"{'mTLS' if mtls else 'plain HTTP'}, reuse {'on' if reuse else 'off'}"
        for kind in FRONT_KINDS:
            for spec in self.topo.of_kind(kind):
                self.restart(spec.name, shown=shown)
        self.wait_servers_up()

    def put_back(self, *steps: Callable[[], None]) -> None:
        """Run every step, Ctrl-C held off; one that fails does not stop the others (the
        first failure is raised once all were tried)."""
        errors: list[Exception] = []
        with shielded():
            for step in steps:
                try:
                    step()
                except Exception as err:
                    errors.append(err)
        if errors:
            raise errors[0]

    def wait_servers_up(self, timeout: float = UP_TIMEOUT) -> None:
        """Until HAProxy's health checks count every app node UP (rise 2: about 1 s)."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                states = self.lab.haproxy().servers(self.ctx)
                if states and all(s == "UP" for s in states.values()):
                    return
            time.sleep(0.1)
        raise ExperimentError(f"HAProxy does not see every app node UP: {states}")

    def _note_overrides(self, name: str, env: dict[str, str]) -> None:
        entry = self.lab.manifest.tier(name)
        if entry is not None:
            entry.env_overrides = dict(env)
            self.lab.save_manifest()
        if env:
            self.changed[name] = env
        else:
            self.changed.pop(name, None)

    def client_sources(self) -> tuple[str, ...]:
        """One loopback address per worker, outside every lab host's range (127.S.250.k)."""
        return tuple(f"127.{self.ctx.subnet}.250.{k + 1}" for k in range(self.concurrency))

    def run(self, tier: str, path: str | Callable[[int], str], *, tls: bool = False,
            headers: dict[str, str] | None = None, capture: tuple[str, ...] = (),
            requests: int | None = None) -> load.LoadResult:
        address, port = self.lab.endpoint(tier)
        return load.run(address, port, path, requests=requests or self.requests,
                        concurrency=self.concurrency, seconds=RUN_SECONDS,
                        cafile=self.lab.cafile if tls else None, host=SITE,
                        tls=tls, headers=headers, sources=self.client_sources(),
                        capture=capture)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ctrl-C held off while the lab is put back (a half-restored lab is worse than a wait)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# -- results -----------------------------------------------------------------------------------


@dataclass
class Setting:
    """One setting's run: what was set, and what the load run saw."""

    name: str
    result: load.LoadResult
    facts: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {**self.result.summary(), **self.facts}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary(),
                "samples": [{"start_s": round(s.start, 6), "latency_ms": round(s.latency_ms, 3),
                             "status": s.status, "served_by": s.served_by,
                             **({"headers": s.headers} if s.headers else {}),
                             **({"error": s.error} if s.error else {})}
                            for s in self.result.samples]}


@dataclass
class Outcome:
    name: str
    title: str                      # what was measured, and how (the plot's title)
    method: str                     # the plot's subtitle and the table's heading
    table: list[str]
    settings: list[Setting]
    svg: str
    extra: dict[str, Any] = field(default_factory=dict)


def ms(value: float | None, width: int = 8) -> str:
    return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}}"


def table(columns: list[tuple[str, int]], rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned numbers, a rule under the heading."""
    def line(cells: list[str]) -> str:
        out = [f"{cells[0]:<{columns[0][1]}}"]
        out += [f"{c:>{w}}" for c, (_, w) in zip(cells[1:], columns[1:], strict=True)]
        return "  ".join(out).rstrip()

    head = line([c for c, _ in columns])
    return [head, "-" * len(head), *(line(r) for r in rows)]


def speed_cells(setting: Setting, width: int = 8) -> list[str]:
    """A table row's first cells: the setting, req/s, p50 and p95 latency."""
    summ = setting.summary()
    return [setting.name, f"{summ['rps'] or 0:.0f}", ms(summ["p50_ms"], width),
            ms(summ["p95_ms"], width)]


def failure_notes(settings: list[Setting]) -> list[str]:
    """A line under the table when requests failed, saying how (429 has its own cause)."""
    notes = []
    for s in settings:
        statuses = Counter(x.status for x in s.result.failed)
        if statuses:
            shown = ", ".join(f"{n} × {'no answer' if code == 0 else code}"
                              for code, n in sorted(statuses.items()))
            notes.append(f"failed in {s.name}: {shown}")
    if any(x.status == 429 for s in settings for x in s.result.failed):
        notes.append("429: the app node's per-client rate limit (50 r/s, burst 100 per client "
                     "address) refused them; fewer --requests or more --concurrency (clients)")
    return notes


def unique_paths(label: str) -> Callable[[int], str]:
    """Request n's path: the home page with a query string no earlier request had, so no
    cache on the way (edge, micro-cache) can answer it."""
    run = f"{time.time_ns():x}"
    return lambda n: f"/?{label}={run}-{n}"


# -- lb-algorithms ----------------------------------------------------------------------------


def lb_algorithms(bench: Bench) -> Outcome:
    original = bench.ctx.algorithm
    settings: list[Setting] = []
    try:
        bench.restart(SLOW_TIER, {"WHATHAPPENS_THINK_MS": str(THINK_MS)})
        bench.wait_servers_up()
        for algorithm in ALGORITHMS:
            if bench.ctx.algorithm != algorithm:
                bench.set_algorithm(algorithm)
            # A URL of its own per request: neither the edge cache nor the micro-cache may
            # answer, or the balancer would not be asked at all.
            result = bench.run("edge", unique_paths(f"lb-{algorithm}"), tls=True)
            served = Counter(s.served_by for s in result.ok)
            settings.append(Setting(algorithm, result, {
                "share_pct": {node: round(100 * served.get(node, 0) / max(len(result.ok), 1),
                                          1) for node in ("app-1", "app-2")}}))
            bench.log(f"  {algorithm}: {len(result.samples)} requests in "
                    f"{result.seconds:.1f} s")
    finally:
        bench.put_back(lambda: bench.restore_tier(SLOW_TIER),
                     lambda: bench.restore_algorithm(original), bench.wait_servers_up)
    edge = bench.topo.address("edge")
    rows = []
    for s in settings:
        summ = s.summary()
        rows.append([*speed_cells(s), ms(summ["max_ms"]), ms(summ["mean_ms"]),
                     str(summ["failed"]),
                     f"{summ['share_pct']['app-1']:.0f} %", f"{summ['share_pct']['app-2']:.0f} %"])
    method = (f"{bench.requests} GETs per algorithm, {bench.concurrency} at a time, through the "
              f"edge (HTTPS) → HAProxy → app nodes, each to a URL of its own (no cache "
              f"answers); app-2 sleeps {THINK_MS} ms in every request "
              f"(WHATHAPPENS_THINK_MS). Latency measured by the client, request sent → "
              f"response read.")
    lines = table([("algorithm", 11), ("req/s", 6), ("p50 ms", 8), ("p95 ms", 8),
                   ("max ms", 8), ("mean ms", 8), ("failed", 6), ("app-1", 6),
                   ("app-2 (slow)", 12)], rows)
    lines.append(f"source hashes the address HAProxy sees: behind the edge that is the "
                 f"edge's own ({edge}), so one server takes everything.")
    lines += failure_notes(settings)
    names = [s.name for s in settings]
    svg = plot.figure(
        f"HAProxy balance algorithms with one slow app node (app-2 +{THINK_MS} ms)",
        method,
        [plot.BarPanel("Latency per algorithm", "latency (ms)", names,
                       [plot.Series(k, [s.summary()[f"{k}_ms"] for s in settings],
                                    color=plot.PERCENTILE_COLORS[k])
                        for k in ("p50", "p95", "max")], fmt="{:.0f}"),
         plot.BarPanel("Who served the requests", "share of requests (%)", names,
                       [plot.Series(node + (" (slow)" if node == SLOW_NODE else ""),
                                    [s.summary()["share_pct"][node] for s in settings],
                                    color=color)
                        for node, color in (("app-1", "#009E73"), ("app-2", "#D55E00"))],
                       stacked=True, fmt="{:.0f} %", y_max=100),
         plot.LinePanel("Latency distribution", "latency (ms)",
                        "requests answered within (%)",
                        [plot.Series(s.name, [], plot.cdf([x.latency_ms for x in s.result.ok]))
                         for s in settings], y_max=100)])
    return Outcome("lb-algorithms", "HAProxy balance algorithms, one slow backend", method,
                   lines, settings, svg, {"think_ms": THINK_MS, "slow_node": SLOW_NODE,
                                          "original_algorithm": original})


# -- pooling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolSetting:
    name: str
    direct: bool           # straight to PostgreSQL (else through PgBouncer)
    persistent: bool       # CONN_MAX_AGE 60 (else 0: a new connection per request)


POOL_SETTINGS = (
    PoolSetting("direct, new conn", direct=True, persistent=False),
    PoolSetting("PgBouncer, new conn", direct=False, persistent=False),
    PoolSetting("direct, persistent", direct=True, persistent=True),
    PoolSetting("PgBouncer, persistent", direct=False, persistent=True),
)


def pool_env(bench: Bench, setting: PoolSetting) -> dict[str, str]:
    env = {"WHATHAPPENS_DB_CONN_MAX_AGE": "60" if setting.persistent else "0"}
    if setting.direct:
        primary = bench.lab.endpoint("db-primary")
        replica = bench.lab.endpoint("db-replica")
        env.update({"WHATHAPPENS_DB_HOST": primary[0], "WHATHAPPENS_DB_PORT": str(primary[1]),
                    "WHATHAPPENS_DB_NAME": "site",
                    "WHATHAPPENS_DB_REPLICA_HOST": replica[0],
                    "WHATHAPPENS_DB_REPLICA_PORT": str(replica[1]),
                    "WHATHAPPENS_DB_REPLICA_NAME": "site"})
    return env


def timing_facts(result: load.LoadResult) -> dict[str, Any]:
    """What Server-Timing says about the successful requests: who opened a connection, and
    where the mean request's time went."""
    ok = result.ok
    connect, sql, app = [], [], []
    opened = 0
    for s in ok:
        timing = server_timing(s.headers.get("server-timing", ""))
        c = timing.get("dbconnect", 0.0)
        opened += c > 0
        connect.append(c)
        sql.append(timing.get("db", 0.0))
        app.append(timing.get("app", 0.0))
    n = max(len(ok), 1)
    total = sum(s.latency_ms for s in ok)
    paid = [c for c in connect if c > 0]
    return {
        "opened_connection": opened,
        "connect_ms_when_opened": statistics.fmean(paid) if paid else None,
        "connect_share_pct": round(100 * sum(connect) / total, 1) if total else None,
        # The mean request, split: connect + SQL + the rest of Django + outside Django
        # (nginx, gunicorn, the client and the network between them).
        "mean_connect_ms": sum(connect) / n,
        "mean_sql_ms": sum(sql) / n,
        "mean_django_other_ms": max(0.0, (sum(app) - sum(connect) - sum(sql)) / n),
        "mean_outside_django_ms": max(0.0, (total - sum(app)) / n),
    }


def pooling(bench: Bench) -> Outcome:
    settings: list[Setting] = []
    warm = 2 * bench.concurrency
    # What app-1 runs already (PgBouncer, persistent) first: one restart fewer.
    order = sorted(POOL_SETTINGS, key=lambda p: p.direct or not p.persistent)
    try:
        for i, setting in enumerate(order):
            env = pool_env(bench, setting)
            if i > 0:
                bench.restart(POOL_TIER, env, shown=setting.name)
            # Warm-up, not counted: a freshly started worker loads templates and, with
            # persistent connections, opens one per thread: a steady state is measured.
            bench.run(CACHE_TIER, unique_paths("warm"), requests=warm)
            result = bench.run(CACHE_TIER, unique_paths("pool"),
                             capture=("server-timing", "x-microcache"))
            settings.append(Setting(setting.name, result, {
                "direct": setting.direct, "persistent": setting.persistent,
                "env": env, **timing_facts(result)}))
            bench.log(f"  {setting.name}: {len(result.samples)} requests in "
                    f"{result.seconds:.1f} s")
    finally:
        bench.put_back(lambda: bench.restore_tier(POOL_TIER), bench.wait_servers_up)
    settings.sort(key=lambda s: [p.name for p in POOL_SETTINGS].index(s.name))
    rows = []
    for s in settings:
        summ = s.summary()
        rows.append([*speed_cells(s), f"{summ['opened_connection']}/{len(s.result.ok)}",
                     ms(summ["connect_ms_when_opened"], 10),
                     f"{summ['connect_share_pct'] or 0:.1f} %", str(summ["failed"])])
    method = (f"{bench.requests} GETs of the home page (2 SQL queries on the replica) per "
              f"setting, {bench.concurrency} at a time, to app-1's nginx with a URL of its own "
              f"each (no micro-cache); gunicorn restarted per setting, {warm} warm-up "
              f"requests not counted. Connect times from the site's Server-Timing "
              f"(dbconnect); latency measured by the client.")
    lines = table([("setting", 22), ("req/s", 6), ("p50 ms", 8), ("p95 ms", 8),
                   ("new conns", 9), ("connect ms", 10), ("of time", 8), ("failed", 6)], rows)
    lines.append("new conns: requests that opened a database connection; connect ms: its mean "
                 "cost when one did; of time: connecting's share of all request time.")
    lines += failure_notes(settings)
    names = [s.name.replace(", ", "\n") for s in settings]   # two-line group labels
    svg = plot.figure(
        "A new PostgreSQL connection per request vs PgBouncer and persistent connections",
        method,
        [plot.BarPanel("Request latency", "latency (ms)", names,
                       [plot.Series(k, [s.summary()[f"{k}_ms"] for s in settings],
                                    color=plot.PERCENTILE_COLORS[k])
                        for k in ("p50", "p95")], width=480),
         plot.BarPanel("Where the mean request's time goes", "mean time per request (ms)",
                       names,
                       [plot.Series(label, [s.summary()[key] for s in settings], color=color)
                        for label, key, color in (
                            ("DB connect", "mean_connect_ms", "#D55E00"),
                            ("SQL", "mean_sql_ms", "#0072B2"),
                            ("rest of Django", "mean_django_other_ms", "#56B4E9"),
                            ("outside Django", "mean_outside_django_ms", "#999999"))],
                       stacked=True, width=480)])
    return Outcome("pooling", "Connection per request vs pooling", method, lines, settings,
                   svg)


# -- microcache -------------------------------------------------------------------------------


def microcache(bench: Bench) -> Outcome:
    settings: list[Setting] = []
    reached = ("MISS", "EXPIRED", "BYPASS", "REVALIDATED")
    for name, headers in (("micro-cache", {}), ("no micro-cache", {"Cookie": BYPASS_COOKIE})):
        # One request first: a hot page is one already cached. (From cold, C requests at
        # once would all wait on proxy_cache_lock, which nginx polls every 500 ms.)
        bench.run(CACHE_TIER, "/", headers=headers, requests=1)
        result = bench.run(CACHE_TIER, "/", headers=headers, capture=("x-microcache",))
        statuses = Counter(s.headers["x-microcache"] for s in result.samples
                           if s.headers.get("x-microcache"))
        settings.append(Setting(name, result, {
            "cache_status": dict(statuses),
            "reached_django": sum(statuses.get(k, 0) for k in reached)}))
        bench.log(f"  {name}: {len(result.samples)} requests in {result.seconds:.2f} s")
    rows = []
    for s in settings:
        summ = s.summary()
        shown = " ".join(f"{k} {v}" for k, v in sorted(summ["cache_status"].items()))
        rows.append([*speed_cells(s, 7), ms(summ["max_ms"], 7),
                     f"{summ['reached_django']}/{summ['requests']}", str(summ["failed"]),
                     shown])
    method = (f"{bench.requests} GETs of the home page per setting, {bench.concurrency} at a time "
              f"(each worker a client address of its own), straight to app-1's nginx; "
              f"without the micro-cache = with a sessionid cookie, which nginx never serves "
              f"from or stores in the cache. req/s = requests / wall time of the run.")
    lines = table([("setting", 15), ("req/s", 6), ("p50 ms", 7), ("p95 ms", 7), ("max ms", 7),
                   ("to Django", 9), ("failed", 6), ("X-Microcache", 12)], rows)
    lines.append("to Django: MISS, EXPIRED or BYPASS (the rest came from the cache). A copy "
                 "lives 1 to 2 s, so a run of T s sends Django about T + 1 requests; one "
                 "request before the run filled the cache.")
    lines.append("With the cache, the client (Python threads on the same 2 cores) is the "
                 "bottleneck: its req/s is a lower bound for nginx (see the edge rows below).")
    lines += failure_notes(settings)
    edge_lines, edge_extra = edge_clients(bench)
    lines += ["", *edge_lines]
    names = [s.name for s in settings]
    svg = plot.figure(
        "A hot GET on an app node with and without nginx's 1 s micro-cache",
        method,
        [plot.BarPanel("Throughput", "requests per second", names,
                       [plot.Series("req/s", [s.summary()["rps"] for s in settings],
                                    color="#009E73")], fmt="{:.0f}"),
         plot.BarPanel("Latency", "latency (ms)", names,
                       [plot.Series(k, [s.summary()[f"{k}_ms"] for s in settings],
                                    color=plot.PERCENTILE_COLORS[k])
                        for k in ("p50", "p95")], fmt="{:.1f}"),
         plot.LinePanel("Latency distribution (log scale)", "latency (ms, log scale)",
                        "requests answered within (%)",
                        [plot.Series(s.name, [], plot.cdf([x.latency_ms for x in s.result.ok]))
                         for s in settings], log_x=True, y_max=100)])
    return Outcome("microcache", "Micro-cache on and off", method, lines, settings, svg,
                   edge_extra)


def edge_clients(bench: Bench) -> tuple[list[str], dict[str, Any]]:
    """The hot page at the edge from the Python client, wrk and h2load (throughput.py)."""
    bench.run("edge", "/", tls=True, requests=1)       # the edge cache holds it from now
    # As many requests as h2load sends (about a second's worth), whatever --requests says:
    # a run of 200 would be mostly the 8 TLS handshakes.
    python = bench.run("edge", "/", tls=True, requests=min(
        load.MAX_REQUESTS, bench.concurrency * loadtools.PER_CONNECTION))
    address, port = bench.lab.endpoint("edge")
    bench.log(f"  edge: python {len(python.samples)} requests; now wrk and h2load")
    return throughput.compare(python, address, port, bench.concurrency)


def retry_storm(bench: Bench) -> Outcome:
    """Exponential backoff without and with full jitter (retry_storm.py)."""
    from whathappens.lab.exercises import retry_storm as rs

    settings: list[Setting] = []
    for name, jitter in (("no jitter", False), ("full jitter", True)):
        result, dep, done = rs.run(jitter)
        settings.append(Setting(name, result, rs.facts(dep, done)))
        bench.log(f"  {name}: {len(dep.arrivals)} requests reached the dependency in "
                  f"{result.seconds:.2f} s")
    rows = []
    for s in settings:
        f = s.facts
        rows.append([s.name, str(f["arrivals"]), str(f["refused"]),
                     f"{f['peak_per_bucket']:.0f}", f"{f['peak_after_recovery']:.0f}",
                     f"{f['clients_done']}/{rs.CLIENTS}", ms(f["median_done_s"], 6),
                     ms(f["all_done_s"], 6)])
    method = (f"{rs.CLIENTS} clients (threads of this process, one connection per attempt) "
              f"ask a dependency at the same moment; it refuses (503) until {rs.RECOVER_AT:g} s, "
              f"then serves {rs.CAPACITY:g}/s (token bucket, burst {rs.BURST}; a stand-in HTTP "
              f"server on loopback, not a lab tier). Retries wait min({rs.CAP:g} s, "
              f"{rs.BASE:g} s × 2^n), or a uniform random share of it (full jitter), up to "
              f"{rs.MAX_ATTEMPTS} tries. Arrivals are stamped by the dependency "
              f"(time.monotonic) in {rs.BUCKET * 1000:.0f} ms buckets. The lab itself is not "
              f"used: the question is the clients' timing, which needs a dependency whose "
              f"recovery and capacity are known.")
    lines = table([("setting", 11), ("requests", 8), ("refused", 7), ("peak/50ms", 9),
                   ("peak after", 10), ("done", 6), ("median s", 8), ("all by s", 8)], rows)
    lines.append("peak/50ms: the most requests that reached the dependency in one 50 ms "
                 "bucket; peak after: the same once it had recovered. done: clients served "
                 "within their tries; median s / all by s: when they were (seconds).")
    # one time axis for both: each series runs to the later one's last bucket (zeros after)
    end = max(s.facts["buckets"][-1][0] for s in settings if s.facts["buckets"])
    svg = plot.figure(
        "Retry storm: exponential backoff without and with full jitter", method,
        [plot.LinePanel(f"Arrivals at the dependency ({s.name})", "seconds",
                        f"requests per {rs.BUCKET * 1000:.0f} ms",
                        [plot.Series(s.name, [], [*s.facts["buckets"], (end, 0.0)])])
         for s in settings]
        + [plot.BarPanel("Requests the dependency had to answer", "requests",
                         [s.name for s in settings],
                         [plot.Series("refused (503)", [s.facts["refused"] for s in settings],
                                      color="#D55E00"),
                          plot.Series("served", [s.facts["served"] for s in settings],
                                      color="#009E73")], stacked=True, fmt="{:.0f}")])
    return Outcome("retry-storm", "Retry storm: no jitter vs full jitter", method, lines,
                   settings, svg, {"clients": rs.CLIENTS, "recover_at_s": rs.RECOVER_AT,
                                   "capacity_per_s": rs.CAPACITY, "burst": rs.BURST})


# -- mtls --------------------------------------------------------------------------------------


def mtls(bench: Bench) -> Outcome:
    """The same load with plain HTTP and with mTLS between the tiers, connection reuse on
    and off (mtls_cost.py says what each figure is)."""
    from whathappens.lab.exercises import mtls_cost

    original = (bench.ctx.mtls, bench.ctx.upstream_reuse)
    settings: list[Setting] = []
    try:
        for s in mtls_cost.SETTINGS:
            bench.set_mtls(s.mtls, s.reuse)
            # Not measured: after the restarts, the first requests open the connections
            # (and TLS sessions) a lab that has been running would already have.
            warm = unique_paths("mtls-warm-up")
            bench.run("edge", warm, tls=True, requests=4 * bench.concurrency)
            paths = unique_paths(f"mtls-{'on' if s.mtls else 'off'}-"
                                 f"{'reuse' if s.reuse else 'new'}")
            result = bench.run("edge", paths, tls=True)
            # paths(0) is "/?label=run-0": every URL of this run holds "label=run-"
            needle, warmed = (p(0).removeprefix("/?").removesuffix("0") for p in (paths, warm))
            settings.append(Setting(s.name, result,
                                    mtls_cost.hop_facts(bench.lab, needle, warmed,
                                                        len(result.samples))))
            bench.log(f"  {s.name}: {len(result.samples)} requests in {result.seconds:.1f} s")
    finally:
        bench.put_back(lambda: bench.set_mtls(*original))
    return mtls_outcome(bench, settings)


def mtls_outcome(bench: Bench, settings: list[Setting]) -> Outcome:
    rows = []
    for s in settings:
        f = s.summary()
        rows.append([*speed_cells(s, 7), f"{f['edge_lb_new']}/{f['requests']}",
                     str(f["edge_lb_resumed"]), ms(f["edge_lb_connect_new_ms"], 7),
                     ms(f["edge_lb_connect_mean_ms"], 7), ms(f["lb_handshake_new_ms"], 6),
                     f"{f['lb_app_new']}/{f['requests']}", str(f["lb_app_resumed"]),
                     ms(f["lb_app_gap_new_ms"], 7), ms(f["lb_app_gap_mean_ms"], 7)])
    method = (f"{bench.requests} GETs per setting, {bench.concurrency} at a time, through the "
              f"edge (HTTPS) → HAProxy → app nodes, each to a URL of its own (no cache "
              f"answers). Load client: whathappens' own Python client (threads, http.client), "
              f"chosen for per-request numbers, not throughput. Latency: request sent → "
              f"response read, at the client. Hop figures from the tiers' logs (ms).")
    lines = table([("setting", 15), ("req/s", 6), ("p50 ms", 7), ("p95 ms", 7),
                   ("e→lb new", 8), ("resumed", 7), ("conn new", 8), ("conn avg", 8),
                   ("lb Th", 6), ("lb→app new", 10), ("resumed", 7), ("gap new", 7),
                   ("gap avg", 7)], rows)
    lines += [
        "e→lb new: requests that opened their edge → LB connection (resumed: of those, with a "
        "resumed TLS session); conn new / conn avg: the edge's $upstream_connect_time (TCP "
        "connect + TLS handshake) on those / over every request. lb Th: HAProxy's handshake "
        "time on those (whole ms).",
        "lb→app new: requests on a new LB → app connection ($connection_requests = 1; "
        "resumed: $ssl_session_reused); gap: "
        "HAProxy's Tr − the app nginx's $request_time (the TLS handshake on a new connection, "
        "the request's and response's transfer, and any wait for nginx's one worker to read "
        "it), on those / over every request.",
    ]
    lines += failure_notes(settings)
    names = [s.name for s in settings]

    def values(key: str) -> list[float | None]:
        return [s.summary()[key] for s in settings]

    svg = plot.figure(
        "mTLS between tiers, with and without connection reuse", method,
        [plot.BarPanel("Latency at the client", "latency (ms)", names,
                       [plot.Series(k, values(f"{k}_ms"), color=plot.PERCENTILE_COLORS[k])
                        for k in ("p50", "p95")], fmt="{:.1f}"),
         plot.BarPanel("Connecting, per request (mean)", "ms", names,
                       [plot.Series("edge → LB connect", values("edge_lb_connect_mean_ms"),
                                    color="#0072B2"),
                        plot.Series("LB → app gap", values("lb_app_gap_mean_ms"),
                                    color="#E69F00")], fmt="{:.2f}"),
         plot.LinePanel("Latency distribution", "latency (ms)", "requests answered within (%)",
                        [plot.Series(s.name, [], plot.cdf([x.latency_ms for x in s.result.ok]))
                         for s in settings], y_max=100)])
    return Outcome("mtls", "What mTLS between tiers costs per request", method, lines,
                   settings, svg, {"load_client": "whathappens' Python client (load.py)"})


EXPERIMENTS: dict[str, Callable[[Bench], Outcome]] = {
    "lb-algorithms": lb_algorithms, "pooling": pooling, "microcache": microcache,
    "retry-storm": retry_storm, "mtls": mtls,
}


# -- the command ------------------------------------------------------------------------------


def open_bench(ctx: LabContext, requests: int, concurrency: int) -> Bench:
    """The lab in ``ctx.state``, checked: production profile, every tier healthy."""
    try:
        lab = open_lab(ctx, profile="production",
                       why="experiments need the production profile (a load balancer, two "
                           "app nodes, PgBouncer): whathappens lab up")
    except LabNotRunning as err:
        raise ExperimentError(str(err)) from None
    sick = [r.name for r in status(ctx) if not r.healthy]
    if sick:
        raise ExperimentError(f"not healthy: {', '.join(sick)} (whathappens lab status; "
                              f"'lab heal' after a drill)")
    changed = [t.name for t in lab.manifest.tiers if t.env_overrides]
    if changed:
        raise ExperimentError(f"{', '.join(changed)} still run with an experiment's settings "
                              f"(lab.json: env_overrides); restart the lab")
    return Bench(lab, requests, concurrency)


def save(outcome: Outcome, bench: Bench, out: Path, seconds: float) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "experiment": outcome.name,
        "title": outcome.title,
        "method": outcome.method,
        "client": CLIENTS.get(outcome.name),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "lab": {"state": str(bench.ctx.state), "subnet": bench.ctx.subnet,
                "algorithm": bench.ctx.algorithm},
        "requests": bench.requests, "concurrency": bench.concurrency,
        "seconds": round(seconds, 2),
        **outcome.extra,
        "settings": [s.to_dict() for s in outcome.settings],
    }
    json_path = out / f"{outcome.name}.json"
    json_path.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")
    return json_path, plot.write(out / f"{outcome.name}.svg", outcome.svg)


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def main(ctx: LabContext, args: argparse.Namespace) -> int:
    name = str(args.name)
    if name not in EXPERIMENTS:
        print(f"whathappens lab: no experiment {name!r}: choose from {', '.join(NAMES)}",
              file=sys.stderr)
        return EXIT_USAGE
    requests = int(args.requests)
    concurrency = int(args.concurrency)
    if not 1 <= requests <= load.MAX_REQUESTS or not 1 <= concurrency <= MAX_CONCURRENCY:
        print(f"whathappens lab: --requests 1…{load.MAX_REQUESTS}, --concurrency "
              f"1…{MAX_CONCURRENCY}", file=sys.stderr)
        return EXIT_USAGE
    try:
        bench = open_bench(ctx, requests, concurrency)
        if bench.ctx.mtls and name in DIRECT_TO_APP:
            raise ExperimentError(f"{name} asks an app node's nginx directly over plain HTTP, "
                                  "which this lab (up --mtls) refuses without a client "
                                  "certificate; bring the lab up without --mtls for it")
    except ExperimentError as err:
        print(f"whathappens lab: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    out = Path(args.out) if getattr(args, "out", None) else ctx.state / "experiments"
    print(f"experiment {name}: {requests} requests per setting, {concurrency} at a time")
    started = time.monotonic()
    from whathappens.lab.metrics_report import cite_metrics, wall_clock

    wall_start = wall_clock()
    try:
        outcome = EXPERIMENTS[name](bench)
    except KeyboardInterrupt:
        print("interrupted; the lab is back as it was", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ExperimentError, process.LabError, OSError, ValueError) as err:
        print(f"whathappens lab: experiment {name} failed: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    seconds = time.monotonic() - started
    json_path, svg_path = save(outcome, bench, out, seconds)
    print()
    print(f"{outcome.title}")
    print(outcome.method)
    print(f"client: {CLIENTS[name]}")
    print()
    print("\n".join(outcome.table))
    print()
    print(f"in {seconds:.1f} s; the lab is back as it was (algorithm {bench.ctx.algorithm})")
    print(f"numbers: {json_path}")
    print(f"plot:    {svg_path}")
    cite_metrics(ctx, wall_start)     # with lab up --metrics: the window's metrics
    return 0
