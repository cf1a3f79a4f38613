"""One view of each step of a journey (URL, DNS, TCP, TLS, HTTP, the server inside): what
every renderer shows about it, worked out once.

Each function takes one span of the journey's document and returns plain frozen dataclasses:
the values to show, the derived words (which DNS view answered, whether a repeated question
came from the resolver's cache, a walk hop's role, the NODATA wording), and the rows of the
tables the renderers draw (resolver questions, walk hops, TCP attempts and segments, TLS
messages and certificates). The terminal, the HTML report and the live page lay these out;
none of them reads a span's attributes itself. A step can be viewed alone (the live page views
each span as it ends) or as part of the whole journey (render/view.py).

Strings are the journey's own, not yet made safe: each renderer does that at its one exit
(render/visible.py for text, html.escape for HTML).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from whathappens.analysis.actors import zone_role

Span = dict[str, Any]


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


def problem(err: dict[str, Any] | None) -> Problem | None:
    if not err:
        return None
    code = err.get("code")
    exit_code = err.get("exit_code")
    return Problem(str(err.get("message")), None if code is None else str(code),
                   None if err.get("step") is None else str(err["step"]),
                   None if exit_code is None else int(exit_code))


def timing(span: Span) -> Timing:
    start = float(span.get("start_ms") or 0.0)
    end = start if span.get("end_ms") is None else float(span["end_ms"])
    took = span.get("duration_ms")
    return Timing(start, end, None if took is None else float(took),
                  str(span.get("step") or ""), span.get("layer"), bool(span.get("error")))


def attrs(span: Span | None) -> dict[str, Any]:
    a: dict[str, Any] = (span or {}).get("attrs") or {}
    return a


def child(span: Span | None, name: str) -> Span | None:
    return next((c for c in (span or {}).get("children") or [] if c.get("name") == name), None)


def walk(spans: list[Span]) -> list[Span]:
    """Every span of these trees, depth first, in order."""
    out: list[Span] = []
    for s in spans:
        out.append(s)
        out.extend(walk(s.get("children") or []))
    return out


def _strs(value: object) -> list[str]:
    return [str(x) for x in value] if isinstance(value, (list, tuple)) else []


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


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

    @property
    def origin_line(self) -> str:
        """``https://www.example.com``, with the host as the user typed it."""
        return f"{self.scheme}://{self.typed_as or self.host}"


def url_view(span: Span) -> UrlView:
    a = attrs(span)
    t, err = timing(span), problem(span.get("error"))
    if "host" not in a:
        return UrlView(t, err, str(a.get("input") or ""), parsed=False)
    uni = a.get("host_unicode")
    port = a.get("port")
    return UrlView(
        t, err, str(a.get("input") or ""), parsed=True, url=str(a.get("url") or ""),
        scheme=str(a.get("scheme") or ""), scheme_assumed=bool(a.get("scheme_assumed")),
        host=str(a.get("host")), typed_as=str(uni) if uni and uni != a.get("host") else None,
        host_kind=str(a.get("host_kind") or ""), port=None if port is None else int(port),
        port_explicit=bool(a.get("port_explicit")), path=str(a.get("path") or ""),
        query=_opt(a.get("query")), fragment=_opt(a.get("fragment")),
        request_target=str(a.get("request_target") or ""),
        registrable_domain=_opt(a.get("registrable_domain")),
        public_suffix=_opt(a.get("public_suffix")),
        hsts_preloaded=bool(a.get("hsts_preloaded")),
        upgraded_from_http=bool(a.get("upgraded_from_http")))


# -------------------------------------------------------------------------------- DNS
SOURCE_NAMES = {"dns.system": "system", "dns.resolver": "resolver", "dns.walk": "walk"}
USED_WORDS = {"none": "no lookup", "resolver": "the recursive resolver's answer",
              "walk": "the iterative walk's answer", "system": "the system resolver's answer"}
FASTER = "faster: served from the resolver's cache"
NOT_FASTER = "not faster: the resolver did not answer from a cache"


@dataclass(frozen=True)
class CacheCheck:
    """A question asked again: did the resolver answer it from its cache?"""

    faster: bool
    took_ms: float
    first_ms: float

    @property
    def verdict(self) -> str:
        return FASTER if self.faster else NOT_FASTER


@dataclass(frozen=True)
class QueryRow:
    """One question to the recursive resolver."""

    timing: Timing
    error: Problem | None
    qtype: str
    qname: str
    records: str                 # the records, or what came instead (NODATA, an rcode)
    ttl: int | None
    transport: str | None
    tcp_retry: bool
    purpose: str
    answer: list[str]            # the answer section as received
    cache: CacheCheck | None = None


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
    records: list[str]
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

    @property
    def answer(self) -> str:
        return ", ".join(self.addresses) or "no address"

    @property
    def used_words(self) -> str:
        return USED_WORDS.get(str(self.view_used), str(self.view_used))


def _records(a: dict[str, Any]) -> str:
    recs = ", ".join(_strs(a.get("records")))
    if recs:
        return recs
    rcode = str(a.get("rcode") or "")
    return f"no {a.get('qtype')} record (NODATA)" if rcode == "NOERROR" else rcode


