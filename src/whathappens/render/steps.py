"""One view of each step of a journey (URL, DNS, TCP, TLS, HTTP, the server inside): what
every renderer shows about it, worked out once.

Each function takes one span of the typed journey document (``contract.document.SpanDoc``,
its facts read by attribute, so a renamed fact fails mypy here) and returns plain frozen
dataclasses: the values to show, the derived words (which DNS view answered, the NODATA
wording) joined to the analyses (a walk hop's role, whether a repeated question came from the
resolver's cache: analysis/), and the rows of the
tables the renderers draw (resolver questions, walk hops, TCP attempts and segments, TLS
messages and certificates). The terminal, the HTML report and the live page lay these out;
none of them reads a span's attributes itself. A step can be viewed alone (the live page views
each span as it ends) or as part of the whole journey (render/view.py).

Strings are the journey's own, not yet made safe: each renderer does that at its one exit
(render/visible.py for text, html.escape for HTML).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from whathappens.analysis.actors import zone_role
from whathappens.analysis.model import CacheCheck
from whathappens.analysis.resolver_cache import original_ttls, resolver_checks
from whathappens.contract.codec import to_json
from whathappens.contract.document import ErrorDoc, SpanDoc
from whathappens.contract.facts import Certificate as CertificateFacts
from whathappens.contract.facts import (
    DnsFacts,
    DnsHopFacts,
    DnsQueryFacts,
    DnsRecursionFacts,
    DnsResolverFacts,
    DnsSystemFacts,
    DnsUpstreamFacts,
    DnsWalkFacts,
    DnsWalkQuestionFacts,
    Facts,
    HttpFacts,
    LegFacts,
    QuicFacts,
    QuicFlightFacts,
    QuicPath,
    QuicProbeTimeout,
    ServerFacts,
    TcpConnectFacts,
    TcpFacts,
    TcpInfo,
    TlsFacts,
    TlsMessage,
    UrlFacts,
)
from whathappens.contract.facts import Segment as SegmentFacts
from whathappens.explain.fill import Context, explain_response, explain_span
from whathappens.explain.texts import Explanation
from whathappens.explain.words import validity
from whathappens.render.format import ms, size
from whathappens.render.labdb import server_details

F = TypeVar("F", bound=Facts)


# ----------------------------------------------------------------------------- common
@dataclass(frozen=True)
class Problem:
    """A step's error, as the reader sees it."""

    message: str
    code: str | None = None
    step: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class Timing:
    """Where a span sits on the journey's clock (ms since t0) and what colours its bar."""

    start_ms: float
    end_ms: float
    duration_ms: float | None
    step: str
    layer: str | None
    failed: bool


def problem(err: ErrorDoc | None) -> Problem | None:
    if err is None:
        return None
    return Problem(err.message, err.code, err.step, err.exit_code)


def timing(span: SpanDoc) -> Timing:
    end = span.start_ms if span.end_ms is None else span.end_ms
    return Timing(span.start_ms, end, span.duration_ms, span.step, span.layer,
                  span.error is not None)


def facts(span: SpanDoc, cls: type[F]) -> F:
    """The span's facts as ``cls`` (every field at its default if they are another kind)."""
    return span.facts_as(cls) or cls()


# -------------------------------------------------------------------------------- URL
@dataclass(frozen=True)
class UrlView:
    timing: Timing
    error: Problem | None
    input: str
    parsed: bool                 # False: the text did not parse (only ``input`` is known)
    url: str = ""
    scheme: str = ""
    scheme_assumed: bool = False
    host: str = ""
    typed_as: str | None = None  # the Unicode spelling, when it differs from the wire's
    host_kind: str = ""
    port: int | None = None
    port_explicit: bool = False
    path: str = ""
    query: str | None = None
    fragment: str | None = None
    request_target: str = ""
    registrable_domain: str | None = None
    public_suffix: str | None = None
    hsts_preloaded: bool = False
    upgraded_from_http: bool = False
    explain: Explanation | None = None   # this step's texts, filled with its values

    @property
    def origin_line(self) -> str:
        """``https://www.example.com``, with the host as the user typed it."""
        return f"{self.scheme}://{self.typed_as or self.host}"


