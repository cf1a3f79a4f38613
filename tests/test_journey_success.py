"""End to end: a whole journey through the demo internet, as `whathappens demo` runs it."""

from __future__ import annotations

import itertools
import re

from journey_helpers import (
    assert_complete,
    child,
    children,
    demo_url,
    legs,
    nesting_errors,
    schema_errors,
    trace,
    url_span,
)
from whathappens.demo.internet import DemoInternet
from whathappens.journey import Journey


def test_www_example_com_through_the_demo(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net), "--http3=off")
    assert j.error is None
    assert j.exit_code == 0

    [leg] = legs(j)
    assert leg.attrs["connection"] == "new"
    assert_complete(url_span(j))
    for step in ("dns", "tcp", "tls", "http"):
        assert_complete(child(leg, step))
    assert [c.name for c in leg.children] == ["dns", "tcp", "tls", "http"]

    http = child(leg, "http")
    assert http.attrs["status"] == 200
    assert http.attrs["http_version"] == "HTTP/2"
    tls = child(leg, "tls")
    assert tls.attrs["alpn"] == "h2"  # HTTP/2 chosen by ALPN, not assumed
    assert tls.attrs["version"] == "TLSv1.3"
    assert tls.attrs["sni"] == "www.example.com"
    assert tls.attrs["chain_verification"]["ok"] is True
    chain = tls.attrs["chain"]
    assert len(chain) == 2
    assert "www.example.com" in str(chain[0])          # the leaf, for this name
    assert "intermediate" in str(chain[1]).lower()    # then the CA that issued it
    summary = j.to_dict()["facts"]["summary"]
    assert (summary["status"], summary["http_version"], summary["tls_version"]) == \
        (200, "HTTP/2", "TLSv1.3")

    # DNS: the resolver view is the one used, the walk runs beside it.
    dns = child(leg, "dns")
    assert dns.attrs["view_used"] == "resolver"
    assert "127.0.80.1" in dns.attrs["addresses"]
    resolver = child(dns, "dns.resolver")
    queries = children(resolver, "dns.query")
    assert [q.attrs["qtype"] for q in queries] == ["A", "AAAA", "HTTPS", "A"]
    repeat = queries[-1]
    assert "again" in repeat.attrs["purpose"]
    assert repeat.error is None
    assert repeat.attrs["records"] == queries[0].attrs["records"]
    assert resolver.attrs["repeat_ttl"] is not None

    walk = child(dns, "dns.walk")
    question_a = next(q for q in children(walk, "dns.walk.question") if q.attrs["qtype"] == "A")
    hops = children(question_a, "dns.hop")
    assert [h.attrs["server"] for h in hops] == \
        ["a.root-servers.net.", "a.gtld-servers.net.", "ns1.example.com."]
    assert [h.attrs["kind"] for h in hops] == ["referral", "referral", "answer"]
    assert [h.attrs["referral_zone"] for h in hops[:2]] == ["com.", "example.com."]
    starts = [h.start_ns for h in hops]
    assert starts == sorted(starts)  # one after the other, root first
    assert all(hops[i].end_ns <= hops[i + 1].start_ns for i in range(2))  # type: ignore[operator]
    assert question_a.attrs["records"] == ["127.0.80.1"]

    # TCP: one connection, with the kernel's view of it.
    tcp = child(leg, "tcp")
    assert tcp.attrs["remote"].endswith(f":{net.https_port}")
    assert any(c.attrs.get("outcome") == "connected" for c in children(tcp, "tcp.connect"))
    assert j.findings == [] or all(f.severity != "error" for f in j.findings)


def test_every_span_nests_within_its_parent(demo_internet: DemoInternet) -> None:
    """Child start >= parent start and child end <= parent end, exactly, in nanoseconds; no
    tolerance is needed: every timestamp comes from one clock and parents end last."""
    net = demo_internet
    journeys = [trace(net, demo_url(net)),
                trace(net, demo_url(net, path="/redirect/2")),
                trace(net, demo_url(net, scheme="http"))]
    for j in journeys:
        assert j.error is None
        assert nesting_errors(j) == []
        spans = list(j.all_spans())
        assert len(spans) > 15
        for span in spans:
            assert span.duration_ns is not None
            assert span.duration_ns >= 0
        # The steps of a leg follow each other; legs follow each other.
        for leg in legs(j):
            steps = leg.children
            for a, b in itertools.pairwise(steps):
                assert a.end_ns is not None
                assert a.end_ns <= b.start_ns, (a.name, b.name)
        tops = j.spans
        for a, b in itertools.pairwise(tops):
            assert a.end_ns is not None
            assert a.end_ns <= b.start_ns
        doc = j.to_dict()
        assert doc["total_ms"] >= max(s["end_ms"] for s in doc["spans"])


def test_json_validates_against_the_schema(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net))
    doc = j.to_dict()
    assert schema_errors(doc) == []
    assert doc["error"] is None
    assert doc["exit_code"] == 0
    assert doc["clock"]["unit"] == "ms since t0"
    # A schema that accepted anything would prove nothing: a broken document must fail.
    broken = dict(doc, exit_code="zero")
    assert schema_errors(broken) != []
    broken_span = dict(doc, spans=[dict(doc["spans"][0], step="elsewhere")])
    assert schema_errors(broken_span) != []


def _decoded_bigger(j: Journey) -> tuple[int, int, list[str]]:
    http = child(legs(j)[-1], "http")
    return (http.attrs["body_bytes_encoded"], http.attrs["body_bytes_decoded"],
            http.attrs["content_encoding"])


def test_http11_by_alpn_with_compressed_bodies(demo_internet: DemoInternet) -> None:
    net = demo_internet
    for accept, coding in (("br, gzip", "br"), ("gzip", "gzip")):
        j = trace(net, demo_url(net), "--http1.1", "-H", f"Accept-Encoding: {accept}")
        assert j.error is None
        leg = legs(j)[0]
        tls = child(leg, "tls")
        assert tls.attrs["alpn_offered"] == ["http/1.1"]
        assert tls.attrs["alpn"] == "http/1.1"
        http = child(leg, "http")
        assert http.attrs["http_version"] == "HTTP/1.1"
        assert http.attrs["status"] == 200
        sent = dict((n.lower(), v) for n, v in http.attrs["request_headers"])
        assert sent["accept-encoding"] == accept
        encoded, decoded, codings = _decoded_bigger(j)
        assert codings == [coding]
        assert 0 < encoded < decoded, (encoded, decoded)
        assert http.attrs["wire_bytes_received"] > encoded
        assert j.facts.summary.http_version == "HTTP/1.1"


def test_traceparent_is_sent_per_request_with_one_trace_id(demo_internet: DemoInternet) -> None:
    """W3C Trace Context: one trace id for the journey, a fresh parent id per request."""
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/1"), "--traceparent")
    assert j.error is None
    trace_id = j.facts.trace_id
    sent = []
    for leg in legs(j):
        http = child(leg, "http")
        value = dict(http.attrs["request_headers"])["traceparent"]
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", value)
        assert value.split("-")[1] == trace_id
        sent.append(value.split("-")[2])
    assert len(sent) == 2
    assert len(set(sent)) == 2
