"""Deployments in a running production lab, for real: a rolling deploy and a blue-green
deploy with its rollback, each under a paced load through the CDN edge (40 GETs/s, each URL
its own), asserting 0 failed requests, the versions the responses name (X-Site-Version)
switching from v1 to v2 and back, and nothing left running after ``deploy reset`` and
``lab down``.

One production lab for the module, on 127.<N>.x.y beside any other (about a minute in all).
Needs the Debian packages (`whathappens lab install`) and the `lab` extra.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from lab_helpers import lab_subnet, needs_lab, private_state
from whathappens.lab import lab, process
from whathappens.lab.exercises import deploy
from whathappens.lab.exercises.deploy.runtime import probe, servers
from whathappens.lab.running import open_lab
from whathappens.lab.tier import LabContext

pytestmark = needs_lab


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:

    state = private_state("whathappens-deploy-")
    ctx = LabContext(state=state, profile="production", subnet=lab_subnet())
    lab.up(ctx)
    try:
        yield ctx
    finally:
        lab.down(ctx)
        shutil.rmtree(state, ignore_errors=True)


def versions(phase: dict[str, object]) -> set[str]:
    found = phase["versions"]
    assert isinstance(found, dict)
    return set(found)


def node_versions(ctx: LabContext) -> dict[str, str]:
    running = open_lab(LabContext(state=ctx.state))
    out = {}
    for node in running.app_nodes():
        [nginx] = [t for t in running.node_tiers(node) if t.endswith("-nginx")]
        status, version = probe(*running.endpoint(nginx))
        assert status == 200
        out[node] = version
    return out


def test_rolling_deploy_switches_every_node_with_no_failed_request(
        production: LabContext) -> None:
    assert set(node_versions(production).values()) == {"v1"}
    facts = deploy.do(production, "rolling")
    assert facts["failed"] == 0
    assert facts["summary"]["requests"] >= 100
    phases = facts["phases"]
    assert versions(phases[0]) == {"v1"}              # before the deploy
    assert versions(phases[-1]) == {"v2"}             # after the last node is ready
    # while a node was draining and switching, the other one alone answered
    switching = [p for p in phases if "draining" in p["label"]]
    assert len(switching) == 2
    for p in switching:
        node = p["label"].split()[0]
        assert node not in p["servers"]
    assert [s["node"] for s in facts["steps"]] == ["app-1", "app-2"]
    assert all(s["health"] == "200 v2" for s in facts["steps"])
    assert set(node_versions(production).values()) == {"v2"}
    deploy.do(production, "reset")
    assert set(node_versions(production).values()) == {"v1"}


def test_blue_green_switch_and_rollback_with_no_failed_request(
        production: LabContext) -> None:
    facts = deploy.do(production, "blue-green")
    try:
        assert facts["failed"] == 0
        sw = facts["switch"]
        assert sw["to"] == "green"
        assert sw["failed_after"] == 0
        assert sw["old_after"] == 0                   # atomic: no new request went to blue
        assert sw["first_new_ms"] is not None
        assert sw["first_new_ms"] < 500
        phases = facts["phases"]
        assert all(versions(p) == {"v1"} for p in phases[:-1])
        assert versions(phases[-1]) == {"v2"}
        assert set(phases[-1]["servers"]) == {"app-1-green", "app-2-green"}
        back = deploy.do(production, "rollback")
        assert back["failed"] == 0
        assert back["switch"]["to"] == "blue"
        assert back["switch"]["old_after"] == 0
        assert versions(back["phases"][-1]) == {"v1"}
        assert back["switch"]["command_ms"] < 50
    finally:
        done = deploy.do(production, "reset")["done"]
    assert "stopped app-1-green-gunicorn" in done
    running = open_lab(LabContext(state=production.state))
    assert set(servers(running)) == {"app-1", "app-2"}
    assert not [r for r in process.records(production) if "green" in r.tier]


def test_lab_down_stops_a_green_set_left_in_place(production: LabContext) -> None:
    facts = deploy.do(production, "blue-green")
    assert facts["failed"] == 0
    green = [r for r in process.records(production) if "green" in r.tier]
    assert len(green) == 4
    lab.down(production)
    time.sleep(0.2)
    for rec in green:
        assert not process.alive(rec.pid)
        with pytest.raises(ProcessLookupError):
            os.killpg(rec.pid, 0)
    lab.up(production)        # the fixture's lab again, for any test after this one
