"""``whathappens URL --lab``: the journey to the lab's front door, with the inside merged in.

The lab's front (the CDN edge, or the single server's nginx) answers for www.example.com
with a certificate from the lab's own CA; the journey connects to it by address (like curl's
``--resolve``), sends a ``traceparent``, and afterwards reads every tier's log for that trace.
"""

from __future__ import annotations

import json
from pathlib import Path

from whathappens.journey import Journey
from whathappens.lab.timeline import merge, wait_and_collect
from whathappens.trace import Options

FRONT_TIERS = ("edge", "nginx")
LAB_HOSTS = ("www.example.com", "example.com")


class LabNotRunning(Exception):
    pass


def front(state: Path) -> tuple[str, int, int | None]:
    """(address, https port, http port) of the lab's front door."""
    try:
        manifest = json.loads((state / "lab.json").read_text())
    except (OSError, ValueError):
        raise LabNotRunning(f"no lab in {state} (start one: whathappens lab up)") from None
    for tier in manifest.get("tiers", []):
        if tier["name"] in FRONT_TIERS:
            return str(tier["address"]), int(tier["port"]), tier.get("http_port")
    raise LabNotRunning(f"the lab in {state} has no front tier")


def apply(options: Options, state: Path) -> None:
    """Point the journey at the lab: its front's address, its CA, a traceparent."""
    address, https, http = front(state)
    for host in LAB_HOSTS:
        options.resolve.setdefault((host, https), [address])
        if http:
            options.resolve.setdefault((host, int(http)), [address])
    if options.tls.cafile is None:
        options.tls.cafile = str(state / "pki" / "ca.pem")
    options.traceparent = True


def merge_inside(journey: Journey, state: Path) -> None:
    """Merge the tiers' spans for this journey's trace; say what was found."""
    trace_id = journey.facts.get("trace_id")
    if not trace_id:
        return
    try:
        manifest = json.loads((state / "lab.json").read_text())
    except (OSError, ValueError):
        return
    kinds = {"edge", "django"} | ({"lb", "app"} if manifest.get("profile") == "production"
                                  else set())
    spans = wait_and_collect(state, str(trace_id), expected=len(kinds))
    placed = merge(journey, spans)
    journey.facts["lab"] = {"state": str(state), "profile": manifest.get("profile"),
                            "server_spans": placed}
    if placed:
        journey.note("info", "server", f"{placed} spans from the lab's own logs are merged "
                     "into the timeline (same machine, same clock)")
    else:
        journey.note("warning", "server", "no lab tier logged this journey's traceparent")
