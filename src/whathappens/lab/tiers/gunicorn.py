"""gunicorn serving the lab's Django site (``whathappens.lab.site``) on an app node.

The seeds' production settings are ``--workers 4 --threads 2 --worker-class gthread
--timeout 60 --max-requests 2000 --max-requests-jitter 200 --keep-alive 30`` (their
single-server quick reference: ``--workers 3``). Here: the same gthread worker and the same
timeout, recycling and keep-alive, with the same 8 threads per node as 2 processes × 4
threads instead of 4 × 2 (these machines have 2 cores: two processes use both, four would
only cost memory and start time), and a 10 s graceful shutdown.

The site is configured only through environment variables (:func:`site_env`, also used by
the Celery worker): the database through PgBouncer when the topology has one (``site`` for
writes, ``site_ro`` for reads), otherwise straight to the primary for both (the single
profile); Redis for cache, sessions and the broker; the node's name; where static files and
the span log go.

Before it starts, every app node runs ``django-admin lab_prepare`` (migrations on the
primary and ``collectstatic``), under a file lock and idempotent, so nodes started together
or alone (``lab heal app-2``) find the schema in place.

gunicorn's access log is one JSON line per request on stdout (the tier's log), with the
W3C ``traceparent`` the request carried, the request time in ms and µs, and the worker pid::

    {"tier": "app-1-gunicorn", "node": "app-1", "time": "[22/Nov/2026:00:16:01 +0000]",
     "pid": "<4242>", "remote": "127.0.92.1", "method": "GET", "path": "/", "query": "",
     "status": 200, "bytes": "1234", "duration_ms": 3, "duration_us": 3120,
     "traceparent": "00-…-…-01", "request_id": "…", "forwarded_for": "…", "user_agent": "…"}

(gunicorn writes ``pid`` as ``<pid>``, and ``-`` for a header the request lacked; values are
escaped as JSON strings by ``whathappens.lab.site.accesslog``.)
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whathappens.lab.logs import ServerSpan, json_lines
from whathappens.lab.process import LabError, run_checked
from whathappens.lab.tier import LabContext, SpecTier
from whathappens.lab.tiers.django_spans import django_span

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

SETTINGS = "whathappens.lab.site.settings"
WSGI_APP = "whathappens.lab.site.wsgi:application"
SITE_DB = "site"             # PgBouncer's pooled database for writes (→ the primary) …
READ_ONLY_DB = "site_ro"     # … and for reads (→ the replica)
SITE_ROLE = "site"
PREPARE_TIMEOUT = 120.0

# What the seeds run, fitted to 2 cores (see the module docstring).
WORKERS = 2
THREADS = 4
TIMEOUT = 60               # a request running longer: its worker is killed (nginx sees 502)
GRACEFUL_TIMEOUT = 10
MAX_REQUESTS = 2000
MAX_REQUESTS_JITTER = 200
KEEP_ALIVE = 30            # seconds an idle upstream connection (nginx keepalive) stays open

# JSON, one object per request. %(…)s atoms are gunicorn's; %({header}i)s a request header.
ACCESS_FIELDS = [
    ("time", '"%(t)s"'), ("pid", '"%(p)s"'), ("remote", '"%(h)s"'),
    ("method", '"%(m)s"'), ("path", '"%(U)s"'), ("query", '"%(q)s"'),
    ("status", "%(s)s"), ("bytes", '"%(b)s"'),
    ("duration_ms", "%(M)s"), ("duration_us", "%(D)s"),
    ("traceparent", '"%({traceparent}i)s"'), ("request_id", '"%({x-request-id}i)s"'),
    ("forwarded_for", '"%({x-forwarded-for}i)s"'), ("user_agent", '"%(a)s"'),
]


def access_log_format(tier: str, node: str) -> str:
    fields = [f'"tier": "{tier}"', f'"node": "{node}"']
    fields += [f'"{name}": {value}' for name, value in ACCESS_FIELDS]
    return "{" + ", ".join(fields) + "}"


def secret_key(ctx: LabContext) -> str:
    """The lab's Django secret key: made once, shared by every app node and the worker."""
    path = ctx.state / "site-secret-key"
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    ctx.state.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(secrets.token_urlsafe(48) + "\n")
    tmp.chmod(0o600)
    with contextlib.suppress(FileExistsError):   # another node was first: use its key
        os.link(tmp, path)
    tmp.unlink()
    return path.read_text().strip()


def span_log(ctx: LabContext, name: str) -> Path:
    """Where the site behind tier ``name`` writes its span lines (WHATHAPPENS_SPAN_LOG)."""
    return ctx.state / "logs" / f"{name}.spans.jsonl"


def data_tiers(topo: Topology) -> tuple[str, ...]:
    """The tiers the site needs up before it starts: databases, the pool, Redis."""
    kinds = ("postgres-primary", "postgres-replica", "pgbouncer", "redis")
    return tuple(s.name for s in topo.tiers if s.kind in kinds)


