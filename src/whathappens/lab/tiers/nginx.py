"""nginx in the lab: the app nodes' reverse proxy and the CDN edge.

    client ──TLS, h2──▶ NginxEdge ──HTTP──▶ HAProxy ──HTTP──▶ NginxApp ──HTTP──▶ gunicorn
                        edge cache 10 s                       micro-cache 1 s
                        /static/: as long as                  /static/: the files
                        the origin says (a day)               collectstatic wrote

Static files (the pages' CSS, JS and images) never reach Django: the app node's nginx serves
them from the collectstatic directory, as a Django deployment does (Django's own static view
is for development only), with an ETag and ``public, max-age=86400, immutable`` for names
that carry a content hash; the edge caches them for every visitor, so a browser sees
``X-Cache: MISS`` on the first visit and ``HIT`` after, each request logged with its
traceparent.

Both run Debian's nginx in the foreground (``daemon off``) with a configuration generated
here, everything nginx would otherwise write under /var/lib/nginx or /run (pid, temp files,
caches) kept inside the tier's own directory. Each writes one JSON object per request to
``logs/<tier>.access.jsonl``; nginx's own messages go to stderr, which ``process.py`` puts
in ``logs/<tier>.log``.

Access log fields (every line), so the journey can merge them on one timeline:

    time                    $msec, the request's end as Unix seconds (a JSON number)
    tier, node              the tier's name and its lab host
    traceparent             the client's W3C traceparent, as received ("" when none)
    request_id              HAProxy's unique id (app: the request header; edge: the id the
                            LB sent back, "" when answered from the cache); nginx's own
                            $request_id when no LB is in front (single profile) or none
                            arrived
    client                  $remote_addr (on the app nodes: the real client, via realip)
    method, uri, host, protocol
    status                  a string: nginx logs "000" when no response was sent
    bytes, request_time     numbers: body bytes sent; seconds from first byte read to log
    upstream_addr, upstream_connect_time, upstream_header_time, upstream_response_time
                            strings as nginx writes them: "" when no upstream was asked,
                            "0.001, 0.002" when it tried two
    cache                   $upstream_cache_status: MISS HIT EXPIRED STALE UPDATING
                            REVALIDATED BYPASS, or "" when the location does not cache
    connection, connection_requests  (edge) which client connection, its nth request
    ssl_protocol, ssl_cipher, ssl_session_reused  (edge) the client's TLS session;
                            ssl_session_reused is "r" for a resumed session, else "."

A request's span is [time - request_time, time].

nginx adds no ``Age`` header of its own (it does not compute one for cached responses); an
``Age`` sent by the origin is passed through, as every header is.

Why ``user root`` when run as root: nginx's workers would otherwise switch to ``nobody``
and then could not read the lab's state directory (under a 0700 home or pytest's tmp dir)
for static files, nor write the cache and temp directories the master created. The lab
listens on loopback only; the master must be root anyway to bind 80/443.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import subprocess
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.contract.facts import HopConnectionFacts
from whathappens.demo.ca import ensure_pki
from whathappens.lab.logs import ServerSpan, json_lines, seconds
from whathappens.lab.mtls import VERIFY_DEPTH, client_context, tier_cert
from whathappens.lab.process import LabError
from whathappens.lab.tier import LabContext, SpecTier, which
from whathappens.lab.topology import SITE

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

MIME_TYPES = Path("/etc/nginx/mime.types")
# Debian package libnginx-mod-http-brotli-filter; used only when installed.
BROTLI_MODULE = Path("/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so")
OVERLAY_LEVELS = ("main", "http", "server")   # where drills may add to the edge's config
READY_PATH = "/nginx_status"           # stub_status: answers without asking any upstream

# Upstream timeouts, innermost shortest, so a slow app surfaces as the app node's 504
# (the "slow DB" drill) instead of as a timeout of a tier further out.
APP_CONNECT_TIMEOUT = "2s"
APP_READ_TIMEOUT = "10s"
EDGE_READ_TIMEOUT = "30s"              # > HAProxy's "timeout server" (20 s)
MAX_BODY = "10m"
# Per client: generous, so the lab's bounded load runs are not throttled by default.
RATE = "50r/s"
BURST = 100

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"),
    # the powerful features the site never uses, denied; no window handle across origins; no
    # embedding by other origins (analysis/security.py grades these)
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HSTS = "max-age=63072000; includeSubDomains"
STATIC_CACHE_CONTROL = "public, max-age=86400, immutable"
COMPRESSIBLE = ("text/plain text/css text/xml application/javascript application/json "
                "application/xml image/svg+xml")

# (field, nginx value, JSON string?) common to both tiers, after time, tier, node and
# request_id (see log_fields); what each means is in the module docstring.
LOG_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("traceparent", "$http_traceparent", True),
    ("client", "$remote_addr", True),
    ("method", "$request_method", True),
    ("uri", "$request_uri", True),
    ("host", "$host", True),
    ("protocol", "$server_protocol", True),
    ("status", "$status", True),
    ("bytes", "$body_bytes_sent", False),
    ("request_time", "$request_time", False),
    ("upstream_addr", "$upstream_addr", True),
    ("upstream_connect_time", "$upstream_connect_time", True),
    ("upstream_header_time", "$upstream_header_time", True),
    ("upstream_response_time", "$upstream_response_time", True),
    ("cache", "$upstream_cache_status", True),
)
# Which connection the request came on, and its number there (1: the connection's first):
# logged by both tiers, so each hop into nginx says new or reused.
CONNECTION_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("connection", "$connection", False),
    ("connection_requests", "$connection_requests", False),
)
EDGE_LOG_FIELDS: tuple[tuple[str, str, bool], ...] = (
    *CONNECTION_FIELDS,
    ("ssl_protocol", "$ssl_protocol", True),
    ("ssl_cipher", "$ssl_cipher", True),
    ("ssl_session_reused", "$ssl_session_reused", True),
)
# With mTLS (lab up --mtls), the app node's nginx logs the TLS of the hop in from the LB:
# protocol, cipher, resumed or not, the LB certificate's subject and nginx's verdict on it
# ($ssl_client_verify: SUCCESS, FAILED:reason or NONE).
MTLS_LOG_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("ssl_protocol", "$ssl_protocol", True),
    ("ssl_cipher", "$ssl_cipher", True),
    ("ssl_session_reused", "$ssl_session_reused", True),
    ("ssl_client_s_dn", "$ssl_client_s_dn", True),
    ("ssl_client_verify", "$ssl_client_verify", True),
)
# What a span keeps of an access log line (when set: nginx writes "" or "-" for none).
SPAN_FIELDS = ("status", "cache", "upstream_addr", "upstream_connect_time",
               "upstream_header_time", "upstream_response_time", "request_time", "request_id",
               "protocol", "ssl_protocol", "ssl_cipher", "ssl_session_reused", "node", "uri",
               "ssl_client_s_dn", "ssl_client_verify")


def nginx_binary() -> str:
    return which("nginx", "/usr/sbin/nginx")


def access_log(ctx: LabContext, name: str) -> Path:
    """Where tier ``name`` writes its JSON access log (next to ``ctx.log(name)``)."""
    return ctx.log(name).with_name(f"{name}.access.jsonl")


def waf_log(ctx: LabContext, name: str) -> Path:
    """ModSecurity's audit log (JSON, one transaction a line) when the waf drill switched it
    on in edge ``name`` (drills/edge.py), beside its access log."""
    return ctx.log(name).with_name(f"{name}.waf.jsonl")


def waf_verdicts(ctx: LabContext, name: str, trace_id: str) -> dict[str, str]:
    """traceparent → "403: 941100 941110 … 949110", the status ModSecurity gave and the CRS
    rules that matched, for this trace's transactions in the audit log."""
    out = {}
    for item in json_lines(waf_log(ctx, name), trace_id):
        tx = item.get("transaction")
        if not isinstance(tx, dict):
            continue
        request, response = tx.get("request") or {}, tx.get("response") or {}
        headers = request.get("headers") or {} if isinstance(request, dict) else {}
        parent = next((str(v) for k, v in headers.items() if k.lower() == "traceparent"), "")
        rules = [str((m.get("details") or {}).get("ruleId", "?"))
                 for m in tx.get("messages") or [] if isinstance(m, dict)]
        if parent and rules:
            status = response.get("http_code") if isinstance(response, dict) else None
            out[parent] = f"{status}: {' '.join(rules)}"
    return out


