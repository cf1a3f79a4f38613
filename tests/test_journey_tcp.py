"""End to end: the TCP step against real sockets on 127.0.0.1 (and ::1)."""

from __future__ import annotations

import socket

import pytest

from journey_helpers import (
    assert_complete,
    assert_failed_at,
    assert_steps_before,
    child,
    children,
    failed_span,
    legs,
    options,
    run,
)
from misbehaving import FullBacklog, RawServer, free_port, ipv6_loopback_works, ok_reply


def test_connection_refused() -> None:
    port = free_port()
    j = run(f"http://127.0.0.1:{port}/")
    assert_failed_at(j, "tcp", "tcp.refused", 5, f"127.0.0.1:{port}", "refused",
                     "nothing listens")
    leg = assert_steps_before(j, "dns")
    assert [c.name for c in leg.children] == ["dns", "tcp"]  # no TLS, no HTTP attempted
    tcp = failed_span(leg, "tcp", "tcp.refused")
    [attempt] = children(tcp, "tcp.connect")
    assert attempt.attrs["outcome"] == "tcp.refused"
    assert attempt.error is not None


def test_connect_timeout() -> None:
    with FullBacklog() as server:
        if not server.syn_is_dropped():
            pytest.skip("this kernel does not drop SYNs to a full accept queue: no local way "
                        "to make a connect hang")
        j = run(f"http://127.0.0.1:{server.port}/", options("--connect-timeout", "0.5"))
    assert_failed_at(j, "tcp", "tcp.timeout", 5, "no answer", "0.5 s", "SYN")
    leg = assert_steps_before(j, "dns")
    tcp = failed_span(leg, "tcp", "tcp.timeout")
    assert tcp.duration_ns is not None
    assert 0.45e9 <= tcp.duration_ns < 2e9  # it waited the timeout, no more
    [attempt] = children(tcp, "tcp.connect")
    assert attempt.attrs["outcome"] == "tcp.timeout"


def refusing_v6_and_listening_v4() -> tuple[socket.socket, RawServer]:
    """A port bound on ::1 but not listening (nobody else can listen there, and the kernel
    answers a SYN to it with a RST), and the same port listening on 127.0.0.1."""
    for _ in range(10):
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.bind(("::1", 0))
        try:
            return v6, RawServer(ok_reply, port=v6.getsockname()[1])
        except OSError:  # that port is taken on 127.0.0.1: try another
            v6.close()
    pytest.skip("found no port free on both ::1 and 127.0.0.1")


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback here")
def test_happy_eyeballs_falls_back_to_ipv4() -> None:
    v6, v4 = refusing_v6_and_listening_v4()
    with v6, v4 as server:
        port = server.port
        j = run(f"http://eyeballs.test:{port}/",
                options("--resolve", f"eyeballs.test:{port}:[::1],127.0.0.1"))
    assert j.error is None, j.error and j.error.to_dict()
    leg = legs(j)[0]
    dns = child(leg, "dns")
    assert_complete(dns)
    assert dns.attrs["view_used"] == "none"
    assert "--resolve" in dns.attrs["note"]
    tcp = child(leg, "tcp")
    assert_complete(tcp)
    assert tcp.attrs["happy_eyeballs"] is True
    assert tcp.attrs["candidates"] == ["::1", "127.0.0.1"]
    assert tcp.attrs["family"] == "IPv4"
    assert tcp.attrs["remote"] == f"127.0.0.1:{port}"
    attempts = children(tcp, "tcp.connect")
    assert [(a.attrs["address"], a.attrs["outcome"]) for a in attempts] == \
        [("::1", "tcp.refused"), ("127.0.0.1", "connected")]
    assert attempts[0].start_ns <= attempts[1].start_ns
    assert child(leg, "http").attrs["status"] == 200
