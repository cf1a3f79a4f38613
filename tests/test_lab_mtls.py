"""``lab up --mtls``: edge → HAProxy → app nginx over TLS with a client certificate per tier.

The certificates themselves and the generated configurations are checked without a lab; one
production lab with mTLS serves the rest: the edge path works and HAProxy's TLS health
checks see both nodes UP, a connection to the LB or to an app node's nginx without a
certificate or with another CA's is refused (a TLS alert from HAProxy, nginx's 400), the
merged ``--lab`` timeline still holds every tier and each hop's TLS, the mtls experiment
measures and puts the lab back, and ``lab down`` leaves nothing running.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab_helpers import bring_up, needs_lab
from whathappens.demo.ca import ensure_pki
from whathappens.lab import lab, logs, manifest, process
from whathappens.lab.exercises import experiments, load
from whathappens.lab.mtls import client_context, tier_cert
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers import build
from whathappens.lab.tiers.haproxy import HAProxy
from whathappens.lab.topology import SITE, topology

REQUESTS = 40


# ------------------------------------------------------------------ without a lab
def test_a_tier_certificate_names_the_tier_and_serves_both_ways(tmp_path: Path) -> None:
    cert = tier_cert(tmp_path, "lb", "127.9.91.1")
    leaf, intermediate = x509.load_pem_x509_certificates(cert.chain.read_bytes())
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert cn == "lb"
    assert san.get_values_for_type(x509.DNSName) == ["lb"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.9.91.1"]
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.issuer == intermediate.subject
    assert cert.ca == ensure_pki(tmp_path).ca
    # The key matches and the bundle is what HAProxy reads: chain, then key.
    client_context(cert, cert.ca)
    assert cert.bundle.read_bytes() == cert.chain.read_bytes() + cert.key.read_bytes()
    # Kept while valid for the same address; issued again for another.
    before = cert.chain.read_bytes()
    assert tier_cert(tmp_path, "lb", "127.9.91.1").chain.read_bytes() == before
    assert tier_cert(tmp_path, "lb", "127.8.91.1").chain.read_bytes() != before


def test_the_configurations_require_and_present_certificates(tmp_path: Path) -> None:
    topo = topology("production", 9)
    ctx = LabContext(state=tmp_path, mtls=True)
    lb = build(topo, topo.spec("lb"))
    app = build(topo, topo.spec("app-1-nginx"))
    edge = build(topo, topo.spec("edge"))
    assert isinstance(lb, HAProxy)
    haproxy = lb.config(ctx)
    assert "ssl crt" in haproxy
    assert "verify required ca-file" in haproxy
    assert "verifyhost app-1-nginx check-ssl" in haproxy
    nginx_app = app.config(ctx)     # type: ignore[attr-defined]
    assert "ssl_verify_client on;" in nginx_app
    assert "ssl_client_certificate" in nginx_app
    assert "$ssl_client_s_dn" in nginx_app
    nginx_edge = edge.config(ctx)   # type: ignore[attr-defined]
    assert "proxy_pass https://origin;" in nginx_edge
    assert "proxy_pass http://origin;" not in nginx_edge
    assert "proxy_ssl_verify on;" in nginx_edge
    assert "proxy_ssl_name lb;" in nginx_edge
    plain = LabContext(state=tmp_path)
    assert "ssl" not in lb.config(plain).split("frontend www")[1].split("\n")[1]
    assert "ssl_verify_client" not in app.config(plain)   # type: ignore[attr-defined]
    no_reuse = LabContext(state=tmp_path, mtls=True, upstream_reuse=False)
    assert "http-reuse never" in lb.config(no_reuse)
    assert "keepalive 16;" not in edge.config(no_reuse)   # type: ignore[attr-defined]


def test_the_manifest_remembers_mtls() -> None:
    data = manifest.Manifest(profile="production", mtls=True).to_json()
    assert manifest.Manifest.from_json(data).mtls is True
    assert manifest.Manifest.from_json({"profile": "production"}).mtls is False


# ------------------------------------------------------------------ the real lab
@pytest.fixture(scope="module")
def mtls_lab() -> Iterator[LabContext]:
    yield from bring_up("production", "whathappens-mtls-", mtls=True)


def endpoint(ctx: LabContext, tier: str) -> tuple[str, int]:
    return topology("production", ctx.subnet).endpoint(tier)


def attempt(ctx: LabContext, tier: str, cert: tuple[Path, Path] | None) -> tuple[
        int | None, str]:
    """A GET over TLS to ``tier`` presenting ``cert`` (chain, key) or none: (status, body),
    or (None, the error) when the server ended the connection instead of answering."""
    address, port = endpoint(ctx, tier)
    context = ssl.create_default_context(cafile=str(ctx.pki / "ca.pem"))
    context.check_hostname = False
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    conn = http.client.HTTPSConnection(address, port, timeout=5, context=context)
    try:
        conn.request("GET", f"/?mtls-probe={time.time_ns()}", headers={"Host": SITE})
        resp = conn.getresponse()
        return resp.status, resp.read(4096).decode(errors="replace")
    except (ssl.SSLError, ConnectionError, http.client.HTTPException) as err:
        return None, f"{type(err).__name__}: {err}"
    finally:
        conn.close()


def other_ca(ctx: LabContext) -> tuple[Path, Path]:
    """A certificate of another CA (the demo PKI's "unknown-issuer": a rogue CA's leaf)."""
    bad = ensure_pki(ctx.pki).bad["unknown-issuer"]
    return bad.chain, bad.key


@needs_lab
def test_the_edge_path_works_and_health_checks_pass_over_tls(mtls_lab: LabContext) -> None:
    recorded = manifest.read(mtls_lab.state)
    assert recorded is not None
    assert recorded.mtls
    topo = topology("production", mtls_lab.subnet)
    lb = HAProxy(topo, topo.spec("lb"))
    # check-ssl: both UP. A check that timed out on a busy machine shows as "UP 1/2" (still in
    # service, one failure counted) until the next one passes: wait for that, bounded.
    deadline = time.monotonic() + 10
    while (states := lb.servers(mtls_lab)) != {"app-1": "UP", "app-2": "UP"} \
            and time.monotonic() < deadline:
        time.sleep(0.25)
    assert states == {"app-1": "UP", "app-2": "UP"}
    address, port = endpoint(mtls_lab, "edge")
    result = load.run(address, port, lambda n: f"/?mtls-edge={time.time_ns()}-{n}",
                      requests=20, concurrency=2, cafile=str(mtls_lab.pki / "ca.pem"))
    assert [s.status for s in result.samples] == [200] * 20
    assert set(result.summary()["served_by"]) == {"app-1", "app-2"}
    # The second POP (Caddy) presents its own certificate to the LB.
    address, port = endpoint(mtls_lab, "pop-2")
    probe = f"mtls-pop={time.time_ns()}"
    result = load.run(address, port, f"/?{probe}", requests=1, concurrency=1,
                      cafile=str(mtls_lab.pki / "ca.pem"))
    assert result.samples[0].status == 200
    [line] = logs.logged(mtls_lab.log("lb"), probe, want=1)
    assert line["client_dn"].endswith("/CN=pop-2")
    # lab status reads --mtls from lab.json and checks the app nodes with a certificate.
    assert all(r.healthy for r in lab.status(LabContext(state=mtls_lab.state)))


@needs_lab
@pytest.mark.parametrize("who", ["no certificate", "another CA"])
def test_the_lb_refuses_a_client_without_a_valid_certificate(mtls_lab: LabContext,
                                                            who: str) -> None:
    status, error = attempt(mtls_lab, "lb", None if who == "no certificate"
                            else other_ca(mtls_lab))
    assert status is None, f"HAProxy answered {status}"
    # A TLS alert: "certificate required" (TLS 1.3, RFC 8446 §6.2) or "unknown ca".
    assert ("CERTIFICATE_REQUIRED" in error if who == "no certificate"
            else "UNKNOWN_CA" in error), error


@needs_lab
def test_the_lb_refuses_plain_http(mtls_lab: LabContext) -> None:
    address, port = endpoint(mtls_lab, "lb")
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {SITE}\r\n\r\n".encode())
        assert not sock.recv(4096).startswith(b"HTTP/")


@needs_lab
@pytest.mark.parametrize(("who", "words"), [
    ("no certificate", "No required SSL certificate was sent"),
    ("another CA", "The SSL certificate error"),
])
def test_an_app_node_refuses_a_client_without_a_valid_certificate(
        mtls_lab: LabContext, who: str, words: str) -> None:
    status, body = attempt(mtls_lab, "app-1-nginx", None if who == "no certificate"
                           else other_ca(mtls_lab))
    assert status == 400
    assert words in body


@needs_lab
def test_an_app_node_serves_the_lbs_certificate(mtls_lab: LabContext) -> None:
    lb = tier_cert(mtls_lab.pki, "lb", endpoint(mtls_lab, "lb")[0])
    status, _ = attempt(mtls_lab, "app-2-nginx", (lb.chain, lb.key))
    assert status == 200


def lab_spans(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The lab's tier spans in a journey's JSON, by kind (lb, app ...): their attrs."""
    out: dict[str, dict[str, Any]] = {}

    def walk(span: dict[str, Any]) -> None:
        if span.get("name") in ("server.lb", "server.app", "server.edge"):
            out[span["name"].split(".")[1]] = span.get("attrs") or {}
        for child in span.get("children") or []:
            walk(child)

    for span in data["spans"]:
        walk(span)
    return out


