"""Certificates and chains in plain words, checked against chains built for each failure."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgen import (
    Issued,
    Pki,
    make_ca,
    make_leaf,
    make_pki,
    serve_tls,
    server_context,
    utcnow,
    write_cafile,
    write_server_files,
)
from whathappens.contract.codec import to_json
from whathappens.net.certs import (
    describe_certificate,
    explain_openssl_verify_error,
    load_trust_roots,
    verify_chain,
)
from whathappens.net.tlsmsg import HandshakeRecorder, parse_certificate_message

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def other() -> Pki:
    """A second, untrusted hierarchy."""
    return make_pki(root_cn="Other Root")


@pytest.fixture(scope="module")
def cafile(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_cafile(tmp_path_factory.mktemp("roots"), [pki.root])


def ders(*certs: Issued) -> list[bytes]:
    return [c.der for c in certs]


# ---------------------------------------------------------------------------------------------
# describe_certificate


def test_describe_server_certificate(pki: Pki) -> None:
    leaf = make_leaf(pki.intermediate, ["www.example.test", "example.test", "192.0.2.7"], scts=3)
    now = leaf.cert.not_valid_after_utc - 10 * DAY - dt.timedelta(hours=1)
    info = describe_certificate(leaf.der, now)
    assert json.loads(json.dumps(to_json(info))) == to_json(info)
    assert info.subject == "CN=www.example.test,O=whathappens tests"
    assert info.subject_cn == "www.example.test"
    assert info.issuer == "CN=Test Root CA Intermediate,O=whathappens tests"
    assert info.issuer_cn == "Test Root CA Intermediate"
    assert info.serial == format(leaf.cert.serial_number, "x")
    assert info.san_dns == ["www.example.test", "example.test"]
    assert info.san_ip == ["192.0.2.7"]
    assert info.not_after == leaf.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert str(info.not_before).endswith("Z")
    assert info.days_left == 10
    assert info.key == "EC P-256"
    assert info.signature_algorithm == "ecdsa-with-SHA256"
    assert info.is_ca is False
    assert info.self_signed is False
    assert info.sct_count == 3
    assert info.sha256 == hashlib.sha256(leaf.der).hexdigest()


def test_days_left_is_whole_days_toward_zero(pki: Pki) -> None:
    # Whole days, truncated toward zero: the number the verification reason words too.
    now = pki.leaf.cert.not_valid_after_utc + dt.timedelta(hours=1)
    assert describe_certificate(pki.leaf.der, now).days_left == 0
    now = pki.leaf.cert.not_valid_after_utc + dt.timedelta(days=30, hours=12)
    assert describe_certificate(pki.leaf.der, now).days_left == -30


@pytest.mark.parametrize(
    ("kind", "key", "signature"),
    [
        ("rsa", "RSA 2048", "sha256WithRSAEncryption"),
        ("ec384", "EC P-384", "ecdsa-with-SHA256"),
        ("ed25519", "Ed25519", "ed25519"),
    ],
)
def test_describe_key_and_signature(kind: str, key: str, signature: str) -> None:
    cert = make_leaf(None, ["example.test"], key_kind=kind)
    info = describe_certificate(cert.der, utcnow())
    assert (info.key, info.signature_algorithm) == (key, signature)
    assert info.self_signed is True
    assert info.sct_count == 0


def test_describe_root_and_a_name_alike_that_is_not_self_signed(pki: Pki) -> None:
    root = describe_certificate(pki.root.der, utcnow())
    assert (root.is_ca, root.self_signed) == (True, True)
    # Same subject and issuer name, but signed by another key: not self-signed.
    ca = make_ca("Look Alike")
    imposter = make_leaf(ca, ["example.test"], cn="Look Alike")
    assert imposter.cert.issuer == imposter.cert.subject
    assert describe_certificate(imposter.der, utcnow()).self_signed is False


def test_garbage_is_described_as_unreadable() -> None:
    info = describe_certificate(b"\x30\x03\x02\x01\x01", utcnow())
    assert info.subject == "(unreadable certificate)"
    assert "does not parse" in str(info.unreadable)


# ---------------------------------------------------------------------------------------------
# verify_chain: one test per reason, asserting what the user reads


def test_good_chain_is_trusted(pki: Pki, cafile: str) -> None:
    result = verify_chain(ders(*pki.chain), "localhost", cafile=cafile, now=utcnow())
    assert (result.ok, result.code) == (True, "ok")
    assert "1 intermediate" in result.reason
    assert "'Test Root CA'" in result.reason
    assert verify_chain(ders(*pki.chain), "127.0.0.1", cafile=cafile, now=utcnow()).ok
    # Sending the root too is redundant but fine.
    with_root = ders(pki.leaf, pki.intermediate, pki.root)
    assert verify_chain(with_root, "LOCALHOST.", cafile=cafile, now=utcnow()).ok


def test_expired_leaf_says_when(pki: Pki, cafile: str) -> None:
    now = utcnow()
    leaf = make_leaf(
        pki.intermediate, ["localhost"], not_before=now - 100 * DAY, not_after=now - 3 * DAY
    )
    result = verify_chain(ders(leaf, pki.intermediate), "localhost", cafile=cafile, now=now)
    assert (result.ok, result.code) == (False, "expired")
    expiry = leaf.cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    assert result.reason == f"The server's certificate expired on {expiry} (3 days ago)."


def test_expired_intermediate_is_named(pki: Pki, cafile: str) -> None:
    now = utcnow()
    old = make_ca(
        "Old Intermediate", issuer=pki.root, not_before=now - 400 * DAY, not_after=now - DAY
    )
    leaf = make_leaf(old, ["localhost"])
    result = verify_chain(ders(leaf, old), "localhost", cafile=cafile, now=now)
    assert result.code == "expired"
    assert result.reason.startswith("The intermediate certificate 'Old Intermediate' expired on")


def test_the_clock_is_the_callers(pki: Pki, cafile: str) -> None:
    later = utcnow() + 200 * DAY
    result = verify_chain(ders(*pki.chain), "localhost", cafile=cafile, now=later)
    assert result.code == "expired"


def test_not_yet_valid_says_when_and_suspects_the_clock(pki: Pki, cafile: str) -> None:
    now = utcnow()
    leaf = make_leaf(pki.intermediate, ["localhost"], not_before=now + 3 * DAY)
    result = verify_chain(ders(leaf, pki.intermediate), "localhost", cafile=cafile, now=now)
    assert result.code == "not_yet_valid"
    start = leaf.cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")
    assert f"not valid until {start} (in 3 days)" in result.reason
    assert "clock" in result.reason


def test_hostname_mismatch_lists_the_names_covered(pki: Pki, cafile: str) -> None:
    leaf = make_leaf(pki.intermediate, ["a.example", "*.b.example", "192.0.2.1"])
    chain = ders(leaf, pki.intermediate)
    result = verify_chain(chain, "localhost", cafile=cafile, now=utcnow())
    assert result.code == "hostname_mismatch"
    assert result.reason == (
        "The certificate is not valid for localhost: it covers a.example, *.b.example, 192.0.2.1."
    )
    # A wildcard stands for exactly one label (RFC 6125 §6.4.3).
    assert verify_chain(chain, "x.b.example", cafile=cafile, now=utcnow()).ok
    deeper = verify_chain(chain, "y.x.b.example", cafile=cafile, now=utcnow())
    assert deeper.code == "hostname_mismatch"
    assert verify_chain(chain, "192.0.2.2", cafile=cafile, now=utcnow()).code == "hostname_mismatch"


def test_unicode_host_matches_its_a_label(pki: Pki, cafile: str) -> None:
    leaf = make_leaf(pki.intermediate, ["xn--bcher-kva.example"])
    chain = ders(leaf, pki.intermediate)
    assert verify_chain(chain, "Bücher.example", cafile=cafile, now=utcnow()).ok


def test_certificate_without_names(pki: Pki, cafile: str) -> None:
    leaf = make_leaf(pki.intermediate, [], cn="localhost")
    result = verify_chain(ders(leaf, pki.intermediate), "localhost", cafile=cafile, now=utcnow())
    assert result.code == "hostname_mismatch"
    assert "no subjectAltName" in result.reason
    assert "CN=localhost" in result.reason


def test_self_signed(cafile: str) -> None:
    leaf = make_leaf(None, ["localhost"])
    result = verify_chain([leaf.der], "localhost", cafile=cafile, now=utcnow())
    assert result.code == "self_signed"
    assert "'localhost' vouches for itself" in result.reason


def test_unknown_issuer_names_the_untrusted_ca(other: Pki, cafile: str) -> None:
    result = verify_chain(ders(*other.chain), "localhost", cafile=cafile, now=utcnow())
    assert result.code == "unknown_issuer"
    assert "issued by 'Other Root'" in result.reason
    with_root = ders(other.leaf, other.intermediate, other.root)
    result = verify_chain(with_root, "localhost", cafile=cafile, now=utcnow())
    assert result.code == "unknown_issuer"
    assert "the root 'Other Root', which is not in your trust store" in result.reason


def test_missing_intermediate_is_an_incomplete_chain(pki: Pki, cafile: str) -> None:
    result = verify_chain([pki.leaf.der], "localhost", cafile=cafile, now=utcnow())
    assert result.code == "incomplete_chain"
    assert result.reason.startswith(
        "The server sent only its own certificate: the intermediate certificate "
        "'Test Root CA Intermediate' that links it to a trusted root is missing"
    )


def test_wrong_intermediate_is_an_incomplete_chain(pki: Pki, other: Pki, cafile: str) -> None:
    chain = ders(pki.leaf, other.intermediate)
    result = verify_chain(chain, "localhost", cafile=cafile, now=utcnow())
    assert result.code == "incomplete_chain"
    assert "sent 1 other certificate, but none of them issued its own" in result.reason


def test_other_passes_on_the_library_reason(pki: Pki, cafile: str) -> None:
    leaf = make_leaf(pki.intermediate, ["localhost"], key_usages=[ExtendedKeyUsageOID.CLIENT_AUTH])
    result = verify_chain(ders(leaf, pki.intermediate), "localhost", cafile=cafile, now=utcnow())
    assert result.code == "other"
    assert result.reason == (
        "The certificate chain was rejected: required EKU not found "
        "(certificate CN=localhost,O=whathappens tests)."
    )


def test_unreadable_input(pki: Pki, cafile: str, tmp_path: Path) -> None:
    now = utcnow()
    assert verify_chain([], "localhost", cafile=cafile, now=now).reason == (
        "The server sent no certificate."
    )
    garbage = verify_chain([pki.leaf.der, b"junk"], "localhost", cafile=cafile, now=now)
    assert garbage.code == "malformed"
    assert garbage.reason.startswith("Certificate #2 of the chain could not be read")
    missing = str(tmp_path / "nope.pem")
    assert verify_chain(ders(*pki.chain), "localhost", cafile=missing, now=now).code == "other"
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificates here\n")
    result = verify_chain(ders(*pki.chain), "localhost", cafile=str(empty), now=now)
    assert result.reason == f"No trusted root certificates were found in {empty}."


@pytest.mark.skipif(
    not os.path.isfile("/etc/ssl/certs/ca-certificates.crt")
    and not ssl.get_default_verify_paths().cafile,
    reason="no system trust store",
)
def test_system_trust_store_is_loaded_once(pki: Pki) -> None:
    roots = load_trust_roots(None)
    assert roots.certs
    assert load_trust_roots(None) is roots
    result = verify_chain(ders(*pki.chain), "localhost", cafile=None, now=utcnow())
    assert result.code == "unknown_issuer"
    assert "issued by 'Test Root CA'" in result.reason


# ---------------------------------------------------------------------------------------------
# What OpenSSL says during a real handshake, and what verify_chain makes of the same chain


def _scenario(name: str, pki: Pki, other: Pki) -> tuple[list[Issued], str]:
    now = utcnow()
    if name == "expired":
        leaf = make_leaf(
            pki.intermediate, ["localhost"], not_before=now - 9 * DAY, not_after=now - DAY
        )
        return [leaf, pki.intermediate], "localhost"
    if name == "not_yet_valid":
        return [
            make_leaf(pki.intermediate, ["localhost"], not_before=now + DAY),
            pki.intermediate,
        ], ("localhost")
    if name == "wrong_host":
        return pki.chain, "wrong.example"
    if name == "self_signed":
        return [make_leaf(None, ["localhost"])], "localhost"
    if name == "untrusted_root_sent":
        return [other.leaf, other.intermediate, other.root], "localhost"
    if name == "unknown_ca":
        return other.chain, "localhost"
    assert name == "leaf_only"
    return [pki.leaf], "localhost"


@pytest.mark.parametrize(
    ("name", "verify_code", "openssl_verdict", "chain_verdict"),
    [
        ("expired", 10, "expired", "expired"),
        ("not_yet_valid", 9, "not_yet_valid", "not_yet_valid"),
        ("wrong_host", 62, "hostname_mismatch", "hostname_mismatch"),
        ("self_signed", 18, "self_signed", "self_signed"),
        ("untrusted_root_sent", 19, "unknown_issuer", "unknown_issuer"),
        ("unknown_ca", 20, "unknown_issuer", "unknown_issuer"),
        # OpenSSL cannot tell these apart (20); the chain the server sent can.
        ("leaf_only", 20, "unknown_issuer", "incomplete_chain"),
    ],
)
def test_handshake_failures_explained(
    name: str,
    verify_code: int,
    openssl_verdict: str,
    chain_verdict: str,
    pki: Pki,
    other: Pki,
    cafile: str,
    tmp_path: Path,
) -> None:
    chain, host = _scenario(name, pki, other)
    certfile, keyfile = write_server_files(tmp_path, chain)
    client = ssl.create_default_context(cafile=cafile)
    recorder = HandshakeRecorder(lambda: 0)
    recorder.install(client)
    with serve_tls(server_context(certfile, keyfile)) as server:
        sock = socket.create_connection(server.address, timeout=10)
        with pytest.raises(ssl.SSLCertVerificationError) as failure:
            client.wrap_socket(sock, server_hostname=host)
        sock.close()

    assert failure.value.verify_code == verify_code
    code, reason = explain_openssl_verify_error(
        failure.value.verify_code, failure.value.verify_message, host
    )
    assert code == openssl_verdict
    if code == "hostname_mismatch":
        assert reason == "The certificate is not valid for wrong.example."

    assert recorder.certificate is not None
    sent = parse_certificate_message(recorder.certificate, tls13=True)
    assert sent == ders(*chain)
    assert verify_chain(sent, host, cafile=cafile, now=utcnow()).code == chain_verdict


def test_openssl_codes_without_a_handshake() -> None:
    code, reason = explain_openssl_verify_error(20, "unable to get local issuer certificate", "x")
    assert code == "unknown_issuer"
    assert "did not send the intermediate certificate" in reason
    assert explain_openssl_verify_error(21, "unable to verify the first certificate", "x")[0] == (
        "incomplete_chain"
    )
    assert explain_openssl_verify_error(64, "IP address mismatch", "[::1]") == (
        "hostname_mismatch",
        "The certificate is not valid for ::1.",
    )
    assert explain_openssl_verify_error(999, "something new", "x") == (
        "other",
        "Certificate verification failed: something new (OpenSSL error 999).",
    )


def _lazily_broken(der: bytes) -> list[bytes]:
    """Copies of ``der`` with one bit flipped that cryptography still loads, but whose fields
    fail when read (it parses lazily): what a fuzzer found could reach exit 10."""
    out = []
    for i in range(len(der)):
        bad = bytearray(der)
        bad[i] ^= 1
        try:
            x509.load_der_x509_certificate(bytes(bad))
        except Exception:  # ValueError, InvalidVersion: refused at once, not this kind
            continue
        out.append(bytes(bad))
    return out


def test_a_certificate_whose_fields_do_not_parse_is_described_not_raised() -> None:
    pki = make_pki(["localhost"])
    now = dt.datetime.now(dt.UTC)
    broken = 0
    for bad in _lazily_broken(pki.leaf.der):
        described = describe_certificate(bad, now)  # never raises
        verdict = verify_chain([bad, pki.intermediate.der], "localhost", cafile=None, now=now)
        assert not verdict.ok
        if described.unreadable is not None:
            broken += 1
            assert described.subject == "(unreadable certificate)"
            assert re.search(r"does not parse|cannot be read", str(described.unreadable))
            # The flipped bit also breaks the signature; which is found first depends on
            # the field: either way in words, never the parser's own text.
            assert verdict.code in ("malformed", "bad_signature"), verdict
            assert "ParseError" not in verdict.reason
    assert broken > 10  # the kind was really exercised
