"""The journey as one self-contained HTML page (``whathappens URL --html report.html``).

Everything is inline — styles, no scripts needed, no font, no image, no link to anywhere — so
the file opens offline and makes no request; a strict Content-Security-Policy says so to the
browser too. Every value taken from the journey (headers, certificate fields, DNS names, URLs,
error messages) goes through :func:`esc` (``html.escape(..., quote=True)``), which first shows
control characters as visible escapes (render/visible.py: C0, C1, the bidi controls that
reorder what a reader sees, zero-width characters); the one place the journey enters a
``<script>`` element is the inert ``application/json`` data block, written by
:func:`script_json`, which escapes ``<``, ``>``, ``&`` and the same control characters as
``\\u`` escapes (the values stay the journey's). The beginner/advanced
switch is two radio buttons and CSS, so it works with the keyboard and without JavaScript.
Reads only the journey's dict, like every renderer.
"""

from __future__ import annotations

import html
import json
import shlex
from typing import Any

from whathappens.explain.texts import STEPS
from whathappens.render.visible import escape_json, visible

Span = dict[str, Any]

# No script-src: the page's one <script> is an inert JSON data block, which no policy runs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

LAYER_ORDER = ("application", "transport", "internet", "link")
LAYER_NOTE = {
    "application": "what programs say to each other: URL parsing, DNS questions, HTTP "
                   "(TLS is usually drawn here or just below it)",
    "transport": "the connection between two programs: TCP's handshake, ordering and "
                 "retransmission; TLS rides on it",
    "internet": "getting packets from one address to another across networks (IP, routing)",
    "link": "the local hop: Ethernet, Wi-Fi, the loopback interface",
}

# Rules of thumb, not measurements: what a healthy step tends to take on a good network.
BUDGETS = {
    "dns": ("< 50 ms", "a resolver that answers from its cache usually replies well within "
                       "50 ms; a cold walk from the root can take longer"),
    "tcp": ("≈ 1 RTT", "connect() waits for one round trip (SYN → SYN-ACK)"),
    "tls": ("≈ 1 RTT (TLS 1.3), 2 RTT (TLS 1.2)",
            "plus the time to check signatures on both sides"),
    "ttfb": ("< 200 ms", "time to first byte: one round trip plus the server's own work"),
}


# ------------------------------------------------------------------------------- escaping
def esc(value: object, *, block: bool = False) -> str:
    """Escape any journey value for HTML text or a quoted attribute. Control characters are
    shown as escapes (``\\x1b``, ``\\u202e``: a bidi override would reorder the page's text,
    an LF would start a fake line in a ``<pre>``); a ``block`` (a body excerpt, a query plan,
    shown in ``<pre>``) keeps its TAB, LF and CR, HTML's own whitespace."""
    text = visible("" if value is None else str(value), keep_layout=block)
    return html.escape(text, quote=True)


def script_json(value: object) -> str:
    """JSON that can sit inside a ``<script>`` element: no ``</script>``, no ``<!--``, no
    line separators that end a JavaScript string, no control or bidi character raw
    (:func:`~whathappens.render.visible.escape_json`)."""
    text = escape_json(json.dumps(value, ensure_ascii=False, default=str))
    for raw, safe in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(raw, safe)
    return text


# -------------------------------------------------------------------------------- helpers
def _ms(v: object) -> str:
    if v is None:
        return "—"
    f = float(v)  # type: ignore[arg-type]
    return f"{f:,.1f} ms" if f >= 10 else f"{f:,.2f} ms"


def _bytes(n: object) -> str:
    if n is None:
        return "—"
    i = int(n)  # type: ignore[call-overload]
    return f"{i:,} B" if i < 10_000 else f"{i / 1024:,.1f} KiB"


def _child(span: Span, name: str) -> Span | None:
    return next((c for c in span.get("children", []) if c.get("name") == name), None)


