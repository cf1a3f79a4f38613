"""The ``wan`` tier: the relay of :mod:`whathappens.lab.wan`, started last, stopped first.

Its host is the client: the namespace's address (100.127.<N>.2), no port. Ready when the
relay has built the namespace and its TUN devices and written its ready file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.lab.tier import LabContext, SpecTier
from whathappens.lab.wan import WanNames, namespace_exists

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology


class WanLink(SpecTier):
    kind = "wan"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.options = spec.options
        self.names = WanNames(int(str(spec.options.get("subnet", 0))))
        self.depends = tuple(s.name for s in topo.tiers if s.name != spec.name)

    def ready_file(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "ready"

    def prepare(self, ctx: LabContext) -> None:
        if os.geteuid() != 0:
            raise PermissionError("lab up --rtt needs root (network namespace, TUN devices)")
        if not os.path.exists("/dev/net/tun"):
            raise FileNotFoundError("lab up --rtt needs /dev/net/tun")
        self.ready_file(ctx).unlink(missing_ok=True)

    def command(self, ctx: LabContext) -> list[str]:
        o = self.options
        argv = [sys.executable, "-m", "whathappens.lab.wan",
                "--subnet", str(self.names.subnet), "--rtt", str(o.get("rtt", "40ms")),
                "--jitter", str(o.get("jitter", "0ms")), "--loss", str(o.get("loss", "0")),
                "--ready-file", str(self.ready_file(ctx))]
        if o.get("seed") is not None:
            argv += ["--seed", str(o["seed"])]
        return argv

    def ready(self, ctx: LabContext) -> bool:
        return self.ready_file(ctx).exists() and namespace_exists(self.names.namespace)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": self.kind, "namespace": self.names.namespace,
                "rtt": self.options.get("rtt"), "jitter": self.options.get("jitter"),
                "loss": self.options.get("loss"), "lab_tun": self.names.lab_tun,
                "client_tun": self.names.client_tun}