def url_view(span: SpanDoc) -> UrlView:
    a = facts(span, UrlFacts)
    t, err = timing(span), problem(span.error)
    if not a.host:
        return UrlView(t, err, a.input, parsed=False, explain=explain_span(span))
    uni = a.host_unicode
    return UrlView(
        t, err, a.input, parsed=True, url=a.url, scheme=a.scheme,
        scheme_assumed=a.scheme_assumed, host=a.host,
        typed_as=uni if uni and uni != a.host else None, host_kind=a.host_kind,
        port=a.port, port_explicit=a.port_explicit, path=a.path, query=a.query,
        fragment=a.fragment, request_target=a.request_target,
        registrable_domain=a.registrable_domain, public_suffix=a.public_suffix,
        hsts_preloaded=a.hsts_preloaded, upgraded_from_http=a.upgraded_from_http,
        explain=explain_span(span))


# -------------------------------------------------------------------------------- DNS
SOURCE_NAMES = {"dns.system": "system", "dns.resolver": "resolver", "dns.walk": "walk"}
USED_WORDS = {"none": "no lookup", "resolver": "the recursive resolver's answer",
              "walk": "the iterative walk's answer", "system": "the system resolver's answer",
              "host_cache": "the journey's host cache"}
FASTER = "faster: served from the resolver's cache"
NOT_FASTER = "not faster: the resolver did not answer from a cache"


@dataclass(frozen=True)
class CacheView:
    """A question asked again: did the resolver answer it from its cache
    (analysis/resolver_cache.py)?"""

    faster: bool
    took_ms: float
    first_ms: float
    ttl: int | None = None
    first_ttl: int | None = None
    original_ttl: int | None = None
    slack_s: int = 1
    ttl_proves: bool = False
    first_cached: bool | None = None

    @property
    def verdict(self) -> str:
        return (self.ttl_words if self.ttl_proves else
                FASTER if self.faster else NOT_FASTER) + self.ttl_note + self.first_words

    @property
    def ttl_words(self) -> str:
        """RFC 1035 §7.4: a cache hands a record out with its TTL counted down."""
        if self.original_ttl is not None:
            base = f"TTL {self.ttl:,} s left of the zone's {self.original_ttl:,}"
        else:
            base = f"TTL {self.ttl:,} s, below the first answer's {self.first_ttl:,}"
        return (f"served from the resolver's cache: {base} (RFC 1035 §7.4)"
                + (", and faster" if self.faster else ", though not faster"))

    @property
    def ttl_note(self) -> str:
        if self.ttl_proves or self.ttl is None:
            return ""
        if self.original_ttl is not None:
            return (f"; its TTL ({self.ttl:,} of the zone's {self.original_ttl:,}) is within "
                    f"the {self.slack_s} s a fresh answer can lose, so it cannot tell")
        return ("; without the zone's own TTL (the walk did not run) and within seconds of "
                "the first answer, the TTL cannot tell")

    @property
    def first_words(self) -> str:
        if not self.first_cached or self.first_ttl is None or self.original_ttl is None:
            return ""
        return (f"; the first answer came from its cache too (TTL {self.first_ttl:,} of "
                f"{self.original_ttl:,}): the resolver knew the name before we asked")


@dataclass(frozen=True)
class QueryRow:
    """One question to the recursive resolver."""

    timing: Timing
    error: Problem | None
    qtype: str
    qname: str
    records: str                 # the records, or what came instead (NODATA, an rcode)
    found: bool                  # records came back
    ttl: int | None
    transport: str | None
    tcp_retry: bool
    purpose: str
    answer: list[str]            # the answer section as received
    cache: CacheView | None = None


@dataclass(frozen=True)
class HopRow:
    """One query of the iterative walk, to one name server."""

    timing: Timing
    error: Problem | None
    actor: str
    role: str                    # root, TLD, authoritative (analysis/actors.py)
    server: str
    address: str
    zone: str
    qname: str
    qtype: str
    depth: int                   # > 0: resolving a name server's own name
    kind: str                    # referral, answer, cname, nxdomain, timeout…
    referral_zone: str
    referral_ns: list[str]
    glue: bool
    answers: list[str]
    note: str
    transport: str


@dataclass(frozen=True)
class WalkQuestion:
    qtype: str
    qname: str
    outcome: str
    records: list[str]
    hops: list[HopRow]


@dataclass(frozen=True)
class UpstreamRow:
    """One query the lab's resolver sent upstream, from the server's own log."""

    timing: Timing
    server: str
    role: str
    qname: str
    qtype: str
    kind: str
    records: list[str]
    transport: str


