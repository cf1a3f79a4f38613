"""TLS servers that misbehave on purpose, under our full control, for the TLS corpus.

A ``TlsServer`` accepts on 127.0.0.1 (a ``misbehaving.RawServer``) and hands each connection
to a ``behaviour(peer)``. The ``TlsPeer`` is a server-side ``ssl.SSLObject`` over memory BIOs
on the raw socket, so a behaviour decides every byte that leaves: it can run the handshake or
not, drip its bytes, cut it with a FIN or an RST, answer HTTP/1.1 or HTTP/2, then end with a
close_notify, a ragged FIN, an alert or garbage at any point of the response.

OpenSSL will not send an arbitrary alert, nor a record of the wrong type, once the handshake
is over. ``peer.records()`` writes such records itself: the server's traffic secret comes
from the context's key log (``SSLContext.keylog_filename``, NSS key log format), and records
are protected as RFC 8446 §5.2 (TLS 1.3) or RFC 5246 §6.2.3.3 with RFC 5288's AES-GCM
(TLS 1.2) say. That writer owns the write side from then on; the SSLObject keeps reading.

Handshake faults that need no TLS at all (silence, garbage, an alert in answer to the
ClientHello, a crafted ServerHello, a plain HTTP or SSH server) are plain handlers of a
``RawServer`` and live at the end of this module.

    with TlsServer(respond_then(H1_OK, close_notify), creds.context()) as server:
        run_cli([server.url("https"), "--cacert", creds.cafile])
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import os
import socket
import ssl
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from certgen import Issued, make_ca, make_pki, utcnow, write_cafile
from misbehaving import RawServer, wait_until_closed

# TLS record content types (RFC 8446 §5.1, RFC 5246 §6.2.1).
CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23

# AlertDescription values (RFC 8446 §6).
ALERTS = {
    "close_notify": 0, "unexpected_message": 10, "bad_record_mac": 20, "record_overflow": 22,
    "handshake_failure": 40, "bad_certificate": 42, "certificate_expired": 45,
    "illegal_parameter": 47, "access_denied": 49, "decode_error": 50,
    "protocol_version": 70, "insufficient_security": 71, "internal_error": 80,
    "user_canceled": 90, "unrecognized_name": 112,
}

READ = 65536


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    """One plaintext record: type, legacy version, length, fragment (RFC 8446 §5.1)."""
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


def alert_record(description: str, level: int = 2) -> bytes:
    """A plaintext alert record; level 2 is fatal (RFC 5246 §7.2)."""
    return record(ALERT, bytes([level, ALERTS[description]]))


# ---------------------------------------------------------------------------------------------
# Certificates and server contexts


@dataclass
class Credentials:
    """A server's chain and key on disk, and the CA file a client should trust."""

    certfile: str
    keyfile: str
    cafile: str

    def context(self, *, version: str | None = None, alpn: Sequence[str] | None = ("http/1.1",),
                weak: bool = False) -> ssl.SSLContext:
        """A server context; ``version`` "1.2" or "1.3" pins it to that version. TLS 1.2 is
        held to ECDHE with AES-GCM so that ``TlsPeer.records`` can protect records itself.
        ``weak`` lowers OpenSSL's security level so that the server accepts to use a weak
        key or a SHA-1 certificate (the client is the one that must refuse it)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if weak:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.load_cert_chain(self.certfile, self.keyfile)
        ctx.num_tickets = 0  # no NewSessionTicket after a TLS 1.3 handshake: we own the writes
        if version == "1.2":
            ctx.maximum_version = ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("ECDHE+AESGCM" + (":@SECLEVEL=0" if weak else ""))
        elif version == "1.3":
            ctx.maximum_version = ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx


def write_credentials(directory: Path, chain: Sequence[Issued | bytes], key: Issued,
                      roots: Sequence[Issued], stem: str) -> Credentials:
    """``chain`` is what the server sends, leaf first (certificates, or raw PEM blocks)."""
    certfile = directory / f"{stem}-chain.pem"
    keyfile = directory / f"{stem}-key.pem"
    certfile.write_bytes(b"".join(c if isinstance(c, bytes) else c.pem for c in chain))
    keyfile.write_bytes(key.key_pem)
    cafile = write_cafile(directory, list(roots), stem=f"{stem}-roots")
    return Credentials(str(certfile), str(keyfile), cafile)


HOSTS = ["localhost", "127.0.0.1"]


def good(directory: Path) -> Credentials:
    pki = make_pki(HOSTS)
    return write_credentials(directory, pki.chain, pki.leaf, [pki.root], "good")


def padded_ca(cn: str, issuer: Issued | None, pad: int) -> Issued:
    """A CA certificate made ``pad`` bytes larger by a non-critical private extension."""
    ca = make_ca(cn, issuer=issuer)
    if not pad:
        return ca
    from cryptography.hazmat.primitives.asymmetric import ec

    now = utcnow()
    signer = issuer.key if issuer else ca.key
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(ca.cert.subject)
        .issuer_name(issuer.cert.subject if issuer else ca.cert.subject)
        .public_key(ca.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x04\x82" + struct.pack(
                "!H", pad) + os.urandom(pad)), critical=False)
    )
    return Issued(builder.sign(signer, hashes.SHA256()), ca.key)


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV (X.690 §8.1.3 lengths)."""
    n = len(content)
    if n < 128:
        return bytes([tag, n]) + content
    size = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + content


ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
ECDSA_SHA1 = bytes.fromhex("300906072a8648ce3d0401")


