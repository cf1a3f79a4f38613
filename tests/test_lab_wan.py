"""The lab's WAN link (``lab up --rtt``): the delay line's rules, then the tracer held to
ground truth through a real 40 ms link: TCP connect ≈ 1 RTT, TLS 1.3 ≈ 1 RTT (+ crypto),
TTFB ≈ 1 RTT + the server's own time, each DNS hop ≈ 1 RTT, and curl in the same namespace
agreeing on connect. Down leaves no namespace and no TUN device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab_helpers import bring_up, needs_lab
from whathappens.lab import lab, manifest
from whathappens.lab.client import outside_note
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers.wan import (
    TO_CLIENT,
    TO_LAB,
    DelayLine,
    parse_drop_udp,
    parse_duration,
    parse_loss,
    udp_destination,
)
from whathappens.lab.topology import WanNames, add_wan, topology

RTT = 40.0       # ms
# A step's time is its round trips times RTT plus what the machine itself spends (crypto,
# the delay line's own scheduling, the server): never less than RTT - 2 (the delay line's
# timer), and on a loaded machine tens of ms more. The bounds say how many round trips a
# step took: at least one, and under 1.5 (one, not two). Where a step's round trips can be
# counted from its own timeline (TLS), they are.
ONE_TRIP = (RTT - 2, 1.5 * RTT)

ROOT_AND_TUN = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="the WAN link needs root (network namespace) and /dev/net/tun",
)


def round_trips(tls: dict[str, Any]) -> list[float]:
    """The TLS handshake's round trips up to the server's Finished, counted from its own
    messages: each the wait (ms) from the client's last message to the first of the server's
    flight that answers it, which the delay line makes at least a round trip."""
    waits: list[float] = []
    last_sent: float | None = None
    for m in tls["attrs"]["messages"]:
        if m["direction"] == "sent":
            last_sent = m["t_ms"]
            continue
        if last_sent is not None:
            waits.append(m["t_ms"] - last_sent)
            last_sent = None
        if m["type"] == "finished":
            break
    assert all(w >= RTT - 2 for w in waits), waits
    return waits


# ------------------------------------------------------------ the delay line, pure
def test_parsing() -> None:
    assert parse_duration("40ms") == pytest.approx(0.040)
    assert parse_duration("0.04s") == pytest.approx(0.040)
    assert parse_duration("40") == pytest.approx(0.040)
    assert parse_loss("0.5%") == pytest.approx(0.005)
    assert parse_loss("0.01") == pytest.approx(0.01)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("fast")
    with pytest.raises(ValueError, match="between 0 and 100%"):
        parse_loss("100%")


def test_exact_delay_without_jitter() -> None:
    line = DelayLine(0.040)
    assert line.push(TO_LAB, b"syn", 1.0) == pytest.approx(1.020)
    assert line.next_deadline() == pytest.approx(1.020)
    assert line.due(1.0199) == []
    assert line.due(1.020) == [(TO_LAB, b"syn")]
    assert line.next_deadline() is None


pushes = st.lists(st.tuples(st.sampled_from([TO_LAB, TO_CLIENT]),
                            st.floats(0, 0.05, allow_nan=False)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(pushes, st.floats(0, 0.2), st.floats(0, 0.03), st.integers(0, 2**32))
def test_order_and_delay_bounds(steps: list[tuple[int, float]], rtt: float, jitter: float,
                                seed: int) -> None:
    """Per direction: released in push order, never before now + rtt/2 - jitter (nor
    before it was pushed), and (order aside) never later than rtt/2 + jitter after."""
    line = DelayLine(rtt, jitter, seed=seed)
    now = 0.0
    sent: dict[int, list[tuple[bytes, float, float]]] = {TO_LAB: [], TO_CLIENT: []}
    for i, (direction, gap) in enumerate(steps):
        now += gap
        packet = str(i).encode()
        release = line.push(direction, packet, now)
        assert release is not None
        assert release >= now + max(0.0, rtt / 2 - jitter) - 1e-12
        sent[direction].append((packet, now, release))
    got: dict[int, list[bytes]] = {TO_LAB: [], TO_CLIENT: []}
    t = 0.0
    while (deadline := line.next_deadline()) is not None:
        assert deadline >= t
        t = deadline
        for direction, packet in line.due(t):
            got[direction].append(packet)
            pushed_at, release = next((n, r) for p, n, r in sent[direction] if p == packet)
            assert t == pytest.approx(release)
            assert t >= pushed_at
    for direction in (TO_LAB, TO_CLIENT):
        assert got[direction] == [p for p, _, _ in sent[direction]]
        releases = [r for _, _, r in sent[direction]]
        assert releases == sorted(releases)
        # the latest any packet waits: its own worst delay, or queued behind an earlier one
        for k, (_, pushed, release) in enumerate(sent[direction]):
            bound = max([pushed + rtt / 2 + jitter]
                        + [p + rtt / 2 + jitter for _, p, _ in sent[direction][:k]])
            assert release <= bound + 1e-9


def test_loss_is_seeded_and_about_right() -> None:
    def run(seed: int) -> list[float | None]:
        line = DelayLine(0.01, loss=0.2, seed=seed)
        return [line.push(TO_LAB, b"x", i * 0.001) for i in range(2000)]

    first = run(7)
    assert first == run(7)
    lost = sum(r is None for r in first)
    assert 300 < lost < 500


def ipv4(protocol: int, dport: int, *, fragment: int = 0) -> bytes:
    """An IPv4 packet (20-octet header) carrying a UDP or TCP header to ``dport``."""
    header = bytes([0x45, 0, 0, 48, 0, 1]) + fragment.to_bytes(2, "big") + \
        bytes([64, protocol, 0, 0]) + bytes([100, 127, 0, 2]) + bytes([127, 0, 90, 2])
    return header + (50000).to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(24)


def test_the_udp_destination_port_is_read_from_the_ip_packet() -> None:
    assert udp_destination(ipv4(17, 443)) == 443
    assert udp_destination(ipv4(17, 53)) == 53
    assert udp_destination(ipv4(6, 443)) is None            # TCP
    assert udp_destination(ipv4(17, 443, fragment=100)) is None   # no UDP header in it
    v6 = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(32) + (1).to_bytes(2, "big") + \
        (443).to_bytes(2, "big") + bytes(4)
    assert udp_destination(v6) == 443
    assert udp_destination(b"") is None
    assert udp_destination(ipv4(17, 443)[:22]) is None


def test_parse_drop_udp() -> None:
    assert parse_drop_udp("443") == (443, 1)
    assert parse_drop_udp("443:3") == (443, 3)
    for bad in ("0", "70000", "443:0", "x", "443:"):
        with pytest.raises(ValueError, match="PORT"):
            parse_drop_udp(bad)


def test_drop_udp_drops_exactly_the_next_datagrams_to_that_port() -> None:
    line = DelayLine(0.040, loss=0.0)
    assert line.push(TO_LAB, ipv4(17, 443), 0.0) is not None     # not asked yet
    line.drop_udp(443, 2)
    assert line.push(TO_LAB, ipv4(17, 53), 0.1) is not None      # DNS passes
    assert line.push(TO_LAB, ipv4(6, 443), 0.1) is not None      # TCP to 443 passes
    assert line.push(TO_CLIENT, ipv4(17, 443), 0.1) is not None  # only client → lab
    assert line.push(TO_LAB, ipv4(17, 443), 0.2) is None
    assert line.push(TO_LAB, ipv4(17, 443), 0.3) is None
    assert line.push(TO_LAB, ipv4(17, 443), 0.4) is not None     # two asked, two dropped
    assert (line.dropped_on_request, line.dropped) == (2, [0, 0])


def test_the_relay_is_told_what_to_drop_and_where_requests_come(tmp_path: Path) -> None:
    from whathappens.lab.tiers.wan import WanLink, control_file

    topo = add_wan(topology("single", 201), 201, {"rtt": "40ms", "drop_udp": "443:1"})
    ctx = LabContext(state=tmp_path)
    argv = WanLink(topo, topo.tiers[-1]).command(ctx)
    assert argv[argv.index("--drop-udp") + 1] == "443:1"
    assert argv[argv.index("--control") + 1] == str(control_file(ctx))


def test_the_wan_tier_is_last_and_on_the_client_host() -> None:
    topo = add_wan(topology("single", 201), 201, {"rtt": "40ms"})
    assert topo.tiers[-1].kind == "wan"
    assert topo.address("client") == "100.127.201.2"
    names = WanNames(201)
    assert (names.namespace, names.lab_tun, names.client_tun) == \
        ("wh-client-201", "whl201", "whc201")
    assert WanNames(0).namespace == "wh-client"


# ------------------------------------------------------------ for real, as root
@pytest.fixture(scope="module")
def wan_lab() -> Iterator[LabContext]:
    yield from bring_up("single", "whathappens-lab-wan-", wan={"rtt": f"{RTT:g}ms"})


def spans(journey: dict[str, Any], name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(span: dict[str, Any]) -> None:
        if span["name"] == name:
            out.append(span)
        for child in span.get("children", []):
            walk(child)

    for top in journey["spans"]:
        walk(top)
    return out


def curl_times(ns: str, ctx: LabContext, front: str) -> dict[str, float]:
    fmt = '{"connect": %{time_connect}, "tls": %{time_appconnect}, ' \
          '"ttfb": %{time_starttransfer}}'
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "--max-time", "10",
         "--cacert", str(ctx.pki / "ca.pem"), "--resolve", f"www.example.com:443:{front}",
         "-w", fmt, "https://www.example.com/"],
        capture_output=True, text=True, timeout=20, check=True)
    return {k: v * 1000 for k, v in json.loads(done.stdout).items()}


@needs_lab
@ROOT_AND_TUN
def test_the_journey_through_a_40ms_link(wan_lab: LabContext) -> None:
    ns = WanNames(wan_lab.subnet).namespace
    journey_out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "whathappens",
         "https://www.example.com/", "--lab", str(wan_lab.state), "--json"],
        capture_output=True, text=True, timeout=60, check=False)
    journey = json.loads(journey_out.stdout)
    assert journey["error"] is None, journey_out.stderr

    connect = spans(journey, "tcp.connect")[0]
    front = connect["attrs"]["address"]
    assert front.startswith(f"127.{wan_lab.subnet}.")
    tls = spans(journey, "tls")[0]
    wait = spans(journey, "http.wait")[0]
    edge = spans(journey, "server.edge")[0]
    hops = spans(journey, "dns.hop")
    queries = spans(journey, "dns.query")
    print(f"\nRTT {RTT:g} ms: connect {connect['duration_ms']:.1f}, TLS "
          f"{tls['duration_ms']:.1f} ({tls['attrs'].get('version')}), TTFB "
          f"{wait['duration_ms']:.1f} (edge {edge['duration_ms']:.1f}), DNS hops "
          f"{[round(h['duration_ms'], 1) for h in hops]}, resolver queries "
          f"{[round(q['duration_ms'], 1) for q in queries]}")

    # TCP: SYN → SYN-ACK is one round trip.
    assert ONE_TRIP[0] <= connect["duration_ms"] < ONE_TRIP[1]
    # TLS 1.3: ClientHello → server Finished is one round trip, plus the crypto (on a busy
    # machine the span took 94 ms in CI): counted from the handshake's own messages.
    assert tls["attrs"].get("version") == "TLSv1.3"
    assert len(round_trips(tls)) == 1
    assert tls["duration_ms"] >= RTT - 2
    # TTFB: one round trip plus what the server itself took (its own log says).
    assert ONE_TRIP[0] <= wait["duration_ms"] - edge["duration_ms"] < ONE_TRIP[1]
    # DNS: every walk hop is one round trip to that server (plus the server's answer).
    assert len(hops) >= 3
    for hop in hops:
        assert ONE_TRIP[0] <= hop["duration_ms"] < ONE_TRIP[1], hop["attrs"]
    # The resolver view: one round trip to Unbound; its walk runs on loopback behind it.
    for query in queries:
        assert query["duration_ms"] >= RTT - 2

    # curl, in the same namespace, agrees on connect.
    best = min((curl_times(ns, wan_lab, front) for _ in range(3)),
               key=lambda t: t["connect"])
    print(f"curl: connect {best['connect']:.1f}, TLS done {best['tls']:.1f}, "
          f"TTFB {best['ttfb']:.1f} ms (since start)")
    assert ONE_TRIP[0] <= best["connect"] < ONE_TRIP[1]
    # the same one round trip, give or take the machine's scheduling
    assert abs(connect["duration_ms"] - best["connect"]) <= RTT / 4


@needs_lab
@ROOT_AND_TUN
def test_outside_the_namespace_the_journey_says_how_to_go_through(
        wan_lab: LabContext) -> None:
    recorded = manifest.read(wan_lab.state)
    assert recorded is not None
    note = outside_note(recorded, wan_lab.state)
    assert note is not None
    assert f"ip netns exec {WanNames(wan_lab.subnet).namespace}" in note


@needs_lab
@ROOT_AND_TUN
def test_tls_1_2_takes_two_round_trips(wan_lab: LabContext) -> None:
    """TLS 1.2 (RFC 5246): ClientHello → ServerHelloDone, then ClientKeyExchange/Finished →
    the server's Finished: two round trips before the request can go, where 1.3 needs one."""
    ns = WanNames(wan_lab.subnet).namespace
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "whathappens",
         "https://www.example.com/", "--lab", str(wan_lab.state), "--json", "--tls-max", "1.2",
         "--dns-views", "resolver"],
        capture_output=True, text=True, timeout=60, check=False)
    journey = json.loads(out.stdout)
    assert journey["error"] is None, out.stderr
    tls = spans(journey, "tls")[0]
    assert tls["attrs"]["version"] == "TLSv1.2"
    print(f"\nTLS 1.2 through a {RTT:g} ms link: {tls['duration_ms']:.1f} ms")
    assert len(round_trips(tls)) == 2
    assert tls["duration_ms"] >= 2 * RTT - 2


