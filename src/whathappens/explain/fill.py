"""Fill a span's texts (explain/texts.py) with the values this journey measured.

Pure: :func:`explain_span` takes one span of the typed journey document (``SpanDoc``, its
facts typed by its name) and, for a span inside a request, the request around it
(:class:`Context`: the leg's facts, the response that redirected to it), and returns the
filled :class:`~whathappens.explain.texts.Explanation`. The values are the span's facts,
formatted the way every report writes numbers (render/format.py), plus a few worked out from
them by the ``derive`` functions below (each declares the names it gives, so the test can
check every template against them). A sentence that names a value the span does not have is
left out: a text is never "None", never a made-up value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from whathappens.analysis.actors import zone_role
from whathappens.analysis.resolver_cache import original_ttls, resolver_checks
from whathappens.contract.codec import to_json
from whathappens.contract.document import SpanDoc, TlsCompare
from whathappens.contract.facts import (
    BrowserMarkFacts,
    BrowserStageFacts,
    DnsFacts,
    DnsHopFacts,
    DnsQueryFacts,
    DnsRecursionFacts,
    DnsResolverFacts,
    Facts,
    HttpFacts,
    LegFacts,
    QuicFacts,
    QuicFlightFacts,
    ServerFacts,
    TcpConnectFacts,
    TcpFacts,
    TlsFacts,
    UrlFacts,
    facts_class,
)
from whathappens.explain import phrases as P
from whathappens.explain.browser import STAGES
from whathappens.explain.texts import SPAN_TEXTS, Explanation, SpanText
from whathappens.explain.words import plural, validity
from whathappens.render.format import ms, precise_ms

Value = str | bool | None
Values = dict[str, Value]

SLOT = re.compile(r"\{(?:(if|not):)?([A-Za-z_][A-Za-z_0-9]*)\}")
PLAIN_INTS = ("pid", "port", "id", "status", "index", "code", "depth")
# Every span has these, whatever its kind.
COMMON = frozenset({"took", "at"})


@dataclass(frozen=True)
class Context:
    """Where a span sits: the request (leg) it belongs to, and the one before it."""

    leg: LegFacts | None = None
    previous: HttpFacts | None = None       # the response that sent this request here
    previous_number: int | None = None


# ------------------------------------------------------------------------------ the engine
def slots(template: str) -> list[str]:
    """The value names a template uses."""
    return [m[2] for m in SLOT.finditer(template)]


def sentence(template: str, values: Mapping[str, Value]) -> str | None:
    """The template filled, or None when a value it needs is absent (or a condition fails)."""
    for m in SLOT.finditer(template):
        cond, v = m[1], values.get(m[2])
        if (cond == "if" and not v) or (cond == "not" and v is not False):
            return None
        if cond is None and v is None:
            return None

    def put(m: re.Match[str]) -> str:
        if m[1]:
            return ""
        v = values[m[2]]
        return ("yes" if v else "no") if isinstance(v, bool) else str(v)

    return SLOT.sub(put, template).strip()


def fill(parts: Iterable[str], values: Mapping[str, Value]) -> str:
    return " ".join(s for s in (sentence(t, values) for t in parts) if s)


def fill_text(text: SpanText, values: Mapping[str, Value]) -> Explanation:
    return Explanation(text.title, fill(text.beginner, values), fill(text.advanced, values),
                       fill(text.measures, values))


def value(name: str, v: object) -> Value:
    """A fact as a template shows it; None when there is nothing to show."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        # Numbers that name something (a port, a process, a status) are not quantities.
        return str(v) if name.lower().endswith(PLAIN_INTS) else f"{v:,}"
    if isinstance(v, float):
        return ms(v) if name.endswith("_ms") else f"{v:g}"
    if isinstance(v, str):
        return v or None
    if isinstance(v, list | tuple) and v and all(isinstance(x, str) for x in v):
        return ", ".join(v)
    return None


def fact_values(facts: Facts) -> Values:
    data = to_json(facts)
    if not isinstance(data, dict):
        return {}
    return {k: value(k, v) for k, v in data.items()}


# ------------------------------------------------------------------------- derived values
Derive = Callable[[SpanDoc, Context], Values]
DERIVE: dict[str, Derive] = {}
DERIVED_SLOTS: dict[str, frozenset[str]] = {}


