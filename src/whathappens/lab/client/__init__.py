"""The client bridge. ``whathappens URL --lab``: the journey to the lab's front door, with
the inside merged in.

The lab's front (the CDN edge, or the single server's nginx) answers for www.example.com
with a certificate from the lab's own CA. The journey finds it the real way: it asks the
lab's Unbound, which walks the lab's root → com. → example.com, and walks the same chain
itself from the lab's root hints beside it. It sends a ``traceparent``, and afterwards every
tier's driver reads its own log for that trace; ``timeline.py`` puts those spans under the
journey's HTTP spans.

A lab written before it had DNS tiers (no ``dns-authoritative``/``unbound`` in its
``lab.json``) is still reached by address, like curl's ``--resolve``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from whathappens.contract.document import LabFacts
from whathappens.journey import Journey
from whathappens.lab.client.cached import attribute
from whathappens.lab.client.resolver import merge_resolver
from whathappens.lab.client.timeline import (
    TASK_WAIT,
    merge,
    published,
    request_kinds,
    wait_and_collect,
    wait_for_tasks,
)
from whathappens.lab.manifest import Manifest
from whathappens.lab.running import Lab, LabNotRunning, open_lab
from whathappens.lab.tier import LabContext
from whathappens.lab.topology import SITE, WanNames
from whathappens.net.dns.views import DnsOptions
from whathappens.trace import Options

__all__ = ["LabDns", "LabNotRunning", "apply", "front", "lab_dns", "merge_inside",
           "outside_note"]

LAB_HOSTS = (SITE, SITE.removeprefix("www."))
ALL_VIEWS = DnsOptions().views


@dataclass(frozen=True)
class LabDns:
    resolver: tuple[str, int]     # Unbound's address and port
    root_hints: Path              # the lab's root server, as a named.root-style file
    port: int                     # the port every lab name server listens on


def _open(state: Path) -> Lab:
    return open_lab(LabContext(state=state))


def lab_dns(state: Path) -> LabDns | None:
    """The lab's resolver and root hints, or None for a lab without DNS tiers."""
    manifest = _open(state).manifest
    auth, unbound = manifest.of_kind("dns-authoritative"), manifest.of_kind("unbound")
    hints = auth.facts.get("root_hints") if auth is not None else None
    if auth is None or unbound is None or auth.port is None or unbound.port is None \
            or hints is None:
        return None
    return LabDns((unbound.address, unbound.port), state / str(hints), auth.port)


def front(state: Path) -> tuple[str, int, int | None]:
    """(address, https port, http port) of the lab's front door."""
    lab = _open(state)
    try:
        spec = lab.topo.front()
    except KeyError:
        raise LabNotRunning(f"the lab in {state} has no front tier") from None
    address, https = lab.endpoint(spec.name)
    http = spec.options.get("http_port")
    return address, https, None if http is None else int(str(http))


def in_namespace(name: str) -> bool:
    """Is this process in network namespace ``name`` (as ``ip netns exec`` puts it)?"""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return False


def outside_note(manifest: Manifest, state: Path) -> str | None:
    """What to say when a journey to a WAN lab ran outside its client namespace."""
    wan = manifest.wan
    if not wan:
        return None
    ns = WanNames(manifest.subnet).namespace
    if in_namespace(ns):
        return None
    return (f"this lab has a WAN link (rtt {wan.get('rtt')}), but this journey went over "
            f"loopback; through the link: ip netns exec {ns} whathappens URL --lab {state}")


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


def merge_page_inside(journey: Journey, state: Path) -> None:
    """After ``--browser``: the tiers' spans of each request the page made, under it."""
    trace_id = journey.facts.trace_id
    if not trace_id or not any(s.name == "browser.resource" for s in journey.all_spans()):
        return
    try:
        lab = _open(state)
    except LabNotRunning:
        return
    # The page's requests that went to the network (not Chromium's cache, not failed).
    sent = frozenset(s.facts.traceparent for s in journey.all_spans()
                     if s.name == "browser.resource" and s.facts.traceparent
                     and not s.facts.from_cache and not s.facts.failed)
    spans = wait_and_collect(state, str(trace_id), request_kinds(lab),
                             traceparents=sent)
    placed = merge(journey, spans, names=("browser.resource",))
    if placed:
        journey.note("info", "server", f"{placed} spans from the lab's own logs are merged "
                     "under the page's requests")
        if journey.facts.lab is not None:
            journey.facts.lab.server_spans += placed


def merge_inside(journey: Journey, state: Path, flushed: str | None = None) -> None:
    """Merge the tiers' spans for this journey's trace; say what was found. ``flushed``:
    what ``--lab-cold`` emptied from Unbound's cache before the journey."""
    try:
        lab = _open(state)
    except LabNotRunning:
        return
    merge_resolver(journey, state, flushed)
    if (wan := outside_note(lab.manifest, state)) is not None:
        journey.note("info", "wan", wan)
    views = {s.name for s in journey.all_spans()} & {"dns.system", "dns.resolver", "dns.walk"}
    if views and "dns.system" not in views:
        journey.note("info", "dns", "the system resolver view is skipped with --lab: the "
                     "lab's names exist only inside the lab, whose own resolver and root "
                     "answer them")
    trace_id = journey.facts.trace_id
    if not trace_id:
        return
    sent = frozenset(s.facts.traceparent for s in journey.all_spans()
                     if s.name == "http" and s.facts.traceparent
                     and s.facts.status is not None)
    spans = wait_and_collect(state, str(trace_id), request_kinds(lab),
                             traceparents=sent)
    spans = wait_for_tasks(state, str(trace_id), spans)
    waiting = published(spans) - sum(1 for s in spans if s.kind == "task")
    if waiting > 0:
        journey.note("info", "server", f"{waiting} task(s) this request published had not "
                     f"been taken by the worker {TASK_WAIT:g} s later (a backlog in the queue, "
                     "or no worker running): their spans are not on this timeline")
    placed = merge(journey, spans)
    attribute(journey, lab)
    journey.facts.lab = LabFacts(state=str(state), profile=lab.manifest.profile,
                                 server_spans=placed)
    if placed:
        journey.note("info", "server", f"{placed} spans from the lab's own logs are merged "
                     "into the timeline (same machine, same clock)")
    else:
        journey.note("warning", "server", "no lab tier logged this journey's traceparent")
