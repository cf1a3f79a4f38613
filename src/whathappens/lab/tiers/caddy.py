"""Caddy in the lab: a second CDN POP that speaks HTTP/3.

    client ──QUIC, h3 (UDP 443)──▶ Caddy (edge-2) ──HTTP/1.1──▶ HAProxy ──▶ app nodes …
           ──TLS, h2 / http/1.1 (TCP 443)──▶

Debian's nginx 1.22 and HAProxy 2.6 have no QUIC; Debian's Caddy 2.6 does. This POP ends TLS
with the lab CA's certificate (the one the nginx edge presents: ``*.example.com`` covers the
POP's own name), speaks HTTP/3 (RFC 9114) on UDP, HTTP/2 and HTTP/1.1 on TCP, advertises h3
in an ``Alt-Svc`` header (Caddy does that itself for a server with h3 on), compresses
(gzip, zstd) and proxies to the same HAProxy as the nginx edge. The lab's DNS gives it a name
of its own, ``pop2.example.com``, with an HTTPS record (RFC 9460) saying ``alpn="h3,h2"``
(see ``tiers/dns.py``).

No cache: Debian's Caddy has no cache handler (``caddy list-modules`` shows none; the cache
of caddy-cache-handler is a third-party plugin that Debian does not build), so this POP is a
plain reverse proxy and every request reaches HAProxy.

It runs ``caddy run`` in the foreground with a JSON configuration generated here: the admin
endpoint off (``lab down`` stops it by signal), the configuration not autosaved, and its
storage (certificates it would otherwise manage, locks) inside the tier's directory, via
``XDG_DATA_HOME``/``XDG_CONFIG_HOME``, so it never writes to /root or /var/lib/caddy.

Debian's Caddy 2.6 cannot choose the source address of its upstream connections (the HTTP
transport's ``local_address`` came with a later release), so it connects to HAProxy from
127.0.0.1, the loopback route's source: the topology says so (option ``connects_from``) and
HAProxy and the app nodes' nginx read that address as this POP.

The access log is Caddy's own JSON (``logs/<tier>.access.jsonl``, logger
``http.log.access.<tier>``), one object per request:

    ts              Unix seconds when the line was written: the response's end
    duration        seconds from the request's arrival at the handlers to that end
    request         remote_ip, remote_port, proto ("HTTP/3.0", "HTTP/2.0" …), method,
                    host, uri, headers (the client's, incl. Traceparent),
                    tls: resumed, version (0x0304 = TLS 1.3), cipher_suite (an IANA
                    number), proto (the ALPN: "h3", "h2"), server_name (the SNI)
    status, size    the response status and body bytes
    resp_headers    the response headers (with HAProxy's X-Request-Id)

For a request over HTTP/3, Caddy 2.6 logs the TLS fields as zeros and empty strings (its
QUIC library's TLS state does not reach the request it logs): such a span says
``transport: QUIC (UDP)`` and ``protocol: HTTP/3.0`` and no TLS details, rather than wrong ones.

A request's span is [ts − duration, ts].
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whathappens.demo.ca import ensure_pki
from whathappens.lab.logs import ServerSpan, json_lines, seconds
from whathappens.lab.mtls import tier_cert
from whathappens.lab.tier import LabContext, SpecTier, which
from whathappens.lab.topology import FRONT_KIND, SITE

if TYPE_CHECKING:
    from whathappens.lab.topology import TierSpec, Topology

HSTS = "max-age=63072000; includeSubDomains"       # the nginx edge's
DIAL_TIMEOUT = "2s"
RESPONSE_HEADER_TIMEOUT = "30s"   # > HAProxy's "timeout server" (20 s), like the nginx edge
# Idle upstream connections close before HAProxy's "timeout http-keep-alive" (10 s) does,
# so a request is never sent on a connection HAProxy is closing.
UPSTREAM_IDLE = "5s"

# IANA TLS numbers (RFC 8446 §4.2.1 versions, §B.4 cipher suites) as Caddy logs them.
TLS_VERSIONS = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2"}
TLS_SUITES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
              0x1303: "TLS_CHACHA20_POLY1305_SHA256",
              0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
              0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
              0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}
# What a span keeps of a log line (the explanations' texts may name each: explain/texts.py).
SPAN_FIELDS = ("status", "protocol", "alpn", "transport", "tls_version", "tls_cipher",
               "tls_resumed", "server_name", "request_id", "duration_ms", "bytes", "node",
               "uri", "upstream")


def caddy_binary() -> str:
    return which("caddy", "/usr/bin/caddy")


def access_log(ctx: LabContext, name: str) -> Path:
    return ctx.log(name).with_name(f"{name}.access.jsonl")


def tls_words(tls: dict[str, Any]) -> dict[str, object]:
    """Caddy's numeric TLS fields as the names nginx and OpenSSL print."""
    version, suite = tls.get("version"), tls.get("cipher_suite")
    out: dict[str, object] = {}
    if not version:
        return out      # an HTTP/3 request: Caddy 2.6 logs zeros (see the module docstring)
    if isinstance(version, int):
        out["tls_version"] = TLS_VERSIONS.get(version, f"0x{version:04x}")
    if isinstance(suite, int) and suite:
        out["tls_cipher"] = TLS_SUITES.get(suite, f"0x{suite:04x}")
    if isinstance(tls.get("resumed"), bool):
        out["tls_resumed"] = tls["resumed"]
    for key, name in (("proto", "alpn"), ("server_name", "server_name")):
        if tls.get(key):
            out[name] = str(tls[key])
    return out