def resign_sha1(cert: Issued, issuer: Issued) -> Issued:
    """``cert`` signed again by ``issuer`` with ECDSA and SHA-1. cryptography refuses to
    build such a certificate, so the TBSCertificate's signature algorithm is swapped in the
    DER and the signature made with the primitive (RFC 5280 §4.1.1.2 wants both to agree)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    tbs = cert.cert.tbs_certificate_bytes
    skip = 2 + (tbs[1] & 0x7F if tbs[1] & 0x80 else 0)
    assert ECDSA_SHA256 in tbs[skip:]
    tbs = _der(0x30, tbs[skip:].replace(ECDSA_SHA256, ECDSA_SHA1, 1))
    assert isinstance(issuer.key, ec.EllipticCurvePrivateKey)
    signature = issuer.key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    der = _der(0x30, tbs + ECDSA_SHA1 + _der(0x03, b"\x00" + signature))
    return Issued(x509.load_der_x509_certificate(der), cert.key)


# ---------------------------------------------------------------------------------------------
# Protecting records ourselves


def _hkdf_expand_label(secret: bytes, label: bytes, length: int,
                       algorithm: hashes.HashAlgorithm) -> bytes:
    """HKDF-Expand-Label(Secret, Label, "", Length), RFC 8446 §7.1."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(algorithm, length, info).derive(secret)


def _p_hash(secret: bytes, seed: bytes, length: int, digest: str) -> bytes:
    """P_hash of the TLS 1.2 PRF, RFC 5246 §5."""
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:length]


