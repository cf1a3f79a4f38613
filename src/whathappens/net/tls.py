"""TLS: the handshake over our own TCP socket, message by message, and the encrypted stream.

OpenSSL runs on memory buffers (``ssl.MemoryBIO`` + ``SSLObject``) while we move the bytes
ourselves. That is what lets the report say when the ClientHello left, when the server's first
flight arrived and when each handshake message was processed (through OpenSSL's message
callback), and count every byte on the wire. Verification is OpenSSL's own, in the handshake,
against the system trust store or ``--cacert``, as curl and browsers do. With ``-k`` the
handshake does not verify; the chain is then checked afterwards so the report can still say
what is wrong with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from whathappens.contract.facts import ChainVerification, TlsFacts, TlsMessage
from whathappens.errors import TlsError
from whathappens.journey import Journey, Span
from whathappens.net import budget, tlsmsg
from whathappens.net.stream import PlainStream

READ_CHUNK = 65536


@dataclass
class TlsOptions:
    cafile: str | None = None
    insecure: bool = False                      # -k
    alpn: tuple[str, ...] = ("h2", "http/1.1")
    timeout: float = 10.0
    max_version: ssl.TLSVersion | None = None   # to compare TLS 1.2 with 1.3
    min_version: ssl.TLSVersion | None = None   # e.g. TLS 1.3 only (probes/tls_compare.py)


class TlsStream:
    """Application data through an established SSLObject, over a PlainStream."""

    def __init__(self, plain: PlainStream, obj: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO) -> None:
        self.plain, self.obj, self.incoming, self.outgoing = plain, obj, incoming, outgoing
        self.app_sent = 0
        self.app_received = 0
        self._eof = False
        self._pending: TlsStreamError | None = None
        self.close_notify = False  # the server ended the stream with a close_notify alert
        self.ragged_eof = False    # ...or with a TCP FIN and no close_notify
        self.chain: list[bytes] = []   # DER, as the server sent it; described after the journey

    @property
    def wire_sent(self) -> int:
        return self.plain.wire_sent

    @property
    def wire_received(self) -> int:
        return self.plain.wire_received

    @property
    def closed(self) -> bool:
        return self.plain.closed

    async def _flush(self) -> None:
        data = self.outgoing.read()
        if data and not self.plain.closed:
            await self.plain.send(data)

    async def send(self, data: bytes) -> None:
        if self._eof or self._pending is not None:
            # The server has ended the stream (close_notify, FIN) or broken it (an alert
            # not yet reported): writing cannot work, and the read that follows says why.
            raise BrokenPipeError("the server has closed the TLS stream")
        try:
            self.obj.write(data)
        except ssl.SSLError as exc:
            raise TlsStreamError(exc) from None
        self.app_sent += len(data)
        await self._flush()

    async def recv(self, max_bytes: int, timeout: float) -> bytes:
        """Up to ``max_bytes`` of decrypted data; waits only when none is buffered.

        ``b""`` is the end of the stream: the server's close_notify (RFC 8446 §6.1), or its
        TCP FIN without one (``ragged_eof`` says which). Whether that end cuts the response
        short is for the HTTP layer's framing to decide, as RFC 9112 §9.8 says. A TLS error
        after some data (an alert, a corrupt record) is raised on the next call, so the data
        before it is not lost.
        """
        if self._pending is not None:
            error, self._pending = self._pending, None
            raise error
        out = bytearray()
        pace = budget.current()
        while len(out) < max_bytes:
            try:
                # One call returns at most one TLS record; keep going while records are
                # already here, so a large body does not cost a trip through asyncio each.
                data = self.obj.read(max_bytes - len(out))
            except ssl.SSLWantReadError:
                if out or self._eof:
                    break
                chunk = await self.plain.recv(READ_CHUNK, timeout)
                if not chunk:
                    self._eof = True
                    self.incoming.write_eof()
                else:
                    self.incoming.write(chunk)
                continue
            except ssl.SSLZeroReturnError:
                self._eof = self.close_notify = True
                break
            except ssl.SSLEOFError:
                self._eof = self.ragged_eof = True
                break
            except ssl.SSLError as exc:
                error = TlsStreamError(exc)
                if out:
                    self._pending = error
                    break
                raise error from None
            if not data:
                # After a close_notify OpenSSL answers every read with b"" (SSL_read
                # returns 0): the end of the stream, not "try again".
                self._eof = self.close_notify = True
                break
            out += data
            pace.count("tls.record")
        await self._flush()  # e.g. a KeyUpdate answer
        self.app_received += len(out)
        return bytes(out)

    def poll_idle(self) -> tuple[int, bool]:
        """Take in, without waiting, what arrived while the connection was idle: TLS 1.3
        session tickets are expected there (RFC 8446 §4.6.1) and consumed; application data
        or the end of the stream is what is reported."""
        if self._eof or self._pending is not None:
            return 0, True
        unread = 0
        while True:
            try:
                chunk = self.plain.sock.recv(READ_CHUNK, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return unread, True
            if not chunk:
                self.incoming.write_eof()
                self._eof = True
                break
            self.plain.wire_received += len(chunk)
            self.incoming.write(chunk)
        while True:
            try:
                data = self.obj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                return unread, self._eof
            except ssl.SSLError:
                return unread, True
            if not data:
                return unread, True
            unread += len(data)

    def close(self) -> None:
        if not self.plain.closed:
            with contextlib.suppress(ssl.SSLError, ValueError):
                self.obj.unwrap()
            out = self.outgoing.read()
            if out:
                with contextlib.suppress(OSError):
                    self.plain.sock.send(out)  # best effort close_notify, never blocks long
        self.plain.close()


def alert_words(exc: ssl.SSLError) -> str:
    """An OpenSSL error as a sentence: which alert the peer sent, or what was wrong with the
    records, without OpenSSL's source file and line (``(_ssl.c:2580)``)."""
    reason = str(exc.reason or "").upper()
    for prefix in ("TLSV1_ALERT_", "SSLV3_ALERT_", "TLSV13_ALERT_"):
        if reason.startswith(prefix):
            name = reason[len(prefix):].lower()
            return f"the server sent the TLS alert '{name}' (RFC 8446 §6)"
    known = {
        "WRONG_VERSION_NUMBER": "a record that is not TLS (its header is not a TLS version)",
        "DECRYPTION_FAILED_OR_BAD_RECORD_MAC": "a record that failed decryption (corrupted "
                                               "or forged)",
        "BAD_RECORD_MAC": "a record that failed its integrity check (corrupted or forged)",
        "RECORD_LAYER_FAILURE": "records that break the TLS record layer",
        "EXCESSIVE_MESSAGE_SIZE": "a TLS message larger than TLS allows",
        "PACKET_LENGTH_TOO_LONG": "a record longer than TLS allows (RFC 8446 §5.1)",
        "DATA_LENGTH_TOO_LONG": "a record longer than TLS allows (RFC 8446 §5.1)",
        "RECORD_OVERFLOW": "a record longer than TLS allows (RFC 8446 §5.2)",
        "UNEXPECTED_MESSAGE": "a TLS message that was not expected at that point",
        "UNEXPECTED_RECORD": "a TLS record that was not expected at that point",
        "UNEXPECTED_EOF_WHILE_READING": "the end of the connection in the middle of a record",
        "BAD_LENGTH": "a TLS message whose length is wrong",
        "BAD_DECRYPT": "a record that failed decryption",
        "INVALID_CT_ALLOWED_VALUE": "a record of an unknown content type",
        "BAD_RECORD_TYPE": "a record of an unknown content type (RFC 8446 §5.4)",
        "UNKNOWN_ALERT_TYPE": "an alert of an unknown type",
        "NO_RENEGOTIATION": "a renegotiation request, which we refuse",
        "INVALID_ALERT": "a malformed TLS alert",
        "BAD_PACKET_LENGTH": "a record whose length is wrong",
        "TOO_MANY_WARN_ALERTS": "too many warning alerts",
        "TOO_MANY_KEY_UPDATES": "too many KeyUpdate messages",
    }
    if reason in known:
        return f"the server sent {known[reason]}"
    words = reason.replace("_", " ").lower() if reason else "an error"
    return f"the TLS layer failed: {words}"


