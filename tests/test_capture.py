"""--capture: the real SYN / SYN-ACK / ACK from an AF_PACKET socket (root), or an honest
"not captured"."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
from typing import Any

import pytest

from misbehaving import RawServer, free_port, ok_reply
from whathappens.net.capture import ETH_P_IP, ETH_P_IPV6, parse_segment
from whathappens.render.html import render_html
from whathappens.trace import Options, run_journey

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="a packet capture needs root")


def tcp_header(sport: int, dport: int, seq: int, ack: int, flags: int,
               options: bytes = b"") -> bytes:
    options += b"\x00" * (-len(options) % 4)
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, 65535, 0,
                       0) + options


SYN_OPTIONS = (b"\x02\x04\x05\xb4"             # MSS 1460
               b"\x04\x02"                     # SACK permitted
               b"\x08\x0a\x00\x00\x00\x07\x00\x00\x00\x00"  # timestamps 7, 0
               b"\x01\x03\x03\x07")            # NOP, window scale 7


def test_parse_an_ipv4_syn_with_its_options() -> None:
    tcp = tcp_header(50000, 443, 123456789, 0, 0x02, SYN_OPTIONS)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([93, 184, 215, 14]))
    seg = parse_segment(ETH_P_IP, ip + tcp)
    assert seg is not None
    assert (seg.src, seg.sport, seg.dst, seg.dport) == ("10.0.0.1", 50000, "93.184.215.14", 443)
    assert seg.seq == 123456789
    assert seg.flag_names == ["SYN"]
    assert seg.options == {"mss": 1460, "sack_permitted": True, "timestamp": 7,
                           "timestamp_echo": 0, "window_scale": 7}
    assert seg.payload == 0


def test_parse_an_ipv6_syn_ack_and_reject_what_is_not_tcp() -> None:
    tcp = tcp_header(443, 50000, 1, 123456790, 0x12)
    src, dst = bytes(15) + b"\x01", bytes.fromhex("20010db8" + "00" * 11 + "01")
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(tcp) + 5, 6, 64, src, dst)
    seg = parse_segment(ETH_P_IPV6, ip6 + tcp + b"hello")
    assert seg is not None
    assert (seg.src, seg.dst, seg.ack) == ("::1", "2001:db8::1", 123456790)
    assert seg.flag_names == ["SYN", "ACK"]
    assert seg.payload == 5
    udp = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes(4), bytes(4))
    assert parse_segment(ETH_P_IP, udp + bytes(8)) is None
    assert parse_segment(ETH_P_IP, b"\x45\x00") is None
    assert parse_segment(0x0806, bytes(64)) is None  # ARP


def _tcp(journey_dict: dict[str, Any]) -> dict[str, Any]:
    leg = next(s for s in journey_dict["spans"] if s["name"] == "leg")
    tcp: dict[str, Any] = next(c for c in leg["children"] if c["name"] == "tcp")
    return tcp


@root_only
def test_the_real_handshake_of_a_journey() -> None:
    with RawServer(ok_reply) as server:
        journey = asyncio.run(run_journey(server.url(), Options(capture=True)))
    assert journey.error is None
    d = journey.to_dict()
    tcp = _tcp(d)
    a = tcp["attrs"]
    assert a["capture"]["captured"] is True
    assert "AF_PACKET" in a["capture"]["how"]
    syn, synack, ack = a["handshake_segments"]
    assert [syn["segment"], synack["segment"], ack["segment"]] == ["SYN", "SYN-ACK", "ACK"]
    assert syn["from"] == a["local"]
    assert syn["to"] == a["remote"]
    assert synack["from"] == a["remote"]
    # RFC 9293 §3.5: each side acknowledges the other's initial sequence number + 1.
    assert synack["ack"] == (syn["seq"] + 1) % 2**32
    assert ack["ack"] == (synack["seq"] + 1) % 2**32
    assert ack["seq"] == synack["ack"]
    assert "mss" in syn["options"]
    assert "mss" in synack["options"]
    # Kernel timestamps, put on the journey's clock: inside the TCP step (1 ms of slack for
    # mapping CLOCK_REALTIME onto the monotonic clock through t0).
    assert syn["t_ms"] <= synack["t_ms"] <= ack["t_ms"]
    assert tcp["start_ms"] - 1 <= syn["t_ms"]
    assert ack["t_ms"] <= tcp["end_ms"] + 1
    html = render_html(d)
    assert str(syn["seq"]) in html
    assert "On the wire the handshake took" in html


@root_only
def test_a_refused_connection_shows_the_syn_and_the_reset() -> None:
    port = free_port()
    journey = asyncio.run(run_journey(f"http://127.0.0.1:{port}/", Options(capture=True)))
    assert journey.exit_code == 5
    seen = _tcp(journey.to_dict())["attrs"]["segments_seen"]
    assert [s["flags"] for s in seen] == [["SYN"], ["ACK", "RST"]]


def test_without_capture_the_report_says_the_numbers_were_not_captured() -> None:
    with RawServer(ok_reply) as server:
        journey = asyncio.run(run_journey(server.url(), Options()))
    d = journey.to_dict()
    assert "handshake_segments" not in _tcp(d)["attrs"]
    assert "not captured" in render_html(d)


def test_without_root_capture_says_why() -> None:
    # Import first: the interpreter's own files may not be readable by nobody.
    code = ("import os\nfrom whathappens.net.capture import HandshakeCapture\n"
            + ("os.setgid(65534); os.setuid(65534)\n" if os.geteuid() == 0 else "")
            + "with HandshakeCapture(443) as c: print(c.error)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert "not captured" in out.stdout
    assert "root" in out.stdout
