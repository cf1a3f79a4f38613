"""The timeline's reading of the tiers' logs, without running a lab: each tier's driver
reads its own program's log, whatever the tier is called.

The logs are written where the programs write them (nginx's access log, the process log,
the site's span log from the environment gunicorn gives it), in the programs' formats, for
a production topology whose every tier has a new name.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from whathappens.lab import manifest as lab_json
from whathappens.lab import running
from whathappens.lab.client.timeline import collect, request_kinds
from whathappens.lab.manifest import Manifest, TierEntry
from whathappens.lab.running import open_lab
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.tiers import KINDS, build, build_all
from whathappens.lab.tiers.gunicorn import site_env
from whathappens.lab.tiers.nginx import access_log
from whathappens.lab.topology import Topology, add_metrics, production

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SQL_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{CLIENT_SPAN}-01"
NEW_NAMES = {"edge": "cdn", "lb": "balancer", "app-1-nginx": "web-1-proxy",
             "app-1-gunicorn": "web-1-python", "app-2-nginx": "web-2-proxy",
             "app-2-gunicorn": "web-2-python", "db-primary": "pg-1", "db-replica": "pg-2",
             "pgbouncer": "pool", "redis": "kv", "worker": "jobs"}


def _renamed(value: object) -> object:
    if isinstance(value, str):
        return NEW_NAMES.get(value, value)
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


def renamed_production(profile: str = "production", subnet: int = 0) -> Topology:
    """The production topology with every tier renamed (options that name tiers too)."""
    topo = production()
    topo.tiers = [replace(s, name=NEW_NAMES.get(s.name, s.name),
                          options={k: _renamed(v) for k, v in s.options.items()})
                  for s in topo.tiers]
    return topo


@pytest.fixture
def renamed_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabContext:
    """A lab.json for the renamed topology (nothing runs), and the logs of one request."""
    monkeypatch.setattr(running, "topology", renamed_production)
    topo = renamed_production()
    assert not {s.name for s in topo.tiers} & set(NEW_NAMES)
    lab_json.write(tmp_path, Manifest("production", tiers=[
        TierEntry(s.name, s.host, topo.hosts[s.host].role, topo.address(s.host), s.port,
                  s.kind) for s in topo.tiers]))
    ctx = LabContext(state=tmp_path)
    write_request_logs(ctx, topo, time.time())
    return ctx


def _append(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


def write_request_logs(ctx: LabContext, topo: Topology, t: float) -> None:
    """One request through cdn → balancer → web-1-proxy → web-1-python → pg-2, each tier
    logging it in its program's own format, 10 ms to 2 ms long, nested."""
    ns = int(t * 1e9)
    _append(access_log(ctx, "cdn"), json.dumps(
        {"time": t + 0.010, "request_time": 0.010, "traceparent": TRACEPARENT,
         "status": "200", "cache": "MISS", "uri": "/"}))
    _append(ctx.log("balancer"), "[NOTICE] HAProxy's own line, not JSON", json.dumps(
        {"accept_time": t + 0.001, "Th": 0, "Ti": 0, "Ta": 8, "traceparent": TRACEPARENT,
         "server": "app-1", "status": 200, "Tw": 0, "Tc": 0, "Tr": 7}))
    _append(access_log(ctx, "web-1-proxy"), json.dumps(
        {"time": t + 0.009, "request_time": 0.007, "traceparent": TRACEPARENT,
         "status": "200", "node": "app-1"}))
    span_log = Path(site_env(topo, ctx, node="app-1", name="web-1-python")
                    ["WHATHAPPENS_SPAN_LOG"])
    _append(span_log, json.dumps(
        {"kind": "django", "trace_id": TRACE, "parent_id": CLIENT_SPAN,
         "start_ns": ns + 3_000_000, "end_ns": ns + 8_000_000, "view": "home",
         "status": 200, "pid": 42,
         "spans": [{"name": "sql", "span_id": SQL_SPAN, "alias": "replica",
                    "sql": "SELECT 1", "start_ns": ns + 4_000_000,
                    "end_ns": ns + 6_000_000}]}))
    _append(ctx.log("web-1-python"), json.dumps(
        {"traceparent": TRACEPARENT, "duration_us": 5100, "pid": "<42>"}))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + 0.006))
    _append(ctx.log("pg-2"),
            f"{stamp}.000 UTC [4242] site@site_ro app=x LOG:  duration: 1.500 ms  "
            f"statement: SELECT 1 /*traceparent='00-{TRACE}-{SQL_SPAN}-01'*/")


def test_a_renamed_tiers_spans_still_come_through(renamed_lab: LabContext) -> None:
    spans = collect(renamed_lab.state, TRACE)
    by_kind = {s.kind: s for s in spans}
    assert sorted(by_kind) == ["app", "django", "edge", "lb"]
    assert {k: s.tier for k, s in by_kind.items()} == {
        "edge": "cdn", "lb": "balancer", "app": "web-1-proxy", "django": "web-1-python"}
    assert all(s.traceparent == TRACEPARENT for s in spans)
    django = by_kind["django"]
    assert django.actor == "app-1 gunicorn → Django"
    assert django.attrs["gunicorn_request_ms"] == 5.1       # gunicorn's own log, same tier
    [sql] = django.children
    assert sql.actor == "PostgreSQL replica (pg-2) via PgBouncer (pool)"   # the topology's names
    [statement] = sql.children                               # pg-2's log, by the span id
    assert statement.tier == "pg-2"
    assert statement.attrs["duration_ms"] == 1.5
    assert statement.traceparent == TRACEPARENT
    assert by_kind["lb"].attrs["server"] == "app-1"
    lb = by_kind["lb"]
    assert lb.end_wall_ns - lb.start_wall_ns == pytest.approx(8_000_000, abs=1_000)


def test_the_lab_waits_for_each_request_tier_by_its_driver(renamed_lab: LabContext) -> None:
    assert request_kinds(open_lab(renamed_lab)) == {"edge", "lb", "app", "django"}


def test_another_trace_finds_nothing(renamed_lab: LabContext) -> None:
    assert collect(renamed_lab.state, "0" * 32) == []


def test_every_driver_that_names_a_span_kind_reads_its_log() -> None:
    """A driver that says its log gives a span per request also reads that log."""
    # every kind of driver, the metrics tiers included (lab up --metrics)
    drivers = build_all(add_metrics(production()))
    assert {type(t).__name__ for t in drivers} >= {k[1] for k in KINDS.values()} - {"WanLink"}
    readers = [t for t in drivers if type(t).trace_spans is not Tier.trace_spans]
    assert {t.span_kind for t in drivers if t.span_kind} == {"edge", "pop", "lb", "app", "django"}
    assert {t.name for t in drivers if t.span_kind} <= {t.name for t in readers}
    # PostgreSQL's statements nest under Django's, and the Celery worker's task spans go beside
    # the request that published them: readers without a request kind of their own
    assert {t.name for t in readers if not t.span_kind} == {"db-primary", "db-replica", "worker"}
    assert build(production(), production().spec("db-replica")).span_kind == ""
