"""The journey as one self-contained HTML page (``whathappens URL --html report.html``).

Everything is inline — styles (render/report.css, read once and put in the page's one
``<style>``), no scripts needed, no font, no image, no link to anywhere — so the file opens
offline and makes no request; a strict Content-Security-Policy says so to the browser too.
The page lays out the journey's view (render/view.py): no value is worked out here. Every
value taken from the journey (headers, certificate fields, DNS names, URLs, error messages)
goes through :func:`esc` (``html.escape(..., quote=True)``), which first shows control
characters as visible escapes (render/visible.py: C0, C1, the bidi controls that reorder what
a reader sees, zero-width characters); the one place the journey enters a ``<script>``
element is the inert ``application/json`` data block, written by :func:`script_json`, which
escapes ``<``, ``>``, ``&`` and the same control characters as ``\\u`` escapes (the values
stay the journey's). The beginner/advanced switch is two radio buttons and CSS, so it works
with the keyboard and without JavaScript.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from whathappens.explain import report as words
from whathappens.explain.fill import handshake_end
from whathappens.explain.texts import STEPS, Explanation
from whathappens.render.compare import TITLE as COMPARE_TITLE
from whathappens.render.compare import Cell, CompareView
from whathappens.render.format import DASH, at, ms, size, three
from whathappens.render.html_browser import browser_html
from whathappens.render.html_caching import caching_html
from whathappens.render.html_parts import code as _code
from whathappens.render.html_parts import dl as _dl
from whathappens.render.html_parts import esc as esc
from whathappens.render.html_parts import script_json as script_json
from whathappens.render.html_parts import section as _section
from whathappens.render.html_parts import table as _table
from whathappens.render.html_quic import http_compare_html, quic_html
from whathappens.render.html_security import security_html, who_html
from whathappens.render.html_wire import guide_html, wire_html
from whathappens.render.steps import (
    DnsSource,
    DnsView,
    HttpView,
    LegView,
    Message,
    Problem,
    RecursionView,
    ServerNode,
    TcpView,
    TlsView,
    tcp_info_fields,
)
from whathappens.render.view import (
    OCCASIONAL_SECTIONS,
    SECTIONS,
    BudgetView,
    journey_view,
    read,
    rule_views,
)

# No script-src: the page's one <script> is an inert JSON data block, which no policy runs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

# The report's stylesheet, inlined: the page stays one file that loads nothing.
CSS = "\n" + files("whathappens.render").joinpath("report.css").read_text(encoding="utf-8")


def _strong(v: object) -> str:
    return f"<strong>{esc(v)}</strong>"


def _explain(step: str) -> str:
    e = STEPS.get(step)
    if e is None:
        return ""
    return (f"<div class=\"explain beginner\"><p>{esc(e.beginner)}</p></div>"
            f"<div class=\"explain advanced\"><p>{esc(e.advanced)}</p></div>"
            f"<p class=\"measures\"><strong>What the time measures:</strong> "
            f"{esc(e.measures)}</p>")


def _explained(e: Explanation | None) -> str:
    """A span's texts, filled with this journey's values (explain/fill.py)."""
    if e is None:
        return ""
    measures = (f"<p class=\"measures\"><strong>What the time measures:</strong> "
                f"{esc(e.measures)}</p>") if e.measures else ""
    advanced = f"<div class=\"explain advanced\"><p>{esc(e.advanced)}</p></div>" \
        if e.advanced else ""
    return (f"<div class=\"explain beginner\"><p><strong>{esc(e.title)}.</strong> "
            f"{esc(e.beginner)}</p></div>" + advanced + measures)


def _both(beginner: str, advanced: str) -> str:
    return (f"<div class=\"explain beginner\"><p>{esc(beginner)}</p></div>"
            f"<div class=\"explain advanced\"><p>{esc(advanced)}</p></div>")


def _error(err: Problem | None) -> str:
    if err is None:
        return ""
    code = f" <span class=\"muted\">[{esc(err.code)}]</span>" if err.code else ""
    return f"<p class=\"bad\" role=\"alert\">✗ {esc(err.message)}{code}</p>"


def _cell(c: Cell) -> str:
    text = _code(c.text) if c.code else esc(c.text)
    if c.strong:
        text = f"<strong>{text}</strong>"
    if c.tone:
        text = f"<span class=\"{c.tone}\">{text}</span>"
    return text + (f" <span class=\"muted\">{esc(c.note)}</span>" if c.note else "")


def _messages(msgs: list[Message], *, since: bool = False) -> str:
    head = ["direction", "message", "at (ms since t0)"] + (
        ["since ClientHello (ms)"] if since else []) + ["bytes"]
    rows = [[m.direction, _code(m.type), esc(three(m.t_ms))]
            + ([esc(DASH if m.since_hello_ms is None else f"+{m.since_hello_ms:.3f}")]
               if since else [])
            + [esc(DASH if m.bytes is None else m.bytes)] for m in msgs]
    return _table(head, rows)


def _budget(b: BudgetView | None) -> str:
    if b is None:
        return ""
    tone = {"within": "ok", "over": "bad"}.get(b.outcome, "muted")
    took = f" <span>(took {esc(b.rtts)} × the kernel's RTT)</span>" if b.rtts else ""
    return f"{esc(b.guide)} <span class=\"{tone}\">{esc(b.outcome)}</span>{took}"


# --------------------------------------------------------------------------------- report
class HtmlReport:
    def __init__(self, journey: dict[str, Any], *, inline_style: bool = True) -> None:
        self.j = journey
        self.v = journey_view(read(journey))
        # The live page's CSP allows no inline style: it places bars from data-* attributes.
        self.inline_style = inline_style

    # --------------------------------------------------------------------- page
    def body(self) -> str:
        """Every section, in reading order (the live page shows the same ones)."""
        return "".join([
            self.glance(), self.anatomy(), self.dns(), self.tcp(), self.tls(),
            quic_html(self.v.legs, self.leg_label, _explained), self.tls_compare(),
            http_compare_html(self.v.http_compare),
            self.http(), caching_html(self.v.caching),
            self.inside(), who_html(self.v.who), security_html(self.v.security),
            self.browser(), self.waterfall(), guide_html(self.v.guide),
            self.layers(), self.cheatsheet(),
        ])

    def live_parts(self) -> dict[str, str]:
        """What the live page shows once the journey ends: the sections and their links."""
        body = self.body()
        return {"html": body + self.footer(), "nav": self.nav(body)}

    def nav(self, body: str) -> str:
        """A link a section; an occasional one only when ``body`` has it."""
        return "".join(f"<li><a href=\"#{i}\">{t}</a></li>" for i, t in SECTIONS
                       if i not in OCCASIONAL_SECTIONS or f"<section id=\"{i}\"" in body)

    def render(self) -> str:
        url = self.v.url
        body = self.body()
        return (
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            "<meta name=\"color-scheme\" content=\"light dark\">\n"
            f"<title>whathappens · {esc(url)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            "<input type=\"radio\" name=\"mode\" id=\"mode-beginner\" class=\"mode\" checked>"
            "<input type=\"radio\" name=\"mode\" id=\"mode-advanced\" class=\"mode\">\n"
            "<header class=\"top\"><div class=\"wrap\">"
            f"<p class=\"kicker\">whathappens · report</p><h1>What happens when you open "
            f"<span class=\"url\">{esc(url)}</span></h1>"
            f"<p class=\"muted\">Every number below was measured on this journey. Clock: "
            f"{esc(self.v.clock)}; times are milliseconds since the journey's start (t0).</p>"
            "<div class=\"switch\" role=\"group\" aria-label=\"Explanations\">"
            "<label for=\"mode-beginner\">Beginner</label>"
            "<label for=\"mode-advanced\">Advanced</label></div>"
            f"<nav aria-label=\"Sections\"><ul>{self.nav(body)}</ul></nav></div></header>\n"
            f"<main class=\"wrap\">{body}</main>\n{self.footer()}\n"
            "<script type=\"application/json\" id=\"journey-data\">"
            f"{script_json(self.j)}</script>\n</body>\n</html>\n")

    def leg_label(self, leg: LegView) -> str:
        return f"Request {esc(leg.number)}"

    # ------------------------------------------------------------------- glance
    def summary_line(self) -> str:
        s = self.v.summary
        line = esc(s.line)
        err = s.failure
        if err is not None:
            return (f"<p class=\"summary bad\">Failed at {esc(err.step)}: "
                    f"{esc(err.message)} <span class=\"muted\">(exit "
                    f"{esc(err.exit_code)})</span> · {line}</p>")
        return f"<p class=\"summary ok\">{line}</p>"

    def verdicts(self) -> str:
        """The budget verdicts of each request, one line each (the terminal's too)."""
        budgets = self.v.summary.budgets
        out = []
        for leg in sorted({b.leg for b in budgets}):
            items = " · ".join(esc(b.item) for b in budgets if b.leg == leg)
            which = f", request {leg}" if len(self.v.legs) > 1 else ""
            out.append(f"<p class=\"small\">{esc(words.RULES_SHORT.capitalize())}{which}: "
                       f"{items} <a href=\"#waterfall\">(what good looks like)</a></p>")
        return "".join(out)

    def glance(self) -> str:
        items = "".join(
            f"<li><span class=\"role\">{esc(a.role)}</span><span class=\"name\">{esc(a.name)}"
            f"</span><span class=\"addr\">{esc(a.address)}</span></li>" for a in self.v.actors)
        return _section("glance", "At a glance",
                        self.summary_line() + self.verdicts()
                        + "<p class=\"muted\">Everyone this request met, in order:</p>"
                        f"<ol class=\"actors\">{items}</ol>")

    # ------------------------------------------------------------------ anatomy
    def anatomy(self) -> str:
        u = self.v.url_step
        if u is None:
            return _section("url", "URL anatomy", "<p>No URL step was recorded.</p>")
        if not u.parsed:
            return _section("url", "URL anatomy", f"<p>{_code(u.input)}</p>" + _error(u.error)
                            + _explained(u.explain), layer=u.timing.layer)
        host = _code(u.host)
        if u.typed_as:
            host += f" (typed as {_code(u.typed_as)}; punycode on the wire)"
        how = "explicit" if u.port_explicit else "implied by the scheme"
        pairs = [
            ("scheme", _code(u.scheme) + (" (assumed)" if u.scheme_assumed else "")),
            ("host", host + f" <span class=\"muted\">({esc(u.host_kind)})</span>"),
            ("port", f"{_code(u.port)} ({how})"),
            ("path", _code(u.path)),
            ("query", _code(u.query) if u.query is not None else "none"),
            ("fragment", (_code("#" + u.fragment) + " — stays in the browser, never sent")
             if u.fragment is not None else "none"),
            ("request target", _code(u.request_target)),
            ("registrable domain", _code(u.registrable_domain or DASH)),
            ("public suffix", _code(u.public_suffix or DASH)),
            ("HSTS preloaded", "yes" if u.hsts_preloaded else "no"),
        ]
        if u.upgraded_from_http:
            pairs.append(("HSTS upgrade", "http was switched to https before any packet"))
        timing = (f"<p class=\"measures\">Parsing took <strong>{esc(ms(u.timing.duration_ms))}"
                  f"</strong> (wall time, {esc(self.v.clock)}; includes loading the HSTS "
                  "preload table on first use).</p>")
        return _section("url", "URL anatomy",
                        f"<p class=\"bigurl\">{_code(u.url)}</p>" + _dl(pairs)
                        + timing + _error(u.error) + _explained(u.explain),
                        layer=u.timing.layer)

    # ---------------------------------------------------------------------- DNS
    def dns(self) -> str:
        parts: list[str] = []
        for leg in self.v.legs:
            if leg.dns is not None:
                parts.append(self.dns_step(leg, leg.dns))
        if not parts:
            return _section("dns", "DNS", "<p>No DNS lookup happened (an IP address, or the "
                            "name was given with --resolve).</p>")
        return _section("dns", "DNS", "".join(parts),
                        layer=self.v.layer_of("dns"))

    def dns_step(self, leg: LegView, d: DnsView) -> str:
        head = f"<h3>{self.leg_label(leg)}: {_code(d.host)} → {esc(d.answer)}</h3>"
        info = [("time", f"<strong>{esc(ms(d.timing.duration_ms))}</strong> "
                         f"(all views, {esc(self.v.clock)})"),
                ("answer used", esc(d.view_used or DASH) + " view")]
        if d.https_records:
            info.append(("HTTPS records", esc("; ".join(d.https_records))))
        if d.note:
            info.append(("note", esc(d.note)))
        return (head + _dl(info) + _error(d.error)
                + "".join(self.dns_source(s) for s in d.sources) + _explained(d.explain))

    def dns_source(self, s: DnsSource) -> str:
        mark = " (answer used)" if s.used else ""
        out = [f"<h4>{esc(s.kind)} view{mark} · {esc(ms(s.timing.duration_ms))}</h4>",
               _error(s.error)]
        if s.kind == "system":
            src = "hosts file" if s.hosts_file else "getaddrinfo"
            out.append(f"<p>{esc(src)} → {esc(', '.join(s.addresses))}</p>")
        elif s.kind == "resolver":
            out.append(self.resolver(s))
        else:
            out.append(self.walk(s))
        return "<div class=\"view\">" + "".join(out) + "</div>"

    def resolver(self, s: DnsSource) -> str:
        rows = [[_code(q.qtype), esc(ms(q.timing.duration_ms)), esc(q.records) + _error(q.error),
                 esc(DASH if q.ttl is None else q.ttl), esc(q.transport or DASH),
                 esc(q.purpose + (f" → {q.cache.verdict}" if q.cache else ""))]
                for q in s.queries]
        out = [f"<p>Asked {_code(s.resolver or s.actor)} (recursion desired):</p>",
               _table(["type", "time", "records", "TTL (s)", "over", "why"], rows)]
        raw = [esc(r) for q in s.queries for r in q.answer]
        if raw:
            out.append("<div class=\"advanced\"><p class=\"muted\">Answer section as "
                       "received:</p><pre>" + "\n".join(raw) + "</pre></div>")
        if s.cname_chain:
            out.append(f"<p>CNAME chain: {esc(' ; '.join(s.cname_chain))}</p>")
        if s.recursion is not None:
            out.append(self.recursion(s.recursion))
        return "".join(out)

    def recursion(self, r: RecursionView) -> str:
        """The lab's Unbound's own upstream queries, from the servers' logs."""
        if r.from_cache:
            return "<p>Answered from Unbound's cache: no upstream queries.</p>"
        cold = f" (cold: flushed {esc(r.flushed)})" if r.flushed else ""
        rows = [[esc(q.server), esc(q.role), _code(f"{q.qtype} {q.qname}"), esc(q.kind),
                 esc("; ".join(q.records[:3])), esc(q.transport),
                 esc(ms(q.timing.start_ms)), esc(ms(q.timing.duration_ms))]
                for q in r.queries]
        return (f"<p>Inside {esc(r.resolver)}: {len(r.queries)} upstream queries, "
                f"{esc(ms(r.timing.duration_ms))}{cold}:</p>"
                + _table(["server", "role", "question", "kind", "records", "over", "at",
                          "time"], rows, "hops")
                + ("<p>The A question asked again sent nothing upstream: Unbound's cache "
                   "answered it.</p>" if r.repeat_upstream == 0 else "")
                + f"<p class=\"muted\">Matched by {esc(r.matched_by)}. Clock: "
                  f"{esc(r.clock)}.</p>")

    def walk(self, s: DnsSource) -> str:
        out = [f"<p>Iterative walk (no recursion) starting from the root hints "
               f"{_code(s.root_hints)}, hop by hop:</p>"]
        for question in s.questions:
            out.append(f"<p class=\"q\"><strong>{esc(question.qtype)} "
                       f"{esc(question.qname)}</strong>: {esc(question.outcome)} "
                       f"{esc(' '.join(question.records))}</p>")
            rows = []
            for hop in question.hops:
                what = esc(hop.kind)
                if hop.kind == "referral":
                    glue = "with glue" if hop.glue else "no glue"
                    what += (f" to {_code(hop.referral_zone)} "
                             f"({esc(', '.join(hop.referral_ns))}; {glue})")
                elif hop.kind in ("answer", "cname"):
                    what += " " + esc("; ".join(hop.answers))
                elif hop.note:
                    what += " " + esc(hop.note)
                if hop.depth:
                    what += (" <span class=\"muted\">(resolving NS name "
                             f"{esc(hop.qname)})</span>")
                rows.append([esc(hop.server), esc(hop.role), _code(hop.address),
                             _code(hop.zone), what + _error(hop.error), esc(hop.transport),
                             esc(ms(hop.timing.duration_ms))])
            out.append(_table(["server", "role", "address", "zone", "kind", "over", "time"],
                              rows, "hops"))
        return "".join(out)

    # ---------------------------------------------------------------------- TCP
    def segments(self, t: TcpView) -> str:
        """The captured handshake segments: the real numbers, as the wire carried them."""
        rows = [[_strong(s.name), f"{_code(s.source)} → {_code(s.dest)}", esc(s.seq),
                 esc(DASH if s.ack is None else s.ack), esc(s.window),
                 esc(s.option_words or "none"), esc(ms(s.t_ms))] for s in t.segments]
        wire = ""
        if t.wire_ms is not None:
            wire = (f"<p>On the wire the handshake took <strong>{esc(ms(t.wire_ms))}"
                    f"</strong> {esc(words.SEGMENTS_WIRE)}</p>")
        return (f"<p class=\"beginner\">{esc(words.SEGMENTS_BEGINNER)}</p>"
                + _table(["segment", "from → to", "seq", "ack", "window", "options", "at"],
                         rows, "tbl")
                + wire + f"<p class=\"small\">Captured: {esc(t.capture_how)}.</p>")

    def tcp(self) -> str:
        parts: list[str] = []
        for leg in self.v.legs:
            if leg.tcp is not None:
                parts.append(self.tcp_step(leg, leg.tcp))
            elif leg.connection == "reused":
                parts.append(f"<h3>{self.leg_label(leg)}</h3><p>Reused the open "
                             "connection: no new TCP handshake.</p>")
        if not parts:
            parts.append("<p>No TCP connection was opened.</p>")
        return _section("tcp", "TCP", "".join(parts),
                        layer=self.v.layer_of("tcp"))

    def tcp_step(self, leg: LegView, t: TcpView) -> str:
        info = t.tcp_info
        pairs = [("from", _code(t.local)), ("to", _code(t.remote)), ("family", esc(t.family)),
                 ("connect time", f"<strong>{esc(ms(t.timing.duration_ms))}</strong> "
                                  f"(connect() until writable, {esc(self.v.clock)})")]
        if info:
            pairs += [("kernel RTT", f"{esc(info.rtt_ms)} ms ± {esc(info.rttvar_ms)} ms "
                                     "(the kernel's smoothed estimate, TCP_INFO)"),
                      ("MSS", f"{esc(info.snd_mss)} bytes (largest segment sent)"),
                      ("congestion window", f"{esc(info.snd_cwnd)} segments")]
        if not t.segments:
            why = t.capture_why or words.SEGMENTS_MISSING
            pairs.append(("SYN / SYN-ACK / ACK",
                          f"sequence numbers {esc(why)}; only the time of the handshake "
                          "as a whole is known"))
        out = [f"<h3>{self.leg_label(leg)}</h3>", _dl(pairs), _error(t.error)]
        if t.segments:
            out.append(self.segments(t))
        if t.show_attempts:
            attempts = [[esc(a.family), _code(a.address), esc(a.outcome),
                         esc(ms(a.duration_ms))] for a in t.attempts]
            out.append("<p class=\"muted\">Attempts (Happy Eyeballs):</p>"
                       + _table(["family", "address", "outcome", "time"], attempts))
        for title, d in (("TCP_INFO at connect", info),
                         ("TCP_INFO after the exchange", t.tcp_info_end)):
            if d:
                rows = [[_code(k), esc(v)] for k, v in tcp_info_fields(d)]
                out.append(f"<div class=\"advanced\"><p class=\"muted\">{title}:</p>"
                           + _table(["field", "value"], rows) + "</div>")
        return "".join(out) + _explained(t.explain)

    # ---------------------------------------------------------------------- TLS
    def tls(self) -> str:
        parts = [self.tls_step(leg, leg.tls) for leg in self.v.legs if leg.tls is not None]
        if not parts:
            parts.append("<p>No TLS handshake (plain http, or the connection was reused).</p>")
        return _section("tls", "TLS", "".join(parts),
                        layer=self.v.layer_of("tls"))

    def tls_step(self, leg: LegView, t: TlsView) -> str:
        pairs = [
            ("version", _code(t.version or DASH)),
            ("cipher", _code(t.cipher or DASH)
             + (f" ({esc(t.cipher_bits)}-bit)" if t.cipher_bits else "")),
            ("key exchange group", _code(t.group or DASH)),
            ("ALPN", f"offered {esc(', '.join(t.alpn_offered) or DASH)}; "
                     f"agreed {_code(t.alpn or 'none')}"),
            ("SNI", _code(t.sni or DASH)),
            ("resumed session", "yes" if t.resumed else "no"),
            ("handshake time", self.tls_time(t)),
        ]
        out = [f"<h3>{self.leg_label(leg)}</h3>", _dl(pairs), _error(t.error)]
        if t.messages:
            out.append("<h4>Handshake messages, in order</h4>" + _messages(t.messages))
        out.append(self.chain(t))
        if t.verified is not None:
            out.append(f"<p class=\"{'ok' if t.verified else 'bad'}\">Verification: "
                       f"{esc(t.verification)} <span class=\"muted\">(by "
                       f"{esc(t.verified_by)})</span></p>")
        elif t.verification:
            out.append(f"<p class=\"muted\">Verification: {esc(t.verification)}</p>")
        return "".join(out) + _explained(t.explain)

    def tls_time(self, t: TlsView) -> str:
        """The step's time, with the context set-up it includes shown apart."""
        whole = f"<strong>{esc(ms(t.timing.duration_ms))}</strong>"
        if t.handshake_ms is None:
            return f"{whole} (building the TLS context, then ClientHello sent → our Finished " \
                   f"sent, {esc(self.v.clock)})"
        return (f"{whole} in all ({esc(self.v.clock)}): building the TLS context and loading "
                f"the trust store {esc(ms(t.context_setup_ms))}, then ClientHello sent → "
                f"{esc(handshake_end(t.error is None))} {esc(ms(t.handshake_ms))}")

    def chain(self, t: TlsView) -> str:
        if not t.chain:
            return ""
        rows = []
        for c in t.chain:
            kind, who = ("leaf" if c.leaf else "CA"), f"<strong>{esc(c.who)}</strong>"
            if c.unreadable:
                rows.append([kind, who, esc(c.unreadable), DASH, DASH, DASH])
                continue
            rows.append([
                kind, f"{who}<br><span class=\"muted\">{esc(c.subject)}</span>",
                esc(c.issuer), f"{esc(c.not_before)} → {esc(c.not_after)} "
                               f"({esc(c.validity)})",
                esc(f"{c.key}, {c.signature_algorithm}"), esc(", ".join(c.names)) or DASH])
        adv = [[esc(c.who), _code(c.serial), _code(c.sha256), esc(c.sct_count)]
               for c in t.chain]
        return ("<h4>Certificate chain</h4>"
                + _table(["", "subject", "issuer", "valid", "key, signature", "names (SAN)"],
                         rows)
                + "<div class=\"advanced\">"
                + _table(["certificate", "serial", "SHA-256 fingerprint", "SCTs"], adv)
                + "</div>")

    # --------------------------------------------------------- TLS 1.2 vs 1.3
    def tls_compare(self) -> str:
        """--compare-tls: two more handshakes with the same server, after the journey."""
        intro = _both(words.COMPARE_BEGINNER, words.COMPARE_ADVANCED)
        if self.v.compare_explain is not None:
            intro = _explained(self.v.compare_explain)
        tc = self.v.compare
        if tc is None:
            return _section("tls-compare", COMPARE_TITLE,
                            intro + f"<p>{esc(words.COMPARE_NOT_ASKED)}</p>")
        if not tc.measured:
            return _section("tls-compare", COMPARE_TITLE,
                            intro + f"<p>Not measured: {esc(tc.reason)}</p>")
        out = [intro, f"<p>{esc(tc.rounds)} round(s) of connections to {_code(tc.where)} "
                      f"(server name {_code(tc.server_name)}), after the journey. Clock: "
                      f"{esc(tc.clock)}.</p>",
               _table([""] + [esc(h) for h in tc.head],
                      [[esc(r.label)] + [_cell(c) for c in r.cells] for r in tc.rows],
                      "compare"),
               "<ul>" + "".join(f"<li class=\"{v.tone}\">{esc(v.plain)}</li>"
                                for v in tc.versions) + "</ul>"]
        if tc.includes:
            out.append(f"<p class=\"measures\"><strong>What the handshake time includes:"
                       f"</strong> {esc(tc.includes)}.</p>")
        out.append(self.model(tc))
        for v in tc.versions:
            if v.messages:
                out.append(f"<h4>TLS {esc(v.version)}: messages in order</h4>"
                           + _messages(v.messages, since=True))
        return _section("tls-compare", COMPARE_TITLE, "".join(out), layer="transport")

    def model(self, tc: CompareView) -> str:
        m = tc.model
        if m is None:
            return ""
        if not m.available:
            return (f"<p class=\"note\"><strong>Modelled line:</strong> not available: "
                    f"{esc(m.why_not)}.</p>")
        return ("<p class=\"note\"><strong>Modelled, not measured:</strong> "
                f"{esc(m.round_trips)} round trip(s) × the kernel's RTT {esc(m.rtt)} = "
                f"<strong>{esc(m.expected)}</strong> expected from round trips alone. "
                "<strong>Measured</strong> difference (TLS 1.2 − TLS 1.3): "
                f"<strong>{esc(m.measured)}</strong>. The other {esc(m.beyond)} "
                f"{esc(words.COMPARE_REST_LONG)} "
                f"<span class=\"muted\">RTT: {esc(m.rtt_source)}.</span></p>")

    # --------------------------------------------------------------------- HTTP
    def http(self) -> str:
        parts = [self.http_step(leg, leg.http) for leg in self.v.legs]
        if not parts:
            parts.append("<p>No HTTP request was sent.</p>")
        intro = (f"<p>{esc(len(self.v.legs))} request(s); {esc(self.v.redirects)} redirect(s) "
                 "followed, each a leg of its own.</p>")
        return _section("http", "HTTP", intro + "".join(parts),
                        layer=self.v.layer_of("http"))

    def http_step(self, leg: LegView, h: HttpView | None) -> str:
        out = [f"<h3>{self.leg_label(leg)}: {esc(leg.method)} "
               f"<span class=\"url\">{esc(leg.url)}</span></h3>",
               f"<p class=\"muted\">{esc(leg.connection)} connection</p>",
               _explained(leg.explain)]
        if h is None:
            return "".join(out) + _error(leg.error)
        out.append(_error(h.error))
        if h.answered:
            out.append(_dl([
                ("status", f"<strong>{esc(h.status)} {esc(h.reason)}</strong> over "
                           f"{esc(h.http_version)}"),
                ("TTFB", f"<strong>{esc(ms(h.wait_ms))}</strong> (request sent → first "
                         f"response byte, {esc(self.v.clock)})"),
                ("send", f"{esc(ms(h.send_ms))} (writing the request)"),
                ("download", f"{esc(ms(h.receive_ms))} (first byte → last byte)"),
                ("bytes", f"{esc(size(h.wire_sent))} sent, {esc(size(h.wire_received))} "
                          f"received on the wire; body {esc(size(h.body_encoded))} encoded, "
                          f"{esc(size(h.body_decoded))} decoded ({esc(h.encoding)})"),
                ("connection", ("can be reused" if h.reusable else "not reusable")
                 + (f"; used by {esc(h.connection_legs)} request(s)"
                    if h.connection_legs else "")),
            ]))
        if h.request_headers:
            out.append("<h4>Request, as sent</h4><pre>" + "\n".join(
                f"{esc(n)}: {esc(v)}" for n, v in h.request_headers) + "</pre>")
        if h.response_headers:
            out.append("<h4>Response headers, as received</h4><pre>" + "\n".join(
                f"{esc(n)}: {esc(v)}" for n, v in h.response_headers) + "</pre>")
        out.append(wire_html(self.v.wire.get(leg.index)))
        if h.body_excerpt:
            out.append("<div class=\"advanced\"><h4>Body, first bytes (decoded)</h4><pre>"
                       + esc(h.body_excerpt, block=True) + "</pre></div>")
        out += [_explained(h.explain), _explained(h.response)]
        return "<div class=\"leg\">" + "".join(out) + "</div>"

    # ------------------------------------------------------------------ browser
    def browser(self) -> str:
        """The page in headless Chromium (render/html_browser.py)."""
        explain = _explain("browser") if self.v.page_explain is None else \
            _explained(self.v.page_explain)
        return browser_html(self.v.browser, self.place, explain)

    # ------------------------------------------------------------ inside (lab)
    def inside(self) -> str:
        tops = [n for leg in self.v.legs if leg.http is not None for n in leg.http.inside]
        if not tops:
            return ""
        return _section("inside", "Inside the server",
                        "<p class=\"muted\">From the lab's own logs, on the same clock.</p>"
                        + "<ul class=\"tree\">" + "".join(self.server_tree(n) for n in tops)
                        + "</ul>")

    def server_tree(self, n: ServerNode) -> str:
        """A tier in words (its texts filled with what its log said), then the raw log
        fields for the advanced reader."""
        facts = " · ".join(f"{esc(k)} {_code(v)}" for k, v in n.fields)
        plan = f"<pre>{esc(n.plan, block=True)}</pre>" if n.plan else ""
        if n.details:
            plan += "<ul class=\"small\">" + "".join(f"<li>{esc(d)}</li>" for d in n.details) \
                + "</ul>"
        kids = "".join(self.server_tree(c) for c in n.children)
        words = _explained(n.explain)
        return (f"<li><strong>{esc(n.actor)}</strong> <span class=\"muted\">{esc(n.name)}"
                f"</span> {esc(ms(n.duration_ms))}{words}<div class=\"small advanced\">"
                f"<span class=\"muted\">From its log:</span> {facts}</div>{plan}"
                + (f"<ul>{kids}</ul>" if kids else "") + "</li>")

    # ---------------------------------------------------------------- waterfall
    def place(self, left: float, width: float | None = None) -> str:
        """Position of a bar or mark, in percent of the timeline."""
        data = f"data-left=\"{left:.3f}\"" + (
            "" if width is None else f" data-width=\"{width:.3f}\"")
        if not self.inline_style:
            return data
        css = f"left:{left:.3f}%" + ("" if width is None else f";width:{width:.3f}%")
        return f"{data} style=\"{css}\""

    def waterfall(self) -> str:
        total = self.v.span_ms
        rows = []
        for r in self.v.waterfall:
            t = r.timing
            left = min(t.start_ms / total * 100, 99.5)
            width = max(min((t.end_ms - t.start_ms) / total * 100, 100 - left), 0.3)
            mark = r.budget.mark_ms if r.budget else None
            mark_html = ""
            if mark is not None and mark <= total:
                mark_html = (f"<span class=\"mark\" {self.place(mark / total * 100)}"
                             " aria-hidden=\"true\"></span>")
            step = "bad" if t.failed else t.step
            rows.append(
                f"<tr class=\"d{r.depth}\"><th scope=\"row\">{esc(r.label)}</th>"
                f"<td class=\"lay\">{esc(t.layer)}</td>"
                f"<td class=\"barcell\"><div class=\"track\"><span class=\"bar s-{esc(step)}\" "
                f"{self.place(left, width)}></span>{mark_html}</div></td>"
                f"<td class=\"num\">{esc(ms(t.duration_ms))}</td>"
                f"<td class=\"num muted at\">{esc(at(t.start_ms))}</td>"
                f"<td class=\"guide\">{_budget(r.budget)}</td></tr>")
        table = ("<div class=\"scroll\"><table class=\"waterfall\"><thead><tr>"
                 "<th scope=\"col\">step</th><th scope=\"col\" class=\"lay\">layer</th>"
                 f"<th scope=\"col\">timeline (0 → {esc(ms(total))})</th>"
                 "<th scope=\"col\">took</th><th scope=\"col\" class=\"at\">starts at</th>"
                 "<th scope=\"col\" class=\"guide\">guide</th></tr></thead><tbody>"
                 + "".join(rows) + "</tbody></table></div>")
        notes = "".join(f"<li><strong>{esc(n.label)} {esc(n.guide)}</strong>: {esc(n.why)}</li>"
                        for n in rule_views())
        return _section(
            "waterfall", "Waterfall",
            f"<p>{esc(words.WATERFALL_INTRO.format(clock=self.v.clock))}</p>" + table
            + "<h3>What good looks like</h3>"
            f"<p class=\"note\">{esc(words.RULES_CAVEAT)}</p><ul>{notes}</ul>")

    # ------------------------------------------------------------------- layers
    def layers(self) -> str:
        rows = [[f"<strong>{esc(r.layer)}</strong>", esc(r.note),
                 esc(", ".join(r.steps) or "— (not a separate step here)")]
                for r in self.v.layers]
        return _section("layers", "The TCP/IP layers", f"<p>{esc(words.LAYERS_INTRO)}</p>"
                        + _table(["layer", "what it does", "steps in this journey"], rows))

    # --------------------------------------------------------------- cheatsheet
    def cheatsheet(self) -> str:
        items = "".join(f"<li><p>{esc(c.title)}</p><pre><code>{esc(c.command)}</code></pre></li>"
                        for c in self.v.commands)
        return _section("cheatsheet", "Cheat sheet", f"<p>{esc(words.CHEATSHEET_INTRO)}</p>"
                        f"<ol class=\"cmds\">{items}</ol>")

    # ------------------------------------------------------------------- footer
    def footer(self) -> str:
        items = "".join(
            f"<li class=\"sev-{esc(f.severity)}\"><span class=\"tag\">{esc(f.severity)}</span>"
            f" [{esc(f.step)}] {esc(f.message)}</li>" for f in self.v.findings)
        findings = (f"<h2>Findings</h2><ul class=\"findings\">{items}</ul>" if items
                    else "<p>No findings.</p>")
        return ("<footer class=\"wrap\" id=\"footer\">" + findings + self.summary_line()
                + f"<p class=\"muted\">Total {esc(ms(self.v.total_ms))} on the "
                f"{esc(self.v.clock)} clock · exit code {esc(self.v.exit_code)} · "
                "made by whathappens; this file makes no network request.</p></footer>")


def render_html(journey: dict[str, Any]) -> str:
    """The whole page, as one string."""
    return HtmlReport(journey).render()

