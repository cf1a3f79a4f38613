"""The lab's topology and start order, as data (no programs started here)."""

from __future__ import annotations

import pytest

from whathappens.lab.lab import dependencies, waves
from whathappens.lab.tier import LabContext, SpecTier
from whathappens.lab.topology import production, single, topology


class Fake(SpecTier):
    def prepare(self, ctx: LabContext) -> None:
        pass

    def command(self, ctx: LabContext) -> list[str]:
        return ["true"]


def test_every_host_has_its_own_loopback_address() -> None:
    for topo in (production(), single()):
        addresses = [h.address for h in topo.hosts.values()]
        assert len(set(addresses)) == len(addresses)
        assert all(a.startswith("127.") for a in addresses)
        for spec in topo.tiers:
            assert spec.host in topo.hosts


def test_production_draws_the_seeds_picture() -> None:
    topo = production()
    kinds = [s.kind for s in topo.tiers]
    for kind in ("nginx-edge", "haproxy", "nginx-app", "gunicorn", "pgbouncer",
                 "postgres-primary", "postgres-replica", "redis", "celery"):
        assert kind in kinds
    assert kinds.count("gunicorn") == 2  # at least two app nodes, each its own address
    assert topo.address("app-1") != topo.address("app-2")


def test_start_order_puts_dependencies_first() -> None:
    topo = production()
    tiers = [Fake(topo, spec) for spec in topo.tiers]
    order = [t.name for wave in waves(topo, tiers) for t in wave]
    for tier in tiers:
        for dep in dependencies(topo, tier):
            assert order.index(dep) < order.index(tier.name), (dep, tier.name)
    assert order.index("db-primary") < order.index("db-replica") < order.index("pgbouncer")
    assert order.index("lb") < order.index("edge")
    assert set(order[-2:]) == {"edge", "pop-2"}         # the front doors start last


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        topology("huge")


def test_the_site_is_the_name_the_demo_pki_certifies() -> None:
    from whathappens.demo.ca import SERVER_NAMES
    from whathappens.lab.topology import SITE

    assert SERVER_NAMES[0] == SITE
