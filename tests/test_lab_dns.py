"""The lab's own DNS, for real: root → TLD → example.com servers and an Unbound resolver.

One single-profile lab on 127.<N>.x.y (so it can run beside a lab a developer has up, and
beside the demo internet); every query goes over the wire with dnspython, and a ``--lab``
journey finds the front door through the lab's resolver instead of ``--resolve``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from journey_helpers import check_universal, child, legs, options
from lab_helpers import bring_up, needs_lab
from whathappens.demo import topology as demo
from whathappens.journey import Span
from whathappens.lab.client import apply, lab_dns, merge_inside
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers import build
from whathappens.lab.tiers.dns import Unbound, addresses_in, ask
from whathappens.lab.topology import production, single, topology
from whathappens.trace import run_journey


# ------------------------------------------------------------- topology, no programs
def test_both_profiles_have_the_dns_hosts_beside_the_demos() -> None:
    demo_addresses = {s.address for s in demo.NAME_SERVERS} | {demo.RESOLVER_ADDRESS}
    for topo in (production(), single()):
        dns_hosts = {h: topo.address(h) for h in ("ns-root", "ns-tld", "ns-example",
                                                 "resolver")}
        assert all(a.startswith("127.0.54.") for a in dns_hosts.values())
        assert not set(dns_hosts.values()) & demo_addresses  # lab on 0 and demo together
        assert [s.kind for s in topo.tiers[:2]] == ["dns-authoritative", "unbound"]
    moved = topology("single", 201)
    assert moved.address("ns-root") == "127.201.54.1"
    assert moved.address("resolver") == "127.201.54.53"


def test_unprivileged_unbound_is_told_each_zones_port(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    # Root hints and referrals carry no port (RFC 1034 §4.2.2): on 8053 every zone the lab
    # serves needs a stub-zone with addr@port.
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    topo = topology("production", 201)
    resolver = build(topo, topo.spec("resolver"))
    assert isinstance(resolver, Unbound)
    conf = resolver.config(LabContext(state=tmp_path))
    assert resolver.port == 8053
    assert 'username: ""' in conf
    assert "root-hints" not in conf
    stubs = re.findall(r'name: "([^"]+)"\n\s+stub-addr: (\S+)', conf)
    assert dict(stubs) == {".": "127.201.54.1@8053", "com.": "127.201.54.2@8053",
                           "net.": "127.201.54.2@8053", "org.": "127.201.54.2@8053",
                           "example.com.": "127.201.54.3@8053"}


def test_a_lab_without_dns_tiers_is_still_reached_by_address(tmp_path: Path) -> None:
    # lab.json as written before the lab had DNS: only --resolve can find the front.
    (tmp_path / "lab.json").write_text(json.dumps({"profile": "single", "tiers": [
        {"name": "nginx", "host": "server", "address": "127.0.96.1", "port": 443}]}))
    opts = options()
    apply(opts, tmp_path)
    assert lab_dns(tmp_path) is None
    assert opts.resolve[("www.example.com", 443)] == ["127.0.96.1"]
    assert opts.dns.resolver is None
    assert opts.dns.root_hints is None


# ------------------------------------------------------------------- the lab, for real
@pytest.fixture(scope="module")
def lab_up() -> Iterator[LabContext]:
    yield from bring_up("single", "whathappens-lab-dns-")


def _tier(ctx: LabContext, name: str) -> dict[str, Any]:
    manifest = json.loads((ctx.state / "lab.json").read_text())
    tier: dict[str, Any] = next(t for t in manifest["tiers"] if t["name"] == name)
    return tier


def _topo(ctx: LabContext) -> Any:
    return topology(ctx.profile, ctx.subnet)


def _port(ctx: LabContext) -> int:
    """Every lab name server's port, and the resolver's: 53 as root, 8053 otherwise."""
    return int(_tier(ctx, "dns")["port"])


def _query_log(ctx: LabContext) -> list[dict[str, Any]]:
    path = ctx.state / "logs" / "dns.queries.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_lab
def test_the_zones_point_into_the_lab(lab_up: LabContext) -> None:
    zones = lab_up.state / "tiers" / "dns" / "zones"
    assert sorted(p.name for p in zones.glob("*.zone")) == [
        "com.zone", "example.com.zone", "net.zone", "org.zone", "root.zone"]
    text = "".join(p.read_text() for p in zones.glob("*.zone"))
    # Nothing leads into the demo internet (lab subnet != 0, so 127.0.x.y is the demo's).
    assert "127.0." not in text
    assert "AAAA" not in text
    assert "glueless" not in text  # its server (ns.dns-host.net) is not in the lab


@needs_lab
def test_the_root_refers_to_com(lab_up: LabContext) -> None:
    topo = _topo(lab_up)
    reply = ask(topo.address("ns-root"), _port(lab_up), "www.example.com.", "A", recursion=False)
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA           # a referral is not an answer
    assert not reply.answer
    [ns] = reply.authority
    assert ns.name.to_text() == "com."
    assert ns.rdtype == dns.rdatatype.NS
    assert [r.target.to_text() for r in ns] == ["a.gtld-servers.net."]
    glue = {rr.name.to_text(): [r.address for r in rr] for rr in reply.additional}
    assert glue == {"a.gtld-servers.net.": [topo.address("ns-tld")]}


@needs_lab
def test_the_tld_refers_to_example_com(lab_up: LabContext) -> None:
    topo = _topo(lab_up)
    reply = ask(topo.address("ns-tld"), _port(lab_up), "www.example.com.", "A", recursion=False)
    assert not reply.flags & dns.flags.AA
    [ns] = reply.authority
    assert ns.name.to_text() == "example.com."
    assert [r.target.to_text() for r in ns] == ["ns1.example.com."]
    glue = {rr.name.to_text(): [r.address for r in rr] for rr in reply.additional}
    assert glue == {"ns1.example.com.": [topo.address("ns-example")]}


@needs_lab
def test_the_authoritative_server_answers_with_the_front(lab_up: LabContext) -> None:
    topo = _topo(lab_up)
    front = topo.address("server")
    ns1 = topo.address("ns-example")
    for name in ("www.example.com.", "example.com."):
        reply = ask(ns1, _port(lab_up), name, "A", recursion=False)
        assert reply.flags & dns.flags.AA
        assert addresses_in(reply) == [front]
    nodata = ask(ns1, _port(lab_up), "www.example.com.", "AAAA", recursion=False)
    assert nodata.rcode() == dns.rcode.NOERROR
    assert not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA            # RFC 2308 §2.2
    gone = ask(ns1, _port(lab_up), "slow.example.com.", "A", recursion=False, timeout=2)
    assert gone.rcode() == dns.rcode.NXDOMAIN  # the demo's trick names are not served


@needs_lab
def test_unbound_walked_root_tld_authoritative_to_get_ready(lab_up: LabContext) -> None:
    # Its readiness check asked for example.com; the servers' log shows the walk it made
    # (QNAME-minimised, RFC 9156: the root hears "com.", the TLD "example.com.").
    log = [(q["server"], q["qname"], q["kind"]) for q in _query_log(lab_up)
           if q["qtype"] != "SOA"]
    assert ("a.root-servers.net", "com.", "referral") in log
    assert ("a.gtld-servers.net", "example.com.", "referral") in log
    assert ("ns1.example.com", "example.com.", "answer") in log
    assert _tier(lab_up, "resolver")["runs_as"] == "unbound"


@needs_lab
def test_unbound_answers_recursively_then_from_its_cache(lab_up: LabContext) -> None:
    topo = _topo(lab_up)
    resolver, front = topo.address("resolver"), topo.address("server")
    name = "alias.example.com."   # alias → cdn → www: asked by nobody else in this module
    first = ask(resolver, _port(lab_up), name, "A", recursion=True, timeout=2)
    assert first.rcode() == dns.rcode.NOERROR
    assert first.flags & dns.flags.RA
    assert not first.flags & dns.flags.AA
    assert addresses_in(first) == [front]
    asked = sum(1 for q in _query_log(lab_up) if q["qname"] == name)
    assert asked >= 1
    time.sleep(1.1)  # TTLs count down in whole seconds
    again = ask(resolver, _port(lab_up), name, "A", recursion=True, timeout=2)
    assert addresses_in(again) == [front]
    ttl = {rr.name.to_text(): rr.ttl for rr in first.answer}
    assert all(rr.ttl < ttl[rr.name.to_text()] for rr in again.answer)
    assert sum(1 for q in _query_log(lab_up) if q["qname"] == name) == asked  # nobody asked
    # log-replies: "<client> <name> <type> <class> <rcode> <seconds> <cached> <size>"
    replies = _unbound_replies(lab_up, name)
    assert replies[0]["cached"] == "0"
    assert replies[-1]["cached"] == "1"


def _unbound_replies(ctx: LabContext, name: str) -> list[dict[str, str]]:
    pattern = re.compile(rf"info: \S+ {re.escape(name)} A IN (\w+) ([\d.]+) ([01]) (\d+)$")
    deadline = time.monotonic() + 2
    while True:
        text = (ctx.state / "logs" / "resolver.log").read_text()
        found = [m.groups() for m in map(pattern.search, text.splitlines()) if m]
        if len(found) >= 2 or time.monotonic() > deadline:
            return [dict(zip(("rcode", "seconds", "cached", "size"), f, strict=True))
                    for f in found]
        time.sleep(0.05)


@needs_lab
def test_a_lab_journey_resolves_through_the_labs_resolver(lab_up: LabContext) -> None:
    topo = _topo(lab_up)
    front = topo.address("server")
    port = _tier(lab_up, "nginx")["port"]
    opts = options()
    apply(opts, lab_up.state)
    assert opts.resolve == {}                                  # no --resolve shortcut
    assert opts.dns.resolver == (topo.address("resolver"), _port(lab_up))
    assert opts.dns.views == {"resolver", "walk"}
    url = f"https://www.example.com{'' if port == 443 else f':{port}'}/"
    j = asyncio.run(run_journey(url, opts))
    merge_inside(j, lab_up.state)
    assert j.error is None, j.error and j.error.to_dict()
    check_universal(j)
    [leg] = legs(j)

    step = child(leg, "dns")
    assert step.attrs["view_used"] == "resolver"
    assert step.attrs["addresses"] == [front]
    views = {c.name: c for c in step.children}
    assert set(views) == {"dns.resolver", "dns.walk"}           # no system view
    assert views["dns.resolver"].attrs["addresses"] == [front]
    walk_a = next(q for q in views["dns.walk"].children if q.attrs["qtype"] == "A")
    hops = [(h.attrs["server"], h.attrs["address"], h.attrs["kind"]) for h in walk_a.children]
    assert hops == [("a.root-servers.net.", topo.address("ns-root"), "referral"),
                    ("a.gtld-servers.net.", topo.address("ns-tld"), "referral"),
                    ("ns1.example.com.", topo.address("ns-example"), "answer")]

    assert child(leg, "tcp").attrs["remote"] == f"{front}:{port}"
    http = child(leg, "http")
    assert http.attrs["status"] == 200
    inside = [s.name for s in _server_spans(http)]
    assert "server.edge" in inside
    assert "server.django" in inside
    assert j.facts.lab.server_spans >= 2
    assert any("system resolver view is skipped" in f.message for f in j.findings)


def _server_spans(span: Span) -> list[Span]:
    return [s for s in span.walk() if s.name.startswith("server.")]
