"""The journey runner: URL → DNS → TCP → TLS → HTTP, redirects followed as a browser does.

Each request is a *leg* (the first one, then one per redirect hop). A leg opens a connection
only when there is no reusable one to its origin (scheme, host, port), so reuse shows as a leg
with no DNS/TCP/TLS of its own. What comes next (which redirect to follow and with which
method, what HSTS upgrades, which connection a leg may reuse) is decided by the pure planner
in ``whathappens.navigation``; the runner is the loop around it: it asks, does the I/O, makes
the spans and feeds the responses back. Failures are ``JourneyError``s raised by the layer
that met them; the runner records them on the journey and stops, keeping every span measured
before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from whathappens.contract.document import Summary
from whathappens.contract.facts import (
    DnsFacts,
    GuardFacts,
    HttpFacts,
    HttpPhaseFacts,
    LegFacts,
    PrepareFacts,
    QuicFacts,
    RedirectFacts,
    RevalidateFacts,
    TcpFacts,
    TlsFacts,
    UrlFacts,
)
from whathappens.cookies import CookieJar, refusals, write_netscape
from whathappens.errors import (
    ConnectError,
    HttpError,
    InternalError,
    JourneyError,
    JourneyTimeout,
    RedirectError,
    TargetRefused,
)
from whathappens.explain.wire import HOST_CACHE_NOTE
from whathappens.journey import Journey, Span
from whathappens.navigation import (
    MAX_REDIRECTS,
    Arrive,
    Hop,
    Navigation,
    OpenNew,
    Policy,
    PooledConnection,
    Response,
    Reuse,
    Stop,
    choose_connection,
)
from whathappens.net import budget as budgets
from whathappens.net.altsvc import Advertised, AltSvcCache, https_record_h3
from whathappens.net.capture import HandshakeCapture, capture_facts
from whathappens.net.dns.host_cache import HostCache
from whathappens.net.dns.views import DnsOptions, Resolution, needs_dnspython, resolve
from whathappens.net.dns.views import prepare as prepare_dns
from whathappens.net.http_types import Exchange, Limits, Request, os_error_words
from whathappens.net.stream import PlainStream, Stream
from whathappens.net.tcp import connect, tcp_info
from whathappens.net.tls import TlsOptions, TlsStream, describe_chain, handshake
from whathappens.url import UrlAnatomy, parse_url, public_suffix_of

if TYPE_CHECKING:
    from aioquic.tls import SessionTicket

    from whathappens.net.http1 import H1Connection
    from whathappens.net.http2 import H2Connection
    from whathappens.net.quic import QuicClient

STEP_SPANS = frozenset({"dns", "tcp", "tls", "http", "quic"})
# How long a forced QUIC attempt waits for any answer to its Initial (aioquic resends it on
# each probe timeout meanwhile, RFC 9002 §6.2.4), when --connect-timeout allows that long.
QUIC_INITIAL_TIMEOUT = 3.0
# --http3=auto: how long QUIC runs alone before TCP starts beside it. Our choice (Chromium
# derives its delay from the RTT it remembers for the server); a QUIC failure starts TCP at once.
QUIC_HEAD_START = 0.25
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0 but tab, DEL, C1


@dataclass
class Options:
    dns: DnsOptions = field(default_factory=DnsOptions)
    tls: TlsOptions = field(default_factory=TlsOptions)
    limits: Limits = field(default_factory=Limits)
    resolve: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # --resolve
    http_version: str | None = None      # "1.1" | "2" | "3" (QUIC, no TCP) | None (ALPN)
    connect_timeout: float = 10.0
    max_time: float = 60.0
    max_redirects: int = MAX_REDIRECTS
    follow_redirects: bool = True
    method: str = "GET"
    headers: list[tuple[str, str]] = field(default_factory=list)
    hsts_upgrade: bool = True
    traceparent: bool = False            # send a W3C traceparent header with each request
    resume: bool = False                 # then connect again, resuming the TLS session
    capture: bool = False                # capture the SYN / SYN-ACK / ACK (root: AF_PACKET)
    # Vets every address before a packet goes to it (whathappens.guard): a reason refuses it.
    address_policy: Callable[[str], str | None] | None = None
    # After the journey, TLS 1.2 vs 1.3 against the same address (facts.tls_compare).
    compare_tls: bool = False
    # CPU, memory and event-count budgets (whathappens.net.budget); max_time is above.
    resources: budgets.ResourceLimits = field(default_factory=budgets.ResourceLimits)
    # After the journey, its final request again with the response's validators
    # (If-None-Match / If-Modified-Since), as a cache revalidates (span "revalidate").
    revalidate: bool = True
    # The request's content (-d, --data-binary …; request_body.py) and the cookie jar
    # (-b/-c; cookies.py): None when the cookie engine is off, as curl's is without -b/-c.
    body: bytes = b""
    cookies: CookieJar | None = None
    cookie_jar_out: str | None = None    # -c FILE: the jar written there after the journey
    qlog: str | None = None              # --qlog FILE: the QUIC connection's qlog
    # "auto" (the default, a browser's choice): HTTP/3 when the HTTPS record or an earlier
    # Alt-Svc advertises it, raced against TCP; "force" is http_version "3"; "off" never tries.
    http3: str = "auto"
    # After the journey, HTTP/1.1 vs HTTP/2 vs HTTP/3 to the same address (facts.http_compare).
    compare_http: bool = False


@dataclass
class _Conn:
    origin: tuple[str, str, int]
    stream: Stream
    plain: PlainStream
    http: H1Connection | H2Connection
    protocol: str             # "HTTP/1.1" | "HTTP/2"
    tcp_span: Span[TcpFacts]
    legs: int = 0

    def facts(self) -> PooledConnection:
        return PooledConnection(self.origin, self.protocol, self.http.reusable,
                                self.stream.closed)


class Runner:
    def __init__(self, journey: Journey, options: Options) -> None:
        self.j = journey
        self.opts = options
        self.pool: dict[tuple[str, str, int], _Conn] = {}
        self.url_span: Span[UrlFacts] | None = None
        self.chains: list[tuple[Span[TlsFacts], list[bytes], str, TlsOptions]] = []
        # One TLS context per set of options, as a browser keeps one: sessions can only be
        # resumed through the context that made them.
        self.tls_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}
        self.tls_sessions: dict[tuple[str, int], ssl.SSLSession] = {}
        # W3C Trace Context (https://www.w3.org/TR/trace-context/): one trace id for the
        # journey, a new parent id per request; servers that log it can be merged in.
        self.trace_id = secrets.token_hex(16) if options.traceparent else None
        if self.trace_id:
            journey.facts.trace_id = self.trace_id
        self.prepared: set[str] = set()
        self.last: tuple[Hop, Exchange] | None = None   # the latest leg's request and answer
        self.addresses: dict[tuple[str, str, int], str] = {}  # origin → address connected to
        self.host_cache = HostCache()
        self.jar = options.cookies      # the journey's cookies, as they stand (RFC 6265)
        self.quic_pool: dict[tuple[str, str, int], QuicClient] = {}
        self.quic_chains: list[tuple[Span[QuicFacts], list[bytes]]] = []
        self.alt_svc = AltSvcCache()
        self.quic_tickets: dict[tuple[str, int], SessionTicket] = {}
        self.resuming = False  # --resume over QUIC: the next QUIC leg offers the ticket
        self.qlogs = 0

    def prepare(self, url: UrlAnatomy) -> None:
        """Load what this leg's network steps will need before the first of them starts.

        Module imports and OpenSSL's one-time start-up cost tens of milliseconds; paid inside
        a step they would be reported as network time. The span makes the cost visible.
        """
        need = []
        lookup = url.host_kind == "domain" and (url.host, url.port) not in self.opts.resolve
        if lookup and needs_dnspython(self.opts.dns):
            need.append("dnspython")
        need.append("h11")
        # --http3=auto loads aioquic only once HTTP/3 is advertised (auto_leg): most
        # journeys never try QUIC and need not pay its import (~140 ms).
        if self._h3(url):
            need.append("aioquic")  # and no OpenSSL, no h2: QUIC carries its own TLS
        elif url.scheme == "https":
            need.append("OpenSSL")
            if self.opts.http_version != "1.1":
                need.append("h2")
        elif self.opts.http_version == "2":
            need.append("h2")
        self.load(need)

    def load(self, need: list[str], leg: Span[LegFacts] | None = None) -> None:
        """Load what is not loaded yet, in a ``prepare`` span of its own (inside ``leg``
        when the leg found out it needs it, e.g. aioquic once HTTP/3 is advertised)."""
        need = list(dict.fromkeys(n for n in need if n not in self.prepared))
        if not need:
            return
        with self.j.timed("prepare", "journey", "whathappens", "application",
                          PrepareFacts(loaded=need, note="loading code the network steps "
                                       "need, so that their times measure the network, not "
                                       "our start-up"), parent=leg):
            for item in need:
                if item == "dnspython":
                    prepare_dns()
                elif item == "h11":
                    from whathappens.net import http1  # noqa: F401
                elif item == "h2":
                    from whathappens.net import http2  # noqa: F401
                elif item == "aioquic":
                    from whathappens.net import quic  # noqa: F401
                    from whathappens.net.udp import keep_stamping

                    keep_stamping()   # the kernel's receive stamps on before any datagram
                else:
                    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # OpenSSL's one-time start-up
                self.prepared.add(item)

    def analyse(self) -> None:
        """Analysis that no packet waits for, done after the network steps."""
        for span, chain, host, opts in self.chains:
            describe_chain(self.j, span, chain, host, opts)
        if self.quic_chains:
            from whathappens.net import quic

            for qspan, der in self.quic_chains:
                quic.describe_chain(qspan, der)
        self.public_suffix()

    def public_suffix(self) -> None:
        """The registrable domain, looked up after the network steps (no packet needs it)."""
        span = self.url_span
        if span is None or span.facts.host_kind != "domain":
            return
        f = span.facts
        f.public_suffix, f.registrable_domain = public_suffix_of(f.host)
        f.public_suffix_note = ("from the public suffix list snapshot, looked up after the "
                                "journey (not part of the URL step's time)")

    # ------------------------------------------------------------------- legs
    async def run(self, url_text: str) -> None:
        """The loop around the navigation planner: ask it, make the request, feed it the
        response, until it says the journey arrived or stops."""
        url = self.url_step(url_text)
        nav = Navigation.start(url, method=self.opts.method, headers=self.opts.headers,
                               body=self.opts.body, policy=Policy(self.opts.max_redirects,
                                             self.opts.follow_redirects,
                                             self.opts.hsts_upgrade))
        while True:
            exchange = await self.leg(nav.hop)
            outcome = nav.after(Response(exchange.status, tuple(exchange.response_headers),
                                         secure=self._verified(nav.hop.url)))
            for note in outcome.notes:
                self.j.note("info", "redirect", note)
            if isinstance(outcome, Stop):
                raise self._redirect_failed(outcome.error)
            if isinstance(outcome, Arrive):
                self.j.facts.final_url = outcome.final_url
                self.j.facts.redirects = outcome.redirects
                if self.opts.resume and nav.hop.url.scheme == "https":
                    await self.resume(dataclasses.replace(nav.hop, index=nav.hop.index + 1))
                return
            nav = outcome.next

    def url_step(self, url_text: str) -> UrlAnatomy:
        with self.j.timed("url", "url", "you", "application",
                          UrlFacts(input=url_text)) as span:
            url = parse_url(url_text, hsts_upgrade=self.opts.hsts_upgrade,
                            with_public_suffix=False)
            span.facts = url.facts(url_text)
        self.url_span = span
        if url.upgraded_from_http:
            self.j.note("info", "url", f"{url.host} is on the HSTS preload list: http:// was "
                        "upgraded to https:// before any packet was sent")
        if url.scheme_assumed:
            self.j.note("info", "url", "no scheme was given: https:// was assumed")
        return url

    def _verified(self, url: UrlAnatomy) -> bool:
        """The response came over TLS whose certificate the handshake verified: with -k it
        was not, and RFC 6797 §8.1 then has Strict-Transport-Security ignored."""
        return url.scheme == "https" and not self.opts.tls.insecure

    def _redirect_failed(self, err: RedirectError) -> RedirectError:
        """The redirect step's own span, under the leg whose response redirected, carries
        the failure: the report shows where the chain of redirects broke."""
        legs = [s for s in self.j.spans if s.name == "leg"]
        leg = legs[-1] if legs else None
        # A decision, not a wait: it takes no time, at the end of the leg it concerns.
        at = leg.end_ns if leg is not None and leg.end_ns is not None else None
        span = self.j.span("redirect", "redirect", "you", "application", RedirectFacts(),
                           parent=leg, start_ns=at)
        self.j.end(span, span.start_ns)
        span.fail(err)
        self.j.ended(span)
        return err

    async def resume(self, hop: Hop) -> None:
        """A second, fresh connection to the same server, offering the first one's session."""
        if self._h3(hop.url):
            client = self.quic_pool.pop(hop.url.origin)
            self._write_qlog_of(client)
            client.close()
            self.j.note("info", "quic", "--resume: a second QUIC connection to the same "
                        "server, offering the first one's session ticket; the request rides "
                        "in 0-RTT packets when the ticket allows early data (RFC 9001 §4.6)")
            self.resuming = True
            await self.leg(hop)
            self._saved_by_0rtt()
            return
        choice = choose_connection(hop.url.origin, self._pooled(), fresh=True)
        if isinstance(choice, OpenNew) and choice.retire is not None:
            self._close(self.pool.pop(choice.retire.origin))
        self.j.note("info", "tls", "--resume: a second connection to the same server, "
                    "offering the TLS session of the first")
        await self.leg(hop)

    def _saved_by_0rtt(self) -> None:
        """--resume over QUIC: the first response byte counted from each connection's first
        Initial, the first connection's against the resumed one's."""
        times: list[tuple[float, QuicFacts]] = []
        for leg in [s for s in self.j.spans if s.name == "leg"][-2:]:
            quic = next((c for c in leg.children if c.name == "quic"), None)
            http = next((c for c in leg.children if c.name == "http"), None)
            if quic is None or http is None or http.facts.t_first_byte_ns is None:
                return
            times.append(((http.facts.t_first_byte_ns - quic.start_ns) / 1e6, quic.facts))
        if len(times) != 2:
            return
        (full, _), (resumed, f) = times
        rtt = f.path_end.smoothed_rtt_ms if f.path_end is not None else None
        self.j.note("info", "quic", f"0-RTT {f.early_data or 'not used'}: the first response "
                    f"byte came {resumed:.1f} ms after the resumed connection's first Initial, "
                    f"against {full:.1f} ms on the first connection ({full - resumed:+.1f} ms "
                    "saved, measured; the model is one round trip"
                    + (f", QUIC's smoothed RTT {rtt:.1f} ms)" if rtt else ")"))

    def _pooled(self) -> list[PooledConnection]:
        return [conn.facts() for conn in self.pool.values()]

    async def revalidate(self) -> None:
        """The final request again, conditional, as a cache revalidates its stored copy
        (RFC 9111 §4.3.1): on the journey's connection when it is still open, else on a new
        one to the address the journey used. Its own step: a failure is reported on its
        span and never becomes the journey's error (nor its exit code)."""
        from whathappens.analysis.caching import revalidation_plan

        if self.last is None or self.j.error is not None:
            return
        hop, first = self.last
        fields, why = revalidation_plan(hop.method, first.status, first.response_headers)
        span = self.j.span("revalidate", "revalidate", "you", "application",
                           RevalidateFacts(url=hop.url.shown(), conditional=fields))
        left = self.opts.max_time - self.j.clock.now() / 1e9
        if why is None and left < 0.05:
            why = "no time was left under --max-time"
        try:
            if why is not None:
                span.facts.outcome, span.facts.why = "skipped", why
                return
            conditional = dataclasses.replace(hop, headers=(*hop.headers, *fields))
            # The live page shows the revalidation as one step, not its inner steps as if
            # they were another request of the journey: its listener hears the span only.
            listener, self.j.listener = self.j.listener, None
            try:
                await asyncio.wait_for(self._revalidate(span, conditional), left)
            finally:
                self.j.listener = listener
            span.facts.outcome = "made"
        except (JourneyError, TimeoutError, OSError) as exc:
            err = exc if isinstance(exc, JourneyError) else HttpError(
                "revalidate.failed", "timed out under --max-time" if isinstance(
                    exc, TimeoutError) else f"network error: {os_error_words(exc)}")
            span.fail(err)
            span.facts.outcome, span.facts.why = "failed", err.message
        except Exception as exc:  # a bug of ours must not cost the journey its result
            span.facts.outcome = "failed"
            span.facts.why = f"an unexpected condition ({type(exc).__name__}: {exc})"
        finally:
            span.end_ns = self.j.clock.now() if span.children or why is None else \
                span.start_ns
            self.j.close_open(span)
            self.j.ended(span)

    async def _revalidate(self, span: Span[RevalidateFacts], hop: Hop) -> None:
        url = hop.url
        if self._h3(url):
            client = self.quic_pool.get(url.origin)
            if client is not None and client.reusable:
                span.facts.connection, span.facts.connection_why = "reused", \
                    "the journey's QUIC connection was still open"
            else:
                span.facts.connection = "new"
                client = await self.quic_step(span, url)
            await self.h3_request(span, client, hop, findings=False)
            return
        conn = self.pool.get(url.origin)
        if conn is not None and conn.protocol == "HTTP/1.1":
            from whathappens.net.http1 import H1Connection

            assert isinstance(conn.http, H1Connection)
            conn.http.idle_problem()  # a poll: did the server close it while we read?
        choice = choose_connection(url.origin, self._pooled())
        if isinstance(choice, Reuse):
            conn = self.pool[choice.connection.origin]
            span.facts.connection, span.facts.connection_why = "reused", choice.reason
            span.facts.reused_from_tcp_span = conn.tcp_span.span_id
        else:
            if choice.retire is not None:
                self._close(self.pool.pop(choice.retire.origin))
            address = self.addresses.get(url.origin)
            span.facts.connection = "new"
            span.facts.connection_why = (
                f"{choice.reason}: a new connection"
                + (f" to {address}, the address the journey used (no DNS lookup: a "
                   "browser's host cache would still hold it)" if address else ""))
            pinned = None if address is None else Resolution(
                "none", [address] if ":" in address else [], [] if ":" in address
                else [address])
            conn = await self.open_connection(span, url, pinned)
        conn.legs += 1
        await self.request(span, conn, hop, findings=False)

    async def leg(self, hop: Hop) -> Exchange:
        index, url, method = hop.index, hop.url, hop.method
        self.prepare(url)
        leg = self.j.span("leg", "journey", "you", "application",
                          LegFacts(index=index, url=url.shown(), method=method,
                                   origin=f"{url.scheme}://{url.authority}"))
        try:
            if self._h3(url) or (self._auto(url) and url.origin not in self.pool):
                exchange = await (self.h3_leg(leg, hop) if self._h3(url) else
                                  self.auto_leg(leg, hop))
                self.last = (hop, exchange)
                self._heard_alt_svc(url, exchange)
                return exchange
            conn = self.pool.get(url.origin)
            if conn is not None and conn.protocol == "HTTP/1.1":
                from whathappens.net.http1 import H1Connection

                assert isinstance(conn.http, H1Connection)
                problem = conn.http.idle_problem()  # a poll of the socket: facts for the planner
                if problem is not None:
                    self.j.note(problem[0], "http", problem[1])
            choice = choose_connection(url.origin, self._pooled())
            if isinstance(choice, Reuse):
                conn = self.pool[choice.connection.origin]
                leg.facts.connection = "reused"
                leg.facts.reused_from_tcp_span = conn.tcp_span.span_id
            else:
                if choice.retire is not None:
                    self._close(self.pool.pop(choice.retire.origin))
                leg.facts.connection = "new"
                conn = await self.open_connection(leg, url)
            conn.legs += 1
            exchange = await self.request(leg, conn, hop)
            self.last = (hop, exchange)
            self._heard_alt_svc(url, exchange)
            return exchange
        except asyncio.CancelledError:
            leg.facts.interrupted = True
            raise
        finally:
            leg.end_ns = self.j.clock.now()
            self.j.close_open(leg)
            self.j.ended(leg)

    # ------------------------------------------------------------ connection
    async def open_connection(self, leg: Span[Any], url: UrlAnatomy,
                              pinned: Resolution | None = None) -> _Conn:
        """DNS (unless ``pinned`` gives the addresses), TCP, TLS, under ``leg``."""
        res = pinned if pinned is not None else await self.dns_step(leg, url)
        res = self.vet(leg, url, res)
        with self.j.timed("tcp", "tcp", "you", "transport", TcpFacts(),
                          parent=leg) as tcp_span:
            capture = HandshakeCapture(url.port) if self.opts.capture else None
            pair: tuple[str, str] | None = None
            try:
                with capture or contextlib.nullcontext():
                    try:
                        c = await connect(self.j, tcp_span, res.ipv6, res.ipv4, url.port,
                                          self.opts.connect_timeout)
                    except JourneyError:
                        self.j.end(tcp_span)  # when connect gave up, not when capture stopped
                        raise
                    pair = (c.local, c.remote)
            finally:
                if capture is not None:
                    capture_facts(tcp_span.facts, capture, pair,
                                  self.j.clock.wall_origin_ns)
            tcp_span.actor = f"you {c.local} → server {c.remote}"
            # The step runs from the first SYN to the winning handshake's end, not our
            # bookkeeping around them.
            tcp_span.start_ns = tcp_span.children[0].start_ns
            tcp_span.end_ns = c.span.end_ns
        plain = PlainStream(c.sock)
        stream: Stream = plain
        protocol = "HTTP/1.1"
        if url.scheme == "https":
            stream = await self.tls_step(leg, url, plain, c.remote)
            if stream.obj.selected_alpn_protocol() == "h2":
                protocol = "HTTP/2"
        elif self.opts.http_version == "2":
            protocol = "HTTP/2"  # prior knowledge (RFC 9113 §3.3), only when asked for
        if self.opts.http_version == "2" and protocol != "HTTP/2":
            self.refuse_without_h2(leg, stream, c.remote)
        http: H1Connection | H2Connection
        if protocol == "HTTP/2":
            from whathappens.net.http2 import H2Connection

            http = H2Connection(stream, max_header_bytes=self.opts.limits.max_header_bytes)
        else:
            from whathappens.net.http1 import H1Connection

            http = H1Connection(stream)
        conn = _Conn(url.origin, stream, plain, http, protocol, tcp_span)
        self.pool[url.origin] = conn
        if tcp_span.facts.address:
            self.addresses[url.origin] = tcp_span.facts.address
        return conn

    async def tls_step(self, leg: Span[Any], url: UrlAnatomy, plain: PlainStream,
                       remote: str) -> TlsStream:
        with self.j.timed("tls", "tls", f"server {remote}", "transport", TlsFacts(),
                          parent=leg) as tls_span:
            opts = self.opts.tls
            if self.opts.http_version == "1.1":
                opts = dataclasses.replace(opts, alpn=("http/1.1",))
            key = (opts.cafile, opts.insecure, opts.alpn, opts.max_version,
                   opts.min_version)
            context = self.tls_contexts.get(key)
            tls = await handshake(self.j, tls_span, plain, url.host,
                                  url.host_kind == "domain", opts, context=context,
                                  session=self.tls_sessions.get((url.host, url.port)))
            self.tls_contexts[key] = tls.obj.context
        self.chains.append((tls_span, tls.chain, url.host, opts))
        return tls

    def refuse_without_h2(self, leg: Span[Any], stream: Stream, remote: str) -> NoReturn:
        """--http2 insists (as a test of the server would): the server's refusal is the
        answer, not a quiet fall-back to HTTP/1.1 (RFC 7301 §3.2: ALPN chose for it)."""
        chosen = stream.obj.selected_alpn_protocol() if isinstance(stream, TlsStream) \
            else None
        with self.j.timed("http", "http", f"server {remote}", "application",
                          HttpFacts(protocol="HTTP/2", alpn_selected=chosen), parent=leg):
            stream.close()
            said = (f"chose '{chosen}' in ALPN" if chosen else
                    "chose no protocol in ALPN (it ignored the offer)")
            raise HttpError("http.h2_refused", f"HTTP/2 was required (--http2), but the "
                            f"server {said} during the TLS handshake: it does not speak "
                            "HTTP/2 here. Without --http2 the journey would use HTTP/1.1.")

    def vet(self, leg: Span[Any], url: UrlAnatomy, res: Resolution) -> Resolution:
        """Keep only the addresses the policy allows; connect goes to exactly these.

        Vetting the resolved addresses, not the name, and then connecting to them leaves no
        window for DNS rebinding between the check and the connection.
        """
        policy = self.opts.address_policy
        if policy is None:
            return res
        refused = {a: why for a in [*res.ipv6, *res.ipv4] if (why := policy(a)) is not None}
        if not refused:
            return res
        allowed = dataclasses.replace(res, ipv6=[a for a in res.ipv6 if a not in refused],
                                      ipv4=[a for a in res.ipv4 if a not in refused])
        with self.j.timed("guard", "tcp", "whathappens", "application",
                          GuardFacts(refused=refused, allowed=allowed.addresses),
                          parent=leg) as span:
            spelled = url.host_spelled
            name = f"{url.host} (typed as {spelled})" if spelled else url.host
            if not allowed.addresses:
                reasons = "; ".join(refused.values())
                err = TargetRefused("guard.refused", f"{name} was not contacted: only public "
                                    f"addresses may be reached here, and {reasons}")
                span.fail(err)
                raise err
            self.j.note("warning", "tcp", f"{len(refused)} address(es) of {name} were "
                        "skipped as private or reserved: " + "; ".join(refused.values()))
        return allowed

    async def dns_step(self, leg: Span[LegFacts], url: UrlAnatomy) -> Resolution:
        with self.j.timed("dns", "dns", "you", "application", DnsFacts(host=url.host),
                          parent=leg) as span:
            override = self.opts.resolve.get((url.host, url.port))
            if url.host_kind != "domain" or override:
                addrs = [url.host] if url.host_kind != "domain" else list(override or [])
                why = ("the host is an IP address: no DNS lookup" if url.host_kind != "domain"
                       else f"--resolve {url.host}:{url.port}: no DNS lookup")
                span.facts.view_used, span.facts.note, span.facts.addresses = "none", why, addrs
                return Resolution("none", [a for a in addrs if ":" in a],
                                  [a for a in addrs if ":" not in a])
            cached = self.host_cache.lookup(url.host, self.j.clock.now())
            if cached is not None:
                res, hit = cached
                f = span.facts
                f.view_used, f.host_cache, f.addresses = "host_cache", hit, res.addresses
                f.https_records = res.https_records
                f.note = HOST_CACHE_NOTE.format(left=hit.ttl_left_s, ttl=hit.ttl_s)
                return res
            res = await resolve(self.j, span, url.host, url.port, self.opts.dns)
            # The step runs from its first query to its last answer: what a view did
            # before and after (reading the hosts file, waking the event loop) is ours.
            span.start_ns = min(c.start_ns for c in span.children)
            span.end_ns = max(c.end_ns or span.start_ns for c in span.children)
            self.host_cache.store(url.host, res, span, span.end_ns)
            return res

    # ------------------------------------------------------------------ http
    async def request(self, leg: Span[Any], conn: _Conn, hop: Hop, *,
                      findings: bool = True) -> Exchange:
        url = hop.url
        req, traceparent = self._request(hop, findings=findings)
        remote = conn.tcp_span.facts.remote or ""
        with self.j.timed("http", "http", f"server {remote}", "application",
                          HttpFacts(protocol=conn.protocol, traceparent=traceparent),
                          parent=leg) as span:
            try:
                ex = await conn.http.exchange(req, self.j.clock.now, self.opts.limits)
            except JourneyError:
                self._wire_so_far(span.facts, conn)
                raise
            self._keep_cookies(url, ex)
            self._exchanged(span, ex, remote, conn.legs)
        conn.tcp_span.facts.tcp_info_end = tcp_info(conn.plain.sock)
        tls_obj = getattr(conn.stream, "obj", None)
        if isinstance(tls_obj, ssl.SSLObject) and (session := tls_obj.session) is not None:
            # TLS 1.3 tickets arrive after the handshake, so the session is taken here,
            # after the response was read (RFC 8446 §4.6.1). Once: each read costs ~0.5 ms.
            self.tls_sessions[(url.host, url.port)] = session
        if findings:
            self._findings(url, ex)
        if getattr(conn.stream, "ragged_eof", False) and ex.header("content-length") is None \
                and "chunked" not in (ex.header("transfer-encoding") or "").lower():
            # RFC 9112 §9.8 / RFC 8446 §6.1: a body that ends where the connection ends is
            # only known complete when TLS says so with close_notify; a bare FIN could be a
            # truncation. Browsers accept it, so the journey goes on, with a warning.
            self.j.note("warning", "http", "the body ended where the connection ended, but "
                        "without TLS close_notify: it may have been cut short, and nothing "
                        "can tell (RFC 9112 §9.8)")
        return ex

    def _with_cookies(self, url: UrlAnatomy,
                      headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The jar's Cookie field for this request (RFC 6265 §5.4), joined to one the user
        gave with -H (one Cookie field per request, §5.4 step 4)."""
        if self.jar is None:
            return headers
        mine = self.jar.header(url, time.time())
        if mine is None:
            return headers
        given = [v for n, v in headers if n.lower() == "cookie"]
        rest = [(n, v) for n, v in headers if n.lower() != "cookie"]
        return [*rest, ("Cookie", "; ".join([*given, mine]))]

    def _keep_cookies(self, url: UrlAnatomy, ex: Exchange) -> None:
        """Every Set-Cookie of the response into the jar (RFC 6265 §5.3), as a browser
        keeps them across a redirect chain."""
        if self.jar is None:
            return
        lines = [v for n, v in ex.response_headers if n.lower() == "set-cookie"]
        if lines:
            before = len(self.jar)
            self.jar = self.jar.store(url, lines, time.time())
            refused = refusals(url, lines)
            self.j.note("info", "http", f"cookies: {len(lines)} Set-Cookie line(s) from "
                        f"{url.authority}; the jar holds {len(self.jar)} cookie(s) "
                        f"(was {before})" + (f"; refused: {'; '.join(refused)}"
                                             if refused else ""))

    def save_cookies(self) -> None:
        """-c FILE: the jar as a Netscape cookie file, as curl writes it."""
        path = self.opts.cookie_jar_out
        if path is None or self.jar is None:
            return
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(write_netscape(self.jar.expire(time.time())))
        except OSError as e:
            self.j.note("warning", "journey", f"the cookie jar could not be written to "
                        f"{path}: {e.strerror or e}")
    def _exchanged(self, span: Span[HttpFacts], ex: Exchange, remote: str, legs: int) -> None:
        """The HTTP span's times and facts from the exchange, and its three phases."""
        span.start_ns = ex.t_request_start_ns
        span.end_ns = ex.t_body_done_ns
        span.actor = f"server {remote}"
        span.facts = ex.facts(span.facts)
        f = span.facts
        f.send_ms = (ex.t_request_sent_ns - ex.t_request_start_ns) / 1e6
        f.wait_ms = (ex.t_first_byte_ns - ex.t_request_sent_ns) / 1e6
        f.receive_ms = (ex.t_body_done_ns - ex.t_first_byte_ns) / 1e6
        f.connection_legs = legs
        for name, a, b in (("http.send", ex.t_request_start_ns, ex.t_request_sent_ns),
                           ("http.wait", ex.t_request_sent_ns, ex.t_first_byte_ns),
                           ("http.receive", ex.t_first_byte_ns, ex.t_body_done_ns)):
            child = self.j.span(name, "http", "you" if name == "http.send" else
                                span.actor, "application", HttpPhaseFacts(), parent=span,
                                start_ns=a)
            child.end_ns = b

    # ------------------------------------------------------------------ HTTP/3
    def _h3(self, url: UrlAnatomy) -> bool:
        """--http3: HTTP/3 over QUIC, no TCP at all (RFC 9114 needs https); with
        --http3=auto, once a QUIC connection to the origin is open."""
        if url.scheme != "https":
            return False
        client = self.quic_pool.get(url.origin)
        return self.opts.http_version == "3" or (
            self._auto(url) and client is not None and client.reusable)

    def _auto(self, url: UrlAnatomy) -> bool:
        """HTTP/3 may be tried: auto mode, https, no HTTP version asked for, and TLS 1.3
        allowed (QUIC carries TLS 1.3 only, RFC 9001 §4.2: --tls-max 1.2 means TCP)."""
        return self.opts.http3 == "auto" and url.scheme == "https" and \
            self.opts.http_version is None and self._tls13_allowed()

    def _tls13_allowed(self) -> bool:
        top = self.opts.tls.max_version
        return top is None or top >= ssl.TLSVersion.TLSv1_3

    def _heard_alt_svc(self, url: UrlAnatomy, ex: Exchange) -> None:
        """A browser's Alt-Svc cache (RFC 7838): kept per origin for its ma."""
        if ex.alt_svc and url.scheme == "https":
            self.alt_svc.store(url.origin, ex.alt_svc, self.j.clock.now())

    async def auto_leg(self, leg: Span[LegFacts], hop: Hop) -> Exchange:
        """--http3=auto: HTTP/3 when it is advertised, raced against TCP; else TCP."""
        url = hop.url
        leg.facts.connection = "new"
        address = self.addresses.get(url.origin)
        res = Resolution("none", [address] if ":" in address else [],
                         [] if ":" in address else [address]) if address else \
            self.vet(leg, url, await self.dns_step(leg, url))
        adv = self.alt_svc.lookup(url.origin, self.j.clock.now()) or \
            https_record_h3(res.https_records, url.port)
        if adv is None:
            conn = await self.open_connection(leg, url, res)
        else:
            self.load(["aioquic"], leg)  # before the race, so that no step pays for it
            won = await self.race(leg, url, res, adv)
            if not isinstance(won, _Conn):
                return await self.h3_request(leg, won, hop)
            conn = won
        conn.legs += 1
        return await self.request(leg, conn, hop)

    async def race(self, leg: Span[LegFacts], url: UrlAnatomy, res: Resolution,
                   adv: Advertised) -> QuicClient | _Conn:
        """QUIC first, TCP + TLS QUIC_HEAD_START later (or as soon as QUIC fails), as
        Chromium races them; the first connection ready carries the request."""
        go = asyncio.Event()

        async def by_quic() -> QuicClient:
            try:
                return await self.quic_step(leg, url, (res.ipv6 or res.ipv4)[0], adv.port)
            except JourneyError:
                go.set()
                raise

        async def by_tcp() -> _Conn:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(go.wait(), QUIC_HEAD_START)
            return await self.open_connection(leg, url, res)

        quic_task, tcp_task = asyncio.create_task(by_quic()), asyncio.create_task(by_tcp())
        try:
            pending: set[asyncio.Task[Any]] = {quic_task, tcp_task}
            while pending:  # until one connects, or both have failed
                done, pending = await asyncio.wait(pending,
                                                   return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() is None for t in done):
                    break
        finally:
            for task in (quic_task, tcp_task):
                if not task.done():
                    task.cancel()
            await asyncio.gather(quic_task, tcp_task, return_exceptions=True)
        return self._raced(url, adv, quic_task, tcp_task)

    def _raced(self, url: UrlAnatomy, adv: Advertised, quic_task: asyncio.Task[QuicClient],
               tcp_task: asyncio.Task[_Conn]) -> QuicClient | _Conn:
        """The race's outcome, in the report; the loser's connection closed."""
        quic_ok = not quic_task.cancelled() and quic_task.exception() is None
        tcp_ok = not tcp_task.cancelled() and tcp_task.exception() is None
        quic_span = next((c for c in reversed(list(self.j.all_spans())) if c.name == "quic"),
                         None)
        why = f"HTTP/3 was tried because {adv.why}; QUIC raced TCP (TCP started " \
              f"{QUIC_HEAD_START * 1e3:.0f} ms later, or at once if QUIC failed)"
        if quic_ok:
            if tcp_ok:
                self._close(self.pool.pop(url.origin))
            self._race_facts(quic_span, "won", adv)
            self.j.note("info", "quic", f"{why}: QUIC won, HTTP/3 carried the request")
            return quic_task.result()
        if not tcp_ok:
            err = tcp_task.exception() if not tcp_task.cancelled() else None
            raise err if isinstance(err, JourneyError) else ConnectError(
                "tcp.failed", "neither QUIC nor TCP connected")
        qerr = quic_task.exception() if not quic_task.cancelled() else None
        if isinstance(qerr, JourneyError):
            self._race_facts(quic_span, "failed", adv)
            self.j.note("warning", "quic", f"QUIC unreachable: {qerr.message}; fell back to "
                        "TCP")
        else:
            self._race_facts(quic_span, "lost", adv)
            f = quic_span.facts if quic_span is not None else None
            if f is not None and f.server_first_ms is None and quic_span is not None:
                waited = ((quic_span.end_ns or quic_span.start_ns) - quic_span.start_ns) / 1e6
                self.j.note("warning", "quic", f"{why}. QUIC unreachable: no answer to the "
                            f"Initial within {waited:.0f} ms ({f.datagrams_sent} datagram(s) "
                            "sent); fell back to TCP, which was ready")
            else:
                self.j.note("info", "quic", f"{why}: TCP and TLS were ready first, so QUIC's "
                            "handshake was abandoned and the request went over TCP")
        return tcp_task.result()

    @staticmethod
    def _race_facts(span: Span[Any] | None, outcome: str, adv: Advertised) -> None:
        if span is not None:
            span.facts.race, span.facts.advertised_by = outcome, adv.why

    async def h3_leg(self, leg: Span[LegFacts], hop: Hop) -> Exchange:
        url = hop.url
        client = self.quic_pool.get(url.origin)
        if client is not None and client.reusable:
            leg.facts.connection = "reused"
            leg.facts.reused_from_tcp_span = client.span.span_id
        else:
            leg.facts.connection = "new"
            early = self._request(hop) if self.resuming else None
            client = await self.quic_step(leg, url, early=early[0] if early else None)
            client.early_traceparent = early[1] if early else None
        return await self.h3_request(leg, client, hop)

    async def quic_step(self, parent: Span[Any], url: UrlAnatomy, address: str | None = None,
                        port: int | None = None, early: Request | None = None) -> QuicClient:
        """DNS (or the address the journey used), then the QUIC handshake: step "quic",
        in place of TCP + TLS."""
        from whathappens.net import quic

        address = address or self.addresses.get(url.origin)
        if address is None:
            res = self.vet(parent, url, await self.dns_step(parent, url))
            # One address, IPv6 first as Happy Eyeballs prefers it (RFC 8305 §4): QUIC's
            # own racing of families is left out.
            address = (res.ipv6 or res.ipv4)[0]
        loop = asyncio.get_running_loop()
        timeout = self.opts.connect_timeout
        key = (url.host, url.port)
        with self.j.timed("quic", "quic", f"server {address}", "transport", QuicFacts(),
                          parent=parent) as span:
            client = await quic.connect(self.j, span, address, port or url.port, url.host,
                                        self.opts.tls, deadline=loop.time() + timeout,
                                        initial_timeout=min(timeout, QUIC_INITIAL_TIMEOUT),
                                        chains=self.quic_chains, early=early,
                                        ticket=self.quic_tickets.get(key)
                                        if self.resuming else None,
                                        tickets=lambda t: self.quic_tickets.__setitem__(key, t))
        old = self.quic_pool.pop(url.origin, None)
        if old is not None:
            old.close()
        self.quic_pool[url.origin] = client
        self.addresses[url.origin] = address
        return client

    async def h3_request(self, parent: Span[Any], client: QuicClient, hop: Hop, *,
                         findings: bool = True) -> Exchange:
        url = hop.url
        req, traceparent = self._request(hop, findings=findings)
        if client.early is not None:
            req, traceparent = client.early_request or req, client.early_traceparent
        remote = client.facts.remote or ""
        client.legs += 1
        deadline = asyncio.get_running_loop().time() + self.opts.max_time
        with self.j.timed("http", "http", f"server {remote}", "application",
                          HttpFacts(protocol="HTTP/3", traceparent=traceparent),
                          parent=parent) as span:
            try:
                ex = await client.exchange(req, self.j.clock.now, self.opts.limits, deadline)
            finally:
                client.facts.path_end = client.path()
            self._keep_cookies(url, ex)
            self._exchanged(span, ex, remote, client.legs)
        if findings:
            self._findings(url, ex)
        return ex

    def _request(self, hop: Hop, *, findings: bool = False) -> tuple[Request, str | None]:
        """The request of ``hop``: a new traceparent when the journey sends them, the jar's
        cookies, the body (said once, with ``findings``)."""
        url, headers = hop.url, list(hop.headers)
        traceparent = None
        if self.trace_id:
            traceparent = f"00-{self.trace_id}-{secrets.token_hex(8)}-01"
            headers.append(("traceparent", traceparent))
        headers = self._with_cookies(url, headers)
        if hop.body and findings:
            kind = next((v for n, v in headers if n.lower() == "content-type"), "no type")
            self.j.note("info", "http", f"{hop.method} {url.shown()} carried a body of "
                        f"{len(hop.body)} bytes ({kind})")
        return Request(method=hop.method, authority=url.authority, target=url.request_target,
                       scheme=url.scheme, headers=headers, body=hop.body), traceparent

    @staticmethod
    def _wire_so_far(facts: HttpFacts, conn: _Conn) -> None:
        """A failed exchange keeps what crossed the wire before it failed: the frames up to
        a RST_STREAM or GOAWAY (and ours after it), the chunks before a cut."""
        http = conn.http
        facts.h2_wire = getattr(http, "frames_so_far", None)
        facts.chunked = getattr(http, "chunks_so_far", None)

    def _findings(self, url: UrlAnatomy, ex: Exchange) -> None:
        for note in ex.notes:
            self.j.note("warning", "http", note)
        odd = sorted({n for n, v in ex.response_headers if _CONTROL.search(v)})
        if odd or _CONTROL.search(ex.reason):
            where = ", ".join(odd[:5]) if odd else "the reason phrase"
            # RFC 9110 §5.5: field values are visible characters, spaces and tabs only.
            self.j.note("warning", "http", f"the server sent control characters in {where}, "
                        "which HTTP does not allow (RFC 9110 §5.5); reports show them escaped")
        if ex.alt_svc:
            self.j.note("info", "http", f"the server advertises alternative services: "
                        f"{ex.alt_svc}" + self._alt_svc_next(ex))
        if ex.status >= 500:
            self.j.note("warning", "http", f"the server answered {ex.status}: a server-side "
                        "error")
        elif ex.status >= 400:
            self.j.note("warning", "http", f"the server answered {ex.status}: the request "
                        "was refused or the page does not exist")

    def _alt_svc_next(self, ex: Exchange) -> str:
        """What the Alt-Svc changes for this journey (RFC 7838 §2.2: a client may use it
        for later connections to the origin; the one open now carries on)."""
        if ex.http_version == "HTTP/3":
            return ""
        if self.opts.http3 == "off":
            return " (not used: --http3=off)"
        if self.opts.http_version is not None:
            return f" (not used: HTTP/{self.opts.http_version} was asked for)"
        if not self._tls13_allowed():
            return " (not used: QUIC needs TLS 1.3, and --tls-max is lower)"
        return " (a new connection to this origin would race HTTP/3 against TCP)"

    # ------------------------------------------------------------------ end
    def _close(self, conn: _Conn) -> None:
        with contextlib.suppress(Exception):
            conn.stream.close()

    def _write_qlog_of(self, client: QuicClient) -> None:
        if self.opts.qlog:
            self.qlogs += 1
            _write_qlog(self.j, self.opts.qlog if self.qlogs == 1 else
                        f"{self.opts.qlog}.{self.qlogs}", client)

    def close_all(self) -> None:
        for conn in self.pool.values():
            self._close(conn)
        self.pool.clear()
        for client in self.quic_pool.values():
            self._write_qlog_of(client)
            client.close()
        self.quic_pool.clear()


async def run_journey(url_text: str, options: Options | None = None, *,
                      journey: Journey | None = None) -> Journey:
    """Trace ``url_text``; never raises for network or input trouble (see journey.error).

    ``journey`` lets a caller pass its own, e.g. one with a listener for live steps.
    """
    opts = options or Options()
    journey = journey if journey is not None else Journey(url=url_text)
    runner = Runner(journey, opts)
    # Installed before wait_for makes its task, so the journey's task and every task it
    # starts see this budget (a context variable is copied into each new task).
    budget = budgets.Budget(opts.resources, journey=journey, max_time=opts.max_time)
    token = budgets.install(budget)
    try:
        await asyncio.wait_for(runner.run(url_text), opts.max_time)
        if opts.revalidate:  # after the journey, bounded by what is left of its time
            await runner.revalidate()
    except JourneyError as err:
        journey.error = err
    except TimeoutError:
        journey.error = budget.timeout_error()
    except (OSError, socket.gaierror) as exc:  # a layer let one through: still no traceback
        journey.error = ConnectError("net.error", f"network error: {os_error_words(exc)}",
                                     detail=repr(exc))
    except Exception as exc:  # a bug of ours: say so plainly, keep what was measured
        journey.error = InternalError("internal.error", f"whathappens met an unexpected "
                                      f"condition ({type(exc).__name__}: {exc}); this is a "
                                      "bug, please report it", detail=repr(exc))
    finally:
        runner.close_all()
        runner.save_cookies()
        budgets.uninstall(token)
        journey.facts.resources = budget.report()
    try:
        runner.analyse()
    except Exception as exc:  # analysis must never cost the user the journey
        journey.note("warning", "journey", f"an analysis after the journey failed: {exc}")
    _close_open_spans(journey, journey.error)
    _summarize(journey)
    if opts.compare_tls:  # outside the journey's spans: its total and HAR stay as they are
        from whathappens.probes.tls_compare import compare_after_journey

        await compare_after_journey(journey, opts.tls, timeout=opts.connect_timeout,
                                    address_policy=opts.address_policy)
    if opts.compare_http:  # likewise outside the journey's spans
        from whathappens.probes.http_compare import compare_http

        try:
            await asyncio.wait_for(compare_http(journey, opts, run_journey), opts.max_time)
        except TimeoutError:
            journey.note("warning", "journey", "--compare-http ran out of time (--max-time)")
    return journey


def _write_qlog(journey: Journey, target: str, client: QuicClient) -> None:
    """--qlog FILE: the connection's events as qlog JSON, which qvis and other QUIC tools
    read (aioquic's own trace; a second connection writes FILE.2, …)."""
    import json

    try:
        with open(target, "w", encoding="utf-8") as out:
            json.dump(client.logger.qlog(), out)
        journey.note("info", "quic", f"qlog of the QUIC connection written to {target}")
    except OSError as exc:
        journey.note("warning", "quic", f"the qlog could not be written to {target}: {exc}")


def _close_open_spans(journey: Journey, err: JourneyError | None) -> None:
    """End spans left open, inside their parents; a timeout marks the steps it cut short."""
    now = journey.clock.now()
    for span in journey.spans:
        if span.end_ns is None:
            span.end_ns = now
            span.facts.interrupted = True
        journey.close_open(span, err if isinstance(err, JourneyTimeout) else None)
    if isinstance(err, JourneyTimeout):
        for span in journey.all_spans():
            if span.facts.interrupted and span.error is None and (
                    span.name in STEP_SPANS or not span.children):
                span.fail(err)


def _summarize(journey: Journey) -> None:
    legs = [s for s in journey.spans if s.name == "leg"]
    https: list[Span[HttpFacts]] = [c for leg in legs for c in leg.children if c.name == "http"]
    last_http = next((c for c in reversed(https) if c.error is None
                      and c.facts.status is not None), None)
    tls: Span[TlsFacts] | None = next((c for leg in reversed(legs) for c in leg.children
                                       if c.name == "tls"), None)
    summary = Summary(legs=len(legs))
    if last_http is not None:
        f = last_http.facts
        summary.status, summary.reason, summary.http_version = (f.status, f.reason,
                                                                f.http_version)
    if tls is not None:
        summary.tls_version = tls.facts.version
    quic = next((c for leg in reversed(legs) for c in leg.children if c.name == "quic"), None)
    if tls is None and quic is not None and quic.facts.cipher is not None:
        summary.tls_version = "TLSv1.3"  # inside QUIC (RFC 9001)
    if journey.error is not None:
        summary.failed_step = journey.error.step
    journey.facts.summary = summary
