"""--compare-http on the live page: the event (pure), and a real ``whathappens serve`` whose
journeys go through the demo internet, asked for the comparison by the page's checkbox
(``"compare_http": true`` in the POST body); ``serve --no-compare-http`` does not offer it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from journey_helpers import demo_args as trace_demo_args
from journey_helpers import demo_url as journey_demo_url
from journey_helpers import options
from serve_helpers import Served, Stream, demo_args, events, request, serve
from whathappens.contract.document import HttpCompare, HttpCompareSample, HttpCompareVersion
from whathappens.demo.command import demo_url
from whathappens.demo.internet import DemoInternet
from whathappens.explain.fill import slots
from whathappens.explain.http_compare import TEXT, explain_http_compare
from whathappens.web.http_compare_events import http_compare_event, pending_event

EVIL = "<img src=x onerror=alert(1)>\x1b[31m\u202e"


def sample(rnd: int, first: float | None, error: str | None = None) -> HttpCompareSample:
    return HttpCompareSample(round=rnd, setup_ms=None if first is None else first / 2,
                             ttfb_ms=None if first is None else first / 3, first_byte_ms=first,
                             error=error)


def compared(error: str | None = None) -> HttpCompare:
    versions = [
        HttpCompareVersion(version="HTTP/1.1", round_trips=3, median_setup_ms=4.0,
                           median_ttfb_ms=2.0, median_first_byte_ms=6.5,
                           samples=[sample(1, 6.5), sample(2, 7.0), sample(3, 6.0)]),
        HttpCompareVersion(version="HTTP/2", round_trips=3, median_setup_ms=4.5,
                           median_ttfb_ms=2.5, median_first_byte_ms=7.25,
                           samples=[sample(1, 7.25), sample(2, 8.0), sample(3, 7.0)]),
        HttpCompareVersion(version="HTTP/3", round_trips=2, median_setup_ms=3.0,
                           median_ttfb_ms=2.0, median_first_byte_ms=5.0,
                           samples=[sample(1, 5.0), sample(2, None, error), sample(3, 5.5)]),
    ]
    return HttpCompare(url="https://www.example.com/" + EVIL, address="127.0.80.1", rounds=3,
                       versions=versions, rtt_ms=0.25,
                       modelled=["modelled, not measured: HTTP/1.1 needs 3 round trips to the "
                                 "first byte, HTTP/3 2; +1 × RTT 0.250 ms = +0.250 ms"])


# ------------------------------------------------------------------------------- pure
def test_the_event_carries_medians_samples_round_trips_and_the_labelled_model() -> None:
    ev = http_compare_event(compared(error="no answer " + EVIL))
    assert ev["step"] == "http-compare"
    assert ev["failed"] is False
    assert ev["summary"] == ("first byte from the first packet, median of 3 fresh connections "
                             "each: HTTP/1.1 6.50 ms, HTTP/2 7.25 ms, HTTP/3 5.00 ms")
    assert ev["head"] == ["", "set-up", "TTFB", "first byte from the first packet",
                          "round trips"]
    assert ev["rows"] == [["HTTP/1.1", "4.00 ms", "2.00 ms", "6.50 ms", "3"],
                          ["HTTP/2", "4.50 ms", "2.50 ms", "7.25 ms", "3"],
                          ["HTTP/3", "3.00 ms", "2.00 ms", "5.00 ms", "2"]]
    assert ev["samples"][0] == ("HTTP/1.1 (first byte from the first packet): round 1: 6.50 ms, "
                                "round 2: 7.00 ms, round 3: 6.00 ms")
    assert "round 2: no answer <img src=x onerror=alert(1)>\\x1b[31m\\u202e" in ev["samples"][2]
    assert ev["modelled"][0].startswith("modelled, not measured: ")
    # text for a reader: markup stays text (the page uses textContent), controls are shown
    assert "<img src=x onerror=alert(1)>\\x1b[31m\\u202e" in ev["target"]
    blob = json.dumps(ev, ensure_ascii=False)
    assert "\x1b" not in blob
    assert "\u202e" not in blob
    assert "5.00 ms over HTTP/3" in ev["beginner"]
    assert "HTTP/3 2 round trips" in ev["advanced"]
    assert "0.250 ms" in ev["advanced"]
    assert "Medians of 3 rounds" in ev["measures"]


def test_nothing_answered_and_nothing_to_compare() -> None:
    hc = compared()
    for v in hc.versions:
        v.median_first_byte_ms = None
    ev = http_compare_event(hc)
    assert ev["failed"] is True
    assert ev["summary"] == "no version answered: every sample below says why"
    none = http_compare_event(None, "not finished within 30 s")
    assert none["summary"] == "not finished within 30 s"
    assert "rows" not in none
    assert pending_event()["pending"] is True


def test_every_template_slot_can_be_filled() -> None:
    names = {n for part in (TEXT.beginner, TEXT.advanced, TEXT.measures) for t in part
             for n in slots(t)}
    text = explain_http_compare(compared())
    assert text is not None
    assert names == {"rounds", "rtt", "h11_first_byte", "h2_first_byte", "h3_first_byte",
                     "h11_round_trips", "h2_round_trips", "h3_round_trips", "h3_not_faster"}
    # HTTP/3 was the quickest here: the sentence saying it was not is left out
    assert "not the quickest" not in text.beginner
    slow = compared()
    slow.versions[2].median_first_byte_ms = 9.0
    again = explain_http_compare(slow)
    assert again is not None
    assert "HTTP/3 was not the quickest here" in again.beginner


# ------------------------------------------------------------------ a real server
def post_journey(served: Served, body: dict[str, Any], timeout: float = 120.0) -> Stream:
    import http.client

    start = time.monotonic()
    conn = http.client.HTTPConnection(served.host, served.port, timeout=timeout)
    try:
        conn.request("POST", "/api/journey", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        out = Stream(resp.status, {k.lower(): v for k, v in resp.getheaders()})
        out.events.extend(events(resp, start))
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(demo_internet: DemoInternet) -> Iterator[Served]:
    with serve(*demo_args(demo_internet), "--http3=off") as s:
        yield s


def test_the_checkbox_asks_for_the_comparison(served: Served,
                                              demo_internet: DemoInternet) -> None:
    _, _, page = request(served, "GET", "/")
    assert b'id="compare-http"' in page
    assert b'<p class="small options">' in page  # offered: not hidden
    stream = post_journey(served, {"url": demo_url(demo_internet, None),
                                   "compare_http": True})
    assert stream.kinds()[-2:] == ["report", "end"]
    steps = [s["step"] for s in stream.steps()]
    assert steps[-2:] == ["tls-compare", "http-compare"]
    pending = [d for k, d, _ in stream.events if k == "step" and d.get("pending")]
    assert [p["step"] for p in pending] == ["tls-compare", "http-compare"]
    hc = stream.steps()[-1]
    assert hc["failed"] is False
    assert [r[0] for r in hc["rows"]] == ["HTTP/1.1", "HTTP/2", "HTTP/3"]
    assert [r[4] for r in hc["rows"]] == ["3", "3", "2"]  # TCP + TLS 1.3 + request; QUIC + req
    assert all(r[3].endswith(" ms") for r in hc["rows"])
    assert len(hc["samples"]) == 3
    assert all(s.count("round ") == 3 and "error" not in s for s in hc["samples"])
    assert hc["modelled"]
    assert all(m.startswith("modelled, not measured") for m in hc["modelled"])
    assert hc["beginner"]
    assert hc["advanced"]
    assert hc["measures"]
    report = stream.one("report")
    assert 'id="http-compare"' in report["html"]
    assert "modelled, not measured" in report["html"]
    _, _, body = request(served, "GET", f"/journeys/{report['id']}.json")
    kept = json.loads(body)["facts"]["http_compare"]
    assert all(v["median_first_byte_ms"] > 0 for v in kept["versions"])
    assert [v["round_trips"] for v in kept["versions"]] == [3, 3, 2]


def test_without_the_checkbox_there_is_no_comparison(served: Served,
                                                     demo_internet: DemoInternet) -> None:
    for body in ({"url": demo_url(demo_internet, None)},
                 {"url": demo_url(demo_internet, None), "compare_http": "yes"}):
        stream = post_journey(served, body)
        assert "http-compare" not in [s["step"] for s in stream.steps()]
        assert 'id="http-compare"' not in stream.one("report")["html"]


def test_a_server_that_does_not_offer_it(demo_internet: DemoInternet) -> None:
    with serve(*demo_args(demo_internet), "--http3=off", "--no-compare-http",
               "--no-compare-tls") as s:
        _, _, page = request(s, "GET", "/")
        assert b'<p class="small options" hidden>' in page
        stream = post_journey(s, {"url": demo_url(demo_internet, None), "compare_http": True})
        assert [x["step"] for x in stream.steps()][-1] == "revalidate"


def test_every_request_of_the_comparison_is_vetted_again(demo_internet: DemoInternet) -> None:
    """The guard the page applies (serve --public) is asked again for the pinned address of
    each request of the comparison, before its first packet: here it refuses them all."""
    from whathappens.probes.http_compare import compare_http
    from whathappens.trace import run_journey

    net = demo_internet
    opts = options(*trace_demo_args(net), "--http3=off", "--no-revalidate")

    async def run() -> HttpCompare | None:
        done = await run_journey(journey_demo_url(net), opts)
        assert done.error is None, done.error
        opts.address_policy = lambda address: f"{address} is not public"
        await compare_http(done, opts, run_journey)
        return done.facts.http_compare

    hc = asyncio.run(run())
    assert hc is not None
    errors = [s.error for v in hc.versions for s in v.samples]
    assert len(errors) == 9
    assert all(e is not None and "was not contacted" in e and "is not public" in e
               for e in errors), errors
    assert all(v.median_first_byte_ms is None for v in hc.versions)
