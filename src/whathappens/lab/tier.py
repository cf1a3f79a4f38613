"""What every lab tier provides: configuration, a foreground command, a readiness check,
and the reader of its own log.

Tiers are small and declarative: no tier starts or stops a process itself; ``process.py``
does that for all of them, the same way, so ``lab status`` and ``lab down`` can handle any
tier from what was recorded. A tier whose program logs requests (nginx, HAProxy, gunicorn
and Django, PostgreSQL) reads that log back for one trace (``trace_spans``): the timeline
asks every tier, never a tier's name, what it saw.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from whathappens.lab.logs import ServerSpan
    from whathappens.lab.topology import TierSpec, Topology


@dataclass
class LabContext:
    """Where a lab lives and what it was brought up with."""

    state: Path                       # ./lab: configs, data, logs, pids
    profile: str = "production"
    ports: dict[str, int] = field(default_factory=dict)   # overrides, e.g. {"edge": 8443}
    algorithm: str = "roundrobin"     # HAProxy balance algorithm
    subnet: int = 0                   # 127.<subnet>.x.y instead of 127.0.x.y (see topology)
    wan: dict[str, object] | None = None   # {"rtt": "40ms", ...}: a client behind a WAN link
    mtls: bool = False                # TLS with client certificates between tiers (mtls.py)
    # Keep connections to upstreams open (edge → LB keepalive, HAProxy's http-reuse); the
    # mtls experiment turns it off to show what a handshake per request costs.
    upstream_reuse: bool = True
    metrics: bool = False             # lab up --metrics: Prometheus and exporters too

    def dir(self, name: str) -> Path:
        path = self.state / "tiers" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, name: str) -> Path:
        path = self.state / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path / f"{name}.log"

    @property
    def run(self) -> Path:
        path = self.state / "run"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def pki(self) -> Path:
        """The demo internet's CA: the lab's edge certificate comes from it."""
        return self.state / "pki"


class Tier(ABC):
    """One program of the lab on one host."""

    name: str            # unique in the topology: "db-primary", "app-1-gunicorn"
    host: str            # the lab host it runs on: "db-1", "app-1"
    role: str            # what it is, in the seeds' words: "database (primary)"
    address: str         # the host's loopback address
    port: int | None     # what it listens on (None: no listener, e.g. a worker)
    user: str | None = None          # run as this system user (PostgreSQL refuses root)
    depends: tuple[str, ...] = ()    # tier names that must be ready first
    # How to ask the program to stop. PostgreSQL reads SIGTERM as "smart" shutdown (wait
    # for every client to leave) and wants SIGINT for "fast"; most programs take SIGTERM.
    stop_signal: int = signal.SIGTERM
    # The span its log gives for each request that passes through it ("edge", "lb", "app",
    # "django"; see trace_spans), "" when none: what the timeline waits for.
    span_kind: str = ""

    @abstractmethod
    def prepare(self, ctx: LabContext) -> None:
        """Write configuration; initialise data the first time. Idempotent."""

    @abstractmethod
    def command(self, ctx: LabContext) -> list[str]:
        """The program in the foreground, logging to stdout/stderr."""

    def env(self, ctx: LabContext) -> dict[str, str]:
        return {}

    def ready(self, ctx: LabContext) -> bool:
        """One quick check; called repeatedly until true or the start times out."""
        return self.port is None or port_open(self.address, self.port)

    def after_ready(self, ctx: LabContext) -> None:  # noqa: B027 (optional hook)
        """Work once the tier answers (migrations, seed data). Default: nothing."""

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """What this tier's own log says about the requests of trace ``trace_id``, as
        spans on the machine's wall clock. Default: nothing (a tier that logs no request)."""
        return []

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "host": self.host, "role": self.role,
                "address": self.address, "port": self.port}


def port_open(address: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def which(program: str, *candidates: str) -> str:
    """A program's path: on PATH, or in one of the places Debian puts it."""
    found = shutil.which(program)
    if found:
        return found
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f"{program} is not installed (run: whathappens lab install)")


def chown_to(path: Path, user: str | None) -> None:
    """Give ``path`` (recursively) to ``user`` so a program running as it can write there."""
    if user is None or os.geteuid() != 0:
        return
    import pwd

    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


class SpecTier(Tier):
    """A tier built from its TierSpec in a Topology (what every tier in ``tiers/`` is)."""

    kind: str = ""

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        self.topo = topo
        self.spec = spec
        self.name = spec.name
        self.host = spec.host
        self.address = topo.address(spec.host)
        self.port = spec.port
        self.role = topo.hosts[spec.host].role

    def listen_port(self, program: str) -> int:
        """The tier's port, for a program that must listen on one (ValueError without)."""
        if self.port is None:
            raise ValueError(f"{self.name}: {program} must listen on a port")
        return self.port

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": self.kind}
