"""The lab's Django site behind gunicorn, with its Celery worker, on real data tiers.

PostgreSQL primary + streaming replica, PgBouncer and Redis are the lab's own tiers, started
with the process layer like ``lab up`` does; then two gunicorn app nodes (started together,
so their migrations race and the lock must hold) and the Celery worker. The topology is
the production one moved to a loopback range of its own (127.N.9x.y), so a lab or another
test module running on this machine keeps its addresses.

Asked for real: the pages by slug (a SQL span on the replica, with the trace id sent and an
EXPLAIN on request), products cached in Redis (miss, then hit), the contact form (CSRF, 202,
the worker marks the message sent, even when its process is killed mid-task), the router's
aliases, the health checks, and the JSON lines of gunicorn's access log. Skipped only when
the programs or the lab's Python packages are missing.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from lab_helpers import lab_subnet
from whathappens.lab import process
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.tiers import build
from whathappens.lab.topology import Topology, production, single

PROGRAMS = ["/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/postgres",
            "/usr/lib/postgresql/15/bin/pg_basebackup", "/usr/sbin/pgbouncer",
            "/usr/bin/redis-server"]
MISSING = [p for p in PROGRAMS if not os.access(p, os.X_OK)]
if MISSING:
    pytest.skip(f"the lab site needs PostgreSQL 15, PgBouncer and Redis; missing: "
                f"{', '.join(MISSING)} (run: whathappens lab install)", allow_module_level=True)
for _module in ("django", "gunicorn", "celery", "psycopg", "redis"):
    pytest.importorskip(_module, reason=f"the lab extra ({_module}) is not installed")

import psycopg  # noqa: E402

from whathappens.lab.site.tracing import parse_traceparent  # noqa: E402
from whathappens.lab.tiers.gunicorn import site_env  # noqa: E402

DATA = ("db-primary", "db-replica", "pgbouncer", "redis")
APPS = ("app-1-gunicorn", "app-2-gunicorn")
WORKER = "worker"
START_GOAL = 10.0        # seconds, for one gunicorn tier or the worker (about 1.5 s here)


@dataclass
class Site:
    ctx: LabContext
    topo: Topology
    tiers: dict[str, Tier]
    times: dict[str, float] = field(default_factory=dict)

    def app(self, name: str = "app-1-gunicorn") -> tuple[str, int]:
        return self.topo.endpoint(name)

    def spans(self, name: str) -> list[dict[str, Any]]:
        path = self.ctx.state / "logs" / f"{name}.spans.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def span_line(self, name: str, trace_id: str, kind: str,
                  timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.spans(name):
                if line["trace_id"] == trace_id and line["kind"] == kind:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} span line for trace {trace_id} in {name}")
            time.sleep(0.05)

    def db(self, dbname: str = "site") -> psycopg.Connection[Any]:
        address, port = self.topo.endpoint("pgbouncer")
        return psycopg.connect(host=address, port=port, dbname=dbname, user="site",
                               autocommit=True, prepare_threshold=None, connect_timeout=3)


def relocated(topo: Topology) -> Topology:
    """The topology on 127.N.x.y instead of 127.0.x.y, N picked at random."""
    n = lab_subnet()
    hosts = {name: replace(h, address=re.sub(r"^127\.0\.", f"127.{n}.", h.address))
             for name, h in topo.hosts.items()}
    return Topology(topo.profile, hosts, topo.tiers)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700 and PostgreSQL runs as postgres.
    state = Path(tempfile.mkdtemp(prefix="whathappens-lab-site-"))
    state.chmod(0o755)
    topo = relocated(production())
    ctx = LabContext(state=state / "lab")
    names = (*DATA, *APPS, WORKER)
    up = Site(ctx, topo, {name: build(topo, topo.spec(name)) for name in names})
    started: list[str] = []
    try:
        for name in DATA:
            t0 = time.monotonic()
            process.start(up.tiers[name], ctx)
            started.append(name)
            up.times[name] = time.monotonic() - t0

        # Both app nodes at once: migrations and collectstatic run in each, under a lock.
        errors: list[BaseException] = []

        def start_app(name: str) -> None:
            t0 = time.monotonic()
            try:
                process.start(up.tiers[name], ctx)
            except BaseException as e:
                errors.append(e)
            up.times[name] = time.monotonic() - t0

        threads = [threading.Thread(target=start_app, args=(name,)) for name in APPS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started += APPS
        if errors:
            raise errors[0]
        t0 = time.monotonic()
        process.start(up.tiers[WORKER], ctx)
        started.append(WORKER)
        up.times[WORKER] = time.monotonic() - t0
        yield up
    finally:
        for name in reversed(started):
            process.stop(ctx, name)
        shutil.rmtree(state, ignore_errors=True)


# -- HTTP, with cookies and the W3C traceparent ---------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


class Client:
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None) -> Reply:
        sent = {"Host": "www.example.com", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(self.address, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            text = resp.read().decode()
            for value in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, text)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)


def traceparent() -> tuple[str, str, str]:
    trace_id, parent_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


def sql_spans(line: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in line["spans"] if s["name"] == "sql"]


def post_contact(client: Client, name: str, extra: dict[str, str] | None = None,
                 ) -> tuple[Reply, str]:
    assert client.get("/contact/").status == 200          # sets the CSRF cookie
    token = client.cookies["csrftoken"]
    trace_id, _, header = traceparent()
    reply = client.request("POST", "/contact/", headers={"traceparent": header, **(extra or {})},
                           form={"name": name, "email": "someone@example.com",
                                 "message": f"hello from {name}",
                                 "csrfmiddlewaretoken": token})
    return reply, trace_id


def wait_sent(site: Site, task_id: str, timeout: float = 10.0) -> tuple[Any, ...]:
    deadline = time.monotonic() + timeout
    with site.db() as conn:
        while True:
            row = conn.execute("SELECT attempts, sent_at, worker FROM contact_messages"
                               " WHERE task_id = %s", (task_id,)).fetchone()
            if row is not None and row[1] is not None:
                return tuple(row)
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} did not mark its message sent: {row}")
            time.sleep(0.05)


# -- tests -------------------------------------------------------------------------------------


def test_tiers_start_in_time(site: Site) -> None:
    for name, seconds in site.times.items():
        print(f"{name:<15} up in {seconds:.2f} s")
    for name in (*APPS, WORKER):
        assert site.times[name] < START_GOAL


def test_migrations_applied_seeded_and_slug_indexed(site: Site) -> None:
    with site.db() as conn:
        applied = {r[0] for r in conn.execute(
            "SELECT name FROM django_migrations WHERE app = 'site'").fetchall()}
        assert {"0001_initial", "0002_seed"} <= applied
        slugs = {r[0] for r in conn.execute("SELECT slug FROM pages").fetchall()}
        assert {"home", "about"} <= slugs
        (products,) = conn.execute("SELECT count(*) FROM products").fetchone() or (0,)
        assert products == 10
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes"
                                    " WHERE tablename = 'pages'").fetchall())
    # A real B-tree index on slug, named as in the seeds' plan.
    assert "idx_pages_slug" in indexes
    assert re.search(r"USING btree \(slug\)", indexes["idx_pages_slug"])


def test_home_page_traced_on_the_replica_with_its_plan(site: Site) -> None:
    client = Client(*site.app())
    trace_id, parent_id, header = traceparent()
    reply = client.get("/", headers={"traceparent": header, "X-Explain": "1"})
    assert reply.status == 200
    assert "Welcome to www.example.com" in reply.body
    assert re.search(r'href="/static/site\.[0-9a-f]{12}\.css"', reply.body)
    timing = reply.headers["server-timing"]
    assert re.search(r"\bapp;dur=[\d.]+", timing)
    assert re.search(r'\bdb;dur=[\d.]+;desc="2 queries"', timing)
    assert re.search(r"\bcache;dur=[\d.]+", timing)
    assert reply.headers["traceresponse"].startswith(f"00-{trace_id}-")

    line = site.span_line("app-1-gunicorn", trace_id, "django")
    assert line["parent_id"] == parent_id
    assert line["tier"] == "app-1"
    assert (line["method"], line["path"], line["status"], line["view"]) == ("GET", "/", 200,
                                                                             "home")
    page = [s for s in sql_spans(line) if 'FROM "pages"' in s["sql"]]
    assert len(page) == 1
    span = page[0]
    assert span["alias"] == "replica"
    assert re.search(r"WHERE .*\"slug\" = 'home'", span["sql"])
    assert span["rows"] == 1
    # X-Explain: 1 — the main query, step by step, by PostgreSQL itself (site/explain.py)
    plan = span["explain"]
    print("the page query, step by step:\n" + json.dumps(plan, indent=1))
    assert "errors" not in plan
    assert any("Index Scan using idx_pages_slug" in t for t in plan["tree"])
    assert plan["planning_ms"] > 0
    assert plan["execution_ms"] > 0
    assert plan["shared_hit"] + plan["shared_read"] >= 1
    assert plan["rejected_by"] == ["enable_indexscan", "enable_bitmapscan",
                                   "enable_indexonlyscan"]
    assert any("Seq Scan on pages" in t for t in plan["rejected"]["tree"])
    assert plan["rejected"]["total_cost"] > plan["total_cost"]   # why the index won
    assert plan["btree"] == {"index": "idx_pages_slug", "level": 0, "depth": 1}
    assert plan["statements"]["calls"] >= 1
    assert plan["statements"]["rows"] >= 1
    # the other SELECT keeps the plain plan; the explain's own cost is a span of its own
    assert isinstance(next(s for s in sql_spans(line) if s is not span)["explain"], str)
    assert [s["name"] for s in line["spans"]].count("explain") == 1
    assert re.search(r'\bexplain;dur=[\d.]+;desc="X-Explain: extra statements"', timing)
    # Django's phases: middleware, view, middleware; the template inside the view
    phases = [s for s in line["spans"] if s["name"] in ("middleware", "view")]
    assert [(s["name"], s.get("phase")) for s in phases] == [
        ("middleware", "request"), ("view", None), ("middleware", "response")]
    assert phases[0]["end_ns"] == phases[1]["start_ns"] <= phases[1]["end_ns"] == \
        phases[2]["start_ns"]
    [template] = [s for s in line["spans"] if s["name"] == "template"]
    assert template["template"] == "site/page.html"
    assert phases[1]["start_ns"] <= template["start_ns"] <= template["end_ns"] <= \
        phases[1]["end_ns"]
    [conn] = line["connections"]
    assert conn["alias"] == "replica"
    assert isinstance(conn["new"], bool)
    assert conn["requests"] >= 1
    # Spans nest inside the request, on the wall clock.
    for s in line["spans"]:
        assert line["start_ns"] <= s["start_ns"] <= s["end_ns"] <= line["end_ns"]
    # The query reached PostgreSQL (through PgBouncer) with its trace and span ids as a
    # sqlcommenter comment: the replica's statement log names them, with the duration.
    mark = f"traceparent='00-{trace_id}-{span['span_id']}-01'"
    log = site.ctx.log("db-replica")
    deadline = time.monotonic() + 5
    while not any(mark in x and "duration:" in x for x in log.read_text().splitlines()):
        assert time.monotonic() < deadline, f"{mark} is not in the replica's log"
        time.sleep(0.05)


def test_static_files_collected(site: Site) -> None:
    css = site.ctx.state / "static" / "site.css"
    assert css.is_file()
    assert "font" in css.read_text()


def test_pages_link_collected_static_files_by_hashed_name(site: Site) -> None:
    """Every page links its CSS, JS and images under /static/ by the name collectstatic gave
    them (a content hash in it), and each of those files is there for nginx to serve."""
    client = Client(*site.app())
    links: set[str] = set()
    for path in ("/", "/product/1/", "/contact/"):
        reply = client.get(path)
        assert reply.status == 200, path
        links |= set(re.findall(r'(?:href|src)="(/static/[^"]+)"', reply.body))
    names = {re.sub(r"\.[0-9a-f]{12}\.", ".", link) for link in links}
    assert names == {"/static/site.css", "/static/site.js", "/static/images/logo.svg",
                     "/static/images/shop.svg", "/static/images/product.svg"}
    for link in links:
        assert re.search(r"\.[0-9a-f]{12}\.[a-z]+$", link), link
        assert (site.ctx.state / link.removeprefix("/")).is_file(), link


def test_product_is_cached_in_redis(site: Site) -> None:
    import redis

    address, port = site.topo.endpoint("redis")
    r = redis.Redis(host=address, port=port, socket_timeout=2)
    key = "site:1:product:5"
    r.delete(key)
    client = Client(*site.app())
    replies, lines = [], []
    for _ in range(2):
        trace_id, _, header = traceparent()
        replies.append(client.get("/product/5/", headers={"traceparent": header}))
        lines.append(site.span_line("app-1-gunicorn", trace_id, "django"))
    assert [x.status for x in replies] == [200, 200]
    assert [x.headers["x-cache-product"] for x in replies] == ["miss", "hit"]
    assert "Ergonomic mouse" in replies[1].body
    ttl = r.ttl(key)
    assert isinstance(ttl, int)
    assert 0 < ttl <= 30

    miss, hit = lines
    redis_miss = [s for s in miss["spans"] if s["name"] == "redis"]
    assert redis_miss[0]["command"] == f"GET {key}"
    assert redis_miss[0]["result"] == "miss"
    assert any(s["command"].startswith("SET") for s in redis_miss)
    assert [s["alias"] for s in sql_spans(miss)] == ["replica"]
    assert [(s["command"], s.get("result")) for s in hit["spans"] if s["name"] == "redis"] \
        == [(f"GET {key}", "hit")]
    assert sql_spans(hit) == []
    assert 'cache;dur=' in replies[1].headers["server-timing"]


def test_contact_post_enqueues_and_the_worker_marks_it_sent(site: Site) -> None:
    client = Client(*site.app("app-2-gunicorn"))
    reply, trace_id = post_contact(client, "Ada")
    assert reply.status == 202, reply.body
    answer = json.loads(reply.body)
    assert answer["trace_id"] == trace_id
    task_id = answer["task_id"]

    attempts, _, worker = wait_sent(site, task_id)
    assert attempts == 1
    assert worker == "worker@lab"

    web = site.span_line("app-2-gunicorn", trace_id, "django")
    assert web["tier"] == "app-2"
    queued = [s for s in web["spans"] if s["name"] == "queue"]
    assert [s["task_id"] for s in queued] == [task_id]
    task = site.span_line("worker", trace_id, "celery")
    assert task["task_id"] == task_id
    assert task["parent_id"] == web["span_id"]          # the trace went on through the queue
    assert task["status"] == "ok"
    assert task["tier"] == "worker"
    assert task["enqueued_ns"] <= task["start_ns"]
    assert {s["alias"] for s in sql_spans(task)} == {"default"}


def test_contact_post_needs_the_csrf_token(site: Site) -> None:
    client = Client(*site.app())
    assert client.get("/contact/").status == 200
    reply = client.request("POST", "/contact/", form={"name": "x", "email": "x@example.com",
                                                      "message": "no token"})
    assert reply.status == 403


def test_router_reads_on_replica_writes_on_default(site: Site) -> None:
    client = Client(*site.app())
    trace_id, _, header = traceparent()
    assert client.get("/p/about/", headers={"traceparent": header}).status == 200
    read = site.span_line("app-1-gunicorn", trace_id, "django")
    assert [s["alias"] for s in sql_spans(read)] == ["replica"]

    reply, trace_id = post_contact(client, "Grace")
    assert reply.status == 202
    write = site.span_line("app-1-gunicorn", trace_id, "django")
    inserts = [s for s in sql_spans(write) if s["sql"].startswith("INSERT")]
    assert [s["alias"] for s in inserts] == ["default"]
    assert 'INTO "contact_messages"' in inserts[0]["sql"]


def test_health_checks(site: Site) -> None:
    client = Client(*site.app())
    trace_id, _, header = traceparent()
    health = client.get("/healthz", headers={"traceparent": header})
    assert (health.status, health.body) == (200, "ok")
    # No database, no Redis: HAProxy asks every 500 ms. (Django's own phases are there.)
    spans = site.span_line("app-1-gunicorn", trace_id, "django")["spans"]
    assert [s["name"] for s in spans] == ["middleware", "view", "middleware"]
    ready = client.get("/readyz")
    assert ready.status == 200
    assert json.loads(ready.body) == {"default": "ok", "replica": "ok", "redis": "ok"}


def test_unknown_page_is_404(site: Site) -> None:
    assert Client(*site.app()).get("/p/no-such-page/").status == 404


def test_gunicorn_access_log_is_json_with_the_traceparent(site: Site) -> None:
    client = Client(*site.app())
    _, _, header = traceparent()
    agent = 'lab "test" \\ agent'      # quotes and a backslash: still valid JSON
    assert client.get("/p/home/", headers={"traceparent": header,
                                           "User-Agent": agent}).status == 200
    log = site.ctx.log("app-1-gunicorn")
    deadline = time.monotonic() + 5
    while True:
        entries = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        mine = [e for e in entries if e["traceparent"] == header]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == 1
    entry = mine[0]
    assert (entry["tier"], entry["node"], entry["path"], entry["status"]) == \
        ("app-1-gunicorn", "app-1", "/p/home/", 200)
    assert isinstance(entry["duration_us"], int)
    assert isinstance(entry["duration_ms"], int)
    assert re.fullmatch(r"<\d+>", entry["pid"])
    assert entry["user_agent"] == agent


def test_worker_killed_mid_task_redelivers_the_task(site: Site) -> None:
    """acks-late + reject-on-worker-lost: the task goes back to the queue and runs again."""
    client = Client(*site.app())
    reply, _ = post_contact(client, "Linus", extra={"X-Lab-Task-Delay": "2"})
    assert reply.status == 202
    task_id = json.loads(reply.body)["task_id"]
    with site.db() as conn:
        deadline = time.monotonic() + 10
        while True:       # the task has started: its first attempt is counted
            row = conn.execute("SELECT attempts FROM contact_messages WHERE task_id = %s",
                               (task_id,)).fetchone()
            if row is not None and row[0] >= 1:
                break
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.02)
    record = process.Record.load(process.record_path(site.ctx, WORKER))
    assert record is not None
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == record.pid]
    assert children, "the prefork pool has no child"
    for pid in children:
        os.kill(pid, signal.SIGKILL)        # the pool process, mid-task; the worker lives on
    attempts, _, _ = wait_sent(site, task_id, timeout=15)
    assert attempts >= 2


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


# -- without servers ------------------------------------------------------------------------


def test_site_env_through_pgbouncer_or_straight_to_the_primary(tmp_path: Path) -> None:
    ctx = LabContext(state=tmp_path)
    prod = site_env(production(), ctx, node="app-1", name="app-1-gunicorn")
    assert (prod["WHATHAPPENS_DB_HOST"], prod["WHATHAPPENS_DB_PORT"]) == ("127.0.93.10", "6432")
    assert (prod["WHATHAPPENS_DB_NAME"], prod["WHATHAPPENS_DB_REPLICA_NAME"]) == ("site",
                                                                                   "site_ro")
    assert prod["WHATHAPPENS_REDIS_URL"] == "redis://127.0.94.1:6379/0"
    assert prod["WHATHAPPENS_BROKER_URL"] == "redis://127.0.94.1:6379/1"
    assert prod["WHATHAPPENS_SPAN_LOG"] == str(tmp_path / "logs" / "app-1-gunicorn.spans.jsonl")
    assert prod["WHATHAPPENS_STATIC_ROOT"] == str(tmp_path / "static")
    assert prod["DJANGO_SETTINGS_MODULE"] == "whathappens.lab.site.settings"
    one = site_env(single(), ctx, node="server", name="gunicorn")
    assert one["WHATHAPPENS_DB_HOST"] == one["WHATHAPPENS_DB_REPLICA_HOST"] == "127.0.96.1"
    assert one["WHATHAPPENS_DB_PORT"] == one["WHATHAPPENS_DB_REPLICA_PORT"] == "5432"
    assert one["WHATHAPPENS_DB_NAME"] == one["WHATHAPPENS_DB_REPLICA_NAME"] == "site"
    # One secret key for every node of a lab.
    assert prod["WHATHAPPENS_SECRET_KEY"] == one["WHATHAPPENS_SECRET_KEY"]


@pytest.mark.parametrize(("header", "expected"), [
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
     ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")),
    ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-00",
     ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")),
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
    ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
    ("garbage", None),
    (None, None),
])
def test_parse_traceparent(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_traceparent(header) == expected