def derive(name: str, *names: str) -> Callable[[Derive], Derive]:
    """Register the values worked out for spans called ``name`` (declaring their names)."""
    def register(f: Derive) -> Derive:
        DERIVE[name] = f
        DERIVED_SLOTS[name] = frozenset(names)
        return f
    return register


def allowed_slots(name: str) -> frozenset[str]:
    """The value names a template of span ``name`` may use: its facts' fields, what its tier
    logs (lab spans), what ``derive`` gives, and the common ones."""
    from whathappens.explain.texts import LOGGED
    if name == "tls-compare":
        return COMPARE_SLOTS
    cls = ServerFacts if name.startswith("server") else HttpFacts \
        if name in ("response", "page") else facts_class(name)
    own = {f.name for f in fields(cls)}
    kind = name.removeprefix("server.")
    logged = set(LOGGED.get(kind, ())) if name.startswith("server.") else set()
    return frozenset(own | logged | DERIVED_SLOTS.get(name, frozenset()) | COMMON)


@derive("url", "hsts_words")
def _url(span: SpanDoc, ctx: Context) -> Values:
    u = span.facts_as(UrlFacts) or UrlFacts()
    if not u.host:
        return {}
    words = P.HSTS_PRELOADED if u.hsts_preloaded else P.HSTS_NOT
    return {"hsts_words": words.format(host=u.host)}


_FLIGHT_WORDS = {
    "client_initial": "our Initial, with the ClientHello inside",
    "retry": "the server's Retry: prove your address with this token",
    "server_handshake": "the server's Initial and Handshake packets: ServerHello, then "
                        "(encrypted) its extensions, certificate, proof and Finished",
    "client_ack": "our acknowledgements of what the server sent so far",
    "client_finished": "our Finished: the handshake is complete on our side",
}


@derive("quic.flight", "direction_words", "flight_words", "spaces_words", "messages_words")
def _quic_flight(span: SpanDoc, ctx: Context) -> Values:
    f = span.facts_as(QuicFlightFacts) or QuicFlightFacts()
    return {"direction_words": "We sent" if f.direction == "sent" else "The server sent",
            "flight_words": _FLIGHT_WORDS.get(f.flight, f.flight or None),
            "spaces_words": ", ".join(f.spaces) or None,
            "messages_words": ", ".join(f.tls_messages) or "none"}


@derive("quic", "srtt", "rttvar", "min_rtt", "cwnd", "pto_words")
def _quic(span: SpanDoc, ctx: Context) -> Values:
    q = span.facts_as(QuicFacts) or QuicFacts()
    p = q.path_end or q.path_after_handshake
    if p is None:
        return {}
    pto = ("no probe timeout fired" if p.pto_count == 0 else
           f"{p.pto_count} probe timeout(s) fired, each resending data (RFC 9002 §6.2)")
    return {"srtt": ms(p.smoothed_rtt_ms) if p.smoothed_rtt_ms is not None else None,
            "rttvar": ms(p.rttvar_ms) if p.rttvar_ms is not None else None,
            "min_rtt": ms(p.min_rtt_ms) if p.min_rtt_ms is not None else None,
            "cwnd": f"{p.cwnd_bytes:,} bytes",
            "pto_words": pto + (f", {p.packets_lost} packet(s) declared lost"
                                if p.packets_lost else "")}


STEP_WORDS = {"dns": "a DNS lookup", "quic": "a QUIC handshake (TLS 1.3 inside it)",
              "tcp": "a TCP handshake", "tls": "a TLS handshake"}


@derive("leg", "first", "redirected", "reused", "number", "previous_number",
        "previous_status", "previous_status_words", "steps_words")
def _leg(span: SpanDoc, ctx: Context) -> Values:
    leg = span.facts_as(LegFacts) or LegFacts()
    prev = ctx.previous
    out: Values = {"first": leg.index == 0, "redirected": prev is not None,
                   "number": str(leg.index + 1),
                   "reused": None if leg.connection is None else leg.connection == "reused",
                   "steps_words": ", ".join(STEP_WORDS[c.name] for c in span.children
                                            if c.name in STEP_WORDS) or None}
    if prev is not None and prev.status is not None:
        out["previous_number"] = str(ctx.previous_number or leg.index)
        out["previous_status"] = f"{prev.status} {prev.reason or ''}".strip()
        out["previous_status_words"] = status_words(prev.status)
    return out


