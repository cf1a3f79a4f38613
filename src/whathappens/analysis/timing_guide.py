"""What good timing looks like: the rules of thumb beside this journey's own figures.

One table per journey. The network rules are analysis/budgets.py's (DNS < 50 ms, TCP ≈ 1 RTT,
TLS 1.3 ≈ 1 RTT and TLS 1.2 ≈ 2 RTT priced with the kernel's RTT, TTFB < 200 ms); this module
adds what a reader compares them with and does not repeat their numbers:

- DNS in two bands: an answer from a cache (the journey's host cache, the system's, a
  resolver that had the name) comes back in about 1–5 ms on a good network; a cold lookup,
  where the resolver walks from the root, takes tens to hundreds of ms (one round trip per
  zone, to servers that may be far away). Which band this lookup was in comes from the facts
  (the host cache, analysis/resolver_cache.py's verdict, or the walk).
- The time to first byte as web.dev counts it for a page load: from the navigation's start to
  the final document's first byte, redirects and connection set-up included; "good" is up to
  0.8 s and "poor" over 1.8 s (web.dev, "Time to First Byte"). Beside it, our per-request
  TTFB (request sent → first byte) keeps budgets.py's < 200 ms.
- After a browser phase, FCP, LCP and CLS with Core Web Vitals' thresholds, as
  analysis/browser.py judges them.

Rules of thumb, never measurements: each row carries the rule, where it comes from, this
journey's measured figure and what that figure was. Pure: the typed journey in, rows out.
"""

from __future__ import annotations

from whathappens.analysis.browser import analyze_browser
from whathappens.analysis.budgets import DNS, QUIC_RTT_FLOOR_MS, TTFB, verdicts
from whathappens.analysis.model import GuideRow, TimingGuide, Verdict
from whathappens.analysis.resolver_cache import original_ttls, resolver_checks
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import DnsFacts, HttpFacts

CACHED_DNS_MS = 5.0  # the top of "≈ 1–5 ms": an answer from a cache on a good network
DNS_RULE = f"from a cache ≈ 1–{CACHED_DNS_MS:g} ms · cold tens–hundreds of ms · {DNS.guide}"
DNS_BASIS = ("a cache answers in a local or nearby round trip; a cold lookup walks from the "
             "root, one round trip per zone")
NAV_TTFB_GOOD_MS, NAV_TTFB_POOR_MS = 800.0, 1800.0
NAV_TTFB_RULE = "≤ 0.8 s good · > 1.8 s poor"
NAV_TTFB_BASIS = ("web.dev's Time to First Byte: navigation start → the final document's "
                  "first byte, redirects and connection set-up included")
BASIS = {
    "tcp": "connect() waits for one round trip: SYN → SYN-ACK (RFC 9293 §3.5); the RTT is "
           "the kernel's smoothed estimate for the connection (TCP_INFO, RFC 6298)",
    "tls": "a full TLS 1.3 handshake takes 1 round trip (RFC 8446 §2), TLS 1.2 two "
           "(RFC 5246 §7.3), priced with the kernel's RTT; crypto and scheduling add to it",
    "quic": "QUIC sets up the connection and TLS 1.3 in one round trip (RFC 9001 §4.1); "
            "the RTT is QUIC's own minimum estimate (aioquic's loss recovery, RFC 9002 §5.2), "
            "from user-space samples: a UDP socket has no kernel RTT",
    "ttfb": "one round trip plus a quick server",
}
VITAL_BASIS = "Core Web Vitals' threshold, meant for the 75th percentile of real visits"


def dns_source(dns: SpanDoc) -> tuple[str, bool | None]:
    """Where this lookup's answer came from, and whether that was a cache (None: unknown)."""
    f = dns.facts_as(DnsFacts)
    view = f.view_used if f is not None else None
    if view == "host_cache":
        return "from the journey's host cache: no question asked", True
    if view == "walk":
        return "cold: walked from the root", False
    if view == "resolver":
        resolver = dns.child("dns.resolver")
        checks = [] if resolver is None else list(
            resolver_checks(resolver, original_ttls(dns)).values())
        if checks and checks[0].first_cached:
            return "the resolver's cache: its TTL was counting down", True
        if checks and checks[0].first_cached is False:
            return "cold: the resolver's answer had the zone's full TTL (to the second)", False
        return "the recursive resolver; cached or not, its TTL cannot tell", None
    if view == "system":
        return "getaddrinfo, which does not say if it was cached", None
    return "no lookup", None


