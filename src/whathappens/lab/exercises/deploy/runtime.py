"""What the deploys act with: HAProxy's runtime API (its admin socket), the site's version as
a gunicorn is started with it, and the green app processes of a blue-green deploy.

HAProxy's runtime API (management guide §9.3): ``set server app/NODE state drain|ready|maint``
changes a server's admin state at once, without a reload; several commands on one line,
separated by ``;``, run one after the other in the same pass of the CLI, so a blue-green
switch is one write. ``add server`` / ``del server`` (HAProxy ≥ 2.4) put the green servers
into the running backend and take them out again; a dynamic server inherits no
``default-server`` line, so its checks are given in full and enabled with ``enable health``.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from whathappens.lab import process
from whathappens.lab.tiers import build
from whathappens.lab.tiers.gunicorn import Gunicorn
from whathappens.lab.tiers.haproxy import CHECK
from whathappens.lab.topology import SITE, TierSpec, Topology

if TYPE_CHECKING:
    from whathappens.lab.running import Lab
    from whathappens.lab.tier import LabContext

BACKEND = "app"
VERSION_HEADER = "x-site-version"
BASE_VERSION = "v1"          # what ``lab up`` starts (the site's default)
# The green processes on each app host: a second gunicorn and a second nginx in front of it,
# on ports of their own (each host has its own address, so only the host's ports matter).
GREEN_GUNICORN_PORT = 8001
GREEN_NGINX_PORT = 8081


# What the runtime API answers on success (most commands answer nothing).
SUCCESS = ("New server registered.", "Server deleted.")


class DeployError(Exception):
    """The deploy cannot go on (no lab, a node not UP, a server that never came up)."""


@dataclass
class Server:
    """One server's row of ``show stat``: its state, current sessions and last check."""

    name: str
    status: str           # "UP", "DRAIN", "DOWN", "MAINT", "UP 1/2" …
    sessions: int         # scur: the sessions using it now
    check: str            # check_status: "L7OK", "L4CON" … ("* " while a check runs)

    @property
    def healthy(self) -> bool:
        """Passing its checks, whatever its admin state (ready or draining)."""
        return self.status in ("UP", "DRAIN") and "L7OK" in self.check


def servers(lab: Lab) -> dict[str, Server]:
    """The app backend's servers as HAProxy sees them now (``show stat``)."""
    return {row["svname"]: Server(row["svname"], row.get("status", ""),
                                  int(row.get("scur") or 0), row.get("check_status", ""))
            for row in lab.haproxy().server_rows(lab.ctx, BACKEND)}


def runtime(lab: Lab, commands: list[str]) -> float:
    """``commands`` in one write to the admin socket; the ms it took. DeployError with
    HAProxy's words when it answered anything (these commands answer nothing on success)."""
    t0 = time.monotonic()
    answer = lab.haproxy().admin(lab.ctx, "; ".join(commands)).strip()
    took = (time.monotonic() - t0) * 1000
    if answer and not all(line.strip() in SUCCESS for line in answer.splitlines()
                          if line.strip()):
        raise DeployError(f"HAProxy refused '{'; '.join(commands)}': {answer}")
    return took


def set_state(server: str, state: str) -> str:
    return f"set server {BACKEND}/{server} state {state}"


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``check()`` held (errors count as not yet), None after ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 <= timeout:
        try:
            if check():
                return time.monotonic() - t0
        except (OSError, ValueError):
            pass
        time.sleep(interval)
    return None


def probe(address: str, port: int, path: str = "/healthz") -> tuple[int, str]:
    """GET ``path`` straight from an app node's nginx: (status, X-Site-Version)."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": SITE})
        resp = conn.getresponse()
        resp.read(1 << 20)
        return resp.status, resp.getheader(VERSION_HEADER) or ""
    finally:
        conn.close()


class VersionedGunicorn(Gunicorn):
    """The node's gunicorn, started with the site's version in its environment."""

    def __init__(self, topo: Topology, spec: TierSpec, version: str) -> None:
        super().__init__(topo, spec)
        self.version = version

    def env(self, ctx: LabContext) -> dict[str, str]:
        return {**super().env(ctx), "WHATHAPPENS_SITE_VERSION": self.version}


def start_gunicorn(lab: Lab, name: str, version: str, topo: Topology | None = None) -> float:
    """Start tier ``name`` (a gunicorn) with ``version``; seconds until it answered /healthz."""
    topo = topo or lab.topo
    t0 = time.monotonic()
    process.start(VersionedGunicorn(topo, topo.spec(name), version), lab.ctx)
    return time.monotonic() - t0


# ---------------------------------------------------------------------------------------------
# The green set


def green_names(node: str) -> tuple[str, str, str]:
    """(gunicorn tier, nginx tier, HAProxy server) of ``node``'s green set."""
    return f"{node}-green-gunicorn", f"{node}-green-nginx", f"{node}-green"


def green_topology(lab: Lab) -> Topology:
    """The lab's topology with a green gunicorn and nginx on each app host."""
    extra = []
    for node in lab.app_nodes():
        gunicorn, nginx, _ = green_names(node)
        extra += [TierSpec("gunicorn", gunicorn, node, GREEN_GUNICORN_PORT, {"node": node}),
                  TierSpec("nginx-app", nginx, node, GREEN_NGINX_PORT,
                           {"upstream": gunicorn, "node": node})]
    return Topology(lab.topo.profile, lab.topo.hosts, [*lab.topo.tiers, *extra])


def start_green(lab: Lab, node: str, version: str) -> dict[str, float]:
    """Start ``node``'s green gunicorn (``version``) and nginx; seconds each took."""
    topo = green_topology(lab)
    gunicorn, nginx, _ = green_names(node)
    took = {"gunicorn_s": start_gunicorn(lab, gunicorn, version, topo)}
    t0 = time.monotonic()
    process.start(build(topo, topo.spec(nginx)), lab.ctx)
    took["nginx_s"] = time.monotonic() - t0
    return took


def add_green_server(lab: Lab, node: str) -> None:
    """Put ``node``'s green nginx into the backend, draining (no traffic), checks on."""
    _, _, server = green_names(node)
    address = lab.topo.address(node)
    runtime(lab, [f"add server {BACKEND}/{server} {address}:{GREEN_NGINX_PORT} check {CHECK}",
                  set_state(server, "drain"), f"enable health {BACKEND}/{server}"])


def remove_green(lab: Lab, node: str) -> list[str]:
    """Take ``node``'s green server out of HAProxy and stop its processes; what was done."""
    gunicorn, nginx, server = green_names(node)
    done = []
    if server in servers(lab):
        runtime(lab, [set_state(server, "maint")])
        wait_until(lambda: servers(lab)[server].sessions == 0, timeout=10)
        runtime(lab, [f"del server {BACKEND}/{server}"])
        done.append(f"removed server {BACKEND}/{server}")
    for tier in (nginx, gunicorn):
        if process.stop(lab.ctx, tier):
            done.append(f"stopped {tier}")
    return done
