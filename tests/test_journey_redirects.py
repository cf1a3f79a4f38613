"""End to end: redirects followed as a browser does, each hop a leg of its own."""

from __future__ import annotations

from journey_helpers import (
    assert_complete,
    assert_failed_at,
    child,
    demo_url,
    legs,
    trace,
)
from whathappens.demo.internet import DemoInternet


def test_http_redirects_to_https_on_a_new_connection(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, scheme="http"), "--http3=off")
    assert j.error is None
    assert j.exit_code == 0
    first, second = legs(j)

    # Leg 1: plain HTTP over TCP, no TLS at all, answered 301 towards https.
    assert [c.name for c in first.children] == ["dns", "tcp", "http"]
    for c in first.children:
        assert_complete(c)
    http1 = child(first, "http")
    assert http1.attrs["status"] == 301
    assert http1.attrs["http_version"] == "HTTP/1.1"
    location = dict((n.lower(), v) for n, v in http1.attrs["response_headers"])["location"]
    assert location.startswith("https://www.example.com")
    assert child(first, "tcp").attrs["remote"].endswith(f":{net.http_port}")

    # Leg 2: another origin, so a new connection: DNS, TCP and TLS again.
    assert second.attrs["connection"] == "new"
    assert second.attrs["url"] == demo_url(net)
    assert [c.name for c in second.children] == ["dns", "tcp", "tls", "http"]
    assert child(second, "tcp").attrs["remote"].endswith(f":{net.https_port}")
    assert child(second, "http").attrs["status"] == 200
    assert j.facts.redirects == 1
    assert j.facts.final_url == demo_url(net)
    assert j.facts.summary.legs == 2


def test_redirects_on_one_origin_reuse_the_connection(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/3"), "--http3=off")
    assert j.error is None
    all_legs = legs(j)
    assert len(all_legs) == 4
    assert [leg.attrs["url"] for leg in all_legs] == \
        [demo_url(net, path=p) for p in ("/redirect/3", "/redirect/2", "/redirect/1", "/")]
    first = all_legs[0]
    assert first.attrs["connection"] == "new"
    tcp_id = child(first, "tcp").span_id
    for leg in all_legs[1:]:
        assert leg.attrs["connection"] == "reused"
        assert leg.attrs["reused_from_tcp_span"] == tcp_id
        assert [c.name for c in leg.children] == ["http"]  # no dns, tcp or tls of its own
        assert child(leg, "http").attrs["http_version"] == "HTTP/2"
    statuses = [child(leg, "http").attrs["status"] for leg in all_legs]
    assert statuses == [302, 302, 302, 200]
    # One connection carried the four requests, on four HTTP/2 streams.
    streams = [child(leg, "http").attrs["stream_id"] for leg in all_legs]
    assert len(set(streams)) == 4
    assert j.facts.redirects == 3


def test_redirect_loop(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/loop"), "--http3=off")
    assert_failed_at(j, "redirect", "redirect.loop", 8, "loop", "/loop")
    [leg] = legs(j)  # the second visit is not made: the loop is seen before it
    for step in ("dns", "tcp", "tls", "http"):
        assert_complete(child(leg, step))
    assert child(leg, "http").attrs["status"] == 302


def test_too_many_redirects(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/5"), "--max-redirects", "2")
    assert_failed_at(j, "redirect", "redirect.too_many", 8, "more than 2 redirects")
    assert len(legs(j)) == 3  # the request and the two redirects allowed
    for leg in legs(j):
        assert_complete(child(leg, "http"))
        assert child(leg, "http").attrs["status"] == 302


def test_no_follow_stops_at_the_redirect(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, scheme="http"), "--no-follow")
    assert j.error is None
    assert j.exit_code == 0
    [leg] = legs(j)
    assert child(leg, "http").attrs["status"] == 301
    assert j.facts.summary.status == 301
    assert j.facts.redirects == 0
    assert j.facts.final_url == demo_url(net, scheme="http")
