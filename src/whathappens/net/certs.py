"""The server's certificate chain in plain words: what each certificate says, whether to trust it.

``describe_certificate`` turns one DER certificate into its facts
(``contract.facts.Certificate``). ``verify_chain`` runs
the Web PKI checks of ``cryptography.x509.verification`` (RFC 5280 path validation with the
CA/Browser Forum profile) and, when they fail, works out *why* by examining the chain itself,
because the library's errors are often vague ("candidates exhausted"). The checks go in the
order a person would: are the dates right, is it for this host, does it lead to a root we
trust. ``explain_openssl_verify_error`` gives the same codes for a failure reported by OpenSSL
during the handshake (``ssl.SSLCertVerificationError.verify_code``).

Codes: ``ok``, ``expired``, ``not_yet_valid``, ``hostname_mismatch``, ``self_signed``,
``unknown_issuer``, ``incomplete_chain``, ``bad_signature``, ``weak_signature``, ``weak_key``,
``not_a_ca``, ``wrong_purpose``, ``critical_extension``, ``chain_too_long``, ``other``.

Importing ``cryptography.x509`` costs ~50 ms, so nothing should import this module before the
TLS step needs it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
import itertools
import os
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import idna
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from whathappens.contract.facts import Certificate
from whathappens.explain.words import ago

__all__ = [
    "TrustRoots",
    "Verification",
    "describe_certificate",
    "explain_openssl_verify_error",
    "load_trust_roots",
    "verify_chain",
]

_FALLBACK_CAFILE = "/etc/ssl/certs/ca-certificates.crt"
_MAX_PATH = 10  # longer chains than this are not worth walking (RFC 5280 sets no limit)

_SIGNATURE_NAMES: dict[x509.ObjectIdentifier, str] = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "rsassa-pss",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.ED25519: "ed25519",
    SignatureAlgorithmOID.ED448: "ed448",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "dsa-with-sha256",
}
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


# ---------------------------------------------------------------------------------------------
# One certificate


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(when: dt.datetime) -> str:
    return _utc(when).strftime("%Y-%m-%d %H:%M UTC")


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _label(cert: x509.Certificate) -> str:
    """How we name a certificate to a person: its CN, else its whole subject."""
    return _cn(cert.subject) or cert.subject.rfc4514_string() or "(empty subject)"


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return [], []
    dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return dns, ips


def _key_description(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except (ValueError, TypeError):  # unsupported algorithm or malformed key
        return "unknown"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Names link up and ``issuer``'s key verifies ``cert``'s signature (RFC 5280 §6.1.3)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def malformed_words(exc: Exception) -> str:
    """Why a certificate could not be read, in words. cryptography parses lazily, so a broken
    one fails wherever a field is first read, with the parser's own text ("error parsing asn1
    value: ParseError { kind: UnexpectedTag … }") or an unknown algorithm's OID."""
    text = str(exc)
    kind = re.search(r"kind: (\w+)", text)
    if kind is not None:
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", kind.group(1)).lower()  # UnexpectedTag
        return f"its DER encoding does not parse ({words}, RFC 5280 §4.1)"
    if "Unknown key type" in text or "UnsupportedAlgorithm" in type(exc).__name__:
        oid = re.search(r"\d+(?:\.\d+)+", text)
        # Also what a known key type with broken parameters (a curve OID) gives.
        return ("its public key cannot be read: malformed, or of a type we do not know"
                + (f" (algorithm OID {oid.group(0)})" if oid else ""))
    return f"a field of it cannot be read ({text[:120]})"


def describe_certificate(der: bytes, now: dt.datetime) -> Certificate:
    """What one certificate says; a certificate that cannot be read is described
    as such, with every field present and empty (the server's bytes are untrusted input)."""
    try:
        return _describe(der, now)
    except Exception as exc:  # any parse failure of cryptography's, wherever it surfaces
        return Certificate(
            subject="(unreadable certificate)", subject_cn=None, issuer="",
            issuer_cn=None, serial="", san_dns=[], san_ip=[],
            not_before=None, not_after=None, days_left=None, key="",
            signature_algorithm="", is_ca=False, self_signed=False, sct_count=0,
            sha256=hashlib.sha256(der).hexdigest(), unreadable=malformed_words(exc),
        )


