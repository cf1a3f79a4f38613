"""``lab experiment mtls``: what encrypting the hops between tiers costs per request.

The same bounded load (N GETs through the edge, C at a time, each to a URL of its own so no
cache answers) under four settings of the running lab: plain HTTP between the tiers or mTLS
(``lab up --mtls``: lab/mtls.py), each with connection reuse to the upstreams on (the edge's
``keepalive`` to HAProxy, HAProxy's server connection reuse) and off (a connection, and so a
handshake, per request and hop). Between settings the edge, the POP, HAProxy and the app
nodes' nginx are restarted with their configurations rewritten (``ctx.mtls``,
``ctx.upstream_reuse``); the lab is put back as it was in a ``finally``.

Load client: the project's Python client (``load.py``: threads, ``http.client``), because
the question is per request (its latency, and each request's own lines in three logs), not
throughput; the table's req/s is that client's, on the same 2 cores as the lab.

Per hop, from the tiers' own logs, joined by HAProxy's request id (the edge logs the id the
LB sent back, the app node's nginx the X-Request-ID it received):

    edge → LB   new connections: requests that were the first on their edge → LB
                connection (HAProxy's %ci:%cp, first seen in this run);
                connect: the edge's $upstream_connect_time on those (TCP connect plus, with
                mTLS, the whole TLS handshake: nginx counts the handshake as connecting),
                and its mean over every request (what a request pays on average);
                HAProxy's Th on those: its handshake time for the connection (ms, whole)
    LB → app    new connections: app nginx's $connection_requests = 1;
                connect+TLS: HAProxy's Tr − the app node's $request_time on those (HAProxy
                starts Tr when the TCP connect is done; nginx's clock starts at the request's
                first byte, after the handshake); whole ms minus ms-resolution seconds, so a
                mean over many requests, not a per-request figure.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from whathappens.lab.logs import json_lines, logged, seconds, settled
from whathappens.lab.running import Lab
from whathappens.lab.tiers.nginx import access_log, last_timer

LOG_WINDOW = 16 * 1024 * 1024      # the run's lines are the logs' last; room for N = 5000


@dataclass(frozen=True)
class MtlsSetting:
    name: str
    mtls: bool
    reuse: bool


SETTINGS = (
    MtlsSetting("plain, reuse", mtls=False, reuse=True),
    MtlsSetting("mTLS, reuse", mtls=True, reuse=True),
    MtlsSetting("plain, no reuse", mtls=False, reuse=False),
    MtlsSetting("mTLS, no reuse", mtls=True, reuse=False),
)
# Restarted for each setting, in this order: the app nodes first (HAProxy checks them),
# then HAProxy, then the fronts that connect to it.
FRONT_KINDS = ("nginx-app", "haproxy", "nginx-edge", "caddy-edge")


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def hop_facts(lab: Lab, label: str, before: str = "", sent: int | None = None
              ) -> dict[str, Any]:
    """The run's requests in the edge, HAProxy and app nginx logs (``label`` is in every
    URL of the run), per hop: new connections and what connecting cost (ms). ``before``:
    the warm-up's label, whose edge → LB connections the run found open (not new).
    ``sent``: how many requests the run made, the lines each log is waited for (logs.settled:
    a tier logs a request as it ends there, a moment after the client has its response)."""
    ctx = lab.ctx
    edge = {str(i.get("request_id")): i
            for i in logged(access_log(ctx, "edge"), label, sent, LOG_WINDOW)
            if i.get("request_id")}
    lb_lines = logged(ctx.log(lab.haproxy().name), label, sent, LOG_WINDOW)

    def app_lines() -> list[dict[str, Any]]:
        return [i for tier in lab.haproxy().backends
                for i in json_lines(access_log(ctx, tier), label, LOG_WINDOW)]

    apps = {str(i.get("request_id")): i for i in settled(app_lines, sent)}
    seen: set[tuple[object, object]] = set()
    if before:
        seen = {(i.get("client"), i.get("client_port"))
                for i in json_lines(ctx.log(lab.haproxy().name), before, LOG_WINDOW)}
    opened = resumed_in = resumed_out = 0
    connect_all, connect_new, th_new, lb_app_new, lb_app_all = [], [], [], [], []
    for line in sorted(lb_lines, key=lambda x: float(x.get("accept_time") or 0)):
        rid = str(line.get("request_id"))
        key = (line.get("client"), line.get("client_port"))
        new_in = key not in seen
        seen.add(key)
        opened += new_in
        resumed_in += new_in and line.get("tls_resumed") == 1
        up = edge.get(rid)
        connect = last_timer(up.get("upstream_connect_time")) if up else None
        if connect is not None:
            connect_all.append(connect * 1000)
            if new_in:
                connect_new.append(connect * 1000)
        if new_in and isinstance(line.get("Th"), int):
            th_new.append(float(line["Th"]))
        app = apps.get(rid)
        took, tr = (seconds(app.get("request_time")) if app else None), line.get("Tr")
        if took is not None and isinstance(tr, int) and tr >= 0 and app is not None:
            gap = tr - took * 1000
            lb_app_all.append(gap)
            if str(app.get("connection_requests")) == "1":
                lb_app_new.append(gap)
                resumed_out += app.get("ssl_session_reused") == "r"
    return {
        "logged": {"edge": len(edge), "lb": len(lb_lines), "app": len(apps)},
        "edge_lb_new": opened, "edge_lb_connect_new_ms": _mean(connect_new),
        "edge_lb_connect_mean_ms": _mean(connect_all), "lb_handshake_new_ms": _mean(th_new),
        "lb_app_new": len(lb_app_new), "lb_app_gap_new_ms": _mean(lb_app_new),
        "lb_app_gap_mean_ms": _mean(lb_app_all),
        # TLS sessions resumed on the new connections (RFC 8446 §2.2: no certificates are
        # sent or verified then): HAProxy's ssl_fc_is_resumed, nginx's $ssl_session_reused
        "edge_lb_resumed": resumed_in, "lb_app_resumed": resumed_out,
    }