class TlsStreamError(ConnectionError):
    """A TLS failure after the handshake, in words (``alert_words``); the OpenSSL error is
    kept as ``__cause__``-free ``detail`` for the JSON."""

    def __init__(self, exc: ssl.SSLError) -> None:
        super().__init__(alert_words(exc))
        self.words = alert_words(exc)
        self.detail = str(exc)


def make_context(opts: TlsOptions) -> ssl.SSLContext:
    if opts.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=opts.cafile)
    ctx.set_alpn_protocols(list(opts.alpn))
    if opts.max_version is not None:
        ctx.maximum_version = opts.max_version
    if opts.min_version is not None:
        ctx.minimum_version = opts.min_version
    return ctx


async def handshake(journey: Journey, span: Span[TlsFacts], plain: PlainStream, server_name: str,
                    sni: bool, opts: TlsOptions, *, context: ssl.SSLContext | None = None,
                    session: ssl.SSLSession | None = None) -> TlsStream:
    """Run the handshake; fill ``span`` with what was negotiated; raise TlsError on failure.

    Every failure says what the server did, in words: which alert it sent and what that
    alert means (RFC 8446 §6.2), what it answered instead of TLS, how far its handshake had
    come when it closed, reset or stalled, or what was wrong with its records or messages.
    OpenSSL's own text stays in the error's ``detail``.
    """
    try:
        ctx = context or make_context(opts)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError("tls.trust_store", f"cannot load the CA certificates "
                       f"{opts.cafile or 'of the system'}: {exc}") from None
    recorder = tlsmsg.HandshakeRecorder(journey.clock.now)
    recorder.install(ctx)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    # Offering a session from an earlier connection to this server asks for an abbreviated
    # handshake (RFC 5246 §7.3 session resumption; RFC 8446 §2.2 PSK): no certificate sent.
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_name,
                       session=session)
    span.facts.session_offered = session is not None
    recorder.track(obj)
    trust = opts.cafile or "the system trust store"
    span.facts.sni = server_name if sni else None
    span.facts.alpn_offered = list(opts.alpn)
    span.facts.verification = ("skipped (-k)" if opts.insecure else
                               f"OpenSSL in the handshake, against {trust}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    heard = _Heard(started)
    pace = budget.current()
    pace.waiting_for = heard.waiting_for
    # Like curl's appconnect − connect, the step includes building the context and loading
    # the trust store (OpenSSL's one-time start-up is paid before the journey, as curl pays
    # it in curl_global_init); how long that took is kept apart too.
    span.facts.context_setup_ms = round((journey.clock.now() - span.start_ns) / 1e6, 3)
    try:
        await _drive(journey, obj, plain, incoming, outgoing, heard, started + opts.timeout,
                     server_name)
        pace.waiting_for = None
        journey.end(span)  # describing the chain afterwards is analysis, not handshake
    except ssl.SSLCertVerificationError as exc:
        _record(span, obj, recorder, heard.first_ns)
        journey.end(span)  # re-checking the chain below is our analysis, not the handshake
        raise _rejected(journey, span, recorder, exc, server_name, opts) from None
    except ssl.SSLError as exc:
        _record(span, obj, recorder, heard.first_ns)
        raise _handshake_error(server_name, exc, recorder, heard, opts) from None
    except TlsError:
        _record(span, obj, recorder, heard.first_ns)
        raise
    except TimeoutError:
        _record(span, obj, recorder, heard.first_ns)
        raise TlsError("tls.timeout", f"the TLS handshake with {server_name} did not finish "
                       f"within {opts.timeout:g} s: "
                       f"{heard.stalled_words(loop.time())}") from None
    except OSError as exc:
        _record(span, obj, recorder, heard.first_ns)
        raise TlsError("tls.connection_lost", _broken_words(server_name, exc, heard),
                       detail=str(exc)) from None
    _record(span, obj, recorder, heard.first_ns)
    if not opts.insecure:
        span.facts.chain_verification = ChainVerification(
            ok=True, code="ok", reason="trusted: chain and name verified",
            by="OpenSSL in the handshake")
    stream = TlsStream(plain, obj, incoming, outgoing)
    stream.chain = _chain(span, recorder)
    return stream


async def _drive(journey: Journey, obj: ssl.SSLObject, plain: PlainStream,
                 incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, heard: _Heard,
                 deadline: float, server_name: str) -> None:
    """Move the handshake's bytes between OpenSSL and the socket until it completes."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            out = outgoing.read()
            if out:
                await plain.send(out)
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError from None
            chunk = await plain.recv(READ_CHUNK, left)
            if not chunk:
                raise TlsError("tls.eof", _eof_words(server_name, heard)) from None
            if heard.first_ns is None:
                heard.first_ns = journey.clock.now()
            heard.add(chunk, loop.time())
            incoming.write(chunk)
    out = outgoing.read()
    if out:
        await plain.send(out)  # our Finished (and, in TLS 1.2, ChangeCipherSpec)


def _rejected(journey: Journey, span: Span[TlsFacts], recorder: tlsmsg.HandshakeRecorder,
              exc: ssl.SSLCertVerificationError, server_name: str,
              opts: TlsOptions) -> TlsError:
    """OpenSSL rejected the certificate: say why, in words, from the chain itself."""
    from whathappens.net.certs import explain_openssl_verify_error

    chain = _chain(span, recorder)
    code, reason = explain_openssl_verify_error(exc.verify_code, exc.verify_message,
                                                server_name, chain=chain)
    # OpenSSL's code is coarse (20 covers both an unknown CA and a missing intermediate);
    # the chain the server sent, checked again, tells which. When that check only passes on
    # its library's words ("other"), OpenSSL's code, in words, says more.
    verdict = describe_chain(journey, span, chain, server_name, opts, verify=True)
    if verdict is not None and not verdict.ok and (verdict.code != "other" or code == "other"):
        code, reason = verdict.code, verdict.reason
    span.facts.chain_verification = ChainVerification(
        ok=False, code=code, reason=reason, by="OpenSSL in the handshake",
        openssl=f"{exc.verify_message} ({exc.verify_code})")
    return TlsError(f"tls.cert_{code}", f"the certificate of {server_name} was rejected: "
                    f"{reason}", detail=f"OpenSSL: {exc.verify_message} ({exc.verify_code})")


class _Heard:
    """What the server sent during the handshake: how many bytes, when the last came, and
    its first bytes (to tell what it speaks when it does not speak TLS)."""

    KEEP = 4096

    def __init__(self, started: float) -> None:
        self.started = started
        self.count = 0
        self.first = b""
        self.last: float | None = None
        self.first_ns: int | None = None  # when the server's first bytes arrived (journey clock)

    def add(self, chunk: bytes, now: float) -> None:
        self.count += len(chunk)
        if len(self.first) < self.KEEP:
            self.first += chunk[:self.KEEP - len(self.first)]
        self.last = now

    def waiting_for(self) -> str:
        if not self.count:
            return "the server's answer to our ClientHello"
        return f"the rest of the server's handshake ({self.count} bytes received)"

    def after(self) -> str:
        """Where the handshake had come to, for a sentence."""
        if not self.count:
            return "right after our ClientHello"
        return f"after sending {self.count} bytes of it"

    def stalled_words(self, now: float) -> str:
        if not self.count or self.last is None:
            return ("the server accepted the connection but sent nothing in answer to our "
                    "ClientHello")
        quiet = now - self.last
        if quiet < 0.5:
            return (f"the server was still sending it, slowly: {self.count} bytes in "
                    f"{now - self.started:.1f} s, a handshake that takes a few kilobytes "
                    "and one or two round trips")
        return f"the server sent {self.count} bytes of it, then nothing for {quiet:.1f} s"


def _eof_words(server_name: str, heard: _Heard) -> str:
    if not heard.count:
        return (f"{server_name} closed the connection during the handshake, right after our "
                "ClientHello and without a word (a TLS server that refuses says why with an "
                "alert first): it may not speak TLS on this port, or it dropped our "
                "ClientHello")
    return (f"{server_name} closed the connection during the handshake, {heard.after()}: "
            "the handshake was cut short")


def _broken_words(server_name: str, exc: OSError, heard: _Heard) -> str:
    if isinstance(exc, ConnectionResetError):
        return (f"{server_name} reset the connection (a TCP RST) during the TLS handshake, "
                f"{heard.after()}")
    return (f"the connection broke during the TLS handshake, {heard.after()}: "
            f"{exc.strerror or type(exc).__name__}")


# What each alert means when a server ends the handshake with it (RFC 8446 §6.2).
_ALERT_MEANINGS = {
    "close_notify": "it closed the connection cleanly before the handshake was over",
    "unexpected_message": "it received a message it did not expect at that point",
    "bad_record_mac": "a record of ours failed its integrity check on its side",
    "record_overflow": "it received a record longer than it accepts",
    "handshake_failure": "we could not agree on how to secure the connection: none of the "
                         "cipher suites, key exchange groups or signature algorithms we "
                         "offered suits it",
    "bad_certificate": "it rejected a certificate",
    "unsupported_certificate": "it rejected a certificate of a type it does not support",
    "certificate_revoked": "it rejected a revoked certificate",
    "certificate_expired": "it rejected an expired certificate",
    "certificate_unknown": "it rejected a certificate",
    "illegal_parameter": "it found a value it does not accept in our ClientHello",
    "unknown_ca": "it does not trust the issuer of a certificate",
    "access_denied": "it refused us access (a policy: our address, our name, the time)",
    "decode_error": "it could not parse a message of ours",
    "decrypt_error": "a signature or a key check failed on its side",
    "protocol_version": "it does not accept the TLS versions we offered ({offered})",
    "insufficient_security": "it requires stronger security than the cipher suites we "
                             "offered",
    "internal_error": "an internal error on its side, unrelated to what we sent",
    "inappropriate_fallback": "it saw a downgrade it refuses (RFC 7507)",
    "user_canceled": "it cancelled the handshake",
    "missing_extension": "our ClientHello lacks an extension it requires",
    "unsupported_extension": "we sent an extension it does not allow there",
    "unrecognized_name": "it does not serve the name we asked for ({sni}) in the SNI "
                         "extension (RFC 6066 §3): a virtual host it does not know",
    "bad_certificate_status_response": "it sent a bad OCSP response",
    "unknown_psk_identity": "it does not know the session we tried to resume",
    "certificate_required": "it requires a client certificate, and we sent none",
    "no_application_protocol": "it supports none of the application protocols we offered "
                               "in ALPN ({alpn})",
}

_OLDEST = "TLS 1.2"


def _offered(opts: TlsOptions) -> str:
    low = opts.min_version or ssl.TLSVersion.TLSv1_2
    high = opts.max_version or ssl.TLSVersion.TLSv1_3
    names = {ssl.TLSVersion.TLSv1_2: "TLS 1.2", ssl.TLSVersion.TLSv1_3: "TLS 1.3"}
    if low == high:
        return f"only {names.get(low, low.name)}"
    return f"{names.get(low, low.name)} to {names.get(high, high.name)}"


def _not_tls(first: bytes) -> str | None:
    """What the server's first bytes are, when they are not a TLS record (RFC 8446 §5.1: a
    content type 20–23, then a version whose first byte is 3)."""
    from whathappens.net.http_types import escaped

    if not first or (len(first) >= 2 and first[0] in (20, 21, 22, 23) and first[1] == 3):
        return None
    line = first.split(b"\n", 1)[0].rstrip(b"\r")
    if first.startswith(b"HTTP/"):
        return (f"it answered in plain HTTP ({escaped(line, 60)}): the port speaks http://, "
                "not https://")
    if first.startswith(b"SSH-"):
        return f"it is an SSH server: it greeted us with {escaped(line, 60)}"
    if line and all(32 <= b < 127 for b in line):
        return f"it answered with text that is not TLS: {escaped(line, 60)}"
    shown = " ".join(f"{b:02x}" for b in first[:8])
    return f"its first bytes ({shown}) are not a TLS record"


def _plain_server_hello(first: bytes) -> tuple[int, int] | None:
    """(version, cipher suite) of a plaintext ServerHello at the start of ``first``
    (RFC 5246 §7.4.1.3: version, 32 random bytes, session id, cipher suite)."""
    if len(first) < 44 or first[0] != 22 or first[5] != 2:
        return None
    sid = first[43]
    if len(first) < 46 + sid:
        return None
    return int.from_bytes(first[9:11], "big"), int.from_bytes(first[44 + sid:46 + sid], "big")


def _handshake_error(server_name: str, exc: ssl.SSLError,
                     recorder: tlsmsg.HandshakeRecorder, heard: _Heard | None = None,
                     opts: TlsOptions | None = None) -> TlsError:
    """The failed handshake in words: the server's alert, what it spoke instead of TLS, or
    what was wrong with its records and messages."""
    from whathappens.net.http_types import size_words

    opts = opts or TlsOptions()
    first = heard.first if heard is not None else b""
    detail = str(exc)
    alert = next((a for a in reversed(recorder.alerts) if a.direction == "received"), None)
    if alert is not None:
        meaning = _ALERT_MEANINGS.get(alert.description, "it gave no more reason")
        meaning = meaning.format(offered=_offered(opts), sni=server_name,
                                 alpn=", ".join(opts.alpn))
        return TlsError("tls.alert", f"{server_name} ended the handshake with the TLS alert "
                        f"'{alert.description}': {meaning}", detail=detail)
    not_tls = _not_tls(first)
    reason = str(exc.reason or "").upper()
    if not_tls is not None or reason == "WRONG_VERSION_NUMBER":
        words = not_tls or "its answer is not a TLS record; the port probably speaks plain " \
                           "HTTP or another protocol"
        return TlsError("tls.not_tls", f"{server_name} did not answer in TLS: {words}",
                        detail=detail)
    hello = _plain_server_hello(first)
    received = [m.type_name for m in recorder.messages if m.direction == "received"]
    if reason in ("PACKET_LENGTH_TOO_LONG", "RECORD_OVERFLOW", "DATA_LENGTH_TOO_LONG",
                  "ENCRYPTED_LENGTH_TOO_LONG"):
        size = int.from_bytes(first[3:5], "big") if len(first) >= 5 else 0
        announced = f" ({size} bytes announced)" if size > 16384 + 256 else ""
        words = (f"sent a record longer than TLS allows{announced}: a record carries at most "
                 "16 KiB (RFC 8446 §5.1)")
    elif reason == "EXCESSIVE_MESSAGE_SIZE":
        if not received and len(first) >= 9 and first[0] == 22:
            kind = tlsmsg.HANDSHAKE_TYPES.get(first[5], f"type {first[5]}")
            words = (f"announced a handshake message ({kind}) of "
                     f"{size_words(int.from_bytes(first[6:9], 'big'))}, larger than any TLS "
                     "client accepts")
        elif "certificate" not in received:
            words = (f"sent a handshake message larger than we accept, after its "
                     f"{received[-1] if received else 'first message'}: its certificate "
                     "chain, which may take at most 100 KiB here (OpenSSL's limit; real "
                     "chains are a few KiB)")
        else:
            words = (f"sent a handshake message larger than we accept, after its "
                     f"{received[-1]}")
    elif reason in ("UNKNOWN_CIPHER_RETURNED", "WRONG_CIPHER_RETURNED"):
        which = f" (0x{hello[1]:04x})" if hello else ""
        words = (f"chose a cipher suite we did not offer{which}, which a server may not do "
                 "(RFC 8446 §4.1.3)")
    elif reason in ("UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION", "VERSION_TOO_LOW",
                    "UNSUPPORTED_SSL_VERSION", "NO_PROTOCOLS_AVAILABLE"):
        if hello is not None and hello[0] < 0x0303:
            words = (f"chose {tlsmsg.version_name(hello[0])}, older than {_OLDEST}, the "
                     "oldest version we accept: TLS 1.0 and 1.1 are deprecated (RFC 8996) "
                     "and SSL 3.0 is broken (RFC 7568)")
        else:
            words = f"wants a TLS version we do not accept (we offered {_offered(opts)})"
    elif reason in ("UNEXPECTED_MESSAGE", "UNEXPECTED_RECORD"):
        where = (" (application data before its ServerHello)"
                 if not received and first[:1] == b"\x17" else "")
        words = f"sent a TLS message that does not belong at that point of the handshake{where}"
    else:
        return TlsError("tls.handshake_failed", f"the TLS handshake with {server_name} "
                        f"failed: {alert_words(exc)}", detail=detail)
    return TlsError("tls.handshake_failed", f"the TLS handshake with {server_name} failed: "
                    f"the server {words}", detail=detail)


def _events(recorder: tlsmsg.HandshakeRecorder) -> list[TlsMessage]:
    out: list[TlsMessage] = []
    for e in recorder.events:
        t_ms = round(e.t_ns / 1e6, 3)
        if isinstance(e, tlsmsg.HandshakeMessage):
            out.append(TlsMessage(direction=e.direction, t_ms=t_ms, type=e.type_name,
                                  bytes=e.length))
        elif isinstance(e, tlsmsg.Alert):
            out.append(TlsMessage(direction=e.direction, t_ms=t_ms,
                                  type=f"alert {e.level} {e.description}"))
        else:
            out.append(TlsMessage(direction=e.direction, t_ms=t_ms, type="change_cipher_spec"))
    return out


def _record(span: Span[TlsFacts], obj: ssl.SSLObject, recorder: tlsmsg.HandshakeRecorder,
            first_flight_ns: int | None) -> None:
    # The handshake is over (or failed): stop the message callback. Left on, OpenSSL would
    # call it for every record of the body too, and its cost would be counted as download.
    obj.context._msg_callback = None  # type: ignore[attr-defined]
    f = span.facts
    f.server_first_flight_ms = (None if first_flight_ns is None
                                else round(first_flight_ns / 1e6, 3))
    f.messages = _events(recorder)
    try:
        cipher = obj.cipher()
    except (ssl.SSLError, ValueError):
        cipher = None
    if cipher is not None:
        f.version, f.cipher, f.cipher_bits = obj.version(), cipher[0], cipher[2]
        f.alpn, f.session_reused = obj.selected_alpn_protocol(), obj.session_reused
    hello = recorder.server_hello
    if hello is not None:
        with contextlib.suppress(tlsmsg.TlsParseError):
            info = tlsmsg.parse_server_hello(hello)
            f.group = info.key_share_group
    f.hello_retry_request = recorder.hello_retry_request is not None
    if f.group is None and recorder.server_key_exchange is not None and \
            "ECDHE" in (f.cipher or ""):
        with contextlib.suppress(tlsmsg.TlsParseError):
            f.group = tlsmsg.parse_server_key_exchange_group(recorder.server_key_exchange)


def _chain(span: Span[TlsFacts], recorder: tlsmsg.HandshakeRecorder) -> list[bytes]:
    """The certificates of the server's Certificate message (RFC 8446 §4.4.2), leaf first."""
    raw = recorder.certificate
    if raw is None:
        return []
    tls13 = False
    if recorder.server_hello is not None:
        with contextlib.suppress(tlsmsg.TlsParseError):
            tls13 = tlsmsg.parse_server_hello(recorder.server_hello).version == 0x0304
    try:
        return tlsmsg.parse_certificate_message(raw, tls13)
    except tlsmsg.TlsParseError as exc:
        span.facts.chain_error = str(exc)
        return []


def describe_chain(journey: Journey, span: Span[TlsFacts], chain: list[bytes],
                   server_name: str, opts: TlsOptions, *,
                   verify: bool | None = None) -> ChainVerification | None:
    """Describe the chain in the span; with -k, verify it and warn when it is not trusted.

    This is analysis, run after the network steps: it needs ``cryptography``, whose import
    would otherwise sit between the handshake and the request.
    """
    from whathappens.net import certs

    if not chain:
        return None
    now = datetime.now(UTC)
    span.facts.chain = [certs.describe_certificate(der, now) for der in chain]
    if not (opts.insecure if verify is None else verify):
        return None
    v = certs.verify_chain(chain, server_name, cafile=opts.cafile, now=now)
    verdict = ChainVerification(ok=v.ok, code=v.code, reason=v.reason,
                                by="cryptography's X.509 verifier, after the handshake (-k)")
    span.facts.chain_verification = verdict
    if not v.ok and opts.insecure:
        journey.note("warning", "tls", "certificate not trusted, continuing because of -k: "
                     f"{v.reason}")
    return verdict
