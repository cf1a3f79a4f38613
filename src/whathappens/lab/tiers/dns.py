"""The lab's DNS: its own root, TLD and example.com servers, and a real recursive resolver.

    journey ──RD──▶ Unbound ──▶ root ──referral──▶ com. ──referral──▶ example.com ──▶ A = front
                   127.0.54.53   .54.1              .54.2               .54.3

``dns-authoritative`` runs the demo internet's authoritative servers (the demo's
:class:`~whathappens.demo.authority.Authority` and
:class:`~whathappens.demo.authoritative.AuthoritativeServer`) in one Python process, one
address per server, with zone files generated from the demo's: the same names, but every
address moved to the lab — the name servers to the lab's DNS hosts, www.example.com and the
apex to the lab's front door (the CDN edge, or the single server); a second POP with a name of
its own (production: ``pop2.example.com``, Caddy) gets its A record and an HTTPS record with
``alpn="h3,h2"`` (``add_pops``). Delegations to zones the
lab does not serve (glueless.com, dns-host.net) and records pointing at demo-only servers (the
broken-TLS hosts, the 120-address ``big``, the AAAA on ::1) are left out: in the lab they
would lead nowhere; so are the demo's trick names (slow, servfail, refused: see
``lab_zones``). No delay is injected: the lab measures, it does not pretend.

``unbound`` is Debian's Unbound, iterating from the lab's root hints. See ``Unbound.config``
for every setting that differs from Unbound's defaults, and why.

As root everything is on port 53. Otherwise both use 8053 (``privileged``), and since a
referral carries addresses only, never ports (RFC 1034 §4.2.2), Unbound is told each zone's
server and port with ``stub-zone`` entries instead of root hints; the journey's walk view
gets ``--dns-port`` for the same reason.

The authoritative servers log every answer as one JSON line in
``logs/<tier>.queries.jsonl``: time (Unix seconds), server, transport, qname, qtype, rcode,
aa, kind (answer, referral, nodata, nxdomain, refused, servfail, dropped), and the records;
and, for the resolver on the journey's timeline (``lab/client/resolver.py``), who asked
(``client``, address:port) and two wall-clock stamps in integer nanoseconds
(``time.time_ns()``, CLOCK_REALTIME, the clock every tier's log is aligned on):
``received_ns`` when the datagram was handed to the server (the event loop's read callback,
before parsing) and ``sent_ns`` when its answer was ready to send.
Unbound logs each client query and reply (``log-queries``, ``log-replies``) on stderr, which
``process.py`` puts in ``logs/<tier>.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from whathappens.demo.authoritative import AuthoritativeServer
from whathappens.demo.authority import Authority
from whathappens.demo.dns_transport import DnsServerTransport
from whathappens.demo.topology import NAME_SERVERS, SPECIAL_NAMES, WEB_ADDRESS
from whathappens.lab.process import LabError
from whathappens.lab.tier import LabContext, SpecTier, port_open, which
from whathappens.lab.tiers.postgres import ensure_reachable, user_exists

if TYPE_CHECKING:

    from whathappens.lab.topology import TierSpec, Topology

DEMO_ZONES = Path(__file__).resolve().parents[2] / "demo" / "zones"
FRONT_KIND = "nginx-edge"        # the lab's front door: the CDN edge, or the single server
ROOT_HINTS = "root.hints"
CONFIG = "servers.json"
PROBE_TIMEOUT = 0.5


# ----------------------------------------------------------------- the lab's zones
def lab_servers(topo: Topology, spec: TierSpec) -> list[dict[str, Any]]:
    """The demo's name servers that the lab runs, each on its lab host's address.

    ``spec.options["servers"]`` maps a demo role (root, tld, authoritative) to a lab host;
    the demo server of that role that serves example.com's chain is the one taken
    (ns.dns-host.net, the demo's second "authoritative", serves nothing on that chain).
    """
    hosts = spec.options.get("servers")
    if not isinstance(hosts, dict):
        raise ValueError(f"{spec.name}: option 'servers' must map roles to lab hosts")
    out: list[dict[str, Any]] = []
    for role, host in hosts.items():
        demo = next(s for s in NAME_SERVERS if s.role == role)
        out.append({"name": demo.name, "role": role, "host": host,
                    "address": topo.address(str(host)), "demo_address": demo.address,
                    "zones": list(demo.zones)})
    return out


def origin_of(zone_file: str) -> str:
    """The demo's zone file names are their origins: root.zone → ".", com.zone → "com."."""
    return "." if zone_file == "root.zone" else zone_file.removesuffix("zone")


def front_address(topo: Topology) -> str:
    """Where www.example.com points in the lab: the front tier's host (found by kind, so the
    DNS tiers need not wait for the front to start: only its address goes into the zone)."""
    return topo.address(topo.of_kind(FRONT_KIND)[0].host)


def lab_zones(servers: list[dict[str, Any]], front: str) -> dict[str, dns.zone.Zone]:
    """The demo's zone files for these servers, their addresses moved into the lab."""
    moved = {s["demo_address"]: s["address"] for s in servers}
    moved[WEB_ADDRESS] = front
    tricks = {dns.name.from_text(n) for n in SPECIAL_NAMES}
    zones = {f: dns.zone.from_file(str(DEMO_ZONES / f), relativize=False)
             for s in servers for f in s["zones"]}
    served = {z.origin for z in zones.values()}
    for zone in zones.values():
        origin = zone.origin
        assert origin is not None
        for name, node in list(zone.nodes.items()):
            if name in tricks:
                # The demo's servers never answer slow.example.com (and fail servfail and
                # refused on purpose). Behind a real Unbound, timeouts back a server off in
                # its infrastructure cache (RTT banded up, then probing only), and
                # www.example.com would suffer with it: the lab serves none of them.
                zone.delete_node(name)
                continue
            for rdataset in list(node.rdatasets):
                rdtype = rdataset.rdtype
                if rdtype == dns.rdatatype.NS and name != origin and name not in served:
                    # A delegation to a zone the lab does not serve would be lame.
                    zone.delete_rdataset(name, rdtype)
                elif rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    kept = [moved[r.address] for r in rdataset if r.address in moved]
                    zone.delete_rdataset(name, rdtype)
                    if kept:
                        # Lab addresses are IPv4 (127.x.y.z): only A records survive.
                        zone.replace_rdataset(name, _a_rdataset(rdataset.ttl, kept))
        _lab_https_records(zone)
    return zones


def _lab_https_records(zone: dns.zone.Zone) -> None:
    """The demo's HTTPS records (RFC 9460) describe the demo's servers: www's says h3,h2 for
    hypercorn. In the lab the front is nginx 1.22, which has no QUIC, so the record keeps
    only h2 — a browser reading h3 there would try QUIC first and meet a closed UDP port on
    every visit. A name left without an address in the lab (a demo-only host) loses its
    record. The POPs get theirs from :func:`add_pops`."""
    for name, node in list(zone.nodes.items()):
        https = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.HTTPS)
        if https is None:
            continue
        if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.A) is None:
            zone.delete_rdataset(name, dns.rdatatype.HTTPS)
        else:
            zone.replace_rdataset(name, dns.rdataset.from_text("IN", "HTTPS", https.ttl,
                                                               '1 . alpn="h2"'))