def _describe(der: bytes, now: dt.datetime) -> Certificate:
    cert = x509.load_der_x509_certificate(der)
    dns, ips = _sans(cert)
    constraints = _extension(cert, x509.BasicConstraints)
    # RFC 6962 §3.3: SCTs embedded by the CA, proof the certificate was logged publicly.
    scts = _extension(cert, x509.PrecertificateSignedCertificateTimestamps)
    not_after = cert.not_valid_after_utc
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        subject_cn=_cn(cert.subject),
        issuer=cert.issuer.rfc4514_string(),
        issuer_cn=_cn(cert.issuer),
        serial=format(cert.serial_number, "x"),
        san_dns=dns,
        san_ip=ips,
        not_before=_iso(cert.not_valid_before_utc),
        not_after=_iso(not_after),
        days_left=whole_days(not_after - _utc(now)),
        key=_key_description(cert),
        signature_algorithm=_SIGNATURE_NAMES.get(
            cert.signature_algorithm_oid, cert.signature_algorithm_oid.dotted_string
        ),
        is_ca=bool(constraints and constraints.ca),
        self_signed=_self_signed(cert),
        sct_count=len(scts) if scts is not None else 0,
        sha256=hashlib.sha256(der).hexdigest(),
    )


# ---------------------------------------------------------------------------------------------
# Trust roots


@dataclass(frozen=True)
class TrustRoots:
    source: str
    certs: tuple[x509.Certificate, ...]
    store: Store | None  # None when no certificate could be loaded


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _load_roots(path: str) -> TrustRoots:
    with open(path, "rb") as f:
        data = f.read()
    certs: list[x509.Certificate] = []
    for block in _PEM_BLOCK.findall(data):
        # One odd root (some system bundles have a non-positive serial) must not cost us the rest.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return TrustRoots(path, tuple(certs), Store(certs) if certs else None)


def _system_cafile() -> str:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, _FALLBACK_CAFILE):
        if candidate and os.path.isfile(candidate):
            return candidate
    return _FALLBACK_CAFILE


@functools.cache
def _system_roots() -> TrustRoots:
    return _load_roots(_system_cafile())


def load_trust_roots(cafile: str | None) -> TrustRoots:
    """Roots from a PEM bundle, or the system's (loaded once per process). Raises OSError."""
    return _system_roots() if cafile is None else _load_roots(cafile)


# ---------------------------------------------------------------------------------------------
# Chain verification


@dataclass(frozen=True)
class Verification:
    ok: bool
    code: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def whole_days(delta: dt.timedelta) -> int:
    """Whole days in ``delta``, truncated toward zero: the one computation of a certificate's
    days left (negative once expired), for the chain table and the verification reason."""
    return int(delta / dt.timedelta(days=1))


def _fail(code: str, reason: str) -> Verification:
    return Verification(False, code, reason)


def _normalize_host(host: str) -> str:
    """Lower-case, no brackets or trailing dot; A-labels, as certificates carry (RFC 5280 §7.2)."""
    host = host.strip().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.isascii():
        # A name IDNA rejects stays as it is: it will match nothing, and the reason says so.
        with contextlib.suppress(idna.IDNAError):
            host = idna.encode(host, uts46=True).decode("ascii")
    return host.lower()


def _as_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _dns_name_matches(pattern: str, host: str) -> bool:
    """RFC 9525 §6.3: a wildcard is only a whole left-most label and stands for one label."""
    pattern = pattern.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith("*.") or "*" in pattern[1:]:
        return False
    suffix = pattern[1:]  # ".example.com"
    first_label = host[: -len(suffix)]
    return host.endswith(suffix) and bool(first_label) and "." not in first_label


def _host_matches(cert: x509.Certificate, host: str) -> bool:
    dns, ips = _sans(cert)
    ip = _as_ip(host)
    if ip is not None:  # RFC 9525 §6.4 / RFC 5280 §4.2.1.6: IPs match iPAddress entries only
        return any(ipaddress.ip_address(i) == ip for i in ips)
    return any(_dns_name_matches(name, host) for name in dns)


def _names_covered(cert: x509.Certificate) -> str:
    dns, ips = _sans(cert)
    names = dns + ips
    if not names:
        cn = _cn(cert.subject)
        hint = f" Its subject says CN={cn}, but clients stopped trusting that field." if cn else ""
        return "it names no hosts at all (it has no subjectAltName)." + hint
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"it covers {shown}."


_LIBRARY_CONTEXT = re.compile(r" \(encountered processing <Certificate\(subject=<Name\((.*?)\)>")


