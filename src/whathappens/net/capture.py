"""The TCP three-way handshake as the wire saw it: SYN, SYN-ACK, ACK with their real numbers.

``connect()`` tells us only that the handshake finished and how long it took. The segments
themselves — initial sequence numbers (RFC 9293 §3.4.1), the options each side offered (MSS,
window scale RFC 7323 §2, SACK-permitted RFC 2018, timestamps RFC 7323 §3) — are visible only
to a packet capture. Linux gives one without libpcap: an ``AF_PACKET`` socket (packet(7))
receives a copy of every frame; ``SOCK_DGRAM`` strips the link-layer header, so each copy
starts at the IP header. It needs CAP_NET_RAW (root); without it the journey says the numbers
were not captured rather than showing anything made up.

The capture runs on a thread of its own for the connect's duration only, never reads more
than ``MAX_PACKETS`` frames, and is matched to the winning connection's four-tuple afterwards.
Times are the kernel's receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME), put on the
journey's clock through its t0; parsing is pure (``parse_segment``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
from dataclasses import dataclass, field

from whathappens.contract.facts import CaptureStatus, TcpFacts
from whathappens.contract.facts import Segment as SegmentFacts

ETH_P_ALL = 0x0003
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
PACKET_OUTGOING = 4           # packet(7): a frame this host sent
ARPHRD_LOOPBACK = 772
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
MAX_PACKETS = 2000            # frames read per capture at most (all traffic, not only ours)
FLAG_NAMES = ((0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"),
              (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))


@dataclass
class Segment:
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: dict[str, int | bool | str]
    payload: int
    wall_ns: int = 0

    @property
    def flag_names(self) -> list[str]:
        return [name for bit, name in FLAG_NAMES if self.flags & bit]


def _options(data: bytes) -> dict[str, int | bool | str]:
    """TCP options (RFC 9293 §3.2) by name; unknown kinds by number."""
    out: dict[str, int | bool | str] = {}
    i = 0
    while i < len(data):
        kind = data[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(data) or data[i + 1] < 2:
            break
        size = data[i + 1]
        body = data[i + 2:i + size]
        if kind == 2 and len(body) == 2:
            out["mss"] = struct.unpack("!H", body)[0]
        elif kind == 3 and len(body) == 1:
            out["window_scale"] = body[0]
        elif kind == 4:
            out["sack_permitted"] = True
        elif kind == 8 and len(body) == 8:
            out["timestamp"], out["timestamp_echo"] = struct.unpack("!II", body)
        else:
            out[f"kind_{kind}"] = body.hex()
        i += size
    return out


def parse_segment(ethertype: int, frame: bytes) -> Segment | None:
    """A TCP segment from an IP packet (no link-layer header), or None if it is not one."""
    if ethertype == ETH_P_IP and len(frame) >= 20 and frame[0] >> 4 == 4:
        ihl = (frame[0] & 0x0F) * 4
        if frame[9] != 6 or len(frame) < ihl + 20:
            return None
        total = struct.unpack("!H", frame[2:4])[0]
        src = str(ipaddress.IPv4Address(frame[12:16]))
        dst = str(ipaddress.IPv4Address(frame[16:20]))
        tcp, end = frame[ihl:], total - ihl  # the frame may be cut short: trust the header
    elif ethertype == ETH_P_IPV6 and len(frame) >= 60 and frame[0] >> 4 == 6:
        if frame[6] != 6:  # extension headers are not followed: not a plain TCP packet
            return None
        src = str(ipaddress.IPv6Address(frame[8:24]))
        dst = str(ipaddress.IPv6Address(frame[24:40]))
        tcp, end = frame[40:], struct.unpack("!H", frame[4:6])[0]
    else:
        return None
    sport, dport, seq, ack, off, flags, window = struct.unpack("!HHIIBBH", tcp[:16])
    offset = (off >> 4) * 4
    if offset < 20 or len(tcp) < offset:
        return None
    return Segment(src, sport, dst, dport, seq, ack, flags, window, _options(tcp[20:offset]),
                   max(end - offset, 0))


@dataclass
class HandshakeCapture:
    """Copies of the frames to or from ``port`` while a connect runs (use as a context)."""

    port: int
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None
    interfaces: set[str] = field(default_factory=set)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HandshakeCapture:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except (PermissionError, OSError, AttributeError) as exc:
            self.error = ("not captured: a packet capture needs root (CAP_NET_RAW) on Linux"
                          if isinstance(exc, PermissionError) else f"not captured: {exc}")
            return self
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.settimeout(0.005)
        self._sock = sock
        self._thread = threading.Thread(target=self._read, name="tcp-capture", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    def _read(self) -> None:
        assert self._sock is not None
        seen = 0
        draining = False
        while seen < MAX_PACKETS:
            if self._stop.is_set() and not draining:
                # What the kernel queued before the stop is still ours: read it, then end.
                draining = True
                self._sock.setblocking(False)
            try:
                data, anc, _flags, addr = self._sock.recvmsg(256, socket.CMSG_SPACE(16))
            except (TimeoutError, BlockingIOError):
                if draining:
                    return
                continue
            except OSError:
                return
            seen += 1
            ifname, proto, pkttype, hatype = addr[0], addr[1], addr[2], addr[3]
            if hatype == ARPHRD_LOOPBACK and pkttype == PACKET_OUTGOING:
                continue  # loopback shows every frame twice: keep the copy that arrived
            seg = parse_segment(proto, data)
            if seg is None or self.port not in (seg.sport, seg.dport):
                continue
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    seg.wall_ns = sec * 1_000_000_000 + nsec
            self.interfaces.add(ifname)
            self.segments.append(seg)

    def handshake(self, local: tuple[str, int], remote: tuple[str, int]) -> list[Segment]:
        """The SYN, SYN-ACK and ACK of the connection ``local`` → ``remote``, in order."""
        def norm(addr: str) -> str:
            ip = ipaddress.ip_address(addr.split("%", 1)[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ip)

        lo, re_ = (norm(local[0]), local[1]), (norm(remote[0]), remote[1])
        out: list[Segment] = []
        for seg in self.segments:
            if _next_in_handshake(out, seg, lo, re_):
                out.append(seg)
                if len(out) == 3:
                    break
        return out


def _next_in_handshake(have: list[Segment], seg: Segment, local: tuple[str, int],
                       remote: tuple[str, int]) -> bool:
    """Is ``seg`` the next segment of the three-way handshake (RFC 9293 §3.5)?"""
    a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
    kind = _kind(seg)
    if not have:
        return (a, b) == (local, remote) and kind == "SYN" and "ACK" not in seg.flag_names
    if len(have) == 1:
        return ((a, b) == (remote, local) and kind == "SYN-ACK"
                and seg.ack == (have[0].seq + 1) % 2**32)
    return ((a, b) == (local, remote) and kind == "ACK"
            and seg.ack == (have[1].seq + 1) % 2**32)


def _kind(seg: Segment) -> str:
    names = set(seg.flag_names)
    if {"SYN", "ACK"} <= names:
        return "SYN-ACK"
    return "SYN" if "SYN" in names else "ACK"


def describe(segments: list[Segment], wall_origin_ns: int) -> list[SegmentFacts]:
    """The handshake for the journey: who sent what, the numbers, on the journey's clock."""
    out = []
    for seg in segments:
        out.append(SegmentFacts(
            segment=_kind(seg),
            from_=f"[{seg.src}]:{seg.sport}" if ":" in seg.src else f"{seg.src}:{seg.sport}",
            to=f"[{seg.dst}]:{seg.dport}" if ":" in seg.dst else f"{seg.dst}:{seg.dport}",
            seq=seg.seq,
            ack=seg.ack if "ACK" in seg.flag_names else None,
            flags=seg.flag_names,
            window=seg.window,
            options=seg.options,
            payload_bytes=seg.payload,
            t_ms=round((seg.wall_ns - wall_origin_ns) / 1e6, 3) if seg.wall_ns else None,
        ))
    return out


