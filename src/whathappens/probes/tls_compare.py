"""TLS 1.2 against TLS 1.3, measured: two fresh, real handshakes with the journey's server.

After the journey, two more connections go to the *same IP address* the journey connected
to, one after the other: TCP connect + a full handshake offering only TLS 1.2 (maximum 1.2),
then TCP connect + a full handshake offering only TLS 1.3 (minimum 1.3). Each uses a context
of its own and offers no session, so neither is resumed. Both run through ``net/tcp.py`` and
``net/tls.py`` into a throwaway :class:`Journey` that shares the journey's clock, so every time
is in ms since the journey's t0 — and none of it touches the journey's spans, total or HAR.

What is reported per version: whether the server accepted it (a server that refuses one of the
two is a normal result), the TCP connect time, the handshake time (ClientHello written →
handshake complete), the round trips the client waited for (counted from the message
timeline: each time the client, having sent, had to wait for the server's next flight — 2 for
a full TLS 1.2 handshake, 1 for TLS 1.3, one more after a HelloRetryRequest), the kernel's
RTT from TCP_INFO, the cipher, the key-exchange group and the messages in order.

A modelled line sits next to the measured difference, and says it is modelled: what the
difference in round trips alone would cost (Δ round trips × RTT). On loopback that is
microseconds and the rest is CPU; on a 40 ms link it is the whole story.

This module makes the connections and reads the throwaway journey back; the arithmetic
(round trips, waits, the median of the rounds, the modelled saving) is
``whathappens.analysis.tls_versions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from whathappens.analysis.tls_versions import (
    count_round_trips,
    flights,
    median_sample,
    model,
    waits,
)
from whathappens.clock import CLOCK_NAME, Clock, ms
from whathappens.contract.codec import from_json
from whathappens.contract.document import TlsCompare
from whathappens.contract.facts import TcpConnectFacts, TcpFacts, TlsFacts
from whathappens.errors import JourneyError
from whathappens.journey import Journey, Span
from whathappens.net.stream import PlainStream
from whathappens.net.tcp import connect, tcp_info
from whathappens.net.tls import TlsOptions, TlsStream, handshake

__all__ = ["VERSIONS", "compare_after_journey", "compare_tls"]

# label → (minimum, maximum) offered, what the offer is called
VERSIONS: dict[str, tuple[ssl.TLSVersion | None, ssl.TLSVersion | None, str]] = {
    "1.2": (None, ssl.TLSVersion.TLSv1_2, "TLS 1.2 at most (maximum 1.2)"),
    "1.3": (ssl.TLSVersion.TLSv1_3, None, "TLS 1.3 only (minimum 1.3)"),
}

HANDSHAKE_INCLUDES = ("from the moment OpenSSL wrote our ClientHello to the moment the handshake "
                      "was complete on our side (our last handshake message handed to the "
                      "kernel): the round trips, the server's and our own cryptography "
                      "(key exchange, signature, certificate verification) and the event "
                      "loop's scheduling. Not included: TCP connect, and building the TLS "
                      "context and loading the trust store (context_setup_ms)")

# OpenSSL reasons that mean "no version in common" rather than some other failure.
_VERSION_REASONS = ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE",
                    "WRONG_SSL_VERSION", "VERSION_TOO_LOW", "VERSION_TOO_HIGH",
                    "TLSV1_ALERT_PROTOCOL_VERSION")


# ------------------------------------------------------------------- one version
def _refusal(err: JourneyError) -> bool:
    """Did the server (or our own OpenSSL) decline the version, as opposed to another failure?"""
    if err.code == "tls.eof":
        return True  # closed on our ClientHello: what servers without that version often do
    text = f"{err.message} {err.detail or ''}".upper()
    if err.code == "tls.alert":
        return ("PROTOCOL_VERSION" in text or "HANDSHAKE_FAILURE" in text
                or "INSUFFICIENT_SECURITY" in text)
    return err.code == "tls.handshake_failed" and any(r in text for r in _VERSION_REASONS)


def _plain(label: str, outcome: str, reason: str | None, measured: dict[str, Any]) -> str:
    if outcome == "measured":
        rt = measured.get("round_trips")
        return (f"The server accepted TLS {label}: handshake {measured.get('handshake_ms')} ms, "
                f"{rt} round trip{'s' if rt != 1 else ''} waited for.")
    if outcome == "refused":
        return (f"The server did not accept TLS {label}: {reason} This is a normal result: "
                f"many servers are set up to speak only TLS 1.3, or only up to TLS 1.2.")
    if outcome == "tcp_failed":
        return f"No TLS {label} handshake: the TCP connection itself failed: {reason}"
    return f"The TLS {label} handshake could not be measured: {reason}"


def _base(label: str) -> dict[str, Any]:
    return {"version": label, "offered": VERSIONS[label][2], "accepted": None,
            "outcome": "failed", "plain": "", "error": None,
            "negotiated_version": None, "cipher": None, "group": None, "alpn": None,
            "session_reused": None, "hello_retry_request": None,
            "tcp_connect_ms": None, "handshake_ms": None, "step_ms": None,
            "context_setup_ms": None, "handshake_includes": HANDSHAKE_INCLUDES,
            "round_trips": None, "waits_ms": [], "flights": [], "kernel_rtt_ms": None,
            "kernel_rttvar_ms": None, "kernel_rtt_after_handshake_ms": None,
            "started_ms": None, "ended_ms": None, "messages": []}


async def _connect_and_handshake(j: Journey, address: str, port: int, server_name: str,
                                 sni: bool, opts: TlsOptions, timeout: float,
                                 held: list[socket.socket | TlsStream],
                                 out: dict[str, Any]) -> None:
    with j.timed("tcp", "tcp", "you", "transport", TcpFacts()) as tcp_span:
        v6, v4 = ([address], []) if ":" in address else ([], [address])
        c = await connect(j, tcp_span, v6, v4, port, timeout)
    held.append(c.sock)
    plain = PlainStream(c.sock)
    with j.timed("tls", "tls", f"server {c.remote}", "transport", TlsFacts()) as tls_span:
        tls = await handshake(j, tls_span, plain, server_name, sni, opts)
    held.append(tls)
    after = tcp_info(c.sock)
    out["kernel_rtt_after_handshake_ms"] = None if after is None else after.rtt_ms


def _read_back(j: Journey, out: dict[str, Any]) -> None:
    """Fill ``out`` from the throwaway journey's spans."""
    tcp = next((s for s in j.spans if s.name == "tcp"), None)
    tls = next((s for s in j.spans if s.name == "tls"), None)
    starts = [s.start_ns for s in j.spans]
    ends = [s.end_ns for s in j.spans if s.end_ns is not None]
    out["started_ms"] = ms(min(starts)) if starts else None
    out["ended_ms"] = ms(max(ends)) if ends else None
    attempt: Span[TcpConnectFacts] | None = (tcp.children[0] if tcp is not None
                                             and tcp.children else None)
    if attempt is not None and attempt.error is None and attempt.end_ns is not None:
        out["tcp_connect_ms"] = ms(attempt.duration_ns)
        info = attempt.facts.tcp_info
        out["kernel_rtt_ms"] = info.rtt_ms if info else None
        out["kernel_rttvar_ms"] = info.rttvar_ms if info else None
    if tls is None:
        return
    a = tls.facts
    msgs: list[dict[str, Any]] = [{"direction": m.direction, "t_ms": m.t_ms, "type": m.type,
                                   "bytes": m.bytes} for m in a.messages]
    hello = next((m["t_ms"] for m in msgs if m.get("type") == "client_hello"
                  and m.get("direction") == "sent"), None)
    for m in msgs:
        m["since_client_hello_ms"] = (None if hello is None or m.get("t_ms") is None
                                      else round(float(m["t_ms"]) - float(hello), 3))
    out.update(messages=msgs, flights=flights(msgs), cipher=a.cipher, group=a.group,
               alpn=a.alpn, negotiated_version=a.version, session_reused=a.session_reused,
               hello_retry_request=a.hello_retry_request,
               context_setup_ms=a.context_setup_ms, step_ms=ms(tls.duration_ns))
    if tls.error is None and tls.end_ns is not None and hello is not None:
        out["handshake_ms"] = round(tls.end_ns / 1e6 - float(hello), 3)
        out["round_trips"] = count_round_trips(msgs)
        out["waits_ms"] = waits(msgs)