def query_row(span: Span, first_a_ms: float | None = None) -> QueryRow:
    """A question to the resolver; ``first_a_ms``: the first A question's time, against which
    the same question asked again is judged (RFC 1034 §5.3.1: a resolver answers from its
    cache what it learnt, for the record's TTL)."""
    a = attrs(span)
    took = span.get("duration_ms")
    cache = None
    if "cache" in str(a.get("purpose") or "") and first_a_ms and took is not None:
        cache = CacheCheck(float(took) < first_a_ms / 2, float(took), first_a_ms)
    ttl = a.get("ttl")
    return QueryRow(timing(span), problem(span.get("error")), str(a.get("qtype") or ""),
                    str(a.get("qname") or ""), _records(a), None if ttl is None else int(ttl),
                    _opt(a.get("transport")), bool(a.get("tcp_retry")),
                    str(a.get("purpose") or ""), _strs(a.get("answer")), cache)


def hop_row(span: Span) -> HopRow:
    a = attrs(span)
    zone = str(a.get("zone") or "")
    return HopRow(
        timing(span), problem(span.get("error")), str(span.get("actor") or ""),
        zone_role(zone), str(a.get("server") or ""), str(a.get("address") or ""), zone,
        str(a.get("qname") or ""), str(a.get("qtype") or ""), int(a.get("depth") or 0),
        str(a.get("kind") or ""), str(a.get("referral_zone") or ""),
        _strs(a.get("referral_ns")), bool(a.get("glue")), _strs(a.get("answers")),
        _strs(a.get("records")), str(a.get("note") or ""), str(a.get("transport") or "udp"))


def _queries(view: Span) -> list[QueryRow]:
    rows: list[QueryRow] = []
    first: float | None = None
    for q in view.get("children") or []:
        rows.append(query_row(q, first))
        if attrs(q).get("qtype") == "A" and first is None and q.get("duration_ms") is not None:
            first = float(q["duration_ms"])
    return rows


def _questions(view: Span) -> list[WalkQuestion]:
    out = []
    for q in view.get("children") or []:
        a = attrs(q)
        hops = [hop_row(h) for h in walk(q.get("children") or []) if h.get("name") == "dns.hop"]
        out.append(WalkQuestion(str(a.get("qtype") or ""), str(a.get("qname") or ""),
                                str(a.get("outcome") or ""), _strs(a.get("records")), hops))
    return out


def dns_source(view: Span, used: str | None) -> DnsSource:
    a = attrs(view)
    kind = SOURCE_NAMES.get(str(view.get("name")), str(view.get("name")))
    port = a.get("port")
    return DnsSource(
        kind, kind == used, timing(view), problem(view.get("error")),
        str(view.get("actor") or ""), _strs(a.get("addresses")),
        hosts_file=bool(a.get("hosts_file_hit")), resolver=str(a.get("resolver") or ""),
        root_hints=str(a.get("root_hints") or ""), port=None if port is None else int(port),
        cname_chain=_strs(a.get("cname_chain")),
        queries=_queries(view) if kind == "resolver" else [],
        questions=_questions(view) if kind == "walk" else [])


def dns_view(span: Span) -> DnsView:
    a = attrs(span)
    used = _opt(a.get("view_used"))
    return DnsView(timing(span), problem(span.get("error")), str(a.get("host") or ""),
                   _strs(a.get("addresses")), used, _opt(a.get("note")) or None,
                   _strs(a.get("https_records")),
                   [dns_source(v, used) for v in span.get("children") or []])


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
    options: dict[str, object]
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
    tcp_info: dict[str, Any] | None      # the kernel's TCP_INFO at connect
    tcp_info_end: dict[str, Any] | None  # … after the exchange
    segments: list[Segment]
    captured: bool | None                # None: no capture was tried
    capture_how: str
    capture_why: str

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


def _segment(seg: dict[str, Any]) -> Segment:
    def num(k: str) -> int | None:
        return None if seg.get(k) is None else int(seg[k])

    t = seg.get("t_ms")
    return Segment(str(seg.get("segment") or ""), str(seg.get("from")), str(seg.get("to")),
                   num("seq"), num("ack"), num("window"), dict(seg.get("options") or {}),
                   None if t is None else float(t))


def tcp_view(span: Span) -> TcpView:
    a = attrs(span)
    kids = span.get("children") or []
    info = next((attrs(c).get("tcp_info") for c in kids
                 if attrs(c).get("outcome") == "connected"), None)
    capture = a.get("capture") or {}
    segs = a.get("handshake_segments") or a.get("segments_seen") or []
    return TcpView(
        timing(span), problem(span.get("error")), str(a.get("local") or ""),
        str(a.get("remote") or ""), str(a.get("family") or ""), str(a.get("address") or ""),
        bool(a.get("happy_eyeballs")),
        [Attempt(str(attrs(c).get("family")), str(attrs(c).get("address")),
                 str(attrs(c).get("outcome")),
                 None if c.get("duration_ms") is None else float(c["duration_ms"]))
         for c in kids],
        dict(info) if info else None, dict(a["tcp_info_end"]) if a.get("tcp_info_end") else None,
        [_segment(s) for s in segs], None if not capture else bool(capture.get("captured")),
        str(capture.get("how") or ""), str(capture.get("why") or ""))


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


