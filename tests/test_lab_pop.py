"""The lab's second CDN POP (Debian's Caddy): HTTP/2 through the whole stack with its own
span in front of HAProxy's, HTTP/3 on UDP (aioquic's client), its name and HTTPS record in
the lab's DNS, UDP across the WAN link (QUIC handshake ≈ 1 RTT where TCP + TLS 1.3 ≈ 2), and
``lab down`` leaving nothing. One production lab with a 40 ms link serves the module.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from journey_helpers import check_universal, child, legs, options
from lab_helpers import bring_up, needs_lab
from whathappens.journey import Span
from whathappens.lab import lab, process
from whathappens.lab.client import apply, merge_inside
from whathappens.lab.client.timeline import wait_and_collect
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers.caddy import span_attrs, tls_words
from whathappens.lab.tiers.dns import add_pops, lab_pops
from whathappens.lab.tiers.wan import ask_drop
from whathappens.lab.topology import WanNames, topology
from whathappens.trace import run_journey

RTT = 40.0          # ms
POP = "pop2.example.com"
HERE = Path(__file__).resolve().parent

ROOT_AND_TUN = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="the WAN link needs root (network namespace) and /dev/net/tun",
)


# ------------------------------------------------------------------ pure
def test_the_pop_is_a_second_front_door_to_the_same_lb() -> None:
    topo = topology("production", 201)
    spec = topo.spec("pop-2")
    assert (spec.kind, spec.host, spec.options["upstream"]) == ("caddy-edge", "edge-2", "lb")
    assert topo.address("edge-2") == "127.201.90.2"
    assert lab_pops(topo) == [("pop2", "127.201.90.2", spec.port)]
    assert lab_pops(topology("single")) == []


def test_the_labs_www_advertises_only_what_its_front_speaks() -> None:
    """The demo's www HTTPS record says h3,h2 (hypercorn); the lab's front, nginx 1.22, has
    no QUIC: h2 only, so a journey to www in the lab does not try a closed UDP port first.
    The demo-only hosts (h3-down, retry) have no address in the lab, nor a record."""
    from whathappens.lab.tiers.dns import lab_servers, lab_zones

    topo = topology("production", 201)
    spec = next(s for s in topo.tiers if s.options.get("servers"))
    zones = lab_zones(lab_servers(topo, spec), "127.201.80.1")
    zone = zones["example.com.zone"]
    https = {str(name): [r.to_text() for r in node.get_rdataset(
        dns.rdataclass.IN, dns.rdatatype.HTTPS) or []] for name, node in zone.nodes.items()}
    https = {k: v for k, v in https.items() if v}
    assert https == {"www.example.com.": ['1 . alpn="h2"']}


def test_the_zone_gets_the_pops_address_and_https_record() -> None:
    zone = dns.zone.from_text("@ 3600 IN SOA ns1 h 1 2 3 4 5\n@ 3600 IN NS ns1\n",
                              origin="example.com.", relativize=False)
    zones = {"example.com.zone": zone}
    add_pops(zones, [("pop2", "127.0.90.2", 443), ("pop3", "127.0.90.3", 8443)])
    https = zone.find_rdataset("pop2.example.com.", "HTTPS")
    assert https.to_text().endswith('1 . alpn="h3,h2"')
    assert [r.address for r in zone.find_rdataset("pop2.example.com.", "A")] == ["127.0.90.2"]
    # Not on 443 (a lab run without root): the record says which port (RFC 9460 §7.2).
    assert 'port="8443"' in zone.find_rdataset("pop3.example.com.", "HTTPS").to_text()


def test_caddys_log_line_becomes_span_attributes() -> None:
    line = {"ts": 1.5, "duration": 0.0125, "size": 935, "status": 200,
            "request": {"proto": "HTTP/2.0", "uri": "/",
                        "tls": {"resumed": False, "version": 772, "cipher_suite": 4865,
                                "proto": "h2", "server_name": POP}},
            "resp_headers": {"X-Request-Id": ["7F000001:ABCD"]}}
    attrs = span_attrs(line, "edge-2", "lb")
    assert attrs["tls_version"] == "TLSv1.3"
    assert attrs["tls_cipher"] == "TLS_AES_128_GCM_SHA256"
    assert (attrs["alpn"], attrs["transport"], attrs["duration_ms"]) == ("h2", "TCP", 12.5)
    assert attrs["request_id"] == "7F000001:ABCD"
    # Caddy 2.6 logs zeros for an HTTP/3 request's TLS: no TLS details rather than wrong ones.
    assert tls_words({"resumed": False, "version": 0, "cipher_suite": 0, "proto": ""}) == {}


# ------------------------------------------------------------------ the lab, for real

@pytest.fixture(scope="module")
def pop_lab() -> Iterator[LabContext]:
    yield from bring_up("production", "whathappens-lab-pop-", wan={"rtt": f"{RTT:g}ms"})


def pop_endpoint(ctx: LabContext) -> tuple[str, int]:
    manifest = json.loads((ctx.state / "lab.json").read_text())
    pop = next(t for t in manifest["tiers"] if t["name"] == "pop-2")
    return str(pop["address"]), int(pop["port"])


def url(ctx: LabContext, path: str = "/") -> str:
    port = pop_endpoint(ctx)[1]
    return f"https://{POP}{'' if port == 443 else f':{port}'}{path}"


def chain(span: Span[Any]) -> list[Span[Any]]:
    out = []
    node = next((c for c in span.children if c.name.startswith("server.")), None)
    while node is not None:
        out.append(node)
        node = next((c for c in node.children if c.name.startswith("server.")), None)
    return out


def traceparent(n: int) -> str:
    return f"00-{os.urandom(12).hex()}{n:08x}-{os.urandom(8).hex()}-01"


@needs_lab
@ROOT_AND_TUN
def test_status_lists_the_pop_healthy(pop_lab: LabContext) -> None:
    rows = {r.name: r for r in lab.status(pop_lab)}
    assert rows["pop-2"].healthy
    assert rows["edge"].healthy
    assert rows["pop-2"].address == pop_endpoint(pop_lab)[0]


@needs_lab
@ROOT_AND_TUN
def test_an_h2_journey_goes_pop_then_haproxy_then_the_app(pop_lab: LabContext) -> None:
    opts = options("--dns-views", "system", "--http3=off")
    apply(opts, pop_lab.state)
    j = asyncio.run(run_journey(url(pop_lab), opts))
    merge_inside(j, pop_lab.state)
    assert j.error is None, j.error and j.error.to_dict()
    check_universal(j)
    http = child(legs(j)[0], "http")
    assert http.attrs["status"] == 200
    assert http.attrs["protocol"] == "HTTP/2"
    hops = chain(http)
    assert [s.name for s in hops][:4] == ["server.pop", "server.lb", "server.app",
                                         "server.django"]
    pop, lb = hops[0], hops[1]
    assert pop.attrs["protocol"] == "HTTP/2.0"
    assert pop.attrs["alpn"] == "h2"
    assert pop.attrs["tls_version"] == "TLSv1.3"
    assert pop.attrs["transport"] == "TCP"
    assert pop.attrs["request_id"] == lb.attrs["request_id"]     # HAProxy's id, sent back
    # HAProxy names the hop in by the address Caddy connects from (127.0.0.1).
    hops_in = [h.hop for h in lb.facts.connections]
    assert "pop-2 → lb" in hops_in, hops_in
    assert pop.start_ns <= lb.start_ns
    assert lb.end_ns is not None
    assert pop.end_ns is not None
    assert lb.end_ns <= pop.end_ns


@needs_lab
@ROOT_AND_TUN
def test_by_default_the_https_record_sends_the_journey_over_http3_to_the_app(
        pop_lab: LabContext) -> None:
    """No flag: the lab's HTTPS record for the POP advertises h3, QUIC races TCP and wins,
    and the POP's span says HTTP/3 over QUIC, in front of HAProxy, the app and Django."""
    opts = options("--dns-views", "system")
    apply(opts, pop_lab.state)
    j = asyncio.run(run_journey(url(pop_lab, "/?via=auto"), opts))
    merge_inside(j, pop_lab.state)
    assert j.error is None, j.error and j.error.to_dict()
    leg = legs(j)[0]
    quic = child(leg, "quic")
    assert quic.attrs["race"] == "won"
    assert quic.attrs["advertised_by"].startswith("the HTTPS record advertises it")
    http = child(leg, "http")
    assert http.attrs["http_version"] == "HTTP/3"
    hops = chain(http)
    assert [s.name for s in hops][:4] == ["server.pop", "server.lb", "server.app",
                                         "server.django"]
    assert hops[0].attrs["protocol"] == "HTTP/3.0"


