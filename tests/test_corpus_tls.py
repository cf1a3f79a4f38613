"""The misbehaving-server corpus, TLS part: every case runs the real command against a TLS
peer on loopback that misbehaves in one way (tests/misbehaving_tls.py), and holds it to what
tests/corpus_harness.py checks: the step and exit class, plain words naming what the peer did,
no bare library text, wall time within --max-time, CPU and memory bounded.

The cases, by kind:

* handshake faults: no answer, garbage, another protocol (HTTP, SSH), an alert in answer to
  the ClientHello, RST or FIN before or during the server's flight, a flight dripped slower
  than the deadline, records that break the record layer, a ServerHello we cannot accept;
* certificates, as badssl.com shows them: expired, not yet valid, wrong host, self-signed,
  untrusted root, incomplete chain, huge chain, bad signature, a leaf used as a CA...;
* after the handshake, over HTTP/1.1 (TLS 1.3 and 1.2) and HTTP/2: close_notify at every
  point, a ragged close (FIN without close_notify) at every point, alerts at every point,
  garbage records;
* TLS 1.2-only and 1.3-only servers.

A clean close_notify is the end of the stream (RFC 8446 §6.1); whether the response is then
complete is for HTTP's framing to say (RFC 9112 §9.8): a Content-Length or chunked body that
is whole is a success whatever follows it, one that is cut is an HTTP failure (exit 7) that
says how far it had come. A close-delimited body (HTTP/1.0 style, or ``Connection: close``
without a length) ended by a TCP FIN without close_notify, an "incomplete close", cannot be
told from a truncation: RFC 9112 §9.8 says such a response "is complete only if a valid
closure alert has been received". Browsers accept it anyway, and so does whathappens (exit 0,
the page is shown), with a warning that the body may have been cut short; a close-delimited
body ended by close_notify is complete and gets no warning.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgen import Issued, make_ca, make_leaf, make_pki, utcnow
from corpus_harness import Outcome, check, run_cli
from misbehaving import RawServer
from misbehaving_tls import (
    APPLICATION_DATA,
    BODY,
    HANDSHAKE,
    HOSTS,
    Behaviour,
    Credentials,
    TlsServer,
    alert_record,
    answer_raw,
    corrupted_certificate,
    crafted_hello,
    drip_records,
    end_alert,
    end_close_notify,
    end_close_notify_fin,
    end_garbage_record,
    end_handshake_after,
    end_not_a_record,
    end_oversized_record,
    end_ragged,
    end_rst,
    end_unknown_type,
    flood_records,
    good,
    h1_response,
    h2_behaviour,
    h2_settings_and_alert,
    handshake_then,
    padded_ca,
    partial_flight,
    plain_http,
    record,
    resign_sha1,
    respond_then,
    silent,
    ssh_banner,
    write_credentials,
)

DAY = dt.timedelta(days=1)


@dataclass
class Env:
    """What a case may need: a directory for its files, the usual good credentials."""

    directory: Path
    good: Credentials


@dataclass
class Started:
    server: RawServer
    args: list[str]
    host: str = "127.0.0.1"


@dataclass
class Case:
    name: str
    start: Callable[[Env], Started]
    step: str | None
    exit_code: int
    says: Sequence[str] = ()
    max_time: float = 5.0
    steps_before: Sequence[str] = ("tcp",)
    xfail: str | None = None
    extra: Callable[[Outcome], None] | None = None
    args: list[str] = field(default_factory=list)


CASES: list[Case] = []


def case(name: str, start: Callable[[Env], Started], step: str | None, exit_code: int,
         *says: str, **kwargs: object) -> None:
    CASES.append(Case(name, start, step, exit_code, says, **kwargs))  # type: ignore[arg-type]


# --- how a case starts its server ---------------------------------------------------------------


def raw(handler: Callable[..., None], *args: str) -> Callable[[Env], Started]:
    def start(env: Env) -> Started:
        return Started(RawServer(handler), ["--cacert", env.good.cafile, *args])
    return start


def tls(behaviour: Behaviour, *args: str, version: str | None = None,
        alpn: Sequence[str] | None = ("http/1.1",), drip: float = 0.0, fragment: int = 0,
        creds: Callable[[Env], Credentials] | None = None, weak: bool = False,
        insecure: bool = False, host: str = "127.0.0.1") -> Callable[[Env], Started]:
    def start(env: Env) -> Started:
        c = creds(env) if creds is not None else env.good
        context = c.context(version=version, alpn=alpn, weak=weak)
        trust = ["-k"] if insecure else ["--cacert", c.cafile]
        return Started(TlsServer(behaviour, context, drip=drip, fragment=fragment),
                       [*trust, *args], host)
    return start


def cert_case(make: Callable[[Path], Credentials], *args: str,
              **kwargs: object) -> Callable[[Env], Started]:
    return tls(respond_then(h1_response(), "complete", end_close_notify_fin), *args,
               creds=lambda env: make(env.directory), **kwargs)  # type: ignore[arg-type]


def raw_partial(keep: int, then: str) -> Callable[[Env], Started]:
    def start(env: Env) -> Started:
        return Started(RawServer(partial_flight(env.good.context(), keep, then)),
                       ["--cacert", env.good.cafile])
    return start


def raw_corrupted_certificate(*args: str) -> Callable[[Env], Started]:
    def start(env: Env) -> Started:
        context = env.good.context(version="1.2")
        pem = Path(env.good.certfile).read_text()
        leaf = ssl.PEM_cert_to_DER_cert(pem[:pem.index("-----END CERTIFICATE-----") + 25])
        return Started(RawServer(corrupted_certificate(context, leaf)),
                       ["--cacert", env.good.cafile, "--tls-max", "1.2", *args])
    return start


# =================================================================================================
# Handshake faults (RFC 8446 §4, RFC 5246 §7.4): the TLS step fails, exit 6.

HANG = {"max_time": 3.0}

# A certificate whose field does not parse, though the chain loads (cryptography reads
# lazily): once an internal error (exit 10), found by the TLS fuzzer.
case("leaf_with_a_field_that_does_not_parse", raw_corrupted_certificate(), "tls", 6,
     r"certificate", r"malformed|does not parse|cannot be read|signature")

case("silent_after_client_hello", raw(silent, "--connect-timeout", "1"), "tls", 6,
     r"did not finish within 1 s", r"sent nothing in answer to our ClientHello", **HANG)
case("silent_after_client_hello_max_time", raw(silent), "journey", 9, r"--max-time 2",
     max_time=2.0, steps_before=("tcp", "tls"))
case("garbage_answer", raw(answer_raw(b"\x00\x01\x02 this is not TLS, nor anything\r\n")),
     "tls", 6, r"did not answer in TLS", r"first bytes \(00 01 02 20", r"not a TLS record")
case("plain_http_on_tls_port", raw(plain_http), "tls", 6, r"did not answer in TLS",
     r"plain HTTP", r"400 Bad Request")
case("ssh_on_tls_port", raw(ssh_banner), "tls", 6, r"did not answer in TLS", r"SSH")
for _alert, _words in [("handshake_failure", r"could not agree"),
                       ("protocol_version", r"TLS version"),
                       ("internal_error", r"internal error on its side"),
                       ("unrecognized_name", r"does not serve the name .* SNI"),
                       ("access_denied", r"refused|denied"),
                       ("insufficient_security", r"(stronger|more secure)")]:
    case(f"alert_{_alert}_at_client_hello",
         raw(answer_raw(alert_record(_alert), then="fin")), "tls", 6,
         rf"alert '{_alert}'", _words)
case("rst_after_client_hello", raw(answer_raw(b"", then="rst")), "tls", 6,
     r"reset the connection", r"ClientHello")
case("fin_after_client_hello", raw(answer_raw(b"", then="fin")), "tls", 6,
     r"closed the connection", r"ClientHello")
case("fin_mid_server_flight", raw_partial(60, "fin"), "tls", 6,
     r"closed the connection", r"after sending 60 bytes")
case("rst_mid_server_flight", raw_partial(60, "rst"), "tls", 6,
     r"reset the connection", r"after sending 60 bytes")
case("stall_mid_server_flight", raw_partial(60, "hold"), "tls", 6,
     r"did not finish within 1 s", r"sent 60 bytes of it, then nothing",
     args=["--connect-timeout", "1"], **HANG)
case("drip_fed_handshake", tls(handshake_then(end_close_notify), "--connect-timeout", "1",
                               drip=0.02),
     "tls", 6, r"did not finish within 1 s", r"still sending it, slowly: \d+ bytes", **HANG)
case("drip_fed_handshake_max_time", tls(handshake_then(end_close_notify), drip=0.02),
     "journey", 9, r"--max-time 2", max_time=2.0, steps_before=("tcp", "tls"))
case("oversized_record_in_handshake",
     raw(answer_raw(b"\x16\x03\x03\xff\xff" + os.urandom(200))), "tls", 6,
     r"record longer than TLS allows")
case("application_data_before_server_hello",
     raw(answer_raw(record(APPLICATION_DATA, os.urandom(40)))), "tls", 6,
     r"does not belong at that point", r"application data before its ServerHello")
case("unknown_record_type_in_handshake",
     raw(answer_raw(record(0x63, os.urandom(40)))), "tls", 6,
     r"did not answer in TLS", r"first bytes \(63 03 03", r"not a TLS record")
case("huge_handshake_message",
     raw(answer_raw(record(HANDSHAKE, b"\x02\xff\xff\xff" + os.urandom(2000)))), "tls", 6,
     r"announced a handshake message \(server_hello\) of 16\.0 MiB", r"larger than")
case("server_hello_unoffered_cipher", raw(crafted_hello(cipher=0x0005)), "tls", 6,
     r"cipher suite we did not offer")
case("server_hello_tls_1_0", raw(crafted_hello(version=0x0301, cipher=0xC013)), "tls", 6,
     r"TLS 1\.0", r"older|oldest|minimum")
case("server_hello_ssl_3", raw(crafted_hello(version=0x0300, cipher=0x002F)), "tls", 6,
     r"SSL 3\.0", r"older|oldest|minimum")
case("tls_1_3_only_server_asked_1_2", tls(handshake_then(end_close_notify), "--tls-max", "1.2",
                                          version="1.3"),
     "tls", 6, r"alert 'protocol_version'", r"TLS version")


# =================================================================================================
# Certificates (RFC 5280 path validation), as badssl.com shows them: exit 6, code tls.cert_*.


def pki_creds(directory: Path, stem: str, *, leaf: Callable[[Issued], Issued] | None = None,
              send: Callable[[Issued, Issued, Issued], list[Issued | bytes]] | None = None,
              roots: Callable[[Issued], list[Issued]] | None = None) -> Credentials:
    pki = make_pki(HOSTS)
    the_leaf = leaf(pki.intermediate) if leaf is not None else pki.leaf
    chain = (send(pki.root, pki.intermediate, the_leaf) if send is not None
             else [the_leaf, pki.intermediate])
    trusted = roots(pki.root) if roots is not None else [pki.root]
    return write_credentials(directory, chain, the_leaf, trusted, stem)


def expired(d: Path) -> Credentials:
    now = utcnow()
    return pki_creds(d, "expired", leaf=lambda i: make_leaf(
        i, HOSTS, not_before=now - 400 * DAY, not_after=now - 30 * DAY))


def not_yet_valid(d: Path) -> Credentials:
    now = utcnow()
    return pki_creds(d, "future", leaf=lambda i: make_leaf(
        i, HOSTS, not_before=now + 30 * DAY, not_after=now + 400 * DAY))


def wrong_host(d: Path) -> Credentials:
    return pki_creds(d, "wronghost", leaf=lambda i: make_leaf(i, ["other.test", "192.0.2.1"]))


def self_signed(d: Path) -> Credentials:
    leaf = make_leaf(None, HOSTS)
    root = make_pki().root
    return write_credentials(d, [leaf], leaf, [root], "selfsigned")


def untrusted_root(d: Path) -> Credentials:
    stranger = make_ca("Somebody Else's Root")
    return pki_creds(d, "untrusted", roots=lambda _root: [stranger])


def incomplete_chain(d: Path) -> Credentials:
    return pki_creds(d, "incomplete", send=lambda _r, _i, leaf: [leaf])


def wrong_intermediate(d: Path) -> Credentials:
    other = make_pki(root_cn="Other Root")
    return pki_creds(d, "wrongint", send=lambda _r, _i, leaf: [leaf, other.intermediate])


def huge_chain(d: Path) -> Credentials:
    """The leaf, its intermediate, and 50 padded certificates: 200 KiB of Certificate
    message, twice OpenSSL's default limit for a peer's chain (100 KiB)."""
    padding = [padded_ca(f"Padding CA {i}", None, 4000) for i in range(50)]
    return pki_creds(d, "huge", send=lambda _r, i, leaf: [leaf, i, *padding])


def deep_chain(d: Path) -> Credentials:
    """root → 50 intermediates → leaf: every link valid, the path longer than any real one."""
    root = make_ca("Deep Root")
    cas = [make_ca("Deep CA 1", issuer=root)]
    for n in range(2, 51):
        cas.append(make_ca(f"Deep CA {n}", issuer=cas[-1]))
    leaf = make_leaf(cas[-1], HOSTS)
    return write_credentials(d, [leaf, *reversed(cas)], leaf, [root], "deep")


def bad_signature(d: Path) -> Credentials:
    def damaged(intermediate: Issued) -> Issued:
        good_leaf = make_leaf(intermediate, HOSTS)
        der = bytearray(good_leaf.der)
        der[-3] ^= 0x55  # inside the signature's last INTEGER: still DER, no longer valid
        return Issued(x509.load_der_x509_certificate(bytes(der)), good_leaf.key)
    return pki_creds(d, "badsig", leaf=damaged)


def leaf_as_ca(d: Path) -> Credentials:
    """The server's certificate was issued by another server certificate (CA:FALSE)."""
    pki = make_pki(["issuer.test"])
    leaf = make_leaf(pki.leaf, HOSTS)
    return write_credentials(d, [leaf, pki.leaf, pki.intermediate], leaf, [pki.root], "leafca")


