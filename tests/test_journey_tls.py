"""End to end: the TLS step against the demo's broken certificates and servers that do not
speak TLS at all."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from journey_helpers import (
    assert_failed_at,
    assert_steps_before,
    child,
    demo_args,
    demo_url,
    failed_span,
    legs,
    run,
    trace,
)
from misbehaving import RawServer, close_at_once, plain_http_only
from whathappens.demo.internet import DemoInternet

# host → (code, words the message must say)
BROKEN = {
    "expired.example.com": ("expired", ["expired"]),
    "wrong-host.example.com": ("hostname_mismatch",
                               ["not valid for wrong-host.example.com", "other.test"]),
    "self-signed.example.com": ("self_signed", ["self-signed", "vouches for itself"]),
    "unknown-issuer.example.com": ("unknown_issuer", ["not in your trust store"]),
    "incomplete-chain.example.com": ("incomplete_chain",
                                     ["intermediate", "missing", "full chain"]),
}


@pytest.mark.parametrize("host", list(BROKEN))
def test_broken_certificate_fails_at_tls(demo_internet: DemoInternet, host: str) -> None:
    net = demo_internet
    reason, words = BROKEN[host]
    j = trace(net, demo_url(net, host=host))
    assert_failed_at(j, "tls", f"tls.cert_{reason}", 6, f"certificate of {host}",
                     "rejected", *words)
    leg = assert_steps_before(j, "dns", "tcp")
    assert [c.name for c in leg.children] == ["dns", "tcp", "tls"]  # HTTP never attempted
    tls = failed_span(leg, "tls", f"tls.cert_{reason}")
    assert tls.attrs["sni"] == host
    verdict = tls.attrs["chain_verification"]
    assert verdict["ok"] is False
    assert verdict["code"] == reason
    assert tls.attrs["chain"], "the chain the server sent is still described"
    assert j.facts.summary.failed_step == "tls"


@pytest.mark.parametrize("host", list(BROKEN))
def test_insecure_reports_the_problem_and_continues(demo_internet: DemoInternet,
                                                    host: str) -> None:
    net = demo_internet
    reason, words = BROKEN[host]
    j = trace(net, demo_url(net, host=host), "-k")
    assert j.error is None
    assert j.exit_code == 0
    leg = legs(j)[0]
    assert child(leg, "http").attrs["status"] == 200
    tls = child(leg, "tls")
    assert tls.attrs["version"] == "TLSv1.3"
    assert tls.attrs["chain_verification"]["ok"] is False
    assert tls.attrs["chain_verification"]["code"] == reason
    warnings = [f for f in j.findings if f.severity == "warning" and f.step == "tls"]
    assert len(warnings) == 1, j.findings
    message = warnings[0].message.lower()
    assert "-k" in message
    for word in words:
        assert word.lower() in message, (word, message)


def test_a_valid_certificate_with_insecure_has_no_warning(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net), "-k", "--http3=off")
    assert j.error is None
    assert [f for f in j.findings if f.step == "tls"] == []
    assert child(legs(j)[0], "tls").attrs["chain_verification"]["ok"] is True


def test_plain_http_server_spoken_to_over_https() -> None:
    with RawServer(plain_http_only) as server:
        j = run(server.url("https"))
    assert_failed_at(j, "tls", "tls.not_tls", 6, "did not answer in TLS", "plain HTTP")
    leg = assert_steps_before(j, "dns", "tcp")
    failed_span(leg, "tls", "tls.not_tls")


def test_the_demo_http_port_spoken_to_over_https(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, f"https://www.example.com:{net.http_port}/")
    assert_failed_at(j, "tls", "tls.not_tls", 6, "www.example.com", "did not answer in TLS")
    assert_steps_before(j, "dns", "tcp")


def test_server_that_closes_at_once() -> None:
    with RawServer(close_at_once) as server:
        j = run(server.url("https"))
        assert server.accepted >= 1
    assert_failed_at(j, "tls", "tls.eof", 6, "closed the connection during the handshake")
    leg = assert_steps_before(j, "dns", "tcp")
    failed_span(leg, "tls", "tls.eof")


def test_server_that_closes_at_once_still_shows_our_client_hello() -> None:
    with RawServer(close_at_once) as server:
        j = run(server.url("https"))
    assert j.error is not None
    assert j.error.code == "tls.eof"
    tls = child(legs(j)[0], "tls")
    sent = [m for m in tls.attrs.get("messages", []) if m["direction"] == "sent"]
    assert [m["type"] for m in sent][:1] == ["client_hello"]  # we spoke first
    assert tls.attrs.get("server_first_flight_ms", "missing") is None  # nothing came back


def test_a_rejected_handshake_is_timed_without_our_analysis(demo_internet: DemoInternet) -> None:
    net = demo_internet
    # A fresh process, as a user runs it: the chain analysis pays its imports there.
    result = subprocess.run(
        [sys.executable, "-m", "whathappens", demo_url(net, host="expired.example.com"),
         *demo_args(net), "--dns-views", "resolver", "--json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 6, result.stderr
    doc = json.loads(result.stdout)
    leg = next(s for s in doc["spans"] if s["name"] == "leg")
    tls = next(c for c in leg["children"] if c["name"] == "tls")
    last_message_ms = max(m["t_ms"] for m in tls["attrs"]["messages"])
    assert tls["end_ms"] - last_message_ms < 10, (tls["end_ms"], last_message_ms)


def test_tls_max_1_2_negotiates_tls_1_2_with_its_own_message_flow(
        demo_internet: DemoInternet) -> None:
    j = trace(demo_internet, demo_url(demo_internet), "--tls-max", "1.2")
    assert j.error is None
    tls = child(legs(j)[0], "tls")
    assert tls.attrs["version"] == "TLSv1.2"
    kinds = [m["type"] for m in tls.attrs["messages"]]
    # RFC 5246 §7.3: the server's key exchange and ServerHelloDone, our ClientKeyExchange
    assert kinds[:2] == ["client_hello", "server_hello"]
    assert "server_hello_done" in kinds
    assert "client_key_exchange" in kinds
    # QUIC carries TLS 1.3 only (RFC 9001 §4.2): with TLS 1.2 as the highest offer, HTTP/3 is
    # not tried even though the HTTPS record and Alt-Svc advertise it, and the report says so.
    assert [c.name for c in legs(j)[0].children] == ["dns", "tcp", "tls", "http"]
    assert any("QUIC needs TLS 1.3" in f.message for f in j.findings)


def test_http3_forced_with_tls_1_2_is_a_usage_error(demo_internet: DemoInternet) -> None:
    from whathappens.cli import main

    assert main([demo_url(demo_internet), "--http3", "--tls-max", "1.2"]) == 2


def test_resume_offers_the_first_session_and_skips_the_certificate(
        demo_internet: DemoInternet) -> None:
    for version in ("1.3", "1.2"):
        j = trace(demo_internet, demo_url(demo_internet), "--resume", "--tls-max", version,
                  "--http3=off")
        assert j.error is None
        first, second = (child(leg, "tls") for leg in legs(j))
        assert first.attrs["session_offered"] is False
        assert first.attrs["session_reused"] is False
        assert "certificate" in [m["type"] for m in first.attrs["messages"]]
        assert second.attrs["session_offered"] is True
        assert second.attrs["session_reused"] is True, version
        # RFC 5246 §7.3 / RFC 8446 §2.2: an abbreviated handshake sends no certificate
        assert "certificate" not in [m["type"] for m in second.attrs["messages"]]
