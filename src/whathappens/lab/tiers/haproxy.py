"""HAProxy in the lab: the load balancer between the CDN edge and the app nodes' nginx.

It balances with the algorithm the lab was brought up with (``ctx.algorithm``), takes a node
out when its ``/healthz`` fails twice (checks every 500 ms), sets ``X-Request-ID`` and
``X-Forwarded-For``, names the server it chose in ``X-Backend-Server``, and logs one JSON
line per request with its timers. Servers are named after their lab hosts (``app-1``,
``app-2``), so a drill disables ``app/app-2`` through the admin socket.

HAProxy logs to stdout (``log stdout format raw``), which ``process.py`` writes to
``logs/<tier>.log``: the JSON request lines land there, between HAProxy's own plain-text
messages (start-up warnings, "Server app/app-2 is DOWN" ...). Readers take the lines that
start with ``{``. Fields, each named as in the HAProxy configuration manual (§8.2.6, §8.4):

    accept_time     Unix seconds with milliseconds (%Ts.%ms), a number: when the
                    connection was accepted or, on a kept-alive one, when the previous
                    request ended. This request starts (Th+Ti) ms later and ends Ta ms
                    after that; not named "time" because nginx's "time" is the end.
    tier, node      the tier's name and its lab host
    traceparent     the W3C traceparent request header as received ("" when none)
    request_id      the unique id, also sent on as X-Request-ID (%ID)
    client          the client's address and port (%ci, %cp): the edge, in production
    frontend, backend, server, server_addr   (%f, %b, %s, %si:%sp)
    method, uri     (%HM, the request URI)
    status, bytes   (%ST, %B) numbers
    Th Ti TR Tq Tw Tc Tr Ta Tt   the timers in milliseconds, -1 when the phase never
                    happened: handshake, idle, request received (Tq = Th+Ti+TR), queue
                    wait, server connect, server response headers, active (request to
                    last byte), total session
    termination     %tsc, the termination state ("----" is a normal end)
    retries         %rc, connection retries: a string, "+1" when redispatched
    conns           active, frontend, backend, server connections (%ac %fc %bc %sc)
    queues          server queue, backend queue (%sq %bq)

Strings that come from the client (traceparent, uri) go through HAProxy's ``json``
converter: raw log-format variables are not escaped for JSON.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.contract.facts import HopConnectionFacts
from whathappens.lab.logs import ServerSpan, json_lines, seconds
from whathappens.lab.mtls import tier_cert
from whathappens.lab.process import LabError
from whathappens.lab.tier import LabContext, SpecTier, port_open, which
from whathappens.lab.topology import SITE

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

# The ones the experiments compare, plus HAProxy's other argument-less algorithms.
ALGORITHMS = ("roundrobin", "leastconn", "source", "static-rr", "first", "random")
CHECK = "inter 500ms fall 2 rise 2"   # down after ~1 s of failures, back after ~1 s of passes

LOG_FORMAT = (
    '{"accept_time":%Ts.%ms,"tier":"$tier","node":"$node",'
    '"traceparent":%{+Q}[capture.req.hdr(0),json(utf8s)],"request_id":"%ID",'
    '"client":"%ci","client_port":%cp,'
    '"frontend":"%f","backend":"%b","server":"%s","server_addr":"%si:%sp",'
    '"method":"%HM","uri":%{+Q}[capture.req.uri,json(utf8s)],'
    '"status":%ST,"bytes":%B,'
    '"Th":%Th,"Ti":%Ti,"TR":%TR,"Tq":%Tq,"Tw":%Tw,"Tc":%Tc,"Tr":%Tr,"Ta":%Ta,"Tt":%Tt,'
    '"termination":"%tsc","retries":"%rc",'
    '"conns":{"active":%ac,"frontend":%fc,"backend":%bc,"server":%sc},'
    '"queues":{"server":%sq,"backend":%bq}}'
)
# With mTLS (lab up --mtls): the TLS of the hop in (the edge's handshake: %sslv %sslc,
# resumed or not, the certificate's subject and OpenSSL's verify result, 0 = ok) and of the
# hop out to the app node (ssl_bc_protocol, on the server connection).
MTLS_LOG_FIELDS = (
    ',"tls":"%sslv","tls_cipher":"%sslc","tls_resumed":%[ssl_fc_is_resumed],'
    '"client_dn":%{+Q}[ssl_c_s_dn,json(utf8s)],"client_verify":%[ssl_c_verify],'
    '"server_tls":"%[ssl_bc_protocol]"'
)
MTLS_SPAN_FIELDS = ("tls", "tls_cipher", "tls_resumed", "client_dn", "client_verify",
                    "server_tls")
# What a span keeps of a log line, and how to read its timers.
SPAN_FIELDS = ("server", "backend", "status", "Tq", "Tw", "Tc", "Tr", "Ta", "termination",
               "retries", "queues", "request_id")
TIMERS = ("Tw: waited in queue, Tc: connect to the server, Tr: server response headers, "
          "Ta: whole request (ms)")


KEEP_ALIVE_S = 10.0      # "timeout http-keep-alive" below


def requests_on_connection(log: Path, item: dict[str, object]) -> int | None:
    """This request's number on its client connection: the lines before it from the same
    address and port, each starting (accept_time) within the keep-alive timeout of the one
    before (a port reused later is another connection)."""
    key = (item.get("client"), item.get("client_port"))
    if None in key:
        return None
    n, last = 0, None
    for line in json_lines(log, str(key[1])):
        if (line.get("client"), line.get("client_port")) != key:
            continue
        accept = seconds(line.get("accept_time"))
        if accept is None:
            continue
        n = n + 1 if last is not None and accept - last <= KEEP_ALIVE_S else 1
        last = accept + max(int(str(line.get("Tt") or 0)), 0) / 1000
        if line.get("request_id") == item.get("request_id"):
            return n
    return None


def haproxy_binary() -> str:
    return which("haproxy", "/usr/sbin/haproxy")


class HAProxy(SpecTier):
    """The load balancer. Options: ``backends``, the app nodes' nginx tiers."""

    kind = "haproxy"
    span_kind = "lb"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        backends = spec.options["backends"]
        if not isinstance(backends, list | tuple):
            raise TypeError(f"{spec.name}: option backends must be a list of tier names")
        self.backends = [str(b) for b in backends]
        self.depends = tuple(self.backends)

    def conf_path(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "haproxy.cfg"

    def socket_path(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "admin.sock"

    def prepare(self, ctx: LabContext) -> None:
        conf = self.conf_path(ctx)
        conf.write_text(self.config(ctx))
        # HAProxy's own check (-c), so a bad config fails here with HAProxy's words.
        test = subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(conf)],
                              capture_output=True, text=True, timeout=30, check=False,
                              cwd=ctx.dir(self.name))
        if test.returncode != 0:
            raise LabError(f"{self.name}: haproxy -c rejected {conf}:\n"
                           f"{(test.stderr + test.stdout).strip()}")

    def command(self, ctx: LabContext) -> list[str]:
        # -db: foreground, no daemon; the process runs until SIGTERM (or SIGUSR1).
        return [haproxy_binary(), "-f", str(self.conf_path(ctx)), "-db"]

    def ready(self, ctx: LabContext) -> bool:
        """The frontend accepts and the admin socket answers ``show info``."""
        assert self.port is not None
        return (port_open(self.address, self.port)
                and "Name: HAProxy" in self.admin(ctx, "show info"))

    def admin(self, ctx: LabContext, command: str, timeout: float = 2.0) -> str:
        """One command on the admin socket (HAProxy management guide §9.3), its answer.

        E.g. ``disable server app/app-2``, ``enable server app/app-2``, ``show stat``.
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.socket_path(ctx)))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):   # non-interactive: HAProxy closes when done
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """One span per request line of the trace: from accept_time + (Th + Ti) ms, Ta ms
        long, with the queue, connect and response timers."""
        out = []
        for item in json_lines(ctx.log(self.name), trace_id):
            accept = seconds(item.get("accept_time"))
            if accept is None:
                continue
            th, ti, ta = (int(item.get(k) or 0) for k in ("Th", "Ti", "Ta"))
            start = accept + (max(th, 0) + max(ti, 0)) / 1000
            attrs = {k: item.get(k) for k in SPAN_FIELDS}
            attrs.update({k: item[k] for k in MTLS_SPAN_FIELDS if item.get(k) not in
                          (None, "", "-")})
            attrs["algorithm"] = ctx.algorithm
            attrs["timers"] = TIMERS
            span = ServerSpan(self.span_kind, self.name, f"{self.name} ({self.role})",
                              int(start * 1e9), int((start + max(ta, 0) / 1000) * 1e9),
                              str(item.get("traceparent", "")), attrs)
            span.connections = self.hops(ctx, item)
            out.append(span)
        return out

    def client_tier(self, address: object = None) -> str:
        """The front tier that connected from ``address`` (its host's, or the one its spec
        says it ``connects_from``); the first front when none matches."""
        fronts = [s for s in self.topo.tiers if s.options.get("upstream") == self.name]
        for spec in fronts:
            if address in (self.topo.address(spec.host), spec.options.get("connects_from")):
                return spec.name
        return fronts[0].name if fronts else "client"

    def hops(self, ctx: LabContext, item: dict[str, object]) -> list[HopConnectionFacts]:
        """The hop in (which request this was on the client's connection, from the earlier
        lines of the same source address and port) and the hop out (HAProxy's Tc)."""
        out = []
        n = requests_on_connection(ctx.log(self.name), item)
        if n is not None:
            out.append(HopConnectionFacts(
                hop=f"{self.client_tier(item.get('client'))} → {self.name}", new=n == 1, requests=n,
                evidence=f"HAProxy's log: request {n} from {item.get('client')}:"
                         f"{item.get('client_port')} (%ci:%cp) kept alive within "
                         f"{KEEP_ALIVE_S:g} s; Th {item.get('Th')} ms, Ti {item.get('Ti')} ms"))
        tc = item.get("Tc")
        server = next((b for b in self.backends
                       if self.topo.spec(b).host == item.get("server")), None)
        if isinstance(tc, int) and tc >= 0 and server is not None:
            out.append(HopConnectionFacts(
                hop=f"{self.name} → {server}", connect_ms=float(tc),
                evidence=f"HAProxy's Tc = {tc} ms (whole milliseconds); its conns: "
                         f"{item.get('conns')}"))
        return out

    def server_rows(self, ctx: LabContext, backend: str = "app") -> list[dict[str, str]]:
        """``show stat``'s CSV rows of ``backend``'s servers (not its FRONTEND/BACKEND rows),
        each by column name (pxname, svname, status, scur, check_status…)."""
        lines = self.admin(ctx, "show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            return []
        header = lines[0][2:].split(",")
        rows = (dict(zip(header, line.split(","), strict=False)) for line in lines[1:])
        return [row for row in rows if row.get("pxname") == backend
                and row.get("svname") not in ("FRONTEND", "BACKEND", "", None)]

    def servers(self, ctx: LabContext) -> dict[str, str]:
        """Each app server's state from ``show stat``: "UP", "DOWN", "MAINT", "UP 1/2"…"""
        return {row["svname"]: row.get("status", "") for row in self.server_rows(ctx)}

    def server_lines(self, ctx: LabContext) -> str:
        lines = []
        for tier in self.backends:
            address, port = self.topo.endpoint(tier)
            lines.append(f"    server {self.topo.spec(tier).host} {address}:{port}"
                         f"{self.server_tls(ctx, tier)}\n")
        return "".join(lines)

    def server_tls(self, ctx: LabContext, tier: str) -> str:
        """With mTLS: TLS to the app node, this LB's certificate as the client's, the app
        node's checked against the lab CA and its tier name; health checks over TLS too."""
        if not ctx.mtls:
            return ""
        cert = tier_cert(ctx.pki, self.name, self.address)
        return (f" ssl crt {cert.bundle} ca-file {cert.ca} verify required verifyhost {tier}"
                " check-ssl")

    def bind_line(self, ctx: LabContext) -> str:
        """The frontend's bind; with mTLS, TLS whose client must present a certificate
        of the lab CA (verify required: none, or another CA's, ends the handshake)."""
        bind = f"    bind {self.address}:{self.port}"
        if not ctx.mtls:
            return bind
        cert = tier_cert(ctx.pki, self.name, self.address)
        return f"{bind} ssl crt {cert.bundle} verify required ca-file {cert.ca}"

    @staticmethod
    def reuse_lines(ctx: LabContext) -> str:
        """Without connection reuse (the mtls experiment): a connection per request to the
        app node (and so a handshake per request, with mTLS)."""
        if ctx.upstream_reuse:
            return ""
        return "    http-reuse never\n    option http-server-close\n"

    def config(self, ctx: LabContext) -> str:
        if ctx.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown balance algorithm {ctx.algorithm!r}: "
                             f"choose from {', '.join(ALGORITHMS)}")
        log_format = LOG_FORMAT.replace("$tier", self.name).replace("$node", self.host)
        if ctx.mtls:
            log_format = log_format[:-1] + MTLS_LOG_FIELDS + "}"
        return f"""\
# Generated by whathappens lab for tier {self.name} ({self.role}); rewritten on every start.
global
    log stdout format raw local0
    stats socket {self.socket_path(ctx)} mode 600 level admin
    stats timeout 30s
    maxconn 4096

defaults
    mode http
    log global
    option dontlognull
    timeout connect 2s
    timeout client 30s
    # Longer than the app nginx's proxy_read_timeout (10 s), so a slow app surfaces as
    # nginx's 504 and not as HAProxy's.
    timeout server 20s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    timeout check 1s
    # A connection refused or closed without an answer is retried on another server, so
    # a node that just died costs no failed request (replies such as 502 are not retried:
    # the drills should see them).
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response

{metrics_frontend(self.address)}
frontend www
{self.bind_line(ctx)}
    # The structured id from the configuration manual (§4.2 unique-id-format): client
    # and frontend address:port, accept time, request counter and pid, in hex.
    unique-id-format %{{+X}}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
    http-request set-header X-Request-ID %[unique-id]
    http-response set-header X-Request-ID %[unique-id]
    # Capture slot 0, read back in the log line as capture.req.hdr(0).
    http-request capture req.hdr(traceparent) len 64
    option forwardfor
    log-format '{log_format}'
    default_backend app

backend app
    balance {ctx.algorithm}
    # Connect from the LB's own address, so the app nodes see the picture's hosts.
    source {self.address}
    option httpchk
    # HTTP/1.1 with the site's Host: the app may refuse a request for an unknown host.
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host {SITE}
    http-check expect status 200
    default-server check {CHECK}
    http-response set-header X-Backend-Server %s
{self.reuse_lines(ctx)}{self.server_lines(ctx)}"""


# HAProxy's own Prometheus exporter (Debian's 2.6 is built with USE_PROMEX): on the LB's
# address, a port of its own, never logged (the access log is one JSON object per request
# of the site). lab up --metrics scrapes it every second.
METRICS_PORT = 8405


def metrics_frontend(address: str) -> str:
    return f"""\
frontend prometheus
    bind {address}:{METRICS_PORT}
    no log
    http-request use-service prometheus-exporter if {{ path /metrics }}
    http-request return status 404
"""
