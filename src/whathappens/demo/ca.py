"""The demo internet's own PKI, made on first run and reused afterwards.

    whathappens demo root CA            ca.pem — what a client passes as --cacert
      └── whathappens demo intermediate CA
            └── www.example.com         server-chain.pem (leaf + intermediate), server-key.pem

The certificates follow the Web PKI profile closely enough that both OpenSSL and
``cryptography.x509.verification`` accept them: BasicConstraints and KeyUsage (critical),
ExtendedKeyUsage serverAuth on the leaf, Subject/Authority Key Identifiers, and the names in
SubjectAlternativeName (RFC 5280 §4.2; browsers ignore the CN).

The broken certificates, one per TLS failure a tracer must explain, live in ``bad/``:

    expired           valid chain, but notAfter is in the past
    wrong-host        valid chain, but the names are for other.test
    self-signed       a leaf that signed itself
    unknown-issuer    leaf + intermediate of a "rogue" CA that ca.pem does not contain
    incomplete-chain  a leaf from the real intermediate, sent without that intermediate

Leaves live 90 days and are re-issued when fewer than 30 are left; the CAs are kept, so a
ca.pem someone already trusts stays valid. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PKI_VERSION = "1"
LEAF_DAYS = 90
RENEW_DAYS = 30
ROOT_NAME = "whathappens demo root CA"
INTERMEDIATE_NAME = "whathappens demo intermediate CA"
ORGANIZATION = "whathappens demo"

SERVER_NAMES = ("www.example.com", "example.com", "*.example.com", "www.glueless.com")
SERVER_IPS = ("127.0.80.1", "::1")

BAD_KINDS = ("expired", "wrong-host", "self-signed", "unknown-issuer", "incomplete-chain")

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertFiles:
    """What a TLS server needs: its chain (leaf first) and its private key."""

    chain: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    intermediate: Path
    server: CertFiles
    bad: dict[str, CertFiles]


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    key: Key


def ensure_pki(state_dir: Path) -> Pki:
    """Load the PKI from ``state_dir``, creating or renewing what is missing or due."""
    state_dir.mkdir(parents=True, exist_ok=True)
    private = state_dir / "pki"
    private.mkdir(mode=0o700, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    version_file = private / "version"
    root = intermediate = None
    if version_file.exists() and version_file.read_text().strip() == PKI_VERSION:
        root = _load_issuer(state_dir / "ca.pem", private / "ca-key.pem")
        intermediate = _load_issuer(private / "intermediate.pem", private / "intermediate-key.pem")
    if root is None or intermediate is None:
        root = _make_ca(ROOT_NAME, None, now, days=3650)
        intermediate = _make_ca(INTERMEDIATE_NAME, root, now, days=1825)
        _write_cert(state_dir / "ca.pem", [root.cert])
        _write_key(private / "ca-key.pem", root.key)
        _write_cert(private / "intermediate.pem", [intermediate.cert])
        _write_key(private / "intermediate-key.pem", intermediate.key)
        for stale in (state_dir / "server-chain.pem", state_dir / "server-key.pem"):
            stale.unlink(missing_ok=True)
        version_file.write_text(PKI_VERSION + "\n")

    server = CertFiles(state_dir / "server-chain.pem", state_dir / "server-key.pem")
    bad_dir = state_dir / "bad"
    bad = {kind: CertFiles(bad_dir / f"{kind}-chain.pem", bad_dir / f"{kind}-key.pem")
           for kind in BAD_KINDS}
    if _leaf_due(server.chain, now) or not all(f.chain.exists() for f in bad.values()):
        _issue_server(server, intermediate, now)
        bad_dir.mkdir(exist_ok=True)
        _issue_bad(bad, intermediate, now)
    return Pki(state_dir / "ca.pem", private / "intermediate.pem", server, bad)


def _issue_server(files: CertFiles, issuer: _Issuer, now: dt.datetime) -> None:
    key = _new_key()
    leaf = _make_leaf(key, issuer, SERVER_NAMES, now, ips=SERVER_IPS)
    _write_key(files.key, key)
    _write_cert(files.chain, [leaf, issuer.cert])


def _issue_bad(bad: dict[str, CertFiles], intermediate: _Issuer, now: dt.datetime) -> None:
    def issue(
        kind: str,
        names: Sequence[str],
        issuer: _Issuer | None,
        tail: Sequence[x509.Certificate],
        not_before: dt.datetime = now,
        until: dt.datetime | None = None,
    ) -> None:
        key = _new_key()
        leaf = _make_leaf(key, issuer, names, not_before, until=until)
        _write_key(bad[kind].key, key)
        _write_cert(bad[kind].chain, [leaf, *tail])

    issue("expired", ["expired.example.com"], intermediate, [intermediate.cert],
          not_before=now - dt.timedelta(days=400), until=now - dt.timedelta(days=30))
    issue("wrong-host", ["other.test"], intermediate, [intermediate.cert])
    issue("self-signed", ["self-signed.example.com"], None, [])
    rogue_root = _make_ca("whathappens rogue root CA", None, now, days=3650)
    rogue = _make_ca("whathappens rogue intermediate CA", rogue_root, now, days=1825)
    issue("unknown-issuer", ["unknown-issuer.example.com"], rogue, [rogue.cert])
    issue("incomplete-chain", ["incomplete-chain.example.com"], intermediate, [])


def _make_ca(common_name: str, parent: _Issuer | None, now: dt.datetime, *, days: int) -> _Issuer:
    key = _new_key()
    subject = _name(common_name)
    builder = (
        _base(subject, key, parent, now, now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0),
                       critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )
    signer = key if parent is None else parent.key
    return _Issuer(builder.sign(signer, hashes.SHA256()), key)


def _make_leaf(
    key: Key,
    issuer: _Issuer | None,
    names: Sequence[str],
    not_before: dt.datetime,
    *,
    until: dt.datetime | None = None,
    ips: Sequence[str] = (),
) -> x509.Certificate:
    """A server certificate; self-signed when ``issuer`` is None."""
    not_after = until or not_before + dt.timedelta(days=LEAF_DAYS)
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    san += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    builder = (
        _base(_name(names[0]), key, issuer, not_before - dt.timedelta(minutes=5), not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
    )
    return builder.sign(key if issuer is None else issuer.key, hashes.SHA256())


def _base(
    subject: x509.Name, key: Key, issuer: _Issuer | None, not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    """Subject, issuer, validity, serial and the key identifiers every certificate carries."""
    public = key.public_key()
    issuer_public = public if issuer is None else issuer.cert.public_key()
    assert isinstance(issuer_public, ec.EllipticCurvePublicKey)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
        )
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _leaf_due(chain: Path, now: dt.datetime) -> bool:
    try:
        leaf = x509.load_pem_x509_certificate(chain.read_bytes())
    except (OSError, ValueError):
        return True
    return leaf.not_valid_after_utc - now < dt.timedelta(days=RENEW_DAYS)


def _load_issuer(cert_path: Path, key_path: Path) -> _Issuer | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return _Issuer(cert, key)


def _write_cert(path: Path, certs: Sequence[x509.Certificate]) -> None:
    _write(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), 0o644)


def _write_key(path: Path, key: Key) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, pem, 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically so a concurrent reader never sees half a PEM file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)