POP_KIND = "caddy-edge"          # a second front door with a name of its own (tiers/caddy.py)
POP_TTL = 300


def lab_pops(topo: Topology) -> list[tuple[str, str, int | None]]:
    """(DNS label, address, https port) of each extra POP that has a name of its own."""
    return [(str(s.options["dns_name"]), topo.address(s.host), s.port)
            for s in topo.of_kind(POP_KIND) if s.options.get("dns_name")]


def add_pops(zones: dict[str, dns.zone.Zone],
             pops: list[tuple[str, str, int | None]]) -> None:
    """Each POP's A record and an HTTPS record (RFC 9460) for its name in example.com:
    ``1 . alpn="h3,h2"`` — ServiceMode, the name itself (TargetName "." §2.5.2), HTTP/3 or
    HTTP/2; a ``port`` parameter (§7.2) when it does not listen on 443 (a lab run without
    root). A client that reads it may go straight to QUIC, without an Alt-Svc first."""
    zone = next((z for z in zones.values() if z.origin == dns.name.from_text("example.com.")),
                None)
    if zone is None:
        return
    for label, address, port in pops:
        name = dns.name.from_text(label, zone.origin)
        zone.replace_rdataset(name, _a_rdataset(POP_TTL, [address]))
        params = 'alpn="h3,h2"' + ("" if port in (None, 443) else f" port={port}")
        zone.replace_rdataset(name, dns.rdataset.from_text("IN", "HTTPS", POP_TTL,
                                                           f"1 . {params}"))


