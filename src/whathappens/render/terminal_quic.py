"""The QUIC step in the terminal report: the handshake's flights, the first packets, the TLS
messages inside, the chain, QUIC's view of the path (render/quic_view.py is the view;
render/terminal.py calls :func:`quic_step`)."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from whathappens.contract.document import HttpCompare
from whathappens.explain.texts import Explanation
from whathappens.render.format import ms
from whathappens.render.steps import Problem, QuicView, Timing


class Report(Protocol):
    """What this step uses of the terminal report (render/terminal.py's ``Report``)."""

    def head(self, label: str, t: Timing, error: Problem | None, facts: str) -> None: ...

    def detail(self, text: str | Text, indent: int = 8, style: str = "") -> None: ...

    def explained(self, e: Explanation | None, indent: int = 8) -> None: ...


def quic_step(r: Report, q: QuicView) -> None:
    r.head("QUIC", q.timing, q.error, q.headline)
    if q.our_cid:
        r.detail(f"connection IDs: ours {q.our_cid}, the server's {q.server_cid or 'none yet'} "
                 f"(our first Initial went to {q.original_dcid})", style="dim")
    if q.client_hello_build_ms is not None:
        r.detail(f"building the ClientHello before the first Initial: "
                 f"{ms(q.client_hello_build_ms)} (not in the step's time)", style="dim")
    if q.flights:
        r.detail(Text("flights (→ sent, ← received; ms since t0):", style="dim"))
        for f in q.flights:
            line = Text(f"  {f.arrow} {f.name:<17}", style="yellow" if f.sent else "")
            line.append(f"{f.start_ms:9.2f}  ", style="dim")
            line.append(f.words)
            r.detail(line)
    if q.packets:
        r.detail(Text(f"packets ({len(q.packets)} of {q.packets_total} shown; all in the "
                      "JSON):", style="dim"))
        for p in q.packets:
            line = Text(f"  {p.arrow} ", style="yellow" if p.sent else "")
            line.append(f"{p.t_ms:9.3f}  ", style="dim")
            line.append(p.words)
            r.detail(line)
    if q.messages:
        seq = Text("TLS inside: ", style="dim")
        for m in q.messages:
            seq.append(f"{m.arrow} {m.type} ", style="yellow" if m.sent else "")
            if m.t_ms is not None:
                seq.append(f"{m.t_ms:.2f}  ", style="dim")
        r.detail(seq)
    _chain_and_path(r, q)
    r.explained(q.explain)


def _chain_and_path(r: Report, q: QuicView) -> None:
    for cert in q.chain:
        r.detail(Text(f"{'leaf' if cert.leaf else 'CA  '} {cert.who}  issued by {cert.issuer}"
                      f"  valid until {cert.not_after} ({cert.validity})",
                      style="bold" if cert.leaf else ""))
    if q.verified is not None:
        r.detail(Text(f"verification: {q.verification} (by {q.verified_by})",
                      style="green" if q.verified else "red"))
    for probe in q.probes:
        r.detail(Text(probe, style="yellow"))
    if q.path_after:
        r.detail(f"QUIC's view of the path after the handshake: {q.path_after}", style="dim")
    if q.path_end:
        r.detail(f"after the exchange: {q.path_end}", style="dim")
    if q.handshake_done_ms is not None:
        r.detail(f"HANDSHAKE_DONE arrived at {q.handshake_done_ms:.2f} ms: the handshake "
                 "confirmed (RFC 9001 §4.1.2)", style="dim")
    if q.server_params:
        r.detail("server's transport parameters: " + ", ".join(
            f"{k} {v}" for k, v in q.server_params), style="dim")
    if q.close:
        r.detail(Text(q.close, style="red"))


class Printer(Protocol):
    """What the HTTP versions block uses of the terminal report."""

    c: Console


def http_compare_block(r: Printer, hc: HttpCompare) -> None:
    """--compare-http: the medians side by side, every sample, the round trips and the
    clearly labelled model."""
    r.c.print()
    title = Text("HTTP/1.1 vs HTTP/2 vs HTTP/3, measured on this host", style="bold blue")
    title.append(f"  (fresh connections to {hc.address} for {hc.url}, {hc.rounds} rounds in "
                 "alternating order; each its own short journey, times on its own clock)",
                 style="dim")
    r.c.print(title, overflow="fold")
    grid = Table.grid(padding=(0, 2))
    for _ in range(5):
        grid.add_column(no_wrap=True, justify="right")
    grid.add_row(*(Text(h, style="bold") for h in (
        "", "set-up", "TTFB", "first byte from first packet", "round trips")))
    for v in hc.versions:
        grid.add_row(v.version, ms(v.median_setup_ms), ms(v.median_ttfb_ms),
                     ms(v.median_first_byte_ms),
                     "?" if v.round_trips is None else str(v.round_trips))
    r.c.print(Padding(grid, (0, 0, 0, 2)))
    for v in hc.versions:
        shown = ", ".join(s.error or ms(s.first_byte_ms) for s in v.samples)
        r.c.print(Padding(Text(f"{v.version} samples (first byte from first packet): {shown}",
                               style="dim"), (0, 0, 0, 2)), overflow="fold")
    for line in hc.modelled:
        r.c.print(Padding(Text(line, style="yellow"), (0, 0, 0, 2)), overflow="fold")