@needs_lab
@ROOT_AND_TUN
def test_http3_on_udp_and_its_spans_reach_the_app(pop_lab: LabContext) -> None:
    from h3_get import h3_get

    address, port = pop_endpoint(pop_lab)
    tp = traceparent(3)
    # A URL of its own: the app node's 1 s micro-cache must not answer for Django.
    result = asyncio.run(h3_get(address, port, POP, str(pop_lab.pki / "ca.pem"), tp,
                                path="/?via=h3"))
    assert (result.status, result.alpn) == (200, "h3")
    assert result.headers["x-served-by-pop"] == "edge-2"
    assert result.body_bytes > 0
    spans = wait_and_collect(pop_lab.state, tp.split("-")[1], {"edge", "lb", "app", "django"},
                             frozenset({tp}))
    [pop] = [s for s in spans if s.kind == "pop"]
    assert pop.attrs["protocol"] == "HTTP/3.0"
    assert pop.attrs["transport"] == "QUIC (UDP)"
    assert {s.kind for s in spans} >= {"pop", "lb", "app", "django"}


@needs_lab
@ROOT_AND_TUN
def test_the_lab_dns_serves_the_pops_https_record(pop_lab: LabContext) -> None:
    manifest = json.loads((pop_lab.state / "lab.json").read_text())
    resolver = next(t for t in manifest["tiers"] if t["name"] == "resolver")
    answers = {}
    for qtype in ("A", "HTTPS"):
        reply = dns.query.udp(dns.message.make_query(POP, qtype), resolver["address"],
                              port=resolver["port"], timeout=2)
        answers[qtype] = [r.to_text() for rrset in reply.answer for r in rrset]
    assert answers["A"] == [pop_endpoint(pop_lab)[0]]
    port = pop_endpoint(pop_lab)[1]
    assert answers["HTTPS"] == ['1 . alpn="h3,h2"' + ("" if port == 443 else f' port="{port}"')]


