"""The view of a QUIC step (span ``quic``): what every renderer shows about it, worked out
once from the typed facts — the handshake's flights, each packet with its number space and
the datagram that carried it, the TLS messages inside, the chain, QUIC's own view of the path
and the transport parameters both ways."""

from __future__ import annotations

from dataclasses import dataclass

from whathappens.contract.document import SpanDoc
from whathappens.contract.facts import QuicFacts, QuicFlightFacts, QuicPath
from whathappens.explain.fill import Context, explain_span
from whathappens.explain.texts import Explanation
from whathappens.render.format import ms, size
from whathappens.render.steps import (
    Certificate,
    Message,
    Problem,
    Timing,
    certificate,
    facts,
    message,
    problem,
    timing,
)

SHOWN_PACKETS = 24  # packets listed in the reports; the JSON keeps every one (up to its cap)


@dataclass(frozen=True)
class FlightRow:
    name: str
    sent: bool
    start_ms: float
    datagrams: int
    packets: int
    bytes: int
    spaces: list[str]
    messages: list[str]

    @property
    def arrow(self) -> str:
        return "→" if self.sent else "←"

    @property
    def words(self) -> str:
        return (f"{self.datagrams} datagram(s), {self.packets} packet(s) "
                f"({', '.join(self.spaces)}), {size(self.bytes)}"
                + (f": {', '.join(self.messages)}" if self.messages else ""))


@dataclass(frozen=True)
class PacketRow:
    sent: bool
    t_ms: float
    space: str
    number: int | None
    bytes: int
    datagram: int
    datagram_bytes: int
    coalesced: bool
    frames: list[str]

    @property
    def arrow(self) -> str:
        return "→" if self.sent else "←"

    @property
    def words(self) -> str:
        pn = "" if self.number is None else f"pn {self.number} "
        where = (f"coalesced in datagram #{self.datagram} ({size(self.datagram_bytes)})"
                 if self.coalesced else f"datagram #{self.datagram}")
        return (f"{self.space:<9} {pn}{size(self.bytes)}, {where}: "
                f"{', '.join(self.frames) or 'no frames'}")


@dataclass(frozen=True)
class QuicView:
    timing: Timing
    error: Problem | None
    local: str | None
    remote: str | None
    version: str | None
    alpn: str | None
    cipher: str | None
    group: str | None
    sni: str | None
    retry: bool
    our_cid: str | None
    server_cid: str | None
    original_dcid: str | None
    flights: list[FlightRow]
    packets: list[PacketRow]
    packets_total: int
    messages: list[Message]
    chain: list[Certificate]
    verified: bool | None
    verification: str
    verified_by: str
    path_after: str | None
    path_end: str | None
    handshake_done_ms: float | None
    client_hello_build_ms: float | None
    server_params: list[tuple[str, str]]
    local_params: list[tuple[str, str]]
    close: str | None
    explain: Explanation | None = None

    @property
    def headline(self) -> str:
        parts = [f"{self.local} → {self.remote}" if self.local else self.remote or "",
                 " ".join(x for x in (self.version, self.cipher, self.group) if x)]
        if self.alpn:
            parts.append(f"ALPN {self.alpn}")
        if self.sni:
            parts.append(f"SNI {self.sni}")
        if self.retry:
            parts.append("Retry")
        return "  ".join(p for p in parts if p)


def path_words(p: QuicPath | None) -> str | None:
    """QUIC's loss recovery state in one line (RFC 9002)."""
    if p is None:
        return None
    rtt = (f"smoothed rtt {ms(p.smoothed_rtt_ms)} ±{ms(p.rttvar_ms)}, min {ms(p.min_rtt_ms)}"
           if p.smoothed_rtt_ms is not None else "no RTT sample yet")
    return (f"{rtt}, cwnd {p.cwnd_bytes:,} B, in flight {p.bytes_in_flight:,} B, packets "
            f"sent/received {p.packets_sent}/{p.packets_received}, lost {p.packets_lost}, "
            f"probe timeouts {p.pto_count}")


def _params(d: dict[str, object]) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in d.items() if v is not None]


def quic_view(span: SpanDoc, ctx: Context | None = None) -> QuicView:
    a = facts(span, QuicFacts)
    v = a.chain_verification
    flights = [c for c in span.children if c.name == "quic.flight"]
    close = None
    if a.close is not None:
        c = a.close
        close = (f"CONNECTION_CLOSE by the {c.by} ({c.error_space}) 0x{c.error_code:x}"
                 + (f" {c.error_name}" if c.error_name else "")
                 + (f": {c.reason}" if c.reason else ""))
    return QuicView(
        timing(span), problem(span.error), a.local, a.remote, a.version, a.alpn, a.cipher,
        a.group, a.sni, a.retry, a.our_cid, a.server_cid, a.original_dcid,
        [_flight(f) for f in flights],
        [PacketRow(p.direction == "sent", p.t_ms, p.space, p.number, p.bytes, p.datagram,
                   p.datagram_bytes, p.coalesced, list(p.frames))
         for p in a.packets[:SHOWN_PACKETS]],
        a.packets_total, [message(m) for m in a.messages],
        [certificate(i, c) for i, c in enumerate(a.chain or [])],
        None if v is None else v.ok, v.reason if v is not None else a.verification,
        v.by if v is not None else "", path_words(a.path_after_handshake),
        path_words(a.path_end), a.handshake_done_ms, a.client_hello_build_ms,
        _params(a.server_transport_parameters), _params(a.local_transport_parameters), close,
        explain_span(span, ctx))


def _flight(span: SpanDoc) -> FlightRow:
    f = facts(span, QuicFlightFacts)
    return FlightRow(f.flight, f.direction == "sent", span.start_ms, f.datagrams, f.packets,
                     f.bytes, list(f.spaces), list(f.tls_messages))
