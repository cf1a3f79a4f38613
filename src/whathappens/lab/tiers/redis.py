"""Redis: the site's cache and session store, and the Celery broker.

Runs ``redis-server <conf>`` in the foreground as the ``redis`` user when the Debian package
created it (least privilege; root otherwise). Nothing is persisted: no RDB snapshots, no AOF
(the lab's Redis is a cache; ``lab down --purge`` has nothing to forget). It binds to its
host's loopback address only, which is why protected mode can be off.
https://redis.io/docs/latest/operate/oss_and_stack/management/config-file/
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.lab.tier import LabContext, SpecTier, chown_to, which
from whathappens.lab.tiers.postgres import ensure_reachable, user_exists, version

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology


def redis_server() -> str:
    return which("redis-server", "/usr/bin/redis-server")


def ping(address: str, port: int, timeout: float = 0.5) -> bool:
    """PING in RESP; True on +PONG (a Redis still loading answers -LOADING instead)."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
    return reply == b"+PONG\r\n"


class Redis(SpecTier):
    kind = "redis"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.redis_port = self.listen_port("Redis")
        self.user = "redis" if user_exists("redis") else None

    def conf(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "redis.conf"

    def config(self, ctx: LabContext) -> str:
        return "\n".join([
            f"# Written by whathappens lab for tier {self.name}; rewritten on every start.",
            f"bind {self.address}",
            f"port {self.redis_port}",
            # Protected mode refuses clients from other addresses when no password is set;
            # bound to one loopback address, the lab's own tiers are the only clients.
            "protected-mode no",
            # (redis.conf has no trailing comments: each comment on a line of its own.)
            "# In the foreground, logging to stdout (the tier log): the process layer runs it.",
            "daemonize no",
            'logfile ""',
            f"dir {ctx.dir(self.name)}",
            "# A cache: no RDB snapshots, no append-only file.",
            'save ""',
            "appendonly no",
            # Every command goes to the slow log with its duration in microseconds and the
            # client's name (SLOWLOG GET): the lab timeline's view inside Redis.
            "slowlog-log-slower-than 0",
            "slowlog-max-len 1024",
            "",
        ])

    def prepare(self, ctx: LabContext) -> None:
        tier_dir = ctx.dir(self.name)
        ensure_reachable(ctx, tier_dir, self.user)
        self.conf(ctx).write_text(self.config(ctx))
        chown_to(tier_dir, self.user)

    def command(self, ctx: LabContext) -> list[str]:
        return [redis_server(), str(self.conf(ctx))]

    def ready(self, ctx: LabContext) -> bool:
        return ping(self.address, self.redis_port)

    def describe(self) -> dict[str, object]:
        facts = super().describe()
        with contextlib.suppress(FileNotFoundError):
            facts["version"] = version(redis_server())
        return facts
