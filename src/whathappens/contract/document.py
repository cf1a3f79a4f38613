"""The journey document: what ``--json`` prints, typed, and how to read it back.

``Journey.to_dict()`` writes it; :func:`read_journey` reads such a dict (fresh, or loaded from
a file, or after ``render.visible.visible_tree`` escaped it) into these dataclasses, each span's
``attrs`` into the facts class of its name. Renderers and analyses read only this typed form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from whathappens.analysis.model import Analysis
from whathappens.contract.codec import from_json
from whathappens.contract.facts import Facts, doc, facts_class

F = TypeVar("F", bound=Facts)


# ------------------------------------------------------------------------- journey facts
@dataclass(kw_only=True)
class Summary:
    legs: int = 0
    status: int | None = None
    reason: str | None = None
    http_version: str | None = None
    tls_version: str | None = None
    failed_step: str | None = None

    omit_none: ClassVar[bool] = True


@dataclass(kw_only=True)
class Resources:
    """What the journey spent (whathappens.net.budget): CPU on the journey's thread, the
    process's peak RSS (VmHWM) and its growth during the journey, reads of peer data,
    event-loop turns given by pacing, and the peer events counted against the budget."""

    cpu_ms: float
    cpu_clock: str = ""
    peak_rss_kib: int = 0
    peak_rss_growth_kib: int
    reads: int
    event_loop_turns: int
    events: dict[str, int]


@dataclass(kw_only=True)
class TlsCompareSample:
    handshake_ms: float | None
    outcome: str
    tcp_connect_ms: float | None = None
    round_trips: int | None = None
    started_ms: float | None = None
    ended_ms: float | None = None


@dataclass(kw_only=True)
class TlsCompareFlight:
    from_: str = field(metadata={"json": "from", "doc": "client | server"})
    messages: list[str]
    t_ms: float | None = None


@dataclass(kw_only=True)
class TlsCompareMessage:
    direction: str
    type: str
    t_ms: float
    bytes: int | None = None
    since_client_hello_ms: float | None = None


@dataclass(kw_only=True)
class TlsCompareError:
    code: str
    message: str


@dataclass(kw_only=True)
class TlsCompareVersion:
    """One TLS version's figures: its median sample, carrying every sample's times."""

    version: str = field(metadata=doc("1.2 | 1.3"))
    offered: str
    accepted: bool | None = field(metadata=doc("null: unknown (TCP failed, timeout)"))
    outcome: str = field(metadata=doc("measured | refused | tcp_failed | failed"))
    plain: str
    error: TlsCompareError | None
    negotiated_version: str | None = None
    cipher: str | None = None
    group: str | None = None
    alpn: str | None = None
    session_reused: bool | None = None
    hello_retry_request: bool | None = None
    tcp_connect_ms: float | None
    handshake_ms: float | None = field(
        metadata=doc("ClientHello written → handshake complete on our side"))
    step_ms: float | None = None
    context_setup_ms: float | None = None
    handshake_includes: str | None = None
    round_trips: int | None = field(metadata=doc("server flights the client waited for"))
    waits_ms: list[float] = field(default_factory=list)
    flights: list[TlsCompareFlight] = field(default_factory=list)
    kernel_rtt_ms: float | None = None
    kernel_rttvar_ms: float | None = None
    kernel_rtt_after_handshake_ms: float | None = None
    started_ms: float | None = None
    ended_ms: float | None = None
    messages: list[TlsCompareMessage]
    median_of: int | None = None
    samples: list[TlsCompareSample] = field(default_factory=list)


@dataclass(kw_only=True)
class TlsCompareModel:
    """Modelled, not measured: Δ round trips × the kernel's RTT, beside the measured
    difference."""

    modelled: bool = True
    available: bool
    note: str
    why_not: str | None = None
    round_trip_difference: int | None = None
    rtt_ms: float | None = None
    rtt_source: str | None = None
    expected_difference_ms: float | None = None
    measured_difference_ms: float | None = None
    beyond_round_trips_ms: float | None = None


@dataclass(kw_only=True)
class TlsCompare:
    """--compare-tls: after the journey, fresh connections to the address it connected to,
    TLS 1.2 and TLS 1.3 in alternating rounds, outside the journey's spans (times in ms
    since the journey's t0). measured false: nothing compared, and why."""

    measured: bool
    reason: str | None = None
    address: str | None = None
    port: int | None = None
    server_name: str | None = None
    sni: bool | None = None
    clock: str | None = None
    timeout_s: float | None = None
    rounds: int | None = None
    how: str | None = None
    versions: list[TlsCompareVersion] = field(default_factory=list)
    model: TlsCompareModel | None = None


@dataclass(kw_only=True)
class DemoServer:
    """One server of the demo internet (whathappens.demo.topology)."""

    name: str
    role: str
    address: str | None = None
    addresses: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    zones: list[str] = field(default_factory=list)
    certificate: str | None = None
    problem: str | None = None
    delay_ms: float | None = None
    delay_applies_to: str | None = None


@dataclass(kw_only=True)
class DemoPageFile:
    """One file of the demo's page and the delay injected before its answer."""

    path: str
    kind: str
    delay_key: str | None = None
    delay_ms: float = 0.0
    purpose: str = ""


