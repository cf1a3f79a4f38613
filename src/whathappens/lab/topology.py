"""The lab's topology, as data: hosts, their loopback addresses, and the tiers on each.

The production profile draws the seeds' picture: DNS (root, TLD and example.com servers, an
Unbound resolver) → CDN edge (and a second POP, Caddy with HTTP/3) → load balancer → two
app nodes (nginx → gunicorn → Django) → Redis, PgBouncer → PostgreSQL primary + streaming
replica, a Celery worker on a Redis broker.
The single profile is the seeds' one-server setup: nginx (TLS) → gunicorn → Django →
PostgreSQL and Redis on one host. Both have the same DNS: it is the world around the site,
not part of it.

Every host has its own 127.0.x.y address, so the report reads like the picture. Ports are the
standard ones when running as root; otherwise the privileged ones move up (443 → 8443,
80 → 8080, 53 → 8053) and the rest stay as they are, since each host has an address of its
own. ``lab up --rtt`` adds a client host behind a WAN link and the link's relay tier
(``add_wan``; the relay is ``tiers/wan.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

PROFILES = ("production", "single")
# The site's name: what the lab's DNS answers for, the edge's certificate names (the demo
# PKI's first name, ``demo.ca.SERVER_NAMES[0]``) and every client of the lab asks for.
SITE = "www.example.com"
FRONT_KIND = "nginx-edge"       # the front door: the CDN edge, or the single server's nginx
POP_KIND = "caddy-edge"         # a second front door, with HTTP/3 (tiers/caddy.py)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    role: str


@dataclass(frozen=True)
class TierSpec:
    kind: str            # which implementation: "nginx-edge", "haproxy", "gunicorn", ...
    name: str            # unique tier name
    host: str            # Host.name
    port: int | None
    options: dict[str, object] = field(default_factory=dict)


@dataclass
class Topology:
    profile: str
    hosts: dict[str, Host]
    tiers: list[TierSpec]

    def address(self, host: str) -> str:
        return self.hosts[host].address

    def endpoint(self, tier: str) -> tuple[str, int]:
        """(address, port) where tier ``tier`` listens."""
        spec = self.spec(tier)
        if spec.port is None:
            raise KeyError(f"tier {tier} listens on no port")
        return self.address(spec.host), spec.port

    def spec(self, tier: str) -> TierSpec:
        for spec in self.tiers:
            if spec.name == tier:
                return spec
        raise KeyError(tier)

    def of_kind(self, kind: str) -> list[TierSpec]:
        return [s for s in self.tiers if s.kind == kind]

    def front(self) -> TierSpec:
        """The tier a client reaches first (KeyError when the topology has none)."""
        fronts = self.of_kind(FRONT_KIND)
        if not fronts:
            raise KeyError(FRONT_KIND)
        return fronts[0]


def privileged(port: int) -> int:
    """The port itself as root; otherwise 8000 + the last three digits (443 → 8443)."""
    if port >= 1024 or os.geteuid() == 0:
        return port
    return 8000 + port % 1000


def dns_hosts() -> list[Host]:
    """The lab's DNS hosts: 127.0.54.x, beside (never on) the demo internet's 127.0.53.x, so
    a lab on subnet 0 and ``whathappens demo`` can run at the same time."""
    return [
        Host("ns-root", "127.0.54.1", "root name server (a.root-servers.net)"),
        Host("ns-tld", "127.0.54.2", "TLD name server: com., net., org. (a.gtld-servers.net)"),
        Host("ns-example", "127.0.54.3", "authoritative for example.com (ns1.example.com)"),
        Host("resolver", "127.0.54.53", "recursive resolver (Unbound)"),
    ]


def dns_tiers() -> list[TierSpec]:
    """One process serves the root, the TLDs and example.com, each on its own host's address
    (``servers``: demo role → lab host); Unbound on its own address iterates through them.
    All on port 53, which a referral cannot change (RFC 1034 §4.2.2)."""
    port = privileged(53)
    return [
        TierSpec("dns-authoritative", "dns", "ns-root", port,
                 {"servers": {"root": "ns-root", "tld": "ns-tld",
                              "authoritative": "ns-example"}}),
        TierSpec("unbound", "resolver", "resolver", port, {"authoritative": "dns"}),
    ]


def production() -> Topology:
    hosts = [
        Host("edge", "127.0.90.1", "CDN edge (nginx cache, TLS)"),
        Host("edge-2", "127.0.90.2", "CDN POP 2 (Caddy: HTTP/3, HTTP/2; no cache)"),
        Host("lb", "127.0.91.1", "load balancer (HAProxy)"),
        Host("app-1", "127.0.92.1", "app node: nginx → gunicorn → Django"),
        Host("app-2", "127.0.92.2", "app node: nginx → gunicorn → Django"),
        Host("db-1", "127.0.93.1", "PostgreSQL primary"),
        Host("db-2", "127.0.93.2", "PostgreSQL streaming replica"),
        Host("pool", "127.0.93.10", "connection pool (PgBouncer)"),
        Host("cache", "127.0.94.1", "Redis: cache, sessions, Celery broker"),
        Host("worker", "127.0.95.1", "Celery worker"),
        *dns_hosts(),
    ]
    https, http = privileged(443), privileged(80)
    tiers = [
        *dns_tiers(),
        TierSpec("postgres-primary", "db-primary", "db-1", 5432),
        TierSpec("postgres-replica", "db-replica", "db-2", 5432,
                 {"primary": "db-primary"}),
        TierSpec("pgbouncer", "pgbouncer", "pool", 6432,
                 {"primary": "db-primary", "replica": "db-replica"}),
        TierSpec("redis", "redis", "cache", 6379),
    ]
    for n in (1, 2):
        tiers += [
            TierSpec("gunicorn", f"app-{n}-gunicorn", f"app-{n}", 8000,
                     {"node": f"app-{n}"}),
            TierSpec("nginx-app", f"app-{n}-nginx", f"app-{n}", http,
                     {"upstream": f"app-{n}-gunicorn", "node": f"app-{n}"}),
        ]
    tiers += [
        TierSpec("celery", "worker", "worker", None),
        TierSpec("haproxy", "lb", "lb", http,
                 {"backends": ["app-1-nginx", "app-2-nginx"]}),
        TierSpec("nginx-edge", "edge", "edge", https,
                 {"upstream": "lb", "http_port": http}),
        # The second POP: its own name in the lab's DNS (pop2.example.com, an HTTPS record
        # with alpn h3,h2: tiers/dns.py). Debian's Caddy 2.6 cannot bind its upstream
        # connections to its host's address: they come from the loopback route's source.
        TierSpec(POP_KIND, "pop-2", "edge-2", https,
                 {"upstream": "lb", "dns_name": "pop2", "connects_from": "127.0.0.1"}),
    ]
    return Topology("production", {h.name: h for h in hosts}, tiers)


def single() -> Topology:
    hosts = [Host("server", "127.0.96.1",
                  "one server: nginx (TLS) → gunicorn → Django → PostgreSQL, Redis"),
             *dns_hosts()]
    https, http = privileged(443), privileged(80)
    tiers = [
        *dns_tiers(),
        TierSpec("postgres-primary", "db-primary", "server", 5432),
        TierSpec("redis", "redis", "server", 6379),
        TierSpec("gunicorn", "gunicorn", "server", 8000, {"node": "server"}),
        TierSpec("nginx-edge", "nginx", "server", https,
                 {"upstream": "gunicorn", "http_port": http, "single": True}),
    ]
    return Topology("single", {h.name: h for h in hosts}, tiers)


# ------------------------------------------------------------ the WAN link (lab up --rtt)
@dataclass(frozen=True)
class WanNames:
    """The WAN link's names and addresses for a lab on subnet ``subnet``."""

    subnet: int

    @property
    def namespace(self) -> str:
        return "wh-client" if self.subnet == 0 else f"wh-client-{self.subnet}"

    @property
    def lab_tun(self) -> str:
        return f"whl{self.subnet}"

    @property
    def client_tun(self) -> str:
        return f"whc{self.subnet}"

    @property
    def lab_address(self) -> str:
        return f"100.127.{self.subnet}.1"

    @property
    def client_address(self) -> str:
        return f"100.127.{self.subnet}.2"

    @property
    def lab_prefix(self) -> str:
        return f"127.{self.subnet}.0.0/16"