class RecordWriter:
    """Writes protected records with the server's application traffic keys, so a behaviour
    can send what OpenSSL would not: any alert, a record of the wrong type, a bad record."""

    def __init__(self, version: str, cipher: str, secret: bytes, server_random: bytes,
                 client_random: bytes) -> None:
        self.version = version
        self.aead: AESGCM | ChaCha20Poly1305
        if version == "TLSv1.3":
            algorithm: hashes.HashAlgorithm = (hashes.SHA384() if cipher.endswith("SHA384")
                                               else hashes.SHA256())
            key_len = 16 if "AES_128" in cipher else 32
            key = _hkdf_expand_label(secret, b"key", key_len, algorithm)
            self.iv = _hkdf_expand_label(secret, b"iv", 12, algorithm)
            self.aead = (ChaCha20Poly1305(key) if "CHACHA20" in cipher else AESGCM(key))
            self.seq = 0  # the first record under the application traffic keys
        else:
            # RFC 5246 §6.3: key_block = PRF(master, "key expansion", server_random +
            # client_random); AES-GCM has no MAC keys and a 4-byte implicit IV (RFC 5288 §3).
            if "GCM" not in cipher:
                raise ValueError(f"cannot protect TLS 1.2 records of {cipher}")
            digest = "sha384" if cipher.endswith("SHA384") else "sha256"
            key_len = 32 if "AES256" in cipher else 16
            block = _p_hash(secret, b"key expansion" + server_random + client_random,
                            2 * key_len + 8, digest)
            key = block[key_len:2 * key_len]
            self.iv = block[2 * key_len + 4:2 * key_len + 8]
            self.aead = AESGCM(key)
            self.seq = 1  # the server's Finished was record 0 of this epoch

    def protect(self, content_type: int, payload: bytes) -> bytes:
        seq, self.seq = self.seq, self.seq + 1
        if self.version == "TLSv1.3":
            # RFC 8446 §5.2: the true type rides inside; outside, every record is
            # application_data, and the nonce is the IV XOR the sequence number.
            inner = payload + bytes([content_type])
            header = struct.pack("!BHH", APPLICATION_DATA, 0x0303, len(inner) + 16)
            nonce = bytes(a ^ b for a, b in zip(self.iv, seq.to_bytes(12, "big"), strict=True))
            return header + self.aead.encrypt(nonce, inner, header)
        explicit = seq.to_bytes(8, "big")
        aad = explicit + struct.pack("!BHH", content_type, 0x0303, len(payload))
        sealed = explicit + self.aead.encrypt(self.iv + explicit, payload, aad)
        return struct.pack("!BHH", content_type, 0x0303, len(sealed)) + sealed

    def alert(self, description: str, level: int = 2) -> bytes:
        return self.protect(ALERT, bytes([level, ALERTS[description]]))

    def data(self, payload: bytes) -> bytes:
        return b"".join(self.protect(APPLICATION_DATA, payload[i:i + 16384])
                        for i in range(0, len(payload), 16384))


# ---------------------------------------------------------------------------------------------
# One connection