async def _measure_version(label: str, address: str, port: int, server_name: str, sni: bool,
                           opts: TlsOptions, clock: Clock, timeout: float) -> dict[str, Any]:
    low, high, _ = VERSIONS[label]
    vopts = TlsOptions(cafile=opts.cafile, insecure=opts.insecure, alpn=opts.alpn,
                       timeout=timeout, max_version=high, min_version=low)
    j = Journey(url=f"tls-compare {label} {server_name}", clock=clock)
    out = _base(label)
    held: list[socket.socket | TlsStream] = []
    err: JourneyError | None = None
    other: str | None = None
    try:
        await asyncio.wait_for(_connect_and_handshake(j, address, port, server_name, sni,
                                                      vopts, timeout, held, out), timeout)
    except JourneyError as e:
        err = e
    except TimeoutError:
        other = f"connect and handshake did not finish within {timeout:g} s"
    except OSError as exc:
        other = f"network error: {exc.strerror or exc}"
    except Exception as exc:  # ours, not the network's: still never the caller's problem
        other = f"unexpected condition ({type(exc).__name__}: {exc})"
    finally:
        for item in reversed(held):
            with contextlib.suppress(Exception):
                item.close()
        for span in j.spans:
            if span.end_ns is None:
                j.end(span)
            j.close_open(span)
    _read_back(j, out)
    tcp_failed = out["tcp_connect_ms"] is None
    if err is None and other is None:
        outcome, reason = "measured", None
        out["accepted"] = True
    elif err is not None:
        reason = err.message
        out["error"] = {"code": err.code, "message": err.message}
        if err.step == "tcp" or tcp_failed:
            outcome = "tcp_failed"
        elif _refusal(err):
            outcome = "refused"
            out["accepted"] = False
        else:
            outcome = "failed"
            # e.g. a certificate problem: the server did agree on the version first
            out["accepted"] = True if out["negotiated_version"] else None
    else:
        reason = other
        code = "tls_compare.timeout" if other and other.startswith("connect and") else \
            "tls_compare.error"
        out["error"] = {"code": code, "message": str(other)}
        outcome = "tcp_failed" if tcp_failed else "failed"
    if outcome == "refused" and not str(reason).endswith("."):
        reason = f"{reason}."
    out["outcome"] = outcome
    out["plain"] = _plain(label, outcome, reason, out)
    return out


