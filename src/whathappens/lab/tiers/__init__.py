"""One module per program. ``build`` turns a topology's TierSpec into its Tier."""

from __future__ import annotations

import importlib

from whathappens.lab.tier import Tier
from whathappens.lab.topology import TierSpec, Topology

# kind → (module under whathappens.lab.tiers, class name)
KINDS: dict[str, tuple[str, str]] = {
    "postgres-primary": ("postgres", "PostgresPrimary"),
    "postgres-replica": ("postgres", "PostgresReplica"),
    "pgbouncer": ("pgbouncer", "PgBouncer"),
    "redis": ("redis", "Redis"),
    "gunicorn": ("gunicorn", "Gunicorn"),
    "celery": ("celery", "CeleryWorker"),
    "nginx-app": ("nginx", "NginxApp"),
    "nginx-edge": ("nginx", "NginxEdge"),
    "caddy-edge": ("caddy", "CaddyEdge"),
    "haproxy": ("haproxy", "HAProxy"),
    "dns-authoritative": ("dns", "DnsAuthoritative"),
    "unbound": ("dns", "Unbound"),
    "wan": ("wan", "WanLink"),
    "prometheus": ("metrics", "Prometheus"),
    "node-exporter": ("metrics", "NodeExporter"),
    "nginx-exporter": ("metrics", "NginxExporter"),
    "mtail": ("metrics", "Mtail"),
    "redis-exporter": ("metrics", "RedisExporter"),
    "postgres-exporter": ("metrics", "PostgresExporter"),
}


def build(topo: Topology, spec: TierSpec) -> Tier:
    module, cls = KINDS[spec.kind]
    tier_class = getattr(importlib.import_module(f"whathappens.lab.tiers.{module}"), cls)
    tier: Tier = tier_class(topo, spec)
    return tier


def build_all(topo: Topology) -> list[Tier]:
    return [build(topo, spec) for spec in topo.tiers]