def quoted(value: object) -> str:
    """A value as an nginx string literal (paths may hold spaces)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


CACHE_HEAD_MAX = 64 * 1024


def stored_headers(head: bytes, key: str) -> dict[str, str] | None:
    """The upstream response headers in an nginx cache file (after its binary header and
    the ``KEY:`` line), lower-cased names; None when the file is not for ``key``."""
    marker = f"\nKEY: {key}\n".encode()
    at = head.find(marker)
    if at < 0:
        return None
    block = head[at + len(marker):].split(b"\r\n\r\n", 1)[0]
    out = {}
    for line in block.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def first_request_number(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def last_timer(value: object) -> float | None:
    """nginx's upstream timers list every upstream tried ("0.001, 0.000"); the last one is
    the connection that answered. Seconds, as logged."""
    text = str(value or "").split(",")[-1].strip()
    try:
        return float(text)
    except ValueError:
        return None


def hop_facts(item: dict[str, object], client: str, me: str,
              upstream: tuple[str, bool]) -> list[HopConnectionFacts]:
    """The hop into this nginx ($connection_requests: 1 = a new connection) and the hop out
    to its upstream ($upstream_connect_time, when nginx asked one)."""
    out = []
    n = first_request_number(item.get("connection_requests"))
    if n is not None:
        out.append(HopConnectionFacts(
            hop=f"{client} → {me}", new=n == 1, requests=n,
            evidence=f"nginx ({me}): $connection_requests = {n} on connection "
                     f"#{item.get('connection')}" +
                     ("; the connect itself is this journey's own TCP and TLS steps"
                      if client == "client" else "")))
    connect = last_timer(item.get("upstream_connect_time"))
    if connect is not None:
        name, keepalive = upstream
        out.append(HopConnectionFacts(
            hop=f"{me} → {name}", new=None if keepalive else True,
            connect_ms=round(connect * 1000, 3),
            evidence=f"nginx ({me}): $upstream_connect_time = {connect:.3f} s" +
                     ("" if keepalive else "; no keepalive to this upstream, so every "
                      "request opens a new connection")))
    return out


class NginxTier(SpecTier):
    """What both nginx tiers share: files, the test run, the command, readiness."""

    tls = False

    def conf_path(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "nginx.conf"

    def prepare(self, ctx: LabContext) -> None:
        home = ctx.dir(self.name)
        for sub in ("tmp", "cache"):
            (home / sub).mkdir(exist_ok=True)
        access_log(ctx, self.name).parent.mkdir(parents=True, exist_ok=True)
        conf = self.conf_path(ctx)
        conf.write_text(self.config(ctx))
        # nginx's own check, so a bad config fails here with nginx's words, not as a
        # process that exits while the lab waits for it.
        test = subprocess.run([*self._argv(ctx), "-t", "-q"], capture_output=True, text=True,
                              cwd=home, timeout=30, check=False)
        if test.returncode != 0:
            raise LabError(f"{self.name}: nginx -t rejected {conf}:\n"
                           f"{(test.stderr + test.stdout).strip()}")

    def command(self, ctx: LabContext) -> list[str]:
        return self._argv(ctx)

    def _argv(self, ctx: LabContext) -> list[str]:
        # -p: relative paths resolve in the tier's dir; -e: errors to stderr from the first
        # message on, before the config is read (nginx ≥ 1.19.5).
        return [nginx_binary(), "-p", f"{ctx.dir(self.name)}/", "-e", "stderr",
                "-c", str(self.conf_path(ctx))]

    def ready(self, ctx: LabContext) -> bool:
        """nginx answers an HTTP request of its own (any status: upstreams may be down)."""
        assert self.port is not None
        conn: http.client.HTTPConnection
        context = self.ready_context(ctx)
        if context is not None:
            conn = http.client.HTTPSConnection(self.address, self.port, timeout=1,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(self.address, self.port, timeout=1)
        try:
            conn.request("GET", READY_PATH, headers={"Host": SITE})
            return conn.getresponse().status > 0
        finally:
            conn.close()

    def ready_context(self, ctx: LabContext) -> ssl.SSLContext | None:
        """The TLS the readiness check speaks (None: plain HTTP)."""
        if not self.tls:
            return None
        context = ssl.create_default_context()
        # Only "does it answer": nginx -t has already checked the certificate and key.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    @abstractmethod
    def config(self, ctx: LabContext) -> str:
        """The whole nginx.conf."""

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """One span per access log line of the trace: [time − request_time, time]."""
        out = []
        for item in json_lines(access_log(ctx, self.name), trace_id):
            end, took = seconds(item.get("time")), seconds(item.get("request_time"))
            if end is None or took is None:
                continue
            attrs = {k: item.get(k) for k in SPAN_FIELDS if item.get(k) not in (None, "", "-")}
            span = ServerSpan(self.span_kind, self.name, f"{self.name} ({self.role})",
                              int((end - took) * 1e9), int(end * 1e9),
                              str(item.get("traceparent", "")), attrs)
            span.connections = hop_facts(item, self.client_tier(), self.name,
                                         self.upstream_hop())
            out.append(span)
        return out

    @abstractmethod
    def client_tier(self) -> str:
        """Who connects to this nginx: the client, or the tier in front."""

    @abstractmethod
    def upstream_hop(self) -> tuple[str, bool]:
        """(the upstream tier, does nginx keep connections to it alive?)"""

    # -- pieces of configuration ------------------------------------------------------------

    def main_context(self, ctx: LabContext, modules: tuple[Path, ...] = (),
                     head: str = "") -> str:
        home = ctx.dir(self.name)
        loads = "".join(f"load_module {quoted(m)};\n" for m in modules) + head
        user = "user root;\n" if os.geteuid() == 0 else ""   # why: see the module docstring
        return f"""\