# ------------------------------------------------------------------------ the pair
async def compare_tls(address: str, port: int, server_name: str, opts: TlsOptions, *,
                      timeout: float, clock: Clock | None = None,
                      sni: bool = True, rounds: int = 3) -> dict[str, Any]:
    """Fresh connections to ``address``:``port``, TLS 1.2 and TLS 1.3, one after the other.

    ``rounds`` rounds, the order alternating (1.2 then 1.3, then 1.3 then 1.2, …); a version
    the server refused is not asked again. One full handshake on a loaded machine can be off
    by milliseconds, so each version reports its median sample and lists every sample.

    ``opts`` gives the trust (cafile, -k) and the ALPN offer; its version bounds are replaced.
    Each connection (TCP + handshake) is bounded by ``timeout`` seconds and always closed.
    Never raises for network trouble: each version carries its own outcome and error. Times
    are ms since ``clock``'s t0 (pass the journey's clock to put them on its timeline).
    """
    clock = clock or Clock()
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label in VERSIONS}
    for i in range(max(rounds, 1)):
        # Alternate the order, so neither version always runs on a warmer server.
        for label in list(VERSIONS) if i % 2 == 0 else list(reversed(VERSIONS)):
            done = samples[label]
            if done and done[-1]["outcome"] != "measured":
                continue  # refused or failed: asking again would only repeat the answer
            done.append(await _measure_version(label, address, port, server_name, sni, opts,
                                               clock, timeout))
    results = [median_sample(samples[label]) for label in VERSIONS]
    v12, v13 = results
    return {"measured": True, "address": address, "port": port, "server_name": server_name,
            "sni": sni, "clock": CLOCK_NAME, "timeout_s": timeout, "rounds": rounds,
            "how": f"fresh connections after the journey, to the address it connected to, one "
                   f"after the other, {rounds} round(s) in alternating order: TLS 1.2 (maximum "
                   "1.2) and TLS 1.3 (minimum 1.3); a new TLS context each, no session offered "
                   "(no resumption); each version's figures are its median sample",
            "versions": results, "model": model(v12, v13)}


