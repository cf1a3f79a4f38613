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
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from journey_helpers import check_universal, child, legs, options
from lab_helpers import bring_up, lab_subnet, needs_lab, private_state
from whathappens.journey import Journey, Span
from whathappens.lab import lab, process
from whathappens.lab.client import apply, merge_inside
from whathappens.lab.tier import LabContext
from whathappens.trace import run_journey

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Response

pytestmark = needs_lab


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production")


@pytest.fixture(scope="module")
def single() -> Iterator[LabContext]:
    yield from bring_up("single")


def fresh(path: str = "/") -> str:
    """``path`` with a query of its own: the edge keeps pages 10 s (s-maxage), so a test
    that follows a request past the edge must ask for a URL no earlier request filled."""
    return f"{path}{'&' if '?' in path else '?'}fresh={time.time_ns()}"


def journey_through(ctx: LabContext, path: str | None = None) -> Journey:
    """A journey to ``path`` through the lab's front; None: the home page under a URL
    of its own (see :func:`fresh`)."""
    manifest = json.loads((ctx.state / "lab.json").read_text())
    front = next(t for t in manifest["tiers"] if t["name"] in ("edge", "nginx"))
    port = "" if front["port"] == 443 else f":{front['port']}"
    opts = options("--dns-views", "system")
    apply(opts, ctx.state)
    j = asyncio.run(run_journey(f"https://www.example.com{port}{path or fresh()}", opts))
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
    # the queries run inside the view (Django middleware → view → queries → template)
    sql = [c for c in django.walk() if c.name == "server.sql"]
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


def static_links(ctx: LabContext) -> list[str]:
    """The /static/ files the home page links (CSS, JS, images), asked of the edge itself."""
    from whathappens.lab.client import front

    address, https, _ = front(ctx.state)
    context = ssl.create_default_context(cafile=str(ctx.state / "pki" / "ca.pem"))
    with socket.create_connection((address, https), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="www.example.com") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
        html = b""
        while chunk := tls.recv(65536):
            html += chunk
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html.decode("utf-8", "replace"))


def test_static_files_come_from_the_edge_cache_with_their_inside_spans(
    production: LabContext,
) -> None:
    """A page's CSS, JS and images: the app node's nginx serves them (Django never sees
    them), the edge caches them; the journey of each shows MISS with the tiers it crossed,
    then HIT answered by the edge alone."""
    links = static_links(production)
    assert {link.rsplit(".", 1)[-1] for link in links} >= {"css", "js", "svg"}
    for link in links:
        path = f"{link}?t={time.time_ns()}"  # a cache key no earlier run has filled
        first, second = journey_through(production, path), journey_through(production, path)
        miss = chain(child(legs(first)[0], "http"))
        hit = chain(child(legs(second)[0], "http"))
        assert [s.name for s in miss] == ["server.edge", "server.lb", "server.app"], link
        assert miss[0].attrs["cache"] == "MISS"
        assert [s.name for s in hit] == ["server.edge"], link
        assert hit[0].attrs["cache"] == "HIT"
        headers = dict(child(legs(second)[0], "http").attrs["response_headers"])
        assert headers["cache-control"] == "public, max-age=86400, immutable"
        assert headers["etag"]
        assert headers["x-cache"] == "HIT"


