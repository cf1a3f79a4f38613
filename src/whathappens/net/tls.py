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
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    min_version: ssl.TLSVersion | None = None   # e.g. TLS 1.3 only (net/tls_compare.py)


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
        self.obj.write(data)
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


async def handshake(journey: Journey, span: Span, plain: PlainStream, server_name: str,
                    sni: bool, opts: TlsOptions, *, context: ssl.SSLContext | None = None,
                    session: ssl.SSLSession | None = None) -> TlsStream:
    """Run the handshake; fill ``span`` with what was negotiated; raise TlsError on failure."""
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
    span.attrs["session_offered"] = session is not None
    recorder.track(obj)
    trust = opts.cafile or "the system trust store"
    span.attrs.update(sni=server_name if sni else None, alpn_offered=list(opts.alpn),
                      verification="skipped (-k)" if opts.insecure else
                      f"OpenSSL in the handshake, against {trust}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + opts.timeout
    first_flight_ns: int | None = None
    # Like curl's appconnect − connect, the step includes building the context and loading
    # the trust store (OpenSSL's one-time start-up is paid before the journey, as curl pays
    # it in curl_global_init); how long that took is kept apart too.
    span.attrs["context_setup_ms"] = round((journey.clock.now() - span.start_ns) / 1e6, 3)
    try:
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
                    raise TlsError("tls.eof", f"{server_name} closed the connection during the "
                                   "handshake: it may not speak TLS on this port, or it "
                                   "rejected our ClientHello") from None
                if first_flight_ns is None:
                    first_flight_ns = journey.clock.now()
                incoming.write(chunk)
        out = outgoing.read()
        if out:
            await plain.send(out)  # our Finished (and, in TLS 1.2, ChangeCipherSpec)
        journey.end(span)  # describing the chain afterwards is analysis, not handshake
    except ssl.SSLCertVerificationError as exc:
        _record(span, obj, recorder, first_flight_ns)
        journey.end(span)  # re-checking the chain below is our analysis, not the handshake
        from whathappens.net.certs import explain_openssl_verify_error

        code, reason = explain_openssl_verify_error(exc.verify_code, exc.verify_message,
                                                    server_name)
        # OpenSSL's code is coarse (20 covers both an unknown CA and a missing intermediate);
        # the chain the server sent, checked again, tells which.
        verdict = describe_chain(journey, span, _chain(span, recorder), server_name, opts,
                                 verify=True)
        if verdict is not None and not verdict.get("ok"):
            code, reason = str(verdict["code"]), str(verdict["reason"])
        span.attrs["chain_verification"] = {"ok": False, "code": code, "reason": reason,
                                            "by": "OpenSSL in the handshake",
                                            "openssl": f"{exc.verify_message} "
                                                       f"({exc.verify_code})"}
        raise TlsError(f"tls.cert_{code}", f"the certificate of {server_name} was rejected: "
                       f"{reason}", detail=f"OpenSSL: {exc.verify_message} "
                       f"({exc.verify_code})") from None
    except ssl.SSLError as exc:
        _record(span, obj, recorder, first_flight_ns)
        raise _handshake_error(server_name, exc, recorder) from None
    except TlsError:
        _record(span, obj, recorder, first_flight_ns)
        raise
    except TimeoutError:
        _record(span, obj, recorder, first_flight_ns)
        raise TlsError("tls.timeout", f"the TLS handshake with {server_name} did not finish "
                       f"within {opts.timeout:g} s") from None
    except OSError as exc:
        _record(span, obj, recorder, first_flight_ns)
        raise TlsError("tls.connection_lost", f"the connection broke during the TLS "
                       f"handshake: {exc.strerror or exc}") from None
    _record(span, obj, recorder, first_flight_ns)
    if not opts.insecure:
        span.attrs["chain_verification"] = {"ok": True, "code": "ok",
                                            "reason": "trusted: chain and name verified",
                                            "by": "OpenSSL in the handshake"}
    stream = TlsStream(plain, obj, incoming, outgoing)
    stream.chain = _chain(span, recorder)
    return stream


def _handshake_error(server_name: str, exc: ssl.SSLError,
                     recorder: tlsmsg.HandshakeRecorder) -> TlsError:
    alert = next((a for a in reversed(recorder.alerts) if a.direction == "received"), None)
    reason = exc.reason or str(exc)
    if alert is not None:
        return TlsError("tls.alert", f"{server_name} ended the handshake with the alert "
                        f"'{alert.description}': it would not agree to our offer "
                        f"(OpenSSL: {reason})", detail=str(exc))
    if "WRONG_VERSION_NUMBER" in str(reason).upper():
        return TlsError("tls.not_tls", f"{server_name} did not answer in TLS: the port "
                        "probably speaks plain HTTP or another protocol", detail=str(exc))
    return TlsError("tls.handshake_failed", f"the TLS handshake with {server_name} failed: "
                    f"{reason}", detail=str(exc))


def _events(recorder: tlsmsg.HandshakeRecorder) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in recorder.events:
        item: dict[str, Any] = {"direction": e.direction, "t_ms": round(e.t_ns / 1e6, 3)}
        if isinstance(e, tlsmsg.HandshakeMessage):
            item.update(type=e.type_name, bytes=e.length)
        elif isinstance(e, tlsmsg.Alert):
            item.update(type=f"alert {e.level} {e.description}")
        else:
            item.update(type="change_cipher_spec")
        out.append(item)
    return out


def _record(span: Span, obj: ssl.SSLObject, recorder: tlsmsg.HandshakeRecorder,
            first_flight_ns: int | None) -> None:
    # The handshake is over (or failed): stop the message callback. Left on, OpenSSL would
    # call it for every record of the body too, and its cost would be counted as download.
    obj.context._msg_callback = None  # type: ignore[attr-defined]
    attrs: dict[str, Any] = {
        "server_first_flight_ms": None if first_flight_ns is None
        else round(first_flight_ns / 1e6, 3),
        "messages": _events(recorder)}
    try:
        cipher = obj.cipher()
    except (ssl.SSLError, ValueError):
        cipher = None
    if cipher is not None:
        attrs.update(version=obj.version(), cipher=cipher[0], cipher_bits=cipher[2],
                     alpn=obj.selected_alpn_protocol(), session_reused=obj.session_reused)
    hello = recorder.server_hello
    if hello is not None:
        with contextlib.suppress(tlsmsg.TlsParseError):
            info = tlsmsg.parse_server_hello(hello)
            attrs["group"] = info.key_share_group
    attrs["hello_retry_request"] = recorder.hello_retry_request is not None
    if attrs.get("group") is None and recorder.server_key_exchange is not None and \
            "ECDHE" in str(attrs.get("cipher", "")):
        with contextlib.suppress(tlsmsg.TlsParseError):
            attrs["group"] = tlsmsg.parse_server_key_exchange_group(
                recorder.server_key_exchange)
    span.attrs.update(attrs)


def _chain(span: Span, recorder: tlsmsg.HandshakeRecorder) -> list[bytes]:
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
        span.attrs["chain_error"] = str(exc)
        return []


def describe_chain(journey: Journey, span: Span, chain: list[bytes], server_name: str,
                   opts: TlsOptions, *, verify: bool | None = None) -> dict[str, Any] | None:
    """Describe the chain in the span; with -k, verify it and warn when it is not trusted.

    This is analysis, run after the network steps: it needs ``cryptography``, whose import
    would otherwise sit between the handshake and the request.
    """
    from whathappens.net import certs

    if not chain:
        return None
    now = datetime.now(UTC)
    span.attrs["chain"] = [certs.describe_certificate(der, now) for der in chain]
    if not (opts.insecure if verify is None else verify):
        return None
    v = certs.verify_chain(chain, server_name, cafile=opts.cafile, now=now)
    verdict = {"ok": v.ok, "code": v.code, "reason": v.reason,
               "by": "cryptography's X.509 verifier, after the handshake (-k)"}
    span.attrs["chain_verification"] = verdict
    if not v.ok and opts.insecure:
        journey.note("warning", "tls", "certificate not trusted, continuing because of -k: "
                     f"{v.reason}")
    return verdict