class TlsPeer:
    """The server side of one connection: raw socket, SSLObject, memory BIOs."""

    def __init__(self, conn: socket.socket, context: ssl.SSLContext, keylog: Path | None,
                 *, drip: float = 0.0, fragment: int = 0) -> None:
        self.conn = conn
        self.context = context
        self.keylog = keylog
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.drip = drip                # seconds between two bytes while flushing
        self.fragment = fragment        # split plaintext handshake records to this size
        self.fragments = 0              # how many records that made
        self.first_in = b""             # the client's first bytes: its ClientHello
        self.first_out = b""            # our first flight: the ServerHello
        self.plain = b""                # decrypted bytes from the client not yet consumed
        self._writer: RecordWriter | None = None

    # raw bytes ------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        if not self.first_out:
            self.first_out = data
        if self.fragment:
            data = self._refragment(data)
        if self.drip:
            for i in range(len(data)):
                self.conn.sendall(data[i:i + 1])
                time.sleep(self.drip)
        else:
            self.conn.sendall(data)

    def _refragment(self, data: bytes) -> bytes:
        """Plaintext handshake records cut into records of ``fragment`` bytes, as RFC 8446
        §5.1 allows (a handshake message may span records); stops at ChangeCipherSpec, after
        which records are protected and must stay whole."""
        out, i = b"", 0
        while i + 5 <= len(data):
            kind, version, length = struct.unpack("!BHH", data[i:i + 5])
            payload = data[i + 5:i + 5 + length]
            i += 5 + length
            if kind in (CHANGE_CIPHER_SPEC, APPLICATION_DATA):
                self.fragment = 0
                return out + data[i - 5 - length:]
            if kind != HANDSHAKE:
                out += record(kind, payload, version)
                continue
            pieces = [payload[j:j + self.fragment]
                      for j in range(0, len(payload), self.fragment)]
            self.fragments += len(pieces)
            out += b"".join(record(kind, piece, version) for piece in pieces)
        return out + data[i:]

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.send_raw(data)

    def _fill(self) -> None:
        chunk = self.conn.recv(READ)
        if not chunk:
            raise ConnectionError("the client closed")
        if not self.first_in:
            self.first_in = chunk
        self.incoming.write(chunk)

    # the handshake ----------------------------------------------------------------------------
    def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._fill()
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self.flush()  # the alert OpenSSL wrote, e.g. protocol_version
                raise
        self.flush()

    def server_flight(self) -> bytes:
        """Run the handshake only as far as our first flight and return it, unsent."""
        while True:
            self._fill()
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                data = self.outgoing.read()
                if data:
                    return data

    # application data -----------------------------------------------------------------------
    def send(self, data: bytes, *, record_size: int = 16384) -> None:
        """``data`` through OpenSSL, in records of at most ``record_size`` bytes."""
        for i in range(0, len(data), record_size):
            self.obj.write(data[i:i + record_size])
        self.flush()

    def read_until(self, marker: bytes, limit: int = 65536) -> bytes:
        while marker not in self.plain and len(self.plain) < limit:
            try:
                self.plain += self.obj.read(READ)
            except ssl.SSLWantReadError:
                self._fill()
        head, sep, rest = self.plain.partition(marker)
        self.plain = rest
        return head + sep

    def read_request(self) -> bytes:
        return self.read_until(b"\r\n\r\n")

    def read_some(self) -> bytes:
        while not self.plain:
            try:
                self.plain += self.obj.read(READ)
            except ssl.SSLWantReadError:
                self._fill()
        data, self.plain = self.plain, b""
        return data

    def records(self) -> RecordWriter:
        """A writer of protected records with this connection's keys (see RecordWriter)."""
        if self._writer is None:
            self._writer = self._make_writer()
        return self._writer

    def _make_writer(self) -> RecordWriter:
        assert self.keylog is not None, "the context needs a key log"
        client_random = self.first_in[11:43]   # record 5 + handshake 4 + version 2
        server_random = self.first_out[11:43]
        version = self.obj.version() or ""
        cipher = (self.obj.cipher() or ("",))[0]
        label = "SERVER_TRAFFIC_SECRET_0" if version == "TLSv1.3" else "CLIENT_RANDOM"
        wanted = client_random.hex()
        for line in self.keylog.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == label and parts[1] == wanted:
                return RecordWriter(version, cipher, bytes.fromhex(parts[2]), server_random,
                                    client_random)
        raise RuntimeError(f"no {label} for this connection in the key log")

    # endings --------------------------------------------------------------------------------
    def close_notify(self) -> None:
        """Send our close_notify (RFC 8446 §6.1) and keep the TCP connection open."""
        with contextlib.suppress(ssl.SSLError):
            self.obj.unwrap()
        self.flush()

    def fin(self) -> None:
        """A TCP FIN, with no close_notify before it: a ragged close."""
        self.conn.shutdown(socket.SHUT_WR)

    def rst(self) -> None:
        """An RST: close with SO_LINGER 0 and nothing left to say."""
        rst(self.conn)

    def hold(self, limit: float = 10.0) -> None:
        """Keep the connection open until the client closes it (or ``limit``)."""
        wait_until_closed(self.conn, limit)


