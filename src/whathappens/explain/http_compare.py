"""--compare-http's texts (HTTP/1.1 vs HTTP/2 vs HTTP/3 on fresh connections), in the two
registers of explain/texts.py, filled with the comparison's own medians and round trips.

Pure. The comparison is a fact of the whole journey (``facts.http_compare``), not a span, so
its text lives here rather than in texts.py's per-span tables; the templates follow the same
rules (``{name}``, ``{if:name}``; a sentence whose value is absent is left out).
"""

from __future__ import annotations

from whathappens.contract.document import HttpCompare
from whathappens.explain.fill import Values, fill_text, value
from whathappens.explain.texts import Explanation, SpanText
from whathappens.explain.words import plural
from whathappens.render.format import ms, precise_ms

KEYS = {"HTTP/1.1": "h11", "HTTP/2": "h2", "HTTP/3": "h3"}

TEXT = SpanText(
    "HTTP/1.1 vs HTTP/2 vs HTTP/3, tried for real",
    ("The same page was asked for again on brand-new connections, {rounds} times over each "
     "version of HTTP, taking turns so that no version always went first.",
     "HTTP/1.1 and HTTP/2 first open a TCP connection and then agree on encryption (TLS) "
     "inside it: two exchanges with the server before the request may leave. HTTP/3 travels "
     "over QUIC, which opens the connection and agrees on encryption in one exchange, so "
     "its request can leave one round trip sooner.",
     "Here the first byte of the answer came {h11_first_byte} after the connection's first "
     "packet over HTTP/1.1, {h2_first_byte} over HTTP/2 and {h3_first_byte} over HTTP/3 "
     "(medians).",
     "{if:h3_not_faster}HTTP/3 was not the quickest here: when the server is this close, a "
     "round trip costs less than the work both programs do, so the saved round trip does not "
     "show."),
    ("HTTP/1.1 (RFC 9112) and HTTP/2 (RFC 9113) run over TCP + TLS 1.3: the TCP handshake is "
     "one round trip, TLS 1.3's a second (RFC 8446 §2), the request a third. HTTP/3 (RFC 9114) "
     "runs over QUIC (RFC 9000), whose handshake carries TLS 1.3 in CRYPTO frames (RFC 9001): "
     "transport and keys in one round trip, one more when the server asks for a Retry "
     "(RFC 9000 §8.1.2).",
     "Round trips to the first byte, counted from the recorded timelines: HTTP/1.1 "
     "{h11_round_trips}, HTTP/2 {h2_round_trips}, HTTP/3 {h3_round_trips}.",
     "The modelled lines multiply the difference by this journey's RTT ({rtt}): a model, "
     "not a measurement; on a path with a longer RTT the round trips would decide."),
    ("Each request is a short journey of its own, on its own monotonic clock, to the address "
     "the journey used (no DNS): set-up is the TCP connect plus the TLS handshake, or the QUIC "
     "step; TTFB runs from the request sent to the first byte of the answer; the first byte "
     "from the first packet is both together. Medians of {rounds} rounds; every sample is "
     "listed.",),
)


def explain_http_compare(hc: HttpCompare | None) -> Explanation | None:
    """The comparison's texts with its medians; None when there is no comparison."""
    if hc is None:
        return None
    values: Values = {"rounds": value("rounds", hc.rounds),
                      "rtt": precise_ms(hc.rtt_ms) if hc.rtt_ms is not None else None}
    firsts: dict[str, float] = {}
    for v in hc.versions:
        key = KEYS.get(v.version)
        if key is None:
            continue
        if v.median_first_byte_ms is not None:
            values[f"{key}_first_byte"] = ms(v.median_first_byte_ms)
            firsts[key] = v.median_first_byte_ms
        if v.round_trips is not None:
            values[f"{key}_round_trips"] = plural(v.round_trips, "round trip")
    if len(firsts) == len(KEYS):
        values["h3_not_faster"] = firsts["h3"] > min(firsts["h11"], firsts["h2"])
    return fill_text(TEXT, values)
