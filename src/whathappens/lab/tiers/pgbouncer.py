"""PgBouncer: the connection pool in front of the primary and the replica.

Two pooled databases: ``site`` (writes, to the primary) and ``site_ro`` (reads, to the
replica), in transaction pooling mode: a server connection is lent to a client for one
transaction, so many app connections share a few PostgreSQL backends. The admin console is
the ``pgbouncer`` database (``SHOW POOLS``, ``SHOW STATS``) for the ``postgres`` user.

Runs in the foreground as ``postgres``: PgBouncer refuses to run as root. With no
``logfile`` it logs to stderr, which the process layer sends to the tier's log.
https://www.pgbouncer.org/config.html
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.lab.tier import LabContext, SpecTier, chown_to, which
from whathappens.lab.tiers.postgres import (
    SITE_DB,
    SITE_ROLE,
    SUPERUSER,
    connect,
    ensure_reachable,
    socket_dir,
    version,
)

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

READ_ONLY_DB = f"{SITE_DB}_ro"      # the replica, through the pool
POOL_MODE = "transaction"


def pgbouncer() -> str:
    return which("pgbouncer", "/usr/sbin/pgbouncer")


class PgBouncer(SpecTier):
    kind = "pgbouncer"
    user = "postgres"    # PgBouncer refuses to run as root

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.pool_port = self.listen_port("PgBouncer")
        self.primary = str(spec.options["primary"])
        self.replica = str(spec.options["replica"])
        self.depends = (self.primary, self.replica)

    def ini(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "pgbouncer.ini"

    def config(self, ctx: LabContext) -> str:
        tier_dir = ctx.dir(self.name)
        primary = self.topo.endpoint(self.primary)
        replica = self.topo.endpoint(self.replica)
        return "\n".join([
            f"; Written by whathappens lab for tier {self.name}; rewritten on every start.",
            "; https://www.pgbouncer.org/config.html",
            "[databases]",
            f"{SITE_DB} = host={primary[0]} port={primary[1]} dbname={SITE_DB}",
            f"{READ_ONLY_DB} = host={replica[0]} port={replica[1]} dbname={SITE_DB}",
            "",
            "[pgbouncer]",
            f"listen_addr = {self.address}",
            f"listen_port = {self.pool_port}",
            f"unix_socket_dir = {socket_dir(tier_dir, self.pool_port)}",
            f"pidfile = {tier_dir / 'pgbouncer.pid'}",
            "; No logfile: in the foreground, PgBouncer logs to stderr (the tier's log).",
            "",
            "; LAB ONLY: no password checks; a user must still be listed in auth_file.",
            "auth_type = trust",
            f"auth_file = {tier_dir / 'userlist.txt'}",
            f"admin_users = {SUPERUSER}",
            f"stats_users = {SUPERUSER}",
            "",
            "; A server connection serves one transaction, then goes back to the pool.",
            "; Clients must not rely on session state (SET, prepared statements before",
            "; PgBouncer 1.21, advisory locks, LISTEN) across transactions.",
            f"pool_mode = {POOL_MODE}",
            # A client waits at most 5 s for a server connection (default 120 s): with the
            # primary down, a write then fails fast and the site answers 503 (the drill).
            "query_wait_timeout = 5",
            "default_pool_size = 20",
            "max_client_conn = 200",
            "; Sent by some drivers (JDBC, older psycopg2 setups); harmless to ignore here.",
            "ignore_startup_parameters = extra_float_digits",
            "",
            "log_connections = 1",
            "log_disconnections = 1",
            "; Averages in SHOW STATS and the stats line in the log, every 10 s (default 60).",
            "stats_period = 10",
            "",
        ])

    def prepare(self, ctx: LabContext) -> None:
        tier_dir = ctx.dir(self.name)
        ensure_reachable(ctx, tier_dir, self.user)
        # auth_file format: "user" "password" per line; with trust the password is unused.
        users = "".join(f'"{u}" ""\n' for u in (SITE_ROLE, SUPERUSER))
        (tier_dir / "userlist.txt").write_text(users)
        self.ini(ctx).write_text(self.config(ctx))
        chown_to(tier_dir, self.user)

    def command(self, ctx: LabContext) -> list[str]:
        return [pgbouncer(), str(self.ini(ctx))]    # no -d: stays in the foreground

    def ready(self, ctx: LabContext) -> bool:
        """A real query through each pooled database (each reaches its PostgreSQL)."""
        for dbname in (SITE_DB, READ_ONLY_DB):
            with connect(self.address, self.pool_port, dbname, SITE_ROLE) as conn:
                if conn.execute("SELECT 1").fetchone() != (1,):
                    return False
        return True

    def describe(self) -> dict[str, object]:
        facts = super().describe()
        with contextlib.suppress(FileNotFoundError):
            facts["version"] = version(pgbouncer())
        facts["pool_mode"] = POOL_MODE
        facts["databases"] = {SITE_DB: self.primary, READ_ONLY_DB: self.replica}
        return facts