@dataclass(kw_only=True)
class DemoPage:
    """The demo's www.example.com page, built to be watched loading (demo/page.py)."""

    url: str = "/"
    files: list[DemoPageFile] = field(default_factory=list)
    font: str | None = None
    note: str = ""


@dataclass(kw_only=True)
class DemoFacts:
    servers: list[DemoServer] = field(default_factory=list)
    delays_injected: bool = False
    page: DemoPage | None = None


@dataclass(kw_only=True)
class LabFacts:
    state: str
    profile: str | None
    server_spans: int


@dataclass(kw_only=True)
class HttpCompareSample:
    """One fresh connection and one request, on its own journey's clock (ms)."""

    round: int
    setup_ms: float | None = field(default=None, metadata=doc(
        "TCP connect + TLS handshake, or the QUIC step"))
    ttfb_ms: float | None = field(default=None, metadata=doc("request sent → first byte"))
    first_byte_ms: float | None = field(default=None, metadata=doc(
        "the connection's first packet → the response's first byte"))
    error: str | None = None


@dataclass(kw_only=True)
class HttpCompareVersion:
    version: str = field(metadata=doc("HTTP/1.1 | HTTP/2 | HTTP/3"))
    round_trips: int | None = field(default=None, metadata=doc(
        "to the first byte, counted from the recorded timeline: TCP's handshake (1), TLS's "
        "flights (1 in TLS 1.3), QUIC's handshake (1, +1 for a Retry), the request (1)"))
    median_setup_ms: float | None = None
    median_ttfb_ms: float | None = None
    median_first_byte_ms: float | None = None
    samples: list[HttpCompareSample] = field(default_factory=list)


@dataclass(kw_only=True)
class HttpCompare:
    """--compare-http: after the journey, fresh connections to its final URL's address over
    HTTP/1.1, HTTP/2 and HTTP/3, in rounds of alternating order; each its own short journey."""

    url: str
    address: str
    rounds: int
    versions: list[HttpCompareVersion] = field(default_factory=list)
    rtt_ms: float | None = field(default=None, metadata=doc(
        "the RTT the model uses: the journey's kernel TCP RTT or QUIC's smoothed RTT"))
    modelled: list[str] = field(default_factory=list, metadata=doc(
        "modelled, not measured: Δ round trips × rtt_ms against HTTP/3"))


@dataclass(kw_only=True)
class JourneyFacts:
    """Facts about the whole journey rather than one span."""

    summary: Summary | None = None
    final_url: str | None = None
    redirects: int | None = None
    trace_id: str | None = None
    resources: Resources | None = None
    tls_compare: TlsCompare | None = None
    http_compare: HttpCompare | None = None
    demo: DemoFacts | None = None
    lab: LabFacts | None = None

    omit_none: ClassVar[bool] = True  # a fact not established is left out, not null


# ---------------------------------------------------------------------------- the document
@dataclass(kw_only=True)
class ErrorDoc:
    step: str
    code: str
    message: str
    exit_code: int
    detail: str | None = field(default=None, metadata={"omit_default": True})


@dataclass(kw_only=True)
class FindingDoc:
    severity: str = field(metadata=doc("info | warning | error"))
    step: str
    message: str


@dataclass(kw_only=True)
class ClockDoc:
    name: str
    unit: str
    t0_wall_ns: int = field(metadata=doc("wall clock (Unix epoch, ns) at t0"))
    t0_monotonic_ns: int = field(metadata=doc("the monotonic clock's value at t0"))


@dataclass(kw_only=True)
class SpanDoc:
    """One span as the JSON has it; ``facts`` is its ``attrs``, typed by its name."""

    id: int
    name: str
    step: str
    actor: str
    layer: str
    start_ms: float
    end_ms: float | None
    duration_ms: float | None
    facts: Facts = field(metadata={"json": "attrs"})
    error: ErrorDoc | None
    children: list[SpanDoc]

    @staticmethod
    def field_types(data: Mapping[str, object]) -> dict[str, type]:
        """For the codec: ``attrs`` are read as the facts class of the span's name."""
        return {"facts": facts_class(str(data.get("name", "")))}

    def facts_as(self, cls: type[F]) -> F | None:
        """The facts when this span's are of ``cls``, else None."""
        return self.facts if isinstance(self.facts, cls) else None

    def child(self, name: str) -> SpanDoc | None:
        return next((c for c in self.children if c.name == name), None)

    def walk(self) -> Iterator[SpanDoc]:
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass(kw_only=True)
class JourneyDoc:
    schema: str
    schema_version: str
    url: str = field(metadata=doc("what the user asked for, as typed"))
    clock: ClockDoc
    total_ms: float | None
    facts: JourneyFacts
    spans: list[SpanDoc]
    findings: list[FindingDoc]
    error: ErrorDoc | None
    exit_code: int
    analysis: Analysis | None = field(
        default=None, metadata=doc("derived from the rest (whathappens.analysis): the "
                                   "summary, each step's verdict, who answered, the cache"))

    def all_spans(self) -> Iterator[SpanDoc]:
        for s in self.spans:
            yield from s.walk()


def read_span(data: object) -> SpanDoc:
    """One span's dict (``Span.to_dict()``) as the typed span; ContractError if it is not."""
    return from_json(SpanDoc, data)


def read_journey(data: Mapping[str, object]) -> JourneyDoc:
    """A journey dict (``--json``'s output) as the typed document; ContractError if it is
    not one."""
    return from_json(JourneyDoc, data)
