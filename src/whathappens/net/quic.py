"""QUIC (RFC 9000, RFC 9001) and HTTP/3 (RFC 9114) through aioquic's sans-IO state machines.

aioquic's ``QuicConnection`` takes datagrams and a time and hands back datagrams to send; this
module owns the UDP socket, the timer and the journey's clock around it, so every datagram is
timed when it really crossed the socket. What aioquic knows is read from three places:

- its qlog events (a ``QuicLoggerTrace`` of our own, drained after each call): every packet
  sent and received with its type (hence its number space), number, length and frames, the
  transport parameters both ways, losses;
- its TLS context: each handshake message it handles or writes, hooked per connection;
- its loss recovery: smoothed RTT, RTT variance, min RTT, congestion window, bytes in flight,
  probe timeouts (RFC 9002), read after the handshake and after the exchange.

Importing this module imports aioquic (≈ 140 ms): the runner does it only when QUIC is tried,
in its ``prepare`` step. Every wait is bounded by a deadline and every read by ``Limits``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aioquic import tls as aiotls
from aioquic._buffer import Buffer
from aioquic.h3 import events as h3e
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.exceptions import H3Error
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.logger import QuicLogger, QuicLoggerTrace
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import SessionTicket
from cryptography.hazmat.primitives import serialization

from whathappens.contract.facts import (
    ChainVerification,
    H2Wire,
    QuicClose,
    QuicFacts,
    QuicFlightFacts,
    QuicPacket,
    QuicPath,
    QuicProbeTimeout,
    TlsMessage,
    WireFrame,
)
from whathappens.errors import HttpError, JourneyError, QuicConnectError, QuicTlsError
from whathappens.net import tlsmsg
from whathappens.net.content import content_codings, decode_content
from whathappens.net.h2wire import header_block
from whathappens.net.http_types import (
    ACCEPT,
    ACCEPT_ENCODING,
    USER_AGENT,
    Exchange,
    Limits,
    Request,
    joined_field,
    pseudo_first,
)
from whathappens.net.udp import UdpSocket

if TYPE_CHECKING:
    from whathappens.journey import Journey, Span
    from whathappens.net.tls import TlsOptions

MAX_PACKETS = 200        # packets kept in the facts; the rest are counted
MAX_FRAMES = 200         # HTTP/3 frames kept per exchange
MAX_QLOG_EVENTS = 20000  # events kept for --qlog; the rest are counted
MAX_PROBES = 32          # probe timeouts kept in the facts; the rest are counted
_CONNECTION_FIELDS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                      "upgrade", "host", "te"}


def version_words(version: int | None) -> str | None:
    if version is None:
        return None
    name = {0x00000001: "QUIC v1", 0x6B3343CF: "QUIC v2"}.get(version, "QUIC")
    return f"{name} (0x{version:08x})"


def error_name(code: int, space: str) -> str | None:
    """The name of a CONNECTION_CLOSE code (RFC 9000 §20.1, RFC 9001 §4.8, RFC 9114 §8.1)."""
    if space == "application":
        with contextlib.suppress(ValueError):
            return ErrorCode(code).name
        return None
    if 0x100 <= code <= 0x1FF:
        return f"CRYPTO_ERROR (TLS alert {code - 0x100})"
    with contextlib.suppress(ValueError):
        return QuicErrorCode(code).name
    return None


# ----------------------------------------------------------------------------- recorder
class _Trace(QuicLoggerTrace):
    """aioquic's qlog trace, kept bounded (for --qlog), with each event also queued for the
    driver to read right after the call that logged it."""

    def __init__(self, *, is_client: bool, odcid: bytes, clock: Callable[[], int]) -> None:
        super().__init__(is_client=is_client, odcid=odcid)
        self.odcid = odcid
        self.clock = clock
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.seen = 0
        # HTTP/3 frames as aioquic made or parsed them, on the journey's clock (bounded).
        self.h3_frames: list[tuple[int, bool, dict[str, Any]]] = []
        self.h3_frames_seen = 0

    def log_event(self, *, category: str, event: str, data: dict[str, Any]) -> None:
        self.seen += 1
        self.pending.append((f"{category}:{event}", data))
        if category == "http" and event in ("frame_created", "frame_parsed"):
            self.h3_frames_seen += 1
            if len(self.h3_frames) < MAX_QLOG_EVENTS:
                self.h3_frames.append((self.clock(), event == "frame_created", data))
        if len(self._events) < MAX_QLOG_EVENTS:
            super().log_event(category=category, event=event, data=data)

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.pending = self.pending, []
        return out


class _Logger(QuicLogger):
    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__()
        self.clock = clock
        self.trace: _Trace | None = None

    def start_trace(self, is_client: bool, odcid: bytes) -> QuicLoggerTrace:
        self.trace = _Trace(is_client=is_client, odcid=odcid, clock=self.clock)
        self._traces.append(self.trace)  # end_trace checks it is one of ours
        return self.trace

    def qlog(self) -> dict[str, Any]:
        """The connection's qlog (draft-ietf-quic-qlog, as aioquic writes it)."""
        return {"qlog_format": "JSON", "qlog_version": "0.3",
                "traces": [] if self.trace is None else [self.trace.to_dict()]}


