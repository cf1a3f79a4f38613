"""Metrics (``lab up --metrics``): Debian's Prometheus and the exporters it scrapes, every second.

    prometheus ──scrape 1 s──▶ prometheus-node-exporter      this machine (cpu, memory, load)
               ├─────────────▶ prometheus-nginx-exporter     the edge's stub_status
               ├─────────────▶ mtail                         the edge's access log
               ├─────────────▶ prometheus-redis-exporter     Redis, and LLEN of the Celery queue
               ├─────────────▶ prometheus-postgres-exporter  pg_stat_database (primary, replica)
               └─────────────▶ HAProxy's own exporter        (built in: USE_PROMEX, /metrics)

Every program runs on the lab's ``metrics`` host address (127.0.97.1), in the foreground,
like every tier; Prometheus keeps its data in the tier's directory for two hours at most.

Why mtail: stub_status counts requests and connections, nothing else; the edge's cache
status, each response's status and its duration are only in the edge's access log
(``$upstream_cache_status``, ``$status``, ``$request_time``). mtail (Debian's package, a
real log-to-metrics exporter) turns each line into a counter by status and cache status and
a histogram of request time, so the cache hit ratio and the client-facing p95 come from the
edge itself. HAProxy 2.6's exporter has no latency histogram (only averages over the last
1024 requests), so it cannot give a p95.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.lab.tier import LabContext, SpecTier, which
from whathappens.lab.tiers.nginx import READY_PATH, access_log
from whathappens.lab.tiers.postgres import SUPERUSER

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

SCRAPE_INTERVAL = "1s"
RETENTION = "2h"
CELERY_QUEUE_DB = 1            # settings.py: the broker is Redis db 1
CELERY_QUEUES = ("celery", "dead_letter")
# Request-time buckets (seconds) for the edge's histogram: from a cache hit (~1 ms) to
# the edge's upstream timeout (30 s).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


# One access log line's status, request time and cache status (nginx writes them in this
# order: nginx.py's LOG_FIELDS); mtail types request_time as a float from the pattern.
LINE_PATTERN = ('"status":"(?P<status>\\d{3})".*'
                '"request_time":(?P<request_time>\\d+\\.\\d+).*'
                '"cache":"(?P<cache>[A-Z]*)"')


def mtail_program() -> str:
    """The edge access log, line by line: status, request_time, cache (in that order in
    nginx.py's LOG_FIELDS)."""
    buckets = ", ".join(f"{b:g}" for b in BUCKETS)
    return f"""\
# Written by whathappens lab; rewritten on every start.
counter edge_requests_total by status, cache
histogram edge_request_seconds buckets {buckets}

/{LINE_PATTERN}/ {{
  edge_requests_total[$status][$cache]++
  edge_request_seconds = $request_time
}}
"""


class MetricsTier(SpecTier):
    """A program that serves /metrics (or, for Prometheus, /-/ready) on the metrics host."""

    ready_path = "/metrics"

    def ready(self, ctx: LabContext) -> bool:
        conn = http.client.HTTPConnection(self.address, self.listen_port(self.kind), timeout=1)
        try:
            conn.request("GET", self.ready_path)
            response = conn.getresponse()
            response.read(1 << 20)
            return response.status == 200
        finally:
            conn.close()

    def prepare(self, ctx: LabContext) -> None:
        ctx.dir(self.name)

    def listen(self) -> str:
        return f"{self.address}:{self.listen_port(self.kind)}"


class NodeExporter(MetricsTier):
    kind = "node-exporter"

    def command(self, ctx: LabContext) -> list[str]:
        # Only what the dashboard reads: each default collector costs time every second.
        return [which("prometheus-node-exporter"), f"--web.listen-address={self.listen()}",
                "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo",
                "--collector.loadavg"]


class NginxExporter(MetricsTier):
    """stub_status of the edge (its plain-HTTP server, /nginx_status, not logged)."""

    kind = "nginx-exporter"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        # The exporter exits when stub_status does not answer at its start.
        self.depends = (topo.front().name,)

    def command(self, ctx: LabContext) -> list[str]:
        front = self.topo.front()      # found here, not named in options: no dependency
        address = self.topo.address(front.host)
        port = int(str(front.options["http_port"]))
        return [which("prometheus-nginx-exporter"), "-web.listen-address", self.listen(),
                "-nginx.scrape-uri", f"http://{address}:{port}{READY_PATH}",
                "-nginx.retries", "20", "-nginx.retry-interval", "250ms"]


class Mtail(MetricsTier):
    """The edge's access log as counters and a histogram (see the module docstring)."""

    kind = "mtail"

    def progs(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "progs"

    def prepare(self, ctx: LabContext) -> None:
        progs = self.progs(ctx)
        progs.mkdir(parents=True, exist_ok=True)
        (progs / "edge.mtail").write_text(mtail_program())
        log = access_log(ctx, self.topo.front().name)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()

    def command(self, ctx: LabContext) -> list[str]:
        log = access_log(ctx, self.topo.front().name)
        return [which("mtail"), "-progs", str(self.progs(ctx)), "-logs", str(log),
                "-address", self.address, "-port", str(self.listen_port("mtail")),
                "-logtostderr", "-poll_interval", "250ms"]


class RedisExporter(MetricsTier):
    kind = "redis-exporter"

    def command(self, ctx: LabContext) -> list[str]:
        address, port = self.topo.endpoint(str(self.spec.options["target"]))
        # -check-single-keys: the length of each queue (a Redis list: LLEN) as redis_key_size.
        keys = ",".join(f"db{CELERY_QUEUE_DB}={k}" for k in CELERY_QUEUES)
        return [which("prometheus-redis-exporter"), "-web.listen-address", self.listen(),
                "-redis.addr", f"redis://{address}:{port}", "-check-single-keys", keys]


class PostgresExporter(MetricsTier):
    """pg_stat_database of every PostgreSQL tier named in ``targets`` (label ``server``)."""

    kind = "postgres-exporter"

    def env(self, ctx: LabContext) -> dict[str, str]:
        listed = self.spec.options.get("targets")
        targets = [str(t) for t in listed] if isinstance(listed, list) else []
        dsns = []
        for name in targets:
            address, port = self.topo.endpoint(name)
            dsns.append(f"postgresql://{SUPERUSER}@{address}:{port}/postgres?sslmode=disable")
        return {"DATA_SOURCE_NAME": ",".join(dsns)}

    def command(self, ctx: LabContext) -> list[str]:
        return [which("prometheus-postgres-exporter"), f"--web.listen-address={self.listen()}",
                # 0.11's newer collectors cannot serve two servers from one exporter
                # (duplicate series, HTTP 500); pg_stat_database comes from its built-in
                # queries all the same, labelled with each server.
                "--disable-settings-metrics", "--no-collector.database",
                "--no-collector.bgwriter", "--log.level=warn"]


class Prometheus(MetricsTier):
    """Scrapes every exporter of the lab (and HAProxy's own endpoint) every second."""

    kind = "prometheus"
    ready_path = "/-/ready"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        # Not in the spec's options: a tier named there would become a dependency, and
        # Prometheus needs none (a target that is not up yet is simply "down").
        self.jobs = scrape_jobs(topo)

    def config_path(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "prometheus.yml"

    def prepare(self, ctx: LabContext) -> None:
        (ctx.dir(self.name) / "data").mkdir(exist_ok=True)
        self.config_path(ctx).write_text(prometheus_config(self.jobs))

    def command(self, ctx: LabContext) -> list[str]:
        return [which("prometheus"), f"--config.file={self.config_path(ctx)}",
                f"--storage.tsdb.path={ctx.dir(self.name) / 'data'}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address={self.listen()}", "--log.level=warn"]


def scrape_jobs(topo: Topology) -> dict[str, str]:
    """job name → host:port of every exporter in the topology, and HAProxy's endpoint."""
    from whathappens.lab.tiers.haproxy import METRICS_PORT

    jobs = {}
    for spec in topo.tiers:
        if spec.kind in EXPORTER_KINDS and spec.port is not None:
            jobs[spec.kind] = f"{topo.address(spec.host)}:{spec.port}"
    for spec in topo.of_kind("haproxy"):
        jobs["haproxy"] = f"{topo.address(spec.host)}:{METRICS_PORT}"
    return jobs


def prometheus_config(jobs: dict[str, str]) -> str:
    lines = ["# Written by whathappens lab; rewritten on every start.",
             "global:",
             f"  scrape_interval: {SCRAPE_INTERVAL}",
             f"  scrape_timeout: {SCRAPE_INTERVAL}",
             f"  evaluation_interval: {SCRAPE_INTERVAL}",
             "scrape_configs:"]
    for job, target in sorted(jobs.items()):
        lines += [f"  - job_name: {job}", "    static_configs:",
                  f"      - targets: ['{target}']"]
    return "\n".join(lines) + "\n"


EXPORTER_KINDS = ("node-exporter", "nginx-exporter", "mtail", "redis-exporter",
                  "postgres-exporter")