def _library_message(exc: Exception) -> str:
    """The verifier's message without its prefix and its repr of the certificate involved."""
    message = str(exc).removeprefix("validation failed: ")
    found = _LIBRARY_CONTEXT.search(message)  # "... (encountered processing <Certificate(...)>)"
    if found:
        message = f"{message[: found.start()]} (certificate {found.group(1)})"
    return message


def _walk(
    chain: list[x509.Certificate], roots: TrustRoots
) -> tuple[list[x509.Certificate], x509.Certificate | None]:
    """Follow issuers from the leaf through what the server sent, up to a trusted root.

    Returns the path of sent certificates and the trusted root it reaches (None if it doesn't).
    Issuers are matched by name *and* signature, the way RFC 5280 §6.1 links a path.
    """
    path = [chain[0]]
    while len(path) <= _MAX_PATH:
        current = path[-1]
        if current in roots.certs:  # the server sent a root we trust (allowed, if redundant)
            return path, current
        for root in roots.certs:
            if _signed_by(current, root):
                return path, root
        if _self_signed(current):
            return path, None
        nxt = next((c for c in chain if c not in path and _signed_by(current, c)), None)
        if nxt is None:
            return path, None
        path.append(nxt)
    return path, None


def _check_dates(path: list[x509.Certificate], now: dt.datetime) -> Verification | None:
    """RFC 5280 §4.1.2.5: every certificate on the path must be valid at ``now``."""
    for i, cert in enumerate(path):
        if i == 0:
            what = "The server's certificate"
        elif _self_signed(cert):
            what = f"The root certificate '{_label(cert)}'"
        else:
            what = f"The intermediate certificate '{_label(cert)}'"
        not_after, not_before = cert.not_valid_after_utc, cert.not_valid_before_utc
        if now > not_after:
            days = whole_days(now - not_after)  # the same number the chain table shows
            return _fail("expired", f"{what} expired on {_day(not_after)} ({ago(days)}).")
        if now < not_before:
            days = max(1, whole_days(not_before - now))
            return _fail(
                "not_yet_valid",
                f"{what} is not yet valid: it is not valid until {_day(not_before)} "
                f"(in {_plural(days, 'day')}). If that looks wrong, check this computer's "
                "clock.",
            )
    return None


def _diagnose(
    chain: list[x509.Certificate], host: str, roots: TrustRoots, now: dt.datetime, library: str
) -> Verification:
    leaf = chain[0]
    path, root = _walk(chain, roots)
    dated = _check_dates([*path, root] if root is not None else path, now)
    if dated is not None:
        return dated
    if not _host_matches(leaf, host):
        return _fail(
            "hostname_mismatch",
            f"The certificate is not valid for {host}: {_names_covered(leaf)}",
        )
    if root is not None:
        # The chain links up by our reading; the library objected to something finer.
        return _finer(path, root) or _fail("other", f"The certificate chain was rejected: "
                                                   f"{library}.")
    top = path[-1]
    if len(path) > _MAX_PATH:
        return _fail(
            "chain_too_long",
            f"The chain the server sent is longer than {_MAX_PATH} certificates without "
            "reaching a trusted root; real chains have two to four.",
        )
    claimed = _named_issuer(top, chain, roots)
    if claimed is not None and not _signed_by(top, claimed):
        # RFC 5280 §6.1.3 (a)(1): the issuer is here by name, but its key does not verify
        # the signature.
        return _bad_link(top, claimed)
    if _self_signed(top):
        if top is leaf:
            return _fail(
                "self_signed",
                f"The certificate is self-signed: '{_label(leaf)}' vouches for itself, and no "
                "certificate authority your system trusts has signed it.",
            )
        return _fail(
            "unknown_issuer",
            f"The chain ends at the root '{_label(top)}', which is not in your trust store "
            "(a private or test certificate authority?).",
        )
    issuer = _cn(top.issuer) or top.issuer.rfc4514_string()
    if top is leaf:
        others = len(chain) - 1
        sent = (
            f"The server sent {_plural(others, 'other certificate')}, but none "
            "of them issued its own"
            if others
            else "The server sent only its own certificate"
        )
        return _fail(
            "incomplete_chain",
            f"{sent}: the intermediate certificate '{issuer}' that links it to a trusted root "
            "is missing, and it is not in your trust store either, so the chain is incomplete. "
            "Browsers often fill the gap from a cache; other clients fail. The server should "
            "send its full chain.",
        )
    return _fail(
        "unknown_issuer",
        f"The chain ends at '{_label(top)}', issued by '{issuer}', which is not in your trust "
        "store and was not sent by the server.",
    )


