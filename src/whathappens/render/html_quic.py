"""The QUIC section of the HTML report (only when a leg went over HTTP/3): the handshake's
facts, its flights, the packets, the TLS messages inside, QUIC's view of the path and the
transport parameters both ways. Laid out from render/quic_view.py."""

from __future__ import annotations

from collections.abc import Callable

from whathappens.contract.document import HttpCompare
from whathappens.explain.texts import Explanation
from whathappens.render.format import ms, three
from whathappens.render.html_parts import code, dl, esc, section, table
from whathappens.render.steps import LegView, QuicView


def quic_html(legs: list[LegView], label: Callable[[LegView], str],
              explained: Callable[[Explanation | None], str]) -> str:
    parts = [quic_step(label(leg), leg.quic, explained) for leg in legs if leg.quic is not None]
    if not parts:
        return ""
    return section("quic", "QUIC (HTTP/3)", "".join(parts), layer="transport")


def quic_step(title: str, q: QuicView, explained: Callable[[Explanation | None], str]) -> str:
    pairs = [("from → to", code(f"{q.local} → {q.remote}")),
             ("version", code(q.version or "—")),
             ("TLS inside", code(" ".join(x for x in ("TLSv1.3", q.cipher, q.group) if x))),
             ("ALPN", code(q.alpn or "none")), ("SNI", code(q.sni or "—")),
             ("handshake time", f"<strong>{esc(ms(q.timing.duration_ms))}</strong> (our first "
                                "Initial sent → our Finished sent)"),
             ("connection IDs", f"ours {code(q.our_cid)}, the server's {code(q.server_cid)}"),
             ("address validation", "Retry: one more round trip" if q.retry else "no Retry")]
    pairs += [("probe timeout", esc(probe)) for probe in q.probes]
    if q.path_after:
        pairs.append(("path after the handshake", esc(q.path_after)))
    if q.path_end:
        pairs.append(("path after the exchange", esc(q.path_end)))
    if q.close:
        pairs.append(("connection close", f"<span class=\"bad\">{esc(q.close)}</span>"))
    out = [f"<h3>{title}</h3>", dl(pairs)]
    if q.error is not None:
        out.append(f"<p class=\"bad\">✗ {esc(q.error.message)} "
                   f"<span class=\"muted\">[{esc(q.error.code)}]</span></p>")
    out.append("<h4>Flights</h4>" + table(
        ["direction", "flight", "at (ms since t0)", "datagrams", "packets", "bytes",
         "TLS messages"],
        [[f.arrow, code(f.name), esc(three(f.start_ms)), esc(f.datagrams), esc(f.packets),
          esc(f.bytes), esc(", ".join(f.messages))] for f in q.flights]))
    out.append(f"<h4>Packets ({len(q.packets)} of {q.packets_total})</h4>" + table(
        ["direction", "at (ms since t0)", "space", "number", "bytes", "datagram", "frames"],
        [[p.arrow, esc(three(p.t_ms)), code(p.space), esc("" if p.number is None else p.number),
          esc(p.bytes), esc(f"#{p.datagram} ({p.datagram_bytes} B"
                            + (", coalesced)" if p.coalesced else ")")),
          esc(", ".join(p.frames))] for p in q.packets]))
    if q.messages:
        out.append("<h4>TLS messages inside</h4>" + table(
            ["direction", "message", "at (ms since t0)", "bytes"],
            [[m.direction, code(m.type), esc(three(m.t_ms)), esc(m.bytes)]
             for m in q.messages]))
    if q.verified is not None:
        out.append(f"<p class=\"{'ok' if q.verified else 'bad'}\">Verification: "
                   f"{esc(q.verification)} <span class=\"muted\">(by {esc(q.verified_by)})"
                   "</span></p>")
    for who, params in (("server's", q.server_params), ("our", q.local_params)):
        if params:
            out.append(f"<div class=\"advanced\"><p class=\"muted\">The {who} transport "
                       "parameters (RFC 9000 §18):</p>"
                       + table(["parameter", "value"], [[code(k), esc(v)] for k, v in params])
                       + "</div>")
    return "".join(out) + explained(q.explain)


def http_compare_html(hc: HttpCompare | None) -> str:
    """--compare-http: medians side by side, every sample, round trips, the labelled model."""
    if hc is None:
        return ""
    rows = [[esc(v.version), esc(ms(v.median_setup_ms)), esc(ms(v.median_ttfb_ms)),
             f"<strong>{esc(ms(v.median_first_byte_ms))}</strong>",
             esc("?" if v.round_trips is None else v.round_trips),
             esc(", ".join(s.error or ms(s.first_byte_ms) for s in v.samples))]
            for v in hc.versions]
    body = (f"<p class=\"muted\">Fresh connections to {code(hc.address)} for {code(hc.url)}, "
            f"{esc(hc.rounds)} rounds in alternating order; each its own short journey, "
            "times on its own clock (medians; every sample listed).</p>"
            + table(["", "set-up", "TTFB", "first byte from the first packet",
                     "round trips", "samples (first byte)"], rows)
            + "".join(f"<p class=\"warn\">{esc(line)}</p>" for line in hc.modelled))
    return section("http-compare", "HTTP/1.1 vs HTTP/2 vs HTTP/3, measured on this host",
                   body, layer="application")
