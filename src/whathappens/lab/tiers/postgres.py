"""PostgreSQL: a primary and a streaming replica, as the seeds draw them.

The primary's data directory is made by ``initdb``; the replica's is a copy of the primary
taken by ``pg_basebackup -R`` (which also writes ``standby.signal`` and ``primary_conninfo``,
so the copy starts as a hot standby streaming from the primary). Both run ``postgres -D``
in the foreground as the ``postgres`` user: PostgreSQL refuses to run as root.

Per-host settings live in ``lab.conf`` inside each data directory, included at the end of
``postgresql.conf`` and rewritten on every start: the replica's copy of the primary's
``lab.conf`` is replaced by its own (address, port, socket directory, name).

Every statement is logged to stderr with its duration (``log_min_duration_statement = 0``)
behind a timestamped prefix; the lab timeline reads these lines.

The helpers here that other data tiers share: :func:`ensure_reachable` (can a program
running as ``postgres`` or ``redis`` reach its directory?), :func:`connect` (psycopg 3, with
prepared statements off so it also works through PgBouncer in transaction mode).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.contract.facts import HopConnectionFacts
from whathappens.lab.logs import ServerSpan, tail_lines
from whathappens.lab.process import LabError, run_checked
from whathappens.lab.tier import LabContext, SpecTier, chown_to, which

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

    from whathappens.lab.topology import TierSpec, Topology

PG_ROOT = Path("/usr/lib/postgresql")   # Debian: /usr/lib/postgresql/<major>/bin, not on PATH
SITE_DB = "site"                        # the Django site's database …
SITE_ROLE = "site"                      # … and the role that owns it
SUPERUSER = "postgres"
COMMAND_TIMEOUT = 60.0                  # initdb / pg_basebackup: about a second each here
STREAMING_TIMEOUT = 10.0                # a fresh replica streams within ~10 ms here
SOCKET_PATH_MAX = 107                   # sun_path is 108 bytes on Linux, NUL included


# ---------------------------------------------------------------------------------------------
# Programs


@functools.cache
def bindir() -> Path:
    """The newest installed PostgreSQL's bin directory (initdb, postgres, pg_basebackup).

    Debian installs each major version under /usr/lib/postgresql/<major>/bin and puts only
    a version-picking wrapper on PATH (pg_wrapper), which does not cover initdb or postgres;
    all three programs must come from the same major version.
    """
    versions = []
    if PG_ROOT.is_dir():
        for entry in PG_ROOT.iterdir():
            bin_ = entry / "bin"
            if entry.name.isdigit() and (bin_ / "postgres").exists() and \
                    (bin_ / "initdb").exists():
                versions.append((int(entry.name), bin_))
    if versions:
        return max(versions)[1]
    return Path(which("postgres")).parent    # elsewhere: whatever PATH holds


def program(name: str) -> str:
    path = bindir() / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{name} is not installed (run: whathappens lab install)")
    return str(path)


@functools.cache
def version(argv0: str) -> str:
    """``X.Y`` from ``<program> --version`` (postgres, pgbouncer, redis-server); "" if none."""
    try:
        out = subprocess.run([argv0, "--version"], capture_output=True, text=True,
                             timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = re.search(r"\d+\.\d+(?:\.\d+)?", out)
    return found.group(0) if found else ""


def run_as(user: str | None, argv: list[str], cwd: Path,
           timeout: float = COMMAND_TIMEOUT) -> None:
    """Run a setup command (initdb, pg_basebackup) as ``user`` when root; LabError if it fails."""
    as_user = user if os.geteuid() == 0 else None
    env = dict(os.environ)
    if as_user is not None:
        # Its own HOME, not root's: libpq looks there for ~/.pgpass, and pg_basebackup -R
        # writes that path into primary_conninfo.
        env["HOME"] = pwd.getpwnam(as_user).pw_dir
    run_checked(argv, cwd=cwd, name=Path(argv[0]).name, shown=" ".join(argv), env=env,
                user=as_user, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Shared with the other data tiers


def ensure_reachable(ctx: LabContext, path: Path, user: str | None) -> None:
    """Make sure a program running as ``user`` can enter ``path`` (its tier directory).

    The tier directory itself is given to ``user`` (``chown_to``); every directory above it
    must be searchable (x) by that user. The lab's own directories (the state directory and
    its ``tiers``) get o+x added if they lack it; anything above the state directory is not
    ours to change, so a LabError says which directory blocks and how to fix it. A typical
    case: pytest's /tmp/pytest-of-root is 0700. (POSIX ACLs are not consulted.)
    """
    if user is None or os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, pw.pw_gid))
    state = ctx.state.resolve()
    ours = {state, state / "tiers"}
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if st.st_mode & bit:
            continue
        if parent in ours:
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            continue
        raise LabError(
            f"{user} cannot enter {parent} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid "
            f"{st.st_uid}), so it cannot reach {path}: keep the lab's state under directories "
            f"other users can search, or run: chmod o+x {parent}")


def user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def connect(address: str, port: int, dbname: str, user: str,
            timeout: int = 2) -> psycopg.Connection[TupleRow]:
    """A psycopg 3 connection in autocommit mode.

    ``prepare_threshold=None``: no server-side prepared statements, which PgBouncer before
    1.21 cannot carry across transactions in transaction pooling mode
    (https://www.psycopg.org/psycopg3/docs/advanced/prepare.html#using-prepared-statements-with-pgbouncer).
    """
    try:
        import psycopg
    except ImportError as e:  # the lab extra is not installed
        raise LabError("the lab needs psycopg 3: pip install 'psycopg[binary]'") from e
    return psycopg.connect(host=address, port=port, dbname=dbname, user=user,
                           connect_timeout=timeout, autocommit=True, prepare_threshold=None,
                           application_name="whathappens-lab")


def socket_dir(directory: Path, port: int) -> str:
    """``directory`` for the Unix socket, or "" (none; TCP only) when the socket's path
    would be too long for a sockaddr_un (a deep state directory)."""
    if len(str(directory / f".s.PGSQL.{port}.lock")) > SOCKET_PATH_MAX:
        return ""
    return str(directory)


def quote(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# Tiers

# Lab only: anyone on the loopback network may connect as any role, replication included,
# with no password. The lab binds to 127.0.x.y addresses only; never do this on a network.
# https://www.postgresql.org/docs/15/auth-pg-hba-conf.html
PG_HBA = """\
# Written by whathappens lab. LAB ONLY: trust = no password for anyone on loopback.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.0/8   trust
host    replication  all   127.0.0.0/8   trust
"""

# '2026-11-22 00:56:46.315 UTC [23653] site@site app=… LOG:  duration: 0.331 ms  statement: …
# /*traceparent='00-<trace>-<span>-01'*/' — log_line_prefix '%m [%p] …' and
# log_min_duration_statement = 0 (every statement, logged when it ends, with its duration).
STATEMENT_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[(?P<pid>\d+)\].*?"
    r"duration: (?P<ms>[\d.]+) ms\s+(?:statement|execute [^:]*): .*"
    r"traceparent='00-[0-9a-f]{32}-(?P<span>[0-9a-f]{16})-01'")

# What ``X-Explain: 1`` reads (site/explain.py), made once in the site's database (the replica
# gets it by replication). pageinspect (in Debian's postgresql-15 package, as contrib) lets
# only superusers read index pages, so the site gets one narrow SECURITY DEFINER function:
# the depth of a B-tree index of its own schema. LAB ONLY: a function running as superuser.
# https://www.postgresql.org/docs/15/pageinspect.html#PAGEINSPECT-B-TREE-FUNCS
EXPLAIN_SETUP = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE EXTENSION IF NOT EXISTS pageinspect",
    "CREATE OR REPLACE FUNCTION public.lab_btree_level(index_name text) RETURNS integer "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS "
    "$$ SELECT level::integer FROM bt_metap(index_name) $$",
    "REVOKE ALL ON FUNCTION public.lab_btree_level(text) FROM PUBLIC",
    f"GRANT EXECUTE ON FUNCTION public.lab_btree_level(text) TO {SITE_ROLE}",
)

# '2026-11-22 00:56:46.315 UTC [23653] site@site app=[unknown] LOG:  connection authorized: …'
AUTHORIZED_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[(?P<pid>\d+)\].*?"
    r"LOG:  connection authorized:")


def wall_ns(stamp: str) -> int:
    """A log_line_prefix %m time (UTC, milliseconds) as Unix nanoseconds."""
    when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return int(when.timestamp() * 1e9)


INCLUDE = "include 'lab.conf'   # whathappens lab: per-host settings, rewritten on each start\n"


class PostgresBase(SpecTier):
    user = "postgres"    # PostgreSQL refuses to run as root
    # How to stop it: SIGINT is PostgreSQL's "fast" shutdown (clients disconnected, clean
    # checkpoint). SIGTERM is "smart" shutdown, which waits for every client to leave: with
    # PgBouncer or Django holding connections it never ends by itself. Each postmaster
    # child is in a session of its own (setsid), so signalling the group reaches only the
    # postmaster. https://www.postgresql.org/docs/15/server-shutdown.html
    stop_signal = signal.SIGINT

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.pg_port = self.listen_port("PostgreSQL")

    def data(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "data"

    def socket_dir(self, ctx: LabContext) -> str:
        return socket_dir(ctx.dir(self.name), self.pg_port)

    def settings(self, ctx: LabContext) -> str:
        return "\n".join([
            f"# Written by whathappens lab for tier {self.name}; rewritten on every start.",
            "# https://www.postgresql.org/docs/15/runtime-config.html",
            f"listen_addresses = {quote(self.address)}   # this host's address only",
            f"port = {self.pg_port}",
            # Not /var/run/postgresql: the lab owns nothing outside its state directory.
            f"unix_socket_directories = {quote(self.socket_dir(ctx))}",
            # Shown in process titles (ps) and, on a standby, the application_name it
            # streams under, so pg_stat_replication on the primary names the replica.
            f"cluster_name = {quote(self.name)}",
            "",
            "# Replication: a primary with WAL senders, standbys that answer reads.",
            "wal_level = replica",
            "max_wal_senders = 10",
            "wal_keep_size = 256MB        # no slot: keep enough WAL for a replica to catch up",
            "hot_standby = on",
            # The primary's vacuum keeps rows the replica's queries still read, so fewer
            # replica reads are cancelled by replication conflicts.
            "hot_standby_feedback = on",
            "",
            "# LAB ONLY, for speed and a small footprint: a crash may lose or corrupt data.",
            "shared_buffers = 32MB",
            "fsync = off",
            "synchronous_commit = off",
            # With synchronous_commit off, a commit's WAL is flushed (and so streamed to the
            # replica: walsenders send flushed WAL only) by the WAL writer, every
            # wal_writer_delay (default 200 ms). 10 ms keeps replication lag near zero.
            "wal_writer_delay = 10ms",
            "",
            "# Logging for the lab timeline: every statement with its duration, to stderr.",
            "# https://www.postgresql.org/docs/15/runtime-config-logging.html",
            "log_destination = 'stderr'",
            "logging_collector = off",
            "log_timezone = 'UTC'",
            # Django sets the session to UTC on every new connection unless the server
            # already is: one round trip saved per connection.
            "timezone = 'UTC'",
            # %m: time with milliseconds, %p: pid; after %q only for sessions:
            # %u@%d: user@database, %a: application_name (the app puts its trace there).
            "log_line_prefix = '%m [%p] %q%u@%d app=%a '",
            "log_min_duration_statement = 0",
            "log_connections = on",
            "log_disconnections = on",
            "log_replication_commands = on",
            "",
            "# Per-statement statistics (calls, mean time, rows), read back by the site for a",
            "# request sent with X-Explain: 1. Loading the module needs a restart, so it is here.",
            "# https://www.postgresql.org/docs/15/pgstatstatements.html",
            "shared_preload_libraries = 'pg_stat_statements'",
            "compute_query_id = on        # EXPLAIN VERBOSE then names the statement's queryid",
            "pg_stat_statements.track = top",
            "",
        ])

    def write_config(self, ctx: LabContext) -> None:
        data = self.data(ctx)
        (data / "lab.conf").write_text(self.settings(ctx))
        (data / "pg_hba.conf").write_text(PG_HBA)
        conf = data / "postgresql.conf"
        text = conf.read_text()
        if INCLUDE not in text:
            conf.write_text(text + ("" if text.endswith("\n") else "\n") + INCLUDE)

    def check_version(self, ctx: LabContext) -> None:
        made = (self.data(ctx) / "PG_VERSION").read_text().strip()
        have = bindir().parent.name
        if have.isdigit() and made != have:
            raise LabError(f"{self.data(ctx)} was made by PostgreSQL {made}, this is {have}: "
                           f"remove it (whathappens lab down --purge) to start afresh")

    def fresh_dir(self, ctx: LabContext) -> bool:
        """True when the data directory must be made; clears a half-made one."""
        data = self.data(ctx)
        if (data / "PG_VERSION").exists():
            return False
        if data.exists():      # an interrupted initdb or pg_basebackup
            shutil.rmtree(data)
        return True

    def command(self, ctx: LabContext) -> list[str]:
        # In the foreground (not pg_ctl), so the process layer owns and records the postmaster.
        return [program("postgres"), "-D", str(self.data(ctx))]

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """PostgreSQL's own timing of each statement of the trace. Each goes under the SQL
        span whose id Django put in the statement's comment (sqlcommenter): its
        ``parent_id``."""
        out = []
        opened: dict[int, int] = {}
        for line in tail_lines(ctx.log(self.name)):
            if (c := AUTHORIZED_LINE.match(line)) is not None:
                opened[int(c["pid"])] = wall_ns(c["ts"])
            m = STATEMENT_LINE.match(line) if trace_id in line else None
            if m is None:
                continue
            end_ns = wall_ns(m["ts"])
            took_ns = int(float(m["ms"]) * 1e6)
            span = ServerSpan(
                "postgres", self.name, f"PostgreSQL {self.name} (backend pid {m['pid']})",
                end_ns - took_ns, end_ns, "",
                {"duration_ms": float(m["ms"]), "backend_pid": int(m["pid"]),
                 "note": "PostgreSQL's own statement time; its log stamps whole milliseconds"},
                parent_id=m["span"])
            span.connections = self.backend_hop(int(m["pid"]), opened, span.start_wall_ns)
            out.append(span)
        return out

    def backend_hop(self, pid: int, opened: dict[int, int],
                    start_ns: int) -> list[HopConnectionFacts]:
        """The backend that ran the statement: since when it exists (its "connection
        authorized" line). Whether that was during this request is settled by the timeline,
        which knows when the request reached Django."""
        pools = [s.name for s in self.topo.tiers if s.kind == "pgbouncer"
                 and self.name in (s.options.get("primary"), s.options.get("replica"))]
        since = opened.get(pid)
        when = (datetime.fromtimestamp(since / 1e9, UTC).strftime("at %H:%M:%S.%f")[:-3]
                if since is not None else "before the part of the log read")
        return [HopConnectionFacts(
            hop=f"{pools[0] if pools else 'app'} → {self.name}",
            age_ms=round((start_ns - since) / 1e6, 1) if since is not None else None,
            evidence=(f"PostgreSQL's log: backend pid {pid} authorized its connection {when}"
                      + (" (PgBouncer lends it per transaction)" if pools else "")))]

    def describe(self) -> dict[str, object]:
        facts = super().describe()
        with contextlib.suppress(FileNotFoundError):
            facts["version"] = version(program("postgres"))
        return facts


class PostgresPrimary(PostgresBase):
    kind = "postgres-primary"

    def prepare(self, ctx: LabContext) -> None:
        tier_dir = ctx.dir(self.name)
        ensure_reachable(ctx, tier_dir, self.user)
        chown_to(tier_dir, self.user)
        if self.fresh_dir(ctx):
            # --no-sync: nothing here must survive a crash (lab only). --locale=C: no
            # dependency on the host's locales, and byte-order collation (fast, predictable).
            run_as(self.user, [program("initdb"), "-D", str(self.data(ctx)), "-U", SUPERUSER,
                               "--auth=trust", "--encoding=UTF8", "--locale=C",
                               "--no-sync", "--no-instructions"], cwd=tier_dir)
        self.check_version(ctx)
        self.write_config(ctx)
        chown_to(tier_dir, self.user)

    def ready(self, ctx: LabContext) -> bool:
        with connect(self.address, self.pg_port, "postgres", SUPERUSER) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return row is not None and row[0] is False

    def after_ready(self, ctx: LabContext) -> None:
        """The site's role and database, once (a replica gets them by replication)."""
        from psycopg import sql

        with connect(self.address, self.pg_port, "postgres", SUPERUSER) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                            (SITE_ROLE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(SITE_ROLE)))
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (SITE_DB,)).fetchone() is None:
                # Owner of the database, so also of its public schema (PostgreSQL 15:
                # pg_database_owner), where Django's migrations create the tables.
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(SITE_DB), sql.Identifier(SITE_ROLE)))
        with connect(self.address, self.pg_port, SITE_DB, SUPERUSER) as conn:
            for statement in EXPLAIN_SETUP:
                conn.execute(statement)