def _in_namespace(ctx: LabContext, *argv: str) -> str:
    ns = WanNames(ctx.subnet).namespace
    done = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _span(journey: dict[str, Any], name: str) -> dict[str, Any]:
    stack = list(journey["spans"])
    while stack:
        span = stack.pop(0)
        if span["name"] == name:
            return span
        stack += span.get("children", [])
    raise KeyError(name)


def _journey(ctx: LabContext, path: str, *args: str) -> dict[str, Any]:
    """Our tracer inside the client namespace, through the WAN link: its JSON."""
    out: dict[str, Any] = json.loads(_in_namespace(
        ctx, sys.executable, "-m", "whathappens", url(ctx, path), "--lab", str(ctx.state),
        "--json", *args))
    assert out["error"] is None, out["error"]
    return out


def _spans(journey: dict[str, Any], name: str) -> list[dict[str, Any]]:
    out, stack = [], list(journey["spans"])
    while stack:
        span = stack.pop(0)
        if span["name"] == name:
            out.append(span)
        stack += span.get("children", [])
    return out


def _quic_times(journey: dict[str, Any], leg: int = 0) -> dict[str, float]:
    """One leg's QUIC figures in ms from its first Initial: the server's first datagram, the
    last datagram of its handshake flight, the handshake (→ our Finished), the first
    response byte, and that minus Caddy's own time for the request (the wire's share)."""
    quic, http = _spans(journey, "quic")[leg], _spans(journey, "http")[leg]
    a, t0 = quic["attrs"], quic["start_ms"]
    flight = [f for f in quic["children"] if f["attrs"]["flight"] == "server_handshake"]
    [pop] = [c for c in http.get("children", []) if c["name"] == "server.pop"]
    ttfb = http["attrs"]["t_first_byte_ns"] / 1e6 - t0
    return {"first_reply": a["server_first_ms"] - t0, "flight": flight[-1]["end_ms"] - t0,
            "handshake": quic["duration_ms"], "ttfb": ttfb,
            "ttfb_less_pop": ttfb - pop["duration_ms"],
            "in_order": [f["start_ms"] for f in quic["children"]] == sorted(
                f["start_ms"] for f in quic["children"]),
            "min_rtt": a["path_after_handshake"]["min_rtt_ms"]}


def _r(values: list[float]) -> list[float]:
    return [round(v, 1) for v in values]