def status_words(status: int) -> str | None:
    """What a status says, in plain words; its class's words for a rarer one."""
    return P.STATUS.get(status) or P.STATUS_CLASS.get(status // 100)


@derive("redirect", "error_message")
def _redirect(span: SpanDoc, ctx: Context) -> Values:
    return {"error_message": span.error.message if span.error else None}


def _views(span: SpanDoc) -> dict[str, SpanDoc]:
    return {c.name: c for c in span.children}


def walk_path(walk: SpanDoc) -> str | None:
    """The servers the walk's first question went through: root → TLD → authoritative."""
    question = next((q for q in walk.children if q.name == "dns.walk.question"), None)
    if question is None:
        return None
    hops = [h.facts_as(DnsHopFacts) for h in question.walk() if h.name == "dns.hop"]
    names = [f"{h.server.rstrip('.')} ({h.zone})" for h in hops
             if h is not None and h.depth == 0]
    return " → ".join(names) or None


def resolver_ttl_words(resolver: SpanDoc, dns: SpanDoc) -> str | None:
    """The resolver's first A answer judged by its TTL against the zone's own (RFC 1035 §7.4),
    with analysis/resolver_cache.py's allowance for a fresh answer's whole-second loss."""
    r = resolver.facts_as(DnsResolverFacts)
    original = original_ttls(dns)
    check = next(iter(resolver_checks(resolver, original).values()), None)
    if r is None or r.first_ttl is None or check is None or check.first_cached is None \
            or check.original_ttl is None:
        return None
    words = P.TTL_CACHED if check.first_cached else P.TTL_FRESH
    return words.format(left=f"{r.first_ttl:,}", full=f"{check.original_ttl:,}",
                        slack=check.slack_s)


@derive("dns", "views_ran", "system_ran", "resolver_ran", "walk_ran", "resolver",
        "used_words", "walk_path", "resolver_cache_words", "first_lookup")
def _dns(span: SpanDoc, ctx: Context) -> Values:
    d = span.facts_as(DnsFacts) or DnsFacts()
    views = _views(span)
    resolver = views.get("dns.resolver")
    walk = views.get("dns.walk")
    r = resolver.facts_as(DnsResolverFacts) if resolver else None
    return {
        "views_ran": ", ".join(P.VIEW[n] for n in views if n in P.VIEW) or None,
        "system_ran": "dns.system" in views, "resolver_ran": resolver is not None,
        "walk_ran": walk is not None,
        "first_lookup": None if ctx.leg is None else ctx.leg.index == 0,
        "resolver": r.resolver if r else None,
        "used_words": P.USED.get(d.view_used or "", d.view_used),
        "walk_path": walk_path(walk) if walk else None,
        "resolver_cache_words": (resolver_ttl_words(resolver, span) if resolver else None)
        or (_repeat_words(resolver) if resolver else None),
    }


def _repeat_words(resolver: SpanDoc) -> str | None:
    r = resolver.facts_as(DnsResolverFacts)
    check = next(iter(resolver_checks(resolver).values()), None)
    if check is None or r is None:
        return None
    words = P.REPEAT_FASTER if check.faster else P.REPEAT_NOT_FASTER
    ttl = "?" if r.repeat_ttl is None else f"{r.repeat_ttl:,}"
    return words.format(again=ms(check.took_ms), first=ms(check.first_ms), ttl=ttl)


@derive("dns.resolver", "cache_words")
def _resolver(span: SpanDoc, ctx: Context) -> Values:
    return {"cache_words": _repeat_words(span)}


@derive("dns.walk", "walk_path")
def _walk(span: SpanDoc, ctx: Context) -> Values:
    return {"walk_path": walk_path(span)}


@derive("dns.recursion", "repeat_words")
def _recursion(span: SpanDoc, ctx: Context) -> Values:
    r = span.facts_as(DnsRecursionFacts) or DnsRecursionFacts()
    if r.repeat_upstream is None:
        return {"repeat_words": None}
    if r.repeat_upstream == 0:
        return {"repeat_words": "The same question asked again sent nothing upstream: Unbound "
                                "answered it from its cache (what the TTL alone could not "
                                "always tell)."}
    return {"repeat_words": f"Even the question asked again made it ask {r.repeat_upstream} "
                            "question(s) upstream: the first answer was not cached yet."}


@derive("dns.query", "answer_words")
def _query(span: SpanDoc, ctx: Context) -> Values:
    q = span.facts_as(DnsQueryFacts) or DnsQueryFacts()
    if span.error is not None:
        return {"answer_words": f"It failed: {span.error.message}"}
    if q.records:
        return {"answer_words": f"The answer: {', '.join(q.records)}."}
    if q.rcode == "NOERROR":
        return {"answer_words": f"The name exists but has no {q.qtype} record (NODATA)."}
    return {"answer_words": f"The answer: {q.rcode}." if q.rcode else None}


@derive("dns.hop", "role", "kind_words")
def _hop(span: SpanDoc, ctx: Context) -> Values:
    h = span.facts_as(DnsHopFacts) or DnsHopFacts()
    words = P.HOP_KIND.get(h.kind, h.kind or "no answer")
    words = words.format(referral_zone=h.referral_zone or "a lower zone",
                         cname_target=h.cname_target or "another name")
    return {"role": zone_role(h.zone) if h.zone else P.HOP_ROLE_DEFAULT,
            "kind_words": words + "."}


@derive("tcp", "rtt", "rttvar", "mss", "cwnd", "segments_words", "segs_out", "segs_in",
        "retransmits", "rtt_near", "rtt_multiple", "attempts_words")
def _tcp(span: SpanDoc, ctx: Context) -> Values:
    t = span.facts_as(TcpFacts) or TcpFacts()
    info = next((c.tcp_info for c in (x.facts_as(TcpConnectFacts) for x in span.children)
                 if c is not None and c.outcome == "connected" and c.tcp_info), None)
    out: Values = {"attempts_words": plural(t.attempts, "attempt")
                   if t.attempts is not None else None}
    if info is not None:
        out |= {"rtt": precise_ms(info.rtt_ms), "rttvar": precise_ms(info.rttvar_ms),
                "mss": f"{info.snd_mss:,}", "cwnd": f"{info.snd_cwnd:,}"}
        if span.duration_ms is not None and info.rtt_ms > 0:
            x = span.duration_ms / info.rtt_ms
            out |= {"rtt_near": x <= 2, "rtt_multiple": f"{x:,.0f}" if x >= 10 else f"{x:.1f}"}
    end = t.tcp_info_end
    if end is not None:
        out |= {"segs_out": f"{end.segs_out:,}", "segs_in": f"{end.segs_in:,}",
                "retransmits": f"{end.total_retrans:,}"}
    segs = t.handshake_segments or []
    if len(segs) == 3:
        syn, synack, ack = segs
        out["segments_words"] = (f"SYN seq {syn.seq}, SYN-ACK seq {synack.seq} ack "
                                 f"{synack.ack}, ACK ack {ack.ack}")
    return out


def _alpn_words(alpn: str | None) -> str | None:
    return None if not alpn else f"{P.ALPN.get(alpn, alpn)} (ALPN {alpn})"


@derive("tls", "server_name", "round_trip_words", "alpn_words", "leaf_name", "leaf_issuer",
        "leaf_validity", "version_words", "chain_length", "verification_words",
        "handshake_ms", "handshake_end", "verified")
def _tls(span: SpanDoc, ctx: Context) -> Values:
    t = span.facts_as(TlsFacts) or TlsFacts()
    leaf = t.chain[0] if t.chain else None
    v = t.chain_verification
    handshake = None
    if span.duration_ms is not None and t.context_setup_ms is not None:
        handshake = ms(max(span.duration_ms - t.context_setup_ms, 0.0))
    rtts = P.TLS_ROUND_TRIPS.get(t.version or "")
    if rtts and t.hello_retry_request:
        rtts += " plus one for the HelloRetryRequest"
    host = t.sni or (urlsplit(ctx.leg.url).hostname if ctx.leg else None)
    return {
        "server_name": host, "alpn_words": _alpn_words(t.alpn),
        "round_trip_words": f"{rtts} ({ms(span.duration_ms)} for the whole step)"
        if rtts else None,
        "leaf_name": (leaf.subject_cn or leaf.subject) if leaf else None,
        "leaf_issuer": (leaf.issuer_cn or leaf.issuer) if leaf else None,
        "leaf_validity": validity(leaf.days_left) if leaf and leaf.days_left is not None
        else None,
        "version_words": P.TLS_VERSION.get(t.version or ""),
        "chain_length": (f"{len(t.chain)} certificate" + ("s" if len(t.chain) != 1 else ""))
        if t.chain else None,
        "verification_words": ((v.reason if v is not None else t.verification) or "")
        .rstrip(".") or None,
        "verified": None if v is None else v.ok,
        "handshake_ms": handshake, "handshake_end": handshake_end(span.error is None),
    }


def handshake_end(ok: bool) -> str:
    """Where the TLS step's handshake part ends: our Finished, or where it stopped."""
    return "our Finished sent" if ok else "the handshake stopped"


def _header(h: HttpFacts, name: str) -> str | None:
    return next((v for n, v in h.response_headers if n.lower() == name), None)


def _request_header(h: HttpFacts, name: str) -> str | None:
    return next((v for n, v in h.request_headers if n.lower() == name), None)


@derive("http", "method", "path", "host", "status_line", "status_words", "status_class",
        "location", "encoding_words", "protocol_words", "server_timing", "shared_by",
        "server_header", "body_words")
def _http(span: SpanDoc, ctx: Context) -> Values:
    h = span.facts_as(HttpFacts) or HttpFacts()
    url = urlsplit(ctx.leg.url) if ctx.leg is not None and ctx.leg.url else None
    path = _request_header(h, ":path")
    if path is None and url is not None:
        path = url.path or "/"
        path += f"?{url.query}" if url.query else ""
    host = _request_header(h, ":authority") or _request_header(h, "host") or (
        url.netloc if url is not None else None)
    method = _request_header(h, ":method") or (ctx.leg.method if ctx.leg else None)
    enc = [e for e in h.content_encoding if e != "identity"]
    status = h.status
    return {
        "method": method, "path": path, "host": host,
        "status_line": f"{status} {h.reason or ''}".strip() if status is not None else None,
        "body_words": plural(h.body_bytes_decoded, "byte") if h.body_bytes_decoded else None,
        "shared_by": f"{h.connection_legs:,}" if (h.connection_legs or 0) > 1 else None,
        "status_words": status_words(status) if status is not None else None,
        "status_class": P.STATUS_CLASS.get(status // 100) if status is not None else None,
        "location": _header(h, "location") if status and 300 <= status < 400 else None,
        "encoding_words": f", sent compressed with {', '.join(enc)}" if enc else "",
        "protocol_words": P.PROTOCOL.get(h.http_version or ""),
        "server_timing": _header(h, "server-timing"),
        "server_header": _header(h, "server"),
    }


@derive("response", "inside_return", "has_inside", "wait_ms", "receive_ms",
        "wire_bytes_received", "server_timing", "server_header", "encryption_words")
def _response(span: SpanDoc, ctx: Context) -> Values:
    h = span.facts_as(HttpFacts) or HttpFacts()
    tiers = [tier_name(c) for c in _server_chain(span)]
    back = " → ".join(reversed(tiers))
    return {
        "inside_return": back or None, "has_inside": bool(back),
        "encryption_words": _encryption(ctx),
        "server_header": _header(h, "server"),
        "wait_ms": ms(h.wait_ms) if h.wait_ms is not None else None,
        "receive_ms": ms(h.receive_ms) if h.receive_ms is not None else None,
        "wire_bytes_received": value("n", h.wire_bytes_received),
        "server_timing": _header(h, "server-timing"),
    }


def tier_name(span: SpanDoc) -> str:
    """``Django on app-1-gunicorn``, ``lb``: the tier as its lab host calls it."""
    tier = (span.facts_as(ServerFacts) or ServerFacts()).tier or span.actor
    return f"Django on {tier}" if span.name == "server.django" else tier


def _encryption(ctx: Context) -> str:
    """How the answer travels the last stretch: in TLS, or readable by anyone on the path."""
    scheme = urlsplit(ctx.leg.url).scheme if ctx.leg is not None and ctx.leg.url else ""
    return {"https": ", inside the same encryption",
            "http": ", in the clear (plain http: anyone on the path can read it)"}.get(scheme, "")


def _server_chain(span: SpanDoc) -> list[SpanDoc]:
    """The lab tiers a request went through, outside in (edge, LB, app nginx, Django)."""
    out: list[SpanDoc] = []
    node: SpanDoc | None = span
    while node is not None:
        node = next((c for c in node.children if c.name in OUTER_TIERS), None)
        if node is not None:
            out.append(node)
    return out


OUTER_TIERS = ("server.edge", "server.pop", "server.lb", "server.app", "server.django")


# ------------------------------------------------------------------------------ the lab
def server_values(span: SpanDoc) -> dict[str, object]:
    """A tier span's facts as its log had them (the named ones and what rode along)."""
    data = to_json(span.facts_as(ServerFacts) or ServerFacts())
    return dict(data) if isinstance(data, dict) else {}


def _seconds_ms(v: object) -> str | None:
    """nginx's ``0.004`` (seconds, millisecond resolution) as ``4 ms``: whole milliseconds,
    as precise as the log; None when it is not one number."""
    try:
        return f"{round(float(str(v)) * 1000):,} ms" if v not in (None, "", "-") else None
    except ValueError:
        return None


def _nginx(span: SpanDoc, ctx: Context) -> Values:
    a = server_values(span)
    cache = a.get("cache")
    return {
        "upstream_connect_ms": _seconds_ms(a.get("upstream_connect_time")),
        "upstream_header_ms": _seconds_ms(a.get("upstream_header_time")),
        "upstream_response_ms": _seconds_ms(a.get("upstream_response_time")),
        "request_ms": _seconds_ms(a.get("request_time")),
        "cache_words": P.CACHE.get(str(cache).upper(), None) if cache else P.CACHE_NONE,
    }


NGINX_SLOTS = ("upstream_connect_ms", "upstream_header_ms", "upstream_response_ms",
               "request_ms", "cache_words")
derive("server.edge", *NGINX_SLOTS)(_nginx)
derive("server.app", *NGINX_SLOTS)(_nginx)


@derive("server.lb", "algorithm_words", "algorithm_mechanism", "termination_words")
def _lb(span: SpanDoc, ctx: Context) -> Values:
    a = server_values(span)
    algo = P.ALGORITHM.get(str(a.get("algorithm")))
    term = str(a.get("termination") or "")
    return {"algorithm_words": algo[0] if algo else None,
            "algorithm_mechanism": algo[1] if algo else None,
            "termination_words": P.TERMINATION.get(term[:2]) if term else None}


@derive("server.sql", "sql_short", "via_pgbouncer", "replica", "plan_first")
def _sql(span: SpanDoc, ctx: Context) -> Values:
    a = server_values(span)
    sql = " ".join(str(a.get("sql") or "").split())
    plan = [line.strip().removeprefix("->").strip()
            for line in str(a.get("explain") or "").strip().splitlines()]
    scan = next((line for line in plan if "Scan" in line), plan[0] if plan else None)
    return {"sql_short": (sql[:117] + "…" if len(sql) > 120 else sql) or None,
            "via_pgbouncer": "PgBouncer" in span.actor,
            "replica": a.get("alias") == "replica",
            "plan_first": scan or None}


@derive("server.redis", "result_words")
def _redis(span: SpanDoc, ctx: Context) -> Values:
    result = server_values(span).get("result")
    return {"result_words": P.REDIS_RESULT.get(str(result), str(result)) if result
            else "done"}


# --------------------------------------------------------------------------- the browser
@derive("browser.stage", "stage_words")
def _stage(span: SpanDoc, ctx: Context) -> Values:
    s = span.facts_as(BrowserStageFacts) or BrowserStageFacts()
    text = STAGES.get(s.stage)
    if text is None:
        return {}
    times = "once" if s.count == 1 else f"{s.count} times"
    words = text.template.format(took=ms(span.duration_ms), times=times,
                                 at=f"{span.start_ms:.1f} ms", what=s.url or "the page")
    return {"stage_words": words}


@derive("browser.mark", "mark_words")
def _mark(span: SpanDoc, ctx: Context) -> Values:
    m = span.facts_as(BrowserMarkFacts) or BrowserMarkFacts()
    return {"mark_words": P.MARK.get(m.mark)}


# ------------------------------------------------------------------------------- the API
def text_for(name: str) -> SpanText | None:
    if name in SPAN_TEXTS:
        return SPAN_TEXTS[name]
    return SPAN_TEXTS["server"] if name.startswith("server.") else None


def span_values(span: SpanDoc, ctx: Context, name: str | None = None) -> Values:
    """Every value a template of ``name`` (default: the span's name) may use."""
    name = name or span.name
    base = ({k: value(k, v) for k, v in server_values(span).items()}
            if span.name.startswith("server.") else fact_values(span.facts))
    base |= {"took": ms(span.duration_ms) if span.duration_ms is not None else None,
             "at": f"{span.start_ms:.2f} ms"}
    derived = DERIVE.get(name)
    return base | (derived(span, ctx) if derived is not None else {})


def explain_span(span: SpanDoc, ctx: Context | None = None) -> Explanation | None:
    """The span's texts filled with its values; None for a kind with no texts."""
    text = text_for(span.name)
    if text is None:
        return None
    return fill_text(text, span_values(span, ctx or Context()))


def explain_response(http: SpanDoc, ctx: Context | None = None) -> Explanation:
    """The answer's way back out, from an ``http`` span (and the lab tiers under it)."""
    return fill_text(SPAN_TEXTS["response"], span_values(http, ctx or Context(), "response"))


@derive("page", "content_type", "html")
def _page(span: SpanDoc, ctx: Context) -> Values:
    h = span.facts_as(HttpFacts) or HttpFacts()
    kind = (_header(h, "content-type") or "").split(";")[0].strip()
    return {"content_type": kind or None, "html": "html" in kind if kind else None}


def explain_page(spans: Iterable[SpanDoc]) -> Explanation | None:
    """After the last answer, what a browser would do with it (when the journey did not
    load the page in a browser itself)."""
    https = [s for top in spans if top.name == "leg" for s in top.children if s.name == "http"]
    final = https[-1] if https else None
    h = final.facts_as(HttpFacts) if final is not None else None
    if final is None or h is None or h.status is None or not 200 <= h.status < 300:
        return None
    return fill_text(SPAN_TEXTS["page"], span_values(final, Context(), "page"))


def leg_contexts(spans: Iterable[SpanDoc]) -> dict[int, Context]:
    """Each leg's context, by the leg span's id: its facts and the response before it."""
    out: dict[int, Context] = {}
    previous: HttpFacts | None = None
    number = 0
    for span in spans:
        if span.name != "leg":
            continue
        leg = span.facts_as(LegFacts)
        out[span.id] = Context(leg, previous, number or None)
        http = span.child("http")
        previous = http.facts_as(HttpFacts) if http is not None else None
        number = (leg.index + 1) if leg is not None else number + 1
    return out


# ------------------------------------------------------------------ TLS 1.2 vs TLS 1.3
COMPARE_SLOTS = frozenset({"v12_ms", "v13_ms", "v12_round_trips", "v13_round_trips",
                           "round_trip_difference", "rtt", "expected", "measured", "rounds",
                           "slower_13"})


def explain_compare(tc: TlsCompare | None) -> Explanation | None:
    """The comparison's texts with its medians (a journey fact, not a span)."""
    if tc is None or not tc.measured:
        return None
    values: Values = {"rounds": value("rounds", tc.rounds)}
    for v in tc.versions:
        key = "v12" if v.version == "1.2" else "v13" if v.version == "1.3" else None
        if key and v.handshake_ms is not None:
            values[f"{key}_ms"] = ms(v.handshake_ms)
            if v.round_trips is not None:
                values[f"{key}_round_trips"] = plural(v.round_trips, "round trip")
    took = {v.version: v.handshake_ms for v in tc.versions if v.handshake_ms is not None}
    if "1.2" in took and "1.3" in took:
        values["slower_13"] = took["1.3"] >= took["1.2"]
    m = tc.model
    if m is not None and m.available:
        values |= {"round_trip_difference": value("n", m.round_trip_difference),
                   "rtt": precise_ms(m.rtt_ms) if m.rtt_ms is not None else None,
                   "expected": precise_ms(m.expected_difference_ms)
                   if m.expected_difference_ms is not None else None,
                   "measured": ms(m.measured_difference_ms)
                   if m.measured_difference_ms is not None else None}
    return fill_text(SPAN_TEXTS["tls-compare"], values)