# Generated by whathappens lab for tier {self.name} ({self.role}); rewritten on every start.
{loads}{user}daemon off;                 # process.py runs every tier in the foreground
master_process on;
worker_processes 1;
pid {quoted(home / "nginx.pid")};
error_log stderr warn;
events {{
    worker_connections 1024;
}}
"""

    def http_common(self, ctx: LabContext, fields: tuple[tuple[str, str, bool], ...]) -> str:
        home = ctx.dir(self.name)
        tmp = home / "tmp"
        mime = (f"include {quoted(MIME_TYPES)};" if MIME_TYPES.exists() else
                "types { text/html html; text/css css; application/javascript js; "
                "image/png png; image/svg+xml svg; }")
        return f"""\
    {mime}
    default_type application/octet-stream;
    server_tokens off;              # "Server: nginx", without the version
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;

    # Debian's nginx writes these under /var/lib/nginx unless told otherwise.
    client_body_temp_path {quoted(tmp / "client_body")};
    proxy_temp_path {quoted(tmp / "proxy")};
    fastcgi_temp_path {quoted(tmp / "fastcgi")};
    uwsgi_temp_path {quoted(tmp / "uwsgi")};
    scgi_temp_path {quoted(tmp / "scgi")};

    # escape=json (nginx ≥ 1.11.8) escapes variable values for JSON strings, and an unset
    # variable is written as "" instead of "-".
{log_format(fields)}
    access_log {quoted(access_log(ctx, self.name))} lab_json;

    # An X-Request-ID from the load balancer is kept; without one, nginx's own $request_id.
    map $http_x_request_id $lab_request_id {{
        ""      $request_id;
        default $http_x_request_id;
    }}
{static_cache_map()}"""

    def log_fields(self, node: str, request_id: str,
                   extra: tuple[tuple[str, str, bool], ...] = ()) -> tuple[
                       tuple[str, str, bool], ...]:
        head = (("time", "$msec", False), ("tier", self.name, True), ("node", node, True),
                ("request_id", request_id, True))
        return head + LOG_FIELDS + extra

    @staticmethod
    def status_location() -> str:
        return f"""\
        location = {READY_PATH} {{     # readiness and connection counts; never proxied
            stub_status;
            access_log off;
            allow 127.0.0.0/8;
            deny all;
        }}