def header(headers: object, name: str) -> str:
    """One header's first value from Go's canonical-case header map ("" when absent)."""
    if not isinstance(headers, dict):
        return ""
    for key, values in headers.items():
        if str(key).lower() == name and isinstance(values, list) and values:
            return str(values[0])
    return ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def span_attrs(item: dict[str, Any], node: str, upstream: str) -> dict[str, object]:
    """What a span keeps of one access log line (module docstring: the fields)."""
    request = _dict(item.get("request"))
    tls = _dict(request.get("tls"))
    proto = str(request.get("proto", ""))
    attrs: dict[str, object] = {
        "status": item.get("status"), "protocol": proto, "node": node,
        "uri": request.get("uri"), "bytes": item.get("size"), "upstream": upstream,
        "transport": "QUIC (UDP)" if proto.startswith("HTTP/3") else "TCP",
        **tls_words(tls)}
    took = seconds(item.get("duration"))
    if took is not None:
        attrs["duration_ms"] = round(took * 1000, 3)
    request_id = header(item.get("resp_headers"), "x-request-id")
    if request_id:
        attrs["request_id"] = request_id
    return {k: v for k, v in attrs.items() if v not in (None, "")}


class CaddyEdge(SpecTier):
    """The second POP. Options: ``upstream`` (the LB), ``dns_name`` (its label under
    example.com), ``connects_from`` (the source address of its upstream connections)."""

    kind = "caddy-edge"
    span_kind = "pop"

    def __init__(self, topo: Topology, spec: TierSpec) -> None:
        super().__init__(topo, spec)
        self.upstream = str(spec.options["upstream"])
        # It presents the certificate the front tier's prepare issues (demo.ca.ensure_pki,
        # which two tiers must not run at once: each would make a CA of its own).
        fronts = [s.name for s in topo.of_kind(FRONT_KIND)]
        self.depends = (self.upstream, *fronts[:1])

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "protocols": ["h3", "h2", "http/1.1"],
                "dns_name": self.spec.options.get("dns_name")}

    def conf_path(self, ctx: LabContext) -> Path:
        return ctx.dir(self.name) / "caddy.json"

    def prepare(self, ctx: LabContext) -> None:
        access_log(ctx, self.name).parent.mkdir(parents=True, exist_ok=True)
        (ctx.dir(self.name) / "data").mkdir(exist_ok=True)
        self.conf_path(ctx).write_text(json.dumps(self.config(ctx), indent=2) + "\n")

    def command(self, ctx: LabContext) -> list[str]:
        return [caddy_binary(), "run", "--config", str(self.conf_path(ctx))]

    def env(self, ctx: LabContext) -> dict[str, str]:
        home = str(ctx.dir(self.name))
        return {"HOME": home, "XDG_DATA_HOME": f"{home}/data",
                "XDG_CONFIG_HOME": f"{home}/data"}

    def ready(self, ctx: LabContext) -> bool:
        """A TLS handshake with ALPN h2 on TCP (nothing is logged: no request is made)."""
        port = self.listen_port("caddy")
        context = ssl.create_default_context()
        context.check_hostname = False            # only "does it answer"
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        try:
            with socket.create_connection((self.address, port), timeout=0.5) as raw, \
                    context.wrap_socket(raw, server_hostname=self.pop_name()) as tls:
                return tls.selected_alpn_protocol() == "h2"
        except OSError:
            return False

    def pop_name(self) -> str:
        label = self.spec.options.get("dns_name")
        return f"{label}.{SITE.split('.', 1)[1]}" if label else SITE

    def config(self, ctx: LabContext) -> dict[str, Any]:
        pki = ensure_pki(ctx.pki)
        up_addr, up_port = self.topo.endpoint(self.upstream)
        logger = f"http.log.access.{self.name}"
        return {
            "admin": {"disabled": True, "config": {"persist": False}},
            "storage": {"module": "file_system", "root": str(ctx.dir(self.name) / "data")},
            "logging": {"logs": {
                "default": {"writer": {"output": "stderr"}, "encoder": {"format": "console"},
                            "level": "WARN", "exclude": [logger]},
                self.name: {"writer": {"output": "file", "roll": False,
                                       "filename": str(access_log(ctx, self.name))},
                            "encoder": {"format": "json"}, "include": [logger]},
            }},
            "apps": {
                "tls": {"certificates": {"load_files": [
                    {"certificate": str(pki.server.chain), "key": str(pki.server.key)}]}},
                "http": {"servers": {self.name: {
                    "listen": [f"{self.address}:{self.listen_port('caddy')}"],
                    "protocols": ["h1", "h2", "h3"],
                    # Our own certificate: no ACME, no HTTP → HTTPS listener of Caddy's.
                    "automatic_https": {"disable": True},
                    "tls_connection_policies": [{}],
                    "logs": {"default_logger_name": self.name},
                    "routes": [{"handle": self.handlers(f"{up_addr}:{up_port}",
                                                        self.upstream_tls(ctx))}],
                }}},
            },
        }

    def upstream_tls(self, ctx: LabContext) -> dict[str, Any] | None:
        """With mTLS (lab/mtls.py): TLS to the LB with this POP's certificate, the LB's
        checked against the lab CA and its tier name."""
        if not ctx.mtls:
            return None
        cert = tier_cert(ctx.pki, self.name, self.address)
        return {"client_certificate_file": str(cert.chain),
                "client_certificate_key_file": str(cert.key),
                "root_ca_pem_files": [str(cert.ca)], "server_name": self.upstream}

    def handlers(self, upstream: str, tls: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
        return [
            {"handler": "headers", "response": {"set": {
                "Strict-Transport-Security": [HSTS], "X-Served-By-Pop": [self.host]}}},
            # Compressed here, per client, like the nginx edge: the origin is asked for
            # identity (no Accept-Encoding upstream).
            {"handler": "encode", "encodings": {"gzip": {}, "zstd": {}},
             "prefer": ["zstd", "gzip"]},
            # Host, traceparent and tracestate pass unchanged, like every request header;
            # Caddy sets X-Forwarded-For/-Proto/-Host itself.
            {"handler": "reverse_proxy",
             "headers": {"request": {"delete": ["Accept-Encoding"]}},
             "transport": {"protocol": "http", "dial_timeout": DIAL_TIMEOUT,
                           "response_header_timeout": RESPONSE_HEADER_TIMEOUT,
                           "keep_alive": {"idle_timeout": UPSTREAM_IDLE},
                           **({"tls": tls} if tls is not None else {})},
             "upstreams": [{"dial": upstream}]},
        ]

    def trace_spans(self, ctx: LabContext, trace_id: str) -> list[ServerSpan]:
        """One span per access log line of the trace: [ts − duration, ts]."""
        out = []
        for item in json_lines(access_log(ctx, self.name), trace_id):
            end, took = seconds(item.get("ts")), seconds(item.get("duration"))
            request = item.get("request")
            if end is None or took is None or not isinstance(request, dict):
                continue
            traceparent = header(request.get("headers"), "traceparent")
            if trace_id not in traceparent:
                continue
            out.append(ServerSpan(self.span_kind, self.name, f"{self.name} ({self.role})",
                                  int((end - took) * 1e9), int(end * 1e9), traceparent,
                                  span_attrs(item, self.host, self.upstream)))
        return out
