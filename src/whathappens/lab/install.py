"""``whathappens lab install``: the Debian packages the lab's tiers run on.

The lab runs the real programs from Debian's packages, started by the lab itself (no
systemd): installing them is all this does. Python packages (Django, gunicorn, Celery,
psycopg, redis) come with the project's ``lab`` extra, which ``./dev`` installs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    package: str          # Debian package
    check: str            # a file it installs
    why: str
    metrics: bool = False   # needed only by lab up --metrics


NEEDS: tuple[Need, ...] = (
    Need("nginx", "/usr/sbin/nginx", "CDN edge and app nodes' reverse proxy"),
    Need("libnginx-mod-http-brotli-filter",
         "/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so", "brotli at the edge"),
    Need("libnginx-mod-http-modsecurity",
         "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so",
         "ModSecurity, the edge's WAF (the waf drill)"),
    Need("modsecurity-crs", "/usr/share/modsecurity-crs/rules/REQUEST-949-BLOCKING-EVALUATION.conf",
         "the OWASP Core Rule Set the WAF runs"),
    Need("haproxy", "/usr/sbin/haproxy", "load balancer"),
    Need("caddy", "/usr/bin/caddy", "second CDN POP: HTTP/3 (QUIC), HTTP/2"),
    Need("postgresql", "/usr/lib/postgresql/15/bin/postgres", "database primary + replica"),
    Need("pgbouncer", "/usr/sbin/pgbouncer", "connection pool"),
    Need("redis-server", "/usr/bin/redis-server", "cache, sessions, Celery broker"),
    Need("unbound", "/usr/sbin/unbound", "recursive resolver (walks the lab's own root)"),
    Need("wrk", "/usr/bin/wrk", "load generator (HTTP/1.1) for the throughput experiments"),
    Need("nghttp2-client", "/usr/bin/h2load", "h2load, an HTTP/2 load generator"),
    Need("prometheus", "/usr/bin/prometheus", "metrics: scrapes every exporter each second", True),
    Need("prometheus-node-exporter", "/usr/bin/prometheus-node-exporter",
         "metrics: the machine's CPU, memory, load", True),
    Need("prometheus-nginx-exporter", "/usr/bin/prometheus-nginx-exporter",
         "metrics: the edge's stub_status", True),
    Need("prometheus-redis-exporter", "/usr/bin/prometheus-redis-exporter",
         "metrics: Redis, and the Celery queue's length", True),
    Need("prometheus-postgres-exporter", "/usr/bin/prometheus-postgres-exporter",
         "metrics: pg_stat_database (transactions per second)", True),
    Need("mtail", "/usr/bin/mtail",
         "metrics: the edge's access log as counters (cache status, p95 latency)", True),
)

PYTHON_MODULES = ("django", "gunicorn", "celery", "psycopg", "redis")


def missing_packages(*, metrics: bool = False) -> list[Need]:
    """What is not installed (``metrics``: counting what only lab up --metrics needs)."""
    return [n for n in NEEDS if not os.path.exists(n.check) and (metrics or not n.metrics)]


def missing_python() -> list[str]:
    return [m for m in PYTHON_MODULES if importlib.util.find_spec(m) is None]


def apt_command(needs: list[Need]) -> list[str]:
    return ["apt-get", "install", "-y", "-q", "--no-install-recommends",
            *[n.package for n in needs]]


def install(*, quiet: bool = False) -> tuple[bool, str]:
    """Install what is missing; (ok, what to tell the user)."""
    needs = missing_packages(metrics=True)
    lines: list[str] = []
    if needs:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            lines.append("missing Debian packages (run as root):")
            lines.append("  apt-get update && " + " ".join(apt_command(needs)))
            lines += [f"  {n.package}: {n.why}" for n in needs]
            return False, "\n".join(lines + _python_lines())
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        out = subprocess.DEVNULL if quiet else None
        # Debian's maintainer scripts try to start the services; with no init system
        # running that fails harmlessly, and the lab starts its own instances anyway.
        for argv in (["apt-get", "update", "-q"], apt_command(needs)):
            done = subprocess.run(argv, env=env, stdout=out, stderr=out, check=False)
            if done.returncode != 0:
                return False, f"{' '.join(argv)} failed with status {done.returncode}"
        still = missing_packages(metrics=True)
        if still:
            return False, "installed, yet still missing: " + ", ".join(n.check for n in still)
        lines.append("installed: " + ", ".join(n.package for n in needs))
    else:
        lines.append("Debian packages: all present (" +
                     ", ".join(n.package for n in NEEDS) + ")")
    py = _python_lines()
    return not py, "\n".join(lines + py)


def _python_lines() -> list[str]:
    missing = missing_python()
    if not missing:
        return []
    return [f"missing Python packages: {', '.join(missing)} — install the lab extra: "
            "./dev setup (or pip install -e '.[lab]')"]