def client_only(d: Path) -> Credentials:
    return pki_creds(d, "clientauth", leaf=lambda i: make_leaf(
        i, HOSTS, key_usages=[ExtendedKeyUsageOID.CLIENT_AUTH]))


def expired_intermediate(d: Path) -> Credentials:
    now = utcnow()
    root = make_ca("Test Root CA")
    inter = make_ca("Lapsed Intermediate", issuer=root, not_before=now - 400 * DAY,
                    not_after=now - 3 * DAY)
    leaf = make_leaf(inter, HOSTS, not_before=now - 30 * DAY)
    return write_credentials(d, [leaf, inter], leaf, [root], "lapsedint")


def no_san(d: Path) -> Credentials:
    return pki_creds(d, "nosan", leaf=lambda i: make_leaf(i, [], cn="127.0.0.1"))


def sha1_leaf(d: Path) -> Credentials:
    return pki_creds(d, "sha1", leaf=lambda i: resign_sha1(make_leaf(i, HOSTS), i))


def extra_certificates(d: Path) -> Credentials:
    """The right chain, then 50 unrelated certificates: clients ignore what they do not use."""
    strangers = [make_ca(f"Stranger {i}") for i in range(50)]
    return pki_creds(d, "extra", send=lambda _r, i, leaf: [leaf, i, *strangers])