@dataclass
class _Flight:
    name: str
    direction: str
    start_ns: int
    end_ns: int
    datagrams: int = 0
    packets: int = 0
    bytes: int = 0
    spaces: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@dataclass
class _Sent:
    """A request sent on its stream: what the exchange measures from."""

    stream: _Stream
    headers: list[tuple[str, str]]
    sent0: int
    received0: int
    first_frame: int
    t_start: int
    t_sent: int = 0


@dataclass
class _Stream:
    """One request's progress on its HTTP/3 stream."""

    stream_id: int
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    informational: list[int] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    header_bytes: int = 0
    t_first_byte: int | None = None
    t_headers: int | None = None
    t_done: int | None = None
    error: JourneyError | None = None
    done: asyncio.Future[None] | None = None


# ------------------------------------------------------------------------------ client
class QuicClient:
    """One QUIC connection: the handshake's facts on ``span``, then HTTP/3 exchanges."""

    def __init__(self, journey: Journey, span: Span[QuicFacts], conn: QuicConnection,
                 logger: _Logger, server_name: str) -> None:
        self.j, self.span, self.conn, self.logger = journey, span, conn, logger
        self.server_name = server_name
        self.loop = asyncio.get_running_loop()
        self.transport: UdpSocket | None = None
        self.h3: H3Connection | None = None
        self.flights: list[_Flight] = []
        self.pending_msgs: dict[str, list[str]] = {"sent": [], "received": []}
        self.handshake_complete = False
        self.finished_sent: asyncio.Future[int] = self.loop.create_future()
        self.failure: JourneyError | None = None
        self.closed: QuicClose | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.streams: dict[int, _Stream] = {}
        self.frames: list[WireFrame] = []
        self.frames_total = 0
        self.datagram_no = 0
        self.lost = 0
        self.ptos = 0           # probe timeouts fired (aioquic's own count resets on an ACK)
        self.probing = False    # what transmit() sends now is a probe
        self.now_ns = 0          # when the datagram being handled was read (or the timer fired)
        self.arrived_ns = 0      # when it arrived (the kernel's stamp): its TLS messages' time
        self.retry_seen = False
        self.early: _Sent | None = None  # a request sent as 0-RTT data, awaiting its answer
        self.early_request: Request | None = None
        self.no_common_version: tuple[list[int], list[int]] | None = None
        self.early_traceparent: str | None = None
        self.legs = 0
        self.first_heard: asyncio.Future[None] = self.loop.create_future()
        self.alert: Exception | None = None     # a TLS alert raised on our side
        self.server_hello: bytes | None = None
        self.hello_bytes = 0
        self.cafile: str | None = None
        self.hooked: object = None  # the TLS context whose messages are recorded
        self.insecure = False
        self.peer: tuple[str, int] = ("", 0)

    @property
    def facts(self) -> QuicFacts:
        return self.span.facts

    @property
    def reusable(self) -> bool:
        return self.failure is None and self.closed is None and self.h3 is not None

    # ---------------------------------------------------------------- the socket's side
    def received(self, data: bytes, arrived: int, read: int) -> None:
        """A datagram from the server: ``arrived`` when the kernel received it, ``read`` when
        our loop read it (later while aioquic was busy with the one before)."""
        # Not before our first Initial left (the two clocks' offset is read to ~0.1 µs).
        t = max(arrived, self.span.start_ns if self.flights else arrived)
        self.now_ns, self.arrived_ns = read, t
        f = self.facts
        f.datagrams_received += 1
        f.udp_bytes_received += len(data)
        if f.server_first_ms is None:
            f.server_first_ms = round(t / 1e6, 3)
            self.first_heard.set_result(None)
        self.datagram_no += 1
        try:
            # aioquic's clock (the loop's, also CLOCK_MONOTONIC) at the arrival: its RTT
            # samples (RFC 9002 §5) are then the path's, not the path's plus our queue.
            arrived_at = self.loop.time() - (self.j.clock.now() - t) / 1e9
            self.conn.receive_datagram(data, self.conn.get_peer_address() or ("", 0),
                                       now=arrived_at)
        finally:
            self._packets("received", self._drain(), t, self.datagram_no, len(data), read)
        if getattr(self.conn, "tls", None) is not self.hooked:
            # A Retry: aioquic starts over with a new TLS context and a new ClientHello
            # (RFC 9000 §17.2.5.2), sent in the Initial that carries the token.
            _hook_tls(self)
            self.message("sent", "client_hello", None, t)
        self._events()
        self.transmit()

    def udp_error(self, exc: OSError) -> None:
        # An ICMP error (port unreachable) the kernel reported on the connected socket: a
        # real answer from the path, that nothing listens on this UDP port.
        if self.failure is None and not self.handshake_complete:
            words = getattr(exc, "strerror", None) or exc
            self.fail(QuicConnectError(
                "quic.unreachable", f"the Initial to {self.facts.remote} was answered with "
                f"an ICMP error: {words}; nothing accepts QUIC on UDP port "
                f"{self.facts.port} there", detail=repr(exc)))

    def transmit(self) -> None:
        if self.transport is None:
            return
        datagrams = self.conn.datagrams_to_send(now=self.loop.time())
        events = self._drain()
        sizes: list[int] = []
        # The time a datagram was handed to the kernel: taken before send(), whose return
        # can come late (another thread may take the GIL meanwhile), and never after the
        # server's answer to it arrived.
        t = self.j.clock.now()
        for data, _addr in datagrams:
            self.transport.send(data)
            sizes.append(len(data))
        self._assign_sent(events, sizes, t)
        if sizes and self.handshake_complete and not self.finished_sent.done():
            self.finished_sent.set_result(t)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        at = self.conn.get_timer()
        if at is not None:
            self.timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.now_ns = self.j.clock.now()
        loss, now = self.conn._loss, self.loop.time()
        before, last_sent = loss._pto_count, loss._time_of_last_sent_ack_eliciting_packet
        pto = loss.get_probe_timeout(include_max_ack_delay=loss.handshake_confirmed)
        self.conn.handle_timer(now=now)
        events = self._drain()
        # A probe timeout (RFC 9002 §6.2), not the loss timer nor the idle timeout: only it
        # raises aioquic's count; the data it schedules again is logged as packet_lost.
        fired = loss._pto_count > before
        if fired:
            self._probe_fired(events, now - last_sent, pto, loss._pto_count)
        self._packets("received", events, self.now_ns, 0, 0, self.now_ns)
        self._events()
        self.probing = fired
        try:
            self.transmit()
        finally:
            self.probing = False

    def _probe_fired(self, events: list[tuple[str, dict[str, Any]]], waited: float,
                     pto: float, backoff: int) -> None:
        self.ptos += 1
        if len(self.facts.probe_timeouts) >= MAX_PROBES:
            return
        resent = [f"{d.get('type', '?')} {d.get('packet_number', '?')}"
                  for name, d in events if name == "recovery:packet_lost"]
        self.facts.probe_timeouts.append(QuicProbeTimeout(
            t_ms=round(self.now_ns / 1e6, 3), waited_ms=round(waited * 1e3, 3),
            pto_ms=round(pto * 1e3, 3), backoff=backoff, resent=resent))

    def _drain(self) -> list[tuple[str, dict[str, Any]]]:
        trace = self.logger.trace
        return [] if trace is None else trace.drain()

    # ------------------------------------------------------------------ packets, flights
    def _assign_sent(self, events: list[tuple[str, dict[str, Any]]], sizes: list[int],
                     t: int) -> None:
        """Packets aioquic built, in order, laid into the datagrams it returned by size."""
        sent = [d for name, d in events if name == "transport:packet_sent"]
        self._others(events)
        i = 0
        for size in sizes:
            self.datagram_no += 1
            self.facts.datagrams_sent += 1
            self.facts.udp_bytes_sent += size
            group: list[dict[str, Any]] = []
            room = size
            while i < len(sent) and (not group or room > 0):
                group.append(sent[i])
                room -= int(sent[i].get("raw", {}).get("length", 0))
                i += 1
            self._record("sent", group, t, self.datagram_no, size)

    def _packets(self, direction: str, events: list[tuple[str, dict[str, Any]]], t: int,
                 datagram: int, size: int, read: int) -> None:
        got = [d for name, d in events if name == "transport:packet_received"]
        self._others(events)
        if got:
            self._record(direction, got, t, datagram, size, read)

    def _others(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        f = self.facts
        for name, d in events:
            if name == "transport:parameters_set":
                params = {k: v for k, v in d.items() if k != "owner"}
                if d.get("owner") == "remote":
                    f.server_transport_parameters = params
                else:
                    f.local_transport_parameters = params
            elif name == "recovery:packet_lost":
                self.lost += 1
            elif name == "transport:version_information" and d.get("chosen_version") is None:
                self.no_common_version = (list(d.get("server_versions", [])),
                                          list(d.get("client_versions", [])))

    def _record(self, direction: str, packets: list[dict[str, Any]], t: int, datagram: int,
                size: int, read: int | None = None) -> None:
        f = self.facts
        spaces: list[str] = []
        for d in packets:
            header = d.get("header", {})
            space = str(header.get("packet_type", "?"))
            spaces.append(space)
            frames = [str(fr.get("frame_type", "?")) for fr in d.get("frames", [])]
            if direction == "sent" and space == "initial" and f.server_first_ms is None:
                self.hello_bytes += sum(int(fr.get("length", 0)) for fr in d.get("frames", [])
                                        if fr.get("frame_type") == "crypto")
            if space == "retry":
                self.retry_seen = True
            if "handshake_done" in frames and f.handshake_done_ms is None:
                f.handshake_done_ms = round(t / 1e6, 3)
            f.packets_total += 1
            if len(f.packets) >= MAX_PACKETS:
                f.packets_dropped += 1
                continue
            f.packets.append(QuicPacket(
                direction=direction, t_ms=round(t / 1e6, 3), space=space,
                number=header.get("packet_number"),
                bytes=int(d.get("raw", {}).get("length", 0)), datagram=datagram,
                datagram_bytes=size, coalesced=len(packets) > 1, frames=_squeeze(frames),
                read_ms=round(read / 1e6, 3) if read is not None and read != t else None))
        self._flight(direction, spaces, t, size, len(packets))

    def _flight(self, direction: str, spaces: list[str], t: int, size: int,
                packets: int) -> None:
        """Which flight of the handshake this datagram belongs to (RFC 9001 §4.1)."""
        if self.finished_sent.done():
            return
        if direction == "received":
            name = "retry" if "retry" in spaces else "server_handshake"
        elif self.probing:
            name = "probe"      # sent again at a probe timeout (RFC 9002 §6.2.4)
        else:
            answered = any(fl.name == "server_handshake" for fl in self.flights)
            name = "client_finished" if self.handshake_complete else \
                "client_ack" if answered else "client_initial"
        last = self.flights[-1] if self.flights else None
        if direction == "received" and last is not None and last.direction == "sent" and \
                t < last.start_ns and len(self.flights) > 1 and \
                (self.flights[-2].name, self.flights[-2].direction) == (name, direction):
            # It arrived before our answer left, read only after aioquic had sent it: the
            # same flight of the server's as the datagram before.
            last = self.flights[-2]
        elif last is None or last.name != name or last.direction != direction or \
                (self.probing and last.start_ns != t):
            last = _Flight(name, direction, t, t)
            self.flights.append(last)
        last.end_ns = max(last.end_ns, t)
        last.datagrams += 1
        last.packets += packets
        last.bytes += size
        last.spaces += [s for s in spaces if s not in last.spaces]
        last.messages += self.pending_msgs[direction]
        self.pending_msgs[direction] = []

    # ----------------------------------------------------------------------- events
    def _events(self) -> None:
        close = self.conn._close_event
        if self.closed is None and close is not None and self.transport is not None:
            # We closed (our TLS refused the handshake, our HTTP/3 a malformed frame):
            # aioquic sent CONNECTION_CLOSE and reports it only after the draining period
            # (RFC 9000 §10.2); say it now.
            self._terminated(close, by_us=self._closing_ourselves())
        while (event := self.conn.next_event()) is not None:
            if isinstance(event, qe.HandshakeCompleted):
                self.handshake_complete = True
                f = self.facts
                f.alpn, f.session_resumed = event.alpn_protocol, event.session_resumed
                if self.early is not None:
                    f.early_data = "accepted" if event.early_data_accepted else "rejected"
                if self.h3 is None:
                    self.h3 = H3Connection(self.conn)
            elif isinstance(event, qe.ConnectionTerminated):
                self._terminated(event)
            elif isinstance(event, qe.StreamReset):
                self._reset(event)
            if self.h3 is not None:
                try:
                    for h in self.h3.handle_event(event):
                        self._h3_event(h)
                except (H3Error, UnicodeDecodeError, ValueError) as exc:
                    self.fail(HttpError("http.h3_malformed", f"the server's HTTP/3 could not "
                                        f"be read: {exc or type(exc).__name__}"))
        close = self.conn._close_event
        if self.closed is None and close is not None and self.transport is not None:
            self._terminated(close, by_us=self._closing_ourselves())  # ours: a bad frame

    def message(self, direction: str, name: str, size: int | None, t: int) -> None:
        """A TLS handshake message inside the CRYPTO frames (RFC 9001 §4.1.3)."""
        if len(self.facts.messages) < 64:
            self.facts.messages.append(TlsMessage(direction=direction, t_ms=round(t / 1e6, 3),
                                                  type=name, bytes=size))
        self.pending_msgs[direction].append(name)

    def _closing_ourselves(self) -> bool:
        """aioquic drains after the peer's CONNECTION_CLOSE, and is closing after its own
        (RFC 9000 §10.2.1, §10.2.2)."""
        return self.conn._state.name != "DRAINING"

    def _terminated(self, event: qe.ConnectionTerminated, *, by_us: bool = False) -> None:
        # An application close (frame 0x1d) carries no frame type (RFC 9000 §19.19).
        space = "application" if event.frame_type is None else "transport"
        if self.closed is None:
            self.closed = QuicClose(by="client" if by_us else "server",
                                    error_code=event.error_code, error_space=space,
                                    error_name=error_name(event.error_code, space),
                                    frame_type=event.frame_type, reason=event.reason_phrase)
            self.facts.close = self.closed
        if self.alert is not None:
            self.fail(_alert_error(self.alert, self.chain(), self.server_name, self.cafile))
        if self.no_common_version is not None:
            theirs, ours = self.no_common_version
            self.fail(QuicConnectError(
                "quic.version_negotiation", f"{self.server_name} answered our Initial with "
                "Version Negotiation (RFC 9000 §6) offering only "
                f"{', '.join(f'0x{v:08x}' for v in theirs) or 'nothing'}, and we speak "
                f"{', '.join(version_words(v) or '' for v in ours)}: no common QUIC version"))
        self.fail(_close_error(self.closed, self.server_name, self.handshake_complete))

    def chain(self) -> list[bytes]:
        """The certificates the server sent, leaf first, as DER."""
        t = getattr(self.conn, "tls", None)
        if t is None or t._peer_certificate is None:
            return []
        return [c.public_bytes(serialization.Encoding.DER)
                for c in [t._peer_certificate, *t._peer_certificate_chain]]

    def _reset(self, event: qe.StreamReset) -> None:
        """The server abandoned the response with RESET_STREAM (RFC 9000 §19.4): the stream
        fails, the connection lives on."""
        s = self.streams.get(event.stream_id)
        if s is None or s.t_done is not None:
            return
        name = error_name(event.error_code, "application")
        s.error = HttpError("http.h3_stream_reset", f"the server reset the request's stream "
                            f"{event.stream_id} with code 0x{event.error_code:x}"
                            f"{f' {name}' if name else ''} before the response was complete "
                            "(RESET_STREAM, RFC 9114 §4.1.1)")
        if s.done is not None and not s.done.done():
            s.done.set_exception(s.error)

    def fail(self, err: JourneyError) -> None:
        if self.failure is None:
            self.failure = err
        for fut in (self.finished_sent, *(s.done for s in self.streams.values())):
            if fut is not None and not fut.done():
                fut.set_exception(err)

    # ------------------------------------------------------------------------- HTTP/3
    def _h3_event(self, event: h3e.H3Event) -> None:
        if isinstance(event, h3e.HeadersReceived | h3e.DataReceived):
            s = self.streams.get(event.stream_id)
            if s is None or s.t_done is not None:
                return
            t = self.now_ns
            if s.t_first_byte is None:
                s.t_first_byte = t
            if isinstance(event, h3e.HeadersReceived):
                self._head(s, event, t)
            else:
                s.body += event.data
            if event.stream_ended:
                s.t_done = t
                if s.done is not None and not s.done.done():
                    s.done.set_result(None)

    def _head(self, s: _Stream, event: h3e.HeadersReceived, t: int) -> None:
        fields = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers]
        status = next((v for n, v in fields if n == ":status"), None)
        if status is None or not status.isdigit():
            s.error = HttpError("http.h3_malformed", "the server's HTTP/3 response had no "
                                "valid :status (RFC 9114 §4.3.2)")
            return
        if 100 <= int(status) < 200 and s.status is None:
            s.informational.append(int(status))
            return
        if s.status is None:
            s.status, s.t_headers = int(status), t
            s.headers = [(n, v) for n, v in fields if not n.startswith(":")]
            s.header_bytes = sum(len(n) + len(v) for n, v in fields)
        # later HEADERS on the stream are trailers (RFC 9114 §4.1): counted, not shown

    def send(self, request: Request, clock: Callable[[], int]) -> _Sent:
        """Open a request stream and send the request (in 0-RTT packets before the
        handshake completes, when a resumed session allows early data, RFC 9001 §4.6)."""
        if self.h3 is None:
            self.h3 = H3Connection(self.conn)
        headers = request_headers_h3(request)
        stream_id = self.conn.get_next_available_stream_id()
        s = self.streams[stream_id] = _Stream(stream_id, done=self.loop.create_future())
        sent = _Sent(s, headers, self.facts.udp_bytes_sent, self.facts.udp_bytes_received,
                     self.logger.trace.h3_frames_seen if self.logger.trace else 0, clock())
        self.h3.send_headers(stream_id, [(n.encode(), v.encode()) for n, v in headers],
                             end_stream=not request.body)
        if request.body:
            self.h3.send_data(stream_id, request.body, end_stream=True)
        self.transmit()
        sent.t_sent = clock()
        return sent

    async def exchange(self, request: Request, clock: Callable[[], int], limits: Limits,
                       deadline: float) -> Exchange:
        early, self.early = self.early, None
        if early is None and (not self.reusable or self.h3 is None):
            raise HttpError("http.connection_closed", "the QUIC connection is closed")
        sent = early or self.send(request, clock)
        s, headers, sent0, received0 = sent.stream, sent.headers, sent.sent0, sent.received0
        first_frame, t_start, t_sent = sent.first_frame, sent.t_start, sent.t_sent
        await self._wait_body(s, limits, deadline)
        assert s.status is not None
        assert s.t_headers is not None
        assert s.t_done is not None
        codings = content_codings(s.headers)
        decoded = decode_content(bytes(s.body), codings, max_decoded=limits.max_decoded_bytes,
                                 keep=limits.keep_body_bytes)
        return Exchange(
            http_version="HTTP/3", request_headers=headers, status=s.status, reason="",
            response_headers=s.headers, t_request_start_ns=t_start, t_request_sent_ns=t_sent,
            t_first_byte_ns=s.t_first_byte or s.t_headers, t_headers_ns=s.t_headers,
            t_body_done_ns=s.t_done, body=decoded.kept, body_truncated=decoded.truncated,
            wire_bytes_sent=self.facts.udp_bytes_sent - sent0,
            wire_bytes_received=self.facts.udp_bytes_received - received0,
            body_bytes_encoded=len(s.body), body_bytes_decoded=decoded.size,
            content_encoding=codings, header_bytes=s.header_bytes, reusable=self.reusable,
            alt_svc=joined_field(s.headers, "alt-svc"), stream_id=s.stream_id,
            informational=s.informational, h3_wire=self._wire(first_frame, headers, s))

    async def _wait_body(self, s: _Stream, limits: Limits, deadline: float) -> None:
        assert s.done is not None
        while not s.done.done():
            left = min(deadline - self.loop.time(), limits.read_timeout)
            if left <= 0:
                raise HttpError("http.timeout", f"no complete HTTP/3 response within "
                                f"{limits.read_timeout:g} s (stream {s.stream_id})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(s.done), min(left, 0.05))
            if s.error is not None:
                raise s.error
            if len(s.body) > limits.max_body_bytes:
                self.conn.close(error_code=ErrorCode.H3_REQUEST_CANCELLED,
                                reason_phrase="body too large")
                self.transmit()
                raise HttpError("http.body_too_large", f"the body passed "
                                f"{limits.max_body_bytes} bytes on the wire (the limit): "
                                "the connection was closed")
            if s.header_bytes > limits.max_header_bytes:
                raise HttpError("http.headers_too_large", f"the response head passed "
                                f"{limits.max_header_bytes} bytes (the limit)")
        s.done.result()  # raises the connection's error when it failed

    def _wire(self, first_frame: int, headers: list[tuple[str, str]], s: _Stream) -> H2Wire:
        """The exchange's HTTP/3 frames (RFC 9114 §7.2), as aioquic made or parsed them, from
        the request's first one on: type, stream, length; times on the journey's clock (when
        aioquic made or parsed the frame)."""
        trace = self.logger.trace
        kept = trace.h3_frames[first_frame:] if trace is not None else []
        total = (trace.h3_frames_seen - first_frame) if trace is not None else 0
        frames: list[WireFrame] = []
        sent_block, got_block = 0, 0
        for t_ns, sent, d in kept:
            kind = str(d.get("frame", {}).get("frame_type", "?")).upper()
            length = int(d.get("length", 0))
            if kind == "HEADERS" and d.get("stream_id") == s.stream_id:
                if sent:
                    sent_block = sent_block or length
                else:
                    got_block = got_block or length
            if len(frames) < MAX_FRAMES:
                frames.append(WireFrame(direction="sent" if sent else "received", type=kind,
                                        stream_id=int(d.get("stream_id", 0)), length=length,
                                        t_ns=t_ns))
        return H2Wire(frames=frames, total=total, dropped=max(total - len(frames), 0),
                      request_block=header_block(headers, sent_block),
                      response_block=header_block([(":status", str(s.status)), *s.headers],
                                            got_block) if got_block else None)

    # ----------------------------------------------------------------------- closing
    def path(self) -> QuicPath:
        loss = self.conn._loss
        f = self.facts

        def ms(v: float) -> float | None:
            return None if v in (0.0, float("inf")) else round(v * 1e3, 3)

        return QuicPath(
            t_ms=round(self.j.clock.now() / 1e6, 3), smoothed_rtt_ms=ms(loss._rtt_smoothed),
            rttvar_ms=ms(loss._rtt_variance), min_rtt_ms=ms(loss._rtt_min),
            latest_rtt_ms=ms(loss._rtt_latest), cwnd_bytes=loss.congestion_window,
            bytes_in_flight=loss.bytes_in_flight,
            packets_sent=sum(1 for p in f.packets if p.direction == "sent"),
            packets_received=sum(1 for p in f.packets if p.direction == "received"),
            packets_lost=self.lost, pto_count=self.ptos)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.transport is not None and self.closed is None:
                self.conn.close(error_code=ErrorCode.H3_NO_ERROR)
                self.transmit()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def _squeeze(frames: list[str]) -> list[str]:
    """Frame types in order, a run of one type written once with its count (padding ×3)."""
    out: list[str] = []
    run = 0
    for i, name in enumerate(frames):
        run += 1
        if i + 1 == len(frames) or frames[i + 1] != name:
            out.append(name if run == 1 else f"{name} ×{run}")
            run = 0
    return out


def request_headers_h3(request: Request) -> list[tuple[str, str]]:
    """Pseudo-header fields first, then lowercase regular fields without the connection-
    specific ones; :authority replaces Host (RFC 9114 §4.2, §4.3.1)."""
    defaults = [("user-agent", USER_AGENT), ("accept", ACCEPT),
                ("accept-encoding", ACCEPT_ENCODING)]
    return pseudo_first(request, defaults, _CONNECTION_FIELDS)


def _close_error(close: QuicClose, server: str, established: bool) -> JourneyError:
    code = f"0x{close.error_code:x}" + (f" {close.error_name}" if close.error_name else "")
    said = f" with the reason \"{close.reason}\"" if close.reason else ""
    who = server if close.by == "server" else "we"
    if not established and 0x100 <= close.error_code <= 0x1FF and close.by == "server":
        return QuicTlsError("quic.tls_alert", f"{server} ended QUIC's TLS handshake with "
                            f"CONNECTION_CLOSE {code}{said}: the TLS alert "
                            f"{close.error_code - 0x100} (RFC 9001 §4.8)")
    if not established:
        return QuicConnectError("quic.closed", f"{who} closed the QUIC connection during the "
                                f"handshake: CONNECTION_CLOSE ({close.error_space}) "
                                f"{code}{said}")
    if close.by == "client" and close.error_space == "application":
        return HttpError("http.h3_malformed", f"{server} sent HTTP/3 that breaks the protocol, "
                         f"so we closed the connection: CONNECTION_CLOSE ({close.error_space}) "
                         f"{code}{said} (RFC 9114 §8)")
    return HttpError("http.h3_closed", f"{who} closed the QUIC connection before the response "
                     f"was complete: CONNECTION_CLOSE ({close.error_space}) {code}{said}")


_CERT_ALERTS = ("AlertBadCertificate", "AlertCertificateExpired", "AlertUnsupportedCertificate",
                "AlertCertificateRevoked", "AlertCertificateUnknown", "AlertUnknownCa")


def _alert_error(alert: Exception, chain: list[bytes], server: str,
                 cafile: str | None) -> JourneyError:
    """Our TLS refused the server's handshake: a certificate is worded from the chain as
    over TCP (net/certs.py), anything else by aioquic's own words."""
    if type(alert).__name__ in _CERT_ALERTS and chain:
        from datetime import UTC, datetime

        from whathappens.net import certs

        v = certs.verify_chain(chain, server, cafile=cafile, now=datetime.now(UTC))
        code, reason = (v.code, v.reason) if not v.ok else ("other", f"{alert}.")
        return QuicTlsError(f"tls.cert_{code}", f"the certificate of {server} was rejected: "
                            f"{reason}", detail=f"aioquic: {alert}")
    return QuicTlsError("quic.tls_failed", f"QUIC's TLS handshake with {server} failed: "
                        f"{alert or type(alert).__name__}", detail=repr(alert))


def _hook_tls(client: QuicClient) -> None:
    """Record each TLS message aioquic's TLS context reads or writes, at the time of the
    datagram that brought it (aioquic hands complete messages to this one method)."""
    ctx = client.hooked = client.conn.tls
    handle = ctx._handle_reassembled_message

    def recorded(message_type: int, input_buf: Buffer,
                 output_buf: dict[aiotls.Epoch, Buffer]) -> None:
        t = client.arrived_ns
        data = input_buf.data_slice(0, input_buf.capacity)
        client.message("received", tlsmsg.HANDSHAKE_TYPES.get(message_type, str(message_type)),
                       len(data), t)
        if message_type == 2:
            client.server_hello = data
        before = {e: b.tell() for e, b in output_buf.items()}
        try:
            handle(message_type=message_type, input_buf=input_buf, output_buf=output_buf)
        except Exception as exc:
            client.alert = exc
            raise
        finally:
            for epoch, buf in output_buf.items():
                for name, size in _messages(buf.data[before.get(epoch, 0):]):
                    client.message("sent", name, size, client.now_ns)  # when written

    ctx._handle_reassembled_message = recorded  # type: ignore[method-assign]


def _messages(data: bytes) -> list[tuple[str, int]]:
    """Handshake messages in written bytes: type (1 octet), length (3), body (RFC 8446 §4)."""
    out: list[tuple[str, int]] = []
    i = 0
    while i + 4 <= len(data):
        size = 4 + int.from_bytes(data[i + 1:i + 4], "big")
        out.append((tlsmsg.HANDSHAKE_TYPES.get(data[i], str(data[i])), size))
        i += size
    return out


def describe_chain(span: Span[QuicFacts], chain: list[bytes]) -> None:
    """The certificates the server sent, described (analysis after the journey, as over TCP:
    reading X.509 fields is not the handshake's time)."""
    from datetime import UTC, datetime

    from whathappens.net import certs

    now = datetime.now(UTC)
    span.facts.chain = [certs.describe_certificate(der, now) for der in chain] or None


async def connect(journey: Journey, span: Span[QuicFacts], address: str, port: int,
                  server_name: str, opts: TlsOptions, *, deadline: float,
                  initial_timeout: float,
                  chains: list[tuple[Span[QuicFacts], list[bytes]]],
                  ticket: SessionTicket | None = None,
                  tickets: Callable[[SessionTicket], None] | None = None,
                  early: Request | None = None) -> QuicClient:
    """The QUIC handshake with ``address``: facts on ``span`` (ended when our Finished left),
    its flights as children; raises a JourneyError of step "quic" on failure. The server's
    chain goes to ``chains``, to be described after the journey (describe_chain)."""
    f = span.facts
    f.address, f.port, f.family = address, port, "IPv6" if ":" in address else "IPv4"
    f.remote = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    f.sni = server_name if _is_name(server_name) else None
    f.alpn_offered = list(H3_ALPN)
    f.tls_version = "TLSv1.3"
    logger = _Logger(journey.clock.now)
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=server_name,
                               quic_logger=logger,
                               verify_mode=ssl.CERT_NONE if opts.insecure else ssl.CERT_REQUIRED)
    cafile = opts.cafile or ssl.get_default_verify_paths().cafile
    trust = opts.cafile or "the system trust store"
    f.verification = ("skipped (-k)" if opts.insecure else
                      f"aioquic in the handshake, against {trust}")
    try:
        config.load_verify_locations(cafile=cafile)
    except (OSError, ValueError) as exc:
        raise QuicTlsError("tls.trust_store", f"cannot load the CA certificates "
                           f"{opts.cafile or 'of the system'}: {exc}") from None
    # A session ticket from an earlier connection resumes the session (RFC 8446 §2.2, no
    # certificate sent); one that allows early data lets the request ride in 0-RTT packets.
    config.session_ticket = ticket
    f.session_offered = ticket is not None
    conn = QuicConnection(configuration=config, session_ticket_handler=tickets)
    client = QuicClient(journey, span, conn, logger, server_name)
    if early is not None and ticket is not None and ticket.max_early_data_size:
        client.early_request = early
    elif ticket is not None:
        f.early_data = "not offered: the ticket allows no early data"
    client.cafile, client.insecure, client.peer = opts.cafile, opts.insecure, (address, port)
    f.initial_timeout_ms = round(initial_timeout * 1e3, 1)
    try:
        client.transport = UdpSocket(address, port, journey.clock, client.received,
                                     client.udp_error)
    except OSError as exc:
        raise QuicConnectError("quic.socket", f"no UDP socket to {f.remote}: "
                               f"{exc.strerror or exc}", detail=repr(exc)) from None
    local = client.transport.sockname
    f.local = f"[{local[0]}]:{local[1]}" if ":" in local[0] else f"{local[0]}:{local[1]}"
    try:
        await _handshake(client, initial_timeout, deadline)
    except BaseException:
        _describe(client)
        chains.append((span, client.chain()))
        client.close()
        raise
    _describe(client)
    chains.append((span, client.chain()))
    f.path_after_handshake = client.path()
    return client


