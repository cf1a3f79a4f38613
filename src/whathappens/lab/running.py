"""A lab that is up, as everything after ``lab up`` sees it: one handle, ``Lab``.

``open_lab`` reads ``lab.json`` and rebuilds the topology the lab was started with (its
profile, subnet and WAN link; the ports it recorded), keeping only the tiers it started: so
a lab from an older version, or one brought up by another user, is seen as it runs. The
handle gives each tier's driver, whether its process runs, the front door and the CA. The
status command, the drills, the experiments and the timeline all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from whathappens.lab import manifest as lab_json
from whathappens.lab import process
from whathappens.lab.manifest import Manifest
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.tiers import build
from whathappens.lab.topology import Topology, add_metrics, add_wan, topology

if TYPE_CHECKING:
    from whathappens.lab.tiers.haproxy import HAProxy


class LabNotRunning(Exception):
    """No lab in that state directory (or its lab.json cannot be read), or not one of the
    profile asked for."""


@dataclass
class Lab:
    ctx: LabContext
    topo: Topology
    manifest: Manifest
    _drivers: dict[str, Tier] = field(default_factory=dict)

    def tier(self, name: str) -> Tier:
        """Tier ``name``'s driver, built once."""
        if name not in self._drivers:
            self._drivers[name] = build(self.topo, self.topo.spec(name))
        return self._drivers[name]

    def tiers(self) -> list[Tier]:
        """Every tier's driver, in the topology's order."""
        return [self.tier(spec.name) for spec in self.topo.tiers]

    def endpoint(self, name: str) -> tuple[str, int]:
        return self.topo.endpoint(name)

    @property
    def front(self) -> tuple[str, int]:
        """(address, https port) of the front door: the CDN edge, or the single server."""
        return self.endpoint(self.topo.front().name)

    @property
    def cafile(self) -> str:
        return str(self.ctx.pki / "ca.pem")

    def haproxy(self) -> HAProxy:
        from whathappens.lab.tiers.haproxy import HAProxy

        [spec] = self.topo.of_kind("haproxy")
        lb = self.tier(spec.name)
        assert isinstance(lb, HAProxy)
        return lb

    def app_nodes(self) -> list[str]:
        """The app hosts HAProxy balances over (its server names): app-1, app-2."""
        backends = self.haproxy().backends
        return [self.topo.spec(str(b)).host for b in backends]

    def node_tiers(self, node: str) -> list[str]:
        """The node's tiers, in start order (gunicorn before the nginx in front of it)."""
        order = {"gunicorn": 0, "nginx-app": 1}
        specs = [s for s in self.topo.tiers if s.host == node and s.kind in order]
        return [s.name for s in sorted(specs, key=lambda s: order[s.kind])]

    def running(self, name: str) -> bool:
        return self.pid(name) is not None

    def pid(self, name: str) -> int | None:
        rec = process.Record.load(process.record_path(self.ctx, name))
        return rec.pid if rec is not None and process.alive(rec.pid) else None

    def lab_id(self) -> int:
        """Changes with every ``lab up`` (which rewrites lab.json)."""
        return lab_json.path(self.ctx.state).stat().st_mtime_ns

    def save_manifest(self) -> None:
        lab_json.write(self.ctx.state, self.manifest)


def recorded_topology(manifest: Manifest) -> Topology:
    """The topology of the profile, as the lab recorded it: only the tiers it started, on
    the ports it recorded (a lab started as root listens on 443, whoever reads it)."""
    topo = topology(manifest.profile, manifest.subnet)
    if manifest.wan:
        topo = add_wan(topo, manifest.subnet, manifest.wan)
    # The metrics tiers when lab up --metrics started them (the filter below drops them
    # otherwise).
    topo = add_metrics(topo, manifest.subnet)
    started = {t.name: t for t in manifest.tiers}
    topo.tiers = [replace(s, port=started[s.name].port) for s in topo.tiers
                  if s.name in started]
    return topo


def open_lab(ctx: LabContext, *, profile: str | None = None, why: str = "") -> Lab:
    """The lab in ``ctx.state``; ``ctx`` takes the profile, algorithm, subnet and WAN link
    it was started with. LabNotRunning when there is none, or when it is not of
    ``profile`` (``why`` says who needs that profile, and what for)."""
    manifest = lab_json.read(ctx.state)
    if manifest is None:
        raise LabNotRunning(f"no lab in {ctx.state} (start one: whathappens lab up)")
    if profile is not None and manifest.profile != profile:
        raise LabNotRunning(why or f"this needs a lab of the {profile} profile")
    try:
        topo = recorded_topology(manifest)
    except ValueError as err:          # a profile this version does not know
        raise LabNotRunning(f"the lab in {ctx.state}: {err}") from None
    ctx.profile, ctx.algorithm = manifest.profile, manifest.algorithm
    ctx.subnet, ctx.wan = manifest.subnet, manifest.wan
    ctx.mtls = manifest.mtls
    return Lab(ctx, topo, manifest)


