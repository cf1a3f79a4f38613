"""Who answered (analysis/who_answered.py): a table of header sets and what each proves,
CNAMEs into CDN domains, the certificate's issuer, the lab's own spans (certain), and one
real journey through the demo internet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey_helpers import demo_url, trace
from whathappens.analysis.document import analyze
from whathappens.analysis.who_answered import Seen, cname_target, from_headers, infer
from whathappens.demo.internet import DemoInternet

H = list[tuple[str, str]]


def found(headers: H) -> set[tuple[str, str, str]]:
    return {(w.role, w.who, w.confidence) for w in from_headers(headers)}


@pytest.mark.parametrize(("headers", "expect"), [
    ([("Server", "cloudflare"), ("CF-Ray", "8a1b2c3d4e5f-AMS"), ("CF-Cache-Status", "HIT")],
     {("cdn", "Cloudflare", "likely")}),
    ([("Server", "cloudflare")], {("cdn", "Cloudflare", "possible")}),
    ([("X-Amz-Cf-Pop", "FRA56-P1"), ("X-Cache", "Hit from cloudfront"),
      ("Via", "1.1 abc123.cloudfront.net (CloudFront)")],
     {("cdn", "Amazon CloudFront", "likely"), ("shared cache", "a shared cache on the path",
                                               "likely")}),
    ([("X-Served-By", "cache-ams21030-AMS"), ("X-Fastly-Request-ID", "f00")],
     {("cdn", "Fastly", "likely")}),
    ([("X-Served-By", "app-2")], {("web server", "the node that says it is app-2", "possible")}),
    ([("Age", "120")], {("shared cache", "a shared cache on the path", "likely")}),
    ([("Age", "0")], set()),
    ([("Server", "nginx/1.22.1")], {("reverse proxy", "nginx", "possible")}),
    ([("Server", "gunicorn")], {("app server", "gunicorn", "possible")}),
    ([("X-Powered-By", "Express")], {("framework", "Express", "likely")}),
    ([("Set-Cookie", "csrftoken=abc; Path=/; SameSite=Lax"),
      ("Set-Cookie", "sessionid=x; HttpOnly")], {("framework", "Django", "likely")}),
    ([("Set-Cookie", "AWSALB=x; Path=/")],
     {("load balancer", "AWS Application Load Balancer", "likely")}),
    ([("Set-Cookie", "SERVERID=app-2; path=/")],
     {("load balancer", "HAProxy (its default persistence cookie)", "possible")}),
    ([("Via", "1.1 varnish, 1.1 proxy-7 (squid)")],
     {("proxy", "Varnish", "likely"), ("proxy", "an intermediary (squid)", "likely")}),
    ([("Content-Type", "text/html")], set()),
    ([], set()),
])
def test_header_sets(headers: H, expect: set[tuple[str, str, str]]) -> None:
    assert found(headers) == expect


def test_each_inference_carries_its_evidence() -> None:
    (cdn,) = from_headers([("CF-Ray", "1-AMS"), ("Server", "cloudflare")])
    assert [e.detail for e in cdn.evidence] == ["cf-ray: 1-AMS", "Server: cloudflare"]
    assert all(e.source == "header" and e.leg == 0 for e in cdn.evidence)


@pytest.mark.parametrize(("entry", "target"), [
    ("www.example.com. -> e123.a.akamaiedge.net. (TTL 20)", "e123.a.akamaiedge.net."),
    ("www.example.com. → d1.cloudfront.net.", "d1.cloudfront.net."),
    ("a.example. CNAME b.fastly.net.", "b.fastly.net."),
    ("", ""),
])
def test_cname_entries(entry: str, target: str) -> None:
    assert cname_target(entry) == target


@pytest.mark.parametrize(("cname", "vendor"), [
    ("d111111abcdef8.cloudfront.net.", "Amazon CloudFront"),
    ("e9999.a.akamaiedge.net", "Akamai"), ("www.example.com.edgekey.net.", "Akamai"),
    ("dualstack.j.sni.global.fastly.net.", "Fastly"),
    ("www.example.com.cdn.cloudflare.net.", "Cloudflare"),
])
def test_a_cname_into_a_cdn_domain(cname: str, vendor: str) -> None:
    (w,) = infer(Seen(cnames=[cname]))
    assert (w.role, w.who, w.confidence) == ("cdn", vendor, "likely")
    assert w.evidence[0].source == "dns"


def test_a_lookalike_name_is_not_a_cdn() -> None:
    assert infer(Seen(cnames=["notcloudfront.net.", "cloudfront.net.evil.test."])) == []


def test_the_certificate_issuer_and_alt_svc_back_an_edge() -> None:
    seen = Seen(headers=[(0, [("CF-Ray", "1"), ("Alt-Svc", 'h3=":443"; ma=86400')])],
                issuer="Cloudflare Inc ECC CA-3")
    (w,) = infer(seen)
    assert w.who == "Cloudflare"
    assert w.confidence == "likely"
    assert [e.source for e in w.evidence] == ["header", "certificate", "header"]


def test_the_labs_own_spans_are_certain() -> None:
    seen = Seen(lab=[("edge", "edge", "edge (CDN edge)", 40), ("lb", "lb", "lb", 41),
                     ("app", "app-1-nginx", "app-1-nginx", 42),
                     ("django", "app-1", "app-1 gunicorn → Django", 43),
                     ("sql", "app-1", "PostgreSQL (replica) via PgBouncer", 44),
                     ("redis", "app-1", "Redis", 45), ("connect", "app-1", "new connection", 46)],
                headers=[(0, [("Server", "nginx"), ("X-Cache", "MISS")])])
    got = {(w.role, w.who): w.confidence for w in infer(seen)}
    assert got[("cdn", "the lab's CDN edge (nginx cache, TLS)")] == "certain"
    assert got[("load balancer", "the lab's load balancer (HAProxy)")] == "certain"
    assert got[("reverse proxy", "nginx on the app node")] == "certain"
    assert got[("app server", "gunicorn (WSGI) running Django")] == "certain"
    assert got[("framework", "Django")] == "certain"
    assert got[("database", "PostgreSQL (replica) via PgBouncer")] == "certain"
    assert got[("cache", "Redis")] == "certain"
    assert "connect" not in {r for r, _ in got}               # a step, not a party
    # "Server: nginx" names the nginx the lab proved: one party, its evidence added
    assert ("reverse proxy", "nginx") not in got
    proxy = next(w for w in infer(seen) if w.who == "nginx on the app node")
    assert [e.detail for e in proxy.evidence][-1] == "Server: nginx"
    roles = [w.role for w in infer(seen)]
    assert roles.index("cdn") < roles.index("load balancer") < roles.index("app server")


def test_single_profile_edge_is_a_tls_reverse_proxy() -> None:
    (w,) = infer(Seen(lab=[("edge", "nginx", "nginx", 9)]))
    assert (w.role, w.who, w.confidence) == ("reverse proxy", "nginx terminating TLS",
                                             "certain")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Server", "Via", "Age", "X-Cache", "Set-Cookie",
                                           "X-Powered-By", "Alt-Svc", "CF-Ray"]),
                          st.text(max_size=60)), max_size=10),
       st.lists(st.text(max_size=40), max_size=3))
def test_any_evidence_is_read_without_an_exception(headers: H, cnames: list[str]) -> None:
    for w in infer(Seen(headers=[(0, headers)], cnames=cnames)):
        assert w.evidence
        assert w.confidence in ("certain", "likely", "possible")


def test_a_real_demo_journey(demo_internet: DemoInternet) -> None:
    """The demo's web server is Hypercorn, and it says so in Server: the only evidence."""
    journey = trace(demo_internet, demo_url(demo_internet, scheme="http"))
    who = analyze(journey.to_dict())["who_answered"]
    assert isinstance(who, list)
    assert who
    assert {(w["role"], w["who"], w["confidence"]) for w in who} == {  # type: ignore[index]
        ("app server", "Hypercorn", "possible")}
    details = [e["detail"] for e in who[0]["evidence"]]  # type: ignore[index]
    # http:// over HTTP/1.1, then https:// over HTTP/3 (the HTTPS record advertises h3)
    assert details == ["Server: hypercorn-h11", "Server: hypercorn-h3"]
