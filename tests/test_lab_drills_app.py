"""The load balancer, nginx and app drills, for real: each breaks something in a running
production lab, and what surfaced at which tier is asserted — then it is healed and the lab
is asserted back to normal.

One production lab for the module, on 127.<N>.x.y beside any other. Load runs are bounded
(a few seconds each). app-timeout restarts one app node's gunicorn twice and waits out
three slow requests (about 40 s in all); app-leak needs a memory cgroup this process may
create (as root: cgroup v1's memory controller, or v2 with it delegated) and is skipped
without one. Needs the Debian packages (`whathappens lab install`) and the `lab` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_helpers import bring_up, healing, in_force, needs_lab
from whathappens.lab import lab
from whathappens.lab.exercises import drills
from whathappens.lab.exercises.drills.appfaults import Cgroup, NoCgroup, cgroup_name
from whathappens.lab.exercises.drills.common import DrillError
from whathappens.lab.tier import LabContext

pytestmark = needs_lab


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production", "whathappens-drills-app-")



def test_lb_mistarget_haproxy_answers_503_itself(production: LabContext) -> None:
    facts = drills.do(production, "break", "lb-mistarget", say=print)
    with healing(production, "lb-mistarget") as healed:
        assert set(facts["servers_after"].values()) == {"DOWN"}
        assert facts["t_all_down"] is not None
        assert facts["t_all_down"] - facts["t_break"] < 2.5    # checks every 500 ms, fall 2
        probe = facts["probe"]
        assert probe.status == 503
        assert facts["probe_answered_by"].startswith("HAProxy")
        assert "No server is available" in probe.body
        # HAProxy's log: no server chosen, the server side failed at connection time
        assert facts["nosrv"] > 0
        assert "SC--" in facts["terminations"]
        assert facts["summary"]["statuses"].get(503, 0) >= facts["nosrv"] > 0
        assert "lb-mistarget" in in_force(production)
    assert set(healed["servers"].values()) == {"UP"}
    assert healed["summary"]["failed"] == 0
    assert "lb-mistarget" not in in_force(production)


def test_nginx_saturation_turns_queueing_into_failures(production: LabContext) -> None:
    facts = drills.do(production, "break", "nginx-saturation", say=print)
    with healing(production, "nginx-saturation") as healed:
        assert [r["failed"] for r in facts["before"]] == [0] * len(facts["before"])
        # 1 listening socket + C clients + C upstream connections > 16 from C = 8 on
        assert facts["first_failing_step"] is not None
        assert facts["first_failing_step"] <= 16
        assert all(r["failed"] == 0 for r in facts["after"] if r["concurrency"] <= 4)
        assert facts["not_enough"] > 0     # nginx's own words in its error log
        svg = Path(facts["svg"]).read_text()
        assert svg.startswith("<svg")
        assert "worker_connections" in svg
        conf = drills.open_lab(production).ctx.dir(facts["tier"]) / "nginx.conf"
        assert "worker_connections 16;" in conf.read_text()
    assert healed["check"]["failed"] == 0
    assert "worker_connections 1024;" in conf.read_text()


def test_app_timeout_which_tier_cuts_first(production: LabContext) -> None:
    facts = drills.do(production, "break", "app-timeout", say=print)
    with healing(production, "app-timeout") as healed:
        gthread, aborted, in_c, short_read = facts["cuts"]
        node = facts["node"]
        # gthread: gunicorn's --timeout never cuts a request; the view ran its 5 s
        assert gthread["status"] == 200
        assert gthread["seconds"] > 4.5
        assert gthread["answered_by"] == f"Django on {node}"
        # sync, sleeping in Python: the abort raises in the view, gunicorn writes a 500
        assert aborted["status"] == 500
        assert aborted["origin"] == f"{node}-gunicorn"
        assert any("WORKER TIMEOUT" in line for line in aborted["gunicorn"])
        # sync, stuck in C: SIGKILL, the connection closes, nginx answers 502
        assert in_c["status"] == 502
        assert in_c["origin"] == f"{node}-nginx"
        assert "prematurely closed" in in_c["nginx_error"]
        assert any("SIGKILL" in line for line in in_c["gunicorn"])
        # nginx's proxy_read_timeout shorter than everything: nginx's own 504 after 1 s
        assert short_read["status"] == 504
        assert short_read["seconds"] < 3
        assert short_read["origin"] == f"{node}-nginx"
        assert "timed out" in short_read["nginx_error"]
        assert "app-timeout" in in_force(production)
        # another drill on the same node's gunicorn waits for this one's heal
        with pytest.raises(DrillError, match="app-timeout is in force"):
            drills.do(production, "break", "app-leak", say=print)
    assert healed["slow_view"] == 404          # the lab-only view left with the restart
    assert set(healed["servers"].values()) == {"UP"}


def _cgroup_or_skip() -> None:
    try:
        Cgroup.make(cgroup_name("probe")).remove()
    except NoCgroup as err:
        pytest.skip(str(err))


def test_app_leak_the_worker_is_killed_and_replaced(production: LabContext) -> None:
    _cgroup_or_skip()
    facts = drills.do(production, "break", "app-leak", say=print)
    with healing(production, "app-leak") as healed:
        assert facts["t_gone"] is not None, "no worker died"
        assert facts["t_new"] is not None
        assert facts["t_new"] >= facts["t_gone"]
        assert facts["oom_kills"] >= 1
        assert any("SIGKILL" in line for line in facts["news"])
        assert any("Booting worker" in line for line in facts["news"])
        # what failed: 502s from the node's nginx (the requests the killed worker held),
        # and no page after the replacement: the other worker and the new one serve
        assert set(facts["statuses"]) <= {200, 502}
        assert {str(status) for status, _ in facts["failed"]} <= {"502"}
        assert {status for _, status in facts["leaks"]} <= {200, 502}
        assert facts["summary"]["failed"] <= len(facts["failed"])
        assert facts["failed_after"] == 0
        assert "app-leak" in in_force(production)
    assert healed["leak_view"] == 404
    assert healed["cgroup_removed"] is True


def test_after_the_drills_the_lab_is_whole(production: LabContext) -> None:
    assert [r.name for r in lab.status(production) if not r.healthy] == []
    assert drills.status_lines(production) == []
