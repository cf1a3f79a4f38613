"""``lab up --metrics`` for real: Debian's Prometheus scraping the real exporters of a real
lab every second, the derived series moving under a small load (requests through the edge,
tasks on the broker), ``lab metrics``, the /dashboard page in headless Chromium, and nothing
left running after ``lab down``."""

from __future__ import annotations

import http.client
import json
import random
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab_helpers import lab_subnet, needs_lab, private_state
from whathappens.lab import lab, process
from whathappens.lab.install import missing_packages
from whathappens.lab.promql import _get, window
from whathappens.lab.running import open_lab
from whathappens.lab.tier import LabContext, port_open
from whathappens.lab.topology import SITE

pytestmark = [needs_lab, pytest.mark.skipif(
    bool(missing_packages(metrics=True)),
    reason="Prometheus or an exporter is missing: run `whathappens lab install` as root")]

JOBS = {"haproxy", "mtail", "node-exporter", "nginx-exporter", "redis-exporter",
        "postgres-exporter"}
HITS, MISSES, TASKS = 60, 30, 40


def leftovers(ctx: LabContext, address: str) -> list[str]:
    alive = [f"{r.tier} (pid {r.pid})" for r in process.records(ctx) if process.alive(r.pid)]
    ports = [f"{address}:{p}" for p in (9090, 9100, 9113, 9121, 9187, 3903)
             if port_open(address, p, timeout=0.2)]
    return alive + ports


@pytest.fixture(scope="module")
def mlab() -> Iterator[LabContext]:
    state = private_state("whathappens-metrics-")
    ctx = LabContext(state=state, profile="production", subnet=lab_subnet(),
                     metrics=True)
    started = time.monotonic()
    lab.up(ctx)
    print(f"lab up --metrics in {time.monotonic() - started:.1f} s")
    address = open_lab(LabContext(state=state)).topo.address("metrics")
    try:
        yield ctx
    finally:
        lab.down(ctx)
        left = leftovers(ctx, address)
        shutil.rmtree(state, ignore_errors=True)
        assert not left, f"still running after lab down: {left}"


def prometheus(ctx: LabContext) -> tuple[str, int]:
    return open_lab(LabContext(state=ctx.state)).endpoint("prometheus")


def instant(ctx: LabContext, expr: str) -> list[dict[str, Any]]:
    data = _get(*prometheus(ctx), "/api/v1/query", {"query": expr})
    assert isinstance(data, dict)
    result = data["result"]
    assert isinstance(result, list)
    return result


def edge_get(ctx: LabContext, paths: list[str]) -> list[int]:
    """GETs through the edge over TLS (the lab's CA), one keep-alive connection."""
    running = open_lab(LabContext(state=ctx.state))
    address, port = running.front
    context = ssl.create_default_context(cafile=running.cafile)
    context.check_hostname = False
    conn = http.client.HTTPSConnection(address, port, timeout=10, context=context)
    statuses = []
    try:
        for path in paths:
            conn.request("GET", path, headers={"Host": SITE})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    return statuses


def test_prometheus_scrapes_every_exporter(mlab: LabContext) -> None:
    deadline = time.monotonic() + 10
    while True:
        up = {r["metric"]["job"]: r["value"][1] for r in instant(mlab, "up")}
        if (set(up) == JOBS and all(v == "1" for v in up.values())) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert up == dict.fromkeys(JOBS, "1")
    haproxy = instant(mlab, "haproxy_frontend_http_requests_total")
    assert {r["metric"]["proxy"] for r in haproxy} >= {"www"}


def _edge_total(ctx: LabContext) -> float:
    result = instant(ctx, "sum(edge_requests_total)")
    return float(result[0]["value"][1]) if result else 0.0