def _named_issuer(
    cert: x509.Certificate, chain: list[x509.Certificate], roots: TrustRoots
) -> x509.Certificate | None:
    """A certificate sent or trusted whose subject is ``cert``'s issuer (not ``cert``)."""
    if cert.issuer == cert.subject:
        return None
    return next((c for c in (*chain, *roots.certs) if c is not cert and c.subject == cert.issuer),
                None)


def _weak_digest(cert: x509.Certificate) -> str | None:
    """"SHA-1" or "MD5" when ``cert`` is signed with one (CA/Browser Forum BR §7.1.3.2)."""
    name = _SIGNATURE_NAMES.get(cert.signature_algorithm_oid, "").upper()
    if "SHA1" in name:
        return "SHA-1"
    if "MD5" in name:
        return "MD5"
    return None


def _bad_link(cert: x509.Certificate, issuer: x509.Certificate) -> Verification:
    """``cert`` names ``issuer``, whose key does not verify its signature: a weak digest the
    verifier refuses to check, or a damaged or forged certificate."""
    who = f"The certificate '{_label(cert)}'" if _is_ca(cert) else "The server's certificate"
    digest = _weak_digest(cert)
    if digest is not None:
        return _fail(
            "weak_signature",
            f"{who} is signed with {digest}, a digest too weak to be trusted: SHA-1 collisions "
            "can be made (SHAttered, 2017), and browsers and CAs stopped accepting it.",
        )
    return _fail(
        "bad_signature",
        f"{who} names '{_label(issuer)}' as its issuer, but its signature does not verify "
        f"with that certificate's key: it is damaged or forged (or the server sent another "
        "certificate of the same name).",
    )


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    return bool(constraints and constraints.ca)


_EKU_WORDS = {
    ExtendedKeyUsageOID.SERVER_AUTH: "TLS server authentication",
    ExtendedKeyUsageOID.CLIENT_AUTH: "TLS client authentication",
    ExtendedKeyUsageOID.CODE_SIGNING: "code signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "e-mail protection",
    ExtendedKeyUsageOID.TIME_STAMPING: "time stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP signing",
}


def _purpose_words(leaf: x509.Certificate | None) -> str:
    eku = _extension(leaf, x509.ExtendedKeyUsage) if leaf is not None else None
    uses = [_EKU_WORDS.get(u, u.dotted_string) for u in eku] if eku is not None else []
    allows = f"its extended key usage allows only {', '.join(uses)}, " if uses else ""
    return (
        "The certificate is not meant for web servers: "
        f"{allows}not TLS server authentication (serverAuth, RFC 5280 §4.2.1.12)."
    )


def _unknown_critical(cert: x509.Certificate) -> str | None:
    for ext in cert.extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            return str(ext.oid.dotted_string)
    return None


