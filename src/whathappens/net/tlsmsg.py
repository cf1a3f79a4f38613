"""TLS handshake messages: name them, time them, and read the few fields we explain.

Theory of operation
-------------------
CPython lets us watch a handshake through the private ``SSLContext._msg_callback`` hook
(OpenSSL's ``SSL_CTX_set_msg_callback``). It works with ``SSLObject`` + ``MemoryBIO``, so the
driver keeps doing its own socket I/O while ``HandshakeRecorder`` writes down, in order, what
OpenSSL sent and received. The callback is called as
``callback(conn, direction, version, content_type, msg_type, data)`` with ``direction``
``"write"`` or ``"read"``, ``content_type``/``msg_type`` as ints (CPython wraps known values in
private IntEnums) and ``data`` as ``bytes``. What arrives, measured with OpenSSL 3.0:

* ``content_type 22`` (handshake): one call per handshake *message*, ``data`` is the whole
  message with its 4-byte header (type, uint24 length; RFC 8446 §4). Several messages that share
  one record still arrive one by one, and in TLS 1.3 they arrive already decrypted.
* ``content_type 256`` (a pseudo type, "HEADER"): the 5-byte record header of every record,
  both directions (RFC 8446 §5.1). We ignore these, except to notice ChangeCipherSpec: OpenSSL
  reports a *received* CCS only through its record header, never as a message of its own.
* ``content_type 257`` (pseudo, "INNER_CONTENT_TYPE"): TLS 1.3 only, one byte, the real content
  type hidden inside an encrypted record (RFC 8446 §5.2). CPython labels it with a misleading
  ``msg_type``; we ignore it.
* ``content_type 21`` (alert): two bytes, level and description (RFC 8446 §6).
* ``content_type 20`` (CCS): only for CCS we send; covered by the record headers instead.
* The ``version`` argument is the connection's version *so far*: the ClientHello is labelled
  TLS 1.3 (our maximum) and a TLS 1.2 server's ServerHello too. Trust ServerHello, not it.

A TLS 1.3 HelloRetryRequest arrives as a second ``server_hello``; we name it
``hello_retry_request`` (RFC 8446 §4.1.4). Timestamps are taken when OpenSSL *processes* a
message, which with a MemoryBIO is when the driver feeds it the bytes.

The parsers take the ``data`` of one handshake message. They are bounded by the lengths the
message declares and raise only ``TlsParseError`` on malformed input.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ALERT_DESCRIPTIONS",
    "ALERT_LEVELS",
    "HANDSHAKE_TYPES",
    "NAMED_GROUPS",
    "TLS_VERSIONS",
    "Alert",
    "ChangeCipherSpec",
    "HandshakeMessage",
    "HandshakeRecorder",
    "ServerHelloInfo",
    "TlsParseError",
    "group_name",
    "parse_certificate_message",
    "parse_server_hello",
    "parse_server_key_exchange_group",
    "version_name",
]


class TlsParseError(ValueError):
    """A handshake message that does not match its declared structure."""


# IANA "TLS HandshakeType": RFC 5246 §7.4, RFC 8446 §4, plus later additions.
HANDSHAKE_TYPES: dict[int, str] = {
    0: "hello_request",
    1: "client_hello",
    2: "server_hello",
    3: "hello_verify_request",  # DTLS, RFC 6347
    4: "new_session_ticket",
    5: "end_of_early_data",
    6: "hello_retry_request",  # draft TLS 1.3 only; RFC 8446 reuses server_hello
    8: "encrypted_extensions",
    9: "request_connection_id",  # DTLS 1.3, RFC 9147
    10: "new_connection_id",
    11: "certificate",
    12: "server_key_exchange",
    13: "certificate_request",
    14: "server_hello_done",
    15: "certificate_verify",
    16: "client_key_exchange",
    17: "client_certificate_request",  # RFC 9261
    20: "finished",
    21: "certificate_url",  # RFC 6066
    22: "certificate_status",  # RFC 6066 (OCSP stapling in TLS 1.2)
    23: "supplemental_data",  # RFC 4680
    24: "key_update",
    25: "compressed_certificate",  # RFC 8879
    26: "ekt_key",  # RFC 8870
    254: "message_hash",  # RFC 8446 §4.4.1, only inside the transcript hash
}

# IANA "TLS Supported Groups" (RFC 8422 §5.1.1, RFC 7919, RFC 8446 §4.2.7, ML-KEM drafts).
NAMED_GROUPS: dict[int, str] = {
    1: "sect163k1",  # 1-22: RFC 8422 deprecates these for TLS
    2: "sect163r1",
    3: "sect163r2",
    4: "sect193r1",
    5: "sect193r2",
    6: "sect233k1",
    7: "sect233r1",
    8: "sect239k1",
    9: "sect283k1",
    10: "sect283r1",
    11: "sect409k1",
    12: "sect409r1",
    13: "sect571k1",
    14: "sect571r1",
    15: "secp160k1",
    16: "secp160r1",
    17: "secp160r2",
    18: "secp192k1",
    19: "secp192r1",
    20: "secp224k1",
    21: "secp224r1",
    22: "secp256k1",
    23: "secp256r1",  # NIST P-256
    24: "secp384r1",
    25: "secp521r1",
    26: "brainpoolP256r1",
    27: "brainpoolP384r1",
    28: "brainpoolP512r1",
    29: "x25519",
    30: "x448",
    31: "brainpoolP256r1tls13",  # RFC 8734
    32: "brainpoolP384r1tls13",
    33: "brainpoolP512r1tls13",
    34: "GC256A",  # RFC 9189
    35: "GC256B",
    36: "GC256C",
    37: "GC256D",
    38: "GC512A",
    39: "GC512B",
    40: "GC512C",
    41: "curveSM2",
    0x0100: "ffdhe2048",
    0x0101: "ffdhe3072",
    0x0102: "ffdhe4096",
    0x0103: "ffdhe6144",
    0x0104: "ffdhe8192",
    0x0200: "MLKEM512",
    0x0201: "MLKEM768",
    0x0202: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768",
    0x11EC: "X25519MLKEM768",
    0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00",  # pre-standard hybrid, still seen in the wild
    0x639A: "SecP256r1Kyber768Draft00",
    0xFF01: "arbitrary_explicit_prime_curves",
    0xFF02: "arbitrary_explicit_char2_curves",
}

TLS_VERSIONS: dict[int, str] = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
    0xFEFF: "DTLS 1.0",
    0xFEFD: "DTLS 1.2",
    0xFEFC: "DTLS 1.3",
}

# RFC 8446 §6: AlertLevel and AlertDescription (plus the RFC 5246 and later ones).
ALERT_LEVELS: dict[int, str] = {1: "warning", 2: "fatal"}
ALERT_DESCRIPTIONS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
    121: "ech_required",
}

# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest (SHA-256 of the string).
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

_EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
_EXT_KEY_SHARE = 51  # RFC 8446 §4.2.8

_CT_CHANGE_CIPHER_SPEC = 20
_CT_ALERT = 21
_CT_HANDSHAKE = 22
_CT_HEADER = 256  # OpenSSL's SSL3_RT_HEADER pseudo content type

_HT_SERVER_HELLO = 2
_HT_CERTIFICATE = 11
_HT_SERVER_KEY_EXCHANGE = 12


def _is_grease(code: int) -> bool:
    # RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA.
    return code & 0x0F0F == 0x0A0A and code >> 8 == code & 0xFF


def group_name(code: int) -> str:
    if code in NAMED_GROUPS:
        return NAMED_GROUPS[code]
    return "GREASE" if _is_grease(code) else f"unknown (0x{code:04x})"


def version_name(code: int) -> str:
    if code in TLS_VERSIONS:
        return TLS_VERSIONS[code]
    return "GREASE" if _is_grease(code) else f"unknown (0x{code:04x})"


# ---------------------------------------------------------------------------------------------
# Recording


@dataclass(frozen=True)
class HandshakeMessage:
    direction: str  # "sent" | "received"
    type_name: str
    type_code: int
    length: int  # bytes of the message, its 4-byte header included
    t_ns: int


@dataclass(frozen=True)
class Alert:
    direction: str
    level: str  # "warning" | "fatal" | "unknown (n)"
    description: str  # "bad_certificate", ...
    description_code: int
    t_ns: int

    @property
    def fatal(self) -> bool:
        return self.level == "fatal"


@dataclass(frozen=True)
class ChangeCipherSpec:
    """A CCS record: key switch in TLS 1.2; a no-op for middleboxes in TLS 1.3 (RFC 8446 §D.4)."""

    direction: str
    t_ns: int


Event = HandshakeMessage | Alert | ChangeCipherSpec


class HandshakeRecorder:
    """Install as ``SSLContext._msg_callback``; collects the handshake as it happens.

    Written from the client's side: the raw ServerHello, ServerKeyExchange and Certificate kept
    for parsing are the *received* ones. Use ``track(ssl_object)`` when the context is shared,
    so messages of other connections are ignored.
    """

    def __init__(self, now: Callable[[], int]) -> None:
        self._now = now
        self._conn: object | None = None
        self.events: list[Event] = []
        self.server_hello: bytes | None = None
        self.hello_retry_request: bytes | None = None
        self.server_key_exchange: bytes | None = None
        self.certificate: bytes | None = None
        self.errors: list[str] = []  # what went wrong inside the callback, if anything

    def install(self, context: ssl.SSLContext) -> None:
        context._msg_callback = self  # type: ignore[attr-defined]

    def track(self, conn: object) -> None:
        self._conn = conn

    @property
    def messages(self) -> list[HandshakeMessage]:
        return [e for e in self.events if isinstance(e, HandshakeMessage)]

    @property
    def alerts(self) -> list[Alert]:
        return [e for e in self.events if isinstance(e, Alert)]

    def __call__(
        self,
        conn: object,
        direction: str,
        version: int,
        content_type: int,
        msg_type: int,
        data: bytes,
    ) -> None:
        # An exception escaping this callback would be raised by OpenSSL's caller and abort
        # the handshake we are only meant to watch, so nothing may escape.
        try:
            if self._conn is not None and conn is not self._conn:
                return
            self._record(direction, int(content_type), bytes(data))
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _record(self, direction: str, content_type: int, data: bytes) -> None:
        side = "sent" if direction == "write" else "received"
        if content_type == _CT_HEADER:
            if len(data) == 5 and data[0] == _CT_CHANGE_CIPHER_SPEC:
                self.events.append(ChangeCipherSpec(side, self._now()))
            return
        if content_type == _CT_ALERT and len(data) >= 2:
            level, code = data[0], data[1]
            self.events.append(
                Alert(
                    side,
                    ALERT_LEVELS.get(level, f"unknown ({level})"),
                    ALERT_DESCRIPTIONS.get(code, f"unknown ({code})"),
                    code,
                    self._now(),
                )
            )
            return
        if content_type != _CT_HANDSHAKE or not data:
            return
        code = data[0]
        name = HANDSHAKE_TYPES.get(code, f"unknown ({code})")
        is_hrr = code == _HT_SERVER_HELLO and data[6:38] == HRR_RANDOM
        if is_hrr:
            name = "hello_retry_request"
        self.events.append(HandshakeMessage(side, name, code, len(data), self._now()))
        if side != "received":
            return
        if is_hrr:
            self.hello_retry_request = data
        elif code == _HT_SERVER_HELLO:
            self.server_hello = data
        elif code == _HT_SERVER_KEY_EXCHANGE:
            self.server_key_exchange = data
        elif code == _HT_CERTIFICATE:
            self.certificate = data


# ---------------------------------------------------------------------------------------------
# Parsing (RFC 8446 §3 presentation language: vectors carry a 1-, 2- or 3-byte length prefix)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n > self.remaining:
            raise TlsParseError(f"need {n} bytes at offset {self._pos}, have {self.remaining}")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, len_size: int, *, min_len: int = 0, max_len: int | None = None) -> bytes:
        n = self.uint(len_size)
        if n < min_len or (max_len is not None and n > max_len):
            raise TlsParseError(f"vector length {n} outside {min_len}..{max_len}")
        return self.take(n)

    def end(self) -> None:
        if self.remaining:
            raise TlsParseError(f"{self.remaining} unexpected trailing bytes")


def _body(data: bytes, expected_type: int) -> _Reader:
    """The body of one handshake message (RFC 8446 §4: type, uint24 length, body)."""
    outer = _Reader(bytes(data))
    msg_type = outer.uint(1)
    if msg_type != expected_type:
        want = HANDSHAKE_TYPES.get(expected_type, str(expected_type))
        raise TlsParseError(f"expected {want} message, got type {msg_type}")
    body = _Reader(outer.vector(3))
    outer.end()
    return body


@dataclass(frozen=True)
class ServerHelloInfo:
    legacy_version: int
    selected_version: int | None  # supported_versions extension, RFC 8446 §4.2.1
    cipher_suite: int
    key_share_group: str | None  # in a HelloRetryRequest: the group the server asks for
    key_share_group_code: int | None
    session_id_echo_len: int
    hello_retry_request: bool
    extensions: tuple[int, ...]

    @property
    def version(self) -> int:
        """The negotiated version: TLS 1.3 hides behind legacy_version 0x0303 (RFC 8446 §4.1.3)."""
        return self.selected_version if self.selected_version is not None else self.legacy_version

    @property
    def version_name(self) -> str:
        return version_name(self.version)


def parse_server_hello(data: bytes) -> ServerHelloInfo:
    """ServerHello, RFC 8446 §4.1.3 (and RFC 5246 §7.4.1.3, where extensions may be absent)."""
    r = _body(data, _HT_SERVER_HELLO)
    legacy_version = r.uint(2)
    hrr = r.take(32) == HRR_RANDOM
    session_id_len = len(r.vector(1, max_len=32))
    cipher_suite = r.uint(2)
    r.uint(1)  # legacy_compression_method
    selected_version: int | None = None
    group: int | None = None
    seen: list[int] = []
    if r.remaining:
        exts = _Reader(r.vector(2))
        r.end()
        while exts.remaining:
            ext_type = exts.uint(2)
            ext = _Reader(exts.vector(2))
            # RFC 8446 §4.2: no extension type may appear twice.
            if ext_type in seen:
                raise TlsParseError(f"extension {ext_type} appears twice")
            seen.append(ext_type)
            if ext_type == _EXT_SUPPORTED_VERSIONS:
                selected_version = ext.uint(2)
                ext.end()
            elif ext_type == _EXT_KEY_SHARE:
                # RFC 8446 §4.2.8: HRR carries only selected_group; ServerHello a KeyShareEntry.
                group = ext.uint(2)
                if not hrr:
                    ext.vector(2, min_len=1)
                ext.end()
    return ServerHelloInfo(
        legacy_version=legacy_version,
        selected_version=selected_version,
        cipher_suite=cipher_suite,
        key_share_group=group_name(group) if group is not None else None,
        key_share_group_code=group,
        session_id_echo_len=session_id_len,
        hello_retry_request=hrr,
        extensions=tuple(seen),
    )


def parse_server_key_exchange_group(data: bytes) -> str | None:
    """The group of a TLS 1.2 ECDHE ServerKeyExchange (RFC 8422 §5.4), None if not a named curve.

    Only meaningful for ECDHE cipher suites: the message does not say which key exchange it
    belongs to, and a DHE message (RFC 5246 §7.4.3) has a different layout.
    """
    r = _body(data, _HT_SERVER_KEY_EXCHANGE)
    curve_type = r.uint(1)
    if curve_type != 3:  # ECCurveType.named_curve; explicit curves (1, 2) are deprecated
        return None
    group = r.uint(2)
    r.vector(1, min_len=1)  # ECPoint public
    return group_name(group)


def parse_certificate_message(data: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate message, the sender's own first.

    TLS 1.3 (RFC 8446 §4.4.2): request context, then entries each carrying extensions.
    TLS 1.2 (RFC 5246 §7.4.2): a plain list of ASN.1Cert.
    """
    r = _body(data, _HT_CERTIFICATE)
    if tls13:
        r.vector(1)  # certificate_request_context, empty for a server's certificate
    entries = _Reader(r.vector(3))
    r.end()
    certs: list[bytes] = []
    while entries.remaining:
        certs.append(entries.vector(3, min_len=1))
        if tls13:
            entries.vector(2)  # per-entry extensions (OCSP status, SCTs)
    return certs