def _walk(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s in spans:
        out.append(s)
        out.extend(_walk(s.get("children", [])))
    return out


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are already HTML (escaped by the caller); headings are our own text."""
    if not rows:
        return ""
    th = "".join(f"<th scope=\"col\">{h}</th>" for h in head)
    def cell(label: str, c: str) -> str:
        nw = " class=\"nw\"" if len(c) <= 14 and "<" not in c else ""
        return f"<td data-label=\"{esc(label)}\"{nw}>{c}</td>"

    body = "".join("<tr>" + "".join(cell(h, c) for h, c in zip(head, r, strict=False))
                   + "</tr>" for r in rows)
    return (f"<div class=\"scroll\"><table class=\"tbl {cls}\"><thead><tr>{th}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _dl(pairs: list[tuple[str, str]]) -> str:
    """Terms are our own words; values are already HTML."""
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in pairs)
    return f"<dl class=\"facts\">{items}</dl>"


def _code(v: object) -> str:
    return f"<code>{esc(v)}</code>"


def _explain(step: str) -> str:
    e = STEPS.get(step)
    if e is None:
        return ""
    return (f"<div class=\"explain beginner\"><p>{esc(e.beginner)}</p></div>"
            f"<div class=\"explain advanced\"><p>{esc(e.advanced)}</p></div>"
            f"<p class=\"measures\"><strong>What the time measures:</strong> "
            f"{esc(e.measures)}</p>")


def _error(err: dict[str, Any] | None) -> str:
    if not err:
        return ""
    code = f" <span class=\"muted\">[{esc(err.get('code'))}]</span>" if err.get("code") else ""
    return f"<p class=\"bad\" role=\"alert\">✗ {esc(err.get('message'))}{code}</p>"


def _section(ident: str, title: str, body: str, *, layer: str | None = None) -> str:
    tag = f" <span class=\"layer\">{esc(layer)} layer</span>" if layer else ""
    return (f"<section id=\"{ident}\" aria-labelledby=\"h-{ident}\">"
            f"<h2 id=\"h-{ident}\">{title}{tag}</h2>{body}</section>")


# --------------------------------------------------------------------------------- report
class HtmlReport:
    def __init__(self, journey: dict[str, Any], *, inline_style: bool = True) -> None:
        self.j = journey
        # The live page's CSP allows no inline style: it places bars from data-* attributes.
        self.inline_style = inline_style
        self.spans: list[Span] = list(journey.get("spans") or [])
        self.all = _walk(self.spans)
        self.legs = [s for s in self.spans if s.get("name") == "leg"]
        self.url_span = next((s for s in self.spans if s.get("name") == "url"), None)
        self.total = max(float(journey.get("total_ms") or 0.0), 0.001)
        self.clock = str((journey.get("clock") or {}).get("name") or "unknown clock")

    def first(self, name: str) -> Span | None:
        for leg in self.legs:
            c = _child(leg, name)
            if c is not None:
                return c
        return None

    # --------------------------------------------------------------------- page
    def body(self) -> str:
        """Every section, in reading order (the live page shows the same ones)."""
        return "".join([
            self.glance(), self.anatomy(), self.dns(), self.tcp(), self.tls(),
            self.tls_compare(), self.http(),
            self.inside(), self.waterfall(), self.layers(), self.cheatsheet(),
        ])

    def nav(self) -> str:
        return "".join(
            f"<li><a href=\"#{i}\">{t}</a></li>" for i, t in (
                ("glance", "At a glance"), ("url", "URL"), ("dns", "DNS"), ("tcp", "TCP"),
                ("tls", "TLS"), ("tls-compare", "TLS 1.2 vs 1.3"),
                ("http", "HTTP"), ("waterfall", "Waterfall"),
                ("layers", "Layers"), ("cheatsheet", "Cheat sheet")))

    def render(self) -> str:
        url = str(self.j.get("url") or "")
        body = self.body()
        nav = self.nav()
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
            f"{esc(self.clock)}; times are milliseconds since the journey's start (t0).</p>"
            "<div class=\"switch\" role=\"group\" aria-label=\"Explanations\">"
            "<label for=\"mode-beginner\">Beginner</label>"
            "<label for=\"mode-advanced\">Advanced</label></div>"
            f"<nav aria-label=\"Sections\"><ul>{nav}</ul></nav></div></header>\n"
            f"<main class=\"wrap\">{body}</main>\n{self.footer()}\n"
            "<script type=\"application/json\" id=\"journey-data\">"
            f"{script_json(self.j)}</script>\n</body>\n</html>\n")

    # ------------------------------------------------------------------- glance
    def summary_line(self) -> str:
        s = (self.j.get("facts") or {}).get("summary") or {}
        parts: list[str] = []
        if s.get("status"):
            parts.append(f"{s['status']} {s.get('reason') or ''}".strip())
        for k in ("http_version", "tls_version"):
            if s.get(k):
                parts.append(str(s[k]))
        parts.append(f"{_ms(self.j.get('total_ms'))} total")
        if int(s.get("legs") or 0) > 1:
            parts.append(f"{s['legs']} requests")
        line = esc(" · ".join(parts))
        err = self.j.get("error")
        if err:
            return (f"<p class=\"summary bad\">Failed at {esc(err.get('step'))}: "
                    f"{esc(err.get('message'))} <span class=\"muted\">(exit "
                    f"{esc(err.get('exit_code'))})</span> · {line}</p>")
        return f"<p class=\"summary ok\">{line}</p>"

    def actors(self) -> list[tuple[str, str, str]]:
        """(role, name, address) in the order the journey met them."""
        out: list[tuple[str, str, str]] = []
        tcp = self.first("tcp")
        local = str((tcp or {}).get("attrs", {}).get("local") or "this machine")
        out.append(("you", "whathappens", local))
        dns = self.first("dns")
        if dns is not None:
            for view in dns.get("children", []):
                a = view.get("attrs", {})
                if view.get("name") == "dns.resolver":
                    out.append(("resolver", str(view.get("actor") or "recursive resolver"),
                                str(a.get("resolver") or "")))
                elif view.get("name") == "dns.system":
                    out.append(("resolver", "system resolver (getaddrinfo)",
                                ", ".join(a.get("addresses") or [])))
            seen: set[tuple[str, str]] = set()
            for hop in (h for h in _walk([dns]) if h.get("name") == "dns.hop"):
                a = hop.get("attrs", {})
                key = (str(a.get("server")), str(a.get("address")))
                if key in seen:
                    continue
                seen.add(key)
                zone = str(a.get("zone") or "")
                role = ("root" if zone == "." else
                        "TLD" if zone.rstrip(".").count(".") == 0 else "authoritative")
                out.append((role, key[0], key[1]))
        server = self.first("tcp")
        if server is not None:
            a = server.get("attrs", {})
            host = (self.url_span or {}).get("attrs", {}).get("host") or ""
            out.append(("server", str(host), str(a.get("remote") or a.get("address") or "")))
        for s in self.all:
            if str(s.get("name", "")).startswith("server."):
                out.append((str(s["name"]).removeprefix("server."), str(s.get("actor") or ""),
                            ""))
        return out

    def glance(self) -> str:
        items = "".join(
            f"<li><span class=\"role\">{esc(role)}</span><span class=\"name\">{esc(name)}"
            f"</span><span class=\"addr\">{esc(addr)}</span></li>"
            for role, name, addr in self.actors())
        return _section("glance", "At a glance",
                        self.summary_line()
                        + "<p class=\"muted\">Everyone this request met, in order:</p>"
                        f"<ol class=\"actors\">{items}</ol>")

    # ------------------------------------------------------------------ anatomy
    def anatomy(self) -> str:
        span = self.url_span
        if span is None:
            return _section("url", "URL anatomy", "<p>No URL step was recorded.</p>")
        a = span.get("attrs", {})
        if "host" not in a:
            return _section("url", "URL anatomy",
                            f"<p>{_code(a.get('input'))}</p>" + _error(span.get("error"))
                            + _explain("url"), layer=span.get("layer"))
        host = _code(a.get("host"))
        if a.get("host_unicode") and a.get("host_unicode") != a.get("host"):
            host += f" (typed as {_code(a.get('host_unicode'))}; punycode on the wire)"
        how = "explicit" if a.get("port_explicit") else "implied by the scheme"
        port = f"{_code(a.get('port'))} ({how})"
        frag = a.get("fragment")
        pairs = [
            ("scheme", _code(a.get("scheme"))
             + (" (assumed)" if a.get("scheme_assumed") else "")),
            ("host", host + f" <span class=\"muted\">({esc(a.get('host_kind'))})</span>"),
            ("port", port),
            ("path", _code(a.get("path"))),
            ("query", _code(a.get("query")) if a.get("query") is not None else "none"),
            ("fragment", (_code("#" + str(frag)) + " — stays in the browser, never sent")
             if frag is not None else "none"),
            ("request target", _code(a.get("request_target"))),
            ("registrable domain", _code(a.get("registrable_domain") or "—")),
            ("public suffix", _code(a.get("public_suffix") or "—")),
            ("HSTS preloaded", "yes" if a.get("hsts_preloaded") else "no"),
        ]
        if a.get("upgraded_from_http"):
            pairs.append(("HSTS upgrade", "http was switched to https before any packet"))
        timing = (f"<p class=\"measures\">Parsing took <strong>{esc(_ms(span.get('duration_ms')))}"
                  f"</strong> (CPU time, {esc(self.clock)}).</p>")
        return _section("url", "URL anatomy",
                        f"<p class=\"bigurl\">{_code(a.get('url'))}</p>" + _dl(pairs)
                        + timing + _error(span.get("error")) + _explain("url"),
                        layer=span.get("layer"))

    # ---------------------------------------------------------------------- DNS
    def dns(self) -> str:
        parts: list[str] = []
        for leg in self.legs:
            span = _child(leg, "dns")
            if span is None:
                continue
            a = span.get("attrs", {})
            used = a.get("view_used")
            head = (f"<h3>{self.leg_label(leg)}: {_code(a.get('host'))} → "
                    f"{esc(', '.join(a.get('addresses') or []) or 'no address')}</h3>")
            info = [("time", f"<strong>{esc(_ms(span.get('duration_ms')))}</strong> "
                             f"(all views, {esc(self.clock)})"),
                    ("answer used", esc(used or "—") + " view")]
            if a.get("https_records"):
                info.append(("HTTPS records", esc("; ".join(a["https_records"]))))
            if a.get("note"):
                info.append(("note", esc(a["note"])))
            parts.append(head + _dl(info) + _error(span.get("error")))
            for view in span.get("children", []):
                parts.append(self.dns_view(view, used))
        if not parts:
            return _section("dns", "DNS", "<p>No DNS lookup happened (an IP address, or the "
                            "name was given with --resolve).</p>" + _explain("dns"))
        layer = (self.first("dns") or {}).get("layer")
        return _section("dns", "DNS", "".join(parts) + _explain("dns"), layer=layer)

    def dns_view(self, view: Span, used: object) -> str:
        a = view.get("attrs", {})
        name = {"dns.system": "system", "dns.resolver": "resolver", "dns.walk": "walk"}.get(
            str(view.get("name")), str(view.get("name")))
        mark = " (answer used)" if name == used else ""
        out = [f"<h4>{esc(name)} view{mark} · {esc(_ms(view.get('duration_ms')))}</h4>",
               _error(view.get("error"))]
        if name == "system":
            src = "hosts file" if a.get("hosts_file_hit") else "getaddrinfo"
            out.append(f"<p>{esc(src)} → {esc(', '.join(a.get('addresses') or []))}</p>")
        elif name == "resolver":
            out.append(f"<p>Asked {_code(a.get('resolver') or view.get('actor'))} "
                       "(recursion desired):</p>")
            rows = []
            first_a: float | None = None
            for q in view.get("children", []):
                qa = q.get("attrs", {})
                recs = ", ".join(qa.get("records") or []) or (
                    "no record (NODATA)" if qa.get("rcode") == "NOERROR" else str(qa.get("rcode")))
                note = str(qa.get("purpose") or "")
                took = q.get("duration_ms")
                if "cache" in note and first_a and took is not None:
                    note += (": faster, served from cache" if float(took) < first_a / 2
                             else ": not faster, no cache hit")
                if qa.get("qtype") == "A" and first_a is None and took is not None:
                    first_a = float(took)
                rows.append([_code(qa.get("qtype")), esc(_ms(took)),
                             esc(recs) + _error(q.get("error")),
                             esc(qa.get("ttl") if qa.get("ttl") is not None else "—"),
                             esc(qa.get("transport") or "—"), esc(note)])
            out.append(_table(["type", "time", "records", "TTL (s)", "over", "why"], rows))
            raw = [esc(r) for q in view.get("children", [])
                   for r in (q.get("attrs", {}).get("answer") or [])]
            if raw:
                out.append("<div class=\"advanced\"><p class=\"muted\">Answer section as "
                           "received:</p><pre>" + "\n".join(raw) + "</pre></div>")
            if a.get("cname_chain"):
                out.append(f"<p>CNAME chain: {esc(' ; '.join(a['cname_chain']))}</p>")
        else:
            out.append(f"<p>Iterative walk (no recursion) starting from the root hints "
                       f"{_code(a.get('root_hints'))}, hop by hop:</p>")
            for question in view.get("children", []):
                qa = question.get("attrs", {})
                out.append(f"<p class=\"q\"><strong>{esc(qa.get('qtype'))} "
                           f"{esc(qa.get('qname'))}</strong>: {esc(qa.get('outcome'))} "
                           f"{esc(' '.join(qa.get('records') or []))}</p>")
                rows = []
                for hop in _walk(question.get("children", [])):
                    if hop.get("name") != "dns.hop":
                        continue
                    ha = hop.get("attrs", {})
                    kind = str(ha.get("kind") or "")
                    what = esc(kind)
                    if kind == "referral":
                        glue = "with glue" if ha.get("glue") else "no glue"
                        what += (f" to {_code(ha.get('referral_zone'))} "
                                 f"({esc(', '.join(ha.get('referral_ns') or []))}; {glue})")
                    elif kind in ("answer", "cname"):
                        what += " " + esc("; ".join(ha.get("answers") or []))
                    elif ha.get("note"):
                        what += " " + esc(ha.get("note"))
                    if ha.get("depth"):
                        what += (" <span class=\"muted\">(resolving NS name "
                                 f"{esc(ha.get('qname'))})</span>")
                    rows.append([esc(ha.get("server")), _code(ha.get("address")),
                                 _code(ha.get("zone")), what + _error(hop.get("error")),
                                 esc(ha.get("transport") or "udp"),
                                 esc(_ms(hop.get("duration_ms")))])
                out.append(_table(["server", "address", "zone", "kind", "over", "time"],
                                  rows, "hops"))
        return "<div class=\"view\">" + "".join(out) + "</div>"

    # ---------------------------------------------------------------------- TCP
    def segments(self, segments: list[dict[str, Any]], capture: dict[str, Any]) -> str:
        """The captured handshake segments: the real numbers, as the wire carried them."""
        rows = []
        for seg in segments:
            opts = seg.get("options") or {}
            words = ", ".join(f"{k.replace('_', ' ')} {v}" if v is not True else
                              k.replace("_", " ") for k, v in opts.items())
            ack = seg.get("ack")
            rows.append([f"<strong>{esc(seg.get('segment'))}</strong>",
                         f"{_code(seg.get('from'))} → {_code(seg.get('to'))}",
                         esc(seg.get("seq")), esc("—" if ack is None else ack),
                         esc(seg.get("window")), esc(words or "none"),
                         esc(_ms(seg.get("t_ms")))])
        first = segments[0].get("t_ms") if segments else None
        last = segments[-1].get("t_ms") if segments else None
        wire = ""
        if isinstance(first, (int, float)) and isinstance(last, (int, float)) and len(
                segments) == 3:
            wire = (f"<p>On the wire the handshake took <strong>{esc(_ms(last - first))}"
                    "</strong> from SYN to ACK (kernel timestamps); the connect time above "
                    "also includes the system call and the event loop noticing the socket "
                    "became writable.</p>")
        return ("<p class=\"beginner\">These are the three real segments of the "
                "handshake. Each side picks a random starting number (its initial sequence "
                "number) and the other side acknowledges it by answering with that number + "
                "1: that is how both know the other is listening.</p>"
                + _table(["segment", "from → to", "seq", "ack", "window", "options", "at"],
                         rows, "tbl")
                + wire + f"<p class=\"small\">Captured: {esc(capture.get('how'))}.</p>")

    def tcp(self) -> str:
        parts: list[str] = []
        for leg in self.legs:
            span = _child(leg, "tcp")
            if span is None:
                if leg.get("attrs", {}).get("connection") == "reused":
                    parts.append(f"<h3>{self.leg_label(leg)}</h3><p>Reused the open "
                                 "connection: no new TCP handshake.</p>")
                continue
            a = span.get("attrs", {})
            info = next((c.get("attrs", {}).get("tcp_info") for c in span.get("children", [])
                         if c.get("attrs", {}).get("outcome") == "connected"), None)
            pairs = [("from", _code(a.get("local"))), ("to", _code(a.get("remote"))),
                     ("family", esc(a.get("family"))),
                     ("connect time", f"<strong>{esc(_ms(span.get('duration_ms')))}</strong> "
                                      f"(connect() until writable, {esc(self.clock)})")]
            if info:
                pairs += [("kernel RTT", f"{esc(info.get('rtt_ms'))} ms ± "
                                         f"{esc(info.get('rttvar_ms'))} ms "
                                         "(the kernel's smoothed estimate, TCP_INFO)"),
                          ("MSS", f"{esc(info.get('snd_mss'))} bytes (largest segment sent)"),
                          ("congestion window", f"{esc(info.get('snd_cwnd'))} segments")]
            segments = a.get("handshake_segments") or a.get("segments_seen") or []
            capture = a.get("capture") or {}
            if not segments:
                why = capture.get("why") or ("not captured: run with --capture as root (a "
                                             "packet capture)")
                pairs.append(("SYN / SYN-ACK / ACK",
                              f"sequence numbers {esc(why)}; only the time of the handshake "
                              "as a whole is known"))
            out = [f"<h3>{self.leg_label(leg)}</h3>", _dl(pairs), _error(span.get("error"))]
            if segments:
                out.append(self.segments(segments, capture))
            attempts = [[esc(c.get("attrs", {}).get("family")),
                         _code(c.get("attrs", {}).get("address")),
                         esc(c.get("attrs", {}).get("outcome")),
                         esc(_ms(c.get("duration_ms")))] for c in span.get("children", [])]
            if len(attempts) > 1 or a.get("happy_eyeballs"):
                out.append("<p class=\"muted\">Attempts (Happy Eyeballs):</p>"
                           + _table(["family", "address", "outcome", "time"], attempts))
            raw = [(k, info) for k, info in (("TCP_INFO at connect", info),
                                              ("TCP_INFO after the exchange",
                                               a.get("tcp_info_end"))) if info]
            for title, d in raw:
                rows = [[_code(k), esc(v)] for k, v in d.items()]
                out.append(f"<div class=\"advanced\"><p class=\"muted\">{title}:</p>"
                           + _table(["field", "value"], rows) + "</div>")
            parts.append("".join(out))
        if not parts:
            parts.append("<p>No TCP connection was opened.</p>")
        return _section("tcp", "TCP", "".join(parts) + _explain("tcp"),
                        layer=(self.first("tcp") or {}).get("layer"))

    # ---------------------------------------------------------------------- TLS
    def tls(self) -> str:
        parts: list[str] = []
        for leg in self.legs:
            span = _child(leg, "tls")
            if span is None:
                continue
            a = span.get("attrs", {})
            pairs = [
                ("version", _code(a.get("version") or "—")),
                ("cipher", _code(a.get("cipher") or "—")
                 + (f" ({esc(a.get('cipher_bits'))}-bit)" if a.get("cipher_bits") else "")),
                ("key exchange group", _code(a.get("group") or "—")),
                ("ALPN", f"offered {esc(', '.join(a.get('alpn_offered') or []) or '—')}; "
                         f"agreed {_code(a.get('alpn') or 'none')}"),
                ("SNI", _code(a.get("sni") or "—")),
                ("resumed session", "yes" if a.get("session_reused") else "no"),
                ("handshake time", f"<strong>{esc(_ms(span.get('duration_ms')))}</strong> "
                                   f"(ClientHello sent → our Finished sent, {esc(self.clock)})"),
            ]
            out = [f"<h3>{self.leg_label(leg)}</h3>", _dl(pairs), _error(span.get("error"))]
            msgs = a.get("messages") or []
            if msgs:
                rows = [[("→ sent" if m.get("direction") == "sent" else "← received"),
                         _code(m.get("type")),
                         esc(f"{float(m['t_ms']):.3f}" if m.get("t_ms") is not None else "—"),
                         esc(m.get("bytes") if m.get("bytes") is not None else "—")]
                        for m in msgs]
                out.append("<h4>Handshake messages, in order</h4>"
                           + _table(["direction", "message", "at (ms since t0)", "bytes"],
                                    rows))
            chain = a.get("chain") or []
            if chain:
                rows = []
                for i, c in enumerate(chain):
                    sans = list(c.get("san_dns") or []) + list(c.get("san_ip") or [])
                    who = esc(c.get("subject_cn") or c.get("subject"))
                    if c.get("unreadable"):
                        rows.append([("leaf" if i == 0 else "CA"), f"<strong>{who}</strong>",
                                     esc(c.get("unreadable")), "—", "—", "—"])
                        continue
                    rows.append([
                        ("leaf" if i == 0 else "CA"),
                        f"<strong>{who}</strong><br><span class=\"muted\">"
                        f"{esc(c.get('subject'))}</span>",
                        esc(c.get("issuer_cn") or c.get("issuer")),
                        f"{esc(str(c.get('not_before') or '')[:10])} → "
                        f"{esc(str(c.get('not_after') or '')[:10])} "
                        f"({esc(c.get('days_left'))} days left)",
                        esc(f"{c.get('key')}, {c.get('signature_algorithm')}"),
                        esc(", ".join(str(s) for s in sans)) or "—",
                    ])
                out.append("<h4>Certificate chain</h4>" + _table(
                    ["", "subject", "issuer", "valid", "key, signature", "names (SAN)"], rows))
                adv = [[esc(c.get("subject_cn") or c.get("subject")), _code(c.get("serial")),
                        _code(c.get("sha256")), esc(c.get("sct_count"))] for c in chain]
                out.append("<div class=\"advanced\">" + _table(
                    ["certificate", "serial", "SHA-256 fingerprint", "SCTs"], adv) + "</div>")
            v = a.get("chain_verification")
            if v:
                cls = "ok" if v.get("ok") else "bad"
                out.append(f"<p class=\"{cls}\">Verification: {esc(v.get('reason'))} "
                           f"<span class=\"muted\">(by {esc(v.get('by'))})</span></p>")
            elif a.get("verification"):
                out.append(f"<p class=\"muted\">Verification: {esc(a['verification'])}</p>")
            parts.append("".join(out))
        if not parts:
            parts.append("<p>No TLS handshake (plain http, or the connection was reused).</p>")
        return _section("tls", "TLS", "".join(parts) + _explain("tls"),
                        layer=(self.first("tls") or {}).get("layer"))

    # --------------------------------------------------------- TLS 1.2 vs 1.3
    def tls_compare(self) -> str:
        """--compare-tls: two more handshakes with the same server, after the journey."""
        title = "TLS 1.2 vs 1.3, measured on this host"
        tc = (self.j.get("facts") or {}).get("tls_compare")
        intro = (
            "<div class=\"explain beginner\"><p>Before any page can travel encrypted, your "
            "computer and the server agree on keys: the TLS handshake. Think of ordering at "
            "a counter. With TLS 1.2 you greet the cashier and wait for a reply, then place "
            "your order and wait again before anything happens: two waits. With TLS 1.3 you "
            "greet and order in the same breath, so you wait only once. Each wait is one trip "
            "to the server and back; nearby that is a blink, across an ocean it is a "
            "noticeable pause. Below, both were tried for real against this server.</p></div>"
            "<div class=\"explain advanced\"><p>A full TLS 1.2 handshake (RFC 5246 §7.3) "
            "needs two round trips: ClientHello ⇢ ServerHello, Certificate, ServerKeyExchange, "
            "ServerHelloDone, then ClientKeyExchange, ChangeCipherSpec, Finished ⇢ "
            "ChangeCipherSpec, Finished. TLS 1.3 (RFC 8446 §2) sends a key share in the "
            "ClientHello, so the server answers with everything up to its Finished in one "
            "flight: one round trip (two after a HelloRetryRequest). Round trips here are "
            "counted from the recorded message timeline (server flights the client had to wait "
            "for), not assumed. Fresh connections to the address the journey used, one after "
            "the other in alternating rounds, each with a new TLS context and no session "
            "offered (no resumption); each version shows its median sample. Outside the "
            "journey's steps, so its total is unchanged.</p></div>")
        if not tc:
            return _section("tls-compare", title, intro
                            + "<p>Not measured on this journey. Run it again with "
                            "<code>--compare-tls</code> (https URLs) to add real "
                            "handshakes, TLS 1.2 and TLS 1.3, side by side.</p>")
        if not tc.get("measured"):
            return _section("tls-compare", title, intro
                            + f"<p>Not measured: {esc(tc.get('reason'))}</p>")
        versions: list[dict[str, Any]] = list(tc.get("versions") or [])
        addr = str(tc.get("address") or "")
        where = f"[{addr}]:{tc.get('port')}" if ":" in addr else f"{addr}:{tc.get('port')}"
        out = [intro, f"<p>{esc(tc.get('rounds', 1))} round(s) of connections to "
                      f"{_code(where)} (server name {_code(tc.get('server_name'))}), after "
                      f"the journey. Clock: {esc(tc.get('clock'))}.</p>"]

        def num(v: object, unit: str = " ms") -> str:
            return "—" if v is None else esc(f"{v}{unit}")

        def accepted(v: dict[str, Any]) -> str:
            if v.get("accepted") is True:
                return "<span class=\"ok\">yes</span>"
            if v.get("accepted") is False:
                return "<span class=\"bad\">no, refused</span>"
            return "unknown"

        fields: list[tuple[str, Any]] = [
            ("offered", lambda v: esc(v.get("offered"))),
            ("accepted", accepted),
            ("negotiated", lambda v: _code(v.get("negotiated_version") or "—")),
            ("TCP connect", lambda v: num(v.get("tcp_connect_ms"))),
            ("handshake", lambda v: f"<strong>{num(v.get('handshake_ms'))}</strong>"
             + (f" <span class=\"muted\">(median of {esc(v.get('median_of'))})</span>"
                if (v.get("median_of") or 0) > 1 else "")),
            ("every sample", lambda v: esc(", ".join(
                f"{float(x['handshake_ms']):.3f} ms" for x in v.get("samples") or []
                if x.get("handshake_ms") is not None) or "—")),
            ("round trips waited for", lambda v: num(v.get("round_trips"), "")),
            ("each wait (our last message → the server's next flight)",
             lambda v: esc(" + ".join(f"{float(w):.3f} ms" for w in v.get("waits_ms") or [])
                           or "—")),
            ("kernel RTT (TCP_INFO)", lambda v: num(v.get("kernel_rtt_ms"))),
            ("cipher", lambda v: _code(v.get("cipher") or "—")),
            ("key exchange group", lambda v: _code(v.get("group") or "—")),
            ("ALPN", lambda v: _code(v.get("alpn") or "—")),
            ("context setup (not in handshake)", lambda v: num(v.get("context_setup_ms"))),
        ]
        head = [""] + [f"TLS {esc(v.get('version'))}" for v in versions]
        rows = [[esc(label)] + [fn(v) for v in versions] for label, fn in fields]
        out.append(_table(head, rows, "compare"))
        out.append("<ul>" + "".join(
            f"<li class=\"{'ok' if v.get('outcome') == 'measured' else 'bad'}\">"
            f"{esc(v.get('plain'))}</li>" for v in versions) + "</ul>")
        includes = next((v.get("handshake_includes") for v in versions
                         if v.get("handshake_includes")), None)
        if includes:
            out.append(f"<p class=\"measures\"><strong>What the handshake time includes:"
                       f"</strong> {esc(includes)}.</p>")
        m = tc.get("model") or {}
        if m.get("available"):
            d = m.get("round_trip_difference")
            out.append(
                "<p class=\"note\"><strong>Modelled, not measured:</strong> "
                f"{esc(d)} round trip(s) × the kernel's RTT {num(m.get('rtt_ms'))} = "
                f"<strong>{num(m.get('expected_difference_ms'))}</strong> expected from round "
                f"trips alone. <strong>Measured</strong> difference (TLS 1.2 − TLS 1.3): "
                f"<strong>{num(m.get('measured_difference_ms'))}</strong>. The other "
                f"{num(m.get('beyond_round_trips_ms'))} is work, not waiting on the wire: "
                "cryptography on both sides, the server's and our scheduling. "
                f"<span class=\"muted\">RTT: {esc(m.get('rtt_source'))}.</span></p>")
        elif m:
            out.append(f"<p class=\"note\"><strong>Modelled line:</strong> not available: "
                       f"{esc(m.get('why_not'))}.</p>")
        for v in versions:
            msgs = v.get("messages") or []
            if not msgs:
                continue
            mrows = [[("→ sent" if x.get("direction") == "sent" else "← received"),
                      _code(x.get("type")),
                      esc(f"{float(x['t_ms']):.3f}" if x.get("t_ms") is not None else "—"),
                      esc(f"+{float(x['since_client_hello_ms']):.3f}"
                          if x.get("since_client_hello_ms") is not None else "—"),
                      esc(x.get("bytes") if x.get("bytes") is not None else "—")]
                     for x in msgs]
            out.append(f"<h4>TLS {esc(v.get('version'))}: messages in order</h4>" + _table(
                ["direction", "message", "at (ms since t0)", "since ClientHello (ms)",
                 "bytes"], mrows))
        return _section("tls-compare", title, "".join(out), layer="transport")

    # --------------------------------------------------------------------- HTTP
    def http(self) -> str:
        parts: list[str] = []
        for leg in self.legs:
            la = leg.get("attrs", {})
            span = _child(leg, "http")
            out = [f"<h3>{self.leg_label(leg)}: {esc(la.get('method'))} "
                   f"<span class=\"url\">{esc(la.get('url'))}</span></h3>",
                   f"<p class=\"muted\">{esc(la.get('connection', 'new'))} connection</p>"]
            if span is None:
                parts.append("".join(out) + _error(leg.get("error")))
                continue
            a = span.get("attrs", {})
            out.append(_error(span.get("error")))
            if "status" in a:
                enc = ",".join(a.get("content_encoding") or []) or "identity"
                out.append(_dl([
                    ("status", f"<strong>{esc(a.get('status'))} {esc(a.get('reason') or '')}"
                               f"</strong> over {esc(a.get('http_version'))}"),
                    ("TTFB", f"<strong>{esc(_ms(a.get('wait_ms')))}</strong> (request sent → "
                             f"first response byte, {esc(self.clock)})"),
                    ("send", f"{esc(_ms(a.get('send_ms')))} (writing the request)"),
                    ("download", f"{esc(_ms(a.get('receive_ms')))} (first byte → last byte)"),
                    ("bytes", f"{esc(_bytes(a.get('wire_bytes_sent')))} sent, "
                              f"{esc(_bytes(a.get('wire_bytes_received')))} received on the "
                              f"wire; body {esc(_bytes(a.get('body_bytes_encoded')))} encoded, "
                              f"{esc(_bytes(a.get('body_bytes_decoded')))} decoded ({esc(enc)})"),
                    ("connection", ("can be reused" if a.get("reusable") else "not reusable")
                     + (f"; used by {esc(a.get('connection_legs'))} request(s)"
                        if a.get("connection_legs") else "")),
                ]))
            req = a.get("request_headers") or []
            if req:
                out.append("<h4>Request, as sent</h4><pre>" + "\n".join(
                    f"{esc(n)}: {esc(v)}" for n, v in req) + "</pre>")
            resp = a.get("response_headers") or []
            if resp:
                out.append("<h4>Response headers, as received</h4><pre>" + "\n".join(
                    f"{esc(n)}: {esc(v)}" for n, v in resp) + "</pre>")
            if a.get("body_excerpt"):
                out.append("<div class=\"advanced\"><h4>Body, first bytes (decoded)</h4><pre>"
                           + esc(a["body_excerpt"], block=True) + "</pre></div>")
            parts.append("<div class=\"leg\">" + "".join(out) + "</div>")
        if not parts:
            parts.append("<p>No HTTP request was sent.</p>")
        redirects = (self.j.get("facts") or {}).get("redirects")
        intro = (f"<p>{esc(len(self.legs))} request(s); {esc(redirects or 0)} redirect(s) "
                 "followed, each a leg of its own.</p>")
        return _section("http", "HTTP", intro + "".join(parts) + _explain("http"),
                        layer=(self.first("http") or {}).get("layer"))

    def leg_label(self, leg: Span) -> str:
        return f"Request {esc(int(leg.get('attrs', {}).get('index') or 0) + 1)}"

    # ------------------------------------------------------------ inside (lab)
    def inside(self) -> str:
        tops = [c for leg in self.legs for h in [_child(leg, "http")] if h
                for c in h.get("children", []) if str(c.get("name", "")).startswith("server.")]
        if not tops:
            return ""
        return _section("inside", "Inside the server",
                        "<p class=\"muted\">From the lab's own logs, on the same clock.</p>"
                        + "<ul class=\"tree\">" + "".join(self.server_tree(s) for s in tops)
                        + "</ul>")

    def server_tree(self, span: Span) -> str:
        a = span.get("attrs", {})
        facts = " · ".join(f"{esc(k)} {_code(v)}" for k, v in a.items()
                           if k != "explain" and not isinstance(v, (dict, list)))
        plan = (f"<pre>{esc(a['explain'], block=True)}</pre>" if a.get("explain") else "")
        kids = "".join(self.server_tree(c) for c in span.get("children", []))
        return (f"<li><strong>{esc(span.get('actor'))}</strong> "
                f"<span class=\"muted\">{esc(span.get('name'))}</span> "
                f"{esc(_ms(span.get('duration_ms')))}<div class=\"small\">{facts}</div>{plan}"
                + (f"<ul>{kids}</ul>" if kids else "") + "</li>")

    # ---------------------------------------------------------------- waterfall
    def steps(self) -> list[tuple[str, Span, int]]:
        rows: list[tuple[str, Span, int]] = []
        for s in self.spans:
            if s.get("name") == "leg":
                rows.append((f"request {int(s.get('attrs', {}).get('index') or 0) + 1}", s, 0))
                for c in s.get("children", []):
                    rows.append((str(c.get("name")), c, 1))
                    if c.get("name") == "dns":
                        for v in c.get("children", []):
                            rows.append((str(v.get("name")).replace("dns.", "DNS "), v, 2))
                    if c.get("name") == "http":
                        for v in c.get("children", []):
                            rows.append((str(v.get("name")), v, 2))
            else:
                rows.append((str(s.get("name")), s, 0))
        return rows

    def budget(self, span: Span, leg: Span | None) -> tuple[str, float | None, float | None]:
        """The guide for this step and, when it can be drawn, where its end falls (ms)."""
        name = span.get("name")
        start = float(span.get("start_ms") or 0)
        if name == "dns":
            return BUDGETS["dns"][0], start + 50, None
        if name == "tcp" or name == "tls":
            tcp = _child(leg, "tcp") if leg else None
            info = next((c.get("attrs", {}).get("tcp_info") for c in (tcp or {}).get(
                "children", []) if c.get("attrs", {}).get("tcp_info")), None)
            rtt = float(info["rtt_ms"]) if info and info.get("rtt_ms") else None
            rtts = 1 if name == "tcp" or "1.3" in str(span.get("attrs", {}).get("version")) else 2
            guide = BUDGETS[str(name)][0]
            if rtt is None:
                return guide, None, None
            return f"{guide}: {rtts * rtt:.3f} ms here", start + rtts * rtt, rtt
        if name == "http.wait":
            return "TTFB " + BUDGETS["ttfb"][0], start + 200, None
        return "", None, None

    def place(self, left: float, width: float | None = None) -> str:
        """Position of a bar or mark, in percent of the timeline."""
        data = f"data-left=\"{left:.3f}\"" + (
            "" if width is None else f" data-width=\"{width:.3f}\"")
        if not self.inline_style:
            return data
        css = f"left:{left:.3f}%" + ("" if width is None else f";width:{width:.3f}%")
        return f"{data} style=\"{css}\""

    def waterfall(self) -> str:
        rows = []
        leg: Span | None = None
        for label, span, depth in self.steps():
            if span.get("name") == "leg":
                leg = span
            start = float(span.get("start_ms") or 0)
            end = float(span.get("end_ms") or start)
            left = min(start / self.total * 100, 99.5)
            width = max(min((end - start) / self.total * 100, 100 - left), 0.3)
            guide, mark, rtt = self.budget(span, leg)
            mark_html = ""
            if mark is not None and mark <= self.total:
                mark_html = (f"<span class=\"mark\" {self.place(mark / self.total * 100)}"
                             " aria-hidden=\"true\"></span>")
            over = ""
            if rtt:
                over = f" <span>(took {(end - start) / rtt:,.1f} × the kernel's RTT)</span>"
            elif guide and mark is not None:
                over = (" <span class=\"bad\">over</span>" if end > mark
                        else " <span class=\"ok\">within</span>")
            step = "bad" if span.get("error") else str(span.get("step") or "")
            rows.append(
                f"<tr class=\"d{depth}\"><th scope=\"row\">{esc(label)}</th>"
                f"<td class=\"lay\">{esc(span.get('layer'))}</td>"
                f"<td class=\"barcell\"><div class=\"track\"><span class=\"bar s-{esc(step)}\" "
                f"{self.place(left, width)}></span>{mark_html}</div></td>"
                f"<td class=\"num\">{esc(_ms(span.get('duration_ms')))}</td>"
                f"<td class=\"num muted at\">{esc(f'{start:.2f}')}</td>"
                f"<td class=\"guide\">{esc(guide)}{over}</td></tr>")
        table = ("<div class=\"scroll\"><table class=\"waterfall\"><thead><tr>"
                 "<th scope=\"col\">step</th><th scope=\"col\" class=\"lay\">layer</th>"
                 f"<th scope=\"col\">timeline (0 → {esc(_ms(self.total))})</th>"
                 "<th scope=\"col\">took</th><th scope=\"col\" class=\"at\">starts at</th>"
                 "<th scope=\"col\" class=\"guide\">guide</th></tr></thead><tbody>"
                 + "".join(rows) + "</tbody></table></div>")
        notes = "".join(f"<li><strong>{esc(k.upper())} {esc(v[0])}</strong>: {esc(v[1])}</li>"
                        for k, v in BUDGETS.items())
        return _section(
            "waterfall", "Waterfall",
            f"<p>Bars are placed on the journey's timeline ({esc(self.clock)}, ms since t0), "
            "so their length is the time each step took.</p>" + table
            + "<h3>What good looks like</h3><p class=\"note\">The thin marks and the guide "
            "column are <strong>rules of thumb, not measurements</strong>: they say where a "
            "healthy step on a good network tends to end. RTT is the kernel's own estimate "
            "for this connection.</p>" + f"<ul>{notes}</ul>")

    # ------------------------------------------------------------------- layers
    def layers(self) -> str:
        by: dict[str, list[str]] = {}
        for s in self.all:
            name = str(s.get("name", ""))
            steps = ("url", "dns", "tcp", "tls", "http", "prepare")
            if s.get("layer") and (name in steps or name.startswith("server.")):
                names = by.setdefault(str(s["layer"]), [])
                if str(s["name"]) not in names:
                    names.append(str(s["name"]))
        rows = [[f"<strong>{esc(layer)}</strong>", esc(LAYER_NOTE.get(layer, "")),
                 esc(", ".join(by.get(layer, [])) or "— (not a separate step here)")]
                for layer in list(LAYER_ORDER) + [k for k in by if k not in LAYER_ORDER]]
        return _section("layers", "The TCP/IP layers",
                        "<p>Each step belongs to a layer of the TCP/IP model (RFC 1122); the "
                        "layer is recorded on every step of the journey.</p>"
                        + _table(["layer", "what it does", "steps in this journey"], rows))

    # --------------------------------------------------------------- cheatsheet
    def cheatsheet(self) -> str:
        ua = (self.url_span or {}).get("attrs", {})
        host = str(ua.get("host") or "")
        url = str(self.j.get("url") or ua.get("url") or "")
        port = int(ua.get("port") or (443 if ua.get("scheme") == "https" else 80))
        q = shlex.quote
        cmds: list[tuple[str, str]] = []
        dns = self.first("dns")
        walk = next((v for v in (dns or {}).get("children", [])
                     if v.get("name") == "dns.walk"), None)
        resolver = next((v for v in (dns or {}).get("children", [])
                         if v.get("name") == "dns.resolver"), None)
        dport = (walk or {}).get("attrs", {}).get("port")
        p = f" -p {int(dport)}" if dport and int(dport) != 53 else ""
        if host:
            cmds.append(("Walk DNS from the root, as the walk view did",
                         f"dig +trace{p} {q(host)}"))
            if resolver is not None:
                r = str(resolver.get("attrs", {}).get("resolver") or "")
                rhost, _, rport = r.rpartition(":") if r.count(":") == 1 else (r, "", "")
                rp = f" -p {int(rport)}" if rport.isdigit() and int(rport) != 53 else ""
                cmds.append(("Ask the same resolver",
                             f"dig @{q(rhost.strip('[]'))}{rp} {q(host)} A"))
            else:
                cmds.append(("Ask your resolver", f"dig {q(host)} A"))
        fmt = ("dns %{time_namelookup}s  connect %{time_connect}s  tls %{time_appconnect}s  "
               "ttfb %{time_starttransfer}s  total %{time_total}s\\n")
        cmds.append(("Time the same phases with curl",
                     f"curl -so /dev/null -w {q(fmt)} {q(url)}"))
        if ua.get("scheme") == "https" and host:
            cmds.append(("See the TLS handshake and certificate chain",
                         f"openssl s_client -connect {q(f'{host}:{port}')} -servername "
                         f"{q(host)} -alpn h2 </dev/null"))
        tcp = self.first("tcp")
        addr = str((tcp or {}).get("attrs", {}).get("address") or "")
        if addr and host:
            a = f"[{addr}]" if ":" in addr else addr
            cmds.append(("Skip DNS and connect to the address this journey used",
                         f"curl -sv --resolve {q(f'{host}:{port}:{a}')} -o /dev/null {q(url)}"))
        if host:
            cmds.append(("Run this journey again", f"whathappens {q(url)} --html report.html"))
        items = "".join(f"<li><p>{esc(t)}</p><pre><code>{esc(c)}</code></pre></li>"
                        for t, c in cmds)
        return _section("cheatsheet", "Cheat sheet",
                        "<p>The same steps with standard tools, filled in for this URL. The "
                        "demo's names only resolve through its own resolver and CA, so there "
                        "add its options.</p>" + f"<ol class=\"cmds\">{items}</ol>")

    # ------------------------------------------------------------------- footer
    def footer(self) -> str:
        items = "".join(
            f"<li class=\"sev-{esc(f.get('severity'))}\"><span class=\"tag\">"
            f"{esc(f.get('severity'))}</span> [{esc(f.get('step'))}] {esc(f.get('message'))}"
            "</li>" for f in (self.j.get("findings") or []))
        findings = (f"<h2>Findings</h2><ul class=\"findings\">{items}</ul>" if items
                    else "<p>No findings.</p>")
        return ("<footer class=\"wrap\" id=\"footer\">" + findings + self.summary_line()
                + f"<p class=\"muted\">Total {esc(_ms(self.j.get('total_ms')))} on the "
                f"{esc(self.clock)} clock · exit code {esc(self.j.get('exit_code'))} · "
                "made by whathappens; this file makes no network request.</p></footer>")


def render_html(journey: dict[str, Any]) -> str:
    """The whole page, as one string."""
    return HtmlReport(journey).render()


CSS = """
:root{--bg:#f7f7f9;--card:#fff;--fg:#1b1d23;--muted:#5a6170;--line:#dfe2e8;--accent:#2557d6;
--ok:#17753a;--bad:#b3261e;--code:#f0f2f6;--track:#eceef3;--mark:#111;
--url:#8a3ffc;--dns:#0e7c86;--tcp:#1f7a3d;--tls:#a86500;--http:#2557d6;--app:#7a7f8c}
@media (prefers-color-scheme:dark){:root{--bg:#111318;--card:#1a1d24;--fg:#e8eaf0;
--muted:#a3aab8;--line:#2c313c;--accent:#8ab4ff;--ok:#6fdc8c;--bad:#ff8a80;--code:#232733;
--track:#242833;--mark:#f2f2f2;--url:#be95ff;--dns:#3ddbd9;--tcp:#6fdc8c;--tls:#f1c21b;
--http:#8ab4ff;--app:#8d93a0}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);line-height:1.55;font-size:16px;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
font-size:.9em}
code{background:var(--code);padding:.05em .3em;border-radius:4px;overflow-wrap:anywhere}
pre{background:var(--code);padding:.75em 1em;border-radius:8px;overflow-x:auto;
white-space:pre;margin:.5em 0}
pre code{background:none;padding:0}
.wrap{max-width:1100px;margin:0 auto;padding:0 1rem}
header.top{background:var(--card);border-bottom:1px solid var(--line);padding:1.25rem 0 .5rem}
.kicker{margin:0;color:var(--muted);font-size:.85rem;letter-spacing:.04em;text-transform:uppercase}
h1{font-size:clamp(1.3rem,3.5vw,2rem);line-height:1.25;margin:.2em 0 .4em}
h1 .url,.url{overflow-wrap:anywhere;word-break:break-word}
h2{font-size:1.35rem;margin:0 0 .6em;display:flex;gap:.6rem;align-items:baseline;flex-wrap:wrap}
h3{font-size:1.05rem;margin:1.2em 0 .4em;overflow-wrap:anywhere}
h4{font-size:.95rem;margin:1em 0 .3em}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:1.1rem 1.2rem;margin:1.1rem 0;scroll-margin-top:1rem}
.layer{font-size:.75rem;font-weight:600;color:var(--muted);border:1px solid var(--line);
border-radius:999px;padding:.1em .6em}
.muted{color:var(--muted)}
.small{font-size:.85rem;color:var(--muted)}
.ok{color:var(--ok)}.bad{color:var(--bad)}
.summary{font-size:1.15rem;font-weight:600;margin:.2em 0 .8em}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem .9rem;padding:0;margin:.8rem 0 0}
nav a{color:var(--accent);text-decoration:none;font-size:.9rem}
nav a:hover,nav a:focus-visible{text-decoration:underline}
a:focus-visible,label:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.mode{position:absolute;opacity:0;width:1px;height:1px;margin:0}
.switch{display:inline-flex;border:1px solid var(--line);border-radius:999px;padding:3px;
background:var(--bg)}
.switch label{padding:.3em 1em;border-radius:999px;cursor:pointer;font-weight:600;
font-size:.9rem;color:var(--muted)}
#mode-beginner:checked~header label[for=mode-beginner],
#mode-advanced:checked~header label[for=mode-advanced]{background:var(--accent);color:var(--card)}
#mode-beginner:focus-visible~header label[for=mode-beginner],
#mode-advanced:focus-visible~header label[for=mode-advanced]{outline:3px solid var(--accent);
outline-offset:2px}
#mode-beginner:checked~main .advanced,#mode-advanced:checked~main .beginner{display:none}
.explain{border-left:4px solid var(--accent);background:var(--code);padding:.4em 1em;
border-radius:0 8px 8px 0;margin:1em 0 .5em}
.explain p{margin:.4em 0}
.measures{font-size:.88rem;color:var(--muted)}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr));
gap:.4rem 1.2rem;margin:.5em 0}
dl.facts div{border-bottom:1px dashed var(--line);padding:.2em 0;min-width:0}
dt{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid var(--line);vertical-align:top}
td{overflow-wrap:anywhere}
thead th{font-size:.78rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted)}
ol.actors{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:.5rem}
ol.actors li{display:flex;flex-direction:column;border:1px solid var(--line);border-radius:10px;
padding:.45em .8em;background:var(--bg);min-width:0;max-width:100%;position:relative}
ol.actors li+li::before{content:"→";position:absolute;left:-.55rem;top:50%;
transform:translate(-50%,-50%);color:var(--muted);font-size:.8rem}
ol.actors li+li{margin-left:.6rem}
.role{font-size:.72rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.name{font-weight:600;overflow-wrap:anywhere}
.addr{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.82rem;overflow-wrap:anywhere}
.view{border-top:1px solid var(--line);margin-top:.8em}
.waterfall th[scope=row]{white-space:nowrap;font-weight:500}
.waterfall tr.d1 th[scope=row]{padding-left:1.4em}
.waterfall tr.d2 th[scope=row]{padding-left:2.6em;color:var(--muted);font-weight:400}
.waterfall .barcell{width:45%;min-width:180px}
.track{position:relative;height:14px;background:var(--track);border-radius:4px;margin-top:.3em}
.bar{position:absolute;top:0;bottom:0;border-radius:3px;background:var(--app);min-width:2px}
.s-url{background:var(--url)}.s-dns{background:var(--dns)}.s-tcp{background:var(--tcp)}
.s-tls{background:var(--tls)}.s-http{background:var(--http)}.s-bad{background:var(--bad)}
.mark{position:absolute;top:-3px;bottom:-3px;width:2px;background:var(--mark);opacity:.7}
.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.lay,.guide{font-size:.82rem;color:var(--muted)}
.lay,.nw{white-space:nowrap}
.note{background:var(--code);padding:.5em .8em;border-radius:8px}
ol.cmds{padding-left:1.2em}
ol.cmds p{margin:.6em 0 .2em}
ul.tree,ul.tree ul{list-style:none;padding-left:1em;border-left:2px solid var(--line)}
footer{padding:1rem 1rem 3rem}
ul.findings{padding-left:1.1em}
.tag{font-size:.72rem;text-transform:uppercase;border:1px solid var(--line);border-radius:999px;
padding:0 .5em;color:var(--muted)}
.sev-error{color:var(--bad)}.sev-warning{color:var(--tls)}
@media (max-width:640px){section{padding:.9rem .8rem;border-radius:10px}
.waterfall .barcell{min-width:90px}.guide,.lay,.at{display:none}
.waterfall th[scope=row]{white-space:normal}
table.tbl thead{display:none}table.tbl tr{display:block;padding:.4em 0;
border-bottom:1px solid var(--line)}table.tbl td{display:block;border:0;padding:.1em .2em}
table.tbl td[data-label]:not([data-label=""])::before{content:attr(data-label);display:block;
font-size:.7rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
ol.actors li+li{margin-left:0}ol.actors li+li::before{display:none}}
@media (prefers-reduced-motion:no-preference){html{scroll-behavior:smooth}}
"""