def test_the_series_move_under_a_small_load(mlab: LabContext) -> None:
    from whathappens.lab.exercises.drills.queue import publish, publisher

    # A counter's labels appear with their first request, and rate() counts no increase
    # into a series' first sample: one request of each kind, scraped, before the load.
    assert edge_get(mlab, ["/", "/", "/?metrics=warm-up"]) == [200, 200, 200]
    time.sleep(2.5)
    before = _edge_total(mlab)
    start = time.time()
    nonce = random.randrange(1 << 30)
    paths = ["/"] * HITS + [f"/?metrics={nonce}-{i}" for i in range(MISSES)]
    statuses = edge_get(mlab, paths)
    assert all(s == 200 for s in statuses), statuses
    app = publisher(open_lab(LabContext(state=mlab.state)))
    for _ in range(TASKS):           # faster than the worker takes them: the queue grows
        publish(app, "lab_work", (0.05,), f"{nonce:032x}")
    time.sleep(7)                    # a 5 s rate window and its scrapes
    series = {s.metric.key: s for s in window(prometheus(mlab), start, time.time())}
    assert _edge_total(mlab) - before == len(paths)      # mtail counted every log line
    assert (series["rps"].peak or 0) > 5
    assert (series["lb_rps"].peak or 0) >= 1
    assert 0 < (series["p95"].peak or 0) < 5
    ratio = series["cache_hit_ratio"].peak
    assert ratio is not None
    assert 0.3 < ratio <= 1
    assert series["error_rate"].values()
    assert max(series["error_rate"].values()) == 0     # a healthy lab answered 200 to all
    assert (series["db_qps"].peak or 0) > 0
    assert (series["queue_depth"].peak or 0) >= 5
    print({k: (s.mean, s.peak) for k, s in series.items()})


def test_lab_metrics_prints_the_window(mlab: LabContext) -> None:
    done = subprocess.run([sys.executable, "-m", "whathappens", "lab", "--state",
                           str(mlab.state), "metrics", "--seconds", "30"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    for label in ("requests/s at the edge", "p95 latency at the edge", "error rate",
                  "edge cache hit ratio", "DB transactions/s", "queue depth"):
        assert label in done.stdout
    as_json = subprocess.run([sys.executable, "-m", "whathappens", "lab", "--state",
                              str(mlab.state), "metrics", "--seconds", "30", "--json"],
                             capture_output=True, text=True, timeout=60, check=False)
    data = json.loads(as_json.stdout)
    assert len(data["series"]) >= 6
    assert all(len(s["points"]) == 31 for s in data["series"])


@pytest.mark.browser
def test_the_dashboard_plots_the_series_live(mlab: LabContext, page: Any) -> None:
    from serve_helpers import request, serve

    with serve("--lab", str(mlab.state)) as served:
        status, _, body = request(served, "GET", "/api/metrics?seconds=60")
        assert status == 200
        assert len(json.loads(body)["series"]) >= 6
        base = f"http://{served.host}:{served.port}"
        # A fresh lab (browser tests run last: this module's lab may be a new one): a first
        # request opens the series, the next ones make it move.
        edge_get(mlab, ["/"])
        time.sleep(2.5)
        edge_get(mlab, ["/"] * 20)
        page.page.goto(f"{base}/dashboard")
        page.page.wait_for_selector("body[data-updated]")
        assert page.page.locator(".dash-card").count() >= 6
        rps = page.page.locator(".dash-card[data-key=rps]")
        deadline = time.monotonic() + 15
        while int(rps.get_attribute("data-points") or 0) < 3:
            assert time.monotonic() < deadline, "no requests/s plotted"
            page.page.wait_for_timeout(250)
        assert (rps.locator("path").get_attribute("d") or "").count(",") >= 3
        first = page.page.get_attribute("body", "data-updated")
        deadline = time.monotonic() + 10     # (wait_for_function needs eval: the CSP says no)
        while page.page.get_attribute("body", "data-updated") == first:
            assert time.monotonic() < deadline, "the dashboard stopped polling"
            page.page.wait_for_timeout(200)
        page.screenshot("lab-dashboard")
    assert page.errors == []
    assert page.console_errors() == []
    assert all(u.startswith(base) for u in page.requests), page.requests