@dataclass(frozen=True)
class RecursionView:
    """What the resolver itself asked for this lookup (--lab: the lab's Unbound)."""

    timing: Timing
    resolver: str
    from_cache: bool
    flushed: str
    queries: list[UpstreamRow]
    other_queries: list[str]
    matched_by: str
    clock: str
    repeat_upstream: int | None = None


@dataclass(frozen=True)
class DnsSource:
    """One of the DNS step's views: the system resolver, one recursive resolver, the walk."""

    kind: str                    # system, resolver, walk (or the span's name)
    used: bool                   # its answer is the one the connection used
    timing: Timing
    error: Problem | None
    actor: str
    addresses: list[str]
    hosts_file: bool = False
    resolver: str = ""
    root_hints: str = ""
    port: int | None = None
    cname_chain: list[str] = field(default_factory=list)
    queries: list[QueryRow] = field(default_factory=list)
    questions: list[WalkQuestion] = field(default_factory=list)
    recursion: RecursionView | None = None


@dataclass(frozen=True)
class DnsView:
    timing: Timing
    error: Problem | None
    host: str
    addresses: list[str]
    view_used: str | None
    note: str | None
    https_records: list[str]
    sources: list[DnsSource]
    explain: Explanation | None = None

    @property
    def answer(self) -> str:
        return ", ".join(self.addresses) or "no address"

    @property
    def used_words(self) -> str:
        return USED_WORDS.get(str(self.view_used), str(self.view_used))


def _records(a: DnsQueryFacts) -> str:
    if a.records:
        return ", ".join(a.records)
    rcode = a.rcode or ""
    return f"no {a.qtype} record (NODATA)" if rcode == "NOERROR" else rcode


def query_row(span: SpanDoc, check: CacheCheck | None = None) -> QueryRow:
    """A question to the resolver, and the cache check when it is a repeated one."""
    a = facts(span, DnsQueryFacts)
    cache = None if check is None else CacheView(
        check.faster, check.took_ms, check.first_ms, check.ttl, check.first_ttl,
        check.original_ttl, check.slack_s, check.ttl_proves, check.first_cached)
    return QueryRow(timing(span), problem(span.error), a.qtype, a.qname, _records(a),
                    bool(a.records), a.ttl, a.transport, bool(a.tcp_retry), a.purpose,
                    list(a.answer), cache)


def hop_row(span: SpanDoc) -> HopRow:
    a = facts(span, DnsHopFacts)
    return HopRow(
        timing(span), problem(span.error), span.actor, zone_role(a.zone), a.server, a.address,
        a.zone, a.qname, a.qtype, a.depth, a.kind, a.referral_zone or "",
        list(a.referral_ns), bool(a.glue), list(a.answers), a.note or "",
        a.transport or "udp")


def _queries(view: SpanDoc, original: dict[tuple[str, str], int]) -> list[QueryRow]:
    checks = resolver_checks(view, original)
    return [query_row(q, checks.get(q.id)) for q in view.children if q.name == "dns.query"]


def recursion_view(view: SpanDoc) -> RecursionView | None:
    """The resolver's upstream queries merged under this view (lab/client/resolver.py)."""
    span = view.child("dns.recursion")
    a = None if span is None else span.facts_as(DnsRecursionFacts)
    if span is None or a is None:
        return None
    rows = []
    for up in span.children:
        u = up.facts_as(DnsUpstreamFacts)
        if u is not None:
            rows.append(UpstreamRow(timing(up), u.server, u.role, u.qname, u.qtype, u.kind,
                                    list(u.records), u.transport))
    return RecursionView(timing(span), a.resolver, a.from_cache, a.flushed or "", rows,
                         list(a.other_queries), a.matched_by, a.clock, a.repeat_upstream)


def _questions(view: SpanDoc) -> list[WalkQuestion]:
    out = []
    for q in view.children:
        a = facts(q, DnsWalkQuestionFacts)
        hops = [hop_row(h) for h in q.walk() if h.name == "dns.hop"]
        out.append(WalkQuestion(a.qtype, a.qname, a.outcome or "", list(a.records), hops))
    return out


