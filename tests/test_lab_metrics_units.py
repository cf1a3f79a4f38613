"""The metrics' pure parts: the topology's metrics host, Prometheus's and mtail's configuration,
the parsing of Prometheus's answers, the dashboard's query bounds."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from whathappens.errors import EXIT_LAB_FAILED
from whathappens.lab.manifest import Manifest, TierEntry
from whathappens.lab.promql import METRICS, Series, fill, parse_matrix
from whathappens.lab.running import recorded_topology
from whathappens.lab.tiers import KINDS, build_all
from whathappens.lab.tiers.metrics import (
    LINE_PATTERN,
    mtail_program,
    prometheus_config,
    scrape_jobs,
)
from whathappens.lab.topology import add_metrics, topology
from whathappens.web.app import metrics_seconds

EXPORTERS = {"node-exporter", "nginx-exporter", "mtail", "redis-exporter", "postgres-exporter"}


def test_the_metrics_host_carries_prometheus_and_an_exporter_per_program() -> None:
    topo = add_metrics(topology("production", 77), 77)
    metrics = [s for s in topo.tiers if s.host == "metrics"]
    assert {s.kind for s in metrics} == EXPORTERS | {"prometheus"}
    assert topo.address("metrics") == "127.77.97.1"
    assert all(s.kind in KINDS for s in metrics)
    pg = topo.spec("postgres-exporter").options["targets"]
    assert pg == ["db-primary", "db-replica"]
    assert len(add_metrics(topo, 77).tiers) == len(topo.tiers)      # idempotent
    listeners = [(topo.address(s.host), s.port) for s in topo.tiers if s.port]
    assert len(set(listeners)) == len(listeners)        # no two tiers on one address:port


def test_single_profile_gets_what_it_has() -> None:
    topo = add_metrics(topology("single"))
    kinds = {s.kind for s in topo.tiers if s.host == "metrics"}
    assert kinds == EXPORTERS | {"prometheus"}
    assert topo.spec("postgres-exporter").options["targets"] == ["db-primary"]


def test_prometheus_scrapes_every_exporter_and_haproxy_every_second() -> None:
    topo = add_metrics(topology("production"))
    jobs = scrape_jobs(topo)
    assert set(jobs) == EXPORTERS | {"haproxy"}
    assert jobs["haproxy"] == "127.0.91.1:8405"
    config = prometheus_config(jobs)
    assert "scrape_interval: 1s" in config
    for job, target in jobs.items():
        assert f"job_name: {job}" in config
        assert f"'{target}'" in config


def test_a_lab_up_without_metrics_has_no_metrics_tiers() -> None:
    topo = topology("production")
    manifest = Manifest(profile="production", tiers=[
        TierEntry(s.name, s.host, "", topo.address(s.host), s.port) for s in topo.tiers])
    assert not [s for s in recorded_topology(manifest).tiers if s.host == "metrics"]
    with_metrics = add_metrics(topology("production"))
    manifest.tiers = [TierEntry(s.name, s.host, "", "", s.port) for s in with_metrics.tiers]
    assert recorded_topology(manifest).spec("prometheus").port == 9090
    assert len(build_all(recorded_topology(manifest))) == len(with_metrics.tiers)


def test_mtail_reads_the_edge_log_line_nginx_writes() -> None:
    line = json.dumps({"time": 1.5, "tier": "edge", "status": "200", "bytes": 10,
                       "request_time": 0.004, "upstream_addr": "", "cache": "HIT",
                       "connection": 3}, separators=(",", ":"))
    m = re.search(LINE_PATTERN, line)
    assert m is not None
    assert (m["status"], m["request_time"], m["cache"]) == ("200", "0.004", "HIT")
    empty = line.replace('"cache":"HIT"', '"cache":""')
    m = re.search(LINE_PATTERN, empty)
    assert m is not None
    assert m["cache"] == ""
    assert "histogram edge_request_seconds buckets 0.001" in mtail_program()


def test_the_log_fields_stay_in_the_order_the_pattern_expects() -> None:
    from whathappens.lab.tiers.nginx import LOG_FIELDS

    names = [f[0] for f in LOG_FIELDS]
    assert names.index("status") < names.index("request_time") < names.index("cache")


def test_parse_matrix_keeps_times_and_drops_nan() -> None:
    data = {"resultType": "matrix", "result": [{"metric": {}, "values": [
        [100, "1.5"], [101, "NaN"], [102, "+Inf"], [103, "2"]]}]}
    assert parse_matrix(data) == [(100.0, 1.5), (101.0, None), (102.0, None), (103.0, 2.0)]
    assert parse_matrix({"result": []}) == []
    assert parse_matrix("nonsense") == []


def test_fill_puts_none_in_the_seconds_prometheus_left_out() -> None:
    assert fill([(10.0, 1.0), (12.0, 3.0)], 10.0, 13.0, 1.0) == [
        (10.0, 1.0), (11.0, None), (12.0, 3.0), (13.0, None)]


def test_series_stats() -> None:
    s = Series(METRICS[0], [(1.0, None), (2.0, 2.0), (3.0, 4.0)])
    assert (s.last, s.mean, s.peak) == (4.0, 3.0, 4.0)
    empty = Series(METRICS[0], [(1.0, None)])
    assert (empty.last, empty.mean, empty.peak) == (None, None, None)
    assert json.loads(json.dumps(s.to_json()))["points"][0] == [1.0, None]


def test_every_metric_says_its_source_and_unit() -> None:
    keys = {m.key for m in METRICS}
    assert {"rps", "p95", "error_rate", "cache_hit_ratio", "db_qps", "queue_depth"} <= keys
    for m in METRICS:
        assert m.source
        assert m.unit in ("req/s", "s", "ratio", "tx/s", "tasks")
        assert m.expr.count("(") == m.expr.count(")")


@given(st.binary(max_size=400))
def test_the_dashboard_window_is_bounded_whatever_the_query(query: bytes) -> None:
    seconds = metrics_seconds(query)
    assert 10 <= seconds <= 900
    assert not math.isnan(seconds)


def test_the_dashboard_window_reads_seconds() -> None:
    assert metrics_seconds(b"seconds=60") == 60
    assert metrics_seconds(b"seconds=5") == 10
    assert metrics_seconds(b"seconds=99999") == 900
    assert metrics_seconds(b"seconds=-3") == 120


def test_lab_metrics_without_a_lab_says_so(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "whathappens", "lab", "--state",
                           str(tmp_path / "none"), "metrics", "--seconds", "10"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == EXIT_LAB_FAILED
    assert "no lab in" in done.stderr
    assert "Traceback" not in done.stderr
    bad = subprocess.run([sys.executable, "-m", "whathappens", "lab", "--state",
                          str(tmp_path / "none"), "metrics", "--seconds", "0"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == EXIT_LAB_FAILED
    assert "--seconds" in bad.stderr