def wildcard(d: Path) -> Credentials:
    return pki_creds(d, "wildcard", leaf=lambda i: make_leaf(i, ["*.example.test"]))


def weak_rsa(d: Path) -> Credentials:
    from cryptography.hazmat.primitives.asymmetric import rsa

    def small(intermediate: Issued) -> Issued:
        leaf = make_leaf(intermediate, HOSTS)
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        builder = (x509.CertificateBuilder().subject_name(leaf.cert.subject)
                   .issuer_name(leaf.cert.issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(leaf.cert.not_valid_before_utc)
                   .not_valid_after(leaf.cert.not_valid_after_utc))
        for ext in leaf.cert.extensions:
            builder = builder.add_extension(ext.value, ext.critical)
        return Issued(builder.sign(intermediate.key, hashes.SHA256()),  # type: ignore[arg-type]
                      key)
    return pki_creds(d, "rsa1024", leaf=small)


def unknown_critical(d: Path) -> Credentials:
    def critical(intermediate: Issued) -> Issued:
        leaf = make_leaf(intermediate, HOSTS)
        builder = (x509.CertificateBuilder().subject_name(leaf.cert.subject)
                   .issuer_name(leaf.cert.issuer).public_key(leaf.key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(leaf.cert.not_valid_before_utc)
                   .not_valid_after(leaf.cert.not_valid_after_utc)
                   .add_extension(x509.UnrecognizedExtension(
                       x509.ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00"),
                       critical=True))
        for ext in leaf.cert.extensions:
            builder = builder.add_extension(ext.value, ext.critical)
        return Issued(builder.sign(intermediate.key, hashes.SHA256()),  # type: ignore[arg-type]
                      leaf.key)
    return pki_creds(d, "critical", leaf=critical)


def reversed_chain(d: Path) -> Credentials:
    """Root and intermediate sent in the wrong order after the leaf: clients sort it out."""
    return pki_creds(d, "reversed", send=lambda root, i, leaf: [leaf, root, i])


CERT = {"steps_before": ("tcp", "tls")}
case("cert_expired", cert_case(expired), "tls", 6, r"rejected", r"expired on", r"days? ago",
     **CERT)
case("cert_not_yet_valid", cert_case(not_yet_valid), "tls", 6, r"not yet valid",
     r"until", r"clock", **CERT)
case("cert_wrong_host_name",
     cert_case(wrong_host, "--resolve", "localhost:{port}:127.0.0.1", host="localhost"),
     "tls", 6, r"not valid for localhost", r"other\.test", **CERT)
case("cert_wrong_host_ip", cert_case(wrong_host), "tls", 6, r"not valid for 127\.0\.0\.1",
     r"192\.0\.2\.1", **CERT)
case("cert_self_signed", cert_case(self_signed), "tls", 6, r"self-signed", **CERT)
case("cert_untrusted_root", cert_case(untrusted_root), "tls", 6, r"Test Root CA",
     r"not in your trust store", **CERT)
case("cert_incomplete_chain", cert_case(incomplete_chain), "tls", 6, r"chain is incomplete",
     r"intermediate .* is missing", r"full chain", **CERT)
case("cert_wrong_intermediate", cert_case(wrong_intermediate), "tls", 6,
     r"intermediate .* is missing", r"none of them issued", **CERT)
case("cert_huge_chain", cert_case(huge_chain), "tls", 6, r"certificate chain",
     r"\d+ KiB", r"larger than", **CERT)
case("cert_bad_signature", cert_case(bad_signature), "tls", 6, r"signature",
     r"damaged or forged", **CERT)
case("cert_leaf_used_as_ca", cert_case(leaf_as_ca), "tls", 6, r"issuer\.test",
     r"not a certificate authority", **CERT)
case("cert_client_auth_only", cert_case(client_only), "tls", 6,
     r"not meant for (web )?servers", **CERT)
case("cert_expired_intermediate", cert_case(expired_intermediate), "tls", 6,
     r"intermediate certificate 'Lapsed Intermediate' expired", **CERT)
case("cert_no_subject_alt_name", cert_case(no_san), "tls", 6, r"not valid for 127\.0\.0\.1",
     r"no subjectAltName", **CERT)
case("cert_sha1_signature", cert_case(sha1_leaf, weak=True), "tls", 6, r"SHA-1", **CERT)
case("cert_rsa_1024", cert_case(weak_rsa, weak=True), "tls", 6, r"1024", r"too (small|weak)",
     **CERT)
case("cert_unknown_critical_extension", cert_case(unknown_critical), "tls", 6,
     r"extension marked critical", r"RFC 5280", **CERT)
# RFC 5280 sets no limit on the length of a path; OpenSSL walks up to 100 certificates.
case("cert_50_intermediates_deep_is_trusted", cert_case(deep_chain), None, 0)
case("cert_50_extra_certificates_are_ignored", cert_case(extra_certificates), None, 0)
case("cert_wildcard_one_label_only",
     cert_case(wildcard, "--resolve", "a.b.example.test:{port}:127.0.0.1",
               host="a.b.example.test"),
     "tls", 6, r"not valid for a\.b\.example\.test", r"\*\.example\.test", **CERT)


def warned(step: str, *words: str) -> Callable[[Outcome], None]:
    """The journey succeeded with a warning of ``step`` that says ``words``."""
    def extra(out: Outcome) -> None:
        found = [f["message"].lower() for f in (out.journey or {}).get("findings", [])
                 if f.get("severity") == "warning" and f.get("step") == step]
        assert any(all(w.lower() in m for w in words) for m in found), found
    return extra


def no_warning(out: Outcome) -> None:
    """A success with nothing to warn about."""
    warnings = [f for f in (out.journey or {}).get("findings", [])
                if f.get("severity") == "warning"]
    assert not warnings, warnings


def tls_version(version: str) -> Callable[[Outcome], None]:
    def extra(out: Outcome) -> None:
        summary = ((out.journey or {}).get("facts") or {}).get("summary") or {}
        assert summary.get("tls_version") == version, summary
    return extra


case("cert_expired_with_insecure", cert_case(expired, insecure=True), None, 0,
     extra=warned("tls", "-k", "expired"))
case("cert_chain_out_of_order", cert_case(reversed_chain), None, 0)
case("cert_not_yet_valid_with_insecure", cert_case(not_yet_valid, insecure=True), None, 0,
     extra=warned("tls", "-k", "not yet valid"))
case("cert_incomplete_chain_with_insecure", cert_case(incomplete_chain, insecure=True), None, 0,
     extra=warned("tls", "-k", "chain is incomplete"))


# =================================================================================================
# After the handshake, HTTP/1.1: close_notify, ragged close, alerts, garbage at every point.

LEN = h1_response(framing="length")
CHUNKED = h1_response(framing="chunked")
BY_CLOSE = h1_response(framing="close")
HTTP10 = h1_response(framing="close", version="1.0")
NOTHING = r"before sending any of the response"
MID_HEAD = r"in the middle of the response headers"
MID_BODY = rf"after 57 bytes of the body of the {len(BODY)} announced"
MID_CHUNKED = r"after \d+ bytes of the chunked body, before its end"

for _v in ("1.3", "1.2"):
    V = {"version": _v}
    t = f"tls{_v.replace('.', '_')}"
    case(f"close_notify_right_after_handshake_{t}", tls(handshake_then(end_close_notify), **V),
         "http", 7, r"closed the connection", NOTHING)
    case(f"close_notify_before_response_{t}",
         tls(respond_then(LEN, "before_response", end_close_notify), **V),
         "http", 7, r"closed the connection", NOTHING)
    case(f"close_notify_after_status_line_{t}",
         tls(respond_then(LEN, "after_status_line", end_close_notify), **V),
         "http", 7, r"closed the connection", MID_HEAD)
    case(f"close_notify_mid_headers_{t}",
         tls(respond_then(LEN, "mid_headers", end_close_notify), **V),
         "http", 7, r"closed the connection", MID_HEAD)
    case(f"close_notify_mid_body_content_length_{t}",
         tls(respond_then(LEN, "mid_body", end_close_notify), **V),
         "http", 7, r"closed the connection", MID_BODY)
    case(f"close_notify_mid_chunked_{t}",
         tls(respond_then(CHUNKED, "mid_body", end_close_notify), **V),
         "http", 7, r"closed the connection", MID_CHUNKED)
    case(f"close_notify_after_complete_chunked_{t}",
         tls(respond_then(CHUNKED, "complete", end_close_notify), **V), None, 0)
    case(f"close_notify_after_complete_content_length_{t}",
         tls(respond_then(LEN, "complete", end_close_notify), **V), None, 0)
    case(f"close_notify_ends_close_delimited_body_{t}",
         tls(respond_then(BY_CLOSE, "complete", end_close_notify), **V), None, 0,
         extra=no_warning)
    case(f"close_notify_ends_http_1_0_body_{t}",
         tls(respond_then(HTTP10, "complete", end_close_notify), **V), None, 0,
         extra=no_warning)
    case(f"close_notify_and_fin_end_close_delimited_body_{t}",
         tls(respond_then(BY_CLOSE, "complete", end_close_notify_fin), **V), None, 0)
    case(f"ragged_fin_mid_body_{t}", tls(respond_then(LEN, "mid_body", end_ragged), **V),
         "http", 7, r"closed the connection", MID_BODY)
    case(f"handshake_in_one_byte_records_{t}",
         tls(respond_then(LEN, "complete", end_close_notify), fragment=1, **V), None, 0,
         extra=tls_version(f"TLSv{_v}"))
    case(f"alert_mid_body_{t}",
         tls(respond_then(LEN, "mid_body", end_alert("internal_error"), via_records=True),
             **V),
         "http", 7, r"alert 'internal_error'", MID_BODY)
    case(f"{t}_only_server", tls(respond_then(LEN, "complete", end_close_notify), **V),
         None, 0, extra=tls_version(f"TLSv{_v}"))

# Ragged closes: a TCP FIN with no close_notify (RFC 8446 §6.1 calls it a truncation risk).
case("ragged_fin_right_after_handshake", tls(handshake_then(end_ragged)), "http", 7,
     r"closed the connection", NOTHING)
case("ragged_fin_before_response", tls(respond_then(LEN, "before_response", end_ragged)),
     "http", 7, r"closed the connection", NOTHING)
case("ragged_fin_mid_headers", tls(respond_then(LEN, "mid_headers", end_ragged)), "http", 7,
     r"closed the connection", MID_HEAD)
case("ragged_fin_mid_chunked", tls(respond_then(CHUNKED, "mid_body", end_ragged)), "http", 7,
     r"closed the connection", MID_CHUNKED)
case("ragged_fin_after_complete_content_length",
     tls(respond_then(LEN, "complete", end_ragged)), None, 0, extra=no_warning)
case("ragged_fin_after_complete_chunked", tls(respond_then(CHUNKED, "complete", end_ragged)),
     None, 0, extra=no_warning)
case("ragged_fin_ends_close_delimited_body",
     tls(respond_then(BY_CLOSE, "complete", end_ragged)), None, 0,
     extra=warned("http", "without TLS close_notify", "cut short"))
case("ragged_fin_ends_http_1_0_body", tls(respond_then(HTTP10, "complete", end_ragged)),
     None, 0, extra=warned("http", "without TLS close_notify", "cut short"))
case("rst_mid_body", tls(respond_then(LEN, "mid_body", end_rst)), "http", 7,
     r"reset|broke", MID_BODY)

# Alerts after the handshake (RFC 8446 §6.2): the message says how far the response had come.
case("alert_right_after_handshake", tls(handshake_then(end_alert("internal_error"))),
     "http", 7, r"alert 'internal_error'", NOTHING)
case("alert_before_response",
     tls(respond_then(LEN, "before_response", end_alert("access_denied"))),
     "http", 7, r"alert 'access_denied'", NOTHING)
case("alert_after_status_line",
     tls(respond_then(LEN, "after_status_line", end_alert("internal_error"),
                      via_records=True)),
     "http", 7, r"alert 'internal_error'", MID_HEAD)
case("alert_mid_headers",
     tls(respond_then(LEN, "mid_headers", end_alert("decode_error"), via_records=True)),
     "http", 7, r"alert 'decode_error'", MID_HEAD)
case("alert_mid_chunked",
     tls(respond_then(CHUNKED, "mid_body", end_alert("internal_error"), via_records=True)),
     "http", 7, r"alert 'internal_error'", MID_CHUNKED)
case("alert_after_complete_response",
     tls(respond_then(LEN, "complete", end_alert("internal_error"), via_records=True)),
     None, 0)
case("user_canceled_then_close_notify_mid_body",
     tls(respond_then(LEN, "mid_body", end_alert("user_canceled", 1), via_records=True)),
     "http", 7, r"closed the connection", MID_BODY)

# Garbage records after the handshake.
case("corrupt_record_before_response",
     tls(respond_then(LEN, "before_response", end_garbage_record)),
     "http", 7, r"failed (decryption|its integrity check)", NOTHING)
case("corrupt_record_mid_body", tls(respond_then(LEN, "mid_body", end_garbage_record)),
     "http", 7, r"failed (decryption|its integrity check)", MID_BODY)
case("plain_text_after_handshake", tls(respond_then(LEN, "mid_headers", end_not_a_record)),
     "http", 7, r"not TLS", MID_HEAD)
case("oversized_record_after_handshake",
     tls(respond_then(LEN, "before_response", end_oversized_record)),
     "http", 7, r"record longer than TLS allows", NOTHING)
case("unknown_inner_content_type",
     tls(respond_then(LEN, "mid_body", end_unknown_type, via_records=True)),
     "http", 7, r"unknown (content|record) type", MID_BODY)
case("handshake_message_after_handshake",
     tls(respond_then(LEN, "after_headers", end_handshake_after, via_records=True)),
     "http", 7, r"not expected|unexpected", r"after 0 bytes of the body")
case("body_dripped_one_record_at_a_time",
     tls(drip_records(LEN, len(LEN) - len(BODY), 0.05)), "journey", 9, r"--max-time 2",
     max_time=2.0, steps_before=("tcp", "tls"))
case("flood_of_one_byte_records", tls(flood_records(60000)),
     "http", 7, r"TLS records", max_time=5.0)

# =================================================================================================
# HTTP/2 over TLS (ALPN h2): the same endings, RFC 9113 over RFC 8446.

H2 = {"alpn": ("h2",)}
case("h2_close_notify_before_preface", tls(h2_behaviour("preface", end_close_notify), **H2),
     "http", 7, r"closed the connection", r"before|SETTINGS|preface")
case("h2_close_notify_after_settings", tls(h2_behaviour("settings", end_close_notify), **H2),
     "http", 7, r"closed the connection", r"before .*(response|headers)")
case("h2_close_notify_after_headers", tls(h2_behaviour("headers", end_close_notify), **H2),
     "http", 7, r"closed the connection", r"body|0 bytes")
case("h2_close_notify_mid_body", tls(h2_behaviour("mid_body", end_close_notify), **H2),
     "http", 7, r"closed the connection", r"57 bytes")
case("h2_close_notify_after_complete_response",
     tls(h2_behaviour("complete", end_close_notify), **H2), None, 0)
case("h2_close_notify_mid_body_tls1_2",
     tls(h2_behaviour("mid_body", end_close_notify), version="1.2", **H2),
     "http", 7, r"closed the connection", r"57 bytes")
case("h2_ragged_fin_mid_body", tls(h2_behaviour("mid_body", end_ragged), **H2),
     "http", 7, r"closed the connection", r"57 bytes")
case("h2_alert_mid_body",
     tls(h2_behaviour("mid_body", end_alert("internal_error"), via_records=True), **H2),
     "http", 7, r"alert 'internal_error'", r"57 bytes")
case("h2_alert_before_response", tls(h2_settings_and_alert("internal_error"), **H2),
     "http", 7, r"alert 'internal_error'", r"before|no response")
case("h2_corrupt_record_mid_body", tls(h2_behaviour("mid_body", end_garbage_record), **H2),
     "http", 7, r"failed (decryption|its integrity check)", r"57 bytes")
case("h2_ragged_fin_after_complete_response", tls(h2_behaviour("complete", end_ragged), **H2),
     None, 0)
case("h2_close_notify_and_fin_after_complete_response",
     tls(h2_behaviour("complete", end_close_notify_fin), version="1.2", **H2), None, 0)
case("h2_insisted_close_notify_mid_body",
     tls(h2_behaviour("mid_body", end_close_notify), "--http2", **H2),
     "http", 7, r"closed the connection", r"57 bytes")


# =================================================================================================
# The test: one per case.


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    directory = tmp_path_factory.mktemp("tls-corpus")
    return Env(directory, good(directory))


def _params() -> list[object]:
    out: list[object] = []
    names = set()
    for c in CASES:
        assert c.name not in names, c.name
        names.add(c.name)
        marks = [pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


@pytest.mark.parametrize("c", _params())
def test_tls_corpus(c: Case, env: Env) -> None:
    started = c.start(env)
    with started.server as server:
        args = [a.replace("{port}", str(server.port)) for a in started.args]
        url = f"https://{started.host}:{server.port}/"
        out = run_cli([url, *args, *c.args, "--max-time", f"{c.max_time:g}"])
    check(out, step=c.step, exit_code=c.exit_code, says=c.says, steps_before=c.steps_before)
    if c.extra is not None:
        c.extra(out)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert ssl.HAS_TLSv1_2
    assert ssl.HAS_TLSv1_3