async def _handshake(client: QuicClient, initial_timeout: float, deadline: float) -> None:
    f, loop = client.facts, client.loop
    client.now_ns = journey_t = client.j.clock.now()
    client.conn.connect(client.peer, now=loop.time())
    _hook_tls(client)
    if client.early_request is not None:
        client.early = client.send(client.early_request, client.j.clock.now)
        f.early_data = "sent"
    else:
        client.transmit()
    # The step starts when our first Initial left; building the ClientHello (key shares)
    # before it is our own work, kept apart as OpenSSL's context set-up is over TCP.
    client.span.start_ns = client.flights[0].start_ns if client.flights else journey_t
    f.client_hello_build_ms = round((client.span.start_ns - journey_t) / 1e6, 3)
    if client.logger.trace is not None:
        f.original_dcid = client.logger.trace.odcid.hex()
    f.our_cid = client.conn.host_cid.hex()
    client.message("sent", "client_hello", client.hello_bytes, client.span.start_ns)
    if client.flights:
        client.flights[0].messages.append("client_hello")
    client.pending_msgs["sent"] = []
    first_by = loop.time() + initial_timeout
    while not client.finished_sent.done():
        heard = client.first_heard.done()
        limit = deadline if heard else min(deadline, first_by)
        left = limit - loop.time()
        if left <= 0:
            raise _timeout(client, heard, initial_timeout, deadline)
        waits: set[asyncio.Future[Any]] = {client.finished_sent}
        if not heard:
            waits.add(client.first_heard)
        await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    t_fin = client.finished_sent.result()
    client.j.end(client.span, t_fin)


