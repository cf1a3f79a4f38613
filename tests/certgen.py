"""Test certificates made on the spot: a small PKI and the broken chains users meet.

``make_pki()`` builds root → intermediate → leaf with the extensions the Web PKI expects
(CA/Browser Forum baseline requirements, as enforced by ``cryptography.x509.verification``),
so a correct chain really verifies. The other helpers make the classic failures: expired,
not yet valid, wrong host, self-signed, unknown issuer, and the server that forgets to send
its intermediate. ``write_server_files`` puts a chain and key on disk for ``ssl.SSLContext``,
and ``serve_tls`` runs a real TLS server on 127.0.0.1 that presents it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# RFC 6962 §3.3: the X.509v3 extension that carries embedded SCTs.
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_key(kind: str = "ec") -> PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "whathappens tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_ca(
    cn: str,
    *,
    issuer: Issued | None = None,
    key_kind: str = "ec",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A root (``issuer=None``, self-signed) or an intermediate signed by ``issuer``."""
    now = utcnow()
    key = new_key(key_kind)
    subject = _name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=30))
        .not_valid_after(not_after or now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer = issuer.key if issuer else key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
    )
    return Issued(_sign(builder, signer), key)


def _sct_list(count: int) -> bytes:
    """A DER OCTET STRING holding ``count`` syntactically valid SCTs (RFC 6962 §3.2, §3.3)."""
    scts = b""
    for i in range(count):
        sct = (
            b"\x00"  # v1
            + bytes([i + 1]) * 32  # log id
            + struct.pack("!Q", 1_700_000_000_000 + i)  # timestamp, ms
            + b"\x00\x00"  # no extensions
            + b"\x04\x03"  # sha256 / ecdsa
            + struct.pack("!H", 8)
            + b"\x30\x06\x02\x01\x01\x02\x01\x01"  # a (meaningless) ECDSA-Sig-Value
        )
        scts += struct.pack("!H", len(sct)) + sct
    body = struct.pack("!H", len(scts)) + scts
    # DER length (X.690 §8.1.3): short form below 128, else 0x80|n then n big-endian bytes.
    if len(body) < 128:
        length = bytes([len(body)])
    else:
        size = (len(body).bit_length() + 7) // 8
        length = bytes([0x80 | size]) + len(body).to_bytes(size, "big")
    return b"\x04" + length + body


def make_leaf(
    issuer: Issued | None,
    hosts: list[str],
    *,
    cn: str | None = None,
    key_kind: str = "ec",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    scts: int = 0,
    aia_url: str | None = None,
    key_usages: list[x509.ObjectIdentifier] | None = None,
) -> Issued:
    """A server certificate for ``hosts`` (DNS names or IP literals); self-signed if no issuer."""
    now = utcnow()
    key = new_key(key_kind)
    subject = _name(cn or (hosts[0] if hosts else "no names"))
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(key_usages or [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if scts:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST_OID, _sct_list(scts)), critical=False
        )
    if aia_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(aia_url),
                    )
                ]
            ),
            critical=False,
        )
    return Issued(_sign(builder, signer), key)


@dataclass
class Pki:
    """root → intermediate → leaf, the shape every public web server has."""

    root: Issued
    intermediate: Issued
    leaf: Issued

    @property
    def chain(self) -> list[Issued]:
        """What a correctly configured server sends: leaf, then intermediate (not the root)."""
        return [self.leaf, self.intermediate]


def make_pki(
    hosts: list[str] | None = None, *, key_kind: str = "ec", root_cn: str = "Test Root CA"
) -> Pki:
    root = make_ca(root_cn, key_kind=key_kind)
    intermediate = make_ca(f"{root_cn} Intermediate", issuer=root, key_kind=key_kind)
    leaf = make_leaf(intermediate, hosts or ["localhost", "127.0.0.1"], key_kind=key_kind)
    return Pki(root, intermediate, leaf)


def write_server_files(
    directory: Path, chain: list[Issued], stem: str = "server"
) -> tuple[str, str]:
    """Write ``chain`` (leaf first) and the leaf's key as PEM; returns (certfile, keyfile)."""
    certfile = directory / f"{stem}-chain.pem"
    keyfile = directory / f"{stem}-key.pem"
    certfile.write_bytes(b"".join(c.pem for c in chain))
    keyfile.write_bytes(chain[0].key_pem)
    return str(certfile), str(keyfile)


def write_cafile(directory: Path, roots: list[Issued], stem: str = "roots") -> str:
    path = directory / f"{stem}.pem"
    path.write_bytes(b"".join(r.pem for r in roots))
    return str(path)


def server_context(
    certfile: str, keyfile: str, *, maximum_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    if maximum_version is not None:
        context.maximum_version = maximum_version
    return context


@dataclass
class TlsServer:
    address: tuple[str, int]
    errors: list[BaseException] = field(default_factory=list)


@contextlib.contextmanager
def serve_tls(context: ssl.SSLContext, reply: bytes = b"hello") -> Iterator[TlsServer]:
    """A TLS server on 127.0.0.1:0 in a thread: handshake, send ``reply``, close; repeat."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    server = TlsServer(listener.getsockname()[:2])
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(reply)
            except (ssl.SSLError, OSError) as exc:  # the client gave up: a test's business
                server.errors.append(exc)
            finally:
                conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()