class PostgresReplica(PostgresBase):
    kind = "postgres-replica"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.primary = str(spec.options["primary"])
        self.depends = (self.primary,)

    def prepare(self, ctx: LabContext) -> None:
        tier_dir = ctx.dir(self.name)
        ensure_reachable(ctx, tier_dir, self.user)
        chown_to(tier_dir, self.user)
        if self.fresh_dir(ctx):
            address, port = self.topo.endpoint(self.primary)
            # -R: write standby.signal and primary_conninfo (postgresql.auto.conf), so the
            # copy starts as a standby streaming from the primary. -X stream: the WAL made
            # during the copy comes along. -c fast: checkpoint now rather than spread out.
            # https://www.postgresql.org/docs/15/app-pgbasebackup.html
            run_as(self.user, [program("pg_basebackup"), "-h", address, "-p", str(port),
                               "-U", SUPERUSER, "-D", str(self.data(ctx)), "-R",
                               "-X", "stream", "-c", "fast", "--no-sync"], cwd=tier_dir)
        self.check_version(ctx)
        self.write_config(ctx)
        chown_to(tier_dir, self.user)

    def ready(self, ctx: LabContext) -> bool:
        """Answering read queries, as a standby (``lab status`` asks this too: a replica
        whose primary is down still serves reads, so streaming is not part of it)."""
        with connect(self.address, self.pg_port, "postgres", SUPERUSER) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return row == (True,)

    def streaming(self) -> bool:
        with connect(self.address, self.pg_port, "postgres", SUPERUSER) as conn:
            row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
        return row == ("streaming",)

    def after_ready(self, ctx: LabContext) -> None:
        """Up means replicating: wait (bounded) until the WAL receiver streams."""
        deadline = time.monotonic() + STREAMING_TIMEOUT
        while not self.streaming():
            if time.monotonic() > deadline:
                raise LabError(
                    f"{self.name} answers but is not streaming from {self.primary} after "
                    f"{STREAMING_TIMEOUT:g} s (see its log; if the primary was made afresh, "
                    f"remove {self.data(ctx)} so that a new base backup is taken)")
            time.sleep(0.05)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "replicates": self.primary}