@needs_lab
@ROOT_AND_TUN
def test_through_the_wan_quic_takes_one_round_trip_where_tcp_and_tls_take_two(
        pop_lab: LabContext) -> None:
    address, port = pop_endpoint(pop_lab)
    ref = [json.loads(_in_namespace(
        pop_lab, sys.executable, str(HERE / "h3_get.py"), address, str(port), POP,
        str(pop_lab.pki / "ca.pem"), traceparent(n))) for n in range(3)]
    # Our tracer, forced onto QUIC (--http3), each run a URL of its own (no micro-cache).
    ours = [_quic_times(_journey(pop_lab, f"/?wan-h3={n}", "--http3")) for n in range(3)]
    tcp = _journey(pop_lab, "/?wan-tcp=1", "--http3=off")
    assert not _spans(tcp, "quic")
    connect, tls = (_span(tcp, n)["duration_ms"] for n in ("tcp.connect", "tls"))
    print(f"\nRTT {RTT:g} ms, ms from the first Initial:"
          f"\n  QUIC, our tracer: first reply {_r([q['first_reply'] for q in ours])}, server "
          f"flight {_r([q['flight'] for q in ours])}, handshake (→ our Finished) "
          f"{_r([q['handshake'] for q in ours])}, TTFB {_r([q['ttfb'] for q in ours])} "
          f"(less Caddy's own time {_r([q['ttfb_less_pop'] for q in ours])}), QUIC's min RTT "
          f"{_r([q['min_rtt'] for q in ours])}"
          f"\n  QUIC, aioquic's client (reference): first reply "
          f"{[q['first_reply_ms'] for q in ref]}, server flight {[q['flight_ms'] for q in ref]}"
          f", handshake (→ HandshakeCompleted, ClientHello built inside) "
          f"{[q['handshake_ms'] for q in ref]}, TTFB {[q['ttfb_ms'] for q in ref]}"
          f"\n  TCP connect {connect:.1f} + TLS 1.3 {tls:.1f} = {connect + tls:.1f} ms "
          "(our tracer, --http3=off)")
    # The datagrams crossed the delay line: the server's first packet after one round trip,
    # by our clock as by aioquic's own client…
    # (Upper bounds here say how many round trips, not how fast the machine is: under 1.5
    # RTT is one, under 2.5 two; a loaded machine adds its own time on top.)
    assert RTT - 2 <= min(q["first_reply"] for q in ours) < 1.5 * RTT
    assert RTT - 2 <= min(q["first_reply_ms"] for q in ref) < 1.5 * RTT
    # …and its whole handshake flight in that same round trip (RFC 9001: one flight each
    # way sets up QUIC and TLS 1.3 together; our crypto after it is not the wire's).
    for q in ours:
        assert q["handshake"] >= RTT - 2
        assert q["flight"] - q["first_reply"] < RTT / 2
        # Each datagram is timed when it arrived (the kernel's stamp), not when our loop,
        # busy with the one before, read it: the flights are in the order they crossed the
        # wire, and QUIC's own RTT sample is that round trip, not it plus our queue.
        assert q["in_order"]
        assert -1.5 <= q["min_rtt"] - q["first_reply"] <= 3.0
    for r in ref:
        assert r["handshake_ms"] >= RTT - 2
        assert r["flight_ms"] - r["first_reply_ms"] < RTT / 2, r["packets"]
    # One round trip plus the client's crypto, where TCP + TLS 1.3 take two one after the
    # other (SYN/SYN-ACK, then TLS's), each at least a round trip.
    assert connect >= RTT - 2
    assert tls >= RTT - 2
    assert min(q["handshake"] for q in ours) < 1.5 * RTT
    assert min(q["handshake"] for q in ours) < connect + tls
    # The request after the handshake: the first byte two round trips (and Caddy's own
    # time) after the first Initial.
    assert 2 * RTT - 2 <= min(q["ttfb_less_pop"] for q in ours) < 2.5 * RTT
    # Caddy saw the client namespace's address: the UDP came over the link, not loopback.
    log = (pop_lab.state / "logs" / "pop-2.access.jsonl").read_text().splitlines()
    h3 = [json.loads(x) for x in log if '"HTTP/3.0"' in x]
    assert h3
    assert h3[-1]["request"]["remote_ip"] == WanNames(pop_lab.subnet).client_address