def site_env(topo: Topology, ctx: LabContext, *, node: str, name: str) -> dict[str, str]:
    """The environment the Django site reads (``whathappens/lab/site/settings.py``)."""
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "WHATHAPPENS_NODE": node,
        "WHATHAPPENS_DB_USER": SITE_ROLE,
        "WHATHAPPENS_STATIC_ROOT": str(ctx.state / "static"),
        "WHATHAPPENS_SPAN_LOG": str(span_log(ctx, name)),
        "WHATHAPPENS_SECRET_KEY": secret_key(ctx),
        "PYTHONUNBUFFERED": "1",
    }
    pools = topo.of_kind("pgbouncer")
    if pools:
        host, port = topo.endpoint(pools[0].name)
        env.update({"WHATHAPPENS_DB_HOST": host, "WHATHAPPENS_DB_PORT": str(port),
                    "WHATHAPPENS_DB_NAME": SITE_DB,
                    "WHATHAPPENS_DB_REPLICA_HOST": host,
                    "WHATHAPPENS_DB_REPLICA_PORT": str(port),
                    "WHATHAPPENS_DB_REPLICA_NAME": READ_ONLY_DB})
    else:           # the single profile: both aliases reach the primary
        primary = topo.of_kind("postgres-primary")
        if not primary:
            raise LabError("the site needs a PostgreSQL primary in the topology")
        host, port = topo.endpoint(primary[0].name)
        for alias in ("DB", "DB_REPLICA"):
            env.update({f"WHATHAPPENS_{alias}_HOST": host,
                        f"WHATHAPPENS_{alias}_PORT": str(port),
                        f"WHATHAPPENS_{alias}_NAME": SITE_DB})
    caches = topo.of_kind("redis")
    if caches:
        host, port = topo.endpoint(caches[0].name)
        env.update({"WHATHAPPENS_REDIS_URL": f"redis://{host}:{port}/0",
                    "WHATHAPPENS_BROKER_URL": f"redis://{host}:{port}/1",
                    "WHATHAPPENS_RESULT_URL": f"redis://{host}:{port}/2"})
    return env


def run_site_command(args: list[str], env: dict[str, str], cwd: Path,
                     timeout: float = PREPARE_TIMEOUT) -> str:
    """``django-admin ARGS`` for the site in a child process; LabError with its output."""
    shown = f"django-admin {' '.join(args)}"
    return run_checked([sys.executable, "-m", "django", *args], cwd=cwd, name=shown,
                       shown=shown, env={**os.environ, **env}, timeout=timeout)


def http_status(address: str, port: int, path: str, timeout: float = 1.0) -> int:
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "localhost"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def gunicorn_requests(path: Path, trace_id: str) -> dict[str, dict[str, Any]]:
    """gunicorn's own access log (JSON lines in the tier's log): per traceparent, the worker
    that served the request and gunicorn's timing of it (from its parser to the last byte)."""
    out: dict[str, dict[str, Any]] = {}
    for item in json_lines(path, trace_id):
        if "duration_us" in item and item.get("traceparent"):
            out[str(item["traceparent"])] = {
                "gunicorn_worker_pid": str(item.get("pid", "")).strip("<>"),
                "gunicorn_request_ms": round(int(item["duration_us"]) / 1000, 3)}
    return out


class Gunicorn(SpecTier):
    kind = "gunicorn"
    span_kind = "django"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.http_port = self.listen_port("gunicorn")
        self.node = str(spec.options.get("node", spec.host))
        self.depends = data_tiers(topo)

    def env(self, ctx: LabContext) -> dict[str, str]:
        return site_env(self.topo, ctx, node=self.node, name=self.name)

    def prepare(self, ctx: LabContext) -> None:
        """Migrate the primary and collect static files (locked, idempotent)."""
        (ctx.state / "static").mkdir(parents=True, exist_ok=True)
        (ctx.state / "logs").mkdir(parents=True, exist_ok=True)
        run_site_command(["lab_prepare", "--verbosity", "0"], self.env(ctx),
                         ctx.dir(self.name))

    def command(self, ctx: LabContext) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn", WSGI_APP,
            "--bind", f"{self.address}:{self.http_port}",
            "--worker-class", "gthread", "--workers", str(WORKERS), "--threads", str(THREADS),
            "--timeout", str(TIMEOUT), "--graceful-timeout", str(GRACEFUL_TIMEOUT),
            "--max-requests", str(MAX_REQUESTS),
            "--max-requests-jitter", str(MAX_REQUESTS_JITTER),
            "--keep-alive", str(KEEP_ALIVE),
            "--access-logfile", "-",
            "--logger-class", "whathappens.lab.site.accesslog.JsonAccessLogger",
            "--access-logformat", access_log_format(self.name, self.node),
            "--error-logfile", "-",
            # gunicorn ≥ 25 opens a control socket at ~/.gunicorn/gunicorn.ctl by default:
            # one path for every app node on this machine. The lab needs none.
            "--no-control-socket",
        ]

    def ready(self, ctx: LabContext) -> bool:
        return http_status(self.address, self.http_port, "/healthz") == 200

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """Django's spans of the trace (the site's span log), each with gunicorn's own
        timing of the request (its access log) in its attributes."""
        requests = gunicorn_requests(ctx.log(self.name), trace_id)
        out = []
        for item in json_lines(span_log(ctx, self.name), trace_id):
            if item.get("trace_id") != trace_id:
                continue
            span = django_span(item, self.name, self.host, trace_id, self.topo)
            # the proxies pass the client's traceparent through unchanged: same key
            span.attrs.update(requests.get(span.traceparent, {}))
            out.append(span)
        return out

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "node": self.node, "workers": WORKERS,
                "threads": THREADS, "worker_class": "gthread", "timeout": TIMEOUT}
