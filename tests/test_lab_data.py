"""The lab's data tiers, for real: PostgreSQL primary + streaming replica, PgBouncer, Redis.

Brought up once for the module with the process layer (``process.start``/``stop``) on the
production topology's addresses, then asked real questions: does a write through the pool
reach the replica, does the replica refuse writes, does Redis answer; and finally, does
stopping leave no process and no listening port. Skipped only when the programs are not
installed (CI installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from whathappens.lab import process
from whathappens.lab.tier import LabContext, Tier, port_open
from whathappens.lab.tiers import build
from whathappens.lab.tiers.pgbouncer import READ_ONLY_DB
from whathappens.lab.tiers.postgres import SITE_DB, SITE_ROLE, SUPERUSER, connect
from whathappens.lab.topology import Topology, production

PROGRAMS = ["/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/postgres",
            "/usr/lib/postgresql/15/bin/pg_basebackup", "/usr/sbin/pgbouncer",
            "/usr/bin/redis-server"]
MISSING = [p for p in PROGRAMS if not os.access(p, os.X_OK)]
if MISSING:
    pytest.skip(f"lab data tiers need PostgreSQL 15, PgBouncer and Redis; missing: "
                f"{', '.join(MISSING)} (run: whathappens lab install)", allow_module_level=True)

psycopg = pytest.importorskip("psycopg", reason="the lab extra (psycopg 3) is not installed")
redis = pytest.importorskip("redis", reason="the lab extra (redis) is not installed")

TIERS = ("db-primary", "db-replica", "pgbouncer", "redis")
UP_GOAL = 30.0          # the whole lab's goal on 2 cores; these four take a fraction


@dataclass
class Lab:
    ctx: LabContext
    topo: Topology
    tiers: dict[str, Tier]
    times: dict[str, float] = field(default_factory=dict)
    total: float = 0.0

    def endpoint(self, name: str) -> tuple[str, int]:
        return self.topo.endpoint(name)


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def lab_topology() -> Topology:
    """The production topology; its data tiers moved to free ports if another lab holds them."""
    topo = production()
    if not any(port_open(*topo.endpoint(name)) for name in TIERS):
        return topo
    tiers = [replace(s, port=free_port(topo.address(s.host))) if s.name in TIERS else s
             for s in topo.tiers]
    return Topology(topo.profile, topo.hosts, tiers)


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    """A state directory the postgres and redis users can reach.

    Not pytest's tmp_path: /tmp/pytest-of-root is 0700, so PostgreSQL (running as postgres)
    could not enter it (see test_unreachable_state_dir_is_reported).
    """
    path = Path(tempfile.mkdtemp(prefix="whathappens-lab-data-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(state: Path) -> Iterator[Lab]:
    topo = lab_topology()
    ctx = LabContext(state=state / "lab")
    tiers = {name: build(topo, topo.spec(name)) for name in TIERS}
    up = Lab(ctx, topo, tiers)
    t0 = time.monotonic()
    try:
        for name, tier in tiers.items():
            started = time.monotonic()
            process.start(tier, ctx)
            up.times[name] = time.monotonic() - started
        up.total = time.monotonic() - t0
        yield up
    finally:
        for name in reversed(TIERS):
            process.stop(ctx, name)


def site(lab: Lab, dbname: str = SITE_DB) -> psycopg.Connection[tuple[object, ...]]:
    address, port = lab.endpoint("pgbouncer")
    return connect(address, port, dbname, SITE_ROLE)


def test_up_in_time(lab: Lab) -> None:
    for name, seconds in lab.times.items():
        print(f"{name:<11} up in {seconds:.2f} s")
    print(f"all four up in {lab.total:.2f} s")
    assert lab.total < UP_GOAL


def test_write_on_primary_reaches_replica_through_the_pool(lab: Lab) -> None:
    with site(lab) as rw:
        rw.execute("CREATE TABLE replicated (id int PRIMARY KEY, note text)")
        rw.execute("INSERT INTO replicated VALUES (1, 'written on the primary')")
    written = time.monotonic()
    seen = None
    with site(lab, READ_ONLY_DB) as ro:
        while time.monotonic() - written < 1.0:
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                seen = ro.execute("SELECT note FROM replicated WHERE id = 1").fetchone()
                if seen is not None:
                    break
            time.sleep(0.005)
    print(f"on the replica after {1000 * (time.monotonic() - written):.1f} ms")
    assert seen == ("written on the primary",)


def test_replica_refuses_writes(lab: Lab) -> None:
    with site(lab, READ_ONLY_DB) as ro, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        ro.execute("CREATE TABLE nope (id int)")


def test_primary_streams_to_the_replica(lab: Lab) -> None:
    with connect(*lab.endpoint("db-primary"), "postgres", SUPERUSER) as conn:
        rows = conn.execute("SELECT application_name, state FROM pg_stat_replication").fetchall()
    assert ("db-replica", "streaming") in rows
    with connect(*lab.endpoint("db-replica"), "postgres", SUPERUSER) as conn:
        row = conn.execute("SELECT pg_is_in_recovery(), status FROM pg_stat_wal_receiver")
        assert row.fetchone() == (True, "streaming")


def test_pgbouncer_admin_console_shows_pools(lab: Lab) -> None:
    address, port = lab.endpoint("pgbouncer")
    with connect(address, port, "pgbouncer", SUPERUSER) as console:
        cur = console.execute("SHOW POOLS")
        columns = [c.name for c in cur.description or []]
        pools = {row[columns.index("database")]: row for row in cur.fetchall()}
    assert {SITE_DB, READ_ONLY_DB} <= pools.keys()
    assert pools[SITE_DB][columns.index("pool_mode")] == "transaction"


def test_redis_set_get(lab: Lab) -> None:
    address, port = lab.endpoint("redis")
    client = redis.Redis(host=address, port=port, socket_timeout=2)
    try:
        client.set("product:42", "cached", ex=60)
        assert client.get("product:42") == b"cached"
        assert 0 < client.ttl("product:42") <= 60
        # Every command lands in the slow log, with its duration: the timeline's source.
        logged = [entry["command"] for entry in client.slowlog_get(10)]
        assert any(cmd.startswith(b"SET product:42") for cmd in logged), logged
    finally:
        client.close()


def test_replica_restarts_from_its_data(lab: Lab) -> None:
    """A second start reuses the data directory (no new base backup) and streams again."""
    replica = lab.tiers["db-replica"]
    backup_label = lab.ctx.dir("db-replica") / "data" / "backup_label.old"
    made = backup_label.stat().st_mtime
    # PgBouncer holds a connection to the replica: process.stop must send the fast shutdown
    # (SIGINT) the tier declares, not SIGTERM's smart one, or this would take 10 s.
    stopping = time.monotonic()
    process.stop(lab.ctx, "db-replica")
    assert time.monotonic() - stopping < 5
    assert "database system is shut down" in process.log_tail(lab.ctx.log("db-replica"), 3)
    started = time.monotonic()
    process.start(replica, lab.ctx)
    print(f"db-replica restarted in {time.monotonic() - started:.2f} s")
    assert backup_label.stat().st_mtime == made
    with site(lab, READ_ONLY_DB) as ro:
        assert ro.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone() == (1,)


def listeners() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket, from /proc/net/tcp and tcp6."""
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                local, st = line.split()[1], line.split()[3]
                if st != "0A":      # LISTEN
                    continue
                addr_hex, port_hex = local.split(":")
                raw = bytes.fromhex(addr_hex)
                # the kernel prints each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
                family = socket.AF_INET if size == 4 else socket.AF_INET6
                found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def test_each_tier_listens_on_its_own_address_only(lab: Lab) -> None:
    listening = listeners()
    for name in TIERS:
        address, port = lab.endpoint(name)
        assert (address, port) in listening, name
        assert ("0.0.0.0", port) not in listening
        assert ("::", port) not in listening


