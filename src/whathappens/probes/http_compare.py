"""--compare-http: HTTP/1.1, HTTP/2 and HTTP/3 to the same host, each on a fresh connection.

After the journey, its final URL is fetched again at the address the journey used, once per
version per round, in alternating order (1.1, 2, 3 then 3, 2, 1.1, …), each as a short journey
of its own (no DNS: the address is pinned; no redirects, no revalidation). From each recorded
timeline: the connection's set-up (TCP connect + TLS handshake, or the QUIC step), the time to
first byte, and the first byte counted from the connection's first packet; and the round trips
to the first byte, counted from the timeline's steps. The modelled line multiplies the
difference in round trips by the journey's RTT and says so: it is not a measurement.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from whathappens.contract.document import HttpCompare, HttpCompareSample, HttpCompareVersion

if TYPE_CHECKING:
    from whathappens.journey import Journey, Span

VERSIONS = (("1.1", "HTTP/1.1"), ("2", "HTTP/2"), ("3", "HTTP/3"))
ROUNDS = 3

# trace.run_journey, passed in by the runner (this module must not import its caller); the
# options are trace.Options.
RunJourney = Callable[[str, Any], Awaitable["Journey"]]


def _target(journey: Journey) -> tuple[str, str] | None:
    """The final https URL and the address its connection went to."""
    legs = [s for s in journey.spans if s.name == "leg"]
    if not legs or journey.error is not None:
        return None
    leg = legs[-1]
    url = str(leg.facts.url)
    if urlsplit(url).scheme != "https":
        return None
    for span in (s for leg in reversed(legs) for s in leg.children):
        address = getattr(span.facts, "address", None) if span.name in ("tcp", "quic") \
            else None
        if address:
            return url, str(address)
    return None


def _sample(j: Journey, rnd: int) -> tuple[HttpCompareSample, int | None]:
    leg = next((s for s in j.spans if s.name == "leg"), None)
    if j.error is not None or leg is None:
        return HttpCompareSample(round=rnd, error=j.error.message if j.error else "no request"),\
            None
    kids: dict[str, Span[Any]] = {c.name: c for c in leg.children}
    http, first = kids.get("http"), kids.get("quic") or kids.get("tcp")
    wait = next((c for c in http.children if c.name == "http.wait"), None) if http else None
    last = kids.get("quic") or kids.get("tls") or kids.get("tcp")
    if first is None or last is None or wait is None or wait.end_ns is None:
        return HttpCompareSample(round=rnd, error="incomplete timeline"), None
    return HttpCompareSample(
        round=rnd, setup_ms=round(((last.end_ns or 0) - first.start_ns) / 1e6, 3),
        ttfb_ms=round((wait.end_ns - wait.start_ns) / 1e6, 3),
        first_byte_ms=round((wait.end_ns - first.start_ns) / 1e6, 3)), _round_trips(kids)


def _round_trips(kids: dict[str, Span[Any]]) -> int:
    """Round trips to the first byte, from the steps the timeline recorded."""
    if "quic" in kids:
        return 1 + (1 if kids["quic"].facts.retry else 0) + 1
    tls = kids.get("tls")
    flights = 0
    if tls is not None:  # each time the server answered what we had sent: one round trip
        previous = None
        for m in tls.facts.messages:
            if m.direction == "received" and previous == "sent":
                flights += 1
            previous = m.direction
    return 1 + flights + 1


def _median(xs: list[float | None]) -> float | None:
    got = [x for x in xs if x is not None]
    return round(statistics.median(got), 3) if got else None


async def compare_http(journey: Journey, opts: Any, run: RunJourney) -> None:
    """Store ``journey.facts.http_compare``; nothing when there is no https answer to redo."""
    target = _target(journey)
    if target is None:
        return
    url, address = target
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    base = dataclasses.replace(opts, resolve={(host, port): [address]}, revalidate=False,
                               compare_tls=False, compare_http=False, resume=False,
                               follow_redirects=False, http3="off", qlog=None)
    samples: dict[str, list[HttpCompareSample]] = {v: [] for v, _ in VERSIONS}
    trips: dict[str, int | None] = {}
    for rnd in range(ROUNDS):
        order = VERSIONS if rnd % 2 == 0 else tuple(reversed(VERSIONS))
        for version, _ in order:
            sub = await run(url, dataclasses.replace(base, http_version=version))
            sample, rt = _sample(sub, rnd + 1)
            samples[version].append(sample)
            trips[version] = trips.get(version) or rt
    versions = [HttpCompareVersion(
        version=name, round_trips=trips.get(v), samples=samples[v],
        median_setup_ms=_median([s.setup_ms for s in samples[v]]),
        median_ttfb_ms=_median([s.ttfb_ms for s in samples[v]]),
        median_first_byte_ms=_median([s.first_byte_ms for s in samples[v]]))
        for v, name in VERSIONS]
    rtt = _rtt(journey)
    journey.facts.http_compare = HttpCompare(url=url, address=address, rounds=ROUNDS,
                                             versions=versions, rtt_ms=rtt,
                                             modelled=_model(versions, rtt))


def _rtt(journey: Journey) -> float | None:
    for span in journey.all_spans():
        if span.name == "tcp" and getattr(span.facts, "tcp_info_end", None) is not None:
            return round(span.facts.tcp_info_end.rtt_ms, 3)  # type: ignore[no-any-return]
        if span.name == "quic" and span.facts.path_end is not None and \
                span.facts.path_end.smoothed_rtt_ms is not None:
            return round(span.facts.path_end.smoothed_rtt_ms, 3)  # type: ignore[no-any-return]
    return None


def _model(versions: list[HttpCompareVersion], rtt: float | None) -> list[str]:
    h3 = next((v for v in versions if v.version == "HTTP/3"), None)
    if rtt is None or h3 is None or h3.round_trips is None:
        return []
    out = []
    for v in versions:
        if v is h3 or v.round_trips is None:
            continue
        delta = v.round_trips - h3.round_trips
        out.append(f"modelled, not measured: {v.version} needs {v.round_trips} round trips to "
                   f"the first byte, HTTP/3 {h3.round_trips}; {delta:+d} × RTT {rtt:.3f} ms = "
                   f"{delta * rtt:+.3f} ms on a path with this RTT")
    return out