def rst(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


Behaviour = Callable[[TlsPeer], None]


class TlsServer(RawServer):
    """A RawServer whose connections are TlsPeers driven by ``behaviour``."""

    def __init__(self, behaviour: Behaviour, context: ssl.SSLContext, *,
                 drip: float = 0.0, fragment: int = 0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="tls-keylog-")
        self.keylog = Path(self._dir.name) / "keys.log"
        context.keylog_filename = str(self.keylog)
        self.errors: list[BaseException] = []

        def handler(conn: socket.socket) -> None:
            peer = TlsPeer(conn, context, self.keylog, drip=drip, fragment=fragment)
            try:
                behaviour(peer)
            except (ssl.SSLError, ConnectionError, ValueError) as exc:
                self.errors.append(exc)  # the client gave up: expected in most cases

        super().__init__(handler)

    def close(self) -> None:
        super().close()
        self._dir.cleanup()


# ---------------------------------------------------------------------------------------------
# HTTP responses and the points where a behaviour can stop


BODY = b"".join(f"line {i:04d} of the body, all of it plain text\n".encode()
                for i in range(40))  # 1600 bytes


def h1_response(body: bytes = BODY, *, framing: str = "length", version: str = "1.1") -> bytes:
    """A complete HTTP/1.1 (or 1.0) 200. ``framing``: "length" (Content-Length), "chunked",
    or "close" (delimited by the end of the connection, RFC 9112 §6.3 rule 8)."""
    head = [f"HTTP/{version} 200 OK", "Content-Type: text/plain", "Server: misbehaving-tls"]
    if framing == "length":
        head.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(f"{len(body[i:i + 400]):x}\r\n".encode() + body[i:i + 400] + b"\r\n"
                           for i in range(0, len(body), 400)) + b"0\r\n\r\n"
    else:
        if version == "1.1":
            head.append("Connection: close")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def cut_points(response: bytes) -> dict[str, int]:
    """Where in ``response`` a misbehaviour can strike: byte offsets by name."""
    head_end = response.index(b"\r\n\r\n") + 4
    return {
        "before_response": 0,
        "after_status_line": response.index(b"\r\n") + 2,
        "mid_headers": response.index(b"\r\n", response.index(b"\r\n") + 2) + 5,
        "after_headers": head_end,
        "mid_body": head_end + 57,
        "complete": len(response),
    }


Ending = Callable[[TlsPeer], None]


def end_close_notify(peer: TlsPeer) -> None:
    peer.close_notify()
    peer.hold(5)


def end_close_notify_fin(peer: TlsPeer) -> None:
    peer.close_notify()
    peer.fin()
    peer.hold(5)


def end_ragged(peer: TlsPeer) -> None:
    peer.fin()
    peer.hold(5)


def end_rst(peer: TlsPeer) -> None:
    peer.rst()


def end_alert(description: str, level: int = 2) -> Ending:
    """A protected alert; a warning-level one (level 1) is followed by close_notify, as RFC
    8446 §6.1 asks of user_canceled."""
    def ending(peer: TlsPeer) -> None:
        writer = peer.records()
        data = writer.alert(description, level)
        if level == 1:
            data += writer.alert("close_notify", 1)
        peer.send_raw(data)
        peer.hold(5)
    return ending


def end_garbage_record(peer: TlsPeer) -> None:
    """A record with a right header whose protection does not verify (RFC 8446 §5.2:
    the client must answer bad_record_mac)."""
    peer.send_raw(record(APPLICATION_DATA, os.urandom(64)))
    peer.hold(5)


def end_not_a_record(peer: TlsPeer) -> None:
    """Bytes that are not a TLS record at all."""
    peer.send_raw(b"HTTP/1.1 200 OK\r\n\r\nplain text after the handshake")
    peer.hold(5)


def end_oversized_record(peer: TlsPeer) -> None:
    """A record longer than 2^14 + 256 bytes of ciphertext (RFC 8446 §5.2: record_overflow)."""
    peer.send_raw(struct.pack("!BHH", APPLICATION_DATA, 0x0303, 0x4800) + os.urandom(0x4800))
    peer.hold(5)


def end_unknown_type(peer: TlsPeer) -> None:
    """A protected record whose inner content type is none TLS defines (RFC 8446 §5.2 says
    unexpected_message)."""
    peer.send_raw(peer.records().protect(0x63, b"what is this"))
    peer.hold(5)


def end_handshake_after(peer: TlsPeer) -> None:
    """A protected handshake record after the handshake: a ClientHello-shaped message the
    client cannot accept there (RFC 8446 §4: unexpected_message)."""
    peer.send_raw(peer.records().protect(HANDSHAKE, b"\x01\x00\x00\x04\x03\x03\x00\x00"))
    peer.hold(5)


def respond_then(response: bytes, at: int | str, ending: Ending, *,
                 via_records: bool = False, read_request: bool = True) -> Behaviour:
    """Handshake, read the request, send ``response`` up to ``at`` (a byte offset or a name
    of ``cut_points``), then ``ending``. ``via_records`` sends the data with our own record
    writer (needed before an ending that uses it, as it owns the write side)."""
    offset = cut_points(response)[at] if isinstance(at, str) else at

    def behaviour(peer: TlsPeer) -> None:
        peer.handshake()
        if read_request:
            peer.read_request()
        part = response[:offset]
        if part:
            if via_records:
                peer.send_raw(peer.records().data(part))
            else:
                peer.send(part)
        ending(peer)
    return behaviour


def handshake_then(ending: Ending) -> Behaviour:
    """Right after the handshake, before the request is even read."""
    def behaviour(peer: TlsPeer) -> None:
        peer.handshake()
        ending(peer)
    return behaviour


def drip_records(response: bytes, at: int, every: float, *, forever: bool = True) -> Behaviour:
    """Send ``response[:at]``, then the rest one byte per TLS record, one every ``every``
    seconds, and when the response is done keep going with more single-byte records."""
    def behaviour(peer: TlsPeer) -> None:
        peer.handshake()
        peer.read_request()
        peer.send(response[:at])
        rest = response[at:]
        deadline = time.monotonic() + 15
        i = 0
        while time.monotonic() < deadline and (forever or i < len(rest)):
            peer.send(rest[i:i + 1] or b"x")
            i += 1
            if every:
                time.sleep(every)
    return behaviour


def flood_records(count: int) -> Behaviour:
    """Announce a body of a million bytes, then send ``count`` records of one byte each, as
    fast as the socket takes them (RFC 8446 §5.1 allows records this small; each costs the
    client a decryption)."""
    def behaviour(peer: TlsPeer) -> None:
        peer.handshake()
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        for _ in range(count):
            peer.obj.write(b"x")
        peer.flush()
        peer.hold(5)
    return behaviour


# --- HTTP/2 ------------------------------------------------------------------------------------

H2_BODY = BODY


def h2_behaviour(stage: str, ending: Ending, *, via_records: bool = False) -> Behaviour:
    """An HTTP/2 server (h2) that stops at ``stage``: "preface" (nothing sent, not even
    SETTINGS), "settings" (its SETTINGS only), "headers" (the response's HEADERS), "mid_body"
    (HEADERS and 57 bytes of DATA), "complete" (the whole response, END_STREAM)."""
    def behaviour(peer: TlsPeer) -> None:
        peer.handshake()
        send = ((lambda data: peer.send_raw(peer.records().data(data))) if via_records
                else peer.send)
        if stage == "preface":
            ending(peer)
            return
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        send(conn.data_to_send())
        if stage == "settings":
            ending(peer)
            return
        stream_id = None
        while stream_id is None:
            for event in conn.receive_data(peer.read_some()):
                if isinstance(event, h2.events.RequestReceived):
                    stream_id = event.stream_id
            pending = conn.data_to_send()
            if pending:
                send(pending)
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "text/plain"),
                                      ("content-length", str(len(H2_BODY)))])
        if stage == "mid_body":
            conn.send_data(stream_id, H2_BODY[:57])
        elif stage == "complete":
            conn.send_data(stream_id, H2_BODY, end_stream=True)
        send(conn.data_to_send())
        ending(peer)
    return behaviour