def _a_rdataset(ttl: int, addresses: list[str]) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text("IN", "A", ttl, *dict.fromkeys(addresses))


def root_hints_text(topo: Topology, spec: TierSpec) -> str:
    """A root hints file in the format of IANA's named.root, for the lab's one root."""
    root = next(s for s in lab_servers(topo, spec) if s["role"] == "root")
    return ("; Root hints of the whathappens lab (format of IANA's named.root).\n"
            f".                        3600000      NS    {root['name']}.\n"
            f"{root['name'] + '.':<24} 3600000      A     {root['address']}\n")


def authoritative_spec(topo: Topology) -> TierSpec:
    return topo.of_kind("dns-authoritative")[0]


# ------------------------------------------------------------------- DNS probes
def ask(address: str, port: int, name: str, qtype: str, *, recursion: bool,
        timeout: float = PROBE_TIMEOUT) -> dns.message.Message:
    """One query over UDP (dnspython), RD set or not."""

    query = dns.message.make_query(name, qtype)
    if not recursion:
        query.flags &= ~dns.flags.RD
    return dns.query.udp(query, address, port=port, timeout=timeout)


def addresses_in(reply: dns.message.Message) -> list[str]:

    return [r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
            for r in rrset]


# ------------------------------------------------------------------ the tiers
class DnsAuthoritative(SpecTier):
    """Root, TLD and example.com servers: one process, one loopback address each."""

    kind = "dns-authoritative"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.dns_port = self.listen_port("DNS servers")
        self.servers = lab_servers(topo, spec)
        self.front = front_address(topo)
        self.pops = lab_pops(topo)

    def prepare(self, ctx: LabContext) -> None:
        tier_dir = ctx.dir(self.name)
        zone_dir = tier_dir / "zones"
        zone_dir.mkdir(exist_ok=True)
        zones = lab_zones(self.servers, self.front)
        add_pops(zones, self.pops)
        for file, zone in zones.items():
            header = (f"; Generated by whathappens lab (tier {self.name}) from the demo's "
                      f"{file}: addresses moved into the lab.\n$ORIGIN {zone.origin}\n")
            (zone_dir / file).write_text(header + zone.to_text(relativize=False))
        (tier_dir / ROOT_HINTS).write_text(root_hints_text(self.topo, self.spec))
        config = {
            "port": self.dns_port,
            "zones": str(zone_dir),
            "servers": [{k: s[k] for k in ("name", "role", "address", "zones")}
                        for s in self.servers],
            "query_log": str(ctx.log(self.name).with_suffix(".queries.jsonl")),
        }
        (tier_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    def command(self, ctx: LabContext) -> list[str]:
        return [sys.executable, "-m", "whathappens.lab.tiers.dns",
                str(ctx.dir(self.name) / CONFIG)]

    def ready(self, ctx: LabContext) -> bool:
        """Every server gives an authoritative answer (AA) for its first zone's SOA."""
        for server in self.servers:
            if not port_open(server["address"], self.dns_port):
                return False  # see Unbound.ready
            reply = ask(server["address"], self.dns_port, origin_of(server["zones"][0]), "SOA",
                        recursion=False)
            if reply.rcode() != dns.rcode.NOERROR or not reply.flags & dns.flags.AA:
                return False
        return True

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": self.kind, "front": self.front,
                "root_hints": f"tiers/{self.name}/{ROOT_HINTS}",
                "servers": [{k: s[k] for k in ("name", "role", "address")}
                            for s in self.servers]}


