"""End to end: the URL step, where a journey can end before any packet is sent."""

from __future__ import annotations

import pytest

from journey_helpers import (
    assert_complete,
    assert_failed_at,
    child,
    children,
    legs,
    run,
    url_span,
)
from misbehaving import RawServer, ipv6_loopback_works, ok_reply
from whathappens.journey import Journey


def url_failed(j: Journey, code: str, *words: str) -> None:
    """Failed at the URL step; nothing else was attempted: no leg, no DNS span at all."""
    assert_failed_at(j, "url", code, 3, *words)
    assert [s.name for s in j.spans] == ["url"]
    assert not any(s.step == "dns" for s in j.all_spans())
    span = url_span(j)
    assert span.end_ns is not None
    assert span.error is not None
    assert span.error["code"] == code
    assert j.to_dict()["facts"]["summary"] == {"legs": 0, "failed_step": "url"}


def test_unsupported_scheme() -> None:
    j = run("ftp://ftp.example.com/pub/")
    url_failed(j, "url.scheme_unsupported", "ftp", "http:// and https://")


@pytest.mark.parametrize("url", ["https://www.example.com:99999/",
                                 "https://www.example.com:0/",
                                 "http://www.example.com:8o/"])
def test_invalid_port(url: str) -> None:
    j = run(url)
    assert j.error is not None
    url_failed(j, j.error.code, "port")
    assert j.error.code.startswith("url.port")


@pytest.mark.parametrize("url", ["https://:443/", "http://"])
def test_empty_host(url: str) -> None:
    j = run(url)
    url_failed(j, "url.host_missing", "no host")


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback here")
def test_ipv6_literal_needs_no_dns() -> None:
    with RawServer(ok_reply, host="::1") as server:
        url = server.url()
        assert url.startswith("http://[::1]:")
        j = run(url)
    assert j.error is None, j.error and j.error.to_dict()
    assert url_span(j).attrs["host_kind"] == "ipv6"
    [leg] = legs(j)
    dns = child(leg, "dns")
    assert_complete(dns)
    assert dns.attrs["view_used"] == "none"
    assert dns.attrs["note"] == "the host is an IP address: no DNS lookup"
    assert dns.attrs["addresses"] == ["::1"]
    assert dns.children == []  # no view ran, no query left the machine
    tcp = child(leg, "tcp")
    [attempt] = children(tcp, "tcp.connect")
    assert attempt.attrs["family"] == "IPv6"
    assert tcp.attrs["remote"] == f"[::1]:{server.port}"
    assert child(leg, "http").attrs["status"] == 200
    assert "tls" not in [c.name for c in leg.children]