def h2_settings_and_alert(description: str) -> Behaviour:
    """Our SETTINGS and a fatal alert in one TCP segment, right after the handshake: the
    client reads both at once, so it has the alert before it can answer the SETTINGS."""
    def behaviour(peer: TlsPeer) -> None:
        peer.handshake()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer = peer.records()
        peer.send_raw(writer.data(conn.data_to_send()) + writer.alert(description))
        peer.hold(5)
    return behaviour


# ---------------------------------------------------------------------------------------------
# Handshake faults on a raw socket (no TLS state needed)


def client_hello(conn: socket.socket) -> bytes:
    """Read the client's first flight (its ClientHello), bounded."""
    conn.settimeout(5)
    data = conn.recv(READ)
    while len(data) >= 5 and len(data) < 5 + struct.unpack("!H", data[3:5])[0]:
        more = conn.recv(READ)
        if not more:
            break
        data += more
    return data


def silent(conn: socket.socket) -> None:
    """Accept, read the ClientHello, and answer nothing."""
    client_hello(conn)
    wait_until_closed(conn)


def answer_raw(data: bytes, then: str = "hold") -> Callable[[socket.socket], None]:
    """Answer the ClientHello with ``data``; then "hold" the connection, "fin" or "rst"."""
    def handler(conn: socket.socket) -> None:
        client_hello(conn)
        if data:
            conn.sendall(data)
        if then == "rst":
            rst(conn)
            return
        if then == "fin":
            conn.shutdown(socket.SHUT_WR)
        wait_until_closed(conn, 5)
    return handler


