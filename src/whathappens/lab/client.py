"""``whathappens URL --lab``: the journey to the lab's front door, with the inside merged in.

The lab's front (the CDN edge, or the single server's nginx) answers for www.example.com
with a certificate from the lab's own CA. The journey finds it the real way: it asks the
lab's Unbound, which walks the lab's root → com. → example.com, and walks the same chain
itself from the lab's root hints beside it. It sends a ``traceparent``, and afterwards reads
every tier's log for that trace.

A lab written before it had DNS tiers (no ``dns-authoritative``/``unbound`` in its
``lab.json``) is still reached by address, like curl's ``--resolve``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whathappens.contract.document import LabFacts
from whathappens.journey import Journey
from whathappens.lab.timeline import merge, wait_and_collect
from whathappens.net.dns.views import DnsOptions
from whathappens.trace import Options

FRONT_TIERS = ("edge", "nginx")
LAB_HOSTS = ("www.example.com", "example.com")
ALL_VIEWS = DnsOptions().views


@dataclass(frozen=True)
class LabDns:
    resolver: tuple[str, int]     # Unbound's address and port
    root_hints: Path              # the lab's root server, as a named.root-style file
    port: int                     # the port every lab name server listens on


def _manifest(state: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((state / "lab.json").read_text())
        return data
    except (OSError, ValueError):
        raise LabNotRunning(f"no lab in {state} (start one: whathappens lab up)") from None


def lab_dns(state: Path) -> LabDns | None:
    """The lab's resolver and root hints, or None for a lab without DNS tiers."""
    tiers = {t.get("kind"): t for t in _manifest(state).get("tiers", []) if t.get("kind")}
    auth, unbound = tiers.get("dns-authoritative"), tiers.get("unbound")
    if auth is None or unbound is None:
        return None
    return LabDns((str(unbound["address"]), int(unbound["port"])),
                  state / str(auth["root_hints"]), int(auth["port"]))


class LabNotRunning(Exception):
    pass


def front(state: Path) -> tuple[str, int, int | None]:
    """(address, https port, http port) of the lab's front door."""
    for tier in _manifest(state).get("tiers", []):
        if tier["name"] in FRONT_TIERS:
            return str(tier["address"]), int(tier["port"]), tier.get("http_port")
    raise LabNotRunning(f"the lab in {state} has no front tier")


def apply(options: Options, state: Path) -> None:
    """Point the journey at the lab: its DNS (or its front's address), its CA, a traceparent.

    What the user gave explicitly (``--resolver``, ``--root-hints``) is kept. The system
    view is left out: the lab's names exist only inside the lab, and getaddrinfo() would ask
    the machine's own resolver about the real www.example.com (the demo does the same).
    """
    address, https, http = front(state)
    dns = lab_dns(state)
    if dns is None:
        for host in LAB_HOSTS:
            options.resolve.setdefault((host, https), [address])
            if http:
                options.resolve.setdefault((host, int(http)), [address])
    else:
        if options.dns.resolver is None:
            options.dns.resolver = dns.resolver
        if options.dns.root_hints is None:
            options.dns.root_hints = str(dns.root_hints)
            options.dns.dns_port = dns.port
        views = frozenset({"resolver", "walk"}) if options.dns.views == ALL_VIEWS \
            else options.dns.views
        options.dns.views = views - {"system"}
    if options.tls.cafile is None:
        options.tls.cafile = str(state / "pki" / "ca.pem")
    options.traceparent = True


def merge_inside(journey: Journey, state: Path) -> None:
    """Merge the tiers' spans for this journey's trace; say what was found."""
    try:
        manifest = _manifest(state)
    except LabNotRunning:
        return
    from whathappens.lab.wan import outside_note

    if (wan := outside_note(manifest, state)) is not None:
        journey.note("info", "wan", wan)
    views = {s.name for s in journey.all_spans()} & {"dns.system", "dns.resolver", "dns.walk"}
    if views and "dns.system" not in views:
        journey.note("info", "dns", "the system resolver view is skipped with --lab: the "
                     "lab's names exist only inside the lab, whose own resolver and root "
                     "answer them")
    trace_id = journey.facts.trace_id
    if not trace_id:
        return
    kinds = {"edge", "django"} | ({"lb", "app"} if manifest.get("profile") == "production"
                                  else set())
    spans = wait_and_collect(state, str(trace_id), expected=len(kinds))
    placed = merge(journey, spans)
    journey.facts.lab = LabFacts(state=str(state), profile=manifest.get("profile"),
                                 server_spans=placed)
    if placed:
        journey.note("info", "server", f"{placed} spans from the lab's own logs are merged "
                     "into the timeline (same machine, same clock)")
    else:
        journey.note("warning", "server", "no lab tier logged this journey's traceparent")