def _timeout(client: QuicClient, heard: bool, initial_timeout: float,
             deadline: float) -> JourneyError:
    f = client.facts
    if client.failure is not None:
        return client.failure
    if not heard:
        sent = f.datagrams_sent
        return QuicConnectError(
            "quic.no_answer", f"no answer to the Initial within {initial_timeout * 1e3:.0f} ms: "
            f"{sent} datagram(s) sent to {f.remote} over UDP, none came back (UDP blocked "
            "on the way, or nothing speaks QUIC there)")
    return QuicConnectError(
        "quic.timeout", f"the QUIC handshake with {f.remote} did not finish in time: the "
        f"server answered (first at {f.server_first_ms} ms) but the handshake was not "
        f"complete when the time ran out; {f.datagrams_received} datagram(s) received")


def _describe(client: QuicClient) -> None:
    """What the handshake established, and its flights as child spans."""
    f, conn = client.facts, client.conn
    f.version = version_words(conn._version)
    f.server_cid = conn._peer_cid.cid.hex() if client.handshake_complete or \
        f.datagrams_received else None
    f.retry = client.retry_seen
    f.retry_token_bytes = len(conn._peer_token) if client.retry_seen else None
    ks = getattr(getattr(conn, "tls", None), "key_schedule", None)
    if ks is not None and ks.cipher_suite is not None:
        f.cipher = f"TLS_{ks.cipher_suite.name}"
    if client.server_hello is not None:
        with contextlib.suppress(tlsmsg.TlsParseError):
            f.group = tlsmsg.parse_server_hello(client.server_hello).key_share_group
    if client.handshake_complete and not client.insecure:
        f.chain_verification = ChainVerification(ok=True, code="ok", reason="trusted: chain "
                                                 "and name verified", by="aioquic in the handshake")
    _flight_spans(client)


def _flight_spans(client: QuicClient) -> None:
    for fl in client.flights:
        child = client.j.span("quic.flight", "quic", "you" if fl.direction == "sent" else
                              f"server {client.facts.remote}", "transport", QuicFlightFacts(
                                  flight=fl.name, direction=fl.direction,
                                  datagrams=fl.datagrams, packets=fl.packets, bytes=fl.bytes,
                                  spaces=fl.spaces, tls_messages=fl.messages),
                              parent=client.span, start_ns=fl.start_ns)
        child.end_ns = fl.end_ns


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False