"""

    @staticmethod
    def security_headers() -> str:
        """The headers, set here only: the app's own copies are hidden so none is doubled
        (two different X-Frame-Options values make browsers ignore both)."""
        lines = []
        for header, value in SECURITY_HEADERS.items():
            lines.append(f"        proxy_hide_header {header};\n")
            lines.append(f"        add_header {header} {quoted(value)} always;\n")
        return "".join(lines)


def static_cache_map() -> str:
    """$lab_static_cache: the Cache-Control of a static file, "" for anything else.

    collectstatic (ManifestStaticFilesStorage) names each file after a hash of its content,
    ``site.3d2b1c0a9e8f.css``, and the pages link those names: such a file never changes, so
    it is public and immutable for a day. A name without the hash may change in place on the
    next deploy: an hour, and revalidated by its ETag after that. An empty value adds no
    header, so a response from the app keeps its own Cache-Control.
    """
    return f"""\
    map $uri $lab_static_cache {{
        default                                 "";
        "~^/static/.+\\.[0-9a-f]{{12}}\\.[A-Za-z0-9]+$"   {quoted(STATIC_CACHE_CONTROL)};
        "~^/static/"                            "public, max-age=3600";
    }}
"""


def static_location(root: Path) -> str:
    """The files collectstatic wrote, served by nginx itself (Django never sees them).

    nginx sends an ETag (its mtime and size) and Last-Modified, and answers If-None-Match
    with 304; the Cache-Control comes from $lab_static_cache, added at the server level so
    the server's other headers still apply here (a location's own add_header would drop them).
    """
    return f"""\
        location /static/ {{
            alias {quoted(str(root) + "/")};
            etag on;
        }}
