"""Bringing a lab up, asking how it is, and taking it down.

``up`` starts tiers in dependency order — all tiers whose dependencies are ready start
together, each in a thread that waits for its own readiness — and writes ``lab.json``
(profile, hosts, tiers). ``down`` stops in the reverse order; ``status`` checks each tier's
process and readiness again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from whathappens.lab import manifest as lab_json
from whathappens.lab import process
from whathappens.lab.manifest import HostEntry, Manifest, TierEntry
from whathappens.lab.running import LabNotRunning, open_lab
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.tiers import build_all
from whathappens.lab.topology import Topology, add_metrics, add_wan, topology


@dataclass
class TierStatus:
    name: str
    host: str
    role: str
    address: str
    port: int | None
    pid: int | None
    running: bool
    healthy: bool
    since: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def dependencies(topo: Topology, tier: Tier) -> set[str]:
    """Declared dependencies plus every tier the spec's options name (upstreams, primary)."""
    names = {s.name for s in topo.tiers}
    deps = set(tier.depends)
    for value in topo.spec(tier.name).options.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item in names:
                deps.add(item)
    return deps & names


def waves(topo: Topology, tiers: list[Tier]) -> list[list[Tier]]:
    """Tiers grouped so that each wave only depends on earlier ones."""
    left = {t.name: t for t in tiers}
    deps = {t.name: dependencies(topo, t) for t in tiers}
    done: set[str] = set()
    out: list[list[Tier]] = []
    while left:
        wave = [t for n, t in left.items() if deps[n] <= done]
        if not wave:
            raise ValueError(f"dependency cycle among {', '.join(sorted(left))}")
        out.append(wave)
        for t in wave:
            done.add(t.name)
            del left[t.name]
    return out


def up(ctx: LabContext, *, report: Callable[[str], None] | None = None
       ) -> list[process.Record]:
    """Start every tier of ``ctx.profile``; on failure, stop what was started and raise."""
    topo = topology(ctx.profile, ctx.subnet)
    if ctx.wan:
        topo = add_wan(topo, ctx.subnet, ctx.wan)
    if ctx.metrics:
        topo = add_metrics(topo, ctx.subnet)
    tiers = build_all(topo)
    ctx.state.mkdir(parents=True, exist_ok=True)
    _write_manifest(ctx, topo, tiers)
    started: list[process.Record] = []
    t0 = time.monotonic()
    try:
        for wave in waves(topo, tiers):
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                futures = [(t, pool.submit(process.start, t, ctx)) for t in wave]
                errors: list[BaseException] = []
                for tier, fut in futures:
                    try:
                        started.append(fut.result())
                        if report:
                            report(f"  up  {tier.name:<16} {tier.address}:{tier.port or '-'}"
                                   f"  ({time.monotonic() - t0:.1f} s)")
                    except BaseException as exc:
                        errors.append(exc)
                if errors:
                    raise errors[0]
    except BaseException:
        down(ctx)
        raise
    return started


def down(ctx: LabContext, *, purge: bool = False) -> list[str]:
    """Stop every recorded tier, last started first; ``purge`` removes the state too."""
    stopped: list[str] = []
    manifest = lab_json.read(ctx.state)
    order = [t.name for t in manifest.tiers] if manifest else []
    recorded = [r.tier for r in process.records(ctx)]
    for name in reversed(order + [n for n in recorded if n not in order]):
        if process.stop(ctx, name):
            stopped.append(name)
    if purge and ctx.state.exists():
        shutil.rmtree(ctx.state)
    return stopped


def status(ctx: LabContext) -> list[TierStatus]:
    """Every tier lab.json lists: its process and its readiness check, now."""
    try:
        running = open_lab(ctx)
    except LabNotRunning:
        return []
    records = {r.tier: r for r in process.records(ctx)}
    drivers = {t.name: t for t in running.tiers()}
    out = []
    for item in running.manifest.tiers:
        tier = drivers.get(item.name)
        rec = records.get(item.name)
        alive = rec is not None and process.alive(rec.pid)
        healthy = False
        if alive and tier is not None:
            try:
                healthy = tier.ready(ctx)
            except Exception:
                healthy = False
        out.append(TierStatus(item.name, item.host, item.role, item.address, item.port,
                              rec.pid if rec else None, alive, healthy,
                              rec.started if rec else None))
    return out


def _write_manifest(ctx: LabContext, topo: Topology, tiers: list[Tier]) -> None:
    manifest = Manifest(
        profile=topo.profile, algorithm=ctx.algorithm, subnet=ctx.subnet, wan=ctx.wan,
        mtls=ctx.mtls,
        hosts={h.name: HostEntry(h.address, h.role) for h in topo.hosts.values()},
        tiers=[TierEntry.from_json(t.describe()) for w in waves(topo, tiers) for t in w])
    lab_json.write(ctx.state, manifest)
