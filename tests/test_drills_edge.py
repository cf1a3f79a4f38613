"""The edge drills' pieces that need no running lab: the edge's config with drill snippets
(checked by the real ``nginx -t`` where nginx is installed), the rate-limit run's arithmetic,
and ModSecurity's audit log as the edge's spans read it. The drills themselves, on a real
lab: tests/test_lab_drills_edge.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from whathappens.lab.exercises.drills import edge
from whathappens.lab.exercises.load import Sample
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers import build
from whathappens.lab.tiers.nginx import NginxEdge, waf_log, waf_verdicts
from whathappens.lab.topology import topology

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def production_edge(tmp_path: Path) -> tuple[LabContext, NginxEdge]:
    ctx = LabContext(state=tmp_path, profile="production", subnet=201)
    topo = topology("production", 201)
    driver = build(topo, topo.spec("edge"))
    assert isinstance(driver, NginxEdge)
    return ctx, driver


def nginx_test(ctx: LabContext, driver: NginxEdge) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*driver.command(ctx), "-t"], capture_output=True, text=True,
                          cwd=ctx.dir(driver.name), timeout=30, check=False)


def test_the_edge_config_includes_the_drill_snippets_where_they_can_act(
        tmp_path: Path) -> None:
    ctx, driver = production_edge(tmp_path)
    conf = driver.config(ctx)
    main = conf.index(f'include "{driver.overlay_dir(ctx, "main")}/*.conf"')
    # load_module must come before the events block (nginx: "is specified too late")
    assert main < conf.index("events {")
    http = conf.index(f'include "{driver.overlay_dir(ctx, "http")}/*.conf"')
    server = conf.index(f'include "{driver.overlay_dir(ctx, "server")}/*.conf"')
    assert conf.index("http {") < http < server
    assert conf.index("ssl http2 default_server") < server


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None and
                                 not Path("/usr/sbin/nginx").exists(),
                                 reason="nginx is not installed")


@needs_nginx
def test_a_new_start_removes_old_snippets_and_nginx_accepts_the_rate_limit(
        tmp_path: Path) -> None:
    ctx, driver = production_edge(tmp_path)
    edge.write_snippets(driver, ctx, "rate-limit", edge.rate_snippets())
    driver.prepare(ctx)             # what lab up does: old snippets removed, nginx -t
    assert list(driver.overlay_dir(ctx).glob("*/*.conf")) == []
    edge.write_snippets(driver, ctx, "rate-limit", edge.rate_snippets())
    done = nginx_test(ctx, driver)
    assert done.returncode == 0, done.stderr
    bad = {"server": "limit_req zone=nowhere burst=1;\n"}
    edge.write_snippets(driver, ctx, "broken", bad)
    assert nginx_test(ctx, driver).returncode != 0


@pytest.mark.skipif(not (edge.MODSECURITY_MODULE.exists() and edge.CRS_RULES.is_dir()),
                    reason="ModSecurity or the CRS is not installed (whathappens lab install)")
@needs_nginx
def test_nginx_loads_modsecurity_and_the_crs_from_the_waf_snippets(tmp_path: Path) -> None:
    ctx, driver = production_edge(tmp_path)
    driver.prepare(ctx)
    edge.write_snippets(driver, ctx, "waf", edge.waf_snippets(ctx, driver))
    done = nginx_test(ctx, driver)
    assert done.returncode == 0, done.stderr
    assert "rules loaded inline/local/remote: 0/" in done.stderr
    conf = (driver.overlay_dir(ctx) / "waf" / "modsecurity.conf").read_text()
    assert "SecRuleEngine On" in conf
    assert "SecStatusEngine Off" in conf
    assert "IncludeOptional" not in conf      # libmodsecurity 3 does not know it


def test_the_rate_limit_run_is_counted_per_second_and_after_the_burst() -> None:
    # 30 requests at 10/s: 11 accepted at once, then 1 in 3 (a 10/s limit at 30/s)
    samples = [Sample(i / 10, 1.0, 200 if i < 11 or i % 3 == 0 else 429, "")
               for i in range(30)]
    facts = edge._rl_client("bot", "127.0.251.1", _Result(samples), 10.0)
    assert facts["sent"] == 30
    assert facts["accepted"] + facts["refused"] == 30
    assert facts["first_refused_s"] == pytest.approx(1.1)
    assert facts["per_second"] == [(0, 10, 0), (1, 4, 6), (2, 3, 7)]
    # accepted from the first refusal (1.1 s) to the last request (2.9 s): 6 in 1.8 s
    assert facts["accepted_rate"] == pytest.approx(6 / 1.8)


class _Result:
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples


def test_the_edge_span_names_the_waf_rules_of_its_trace(tmp_path: Path) -> None:
    ctx = LabContext(state=tmp_path)
    line = {"transaction": {
        "client_ip": "127.0.0.1", "request": {
            "uri": "/?q=%3Cscript%3E", "headers": {"traceparent": TRACEPARENT}},
        "response": {"http_code": 403},
        "messages": [{"message": "XSS Attack Detected via libinjection",
                      "details": {"ruleId": "941100"}},
                     {"message": "Inbound Anomaly Score Exceeded (Total Score: 15)",
                      "details": {"ruleId": "949110"}}]}}
    other = json.loads(json.dumps(line))
    other["transaction"]["request"]["headers"] = {}
    waf_log(ctx, "edge").write_text(json.dumps(other) + "\nnot json\n" + json.dumps(line) + "\n")
    assert waf_verdicts(ctx, "edge", "0af7651916cd43dd8448eb211c80319c") == {
        TRACEPARENT: "403: 941100 949110"}
    assert waf_verdicts(ctx, "edge", "ffffffffffffffffffffffffffffffff") == {}