@pytest.mark.browser
def test_chromium_sees_static_files_miss_then_hit(production: LabContext, browser: Browser,
                                                   tmp_path: Path) -> None:
    """What a browser sees: the home page's CSS, JS and images over one HTTP/2 connection to
    the edge, each with its X-Cache; in a second fresh context the same files are HITs."""
    import browser as chromium
    from test_demo_page import trusting_home
    from whathappens.lab.client import front

    if shutil.which("certutil") is None:
        pytest.skip("certutil is missing: apt-get install libnss3-tools")
    address, https, _ = front(production.state)
    trusting_home(tmp_path / "home", production.state / "pki" / "ca.pem")
    env: dict[str, str | float | bool] = {**os.environ, "HOME": str(tmp_path / "home")}
    b = browser.browser_type.launch(
        executable_path=str(chromium.CHROMIUM), headless=True, env=env,
        args=[*chromium.ARGS, f"--host-resolver-rules=MAP www.example.com {address}"])
    port = "" if https == 443 else f":{https}"
    seen: list[dict[str, str]] = []
    try:
        for _ in range(2):
            context = b.new_context(viewport=chromium.DESKTOP)
            statics: dict[str, str] = {}

            def record(response: Response, into: dict[str, str] = statics) -> None:
                if "/static/" in response.url:
                    into[urlsplit(response.url).path] = \
                        response.all_headers().get("x-cache", "")

            context.on("response", record)
            page = context.new_page()
            page.goto(f"https://www.example.com{port}/?b={time.time_ns()}", wait_until="load")
            protocols = page.evaluate("performance.getEntriesByType('resource')"
                                      ".map((e) => e.nextHopProtocol)")
            chromium.save_screenshot(page, "lab-home", full_page=False)
            # site.js ran (CSP allows same-origin scripts): the footer shows Server-Timing.
            footer = page.text_content("#server-timing") or ""
            context.close()
            assert "app " in footer, footer
            assert protocols
            assert set(protocols) == {"h2"}
            seen.append(statics)
    finally:
        b.close()
    first, second = seen
    assert {p.rsplit(".", 1)[-1] for p in first} >= {"css", "js", "svg"}
    assert set(first) == set(second)
    assert set(second.values()) == {"HIT"}, second   # the first visit filled the edge
    assert set(first.values()) <= {"MISS", "HIT"}    # HIT when an earlier test filled it


def test_product_cache_miss_then_hit_in_redis(production: LabContext) -> None:
    """Two URLs of their own for one product (so the edge answers neither): the second
    finds the product in Redis, whatever an earlier run left there."""
    pk = random.randint(1, 10)
    first = journey_through(production, fresh(f"/product/{pk}/"))
    second = journey_through(production, fresh(f"/product/{pk}/"))
    for j in (first, second):
        assert [s for s in j.all_spans() if s.name == "server.redis"], "a product page asks Redis"
    headers = dict(child(legs(second)[0], "http").attrs["response_headers"])
    assert headers.get("x-cache-product") == "hit", headers


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
    ctx = LabContext(state=private_state(), profile="single", subnet=lab_subnet())
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
    from whathappens.errors import EXIT_LAB_FAILED
    from whathappens.lab.command import lab_main

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


@pytest.mark.browser
def test_lab_browser_merges_each_page_request_with_its_tiers(production: LabContext) -> None:
    """``whathappens URL --lab --browser``: every request of the page leaves with its own
    traceparent, and the tiers that logged it are merged under its span (a MISS reaches the
    app node's nginx; a HIT stops at the edge)."""
    from browser import skip_reason

    if (why := skip_reason()) is not None:
        pytest.skip(why)
    pytest.importorskip("whathappens.browser.phase")
    manifest = json.loads((production.state / "lab.json").read_text())
    front = next(t for t in manifest["tiers"] if t["name"] in ("edge", "nginx"))
    port = "" if front["port"] == 443 else f":{front['port']}"
    run = subprocess.run(
        [sys.executable, "-m", "whathappens", f"https://www.example.com{port}/", "--lab",
         str(production.state), "--browser", "--json", "--dns-views", "system"],
        capture_output=True, text=True, timeout=150, check=False)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    [page] = [s for s in doc["spans"] if s["name"] == "browser"]
    assert page["attrs"]["outcome"] == "loaded", page["attrs"]["why"]
    resources = [c for c in page["children"] if c["name"] == "browser.resource"]
    statics = [r for r in resources if "/static/" in r["attrs"]["url"]]
    assert statics, [r["attrs"]["url"] for r in resources]
    parents = {r["attrs"]["traceparent"] for r in resources}
    assert len(parents) == len(resources)  # one of its own each
    for r in statics:
        assert r["attrs"]["inside"][0] == "edge", r["attrs"]
        tiers = [c["name"] for c in r["children"]]
        assert tiers[:1] == ["server.edge"], tiers
        if r["attrs"]["cache_status"] == "MISS":
            assert "lb" in r["attrs"]["inside"], r["attrs"]["inside"]
