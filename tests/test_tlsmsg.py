"""Handshake messages as a real OpenSSL client sees them, against a local ssl server."""

from __future__ import annotations

import contextlib
import itertools
import socket
import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certgen import Pki, make_pki, serve_tls, server_context, write_cafile, write_server_files
from whathappens.net.tlsmsg import (
    HANDSHAKE_TYPES,
    HRR_RANDOM,
    NAMED_GROUPS,
    Alert,
    ChangeCipherSpec,
    HandshakeRecorder,
    TlsParseError,
    group_name,
    parse_certificate_message,
    parse_server_hello,
    parse_server_key_exchange_group,
    version_name,
)

TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
TLS12 = ssl.TLSVersion.TLSv1_2


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    directory: Path = tmp_path_factory.mktemp("tlsmsg")
    certfile, keyfile = write_server_files(directory, pki.chain)
    return certfile, keyfile, write_cafile(directory, [pki.root])


def new_recorder() -> HandshakeRecorder:
    ticks = itertools.count(1_000, 10)
    return HandshakeRecorder(lambda: next(ticks))


def run_client(
    context: ssl.SSLContext,
    address: tuple[str, int],
    recorder: HandshakeRecorder,
    host: str = "localhost",
) -> ssl.SSLObject:
    """Handshake over SSLObject + MemoryBIO (as the real driver does), then read the reply."""
    recorder.install(context)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    recorder.track(tls)
    with socket.create_connection(address, timeout=10) as sock:

        def flush() -> None:
            if pending := outgoing.read():
                sock.sendall(pending)

        def feed() -> None:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            incoming.write(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                feed()
            except ssl.SSLError:
                flush()  # let our alert reach the server
                raise
        flush()
        reply = b""
        while len(reply) < len(b"hello"):
            try:
                reply += tls.read(1024)
            except ssl.SSLWantReadError:
                feed()
    assert reply == b"hello"
    return tls


def trace(recorder: HandshakeRecorder) -> list[str]:
    out = []
    for event in recorder.events:
        if isinstance(event, ChangeCipherSpec):
            out.append(f"{event.direction} change_cipher_spec")
        elif isinstance(event, Alert):
            out.append(f"{event.direction} alert {event.level} {event.description}")
        else:
            out.append(f"{event.direction} {event.type_name}")
    return out


def client_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


# ---------------------------------------------------------------------------------------------
# Real handshakes


def test_tls13_handshake_in_order(pki: Pki, files: tuple[str, str, str]) -> None:
    certfile, keyfile, cafile = files
    recorder = new_recorder()
    with serve_tls(server_context(certfile, keyfile)) as server:
        tls = run_client(client_context(cafile), server.address, recorder)

    events = trace(recorder)
    assert events[:9] == [
        "sent client_hello",
        "received server_hello",
        "received change_cipher_spec",  # middlebox compatibility, RFC 8446 §D.4
        "received encrypted_extensions",
        "received certificate",
        "received certificate_verify",
        "received finished",
        "sent change_cipher_spec",
        "sent finished",
    ]
    # Session tickets come after the handshake, with the first application data.
    assert events[9:]
    assert set(events[9:]) == {"received new_session_ticket"}
    times = [e.t_ns for e in recorder.events]
    assert times == sorted(set(times))
    assert recorder.errors == []

    assert recorder.server_hello is not None
    info = parse_server_hello(recorder.server_hello)
    assert info.legacy_version == 0x0303
    assert info.selected_version == 0x0304
    assert info.version_name == "TLS 1.3" == version_name(info.version)
    assert info.key_share_group == "x25519"
    assert info.cipher_suite == TLS13_SUITES[tls.cipher()[0]]  # type: ignore[index]
    assert not info.hello_retry_request
    assert {43, 51} <= set(info.extensions)
    hello = recorder.messages[1]
    assert hello.type_code == 2
    assert hello.length == len(recorder.server_hello)

    assert recorder.certificate is not None
    assert parse_certificate_message(recorder.certificate, tls13=True) == [
        pki.leaf.der,
        pki.intermediate.der,
    ]
    assert recorder.server_key_exchange is None


def test_tls12_handshake_in_order(pki: Pki, files: tuple[str, str, str]) -> None:
    certfile, keyfile, cafile = files
    context = server_context(certfile, keyfile, maximum_version=TLS12)
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    recorder = new_recorder()
    with serve_tls(context) as server:
        tls = run_client(client_context(cafile), server.address, recorder)

    assert tls.version() == "TLSv1.2"
    assert trace(recorder) == [
        "sent client_hello",
        "received server_hello",
        "received certificate",
        "received server_key_exchange",
        "received server_hello_done",
        "sent client_key_exchange",
        "sent change_cipher_spec",
        "sent finished",
        "received new_session_ticket",
        "received change_cipher_spec",  # OpenSSL reports it only as a record header
        "received finished",
    ]
    assert recorder.server_hello is not None
    info = parse_server_hello(recorder.server_hello)
    assert info.selected_version is None
    assert info.version_name == "TLS 1.2"
    assert info.cipher_suite == 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    assert info.key_share_group is None
    assert recorder.server_key_exchange is not None
    assert parse_server_key_exchange_group(recorder.server_key_exchange) == "x25519"
    assert recorder.certificate is not None
    assert parse_certificate_message(recorder.certificate, tls13=False) == [
        pki.leaf.der,
        pki.intermediate.der,
    ]


@pytest.mark.parametrize(
    ("openssl_name", "iana_name"), [("prime256v1", "secp256r1"), ("secp384r1", "secp384r1")]
)
def test_tls12_group_chosen_by_server(
    files: tuple[str, str, str], openssl_name: str, iana_name: str
) -> None:
    certfile, keyfile, cafile = files
    context = server_context(certfile, keyfile, maximum_version=TLS12)
    context.set_ecdh_curve(openssl_name)
    recorder = new_recorder()
    with serve_tls(context) as server:
        run_client(client_context(cafile), server.address, recorder)
    assert recorder.server_key_exchange is not None
    assert parse_server_key_exchange_group(recorder.server_key_exchange) == iana_name


def test_tls13_group_limited_by_client(files: tuple[str, str, str]) -> None:
    # With OpenSSL 3, set_ecdh_curve is SSL_CTX_set1_groups: the client offers only P-384.
    certfile, keyfile, cafile = files
    client = client_context(cafile)
    client.set_ecdh_curve("secp384r1")
    recorder = new_recorder()
    with serve_tls(server_context(certfile, keyfile)) as server:
        run_client(client, server.address, recorder)
    assert recorder.server_hello is not None
    info = parse_server_hello(recorder.server_hello)
    assert info.key_share_group == "secp384r1"
    assert recorder.hello_retry_request is None


def test_tls13_hello_retry_request(files: tuple[str, str, str]) -> None:
    # The client guesses x25519 for its key share; a server that only takes P-384 asks again.
    certfile, keyfile, cafile = files
    context = server_context(certfile, keyfile)
    context.set_ecdh_curve("secp384r1")
    recorder = new_recorder()
    with serve_tls(context) as server:
        run_client(client_context(cafile), server.address, recorder)

    # The server sent its CCS right behind the HRR, but OpenSSL reads records only as it needs
    # them: the order is the order of processing, not of arrival.
    assert trace(recorder)[:6] == [
        "sent client_hello",
        "received hello_retry_request",
        "sent change_cipher_spec",
        "sent client_hello",
        "received change_cipher_spec",
        "received server_hello",
    ]
    assert recorder.hello_retry_request is not None
    retry = parse_server_hello(recorder.hello_retry_request)
    assert retry.hello_retry_request
    assert retry.key_share_group == "secp384r1"
    assert retry.selected_version == 0x0304
    assert recorder.server_hello is not None
    final = parse_server_hello(recorder.server_hello)
    assert not final.hello_retry_request
    assert final.key_share_group == "secp384r1"


def test_alert_we_send_when_the_certificate_is_for_another_host(
    pki: Pki, files: tuple[str, str, str]
) -> None:
    certfile, keyfile, cafile = files
    recorder = new_recorder()
    with (
        serve_tls(server_context(certfile, keyfile)) as server,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        run_client(client_context(cafile), server.address, recorder, host="other.example")
    assert recorder.alerts == [
        Alert("sent", "fatal", "bad_certificate", 42, recorder.alerts[0].t_ns)
    ]
    assert recorder.alerts[0].fatal
    # The chain arrived before we rejected it, so it can still be explained.
    assert recorder.certificate is not None
    assert parse_certificate_message(recorder.certificate, tls13=True)[0] == pki.leaf.der


def test_alert_the_server_sends_when_versions_do_not_overlap(files: tuple[str, str, str]) -> None:
    certfile, keyfile, cafile = files
    client = client_context(cafile)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    recorder = new_recorder()
    with (
        serve_tls(server_context(certfile, keyfile, maximum_version=TLS12)) as server,
        pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"),
    ):
        run_client(client, server.address, recorder)
    assert trace(recorder) == ["sent client_hello", "received alert fatal protocol_version"]


def test_a_failing_callback_does_not_break_the_handshake(files: tuple[str, str, str]) -> None:
    certfile, keyfile, cafile = files

    def broken_clock() -> int:
        raise RuntimeError("clock broke")

    recorder = HandshakeRecorder(broken_clock)
    with serve_tls(server_context(certfile, keyfile)) as server:
        tls = run_client(client_context(cafile), server.address, recorder)
    assert tls.version() == "TLSv1.3"
    assert recorder.errors
    assert recorder.errors[0] == "RuntimeError: clock broke"


def test_callback_survives_nonsense_arguments() -> None:
    recorder = new_recorder()
    recorder(None, "read", 0, "not a number", 0, b"")  # type: ignore[arg-type]
    recorder(None, "read", 0x0304, 22, 0, b"")
    recorder(None, "read", 0x0304, 21, 0, b"\x02")
    assert recorder.events == []
    assert len(recorder.errors) == 1


def test_track_ignores_other_connections() -> None:
    recorder = new_recorder()
    mine, other = object(), object()
    recorder.track(mine)
    recorder(other, "write", 0x0304, 22, 1, handshake(1, b"\x03\x03"))
    recorder(mine, "read", 0x0304, 22, 8, handshake(8, b"\x00\x00"))
    recorder(mine, "read", 0x0303, 256, 23, b"\x17\x03\x03\x00\x10")  # record header: ignored
    recorder(mine, "read", 0x0304, 257, 22, b"\x16")  # inner content type: ignored
    assert trace(recorder) == ["received encrypted_extensions"]


# ---------------------------------------------------------------------------------------------
# Parsers on crafted messages


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def extension(ext_type: int, data: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def server_hello(
    *,
    random: bytes = b"\x11" * 32,
    session_id: bytes = b"\x22" * 32,
    cipher: int = 0x1301,
    extensions: bytes | None = None,
) -> bytes:
    body = b"\x03\x03" + random + bytes([len(session_id)]) + session_id
    body += cipher.to_bytes(2, "big") + b"\x00"
    if extensions is not None:
        body += len(extensions).to_bytes(2, "big") + extensions
    return handshake(2, body)


def key_share(group: int, key: bytes = b"\x01" * 32) -> bytes:
    return extension(51, group.to_bytes(2, "big") + len(key).to_bytes(2, "big") + key)


TLS13_HELLO = server_hello(extensions=extension(43, b"\x03\x04") + key_share(0x11EC))


def test_server_hello_with_hybrid_post_quantum_group() -> None:
    info = parse_server_hello(TLS13_HELLO)
    assert info.key_share_group == "X25519MLKEM768"
    assert info.key_share_group_code == 0x11EC
    assert info.session_id_echo_len == 32
    assert info.extensions == (43, 51)


def test_tls12_server_hello_may_have_no_extensions() -> None:
    info = parse_server_hello(server_hello(session_id=b"", cipher=0xC02F))
    assert (info.version_name, info.cipher_suite, info.extensions) == ("TLS 1.2", 0xC02F, ())
    assert info.session_id_echo_len == 0


def test_hello_retry_request_names_the_group_it_wants() -> None:
    hrr = server_hello(random=HRR_RANDOM, extensions=extension(51, b"\x00\x18"))
    info = parse_server_hello(hrr)
    assert info.hello_retry_request
    assert info.key_share_group == "secp384r1"


@pytest.mark.parametrize(
    "message",
    [
        server_hello(extensions=extension(43, b"\x03\x04") + extension(43, b"\x03\x04")),
        server_hello(extensions=extension(43, b"\x03\x04\x00")),
        server_hello(session_id=b"\x00" * 33),
        server_hello(extensions=key_share(29, b"")),
        TLS13_HELLO + b"\x00",
        b"\x0b" + TLS13_HELLO[1:],
    ],
    ids=["duplicate-ext", "long-version", "session-id-33", "empty-key", "trailing", "wrong-type"],
)
def test_malformed_server_hello(message: bytes) -> None:
    with pytest.raises(TlsParseError):
        parse_server_hello(message)


def test_every_truncation_is_a_parse_error() -> None:
    for end in range(len(TLS13_HELLO)):
        with pytest.raises(TlsParseError):
            parse_server_hello(TLS13_HELLO[:end])


def test_names_for_unknown_and_grease_codes() -> None:
    assert group_name(0x1234) == "unknown (0x1234)"
    assert group_name(0x3A3A) == "GREASE"
    assert version_name(0x7A7A) == "GREASE"
    assert NAMED_GROUPS[29] == "x25519"
    assert NAMED_GROUPS[0x0100] == "ffdhe2048"
    assert HANDSHAKE_TYPES[8] == "encrypted_extensions"
    assert HANDSHAKE_TYPES[254] == "message_hash"


def test_server_key_exchange_explicit_curve_is_not_named() -> None:
    assert parse_server_key_exchange_group(handshake(12, b"\x01" + b"\x00" * 10)) is None
    named = handshake(12, b"\x03\x00\x17\x41" + b"\x04" * 65 + b"signature")
    assert parse_server_key_exchange_group(named) == "secp256r1"


def test_certificate_message_formats() -> None:
    a, b = b"\x30\x03\x02\x01\x01", b"\x30\x00"
    tls12 = handshake(11, _u24(_u24(a) + _u24(b)))
    assert parse_certificate_message(tls12, tls13=False) == [a, b]
    entries = _u24(a) + b"\x00\x04\x00\x05\x00\x00" + _u24(b) + b"\x00\x00"
    tls13 = handshake(11, b"\x02ab" + _u24(entries))
    assert parse_certificate_message(tls13, tls13=True) == [a, b]
    assert parse_certificate_message(handshake(11, b"\x00" + _u24(b"")), tls13=True) == []
    with pytest.raises(TlsParseError):  # ASN.1Cert<1..2^24-1>: an empty one is malformed
        parse_certificate_message(handshake(11, _u24(_u24(b""))), tls13=False)


def _u24(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


# ---------------------------------------------------------------------------------------------
# Fuzz: whatever the bytes, the only exception is TlsParseError


def _parse_all(data: bytes) -> None:
    for parse in (
        parse_server_hello,
        parse_server_key_exchange_group,
        lambda d: parse_certificate_message(d, tls13=True),
        lambda d: parse_certificate_message(d, tls13=False),
    ):
        with contextlib.suppress(TlsParseError):
            parse(data)


@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _parse_all(data)


@given(st.sampled_from([2, 11, 12]), st.binary(max_size=300))
def test_fuzz_well_framed_bodies(msg_type: int, body: bytes) -> None:
    _parse_all(handshake(msg_type, body))


@given(st.data())
def test_fuzz_mutated_server_hello(data: st.DataObject) -> None:
    message = bytearray(TLS13_HELLO)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(message) - 1))
        message[index] = data.draw(st.integers(0, 255))
    _parse_all(bytes(message))