@needs_lab
def test_the_merged_timeline_shows_each_hops_tls(mtls_lab: LabContext) -> None:
    done = subprocess.run([sys.executable, "-m", "whathappens",
                           f"https://{SITE}/?mtls-journey={time.time_ns()}",
                           "--lab", str(mtls_lab.state), "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    data = json.loads(done.stdout)
    spans = lab_spans(data)
    assert {"edge", "lb", "app"} <= set(spans), sorted(spans)
    lb, app = spans["lb"], spans["app"]
    assert lb["tls"] in ("TLSv1.2", "TLSv1.3")
    assert lb["server_tls"] == lb["tls"]
    assert lb["client_dn"].endswith("/CN=edge")
    assert lb["client_verify"] == 0
    assert app["ssl_client_s_dn"].startswith("CN=lb,")
    assert app["ssl_client_verify"] == "SUCCESS"
    assert app["ssl_protocol"] in ("TLSv1.2", "TLSv1.3")


@needs_lab
def test_the_experiment_measures_and_puts_the_lab_back(
        mtls_lab: LabContext, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(name="mtls", requests=REQUESTS, concurrency=4, out=str(tmp_path))
    assert experiments.main(LabContext(state=mtls_lab.state), args) == 0
    printed = capsys.readouterr().out
    assert "whathappens' own Python client" in printed
    data = json.loads((tmp_path / "mtls.json").read_text())
    rows = {s["name"]: s["summary"] for s in data["settings"]}
    assert list(rows) == ["plain, reuse", "mTLS, reuse", "plain, no reuse", "mTLS, no reuse"]
    for row in rows.values():
        assert row["failed"] == 0
        assert row["logged"]["lb"] == REQUESTS
    # Without reuse, every request opens both connections; with it, far fewer do.
    assert rows["mTLS, no reuse"]["edge_lb_new"] == REQUESTS
    assert rows["mTLS, no reuse"]["lb_app_new"] == REQUESTS
    assert rows["mTLS, reuse"]["edge_lb_new"] < REQUESTS
    assert (tmp_path / "mtls.svg").read_text().startswith("<svg")
    recorded = manifest.read(mtls_lab.state)
    assert recorded is not None
    assert recorded.mtls
    topo = topology("production", mtls_lab.subnet)
    lb = HAProxy(topo, topo.spec("lb"))
    assert "verify required" in lb.conf_path(mtls_lab).read_text()
    assert lb.servers(mtls_lab) == {"app-1": "UP", "app-2": "UP"}
    assert attempt(mtls_lab, "lb", None)[0] is None


@needs_lab
def test_experiments_that_skip_the_lb_say_why(mtls_lab: LabContext, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(name="microcache", requests=REQUESTS, concurrency=4,
                              out=str(tmp_path))
    assert experiments.main(LabContext(state=mtls_lab.state), args) != 0
    assert "without --mtls" in capsys.readouterr().err


@needs_lab
def test_lab_down_leaves_nothing(mtls_lab: LabContext) -> None:
    records = process.records(mtls_lab)
    lab.down(mtls_lab)
    assert not [r.tier for r in records if process.alive(r.pid)]
    for tier in ("edge", "lb", "app-1-nginx", "app-2-nginx"):
        address, port = endpoint(mtls_lab, tier)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=1).close()