def dns_source(view: SpanDoc, used: str | None,
               original: dict[tuple[str, str], int] | None = None) -> DnsSource:
    kind = SOURCE_NAMES.get(view.name, view.name)
    common = (kind, kind == used, timing(view), problem(view.error), view.actor)
    system = view.facts_as(DnsSystemFacts)
    if system is not None:
        return DnsSource(*common, list(system.addresses), hosts_file=system.hosts_file_hit)
    resolver = view.facts_as(DnsResolverFacts)
    if resolver is not None:
        return DnsSource(*common, list(resolver.addresses), resolver=resolver.resolver or "",
                         cname_chain=list(resolver.cname_chain or []),
                         queries=_queries(view, original or {}),
                         recursion=recursion_view(view))
    walked = facts(view, DnsWalkFacts)
    return DnsSource(*common, list(walked.addresses), root_hints=walked.root_hints,
                     port=walked.port, cname_chain=list(walked.cname_chain),
                     questions=_questions(view))


def dns_view(span: SpanDoc, ctx: Context | None = None) -> DnsView:
    a = facts(span, DnsFacts)
    return DnsView(timing(span), problem(span.error), a.host, list(a.addresses), a.view_used,
                   a.note or None, list(a.https_records),
                   [dns_source(v, a.view_used, original_ttls(span)) for v in span.children],
                   explain_span(span, ctx))


# -------------------------------------------------------------------------------- TCP
@dataclass(frozen=True)
class Attempt:
    """One connect() of Happy Eyeballs (RFC 8305)."""

    family: str
    address: str
    outcome: str
    duration_ms: float | None


@dataclass(frozen=True)
class Segment:
    """One captured segment of the three-way handshake (RFC 9293 §3.5)."""

    name: str                    # SYN, SYN-ACK, ACK
    source: str
    dest: str
    seq: int | None
    ack: int | None
    window: int | None
    options: dict[str, int | bool | str]
    t_ms: float | None

    @property
    def size_options(self) -> str:
        """The options that size the connection: MSS and window scale."""
        return ", ".join(f"{k} {v}" for k, v in self.options.items()
                         if k in ("mss", "window_scale"))

    @property
    def option_words(self) -> str:
        return ", ".join(k.replace("_", " ") if v is True else f"{k.replace('_', ' ')} {v}"
                         for k, v in self.options.items())


@dataclass(frozen=True)
class TcpView:
    timing: Timing
    error: Problem | None
    local: str
    remote: str
    family: str
    address: str
    happy_eyeballs: bool
    attempts: list[Attempt]
    tcp_info: TcpInfo | None             # the kernel's TCP_INFO at connect
    tcp_info_end: TcpInfo | None         # … after the exchange
    segments: list[Segment]
    captured: bool | None                # None: no capture was tried
    capture_how: str
    capture_why: str
    explain: Explanation | None = None

    @property
    def show_attempts(self) -> bool:
        return len(self.attempts) > 1 or self.happy_eyeballs

    @property
    def wire_ms(self) -> float | None:
        """SYN to ACK by the capture's timestamps, when all three were seen."""
        if len(self.segments) != 3:
            return None
        first, last = self.segments[0].t_ms, self.segments[-1].t_ms
        return None if first is None or last is None else last - first


def _segment(seg: SegmentFacts) -> Segment:
    return Segment(seg.segment, seg.from_, seg.to, seg.seq, seg.ack, seg.window,
                   dict(seg.options), seg.t_ms)


def tcp_view(span: SpanDoc, ctx: Context | None = None) -> TcpView:
    a = facts(span, TcpFacts)
    tries = [(c, facts(c, TcpConnectFacts)) for c in span.children]
    info = next((f.tcp_info for _, f in tries if f.outcome == "connected"), None)
    capture = a.capture
    return TcpView(
        timing(span), problem(span.error), a.local or "", a.remote or "", a.family or "",
        a.address or "", a.happy_eyeballs,
        [Attempt(f.family, f.address, str(f.outcome), c.duration_ms) for c, f in tries],
        info, a.tcp_info_end,
        [_segment(x) for x in a.handshake_segments or a.segments_seen or []],
        None if capture is None else capture.captured,
        (capture.how if capture else None) or "", (capture.why if capture else None) or "",
        explain_span(span, ctx))


def tcp_info_fields(info: TcpInfo) -> list[tuple[str, str]]:
    """Every field of TCP_INFO, by its name in the JSON."""
    return [(k, str(v)) for k, v in asdict(info).items()]


