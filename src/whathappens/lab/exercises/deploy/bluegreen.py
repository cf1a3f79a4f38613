"""``lab deploy blue-green`` and ``lab deploy rollback``: a second set of app processes
beside the live one, and one switch in HAProxy.

Green is, on each app host, a second gunicorn (started with the new version, port 8001) and
a second nginx in front of it (port 8081): the same path as blue's, so only the version
differs. Each is warmed (a few requests straight to its nginx, so its workers have loaded
Django and opened their database connections before real traffic comes) and health-checked,
then added to HAProxy's running backend as a draining server (``add server``, checks
enabled): HAProxy checks it but sends it nothing. The switch is one write to the admin
socket — every green server ``ready``, every blue one ``drain`` — so no request is balanced
between the two commands; requests already on blue finish there. ``rollback`` is the same
write the other way round: blue was never stopped, so it is instant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from whathappens.lab.exercises.deploy.measure import LoadRun, version
from whathappens.lab.exercises.deploy.runtime import (
    GREEN_NGINX_PORT,
    DeployError,
    add_green_server,
    green_names,
    probe,
    runtime,
    servers,
    set_state,
    start_green,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from whathappens.lab.exercises import load
    from whathappens.lab.running import Lab

WARM_PATHS = ("/", "/p/about/", "/healthz")
UP_TIMEOUT = 15.0
AFTER_SWITCH = 3.0     # seconds of load after a switch


@dataclass
class Switch:
    """A switch under load, as the load saw it."""

    to: str                    # "green" or "blue"
    t: float                   # seconds into the load
    command_ms: float          # the admin socket write, there and back
    sessions_before: dict[str, int]     # HAProxy's scur per server just before
    in_flight: int             # load requests started before the switch, ended after
    in_flight_failed: int
    first_new_ms: float | None      # first answer of the new version after the switch
    last_old_ms: float | None       # last answer of the old version after the switch
    failed_after: int
    old_after: int             # requests started after the switch answered by the old one

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def switch(lab: Lab, run: LoadRun, to_green: bool) -> Switch:
    """Green ready and blue draining (or the reverse), in one write; timed on the load."""
    nodes = lab.app_nodes()
    green = [green_names(n)[2] for n in nodes]
    live, off = (green, nodes) if to_green else (nodes, green)
    before = {name: s.sessions for name, s in servers(lab).items()}
    t = run.mark(f"switch to {'green' if to_green else 'blue'}")
    took = runtime(lab, [*(set_state(s, "ready") for s in live),
                         *(set_state(s, "drain") for s in off)])
    return Switch("green" if to_green else "blue", t, took, before, 0, 0, None, None, 0, 0)


def measure_switch(sw: Switch, result: load.LoadResult, new: str, old: str) -> Switch:
    """Fill in what the load saw around the switch at ``sw.t``."""
    ends = [(s, s.start + s.latency_ms / 1000) for s in result.samples]
    flight = [s for s, end in ends if s.start < sw.t <= end]
    sw.in_flight = len(flight)
    sw.in_flight_failed = sum(1 for s in flight if not 200 <= s.status < 400)
    new_ends = [end for s, end in ends if version(s) == new and end >= sw.t]
    old_ends = [end for s, end in ends if version(s) == old and end >= sw.t]
    sw.first_new_ms = (min(new_ends) - sw.t) * 1000 if new_ends else None
    sw.last_old_ms = (max(old_ends) - sw.t) * 1000 if old_ends else None
    sw.failed_after = sum(1 for s in result.failed if s.start >= sw.t)
    sw.old_after = sum(1 for s in result.ok if s.start >= sw.t and version(s) == old)
    return sw


def bring_green(lab: Lab, new: str, say: Callable[[str], None],
                run: LoadRun) -> dict[str, Any]:
    """Start, warm and health-check each node's green set; HAProxy checks it, draining."""
    run.mark(f"green ({new}) starting, blue live")
    facts: dict[str, Any] = {}
    for node in lab.app_nodes():
        took = start_green(lab, node, new)
        address = lab.topo.address(node)
        t0 = time.monotonic()
        warm = [probe(address, GREEN_NGINX_PORT, path) for path in WARM_PATHS]
        warm_ms = (time.monotonic() - t0) * 1000
        if any(status != 200 or got != new for status, got in warm):
            raise DeployError(f"{node}'s green set answered {warm} while warming "
                              f"(wanted 200 and {new} each)")
        add_green_server(lab, node)
        say(f"  {node}: green gunicorn ({new}) up in {took['gunicorn_s']:.2f} s, its nginx "
            f"in {took['nginx_s']:.2f} s; warmed with {len(WARM_PATHS)} requests "
            f"({warm_ms:.0f} ms, all 200 {new}); added to HAProxy as {green_names(node)[2]} "
            f"(draining)")
        facts[node] = {**took, "warm_ms": round(warm_ms, 1)}
    names = [green_names(n)[2] for n in lab.app_nodes()]
    up = wait_until(lambda: all(servers(lab)[s].healthy for s in names), UP_TIMEOUT)
    if up is None:
        raise DeployError("HAProxy's checks do not pass on the green servers: " + ", ".join(
            f"{s.name} {s.status} {s.check}" for s in servers(lab).values()))
    say(f"  HAProxy's checks pass on every green server {up:.2f} s after the last was added")
    run.mark("green checked, blue live")
    facts["checks_up_s"] = round(up, 3)
    return facts


def switch_lines(sw: Switch, new: str, old: str) -> list[str]:
    def at(v: float | None) -> str:
        return f"{v:.0f} ms" if v is not None else "none"

    scur = ", ".join(f"{k} {v}" for k, v in sorted(sw.sessions_before.items()))
    return [
        f"  the switch to {sw.to}: one admin-socket write, {sw.command_ms:.1f} ms there and "
        f"back, {sw.t:.2f} s into the load",
        f"    HAProxy's sessions just before (scur): {scur}",
        f"    load requests in flight across it: {sw.in_flight} ({sw.in_flight_failed} "
        f"failed); they finished where they were",
        f"    first {new} answer after it: {at(sw.first_new_ms)}; last {old} answer after "
        f"it: {at(sw.last_old_ms)} (a request that started before)",
        f"    requests started after it: {sw.failed_after} failed, {sw.old_after} answered "
        f"by {old} (every new request goes to the new side at once)",
    ]