def _split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def capture_facts(facts: TcpFacts, capture: HandshakeCapture, pair: tuple[str, str] | None,
                  wall_origin_ns: int) -> None:
    """Into the TCP span's facts: the SYN / SYN-ACK / ACK of the connection ``pair`` (local,
    remote as "addr:port"), what was seen of a connect that failed (``pair`` None, e.g. SYN
    then RST), or why nothing was captured."""
    if capture.error is not None:
        facts.capture = CaptureStatus(captured=False, why=capture.error)
        return
    how = (f"a copy of each frame from an AF_PACKET socket on "
           f"{', '.join(sorted(capture.interfaces)) or 'no interface'}; times are the "
           "kernel's receive timestamps (CLOCK_REALTIME) put on the journey's clock "
           "through its t0")
    if pair is None:
        seen = [s for s in capture.segments if s.dport == capture.port][:1] + [
            s for s in capture.segments if s.sport == capture.port][:1]
        facts.capture = CaptureStatus(captured=bool(seen), how=how,
                                      why=None if seen else "no segment was seen")
        facts.segments_seen = describe(seen, wall_origin_ns)
        return
    local, remote = (_split_hostport(x) for x in pair)
    segments = capture.handshake(local, remote)
    whole = len(segments) == 3
    facts.capture = CaptureStatus(captured=whole, how=how, why=None if whole else
                                  "the three segments of this connection were not all seen")
    facts.handshake_segments = describe(segments, wall_origin_ns)