# -------------------------------------------------------------------------------- TLS
@dataclass(frozen=True)
class Message:
    """One handshake message, sent or received (RFC 8446 §4)."""

    sent: bool
    type: str
    t_ms: float | None
    since_hello_ms: float | None
    bytes: int | None

    @property
    def arrow(self) -> str:
        return "→" if self.sent else "←"

    @property
    def direction(self) -> str:
        return "→ sent" if self.sent else "← received"


@dataclass(frozen=True)
class Certificate:
    leaf: bool
    who: str                     # the subject's CN, or the whole subject
    subject: str
    unreadable: str | None       # why the certificate could not be read
    issuer: str
    not_before: str              # dates, YYYY-MM-DD
    not_after: str
    days_left: int | None
    key: str
    signature_algorithm: str
    names: list[str]             # SANs: DNS names, then IP addresses
    sct_count: int | None
    serial: str
    sha256: str

    @property
    def validity(self) -> str:
        """``89 days left``, ``expired 30 days ago``: one wording (explain/words.py)."""
        return validity(self.days_left)


@dataclass(frozen=True)
class TlsView:
    timing: Timing
    error: Problem | None
    version: str | None
    cipher: str | None
    cipher_bits: int | None
    group: str | None
    alpn: str | None
    alpn_offered: list[str]
    sni: str | None
    resumed: bool
    messages: list[Message]
    chain: list[Certificate]
    verified: bool | None        # None: the chain was not verified separately
    verification: str            # the reason, in words
    verified_by: str
    context_setup_ms: float | None = None  # building the context, inside the step's time
    explain: Explanation | None = None

    @property
    def handshake_ms(self) -> float | None:
        """ClientHello sent → our Finished sent: the step's time less the context set-up."""
        d, c = self.timing.duration_ms, self.context_setup_ms
        return None if d is None or c is None else max(d - c, 0.0)


def message(m: TlsMessage) -> Message:
    return Message(m.direction == "sent", m.type, m.t_ms, None, m.bytes)


def certificate(i: int, c: CertificateFacts) -> Certificate:
    return Certificate(
        i == 0, c.subject_cn or c.subject, c.subject, c.unreadable or None,
        c.issuer_cn or c.issuer, (c.not_before or "")[:10], (c.not_after or "")[:10],
        c.days_left, c.key, c.signature_algorithm, [*c.san_dns, *c.san_ip], c.sct_count,
        c.serial, c.sha256)


def tls_view(span: SpanDoc, ctx: Context | None = None) -> TlsView:
    a = facts(span, TlsFacts)
    v = a.chain_verification
    return TlsView(
        timing(span), problem(span.error), a.version or None, a.cipher or None,
        a.cipher_bits or None, a.group or None, a.alpn or None, list(a.alpn_offered),
        a.sni or None, bool(a.session_reused), [message(m) for m in a.messages],
        [certificate(i, c) for i, c in enumerate(a.chain or [])],
        None if v is None else v.ok, v.reason if v is not None else a.verification,
        v.by if v is not None else "", a.context_setup_ms, explain_span(span, ctx))


# ------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class ServerNode:
    """A span from inside the lab's server, with its children (edge → lb → app → …)."""

    kind: str                    # edge, lb, app, django, sql, redis, postgres…
    name: str
    actor: str
    duration_ms: float | None
    facts: str                   # the one line the terminal shows about it
    fields: list[tuple[str, str]]  # every scalar attribute, for the report
    plan: str | None             # a query plan (EXPLAIN), several lines
    children: list[ServerNode]
    details: tuple[str, ...] = ()  # each hop's connection, the DB step by step (labdb.py)
    explain: Explanation | None = None   # what this tier did, in words, with its values


@dataclass(frozen=True)
class HttpView:
    timing: Timing
    error: Problem | None
    answered: bool               # a response arrived (status known)
    protocol: str
    http_version: str
    status: int | None
    reason: str
    wait_ms: float | None
    send_ms: float | None
    receive_ms: float | None
    wire_sent: int | None
    wire_received: int | None
    body_encoded: int | None
    body_decoded: int | None
    encoding: str                # "br", "gzip,br", or identity
    request_headers: list[tuple[str, str]]
    response_headers: list[tuple[str, str]]
    body_excerpt: str | None
    reusable: bool
    connection_legs: int | None
    inside: list[ServerNode]
    explain: Explanation | None = None
    response: Explanation | None = None  # the answer's trip back out


