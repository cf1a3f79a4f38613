"""The CDN edge's drills, for real: waf (ModSecurity + the OWASP CRS), rate-limit (limit_req
per client address) and stale (a change at the origin, the edge's old copy, a purge), each
on a running production lab, asserting what surfaced and at which tier; then healed, and
nothing left running after ``lab down``.

One production lab for the module, on 127.<N>.x.y so it can run beside a developer's lab.
The stale drill waits out the page's s-maxage (10 s), which is the point of it. Needs the
Debian packages (`whathappens lab install`: nginx's ModSecurity module and the CRS among
them) and the `lab` Python extra.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab_helpers import bring_up, healing, in_force, needs_lab
from whathappens.lab import lab, process
from whathappens.lab.exercises import drills
from whathappens.lab.exercises.drills import edge
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers.nginx import OVERLAY_LEVELS, NginxEdge

pytestmark = needs_lab


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production", "whathappens-edge-drills-")


def snippets(ctx: LabContext) -> list[str]:
    """The drill snippets in the edge's config directory now."""
    running = drills.open_lab(ctx)
    driver = running.tier(running.topo.front().name)
    assert isinstance(driver, NginxEdge)
    return sorted(p.name for level in OVERLAY_LEVELS
                  for p in driver.overlay_dir(ctx, level).glob("*.conf"))



def test_waf_answers_an_attack_403_at_the_edge_with_the_crs_rule(
        production: LabContext) -> None:
    facts = drills.do(production, "break", "waf", say=print)
    with healing(production, "waf") as healed:
        assert facts["rules_loaded"] is not None
        assert facts["rules_loaded"] > 500
        assert "waf" in in_force(production)
        assert snippets(production) == ["waf.conf", "waf.conf"]      # main and server
        # The XSS journey: 403, and its merged timeline stops at the edge.
        assert facts["status"] == 403
        assert [(kind, status) for kind, _tier, status in facts["chain"]] == \
            [("server.edge", "403")]
        assert facts["lb_lines"] == 0                  # HAProxy never saw it
        assert facts["edge_line"]["upstream_addr"] == ""
        assert "949110" in facts["rules"]              # the CRS's anomaly-score block
        assert any(r.startswith("941") for r in facts["rules"])     # XSS rules
        assert facts["span_waf"].startswith("403: ")
        assert "949110" in facts["span_waf"]
        # The SQL injection: refused the same way; the clean request passes.
        assert facts["sqli"]["status"] == 403
        assert facts["sqli"]["answered_by"] == "the edge's nginx"
        assert facts["sqli"]["lb_lines"] == 0
        assert any(r.startswith("942") for r in facts["sqli"]["rules"])
        assert facts["clean"]["status"] == 200
        assert facts["clean"]["answered_by"].startswith("Django on app-")
        assert facts["clean"]["lb_lines"] == 1
        assert facts["clean"]["rules"] == []
    assert healed["status"] == 200                     # the same attack, without the WAF
    assert snippets(production) == []
    assert "waf" not in in_force(production)


def test_rate_limit_refuses_the_client_over_it_only(production: LabContext) -> None:
    facts = drills.do(production, "break", "rate-limit", say=print)
    with healing(production, "rate-limit") as healed:
        bot, visitor = facts["clients"]
        assert bot["client"] == "bot"
        assert visitor["client"] == "visitor"
        assert bot["refused"] > 20
        assert bot["other"] == 0
        # 1 + burst at once, then the rate: ~40 of 90 in the run's ~3 s
        assert edge.RL_BURST + 1 + 15 <= bot["accepted"] <= edge.RL_BURST + 1 + 35
        assert bot["accepted_rate"] is not None
        assert 0.7 * edge.RL_RATE <= bot["accepted_rate"] <= 1.3 * edge.RL_RATE
        assert bot["first_refused_s"] < 1.0            # the burst is used up in the first second
        assert visitor["refused"] == 0
        assert visitor["accepted"] == visitor["sent"]
        # where it surfaced: the edge, which logged each refusal with the client's address
        assert facts["edge_429_by_client"] == {bot["address"]: bot["refused"]}
        assert facts["error_log_by_client"] == {bot["address"]: bot["refused"]}
        assert facts["lb_lines"] == bot["accepted"] + visitor["accepted"]
        assert "rate-limit" in in_force(production)
    assert healed["statuses"] == {200: 40}
    assert snippets(production) == []


def test_stale_copy_until_expiry_then_a_purge_shows_the_change_at_once(
        production: LabContext) -> None:
    facts = drills.do(production, "break", "stale", say=print)
    with healing(production, "stale") as healed:
        assert facts["validity"] is not None           # read from the edge's cache file
        looks = facts["looks"]
        before_expiry = [x for x in looks if x["t"] < facts["expires_after_s"] - 0.3]
        assert before_expiry, "no look before the copy expired"
        assert all(x["x_cache"] == "HIT" and x["new"] is False for x in before_expiry)
        assert any(x["x_cache"] == "STALE" and x.get("journey") for x in looks)
        assert looks[-1]["new"] is True
        assert facts["first_new_s"] is not None
        assert facts["last_old_s"] >= facts["expires_after_s"] - 0.6
        assert facts["first_new_s"] < facts["expires_after_s"] + 5
        # The STALE answer's background refresh is not squeezed under the edge's span.
        refresh = facts["refresh"]
        assert refresh["checked"] is True
        assert refresh["only_edge"] is True
        assert "in the background" in refresh["note"]
        assert "lb" in refresh["note"]
        # The purge: the old copy before it, the new one right after it (a MISS).
        purge = facts["purge"]
        assert purge["before"]["new"] is False
        assert purge["before"]["x_cache"] == "HIT"
        assert purge["after"]["new"] is True
        assert purge["after"]["x_cache"] == "MISS"
        assert "edge" in purge["removed"]
        assert "stale" in in_force(production)
    assert healed["look"]["new"] is True                # the original title, at once
    assert "stale" not in in_force(production)


def test_down_leaves_nothing_running(production: LabContext) -> None:
    running = drills.open_lab(production)
    edge_pid = running.pid(running.topo.front().name)
    assert edge_pid is not None
    workers = edge._children(edge_pid)         # the workers of the reloads' last config
    records = process.records(production)
    lab.down(production)
    for rec in records:
        assert not process.alive(rec.pid), rec.tier
    for pid in workers:
        assert not process.alive(pid), pid
    assert process.records(production) == []
