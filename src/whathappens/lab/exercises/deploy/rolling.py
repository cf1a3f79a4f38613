"""``lab deploy rolling``: the new version node by node, under a paced load.

For each app node in turn: drain it in HAProxy (``set server app/NODE state drain``: no new
request goes there, the ones in flight finish), wait until its sessions (``show stat``
scur) are 0, switch (stop its gunicorn with SIGTERM — gunicorn's graceful stop: workers
finish what they hold, up to its 10 s graceful timeout — and start a new master with
``WHATHAPPENS_SITE_VERSION``; a new master rather than a HUP: a HUP re-reads gunicorn's
configuration and forks new workers from the same master, whose environment — where the lab
puts the version — no signal changes; and with no request reaching a drained node a restart
costs nothing), health-check it (``/healthz`` through its nginx, and the version it answers
with), wait until HAProxy's own checks pass again, and re-enable it (``state ready``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from whathappens.lab import process
from whathappens.lab.exercises.deploy.measure import LoadRun
from whathappens.lab.exercises.deploy.runtime import (
    DeployError,
    probe,
    runtime,
    servers,
    set_state,
    start_gunicorn,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from whathappens.lab.running import Lab

DRAIN_TIMEOUT = 30.0
UP_TIMEOUT = 15.0


@dataclass
class NodeStep:
    """One node's switch: what each step took (seconds)."""

    node: str
    sessions_at_drain: int
    drain_wait_s: float
    stop_s: float
    start_s: float
    health: str
    haproxy_up_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def roll_node(lab: Lab, node: str, version: str, say: Callable[[str], None],
              run: LoadRun | None = None) -> NodeStep:
    """Drain, wait, switch, health-check and re-enable one node."""
    def mark(label: str) -> None:
        if run is not None:
            run.mark(label)

    mark(f"{node} draining, switching")
    before = servers(lab)[node].sessions
    runtime(lab, [set_state(node, "drain")])
    drained = wait_until(lambda: servers(lab)[node].sessions == 0, DRAIN_TIMEOUT)
    if drained is None:
        raise DeployError(f"{node} still had sessions {DRAIN_TIMEOUT:g} s after the drain")
    say(f"  {node}: drained ({before} session(s) at the drain; 0 after {drained:.2f} s)")
    [gunicorn] = [t for t in lab.node_tiers(node) if t.endswith("-gunicorn")]
    t0 = time.monotonic()
    process.stop(lab.ctx, gunicorn)
    stop_s = time.monotonic() - t0
    start_s = start_gunicorn(lab, gunicorn, version)
    say(f"  {node}: {gunicorn} stopped gracefully in {stop_s:.2f} s; the new master "
        f"({version}) answered /healthz {start_s:.2f} s after its start")
    [nginx] = [t for t in lab.node_tiers(node) if not t.endswith("-gunicorn")]
    status, answered = probe(*lab.endpoint(nginx))
    if status != 200 or answered != version:
        raise DeployError(f"{node}'s /healthz through its nginx: {status}, version "
                          f"{answered or 'none'} (wanted 200, {version}); it stays drained")
    mark(f"{node} checked, HAProxy rising")
    up = wait_until(lambda: servers(lab)[node].healthy, UP_TIMEOUT)
    if up is None:
        raise DeployError(f"HAProxy's checks do not pass on {node}: {servers(lab)[node]}")
    runtime(lab, [set_state(node, "ready")])
    mark(f"{node} ready ({version})")
    say(f"  {node}: /healthz through its nginx: 200, X-Site-Version {answered}; HAProxy's "
        f"checks passing {up:.2f} s later; set ready")
    return NodeStep(node, before, drained, stop_s, start_s, f"200 {answered}", up)


def all_up(lab: Lab) -> None:
    """Every blue node UP before a deploy starts."""
    nodes = lab.app_nodes()
    if wait_until(lambda: all(servers(lab)[n].status == "UP" for n in nodes), 10) is None:
        raise DeployError("HAProxy does not see every app node UP: " + ", ".join(
            f"{s.name} {s.status}" for s in servers(lab).values()))


def rolling(lab: Lab, version: str, say: Callable[[str], None],
            run: LoadRun | None = None) -> list[NodeStep]:
    """Every node, one after the other (the load, if any, already running)."""
    all_up(lab)
    if run is not None:
        run.mark("before the deploy")
        time.sleep(1.0)
    return [roll_node(lab, node, version, say, run) for node in lab.app_nodes()]
