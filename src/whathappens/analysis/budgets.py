"""What good looks like: a rule of thumb per step, and this journey's verdict against it.

The rules are not measurements: they say where a healthy step on a good network tends to end.
DNS and the time to first byte have fixed limits (a resolver answering from its cache replies
well within 50 ms; a first byte within 200 ms is one round trip plus a quick server). TCP and
TLS are counted in round trips, priced with the kernel's own smoothed RTT for the connection
(TCP_INFO, RFC 6298): connect() waits for one (SYN → SYN-ACK, RFC 9293 §3.5), a full TLS 1.3
handshake for one (RFC 8446 §2), TLS 1.2 for two (RFC 5246 §7.3). A step is ``within`` when
it ended by the rule's mark (its start + the limit), ``over`` when after it, ``unknown`` when
the rule needs an RTT the kernel did not give. QUIC sets up the connection and TLS 1.3
together in one round trip (RFC 9001 §4.1), priced with QUIC's own minimum RTT estimate
(aioquic's loss recovery, RFC 9002 §5.2: samples taken in user space), as no kernel RTT exists
for a UDP socket.

Pure: the journey's spans in, verdicts out, in the order the journey met the steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from whathappens.analysis.model import Outcome, Step, Verdict
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import LegFacts, QuicFacts, TcpConnectFacts, TlsFacts


@dataclass(frozen=True)
class Rule:
    """One rule of thumb: a fixed limit in ms, or a number of round trips."""

    step: Step
    guide: str                # the rule in words: "< 50 ms", "≈ 1 RTT"
    limit_ms: float | None = None
    round_trips: int | None = None


DNS = Rule("dns", "< 50 ms", limit_ms=50.0)
TCP = Rule("tcp", "≈ 1 RTT", round_trips=1)
TLS13 = Rule("tls", "≈ 1 RTT for TLS 1.3", round_trips=1)
TLS12 = Rule("tls", "≈ 2 RTT for TLS 1.2", round_trips=2)
QUIC = Rule("quic", "≈ 1 RTT (QUIC and TLS 1.3 together)", round_trips=1)
TTFB = Rule("ttfb", "< 200 ms", limit_ms=200.0)
RULES = (DNS, TCP, TLS13, TLS12, QUIC, TTFB)

# The span each rule judges.
JUDGED: dict[str, Step] = {"dns": "dns", "tcp": "tcp", "tls": "tls", "quic": "quic",
                           "http.wait": "ttfb"}


def kernel_rtt(tcp: SpanDoc | None) -> float | None:
    """The kernel's smoothed RTT at connect, from the attempt that has one."""
    for attempt in tcp.children if tcp is not None else []:
        facts = attempt.facts_as(TcpConnectFacts)
        if facts is not None and facts.tcp_info is not None and facts.tcp_info.rtt_ms:
            return facts.tcp_info.rtt_ms
    return None


# aioquic never records an RTT sample below 1 ms (recovery.py: max(latest_rtt, 0.001)), its
# timer granularity (RFC 9002 §6.1.2's kGranularity): at this floor the path is faster than
# QUIC's estimate can say (loopback), and a verdict priced with it says so.
QUIC_RTT_FLOOR_MS = 1.0


def quic_rtt(quic: SpanDoc | None) -> float | None:
    """QUIC's minimum RTT estimate for the connection: after the exchange, else right after
    the handshake (aioquic's loss recovery)."""
    facts = quic.facts_as(QuicFacts) if quic is not None else None
    if facts is None:
        return None
    for path in (facts.path_end, facts.path_after_handshake):
        if path is not None and path.min_rtt_ms:
            return path.min_rtt_ms
    return None


def rule_for(span: SpanDoc) -> Rule | None:
    step = JUDGED.get(span.name)
    if step == "tls":
        tls = span.facts_as(TlsFacts)
        return TLS13 if tls is not None and "1.3" in str(tls.version) else TLS12
    return next((r for r in RULES if r.step == step), None)


def judge(span: SpanDoc, leg: int, rtt_ms: float | None) -> Verdict | None:
    """The verdict on one span, or None when no rule is about it."""
    rule = rule_for(span)
    if rule is None:
        return None
    start = span.start_ms
    end = start if span.end_ms is None else span.end_ms
    took = span.duration_ms
    limit = rule.limit_ms
    if rule.round_trips is not None:
        limit = None if rtt_ms is None else rule.round_trips * rtt_ms
    outcome: Outcome = "unknown"
    if limit is not None and took is not None:
        outcome = "within" if end <= start + limit else "over"
    multiple = (took / rtt_ms if rule.round_trips is not None and rtt_ms and took is not None
                else None)
    return Verdict(
        span_id=span.id, leg=leg, step=rule.step, guide=rule.guide, took_ms=took,
        limit_ms=None if limit is None else round(limit, 3),
        mark_ms=None if limit is None else round(start + limit, 3),
        rtt_ms=rtt_ms if rule.round_trips is not None else None,
        rtt_multiple=None if multiple is None else round(multiple, 2), outcome=outcome)


def verdicts(journey: JourneyDoc) -> list[Verdict]:
    """Every judged step of every request, in the order the journey met them."""
    out: list[Verdict] = []
    for leg in journey.spans:
        facts = leg.facts_as(LegFacts)
        if facts is None:
            continue
        rtt = kernel_rtt(leg.child("tcp"))
        for span in leg.children:
            for s in [span, *span.children] if span.name == "http" else [span]:
                v = judge(s, facts.index, quic_rtt(s) if s.name == "quic" else rtt)
                if v is not None:
                    out.append(v)
    return out