CLIENT_HOST = "client"
WAN_TIER = "wan"


def add_wan(topo: Topology, subnet: int, wan: dict[str, object]) -> Topology:
    """The topology with a client host behind the WAN link and its relay tier, last."""
    names = WanNames(subnet)
    rtt = wan.get("rtt", "40ms")
    topo.hosts[CLIENT_HOST] = Host(CLIENT_HOST, names.client_address,
                                   f"the client, behind a WAN link (rtt {rtt}): "
                                   f"ip netns exec {names.namespace} …")
    topo.tiers.append(TierSpec(WAN_TIER, WAN_TIER, CLIENT_HOST, None, {**wan, "subnet": subnet}))
    return topo


# ------------------------------------------------------------ metrics (lab up --metrics)
METRICS_HOST = "metrics"
METRICS_ADDRESS = "127.0.97.1"
# (kind, tier name, port): Prometheus's and each exporter's usual port (tiers/metrics.py)
METRICS_TIERS = (("prometheus", "prometheus", 9090), ("node-exporter", "node-exporter", 9100),
                 ("nginx-exporter", "nginx-exporter", 9113), ("mtail", "mtail", 3903),
                 ("redis-exporter", "redis-exporter", 9121),
                 ("postgres-exporter", "postgres-exporter", 9187))


def add_metrics(topo: Topology, subnet: int = 0) -> Topology:
    """The topology with a metrics host: Prometheus and the exporters of the tiers it has
    (no edge, no nginx exporter; ...). Idempotent."""
    if METRICS_HOST in topo.hosts:
        return topo
    address = METRICS_ADDRESS if not subnet else f"127.{subnet}.97.1"
    topo.hosts[METRICS_HOST] = Host(METRICS_HOST, address,
                                    "metrics: Prometheus and its exporters")
    kinds = {s.kind for s in topo.tiers}
    postgres = [s.name for s in topo.tiers if s.kind.startswith("postgres-")]
    redis = [s.name for s in topo.of_kind("redis")]
    for kind, name, port in METRICS_TIERS:
        options: dict[str, object] = {}
        if kind in ("nginx-exporter", "mtail") and FRONT_KIND not in kinds:
            continue
        if kind == "redis-exporter":
            if not redis:
                continue
            options = {"target": redis[0]}
        if kind == "postgres-exporter":
            if not postgres:
                continue
            options = {"targets": postgres}
        topo.tiers.append(TierSpec(kind, name, METRICS_HOST, port, options))
    return topo


def topology(profile: str, subnet: int = 0) -> Topology:
    """The profile's topology; ``subnet`` moves every host from 127.0.x.y to 127.<subnet>.x.y
    (so a second lab, e.g. the tests', can run beside one already up)."""
    if profile == "production":
        topo = production()
    elif profile == "single":
        topo = single()
    else:
        raise ValueError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
    if subnet:
        if not 0 < subnet < 255:
            raise ValueError("subnet must be between 1 and 254")
        topo.hosts = {n: replace(h, address=f"127.{subnet}." + h.address.split(".", 2)[2])
                      for n, h in topo.hosts.items()}
    return topo