@needs_lab
@ROOT_AND_TUN
def test_a_resumed_tls_1_2_handshake_takes_one_round_trip(wan_lab: LabContext) -> None:
    """Resumption (RFC 5246 §7.3): ClientHello with the session → ServerHello,
    ChangeCipherSpec, Finished; our Finished goes with the request: one round trip, not two."""
    ns = WanNames(wan_lab.subnet).namespace
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "whathappens",
         "https://www.example.com/", "--lab", str(wan_lab.state), "--json", "--tls-max", "1.2",
         "--resume", "--dns-views", "resolver"],
        capture_output=True, text=True, timeout=60, check=False)
    journey = json.loads(out.stdout)
    assert journey["error"] is None, out.stderr
    full, resumed = spans(journey, "tls")[:2]
    assert resumed["attrs"]["session_reused"] is True
    print(f"\nTLS 1.2 full {full['duration_ms']:.1f} ms, resumed {resumed['duration_ms']:.1f} ms")
    assert (len(round_trips(full)), len(round_trips(resumed))) == (2, 1)
    assert full["duration_ms"] >= 2 * RTT - 2
    assert resumed["duration_ms"] >= RTT - 2


@needs_lab
@ROOT_AND_TUN
def test_status_then_down_leaves_nothing(wan_lab: LabContext) -> None:
    rows = {r.name: r for r in lab.status(wan_lab)}
    assert rows["wan"].healthy
    names = WanNames(wan_lab.subnet)
    assert names.namespace in _netns()
    lab.down(wan_lab)
    assert names.namespace not in _netns()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=True).stdout
    assert f"{names.lab_tun}:" not in links
    assert f"{names.client_tun}:" not in links
    assert not Path("/run/netns", names.namespace).exists()


def _netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]
