"""The whole lab, for real: up, one journey traced through every tier, down with nothing left.

Runs the production profile (and the single-server one) on 127.<N>.x.y so it can run beside a
lab a developer already has up. Needs the Debian packages (`whathappens lab install`, which
`./dev test` runs as root) and the `lab` Python extra.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from journey_helpers import check_universal, child, legs, options
from lab_helpers import bring_up, needs_lab, private_state
from whathappens.journey import Journey, Span
from whathappens.lab import lab, process
from whathappens.lab.client import apply, merge_inside
from whathappens.lab.tier import LabContext
from whathappens.trace import run_journey

pytestmark = needs_lab


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production")


@pytest.fixture(scope="module")
def single() -> Iterator[LabContext]:
    yield from bring_up("single")


def journey_through(ctx: LabContext, path: str = "/") -> Journey:
    manifest = json.loads((ctx.state / "lab.json").read_text())
    front = next(t for t in manifest["tiers"] if t["name"] in ("edge", "nginx"))
    port = "" if front["port"] == 443 else f":{front['port']}"
    opts = options("--dns-views", "system")
    apply(opts, ctx.state)
    j = asyncio.run(run_journey(f"https://www.example.com{port}{path}", opts))
    merge_inside(j, ctx.state)
    return j


def chain(span: Span) -> list[Span]:
    """The server spans from the outermost in, following first children."""
    out = []
    node = next((c for c in span.children if c.name.startswith("server.")), None)
    while node is not None:
        out.append(node)
        node = next((c for c in node.children if c.name.startswith("server.")), None)
    return out


def test_every_tier_is_healthy(production: LabContext) -> None:
    rows = lab.status(production)
    assert {r.name for r in rows} >= {"edge", "lb", "app-1-nginx", "app-2-nginx",
                                      "app-1-gunicorn", "app-2-gunicorn", "pgbouncer",
                                      "db-primary", "db-replica", "redis", "worker"}
    assert [r.name for r in rows if not r.healthy] == []
    assert len({r.address for r in rows}) >= 9  # hosts on addresses of their own


def test_one_request_followed_through_every_tier(production: LabContext) -> None:
    j = journey_through(production)
    assert j.error is None, j.error and j.error.to_dict()
    check_universal(j)  # schema-valid, every span nested in its parent
    [leg] = legs(j)
    http = child(leg, "http")
    assert http.attrs["status"] == 200
    hops = chain(http)
    kinds = [s.name for s in hops]
    assert kinds[:4] == ["server.edge", "server.lb", "server.app", "server.django"]
    # causal order: each tier starts no earlier than the one in front of it
    for outer, inner in itertools.pairwise(hops):
        assert outer.start_ns <= inner.start_ns
        assert inner.end_ns is not None
        assert outer.end_ns is not None
        assert inner.end_ns <= outer.end_ns
    for span in hops:
        assert (span.duration_ns or 0) >= 0
    lb = hops[1]
    assert lb.attrs["server"] in ("app-1", "app-2")
    assert lb.attrs["algorithm"] == "roundrobin"
    django = hops[3]
    # gunicorn's own access log: the worker that served it and its timing of the request
    assert str(django.attrs["gunicorn_worker_pid"]) == str(django.attrs["pid"])
    assert django.attrs["gunicorn_request_ms"] >= 0
    sql = [c for c in django.children if c.name == "server.sql"]
    assert sql, "the home page reads from PostgreSQL"
    assert all(s.attrs["alias"] == "replica" for s in sql)  # reads go to the replica
    assert any("pages" in str(s.attrs["sql"]) for s in sql)
    # PostgreSQL's own statement time, found by the traceparent comment, under each query
    statements = [c for s in sql for c in s.children if c.name == "server.postgres"]
    assert len(statements) == len(sql)
    for statement, query in zip(statements, sql, strict=True):
        assert statement.actor.startswith("PostgreSQL db-replica")
        assert 0 < statement.attrs["duration_ms"] <= (query.duration_ns or 0) / 1e6 + 1
    assert j.facts.lab.server_spans >= 5


def test_the_load_balancer_spreads_requests(production: LabContext) -> None:
    servers = set()
    for i in range(4):
        # a URL of its own each time: a cached copy at the edge would not reach the LB
        j = journey_through(production, f"/p/about/?n={i}-{time.time_ns()}")
        lb = next(s for s in j.all_spans() if s.name == "server.lb")
        servers.add(lb.attrs["server"])
    assert servers == {"app-1", "app-2"}


def test_edge_cache_hit_goes_no_further(production: LabContext) -> None:
    path = f"/p/about/?hit={time.time_ns()}"
    first, second = journey_through(production, path), journey_through(production, path)
    miss = chain(child(legs(first)[0], "http"))
    hit = chain(child(legs(second)[0], "http"))
    assert miss[0].attrs["cache"] == "MISS"
    assert len(miss) >= 4
    assert hit[0].attrs["cache"] == "HIT"
    assert [s.name for s in hit] == ["server.edge"]  # answered by the edge alone


def test_product_cache_miss_then_hit_in_redis(production: LabContext) -> None:
    first = journey_through(production, f"/product/{random.randint(1, 10)}/")
    path = child(legs(first)[0], "http").attrs["response_headers"]
    headers = {k: v for k, v in path}
    if headers.get("x-cache-product") == "hit":  # warmed by an earlier run: ask another
        first = journey_through(production, "/product/1/?fresh=" + str(time.time_ns()))
    second = journey_through(production, "/product/2/")
    redis = [s for s in second.all_spans() if s.name == "server.redis"]
    assert redis, "a product page asks Redis"


def test_single_server_profile(single: LabContext) -> None:
    j = journey_through(single)
    assert j.error is None
    http = child(legs(j)[0], "http")
    kinds = [s.name for s in chain(http)]
    assert kinds[:2] == ["server.edge", "server.django"]


def _listening(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((address, port)) == 0


def test_down_leaves_no_process_and_no_port() -> None:
    ctx = LabContext(state=private_state(), profile="single", subnet=random.randint(150, 250))
    try:
        lab.up(ctx)
        recs = process.records(ctx)
        assert recs
        lab.down(ctx)
        time.sleep(0.2)
        for rec in recs:
            assert not process.alive(rec.pid), rec.tier
            if rec.port:
                assert not _listening(rec.address, rec.port), rec.tier
        assert process.records(ctx) == []
        leftovers = [p for p in os.listdir("/proc") if p.isdigit()
                     and str(ctx.state) in _cmdline(int(p))]
        assert leftovers == []
    finally:
        lab.down(ctx)
        shutil.rmtree(ctx.state, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_up_again_refuses_and_leaves_the_running_lab_alone(
        production: LabContext, capsys: pytest.CaptureFixture[str]) -> None:
    from whathappens.lab.command import EXIT_LAB_FAILED, lab_main

    assert lab_main(["--state", str(production.state), "up"]) == EXIT_LAB_FAILED
    assert "already running" in capsys.readouterr().err
    assert all(r.healthy for r in lab.status(production))


def test_the_live_page_follows_the_request_inside_the_lab(production: LabContext) -> None:
    """`whathappens serve --lab`: the streamed report carries every tier, from their logs."""
    from serve_helpers import journey, serve

    manifest = json.loads((production.state / "lab.json").read_text())
    front = next(t for t in manifest["tiers"] if t["name"] in ("edge", "nginx"))
    port = "" if front["port"] == 443 else f":{front['port']}"
    with serve("--lab", str(production.state), "--no-compare-tls") as served:
        # A path of its own: the edge may hold "/" from an earlier test (a HIT stops there).
        stream = journey(served, f"https://www.example.com{port}/?live={random.random()}")
    report = stream.one("report")
    assert report["exit_code"] == 0, report["error"]
    steps = [s["step"] for s in stream.steps()]
    assert steps[:6] == ["url", "dns", "tcp", "tls", "http", "leg"]
    html = report["html"]
    assert 'id="inside"' in html
    for tier in ("server.edge", "server.lb", "server.app", "server.django", "server.sql"):
        assert tier in html, tier