def ssh_banner(conn: socket.socket) -> None:
    """An SSH server speaks first (RFC 4253 §4.2), then waits for our banner."""
    conn.sendall(b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n")
    client_hello(conn)
    conn.sendall(b"Invalid SSH identification string.\r\n")
    conn.shutdown(socket.SHUT_WR)
    wait_until_closed(conn, 3)


def plain_http(conn: socket.socket) -> None:
    """An HTTP/1.1 server on the TLS port, answering the ClientHello with a 400 as nginx does."""
    client_hello(conn)
    body = b"<html><body>400 Bad Request</body></html>\n"
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    conn.shutdown(socket.SHUT_WR)
    wait_until_closed(conn, 3)


def server_hello(*, version: int = 0x0303, cipher: int = 0xC02B, session_id: bytes = b"",
                 extensions: bytes = b"") -> bytes:
    """A ServerHello record (RFC 5246 §7.4.1.3) built by hand, to say what OpenSSL would not."""
    body = (struct.pack("!H", version) + os.urandom(32) + bytes([len(session_id)]) + session_id
            + struct.pack("!HB", cipher, 0))
    if extensions:
        body += struct.pack("!H", len(extensions)) + extensions
    message = b"\x02" + len(body).to_bytes(3, "big") + body
    return record(HANDSHAKE, message, version=0x0303 if version > 0x0301 else version)


def client_session_id(hello: bytes) -> bytes:
    """The legacy_session_id of a ClientHello record (echoed by a TLS 1.3 ServerHello)."""
    n = hello[43]
    return hello[44:44 + n]


def crafted_hello(**kwargs: int) -> Callable[[socket.socket], None]:
    """Answer the ClientHello with a hand-made ServerHello (echoing its session id)."""
    def handler(conn: socket.socket) -> None:
        hello = client_hello(conn)
        conn.sendall(server_hello(session_id=client_session_id(hello), **kwargs))
        wait_until_closed(conn, 5)
    return handler


def partial_flight(context: ssl.SSLContext, keep: int, then: str) -> Callable[[socket.socket],
                                                                                 None]:
    """Run a real handshake as far as our first flight, send its first ``keep`` bytes, then
    "fin" or "rst" or "hold"."""
    def handler(conn: socket.socket) -> None:
        peer = TlsPeer(conn, context, None)
        try:
            flight = peer.server_flight()
        except (ssl.SSLError, ConnectionError):
            return
        conn.sendall(flight[:keep])
        if then == "rst":
            rst(conn)
            return
        if then == "fin":
            conn.shutdown(socket.SHUT_WR)
        wait_until_closed(conn, 5)
    return handler


def lazily_broken(der: bytes) -> bytes:
    """``der`` with one bit flipped where cryptography still loads the certificate but a
    field fails when it is read (it parses lazily), and OpenSSL still reads the chain: the
    kind of certificate that once reached an internal error (found by the TLS fuzzer)."""
    from cryptography import x509

    for i in range(len(der)):
        bad = bytearray(der)
        bad[i] ^= 1
        try:
            cert = x509.load_der_x509_certificate(bytes(bad))
        except Exception:  # refused at once: not this kind
            continue
        try:
            cert.extensions  # noqa: B018 - reading is the test
            cert.public_key()
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
        except Exception:
            return bytes(bad)
    raise AssertionError("no lazily broken variant of this certificate")


def corrupted_certificate(context: ssl.SSLContext, leaf_der: bytes) -> Callable[[socket.socket],
                                                                                    None]:
    """A real TLS 1.2 handshake whose first flight carries the leaf certificate with one bit
    flipped (a TLS 1.2 Certificate message is in clear, RFC 5246 §7.4.2)."""
    broken = lazily_broken(leaf_der)

    def handler(conn: socket.socket) -> None:
        peer = TlsPeer(conn, context, None)
        try:
            flight = peer.server_flight()
        except (ssl.SSLError, ConnectionError):
            return
        assert leaf_der in flight, "the leaf is not in the first flight (TLS 1.2 only)"
        conn.sendall(flight.replace(leaf_der, broken))
        wait_until_closed(conn, 5)
    return handler
