"""mTLS between the lab's tiers (``lab up --mtls``): one certificate per tier, from the lab CA.

    edge ──TLS, edge's cert──▶ HAProxy (lb) ──TLS, lb's cert──▶ app-N-nginx ──HTTP──▶ gunicorn
    pop-2 ─TLS, pop-2's cert─▶

Every tier that talks to another gets a certificate of its own, issued by the demo PKI's
intermediate CA (``demo.ca.ensure_pki``, the CA the edge's own certificate comes from), named
after the tier (CN and a DNS SubjectAltName; its host's address as an IP SubjectAltName). It
carries both ExtendedKeyUsages, serverAuth and clientAuth (RFC 5280 §4.2.1.12): the LB
presents it to the edge as a server and to the app nodes as a client. A receiving tier trusts
only the lab's root (``ca.pem``) and verifies the chain to depth 2 (leaf → intermediate →
root); a certificate of any other CA, or none, ends the handshake (nginx: 400 "No required
SSL certificate was sent"; HAProxy: a TLS alert).

The hop from the app node's nginx to gunicorn stays on the node (the same host, in
production a Unix socket or loopback), so it is not encrypted.

Files, under ``<state>/pki/tiers/``: ``<tier>.pem`` (leaf + intermediate), ``<tier>.key``
and ``<tier>.haproxy.pem`` (the two together, the form HAProxy reads). Re-issued when fewer
than 30 days are left or the tier's address changed (another ``--subnet``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from whathappens.demo.ca import ORGANIZATION, ensure_pki

LEAF_DAYS = 90
RENEW_DAYS = 30
VERIFY_DEPTH = 2          # leaf → intermediate → root
# Tiers of one wave prepare in threads of one process (lab.up): on a new state dir, two of
# them would each make a CA of their own, and the one ca.pem that stays signs only one.
_ISSUING = threading.Lock()


@dataclass(frozen=True)
class TierCert:
    """A tier's certificate files, and the CA a peer of it trusts."""

    name: str
    chain: Path           # leaf + intermediate (PEM)
    key: Path
    bundle: Path          # chain + key in one file (HAProxy's crt)
    ca: Path              # the lab's root: what every tier verifies a peer against


def tier_cert(pki_dir: Path, name: str, address: str) -> TierCert:
    """Tier ``name``'s certificate, issued now if missing, due or for another address."""
    with _ISSUING:
        return _tier_cert(pki_dir, name, address)


def _tier_cert(pki_dir: Path, name: str, address: str) -> TierCert:
    pki = ensure_pki(pki_dir)
    home = pki_dir / "pki" / "tiers"
    home.mkdir(parents=True, exist_ok=True)
    cert = TierCert(name, home / f"{name}.pem", home / f"{name}.key",
                    home / f"{name}.haproxy.pem", pki.ca)
    if _due(cert.chain, address):
        issuer_cert = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
        issuer_key = serialization.load_pem_private_key(
            (pki_dir / "pki" / "intermediate-key.pem").read_bytes(), password=None)
        if not isinstance(issuer_key, ec.EllipticCurvePrivateKey):
            raise ValueError("the lab's intermediate CA key is not an EC key")
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _leaf(name, address, key, issuer_cert, issuer_key)
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, issuer_cert))
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        _write(cert.key, key_pem, 0o600)
        _write(cert.chain, chain, 0o644)
        _write(cert.bundle, chain + key_pem, 0o600)
    return cert


def _leaf(name: str, address: str, key: ec.EllipticCurvePrivateKey,
          issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    san = x509.SubjectAlternativeName([x509.DNSName(name),
                                       x509.IPAddress(ipaddress.ip_address(address))])
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=False, crl_sign=False, encipher_only=False,
                          decipher_only=False)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))


def _due(chain: Path, address: str) -> bool:
    try:
        leaf = x509.load_pem_x509_certificate(chain.read_bytes())
        ips = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return True
    left = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return left < dt.timedelta(days=RENEW_DAYS) or ipaddress.ip_address(address) not in ips


def _write(path: Path, data: bytes, mode: int) -> None:
    # A name of its own per writer: tiers of one wave prepare in threads of one process.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def client_context(cert: TierCert | None, ca: Path, *, check_hostname: bool = True
                   ) -> ssl.SSLContext:
    """A TLS client context that trusts the lab's root and, when ``cert`` is given,
    presents that tier's certificate (what a probe or a test speaks to a tier with)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = check_hostname
    if cert is not None:
        context.load_cert_chain(str(cert.chain), str(cert.key))
    return context
