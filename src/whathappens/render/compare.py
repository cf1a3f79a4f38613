"""The TLS 1.2 vs 1.3 comparison (``--compare-tls``), as one table every renderer lays out.

The journey's ``facts.tls_compare`` holds two measured handshakes with the same server (the
arithmetic lives with the measurement); this module decides what a reader sees of it: one row
per figure with a cell per version, which rows a short report keeps (``brief``), the headline
of each version, the message flights, and the modelled line beside the measured one. The
terminal shows the brief rows, the HTML report all of them, the live page the headlines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from whathappens.contract.document import TlsCompare, TlsCompareModel, TlsCompareVersion
from whathappens.render.format import DASH, bracket, plural, precise_ms
from whathappens.render.steps import Message

TITLE = "TLS 1.2 vs 1.3, measured on this host"
SHORT_TITLE = "TLS 1.2 vs 1.3"
Tone = Literal["ok", "bad", "warn", ""]


@dataclass(frozen=True)
class Cell:
    text: str
    tone: Tone = ""
    code: bool = False           # a protocol name or value, shown as code
    strong: bool = False         # the figure the row is about
    note: str = ""               # said after the value, quieter


@dataclass(frozen=True)
class Row:
    label: str
    cells: list[Cell]
    brief: bool                  # also in the short (terminal) report


@dataclass(frozen=True)
class Flight:
    """Consecutive messages in one direction (RFC 8446 §2: a flight)."""

    sent: bool
    messages: list[str]
    since_hello_ms: float | None

    @property
    def arrow(self) -> str:
        return "→" if self.sent else "←"


@dataclass(frozen=True)
class VersionView:
    version: str                 # "1.2", "1.3"
    outcome: str                 # measured, refused, tcp_failed, failed
    plain: str                   # the outcome in a sentence
    headline: str                # "TLS 1.3: 3.41 ms, 1 round trip"
    flights: list[Flight]
    messages: list[Message]

    @property
    def measured(self) -> bool:
        return self.outcome == "measured"

    @property
    def tone(self) -> Tone:
        return "ok" if self.measured else "warn" if self.outcome == "refused" else "bad"


@dataclass(frozen=True)
class ModelView:
    """Modelled, not measured: the difference in round trips × the kernel's RTT."""

    available: bool
    round_trips: int = 0
    rtt: str = DASH
    expected: str = DASH
    measured: str = DASH
    beyond: str = DASH
    rtt_source: str = ""
    why_not: str = ""


@dataclass(frozen=True)
class CompareView:
    measured: bool
    reason: str                  # why not measured
    where: str = ""              # address:port
    server_name: str = ""
    rounds: int = 1
    clock: str = ""
    versions: list[VersionView] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    includes: str | None = None  # what the handshake time includes
    model: ModelView | None = None

    @property
    def head(self) -> list[str]:
        return [f"TLS {v.version}" for v in self.versions]

    @property
    def summary(self) -> str:
        """The comparison in one line (the live page's step)."""
        if not self.measured:
            return self.reason or "not measured"
        return "; ".join(v.headline for v in self.versions)


def _num(v: float | None) -> str:
    return DASH if v is None else precise_ms(v)


def _accepted(v: TlsCompareVersion) -> Cell:
    if v.accepted is True:
        return Cell("yes", "ok")
    if v.accepted is False:
        return Cell("no, refused", "bad")
    return Cell("unknown")


def _handshake(v: TlsCompareVersion) -> Cell:
    n = v.median_of or 0
    return Cell(_num(v.handshake_ms), strong=True, note=f"(median of {n})" if n > 1 else "")


def _samples(v: TlsCompareVersion) -> Cell:
    return Cell(", ".join(precise_ms(x.handshake_ms) for x in v.samples
                          if x.handshake_ms is not None) or DASH)


ROWS: list[tuple[str, bool, Callable[[TlsCompareVersion], Cell]]] = [
    ("offered", False, lambda v: Cell(v.offered or DASH)),
    ("accepted", True, _accepted),
    ("negotiated", False, lambda v: Cell(v.negotiated_version or DASH, code=True)),
    ("TCP connect", True, lambda v: Cell(_num(v.tcp_connect_ms))),
    ("handshake", True, _handshake),
    ("every sample", False, _samples),
    ("round trips waited for", True,
     lambda v: Cell(DASH if v.round_trips is None else str(v.round_trips))),
    ("each wait", True, lambda v: Cell(" + ".join(precise_ms(w) for w in v.waits_ms) or DASH)),
    ("kernel RTT", True, lambda v: Cell(_num(v.kernel_rtt_ms))),
    ("cipher", True, lambda v: Cell(v.cipher or DASH, code=True)),
    ("key exchange group", True, lambda v: Cell(v.group or DASH, code=True)),
    ("ALPN", False, lambda v: Cell(v.alpn or DASH, code=True)),
    ("context setup (not in handshake)", False, lambda v: Cell(_num(v.context_setup_ms))),
]


def _version(v: TlsCompareVersion) -> VersionView:
    msgs = [Message(m.direction == "sent", m.type, m.t_ms, m.since_client_hello_ms, m.bytes)
            for m in v.messages]
    hello = next((m.t_ms for m in msgs if m.type == "client_hello"), None)
    flights = [Flight(f.from_ == "client", list(f.messages),
                      None if hello is None or f.t_ms is None else f.t_ms - hello)
               for f in v.flights]
    if v.outcome == "measured":
        headline = (f"TLS {v.version}: {_num(v.handshake_ms)}, "
                    f"{plural(v.round_trips or 0, 'round trip')}")
    else:
        headline = f"TLS {v.version}: {v.error.message if v.error else v.outcome}"
    return VersionView(v.version, v.outcome, v.plain, headline, flights, msgs)


def _model(m: TlsCompareModel | None) -> ModelView | None:
    if m is None:
        return None
    if not m.available:
        return ModelView(False, why_not=m.why_not or "")
    return ModelView(True, m.round_trip_difference or 0, _num(m.rtt_ms),
                     _num(m.expected_difference_ms), _num(m.measured_difference_ms),
                     _num(m.beyond_round_trips_ms), m.rtt_source or "")


def compare_view(tc: TlsCompare | None) -> CompareView | None:
    """None when the journey did not ask for the comparison."""
    if tc is None:
        return None
    if not tc.measured:
        return CompareView(False, tc.reason or "")
    where = f"{bracket(tc.address or '')}:{tc.port}"
    rows = [Row(label, [cell(v) for v in tc.versions], brief) for label, brief, cell in ROWS]
    includes = next((v.handshake_includes for v in tc.versions if v.handshake_includes), None)
    return CompareView(True, "", where, tc.server_name or "", tc.rounds or 1, tc.clock or "",
                       [_version(v) for v in tc.versions], rows, includes, _model(tc.model))