def dns_row(v: Verdict, dns: SpanDoc) -> GuideRow:
    note, cached = dns_source(dns)
    took = v.took_ms
    if took is not None and cached is None:
        note += ("; as fast as a cache" if took <= CACHED_DNS_MS else
                 "; slower than a cache answers")
    return GuideRow("dns", v.leg, v.span_id, DNS_RULE, DNS_BASIS, took, v.limit_ms,
                    v.outcome, note)


def network_row(v: Verdict, span: SpanDoc | None) -> GuideRow:
    if v.step == "dns" and span is not None:
        return dns_row(v, span)
    if v.step == "ttfb":
        note = "request sent → first byte of the response"
        return GuideRow("ttfb", v.leg, v.span_id, f"{TTFB.guide} per request", BASIS["ttfb"],
                        v.took_ms, v.limit_ms, v.outcome, note)
    by = "QUIC's estimate" if v.step == "quic" else "kernel"
    note = ("QUIC gave no RTT estimate for this connection: no verdict" if v.step == "quic"
            else "the kernel gave no RTT for this connection: no verdict")
    if v.rtt_ms is not None and v.step == "quic" and v.rtt_ms <= QUIC_RTT_FLOOR_MS:
        note = (f"1 RTT ≤ {QUIC_RTT_FLOOR_MS:g} ms here: aioquic never estimates less (its "
                "timer granularity), so the path is at least that fast and the step is "
                "priced at the floor")
        if v.rtt_multiple is not None:
            note += f"; took {v.rtt_multiple:.1f} × it"
    elif v.rtt_ms is not None:
        note = f"1 RTT = {v.rtt_ms:.3f} ms here ({by})"
        if v.rtt_multiple is not None:
            note += f"; took {v.rtt_multiple:.1f} × RTT"
    return GuideRow(v.step, v.leg, v.span_id, v.guide, BASIS[v.step], v.took_ms, v.limit_ms,
                    v.outcome, note)


def navigation_ttfb(journey: JourneyDoc) -> GuideRow | None:
    """web.dev's TTFB: from the first request's start to the final response's first byte."""
    legs = [s for s in journey.spans if s.name == "leg"]
    last = legs[-1].child("http") if legs else None
    f = None if last is None else last.facts_as(HttpFacts)
    if f is None or f.t_first_byte_ns is None or last is None or last.error is not None:
        return None
    value = round(f.t_first_byte_ns / 1e6 - legs[0].start_ms, 3)
    outcome = ("good" if value <= NAV_TTFB_GOOD_MS else
               "poor" if value > NAV_TTFB_POOR_MS else "needs_improvement")
    hops = len(legs) - 1
    note = ("first request's start → final response's first byte"
            + (f", {hops} redirect(s) included" if hops else ""))
    return GuideRow("navigation_ttfb", None, last.id, NAV_TTFB_RULE, NAV_TTFB_BASIS, value,
                    NAV_TTFB_GOOD_MS, outcome, note)


def vital_rows(journey: JourneyDoc) -> list[GuideRow]:
    page = analyze_browser(journey)
    if page is None:
        return []
    out = []
    for v in page.vitals:
        note = ("a score, its largest session window" if v.metric == "cls" else
                "since the navigation started; one load in headless Chromium")
        out.append(GuideRow(v.metric, None, v.span_id, v.guide, VITAL_BASIS, v.value, v.good,
                            v.outcome, note))
    return out


def timing_guide(journey: JourneyDoc) -> TimingGuide:
    """The rules beside this journey's figures, in the order the journey met the steps."""
    spans = {s.id: s for s in journey.all_spans()}
    rows = [network_row(v, spans.get(v.span_id)) for v in verdicts(journey)]
    nav = navigation_ttfb(journey)
    if nav is not None:
        rows.append(nav)
    return TimingGuide(rows + vital_rows(journey))