def server_fields(a: ServerFacts) -> dict[str, object]:
    """A tier's span facts as its log had them: the named ones and what rode along."""
    out = to_json(a)
    return dict(out) if isinstance(out, dict) else {}


def _server_facts(kind: str, a: dict[str, object]) -> str:
    g = a.get
    if kind == "edge":
        return (f"cache {g('cache', '-')}  status {g('status')}"
                + (f"  WAF (ModSecurity) {g('waf')}" if "waf" in a else ""))
    if kind == "pop":
        return f"{g('protocol')} over {g('transport')}  no cache  status {g('status')}"
    if kind == "lb":
        return (f"{g('algorithm')} → {g('server')}  queue {g('Tw')} ms, connect {g('Tc')} ms, "
                f"response {g('Tr')} ms" + _mtls_facts(a))
    if kind == "app":
        return (f"micro-cache {g('cache', '-')}  upstream {g('upstream_response_time', '-')} s"
                + _mtls_facts(a))
    if kind == "django":
        return (f"view {g('view')}  status {g('status')}  worker pid {g('pid')}"
                + (f"  (gunicorn: {a['gunicorn_request_ms']} ms)"
                   if "gunicorn_request_ms" in a else ""))
    if kind == "sql":
        return f"[{g('alias')}] {str(g('sql', ''))[:90]}  rows {g('rows')}"
    if kind == "redis":
        return f"{g('command', '')} {g('result', '')}"
    if kind == "postgres":
        return f"statement {g('duration_ms')} ms by PostgreSQL's clock"
    if kind == "middleware":
        return str(g("middleware", ""))
    return _queue_facts(kind, g)


def _mtls_facts(a: dict[str, object]) -> str:
    """With lab up --mtls: the TLS of the hop into this tier, as its log has it (HAProxy:
    %sslv and the certificate's subject; nginx: $ssl_protocol, $ssl_client_s_dn)."""
    if "client_dn" in a:        # HAProxy
        resumed = ", resumed" if str(a.get("tls_resumed")) == "1" else ""
        verified = "verified" if str(a.get("client_verify")) == "0" else \
            f"verify {a.get('client_verify')}"
        out = (f"  mTLS in: {a.get('tls')} from {a['client_dn']} ({verified}{resumed})")
        return out + (f", out: {a['server_tls']}" if "server_tls" in a else "")
    if "ssl_client_s_dn" in a:  # nginx
        resumed = ", resumed" if a.get("ssl_session_reused") == "r" else ""
        return (f"  mTLS in: {a.get('ssl_protocol')} from {a['ssl_client_s_dn']} "
                f"({a.get('ssl_client_verify')}{resumed})")
    return ""


def _queue_facts(kind: str, g: Callable[..., object]) -> str:
    """The background task's line (lab/tiers/celery_spans.py): not inside the response."""
    if kind == "task":
        return (f"background, outside the response: {g('outcome')} after {g('attempts')} "
                f"run(s), {g('queue_wait_ms')} ms in the queue, on {g('worker')}")
    if kind == "celery":
        return f"attempt {g('retries')}: {g('outcome') or g('status')}"
    if kind == "dead-letter":
        return f"after {g('retries')} retries: {g('error')}"
    return ""


def server_node(span: SpanDoc) -> ServerNode:
    a = server_fields(facts(span, ServerFacts))
    kind = span.name.removeprefix("server.")
    plan = a.get("explain")
    typed = facts(span, ServerFacts)
    return ServerNode(
        kind, span.name, span.actor, span.duration_ms, _server_facts(kind, a),
        [(k, str(v)) for k, v in a.items()
         if k != "explain" and not isinstance(v, (dict, list))],
        str(plan) if plan else None, [server_node(c) for c in span.children],
        server_details(typed.db_explain, typed.connections), explain_span(span))


def http_view(span: SpanDoc, ctx: Context | None = None) -> HttpView:
    a = facts(span, HttpFacts)
    return HttpView(
        timing(span), problem(span.error), a.status is not None, a.protocol,
        a.http_version or "", a.status, a.reason or "", a.wait_ms, a.send_ms, a.receive_ms,
        a.wire_bytes_sent, a.wire_bytes_received, a.body_bytes_encoded, a.body_bytes_decoded,
        ",".join(a.content_encoding) or "identity",
        [(n, v) for n, v in a.request_headers], [(n, v) for n, v in a.response_headers],
        a.body_excerpt or None, bool(a.reusable), a.connection_legs or None,
        [server_node(c) for c in span.children if c.name.startswith("server.")],
        explain_span(span, ctx), explain_response(span, ctx))