"""


def log_format(fields: tuple[tuple[str, str, bool], ...]) -> str:
    parts = []
    for i, (key, value, is_string) in enumerate(fields):
        comma = "," if i < len(fields) - 1 else ""
        shown = f'"{value}"' if is_string else value
        parts.append(f"""        '"{key}":{shown}{comma}'""")
    body = "\n".join(parts)
    return f"    log_format lab_json escape=json\n        '{{'\n{body}\n        '}}';"


class NginxApp(NginxTier):
    """The app node's reverse proxy: plain HTTP on the node's address, in front of gunicorn.

    Options: ``upstream`` (the gunicorn tier), ``node`` (the app host's name).
    """

    kind = "nginx-app"
    span_kind = "app"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.upstream = str(spec.options["upstream"])
        self.node = str(self.spec.options.get("node", self.host))
        self.depends = (self.upstream,)

    def client_tier(self) -> str:
        for spec in self.topo.tiers:
            backends = spec.options.get("backends")
            if spec.kind == "haproxy" and isinstance(backends, list | tuple) and \
                    self.name in [str(b) for b in backends]:
                return spec.name
        return "client"

    def upstream_hop(self) -> tuple[str, bool]:
        return self.upstream, False

    def ready_context(self, ctx: LabContext) -> ssl.SSLContext | None:
        """With mTLS, the check presents the certificate of the tier in front (the LB), as
        nginx refuses any request without one."""
        if not ctx.mtls:
            return super().ready_context(ctx)
        front = self.client_tier()
        cert = tier_cert(ctx.pki, front, self.topo.address(self.topo.spec(front).host))
        return client_context(cert, cert.ca, check_hostname=False)

    def mtls_server(self, ctx: LabContext) -> str:
        """With mTLS: this node's certificate, and the LB's required and verified against
        the lab CA (no certificate, or another CA's: 400 before any location runs)."""
        if not ctx.mtls:
            return ""
        cert = tier_cert(ctx.pki, self.name, self.address)
        return f"""\
        ssl_certificate {quoted(cert.chain)};
        ssl_certificate_key {quoted(cert.key)};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:app_tls:1m;   # the LB resumes its sessions
        ssl_client_certificate {quoted(cert.ca)};
        ssl_verify_client on;
        ssl_verify_depth {VERIFY_DEPTH};
"""

    def trusted_proxies(self) -> list[str]:
        """Addresses whose X-Forwarded-For nginx believes: the lab's LB and edge hosts."""
        hosts = {s.host for s in self.topo.tiers
                 if s.kind in ("haproxy", "nginx-edge", "caddy-edge")}
        # A POP that cannot bind its host's address connects from another (tiers/caddy.py).
        sources = {str(s.options["connects_from"]) for s in self.topo.tiers
                   if s.options.get("connects_from")}
        return sorted(({self.topo.address(h) for h in hosts} | sources) - {self.address})

    def config(self, ctx: LabContext) -> str:
        home = ctx.dir(self.name)
        up_addr, up_port = self.topo.endpoint(self.upstream)
        fields = self.log_fields(self.node, "$lab_request_id",
                                 CONNECTION_FIELDS + (MTLS_LOG_FIELDS if ctx.mtls else ()))
        return self.main_context(ctx) + f"""
http {{
{self.http_common(ctx, fields)}
    # $proxy_add_x_forwarded_for would append $remote_addr, which realip has already made
    # the client: append the peer (the LB) instead, so the chain stays client, edge, lb.
    map $http_x_forwarded_for $lab_forwarded_for {{
        ""      $realip_remote_addr;
        default "$http_x_forwarded_for, $realip_remote_addr";
    }}
    map $http_x_forwarded_proto $lab_forwarded_proto {{
        ""      $scheme;
        default $http_x_forwarded_proto;
    }}
    # The micro-cache ignores the app's Cache-Control (every cacheable 200 lives 1 s, which
    # is the point of a micro-cache), so it must itself refuse what the app marked private.
    map $upstream_http_cache_control $lab_uncacheable {{
        default                         "";
        "~*(private|no-store|no-cache)" 1;
    }}

    proxy_cache_path {quoted(home / "cache")} levels=1:2 keys_zone=microcache:10m
                     max_size=100m inactive=1m use_temp_path=off;
    limit_req_zone $binary_remote_addr zone=per_client:10m rate={RATE};
    limit_req_status 429;
    limit_req_log_level warn;

    upstream gunicorn {{
        # No keepalive: gunicorn closes idle connections after 2 s (its default), and a
        # request sent on a connection it is closing would fail.
        server {up_addr}:{up_port};
    }}

""" + self.server(ctx) + "}\n"

    def server(self, ctx: LabContext) -> str:
        """The server block: the node's address, realip, headers, the micro-cache."""
        static = ctx.state / "static"
        static.mkdir(parents=True, exist_ok=True)
        realip = "".join(f"        set_real_ip_from {a};\n" for a in self.trusted_proxies())
        if realip:
            # The rate limit and the log should see the client, not the LB (realip module).
            realip += ("        real_ip_header X-Forwarded-For;\n"
                       "        real_ip_recursive on;\n")
        return f"""\
    server {{
        listen {self.address}:{self.port}{" ssl" if ctx.mtls else ""} default_server;
        server_name _;              # the edge and the LB pass the site's Host through
{self.mtls_server(ctx)}{realip}        client_max_body_size {MAX_BODY};

        add_header X-Served-By {quoted(self.node)} always;
        add_header X-Microcache $upstream_cache_status always;
        # Server-Timing needs milliseconds, nginx only has seconds: this is the next best.
        # $upstream_response_time is still "-" when the headers go out (the body is not
        # read yet); the time to the app's response header is known by then.
        add_header X-Upstream-Time $upstream_header_time always;
        add_header Cache-Control $lab_static_cache;     # static files only (see the map)
{self.security_headers()}
        proxy_http_version 1.1;
        proxy_bind {self.address};      # connect from this host's own address
        proxy_connect_timeout {APP_CONNECT_TIMEOUT};
        proxy_send_timeout {APP_READ_TIMEOUT};
        proxy_read_timeout {APP_READ_TIMEOUT};
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $lab_forwarded_for;
        proxy_set_header X-Forwarded-Proto $lab_forwarded_proto;
        proxy_set_header X-Request-ID $lab_request_id;
        # traceparent and tracestate pass unchanged, like every other request header
        # (proxy_pass_request_headers is on by default).

{self.status_location()}
        # HAProxy's health checks: always answered by the app (never cached, never rate
        # limited) and not logged, twice a second per LB.
        location = /healthz {{
            access_log off;
            proxy_pass http://gunicorn;
        }}

{static_location(static)}
        location / {{
            limit_req zone=per_client burst={BURST} nodelay;
            proxy_pass http://gunicorn;

            # The 1 s micro-cache: absorbs a burst of identical GETs (one goes to the app,
            # proxy_cache_lock holds the others; while it refreshes, the stale copy is used).
            proxy_cache microcache;
            proxy_cache_key $scheme$host$request_uri;
            proxy_cache_methods GET HEAD;
            # nginx keeps validity in whole seconds: "1s" means until the end of the next
            # second, so a copy lives 1 to 2 s.
            proxy_cache_valid 200 1s;
            proxy_ignore_headers Cache-Control Expires;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 2s;
            proxy_cache_use_stale updating;
            # One user's page is never served to another: not for a session or credentials
            # (responses that set a cookie are never stored: Set-Cookie is not ignored).
            # X-Explain: 1 asks the database for its plan: it must reach the database
            # (never a cached copy), and its answer (slower for it) is not kept for others.
            proxy_cache_bypass $cookie_sessionid $http_authorization $http_x_explain;
            proxy_no_cache $cookie_sessionid $http_authorization $lab_uncacheable
                           $http_x_explain;
        }}
    }}
"""


class NginxEdge(NginxTier):
    """The CDN edge: TLS (the demo PKI) and HTTP/2, an edge cache, gzip, HTTP → HTTPS.

    Options: ``upstream`` (the LB, or gunicorn in the single profile), ``http_port`` (the
    port that redirects to https), ``single`` (the one-server profile: then this is the
    whole front — TLS, static files, security headers, rate limit, timeouts, no cache — as
    in the seeds' single-server nginx).
    """

    kind = "nginx-edge"
    span_kind = "edge"
    tls = True

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.upstream = str(spec.options["upstream"])
        self.http_port = int(str(spec.options["http_port"]))
        self.single = bool(spec.options.get("single", False))
        self.depends = (self.upstream,)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "http_port": self.http_port}

    def client_tier(self) -> str:
        return "client"

    def cache_entry(self, ctx: LabContext, host: str, uri: str) -> dict[str, str] | None:
        """The response headers the edge cache holds for ``https://host/uri`` (its file in
        the cache directory: nginx names it by the MD5 of the key, levels=1:2), or None."""
        key = f"https{host}{uri}"     # proxy_cache_key $scheme$host$request_uri
        path = self.cache_file(ctx, host, uri)
        try:
            with path.open("rb") as f:
                head = f.read(CACHE_HEAD_MAX)
        except OSError:
            return None
        return stored_headers(head, key)

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """The access log's spans; when ModSecurity is on (the waf drill) and judged the
        request, ``waf``: its status and the rule ids that matched, from its audit log."""
        spans = super().trace_spans(ctx, trace_id)
        verdicts = waf_verdicts(ctx, self.name, trace_id) if spans else {}
        for span in spans:
            if span.traceparent in verdicts:
                span.attrs["waf"] = verdicts[span.traceparent]
        return spans

    def cache_file(self, ctx: LabContext, host: str, uri: str) -> Path:
        """Where the edge cache keeps ``https://host/uri``: the MD5 of the key names the
        file, its last character and the two before it the directories (levels=1:2)."""
        key = f"https{host}{uri}"     # proxy_cache_key $scheme$host$request_uri
        digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
        return ctx.dir(self.name) / "cache" / digest[-1] / digest[-3:-1] / digest

    def upstream_hop(self) -> tuple[str, bool]:
        return self.upstream, not self.single

    # -- drill overlays ----------------------------------------------------------------------
    # The edge drills (drills/edge.py: waf, rate-limit) switch features on in the running
    # edge: they drop snippets into drills/{main,http,server}/ and reload nginx (SIGHUP).
    # An include whose pattern matches no file is no error, so without a drill the config is
    # the edge's own. A new start removes them: a drill never outlives the lab it was for.

    def overlay_dir(self, ctx: LabContext, level: str = "") -> Path:
        """Where drills put snippets for ``level``: main (before events: load_module),
        http, or server (the TLS server block)."""
        base = ctx.dir(self.name) / "drills"
        return base / level if level else base

    def prepare(self, ctx: LabContext) -> None:
        base = self.overlay_dir(ctx)
        for level in OVERLAY_LEVELS:
            where = base / level
            where.mkdir(parents=True, exist_ok=True)
            for old in where.glob("*.conf"):
                old.unlink()
        super().prepare(ctx)

    def overlay(self, ctx: LabContext, level: str, indent: str) -> str:
        pattern = quoted(self.overlay_dir(ctx, level) / "*.conf")
        return f"{indent}include {pattern};   # drill snippets, normally none\n"

    def modules(self) -> tuple[Path, ...]:
        return (BROTLI_MODULE,) if BROTLI_MODULE.exists() else ()

    def config(self, ctx: LabContext) -> str:
        pki = ensure_pki(ctx.pki)
        home = ctx.dir(self.name)
        up_addr, up_port = self.topo.endpoint(self.upstream)
        request_id = "$lab_request_id" if self.single else "$lab_edge_request_id"
        fields = self.log_fields(self.host, request_id, EDGE_LOG_FIELDS)
        brotli = ""
        if self.modules():
            brotli = (f"        brotli on;\n        brotli_comp_level 5;\n"
                      f"        brotli_types {COMPRESSIBLE};\n")
        https = "" if self.port == 443 else f":{self.port}"
        return self.main_context(ctx, self.modules(), self.overlay(ctx, "main", "")) + f"""
http {{
{self.http_common(ctx, fields)}
{self.overlay(ctx, "http", "    ")}\
    # Server-Timing is a list header: this entry joins the app's own (CDN convention).
    map $upstream_cache_status $lab_cdn_timing {{
        ""      "";
        default "cdn-cache;desc=$upstream_cache_status";
    }}
    # The LB's id for this request, from its response. A cached response carries the id
    # of the request that filled the cache: not this request's, so none is logged.
    map "$upstream_cache_status $upstream_http_x_request_id" $lab_edge_request_id {{
        "~^(HIT|STALE|UPDATING) " "";
        "~^\\S* (.*)$"              $1;
    }}
{self._limit_zone() if self.single else self._cache_zone(home)}
    upstream origin {{
        server {up_addr}:{up_port};
{"" if self.single or not ctx.upstream_reuse else self._keepalive()}    }}

    server {{
        listen {self.address}:{self.http_port} default_server;
        server_name _;
{self.status_location()}
        location / {{
            return 301 https://$host{https}$request_uri;
        }}
    }}

    server {{
        # "http2" on listen is nginx 1.22's spelling (a separate directive from 1.25.1).
        listen {self.address}:{self.port} ssl http2 default_server;
        server_name _;              # the certificate names www.example.com and its friends
        ssl_certificate {quoted(pki.server.chain)};
        ssl_certificate_key {quoted(pki.server.key)};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers off;  # all offered suites are strong; the client chooses
        ssl_session_cache shared:edge_tls:10m;
        ssl_session_timeout 1h;
{self.overlay(ctx, "server", "        ")}
        add_header Strict-Transport-Security {quoted(HSTS)} always;
        proxy_hide_header Strict-Transport-Security;
        add_header Server-Timing $lab_cdn_timing always;
{self._single_headers() if self.single else self._edge_headers()}
        gzip on;
        gzip_comp_level 5;
        gzip_min_length 256;
        gzip_proxied any;
        gzip_vary on;
        gzip_types {COMPRESSIBLE};
{brotli}
        proxy_http_version 1.1;
        proxy_set_header Connection "";  # keep upstream connections open
        proxy_bind {self.address};
        proxy_connect_timeout {APP_CONNECT_TIMEOUT};
        proxy_send_timeout {APP_READ_TIMEOUT if self.single else EDGE_READ_TIMEOUT};
        proxy_read_timeout {APP_READ_TIMEOUT if self.single else EDGE_READ_TIMEOUT};
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
{self._single_request_headers() if self.single else self._edge_request_headers()}\
        # traceparent and tracestate pass unchanged, like every other request header.
{self._mtls_proxy(ctx)}
{self.status_location()}
{self._single_locations(ctx) if self.single else self._origin(ctx, self._edge_location())}
    }}
}}
"""

    def mtls(self, ctx: LabContext) -> bool:
        return ctx.mtls and not self.single

    def _origin(self, ctx: LabContext, locations: str) -> str:
        """The locations, proxying over TLS to the LB with mTLS."""
        if not self.mtls(ctx):
            return locations
        return locations.replace("proxy_pass http://origin;", "proxy_pass https://origin;")

    def _mtls_proxy(self, ctx: LabContext) -> str:
        """With mTLS: the edge's certificate to the LB, the LB's checked against the lab CA
        and its tier name; TLS sessions resumed on new connections (nginx's default)."""
        if not self.mtls(ctx):
            return ""
        cert = tier_cert(ctx.pki, self.name, self.address)
        return f"""\
        proxy_ssl_certificate {quoted(cert.chain)};
        proxy_ssl_certificate_key {quoted(cert.key)};
        proxy_ssl_trusted_certificate {quoted(cert.ca)};
        proxy_ssl_verify on;
        proxy_ssl_verify_depth {VERIFY_DEPTH};
        proxy_ssl_name {self.upstream};
        proxy_ssl_protocols TLSv1.2 TLSv1.3;
        proxy_ssl_session_reuse on;
"""

    @staticmethod
    def _cache_zone(home: Path) -> str:
        return f"""
    proxy_cache_path {quoted(home / "cache")} levels=1:2 keys_zone=edge:10m
                     max_size=256m inactive=10m use_temp_path=off;
    # The Cookie header sent to the origin: none for a static file (the same for everyone).
    map $uri $lab_origin_cookie {{
        "~^/static/" "";
        default      $http_cookie;
    }}
"""

    @staticmethod
    def _limit_zone() -> str:
        return f"""
    limit_req_zone $binary_remote_addr zone=per_client:10m rate={RATE};
    limit_req_status 429;
    limit_req_log_level warn;
"""

    @staticmethod
    def _edge_request_headers() -> str:
        # One identity copy is cached; gzip/brotli are applied here, per client. A static
        # file is the same for everyone: its request reaches the origin without cookies
        # ($lab_origin_cookie, set here because a location's own proxy_set_header would
        # drop every one of these).
        return ('        proxy_set_header Accept-Encoding "";\n'
                "        proxy_set_header Cookie $lab_origin_cookie;\n")

    @staticmethod
    def _keepalive() -> str:
        # Idle upstream connections close here before HAProxy's "timeout http-keep-alive"
        # (10 s) closes them, so a request is never sent on a connection being closed.
        return "        keepalive 16;\n        keepalive_timeout 5s;\n"

    @staticmethod
    def _edge_headers() -> str:
        return "        add_header X-Cache $upstream_cache_status always;\n"

    def _single_headers(self) -> str:
        return (f"        add_header X-Served-By {quoted(self.host)} always;\n"
                "        add_header X-Upstream-Time $upstream_header_time always;\n"
                "        add_header X-Request-ID $lab_request_id always;\n"
                "        add_header Cache-Control $lab_static_cache;\n"
                f"{self.security_headers()}"
                f"        client_max_body_size {MAX_BODY};\n")

    @staticmethod
    def _single_request_headers() -> str:
        return ("        proxy_set_header X-Real-IP $remote_addr;\n"
                "        proxy_set_header X-Request-ID $lab_request_id;\n")

    @staticmethod
    def _edge_location() -> str:
        return """\
        # Static files (CSS, JS, images) under /static/: shared by every visitor and
        # immutable at the origin (public, max-age=86400), so the edge keeps them for the day
        # the origin allows, whatever cookie the browser sends (a CDN's usual rule for
        # static paths). X-Cache says HIT or MISS per file; a HIT never reaches the LB.
        location /static/ {
            proxy_pass http://origin;
            proxy_cache edge;
            proxy_cache_key $scheme$host$request_uri;
            proxy_cache_valid 200 10s;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating http_502 http_503 http_504;
            proxy_cache_bypass $http_authorization;
            proxy_no_cache $http_authorization;
        }

        location / {
            proxy_pass http://origin;
            # The edge cache. The origin's Cache-Control/Expires decide (nginx's default);
            # proxy_cache_valid is only the lifetime for a 200 that says nothing.
            proxy_cache edge;
            proxy_cache_key $scheme$host$request_uri;
            proxy_cache_valid 200 10s;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating http_502 http_503 http_504;
            proxy_cache_background_update on;
            # A shared cache must not answer requests carrying credentials from its store
            # (RFC 9111 §3.5); a session cookie is treated the same way.
            proxy_cache_bypass $cookie_sessionid $http_authorization;
            proxy_no_cache $cookie_sessionid $http_authorization;
            # X-Explain: 1 (the database step by step) always goes to the origin, and its
            # answer is not stored for others.
            proxy_cache_bypass $http_x_explain;
            proxy_no_cache $http_x_explain;
        }
"""

    def _single_locations(self, ctx: LabContext) -> str:
        static = ctx.state / "static"
        static.mkdir(parents=True, exist_ok=True)
        return f"""\
{static_location(static)}
        location / {{
            limit_req zone=per_client burst={BURST} nodelay;
            proxy_pass http://origin;
        }}
"""
