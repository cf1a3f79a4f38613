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
from typing import Any, Literal

from whathappens.render.format import DASH, plural, precise_ms
from whathappens.render.steps import Message, message

TITLE = "TLS 1.2 vs 1.3, measured on this host"
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


def _num(v: object) -> str:
    return DASH if v is None else precise_ms(float(v))  # type: ignore[arg-type]


def _accepted(v: dict[str, Any]) -> Cell:
    if v.get("accepted") is True:
        return Cell("yes", "ok")
    if v.get("accepted") is False:
        return Cell("no, refused", "bad")
    return Cell("unknown")


def _handshake(v: dict[str, Any]) -> Cell:
    n = int(v.get("median_of") or 0)
    return Cell(_num(v.get("handshake_ms")), strong=True,
                note=f"(median of {n})" if n > 1 else "")


def _joined(values: object) -> str:
    return " + ".join(precise_ms(float(w)) for w in values or []) or DASH  # type: ignore[attr-defined]


ROWS: list[tuple[str, bool, Callable[[dict[str, Any]], Cell]]] = [
    ("offered", False, lambda v: Cell(str(v.get("offered") or DASH))),
    ("accepted", True, _accepted),
    ("negotiated", False, lambda v: Cell(str(v.get("negotiated_version") or DASH), code=True)),
    ("TCP connect", True, lambda v: Cell(_num(v.get("tcp_connect_ms")))),
    ("handshake", True, _handshake),
    ("every sample", False, lambda v: Cell(", ".join(
        precise_ms(float(x["handshake_ms"])) for x in v.get("samples") or []
        if x.get("handshake_ms") is not None) or DASH)),
    ("round trips waited for", True,
     lambda v: Cell(DASH if v.get("round_trips") is None else str(v["round_trips"]))),
    ("each wait", True, lambda v: Cell(_joined(v.get("waits_ms")))),
    ("kernel RTT", True, lambda v: Cell(_num(v.get("kernel_rtt_ms")))),
    ("cipher", True, lambda v: Cell(str(v.get("cipher") or DASH), code=True)),
    ("key exchange group", True, lambda v: Cell(str(v.get("group") or DASH), code=True)),
    ("ALPN", False, lambda v: Cell(str(v.get("alpn") or DASH), code=True)),
    ("context setup (not in handshake)", False,
     lambda v: Cell(_num(v.get("context_setup_ms")))),
]


def _version(v: dict[str, Any]) -> VersionView:
    msgs = [message(m) for m in v.get("messages") or []]
    hello = next((m.t_ms for m in msgs if m.type == "client_hello"), None)
    flights = [Flight(f.get("from") == "client", [str(x) for x in f.get("messages") or []],
                      None if hello is None or f.get("t_ms") is None
                      else float(f["t_ms"]) - hello)
               for f in v.get("flights") or []]
    label, outcome = str(v.get("version")), str(v.get("outcome"))
    if outcome == "measured":
        headline = (f"TLS {label}: {_num(v.get('handshake_ms'))}, "
                    f"{plural(int(v.get('round_trips') or 0), 'round trip')}")
    else:
        why = (v.get("error") or {}).get("message") or outcome
        headline = f"TLS {label}: {why}"
    return VersionView(label, outcome, str(v.get("plain") or ""), headline, flights, msgs)


def _model(m: dict[str, Any]) -> ModelView | None:
    if not m:
        return None
    if not m.get("available"):
        return ModelView(False, why_not=str(m.get("why_not") or ""))
    return ModelView(True, int(m.get("round_trip_difference") or 0), _num(m.get("rtt_ms")),
                     _num(m.get("expected_difference_ms")),
                     _num(m.get("measured_difference_ms")),
                     _num(m.get("beyond_round_trips_ms")), str(m.get("rtt_source") or ""))


def compare_view(tc: dict[str, Any] | None) -> CompareView | None:
    """None when the journey did not ask for the comparison."""
    if not tc:
        return None
    if not tc.get("measured"):
        return CompareView(False, str(tc.get("reason") or ""))
    versions: list[dict[str, Any]] = list(tc.get("versions") or [])
    addr = str(tc.get("address") or "")
    where = f"[{addr}]:{tc.get('port')}" if ":" in addr else f"{addr}:{tc.get('port')}"
    rows = [Row(label, [cell(v) for v in versions], brief) for label, brief, cell in ROWS]
    includes = next((str(v["handshake_includes"]) for v in versions
                     if v.get("handshake_includes")), None)
    return CompareView(True, "", where, str(tc.get("server_name") or ""),
                       int(tc.get("rounds") or 1), str(tc.get("clock") or ""),
                       [_version(v) for v in versions], rows, includes,
                       _model(tc.get("model") or {}))