# -------------------------------------------------------------------------------- leg
@dataclass(frozen=True)
class StepRef:
    """A step of a request, in the order it happened (the view of a known kind is on the
    request: ``LegView.dns``…)."""

    name: str
    timing: Timing
    error: Problem | None


@dataclass(frozen=True)
class LegView:
    """One request of the journey (redirects are legs of their own)."""

    timing: Timing
    error: Problem | None
    index: int
    number: int                  # index + 1, as the reader counts
    method: str
    url: str
    connection: str              # new, reused
    dns: DnsView | None
    tcp: TcpView | None
    tls: TlsView | None
    http: HttpView | None
    order: list[StepRef]         # every step of the request, in order
    incomplete: bool             # a step of it failed
    explain: Explanation | None = None
    quic: QuicView | None = None  # HTTP/3: the QUIC step, in place of TCP + TLS


def leg_view(span: SpanDoc, ctx: Context | None = None) -> LegView:
    """One request; ``ctx`` (explain/fill.leg_contexts) says which response led to it."""
    a = facts(span, LegFacts)
    ctx = ctx or Context(leg=a)
    dns, tcp, tls, http = (span.child(n) for n in ("dns", "tcp", "tls", "http"))
    return LegView(
        timing(span), problem(span.error), a.index, a.index + 1, a.method, a.url,
        a.connection or "new",
        None if dns is None else dns_view(dns, ctx),
        None if tcp is None else tcp_view(tcp, ctx),
        None if tls is None else tls_view(tls, ctx),
        None if http is None else http_view(http, ctx),
        [StepRef(c.name, timing(c), problem(c.error)) for c in span.children],
        any(c.error is not None for c in span.children), explain_span(span, ctx),
        _quic(span.child("quic"), ctx))


def _quic(span: SpanDoc | None, ctx: Context) -> QuicView | None:
    return None if span is None else quic_view(span, ctx)


# ------------------------------------------------------------------------------- QUIC
# The QUIC step (span ``quic``, HTTP/3): its flights, each packet with its number space and
# datagram, the TLS messages inside, the chain, QUIC's view of the path, transport parameters.
SHOWN_PACKETS = 24  # packets listed in the reports; the JSON keeps every one (up to its cap)


@dataclass(frozen=True)
class FlightRow:
    name: str
    sent: bool
    start_ms: float
    datagrams: int
    packets: int
    bytes: int
    spaces: list[str]
    messages: list[str]

    @property
    def arrow(self) -> str:
        return "→" if self.sent else "←"

    @property
    def words(self) -> str:
        return (f"{self.datagrams} datagram(s), {self.packets} packet(s) "
                f"({', '.join(self.spaces)}), {size(self.bytes)}"
                + (f": {', '.join(self.messages)}" if self.messages else ""))


@dataclass(frozen=True)
class PacketRow:
    sent: bool
    t_ms: float
    space: str
    number: int | None
    bytes: int
    datagram: int
    datagram_bytes: int
    coalesced: bool
    frames: list[str]
    read_ms: float | None = None     # received: when our loop read it, if later than arrived

    @property
    def arrow(self) -> str:
        return "→" if self.sent else "←"

    @property
    def words(self) -> str:
        pn = "" if self.number is None else f"pn {self.number} "
        where = (f"coalesced in datagram #{self.datagram} ({size(self.datagram_bytes)})"
                 if self.coalesced else f"datagram #{self.datagram}")
        read = f" (read at {self.read_ms:.3f})" if self.read_ms is not None and \
            self.read_ms - self.t_ms >= 0.5 else ""
        return (f"{self.space:<9} {pn}{size(self.bytes)}, {where}{read}: "
                f"{', '.join(self.frames) or 'no frames'}")