# ------------------------------------------------------------- after a journey
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _target(journey: Journey) -> tuple[str, int, str, bool, tuple[str, ...] | None] | str:
    """The https connection the journey made last: (address, port, name, sni, alpn), or why
    there is none."""
    legs = [s for s in journey.spans if s.name == "leg"]
    for leg in reversed(legs):
        origin = leg.facts.origin
        if not origin.startswith("https://"):
            continue
        host = urlsplit(origin).hostname or ""
        quic = next((c for c in leg.children if c.name == "quic"), None)
        if quic is not None and quic.error is None and quic.facts.address:
            # HTTP/3 carried this leg: TLS over TCP is compared at the same address, on the
            # origin's own TCP port (QUIC's may be an Alt-Svc port, and is UDP), with our
            # usual ALPN offer (h3 is QUIC's alone).
            return (quic.facts.address, urlsplit(origin).port or 443, quic.facts.sni or host,
                    not _is_ip(host), None)
        tcp = next((c for c in leg.children if c.name == "tcp"), None)
        if tcp is None or tcp.error is not None or not tcp.facts.address:
            continue
        tls = next((c for c in leg.children if c.name == "tls"), None)
        tfacts = tls.facts if tls is not None else TlsFacts()
        name = tfacts.sni or host
        alpn = tfacts.alpn_offered
        port = tcp.facts.port or urlsplit(origin).port or 443
        return (tcp.facts.address, port, name, not _is_ip(host),
                tuple(alpn) if alpn else None)
    if any(leg.facts.origin.startswith("https://") for leg in legs):
        return "the journey never completed a connection to an https server"
    return "the journey made no https connection (TLS is only compared for https URLs)"


async def compare_after_journey(
        journey: Journey, opts: TlsOptions, *, timeout: float = 10.0,
        address_policy: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """Compare TLS 1.2 with 1.3 against the server the journey reached; store and return it.

    Uses the journey's last https connection (its IP address, port and server name, the same
    ALPN offer) and the journey's clock; the result goes to ``journey.facts.tls_compare``.
    No span is added, so the journey's total, its HAR and its steps are unchanged. Never raises
    for network trouble; when there is nothing to compare, says why (``measured: false``).

    ``opts`` is the journey's ``TlsOptions`` (its trust and ALPN offer). ``timeout`` bounds
    each connection (TCP + handshake); ``address_policy`` (the journey's) is asked again
    before any packet is sent.
    """
    target = _target(journey)
    refused = None
    if not isinstance(target, str) and address_policy is not None:
        refused = address_policy(target[0])
    if isinstance(target, str):
        result: dict[str, Any] = {"measured": False, "reason": target}
    elif refused:
        result = {"measured": False, "reason": f"not measured: {refused}"}
    else:
        address, port, name, sni, alpn = target
        use = opts if alpn is None else TlsOptions(
            cafile=opts.cafile, insecure=opts.insecure, alpn=alpn, timeout=opts.timeout)
        try:
            result = await compare_tls(address, port, name, use, timeout=timeout,
                                       clock=journey.clock, sni=sni)
        except Exception as exc:  # a bug of ours must not cost the user the journey
            result = {"measured": False, "reason": f"the comparison failed unexpectedly "
                      f"({type(exc).__name__}: {exc})"}
    journey.facts.tls_compare = from_json(TlsCompare, result)
    return result