def _small_key(cert: x509.Certificate) -> str | None:
    """The key's description when it is below the Web PKI's minimum (RSA 2048, BR §6.1.5)."""
    try:
        key = cert.public_key()
    except (ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        return _key_description(cert)
    return None


def _finer(path: list[x509.Certificate], root: x509.Certificate) -> Verification | None:
    """Why a chain that links up is still refused, in words, for the reasons a person can act
    on; None leaves it to the library's words."""
    leaf = path[0]
    for child, cert in itertools.pairwise(path):
        if not _is_ca(cert):
            return _fail("not_a_ca", _not_a_ca_words(child is leaf, child, cert))
    for cert in path:
        oid = _unknown_critical(cert)
        if oid is not None:
            return _fail("critical_extension", _critical_words(cert is leaf, cert, oid))
    for cert in path:
        weak = _small_key(cert)
        if weak is not None:
            return _fail("weak_key", _weak_key_words(cert is leaf, _label(cert), weak))
    for cert in path:
        digest = _weak_digest(cert)
        if digest is not None:
            return _bad_link(cert, root)
    return None


def _not_a_ca_words(child_is_leaf: bool, child: x509.Certificate,
                    cert: x509.Certificate) -> str:
    # RFC 5280 §4.2.1.9: only a certificate whose basicConstraints say cA TRUE may issue.
    issued = "the server's certificate" if child_is_leaf else f"'{_label(child)}'"
    return (
        f"The certificate '{_label(cert)}' issued {issued} but is not a certificate authority: "
        "its basicConstraints say CA:FALSE (RFC 5280 §4.2.1.9), so nothing it signs can be "
        "trusted."
    )


def _critical_words(is_leaf: bool, cert: x509.Certificate, oid: str) -> str:
    who = "The server's certificate" if is_leaf else f"The certificate '{_label(cert)}'"
    return (
        f"{who} has an extension marked critical that this client does not understand ({oid}): "
        "RFC 5280 §4.2 says such a certificate must be rejected."
    )


def _weak_key_words(is_leaf: bool, label: str, key: str) -> str:
    who = "The server's certificate" if is_leaf else f"The certificate authority '{label}'"
    return (
        f"{who} has a key too weak to be trusted ({key}): at least 2048-bit RSA or a 256-bit "
        "elliptic curve is required, because smaller keys can be broken."
    )


def verify_chain(
    chain: list[bytes], host: str, *, cafile: str | None, now: dt.datetime
) -> Verification:
    """Would a careful client trust ``chain`` (leaf first, as sent) for ``host`` at ``now``?"""
    try:
        return _verify_chain(chain, host, cafile=cafile, now=now)
    except Exception as exc:  # a field that does not parse, found only when it is read
        return _fail("malformed", f"A certificate the server sent is malformed: "
                     f"{malformed_words(exc)}.")


def _verify_chain(
    chain: list[bytes], host: str, *, cafile: str | None, now: dt.datetime
) -> Verification:
    now = _utc(now)
    if not chain:
        return _fail("other", "The server sent no certificate.")
    certs: list[x509.Certificate] = []
    for i, der in enumerate(chain):
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except Exception as exc:  # ValueError, or InvalidVersion (not a ValueError)
            return _fail("malformed", f"Certificate #{i + 1} of the chain could not be read: "
                         f"{malformed_words(exc)}.")
    try:
        roots = load_trust_roots(cafile)
    except OSError as exc:
        return _fail("other", f"The trusted roots could not be read: {exc}.")
    if roots.store is None:
        return _fail("other", f"No trusted root certificates were found in {roots.source}.")
    host = _normalize_host(host)
    ip = _as_ip(host)
    try:
        subject: x509.DNSName | x509.IPAddress = (
            x509.IPAddress(ip) if ip is not None else x509.DNSName(host)
        )
        verifier = PolicyBuilder().store(roots.store).time(now).build_server_verifier(subject)
        built = verifier.verify(certs[0], certs[1:])
    except (VerificationError, ValueError) as exc:
        return _diagnose(certs, host, roots, now, _library_message(exc))
    intermediates = len(built) - 2
    via = f" through {_plural(intermediates, 'intermediate')}" if intermediates > 0 else ""
    return Verification(
        True,
        "ok",
        f"Trusted: the certificate is valid for {host} and leads{via} to "
        f"'{_label(built[-1])}', a root in your trust store.",
    )


# ---------------------------------------------------------------------------------------------
# OpenSSL's verdict, in the same words

# X509_V_ERR_* from OpenSSL's x509_vfy.h. OpenSSL reports one code for the first problem it
# meets and cannot tell an unknown issuer from a missing intermediate (both are 20); run
# verify_chain on the chain the server sent for the precise reason.
_OPENSSL_ERRORS: dict[int, tuple[str, str]] = {
    2: (
        "unknown_issuer",
        "The certificate of the issuer of a certificate in the chain is missing.",
    ),
    4: ("other", "A certificate's signature could not be read."),
    7: ("bad_signature", "A certificate's signature does not verify: it is damaged or forged."),
    9: (
        "not_yet_valid",
        "The server's certificate (or one in its chain) is not yet valid. "
        "If that looks wrong, check this computer's clock.",
    ),
    10: ("expired", "The server's certificate (or one in its chain) has expired."),
    13: ("other", "A certificate's start date is malformed."),
    14: ("other", "A certificate's expiry date is malformed."),
    18: (
        "self_signed",
        "The certificate is self-signed: it vouches for itself, and no certificate authority "
        "your system trusts has signed it.",
    ),
    19: (
        "unknown_issuer",
        "The chain ends at a root certificate that is not in your trust store "
        "(a private or test certificate authority?).",
    ),
    20: (
        "unknown_issuer",
        "The certificate's issuer is not in your trust store: either it comes from a "
        "certificate authority your system does not know, or the server did not send the "
        "intermediate certificate that links it to one.",
    ),
    21: (
        "incomplete_chain",
        "The chain is incomplete: only the server's own certificate could be checked, the "
        "intermediate certificate that links it to a trusted root is missing.",
    ),
    22: ("chain_too_long", "The certificate chain is longer than this client follows."),
    23: ("other", "The certificate has been revoked by its issuer."),
    24: (
        "not_a_ca",
        "A certificate in the chain acts as a certificate authority but is not one.",
    ),
    25: (
        "chain_too_long",
        "The chain is longer than a certificate authority in it allows (its pathLenConstraint, "
        "RFC 5280 §4.2.1.9).",
    ),
    26: (
        "wrong_purpose",
        "The certificate is not meant for web servers: its extended key usage does not allow "
        "TLS server authentication (serverAuth, RFC 5280 §4.2.1.12).",
    ),
    27: ("unknown_issuer", "The root certificate is not trusted for this purpose."),
    28: ("other", "The root certificate is marked to reject this purpose."),
    34: (
        "critical_extension",
        "A certificate has an extension marked critical that this client does not understand: "
        "RFC 5280 §4.2 says such a certificate must be rejected.",
    ),
    66: (
        "weak_key",
        "The server's certificate has a key too weak to be trusted: at least 2048-bit RSA or a "
        "256-bit elliptic curve is required.",
    ),
    67: (
        "weak_key",
        "A certificate authority in the chain has a key too weak to be trusted: at least "
        "2048-bit RSA or a 256-bit elliptic curve is required.",
    ),
    68: (
        "weak_signature",
        "A certificate in the chain is signed with a digest too weak to be trusted (SHA-1 or "
        "MD5).",
    ),
    79: (
        "not_a_ca",
        "A certificate in the chain acts as a certificate authority but is not one.",
    ),
}


def explain_openssl_verify_error(
    verify_code: int, verify_message: str, host: str, *, chain: Sequence[bytes] = ()
) -> tuple[str, str]:
    """(code, reason) for ``ssl.SSLCertVerificationError``'s ``verify_code``/``verify_message``.

    ``chain``, the certificates the server sent (DER, leaf first), lets the reason name the
    certificate at fault when OpenSSL's code alone cannot."""
    if verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        return "hostname_mismatch", f"The certificate is not valid for {_normalize_host(host)}."
    if verify_code in _OPENSSL_ERRORS:
        code, reason = _OPENSSL_ERRORS[verify_code]
        certs = _readable(chain)
        try:
            named = _with_chain(verify_code, certs) if certs else None
        except Exception:  # a field of a malformed certificate: OpenSSL's words will do
            named = None
        return code, named or reason
    return (
        "other",
        f"Certificate verification failed: {verify_message} (OpenSSL error {verify_code}).",
    )


def _readable(chain: Sequence[bytes]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for der in chain:
        try:
            out.append(x509.load_der_x509_certificate(der))
        except Exception:  # ValueError, or InvalidVersion (not a ValueError)
            break
    return out


def _with_chain(verify_code: int, certs: list[x509.Certificate]) -> str | None:
    """OpenSSL's verdict with the certificate at fault named, from the chain as sent."""
    leaf = certs[0]
    if verify_code == 26:
        return _purpose_words(leaf)
    if verify_code in (24, 79):
        for child in certs:
            cert = next((c for c in certs if c is not child and c.subject == child.issuer), None)
            if cert is not None and not _is_ca(cert):
                return _not_a_ca_words(child is leaf, child, cert)
        return None
    if verify_code in (66, 67):
        for cert in certs:
            weak = _small_key(cert)
            if weak is not None and (cert is leaf) == (verify_code == 66):
                return _weak_key_words(cert is leaf, _label(cert), weak)
        return None
    if verify_code == 68:
        bad = next((c for c in certs if _weak_digest(c)), None)
        return None if bad is None else _bad_link(bad, bad).reason
    if verify_code == 34:
        for cert in certs:
            oid = _unknown_critical(cert)
            if oid is not None:
                return _critical_words(cert is leaf, cert, oid)
        return None
    if verify_code == 7:
        for cert in certs:
            issuer = next((c for c in certs if c is not cert and c.subject == cert.issuer), None)
            if issuer is not None and not _signed_by(cert, issuer):
                return _bad_link(cert, issuer).reason
        return None
    return None