@needs_lab
@ROOT_AND_TUN
def test_through_the_wan_0rtt_brings_the_first_byte_one_round_trip_after_the_start(
        pop_lab: LabContext) -> None:
    """--resume: a second connection offering Caddy's session ticket, the request in 0-RTT
    packets in the first flight (RFC 9001 §4.6); its first byte one round trip after its
    first Initial (plus Caddy's own time), where the first connection's took two."""
    j = _journey(pop_lab, "/?wan-0rtt=1", "--http3", "--resume")
    first, second = (q["attrs"] for q in _spans(j, "quic"))
    full, resumed = _quic_times(j, 0), _quic_times(j, 1)
    print(f"\nRTT {RTT:g} ms: first connection TTFB {full['ttfb']:.1f} ms from its first "
          f"Initial ({full['ttfb_less_pop']:.1f} less Caddy's own time), handshake "
          f"{full['handshake']:.1f}; resumed: session_resumed {second['session_resumed']}, "
          f"early data {second['early_data']}, TTFB {resumed['ttfb']:.1f} ms "
          f"({resumed['ttfb_less_pop']:.1f} less Caddy's), handshake "
          f"{resumed['handshake']:.1f}")
    assert first["session_offered"] is False
    assert second["session_offered"] is True
    assert second["session_resumed"] is True
    assert second["early_data"] == "accepted"
    # The request left in the first flight, before the handshake was done…
    quic, http = _spans(j, "quic")[1], _spans(j, "http")[1]
    assert http["start_ms"] < quic["end_ms"]
    sent = [p for p in second["packets"] if p["direction"] == "sent"]
    assert "0RTT" in {p["space"] for p in sent if p["t_ms"] - quic["start_ms"] < RTT / 2}
    # …so its answer came one round trip after the first Initial, the first connection's
    # two (Caddy's own time for each request taken out).
    assert RTT - 2 <= resumed["ttfb_less_pop"] < 1.5 * RTT      # one round trip …
    assert 2 * RTT - 2 <= full["ttfb_less_pop"] < 2.5 * RTT     # … where it took two


@needs_lab
@ROOT_AND_TUN
def test_through_the_wan_a_lost_initial_is_sent_again_at_the_probe_timeout(
        pop_lab: LabContext) -> None:
    """lab wan --drop-udp 443: the link drops our next datagram to UDP 443, the QUIC
    Initial; aioquic's probe timeout (2 × its initial RTT of 100 ms, no sample yet) sends it
    again, and the handshake takes that PTO plus one round trip."""
    ask_drop(pop_lab, 443, 1)
    j = _journey(pop_lab, "/?wan-pto=1", "--http3")
    [quic] = _spans(j, "quic")
    a = quic["attrs"]
    [probe] = a["probe_timeouts"]
    print(f"\nRTT {RTT:g} ms, the first Initial dropped: probe timeout {probe}; handshake "
          f"{quic['duration_ms']:.1f} ms; path after it {a['path_after_handshake']}")
    assert probe["resent"] == ["initial 0"]
    assert probe["pto_ms"] == 200.0
    assert 198 <= probe["waited_ms"] < 300      # a timer, late on a busy machine (not 400)
    flights = [f["attrs"]["flight"] for f in quic["children"]]
    assert flights[:3] == ["client_initial", "probe", "server_handshake"]
    initials = [p for p in a["packets"] if p["direction"] == "sent" and p["space"] == "initial"]
    assert [p["number"] for p in initials[:2]] == [0, 1]
    assert initials[1]["t_ms"] - initials[0]["t_ms"] >= 198
    # The server's first answer: one round trip after the probe, not after the first Initial.
    reply = a["server_first_ms"] - initials[1]["t_ms"]
    assert RTT - 2 <= reply < 1.5 * RTT
    path = a["path_after_handshake"]
    assert (path["pto_count"], path["packets_lost"]) == (1, 1)
    # QUIC's RTT comes from the probe's acknowledgement: the link's, not the wait.
    assert RTT - 2 <= path["min_rtt_ms"] < 1.5 * RTT
    assert 200 + RTT - 2 <= quic["duration_ms"] < 200 + 2.5 * RTT
    log = pop_lab.log("wan").read_text()
    assert "dropped a UDP datagram to port 443 as asked" in log


@needs_lab
@ROOT_AND_TUN
def test_down_leaves_no_caddy_no_socket_no_namespace(pop_lab: LabContext) -> None:
    address, port = pop_endpoint(pop_lab)
    recs = process.records(pop_lab)
    assert "pop-2" in {r.tier for r in recs}
    lab.down(pop_lab)
    time.sleep(0.2)
    for rec in recs:
        assert not process.alive(rec.pid), rec.tier
    sockets = subprocess.run(["ss", "-Htuln", "src", address], capture_output=True,
                             text=True, check=True).stdout
    assert f"{address}:{port}" not in sockets           # neither TCP nor UDP
    assert not Path("/run/netns", WanNames(pop_lab.subnet).namespace).exists()
    assert process.records(pop_lab) == []