def message(m: dict[str, Any]) -> Message:
    def num(k: str) -> float | None:
        return None if m.get(k) is None else float(m[k])

    size = m.get("bytes")
    return Message(m.get("direction") == "sent", str(m.get("type")), num("t_ms"),
                   num("since_client_hello_ms"), None if size is None else int(size))


def certificate(i: int, c: dict[str, Any]) -> Certificate:
    days, scts = c.get("days_left"), c.get("sct_count")
    return Certificate(
        i == 0, str(c.get("subject_cn") or c.get("subject")), str(c.get("subject") or ""),
        _opt(c.get("unreadable")) or None, str(c.get("issuer_cn") or c.get("issuer")),
        str(c.get("not_before") or "")[:10], str(c.get("not_after") or "")[:10],
        None if days is None else int(days), str(c.get("key")),
        str(c.get("signature_algorithm")), _strs(c.get("san_dns")) + _strs(c.get("san_ip")),
        None if scts is None else int(scts), str(c.get("serial") or ""),
        str(c.get("sha256") or ""))


def tls_view(span: Span) -> TlsView:
    a = attrs(span)
    v = a.get("chain_verification") or {}
    bits = a.get("cipher_bits")
    return TlsView(
        timing(span), problem(span.get("error")), _opt(a.get("version")) or None,
        _opt(a.get("cipher")) or None, None if not bits else int(bits),
        _opt(a.get("group")) or None, _opt(a.get("alpn")) or None, _strs(a.get("alpn_offered")),
        _opt(a.get("sni")) or None, bool(a.get("session_reused")),
        [message(m) for m in a.get("messages") or []],
        [certificate(i, c) for i, c in enumerate(a.get("chain") or [])],
        bool(v.get("ok")) if v else None,
        str(v.get("reason") if v else a.get("verification") or ""), str(v.get("by") or ""))


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


def _server_facts(kind: str, a: dict[str, Any]) -> str:
    g = a.get
    if kind == "edge":
        return f"cache {g('cache', '-')}  status {g('status')}"
    if kind == "lb":
        return (f"{g('algorithm')} → {g('server')}  queue {g('Tw')} ms, connect {g('Tc')} ms, "
                f"response {g('Tr')} ms")
    if kind == "app":
        return f"micro-cache {g('cache', '-')}  upstream {g('upstream_response_time', '-')} s"
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
    return ""


def server_node(span: Span) -> ServerNode:
    a = attrs(span)
    kind = str(span.get("name") or "").removeprefix("server.")
    took = span.get("duration_ms")
    return ServerNode(
        kind, str(span.get("name") or ""), str(span.get("actor") or ""),
        None if took is None else float(took), _server_facts(kind, a),
        [(str(k), str(v)) for k, v in a.items()
         if k != "explain" and not isinstance(v, (dict, list))],
        str(a["explain"]) if a.get("explain") else None,
        [server_node(c) for c in span.get("children") or []])


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def http_view(span: Span) -> HttpView:
    a = attrs(span)
    status = a.get("status")
    excerpt = a.get("body_excerpt")
    return HttpView(
        timing(span), problem(span.get("error")), "status" in a,
        str(a.get("protocol") or ""), str(a.get("http_version") or ""),
        None if status is None else int(status), str(a.get("reason") or ""),
        _float(a.get("wait_ms")), _float(a.get("send_ms")), _float(a.get("receive_ms")),
        _int(a.get("wire_bytes_sent")), _int(a.get("wire_bytes_received")),
        _int(a.get("body_bytes_encoded")), _int(a.get("body_bytes_decoded")),
        ",".join(_strs(a.get("content_encoding"))) or "identity",
        [(str(n), str(v)) for n, v in a.get("request_headers") or []],
        [(str(n), str(v)) for n, v in a.get("response_headers") or []],
        str(excerpt) if excerpt else None, bool(a.get("reusable")),
        _int(a.get("connection_legs")) or None,
        [server_node(c) for c in span.get("children") or []
         if str(c.get("name") or "").startswith("server.")])


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


def leg_view(span: Span) -> LegView:
    a = attrs(span)
    kids = span.get("children") or []
    index = int(a.get("index") or 0)
    dns, tcp, tls, http = (child(span, n) for n in ("dns", "tcp", "tls", "http"))
    return LegView(
        timing(span), problem(span.get("error")), index, index + 1,
        str(a.get("method") or "GET"), str(a.get("url") or ""),
        str(a.get("connection") or "new"),
        None if dns is None else dns_view(dns), None if tcp is None else tcp_view(tcp),
        None if tls is None else tls_view(tls), None if http is None else http_view(http),
        [StepRef(str(c.get("name")), timing(c), problem(c.get("error"))) for c in kids],
        any(c.get("error") for c in kids))