@dataclass(frozen=True)
class QuicView:
    timing: Timing
    error: Problem | None
    local: str | None
    remote: str | None
    version: str | None
    alpn: str | None
    cipher: str | None
    group: str | None
    sni: str | None
    retry: bool
    our_cid: str | None
    server_cid: str | None
    original_dcid: str | None
    flights: list[FlightRow]
    packets: list[PacketRow]
    packets_total: int
    messages: list[Message]
    chain: list[Certificate]
    verified: bool | None
    verification: str
    verified_by: str
    path_after: str | None
    path_end: str | None
    handshake_done_ms: float | None
    client_hello_build_ms: float | None
    server_params: list[tuple[str, str]]
    local_params: list[tuple[str, str]]
    close: str | None
    explain: Explanation | None = None
    resumed: bool = False
    early_data: str | None = None
    probes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        parts = [f"{self.local} → {self.remote}" if self.local else self.remote or "",
                 " ".join(x for x in (self.version, self.cipher, self.group) if x)]
        if self.alpn:
            parts.append(f"ALPN {self.alpn}")
        if self.sni:
            parts.append(f"SNI {self.sni}")
        if self.retry:
            parts.append("Retry")
        if self.resumed:
            parts.append("(resumed" + (f", 0-RTT {self.early_data})" if self.early_data else ")"))
        return "  ".join(p for p in parts if p)


def path_words(p: QuicPath | None) -> str | None:
    """QUIC's loss recovery state in one line (RFC 9002)."""
    if p is None:
        return None
    rtt = (f"smoothed rtt {ms(p.smoothed_rtt_ms)} ±{ms(p.rttvar_ms)}, min {ms(p.min_rtt_ms)}"
           if p.smoothed_rtt_ms is not None else "no RTT sample yet")
    return (f"{rtt}, cwnd {p.cwnd_bytes:,} B, in flight {p.bytes_in_flight:,} B, packets "
            f"sent/received {p.packets_sent}/{p.packets_received}, lost {p.packets_lost}, "
            f"probe timeouts {p.pto_count}")


def probe_words(p: QuicProbeTimeout) -> str:
    """One probe timeout that fired (RFC 9002 §6.2), in a line."""
    nth = "the first" if p.backoff == 1 else f"{p.backoff} in a row, each doubling the wait"
    pto = f"PTO {ms(p.pto_ms)}, " if p.pto_ms is not None else ""
    again = f": sent again the data of {', '.join(p.resent)}" if p.resent else ""
    return (f"probe timeout at {p.t_ms:.2f} ms: nothing acknowledged for {ms(p.waited_ms)} "
            f"({pto}{nth}; RFC 9002 §6.2){again}")


def _params(d: dict[str, object]) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in d.items() if v is not None]


def quic_view(span: SpanDoc, ctx: Context | None = None) -> QuicView:
    a = facts(span, QuicFacts)
    v = a.chain_verification
    flights = [c for c in span.children if c.name == "quic.flight"]
    close = None
    if a.close is not None:
        c = a.close
        close = (f"CONNECTION_CLOSE by the {c.by} ({c.error_space}) 0x{c.error_code:x}"
                 + (f" {c.error_name}" if c.error_name else "")
                 + (f": {c.reason}" if c.reason else ""))
    return QuicView(
        timing(span), problem(span.error), a.local, a.remote, a.version, a.alpn, a.cipher,
        a.group, a.sni, a.retry, a.our_cid, a.server_cid, a.original_dcid,
        [_flight(f) for f in flights],
        [PacketRow(p.direction == "sent", p.t_ms, p.space, p.number, p.bytes, p.datagram,
                   p.datagram_bytes, p.coalesced, list(p.frames), p.read_ms)
         for p in a.packets[:SHOWN_PACKETS]],
        a.packets_total, [message(m) for m in a.messages],
        [certificate(i, c) for i, c in enumerate(a.chain or [])],
        None if v is None else v.ok, v.reason if v is not None else a.verification,
        v.by if v is not None else "", path_words(a.path_after_handshake),
        path_words(a.path_end), a.handshake_done_ms, a.client_hello_build_ms,
        _params(a.server_transport_parameters), _params(a.local_transport_parameters), close,
        explain_span(span, ctx), bool(a.session_resumed), a.early_data,
        [probe_words(p) for p in a.probe_timeouts])


def _flight(span: SpanDoc) -> FlightRow:
    f = facts(span, QuicFlightFacts)
    return FlightRow(f.flight, f.direction == "sent", span.start_ms, f.datagrams, f.packets,
                     f.bytes, list(f.spaces), list(f.tls_messages))