def test_tier_directories_belong_to_the_tier_user(lab: Lab) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs the tiers as another user")
    import pwd

    for name, tier in lab.tiers.items():
        if tier.user is not None:
            uid = pwd.getpwnam(tier.user).pw_uid
            for path in [lab.ctx.dir(name), *lab.ctx.dir(name).iterdir()]:
                assert path.stat().st_uid == uid, path


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the tiers as another user")
def test_unreachable_state_dir_is_reported(state: Path) -> None:
    blocked = state / "blocked"
    blocked.mkdir(mode=0o700)
    blocked.chmod(0o700)
    ctx = LabContext(state=blocked / "lab")
    tier = build(production(), production().spec("db-primary"))
    with pytest.raises(process.LabError, match=f"postgres cannot enter {blocked}"):
        tier.prepare(ctx)


def group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid and process.alive(int(entry)):
                    found.append(int(entry))
    return found


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (PostgreSQL's children each call setsid(), so
    they are not in the postmaster's process group)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def titled(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read() and process.alive(int(entry)):
                    found.append(int(entry))
    return found


def test_stop_leaves_no_process_and_no_port(lab: Lab) -> None:
    """Last in the module: stop each tier and look for anything left behind."""
    recorded = {rec.tier: rec for rec in process.records(lab.ctx)}
    assert set(TIERS) <= recorded.keys()
    for name in reversed(TIERS):
        rec = recorded[name]
        kids = children(rec.pid)
        if name.startswith("db-"):
            assert kids, "a postmaster has children: checkpointer, WAL writer, …"
        started = time.monotonic()
        assert process.stop(lab.ctx, name)
        print(f"{name:<11} stopped in {time.monotonic() - started:.2f} s")
        assert not process.alive(rec.pid)
        assert group_members(rec.pid) == []
        assert [pid for pid in kids if process.alive(pid)] == []
        assert not port_open(*lab.endpoint(name))
    assert titled(str(lab.ctx.state)) == []
    stat_ = (lab.ctx.dir("db-primary") / "data").stat()
    assert stat.S_IMODE(stat_.st_mode) == 0o700    # PostgreSQL insists on it
