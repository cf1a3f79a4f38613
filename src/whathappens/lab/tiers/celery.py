"""A Celery worker for the site's background tasks, on the Redis broker.

``celery -A whathappens.lab.site.celery_app worker``: one prefork child (concurrency 1),
acks-late with a prefetch of one, and a 30 s broker visibility timeout, so a task whose
worker is killed mid-way is delivered again (the "worker killed mid-task" drill). Broker:
Redis db 1; results: Redis db 2. Gossip and mingle are off: a lone worker has nobody to
talk to, and mingle alone costs seconds at start.

Ready when its log, since this start, says ``ready.`` (``celery inspect ping`` costs about a
second of broadcast per check). Each task writes one JSON span line to
``logs/<tier>.spans.jsonl`` (kind ``celery``) under the trace id the web request passed in
the task's headers.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from whathappens.lab.logs import json_lines
from whathappens.lab.tier import LabContext, SpecTier
from whathappens.lab.tiers.celery_spans import group, task_span
from whathappens.lab.tiers.gunicorn import site_env, span_log

if TYPE_CHECKING:
    from whathappens.lab.logs import ServerSpan
    from whathappens.lab.topology import TierSpec, Topology

APP = "whathappens.lab.site.celery_app"
START_MARK = "\n--- "       # process.start writes this line before each launch
READY_TAIL = 64 * 1024


class CeleryWorker(SpecTier):
    kind = "celery"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.node = str(spec.options.get("node", spec.host))
        kinds = ("postgres-primary", "postgres-replica", "pgbouncer", "redis")
        self.depends = tuple(s.name for s in topo.tiers if s.kind in kinds)

    def env(self, ctx: LabContext) -> dict[str, str]:
        return site_env(self.topo, ctx, node=self.node, name=self.name)

    def prepare(self, ctx: LabContext) -> None:
        (ctx.state / "logs").mkdir(parents=True, exist_ok=True)

    def command(self, ctx: LabContext) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", APP, "worker",
                "--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO",
                "-n", "worker@lab", "--without-gossip", "--without-mingle"]

    def ready(self, ctx: LabContext) -> bool:
        """The worker logged ``… ready.`` after its latest start line."""
        log = ctx.log(self.name)
        try:
            with log.open("rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - READY_TAIL))
                tail = f.read().decode(errors="replace")
        except OSError:
            return False
        since_start = tail.rsplit(START_MARK, 1)[-1]
        return "ready." in since_start

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """The tasks of the trace, from the worker's span lines (``celery_spans.py``)."""
        lines = json_lines(span_log(ctx, self.name), trace_id)
        spans = (task_span(task_id, items, self.name, trace_id)
                 for task_id, items in group(lines, trace_id).items())
        return [s for s in spans if s is not None]

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "node": self.node, "concurrency": 1, "pool": "prefork"}