def unbound() -> str:
    return which("unbound", "/usr/sbin/unbound")


class Unbound(SpecTier):
    """A real recursive resolver: Debian's Unbound, iterating from the lab's root.

    Started as root so it can bind port 53, it then drops to the ``unbound`` user (its own
    ``username:`` default in Debian's build): so the tier directory must be reachable by
    that user, as Unbound reads the root hints only after dropping privileges (tried: a
    0700 parent gives "could not read root hints: Permission denied").
    """

    kind = "unbound"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.dns_port = self.listen_port("Unbound")
        self.authoritative = authoritative_spec(topo)
        self.servers = lab_servers(topo, self.authoritative)
        self.front = front_address(topo)
        self.drop_to = "unbound" if os.geteuid() == 0 and user_exists("unbound") else None

    def conf(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "unbound.conf"

    def config(self, ctx: LabContext) -> str:
        """unbound.conf(5) — https://unbound.docs.nlnetlabs.nl/en/latest/manpages/unbound.conf.html"""
        tier_dir = ctx.dir(self.name)
        upstream = self.authoritative.port or 53
        lines = [
            f"# Written by whathappens lab for tier {self.name}; rewritten on every start.",
            "server:",
            # Where: its own lab address only; no wildcard, no automatic interfaces.
            f"    interface: {self.address}",
            f"    port: {self.dns_port}",
            "    interface-automatic: no",
            # Queries to the lab's servers leave from the resolver's own address, so the
            # authoritative servers see "the resolver" as their client, as in the picture.
            f"    outgoing-interface: {self.address}",
            # The lab is IPv4 on 127/8: no IPv6 transport, no AAAA of name servers to fetch.
            "    do-ip6: no",
            # Default "yes" refuses to send queries to 127.0.0.0/8 and ::1 at all — and
            # every server of the lab lives there.
            "    do-not-query-localhost: no",
            # Unbound's default already allows 127.0.0.0/8 (and ::1) and refuses the rest;
            # said here because every lab client depends on it.
            "    access-control: 127.0.0.0/8 allow",
            # The client behind the WAN link (lab up --rtt) asks from 100.127.<N>.2.
            *(["    access-control: 100.127.0.0/16 allow"] if self.topo.of_kind("wan")
              else []),
            # Iterator only, no validator: the lab's zones are unsigned. With the real
            # root's trust anchor (Debian's default config loads one) every lab answer would
            # be bogus, i.e. SERVFAIL (RFC 4035 §5); without one the validator only costs.
            '    module-config: "iterator"',
            # Nothing outside the tier directory: no chroot, no pid file in /run, no syslog
            # (there is no syslog daemon here): the log goes to stderr → logs/<tier>.log.
            '    chroot: ""',
            f'    directory: "{tier_dir}"',
            f'    pidfile: "{tier_dir / "unbound.pid"}"',
            "    use-syslog: no",
            '    logfile: ""',
            # One line per client query and per reply (with its time and whether it came
            # from the cache), plus the reason of every SERVFAIL: what the timeline reads.
            "    verbosity: 1",
            "    log-queries: yes",
            "    log-replies: yes",
            "    log-servfail: yes",
            # Small and single-threaded: a lab resolver starts in milliseconds. Caching stays
            # on (the message and RRset caches, TTLs as the zones give them). QNAME
            # minimisation stays on too (Unbound's default, RFC 9156): the root is asked
            # "com. A", the TLD "example.com. A", only ns1 hears the full name.
            "    num-threads: 1",
            "    msg-cache-size: 4m",
            "    rrset-cache-size: 8m",
            "    so-reuseport: no",
            # No local-zone needed: Unbound's built-in local zones (localhost, test., invalid.,
            # onion., home.arpa., the AS112 reverse zones: RFC 6761, RFC 7534) answer
            # without asking anyone, but example.com is not among them (RFC 2606 reserves
            # it for documentation, not for local answers). A lab name under .test would
            # need 'local-zone: "test." nodefault'.
        ]
        # As root: bind port 53, then drop to the unbound user (Debian's default). Not as
        # root: nothing to drop ("" = stay who we are).
        lines.append(f'    username: "{self.drop_to or ""}"')
        if upstream == 53:
            lines.append(f'    root-hints: "{tier_dir / ROOT_HINTS}"')
        else:
            # Unprivileged: the servers listen on a high port, which neither root hints nor
            # referrals can carry (RFC 1034 §4.2.2). stub-zone addresses can (addr@port), so
            # every zone the lab serves gets one; Unbound still iterates from zone to zone.
            for server in self.servers:
                for file in server["zones"]:
                    lines += ["stub-zone:", f'    name: "{origin_of(file)}"',
                              f"    stub-addr: {server['address']}@{upstream}"]
        # unbound-control over a Unix socket in the tier directory (no TLS keys to make: a
        # local socket needs none, unbound.conf(5) control-interface), so a journey that
        # asks for a cold lookup can flush the name first (whathappens URL --lab --lab-cold).
        lines += ["remote-control:", "    control-enable: yes",
                  f'    control-interface: "{self.control_socket(ctx)}"']
        return "\n".join(lines) + "\n"

    def control_socket(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "control.sock"

    def prepare(self, ctx: LabContext) -> None:
        tier_dir = ctx.dir(self.name)
        ensure_reachable(ctx, tier_dir, self.drop_to)
        (tier_dir / ROOT_HINTS).write_text(root_hints_text(self.topo, self.authoritative))
        conf = self.conf(ctx)
        conf.write_text(self.config(ctx))
        checkconf = which("unbound-checkconf", "/usr/sbin/unbound-checkconf")
        done = subprocess.run([checkconf, str(conf)], capture_output=True, text=True,
                              timeout=10, check=False)
        if done.returncode != 0:
            raise LabError(f"{self.name}: unbound-checkconf refused {conf}:\n"
                           f"{done.stdout}{done.stderr}")

    def command(self, ctx: LabContext) -> list[str]:
        return [unbound(), "-d", "-c", str(self.conf(ctx))]

    def ready(self, ctx: LabContext) -> bool:
        """A recursive query answered with the front's address: root → com. → example.com
        walked for real. It asks for the apex, not www, so the journey's own first question
        for www is not already cached (the delegations are: as on any warm resolver)."""
        # TCP first: a UDP query to a port nobody listens on yet is not refused (the ICMP
        # error never reaches dnspython's unconnected socket), it just waits the timeout.
        if not port_open(self.address, self.dns_port):
            return False
        reply = ask(self.address, self.dns_port, "example.com.", "A", recursion=True,
                    timeout=1.0)
        return self.front in addresses_in(reply)

    def describe(self) -> dict[str, object]:
        facts = super().describe()
        facts["kind"] = self.kind
        with contextlib.suppress(FileNotFoundError):
            facts["version"] = version_of_unbound()
        facts["runs_as"] = self.drop_to or ("root" if os.geteuid() == 0 else "the lab's user")
        return facts


def version_of_unbound() -> str:
    """``unbound -V`` prints "Version 1.17.1" (``--version`` is not an Unbound option)."""
    out = subprocess.run([unbound(), "-V"], capture_output=True, text=True, timeout=5,
                         check=False).stdout
    first = out.split("\n", 1)[0]
    return first.removeprefix("Version ").strip()


# ------------------------------------------- the process: python -m ...tiers.dns
# Who asked, and when the query reached the server: set where the transport reads it, read
# where the answer is logged. asyncio copies the context into each query's task (UDP) or
# connection handler (TCP), so concurrent queries never see each other's values.
PEER: ContextVar[tuple[str, int] | None] = ContextVar("peer", default=None)
RECEIVED_NS: ContextVar[int | None] = ContextVar("received_ns", default=None)


class PeerTransport(DnsServerTransport):
    """The demo's transport, remembering each query's peer and arrival time for the log."""

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        PEER.set(addr)
        RECEIVED_NS.set(time.time_ns())
        super()._datagram(data, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        PEER.set((str(peer[0]), int(peer[1])) if peer else None)
        RECEIVED_NS.set(None)   # per query: stamped when its answer is asked for
        await super()._serve_tcp(reader, writer)


class LoggedServer(AuthoritativeServer):
    """The demo's server, also writing one JSON line per answer (or deliberate drop)."""

    def __init__(self, authority: Authority, name: str, log: TextIO) -> None:
        super().__init__(authority)
        self.transport = PeerTransport(self._respond, self.transport.limits)
        self.server_name = name
        self.log = log

    def answer(self, wire: bytes, *, max_size: int | None) -> bytes | None:
        received = RECEIVED_NS.get() if max_size else None
        received = received if received is not None else time.time_ns()
        reply = super().answer(wire, max_size=max_size)
        line = query_line(self.server_name, "udp" if max_size else "tcp", wire, reply)
        if line is not None:
            peer = PEER.get()
            line.update(received_ns=received, sent_ns=time.time_ns(),
                        client=f"{peer[0]}:{peer[1]}" if peer else None)
            self.log.write(json.dumps(line) + "\n")
            self.log.flush()
        return reply


def query_line(server: str, transport: str, wire: bytes,
               reply: bytes | None) -> dict[str, Any] | None:
    try:
        question = dns.message.from_wire(wire).question[0]
    except Exception:  # garbage, dropped by the server: nothing to log
        return None
    line: dict[str, Any] = {"time": time.time(), "server": server, "transport": transport,
                            "qname": question.name.to_text(),
                            "qtype": dns.rdatatype.to_text(question.rdtype)}
    if reply is None:
        line["kind"] = "dropped"
        return line
    msg = dns.message.from_wire(reply)
    rcode = dns.rcode.to_text(msg.rcode())
    aa = bool(msg.flags & dns.flags.AA)
    if msg.answer:
        kind = "answer"
    elif rcode != "NOERROR":
        kind = rcode.lower()
    elif not aa and msg.authority:
        kind = "referral"   # RFC 1034 §4.3.2 step 3.b: NS of the child zone, AA clear
    else:
        kind = "nodata"
    line.update(rcode=rcode, aa=aa, kind=kind,
                records=[t for r in msg.answer or msg.authority
                         for t in r.to_text().splitlines()])
    return line


async def serve(config_path: Path) -> None:
    config = json.loads(config_path.read_text())
    zone_dir = Path(config["zones"])
    port = int(config["port"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers: list[LoggedServer] = []
    with open(config["query_log"], "a", encoding="utf-8") as log:
        try:
            for spec in config["servers"]:
                zones = [dns.zone.from_file(str(zone_dir / f), origin=origin_of(f),
                                            relativize=False) for f in spec["zones"]]
                server = LoggedServer(Authority(zones), spec["name"], log)
                await server.start(spec["address"], port)
                servers.append(server)
                print(f"{spec['name']} ({spec['role']}) serves "
                      f"{', '.join(origin_of(f) for f in spec['zones'])} "
                      f"on {spec['address']}:{port}", file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            for server in servers:
                await server.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whathappens.lab.tiers.dns",
                                     description="The lab's authoritative DNS servers.")
    parser.add_argument("config", type=Path, help=f"the tier's {CONFIG}")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.config))
    except OSError as exc:
        print(f"lab dns: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
