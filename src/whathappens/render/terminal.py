"""The journey as a report a person reads top to bottom.

Each step gets one line — its name, a waterfall bar placed on the journey's timeline, its
duration and its key facts — and a few indented lines of detail (DNS hops, TLS messages, the
request and response). Bars are proportional to the monotonic clock since t0, so one can see
at a glance where the time went. ``--explain`` adds each step's beginner paragraph, the
advanced facts and what its number includes. Reads only the journey's dict.

Safety: the report reads a copy of the journey whose every string went through
:func:`~whathappens.render.visible.visible_tree` (``render_terminal``), so a control character
the peer sent (ESC, C1, CR, bidi overrides…) is printed as a visible escape, whichever field it
came in; and the console runs with ``markup=False`` and prints ``Text`` objects, so a peer's
``[bold]`` is text too.
"""

from __future__ import annotations

import io
import re
import shutil
from typing import Any, TextIO

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from whathappens.explain.texts import STEPS
from whathappens.render.visible import visible_tree

BAR = 28
Span = dict[str, Any]

STEP_STYLE = {"url": "magenta", "dns": "cyan", "tcp": "green", "tls": "yellow",
              "http": "blue", "redirect": "magenta", "journey": "white"}


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.1f} ms" if v >= 10 else f"{v:,.2f} ms"


def _bytes(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n:,} B" if n < 10_000 else f"{n / 1024:,.1f} KiB"


class Report:
    def __init__(self, journey: dict[str, Any], console: Console, explain: bool) -> None:
        self.j = journey
        self.c = console
        self.explain = explain
        self.total = max(float(journey.get("total_ms") or 0.0), 0.001)

    # --------------------------------------------------------------- helpers
    def bar(self, span: Span) -> Text:
        start = float(span.get("start_ms") or 0.0)
        end = float(span.get("end_ms") or start)
        a = round(start / self.total * BAR)
        b = max(a + 1, round(end / self.total * BAR))
        b = min(b, BAR)
        a = min(a, BAR - 1)
        style = "red" if span.get("error") else STEP_STYLE.get(span.get("step", ""), "white")
        t = Text("·" * a, style="dim")
        t.append("█" * (b - a), style=style)
        t.append("·" * (BAR - b), style="dim")
        return t

    def row(self, label: Text, span: Span, facts: Text | str, *, bold: bool = True) -> None:
        """label | bar | duration | facts — facts wrap under themselves, not under the bar."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=13)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, justify="right", min_width=10)
        grid.add_column(overflow="fold")
        grid.add_row(label, self.bar(span),
                     Text(_ms(span.get("duration_ms")), style="bold" if bold else ""),
                     facts if isinstance(facts, Text) else Text(facts))
        self.c.print(grid)

    def head(self, label: str, span: Span, facts: str) -> None:
        style = "bold " + STEP_STYLE.get(span.get("step", ""), "")
        self.row(Text(f" {label:<5}", style=style), span, facts)
        if span.get("error"):
            self.fail(span["error"], indent=8)

    def fail(self, err: dict[str, Any], indent: int = 8) -> None:
        t = Text("✗ ", style="bold red")
        t.append(str(err.get("message")), style="red")
        t.append(f"  [{err.get('code')}]", style="dim")
        self.detail(t, indent=indent)

    def detail(self, text: str | Text, indent: int = 8, style: str = "") -> None:
        t = text if isinstance(text, Text) else Text(text, style=style)
        self.c.print(Padding(t, (0, 0, 0, indent), expand=False), overflow="fold")

    def explain_step(self, step: str) -> None:
        if not self.explain or step not in STEPS:
            return
        e = STEPS[step]
        for text in (Text(e.title, style="bold"),
                     Text(e.beginner, style="italic"),
                     Text("Advanced: ", style="bold dim") + Text(e.advanced, style="dim"),
                     Text("What the number includes: ", style="bold dim") +
                     Text(e.measures, style="dim")):
            self.c.print(Padding(text, (0, 2, 0, 8), expand=False))

    # ----------------------------------------------------------------- steps
    def render(self) -> None:
        j = self.j
        self.c.print(Text(f"whathappens {j['url']}", style="bold"))
        self.c.print(Text(f"clock: {j['clock']['name']}; times in ms since t0; bars show "
                          "where each step sits on the journey's timeline", style="dim"))
        for span in j["spans"]:
            if span["name"] == "url":
                self.url(span)
            elif span["name"] == "leg":
                self.leg(span)
            elif span["name"] == "prepare":
                loaded = ", ".join(span["attrs"].get("loaded") or [])
                self.row(Text(" setup", style="dim"), span,
                         Text(f"loading {loaded} before the network steps, so their times "
                              "measure the network", style="dim"), bold=False)
        self.tls_compare()
        self.findings()
        self.summary()

    def url(self, span: Span) -> None:
        a = span.get("attrs", {})
        self.c.print()
        if "host" not in a:
            self.head("URL", span, a.get("input", ""))
            self.explain_step("url")
            return
        port = f"{a.get('port')} ({'explicit' if a.get('port_explicit') else 'implied'})"
        self.head("URL", span, f"{a.get('scheme')}://{a.get('host_unicode') or a.get('host')}"
                  f" · port {port}")
        parts = [f"scheme {a.get('scheme')}", f"host {a.get('host')}"]
        if a.get("host_unicode") and a.get("host_unicode") != a.get("host"):
            parts.append(f"(typed as {a['host_unicode']})")
        parts += [f"path {a.get('path')}"]
        if a.get("query") is not None:
            parts.append(f"query {a['query']}")
        if a.get("fragment") is not None:
            parts.append(f"fragment #{a['fragment']} (stays in the browser)")
        self.detail(" · ".join(parts), style="dim")
        extra = [f"registrable domain {a.get('registrable_domain') or '—'}",
                 f"public suffix {a.get('public_suffix') or '—'}",
                 f"HSTS preloaded: {'yes' if a.get('hsts_preloaded') else 'no'}"]
        self.detail(" · ".join(extra), style="dim")
        self.explain_step("url")

    def leg(self, leg: Span) -> None:
        a = leg["attrs"]
        self.c.print()
        title = Text(f"leg {a.get('index', 0) + 1}: {a.get('method')} {a.get('url')}",
                     style="bold")
        title.append(f"  ({a.get('connection', '?')} connection)", style="dim")
        self.c.print(title, overflow="fold")
        for child in leg["children"]:
            getattr(self, "step_" + child["name"], self.step_other)(child)

    def step_other(self, span: Span) -> None:
        self.head(span["name"].upper(), span, "")

    def step_dns(self, span: Span) -> None:
        a = span["attrs"]
        used = a.get("view_used")
        facts = f"→ {', '.join(a.get('addresses') or []) or 'no address'}"
        if used and used != "none":
            facts += f"  (using the {used} view)"
        elif a.get("note"):
            facts += f"  ({a['note']})"
        self.head("DNS", span, facts)
        for view in span["children"]:
            self.dns_view(view, used)
        self.explain_step("dns")

    def dns_view(self, view: Span, used: str | None) -> None:
        a = view["attrs"]
        name = {"dns.system": "system", "dns.resolver": "resolver", "dns.walk": "walk"}.get(
            view["name"], view["name"])
        mark = "●" if name == used else "○"
        label = Text(f"   {mark} {name}", style="bold" if name == used else "")
        line = Text()
        if view.get("error"):
            line.append(str(view["error"]["message"]), style="red")
        elif name == "system":
            src = "hosts file" if a.get("hosts_file_hit") else "getaddrinfo"
            line.append(f"{src} → {', '.join(a.get('addresses') or [])}")
        elif name == "resolver":
            line.append(f"{view['actor']} → {', '.join(a.get('addresses') or [])}")
        else:
            line.append(f"from {a.get('root_hints')} → {', '.join(a.get('addresses') or [])}")
        self.row(label, view, line, bold=False)
        if name == "resolver":
            first: float | None = None
            for q in view["children"]:
                self.resolver_query(q, first)
                if q["attrs"].get("qtype") == "A" and first is None:
                    first = q.get("duration_ms")
        elif name == "walk":
            for question in view["children"]:
                qa = question["attrs"]
                self.detail(Text(f"{qa.get('qtype')} {qa.get('qname')}: {qa.get('outcome')} "
                                 f"{' '.join(qa.get('records') or [])}", style="bold"),
                            indent=12)
                for hop in question["children"]:
                    self.walk_hop(hop)
        if name == "resolver" and a.get("cname_chain"):
            self.detail("CNAME chain: " + " ; ".join(a["cname_chain"]), indent=12)

    def resolver_query(self, q: Span, first_a_ms: float | None) -> None:
        a = q["attrs"]
        t = Text(f"{a.get('qtype', ''):<6}", style="bold")
        t.append(f"{_ms(q.get('duration_ms')):>10}  ")
        if q.get("error"):
            t.append(q["error"]["message"], style="red")
        else:
            recs = ", ".join(a.get("records") or [])
            if not recs:
                rcode = a.get("rcode", "")
                recs = (f"no {a.get('qtype')} record (NODATA)" if rcode == "NOERROR"
                        else str(rcode))
            t.append(f"{recs}")
            if a.get("ttl") is not None:
                t.append(f"  TTL {a['ttl']}", style="dim")
            if a.get("tcp_retry"):
                t.append("  (truncated, retried over TCP)", style="yellow")
            took = q.get("duration_ms")
            if "cache" in str(a.get("purpose", "")) and first_a_ms and took is not None:
                verdict = ("faster: served from the resolver's cache" if took < first_a_ms / 2
                           else "not faster: the resolver did not answer from a cache")
                t.append(f"  ← asked again: {verdict} ({_ms(took)} vs {_ms(first_a_ms)})",
                         style="dim")
        self.detail(t, indent=12)

    def walk_hop(self, hop: Span) -> None:
        a = hop["attrs"]
        indent = 14 + 2 * int(a.get("depth") or 0)
        t = Text(f"{hop['actor']:<34}", style="cyan")
        t.append(f"{_ms(hop.get('duration_ms')):>10}  ")
        kind = a.get("kind", "")
        style = {"referral": "", "answer": "green", "nxdomain": "red", "timeout": "red",
                 "servfail": "red", "truncated": "yellow", "cname": "yellow"}.get(kind, "")
        t.append(kind, style=style or "bold")
        if kind == "referral":
            glue = "with glue" if a.get("glue") else "no glue"
            t.append(f" to {a.get('referral_zone')} ({len(a.get('referral_ns') or [])} NS, "
                     f"{glue})")
        elif kind in ("answer", "cname"):
            t.append(f" {'; '.join((a.get('answers') or [])[:3])}")
        elif a.get("note"):
            t.append(f" {a['note']}", style="dim")
        if a.get("transport") == "tcp":
            t.append(" [TCP]", style="yellow")
        if a.get("depth"):
            t.append(f"  (resolving NS name {a.get('qname')})", style="dim")
        self.detail(t, indent=indent)

    def step_tcp(self, span: Span) -> None:
        a = span["attrs"]
        facts = f"{a.get('local', '')} → {a.get('remote', '')}"
        info = next((c["attrs"].get("tcp_info") for c in span["children"]
                     if c["attrs"].get("outcome") == "connected"), None)
        if info:
            facts += (f"  kernel rtt {info['rtt_ms']:.3f} ms ±{info['rttvar_ms']:.3f}, "
                      f"mss {info['snd_mss']}, cwnd {info['snd_cwnd']}")
        self.head("TCP", span, facts)
        if len(span["children"]) > 1 or a.get("happy_eyeballs"):
            for c in span["children"]:
                ca = c["attrs"]
                self.detail(f"{ca.get('family')} {ca.get('address')}: {ca.get('outcome')} "
                            f"after {_ms(c.get('duration_ms'))}", style="dim")
        for seg in a.get("handshake_segments") or a.get("segments_seen") or []:
            ack = "" if seg.get("ack") is None else f" ack {seg['ack']}"
            opts = seg.get("options") or {}
            extra = ", ".join(f"{k} {v}" for k, v in opts.items()
                              if k in ("mss", "window_scale"))
            self.detail(f"{seg.get('segment', ''):<7} {seg.get('from')} → {seg.get('to')}  "
                        f"seq {seg.get('seq')}{ack}  win {seg.get('window')}"
                        + (f"  {extra}" if extra else "")
                        + (f"  at {seg['t_ms']:.3f} ms" if seg.get("t_ms") is not None
                           else ""), style="dim")
        capture = a.get("capture") or {}
        if capture and not capture.get("captured"):
            self.detail(f"SYN/SYN-ACK/ACK {capture.get('why')}", style="dim")
        end = a.get("tcp_info_end")
        if end:
            self.detail(f"after the exchange: rtt {end['rtt_ms']:.3f} ms, cwnd "
                        f"{end['snd_cwnd']}, retransmits {end['total_retrans']}, "
                        f"segments out/in {end['segs_out']}/{end['segs_in']}", style="dim")
        self.explain_step("tcp")

    def step_tls(self, span: Span) -> None:
        a = span["attrs"]
        facts = " ".join(str(x) for x in (a.get("version"), a.get("cipher"), a.get("group"))
                         if x)
        if a.get("alpn"):
            facts += f"  ALPN {a['alpn']}"
        if a.get("sni"):
            facts += f"  SNI {a['sni']}"
        if a.get("session_reused"):
            facts += "  (resumed)"
        self.head("TLS", span, facts)
        msgs = a.get("messages") or []
        if msgs:
            self.detail(Text("handshake (→ sent, ← received; ms since t0):", style="dim"))
            for i in range(0, len(msgs), 3):
                seq = Text()
                for m in msgs[i:i + 3]:
                    arrow = "→" if m.get("direction") == "sent" else "←"
                    seq.append(f"{arrow} {m.get('type')} ",
                               style="yellow" if arrow == "→" else "")
                    if m.get("t_ms") is not None:
                        seq.append(f"{m['t_ms']:.2f}", style="dim")
                    seq.append("   ")
                self.detail(seq)
        for i, cert in enumerate(a.get("chain") or []):
            who = cert.get("subject_cn") or cert.get("subject")
            line = Text(f"{'leaf' if i == 0 else 'CA  '} {who}", style="bold" if i == 0 else "")
            if cert.get("unreadable"):
                line.append(f"  {cert['unreadable']}", style="red")
                self.detail(line)
                continue
            line.append(f"  issued by {cert.get('issuer_cn') or cert.get('issuer')}", style="dim")
            line.append(f"  {cert.get('key')}, {cert.get('signature_algorithm')}, valid until "
                        f"{str(cert.get('not_after'))[:10]} ({cert.get('days_left')} days)",
                        style="dim")
            sans = list(cert.get("san_dns") or []) + list(cert.get("san_ip") or [])
            if i == 0 and sans:
                more = f" +{len(sans) - 4}" if len(sans) > 4 else ""
                line.append(f"  SANs {', '.join(str(s) for s in sans[:4])}{more}", style="dim")
            if i == 0 and cert.get("sct_count"):
                line.append(f"  {cert['sct_count']} SCTs", style="dim")
            self.detail(line)
        v = a.get("chain_verification")
        if v:
            style = "green" if v.get("ok") else "red"
            self.detail(Text(f"verification: {v.get('reason')} (by {v.get('by')})",
                             style=style))
        self.explain_step("tls")

    def step_http(self, span: Span) -> None:
        a = span["attrs"]
        if "status" not in a:
            self.head("HTTP", span, a.get("protocol", ""))
            self.explain_step("http")
            return
        enc = ",".join(a.get("content_encoding") or []) or "identity"
        facts = (f"{a.get('http_version')} {a.get('status')} {a.get('reason') or ''}  "
                 f"TTFB {_ms(a.get('wait_ms'))}  download {_ms(a.get('receive_ms'))}  "
                 f"{_bytes(a.get('wire_bytes_received'))} on the wire, "
                 f"{_bytes(a.get('body_bytes_decoded'))} decoded ({enc})")
        self.head("HTTP", span, facts)
        req = a.get("request_headers") or []
        for name, value in req:
            self.detail(Text(f"> {name}: {value}", style="dim"))
        for name, value in (a.get("response_headers") or [])[:14]:
            self.detail(Text(f"< {name}: {value}", style="dim"))
        inside = [c for c in span["children"] if c["name"].startswith("server.")]
        if inside:
            self.detail(Text("inside (from the lab's own logs, same clock):", style="bold"))
            for child in inside:
                self.server_tree(child, 10)
        self.explain_step("http")

    def server_tree(self, span: Span, indent: int) -> None:
        a = span["attrs"]
        kind = span["name"].removeprefix("server.")
        facts = {
            "edge": lambda: f"cache {a.get('cache', '-')}  status {a.get('status')}",
            "lb": lambda: f"{a.get('algorithm')} → {a.get('server')}  queue {a.get('Tw')} ms, "
                          f"connect {a.get('Tc')} ms, response {a.get('Tr')} ms",
            "app": lambda: f"micro-cache {a.get('cache', '-')}  upstream "
                           f"{a.get('upstream_response_time', '-')} s",
            "django": lambda: f"view {a.get('view')}  status {a.get('status')}  "
                              f"worker pid {a.get('pid')}"
                              + (f"  (gunicorn: {a['gunicorn_request_ms']} ms)"
                                 if "gunicorn_request_ms" in a else ""),
            "sql": lambda: f"[{a.get('alias')}] {str(a.get('sql', ''))[:90]}  "
                           f"rows {a.get('rows')}",
            "redis": lambda: f"{a.get('command', '')} {a.get('result', '')}",
            "postgres": lambda: f"statement {a.get('duration_ms')} ms by PostgreSQL's clock",
        }.get(kind, lambda: "")()
        t = Text(f"└ {span['actor']}", style="cyan")
        t.append(f"  {_ms(span.get('duration_ms'))}", style="bold")
        t.append(f"  {facts}", style="dim")
        self.detail(t, indent=indent)
        if a.get("explain"):
            for line in str(a["explain"]).splitlines()[:4]:
                self.detail(Text(f"  {line}", style="dim"), indent=indent + 2)
        for child in span["children"]:
            self.server_tree(child, indent + 2)

    def tls_compare(self) -> None:
        """--compare-tls: two more handshakes after the journey, side by side."""
        tc = (self.j.get("facts") or {}).get("tls_compare")
        if not tc:
            return
        self.c.print()
        title = Text("TLS 1.2 vs 1.3, measured on this host", style="bold yellow")
        if not tc.get("measured"):
            title.append(f"  not measured: {tc.get('reason')}", style="dim")
            self.c.print(title, overflow="fold")
            return
        addr = str(tc.get("address") or "")
        where = f"[{addr}]" if ":" in addr else addr
        title.append(f"  (more connections to {where}:{tc.get('port')} after the journey, one "
                     f"after the other, {tc.get('rounds', 1)} round(s); no session resumed)",
                     style="dim")
        self.c.print(title, overflow="fold")
        versions = list(tc.get("versions") or [])

        def num(v: object, unit: str = " ms") -> str:
            if v is None:
                return "—"
            if unit != " ms":
                return f"{v}{unit}"
            f = float(v)  # type: ignore[arg-type]
            return f"{f:.3f} ms" if f < 1 else _ms(f)  # kernel RTTs are in µs

        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="dim")
        for _ in versions:
            grid.add_column(overflow="fold")
        rows: list[tuple[str, list[str]]] = [
            ("", [f"TLS {v.get('version')}" for v in versions]),
            ("accepted", ["yes" if v.get("accepted") else "no" if v.get("accepted") is False
                          else "unknown" for v in versions]),
            ("TCP connect", [num(v.get("tcp_connect_ms")) for v in versions]),
            ("handshake", [num(v.get("handshake_ms")) + (
                f" (median of {v['median_of']})" if (v.get("median_of") or 0) > 1 else "")
                for v in versions]),
            ("round trips", [num(v.get("round_trips"), "") for v in versions]),
            ("each waited", [" + ".join(num(w) for w in v.get("waits_ms") or []) or "—"
                             for v in versions]),
            ("kernel RTT", [num(v.get("kernel_rtt_ms")) for v in versions]),
            ("cipher", [str(v.get("cipher") or "—") for v in versions]),
            ("group", [str(v.get("group") or "—") for v in versions]),
        ]
        for label, cells in rows:
            grid.add_row(label, *[Text(c, style="bold" if not label else "") for c in cells])
        self.c.print(Padding(grid, (0, 0, 0, 8), expand=False))
        self.detail(Text("handshake = ClientHello written → handshake complete on our side "
                         "(round trips + both sides' crypto); TCP connect not included",
                         style="dim"))
        for v in versions:
            if v.get("outcome") != "measured":
                self.detail(Text(str(v.get("plain")),
                                 style="yellow" if v.get("outcome") == "refused" else "red"))
                continue
            seq = Text(f"TLS {v.get('version')}: ", style="bold")
            for i, f in enumerate(v.get("flights") or []):
                arrow = "→" if f.get("from") == "client" else "←"
                if i:
                    seq.append(" | ", style="dim")
                seq.append(f"{arrow} {', '.join(f.get('messages') or [])}",
                           style="yellow" if arrow == "→" else "")
                hello = next((m for m in v.get("messages") or []
                              if m.get("type") == "client_hello"), None)
                if hello is not None and f.get("t_ms") is not None:
                    seq.append(f" +{float(f['t_ms']) - float(hello['t_ms']):.2f}", style="dim")
            self.detail(seq)
        m = tc.get("model") or {}
        if m.get("available"):
            d = int(m.get("round_trip_difference") or 0)
            self.detail(Text(
                f"modelled, not measured: {d} round trip{'s' if abs(d) != 1 else ''} × "
                f"kernel RTT {num(m.get('rtt_ms'))} = {num(m.get('expected_difference_ms'))}"
                f"  ·  measured difference (1.2 − 1.3): {num(m.get('measured_difference_ms'))}"
                f"; the rest is work (crypto, the server's and our scheduling), not the wire",
                style="dim"))

    def findings(self) -> None:
        items = self.j.get("findings") or []
        if not items:
            return
        self.c.print()
        self.c.print(Text("Findings", style="bold"))
        for f in items:
            style = {"error": "red", "warning": "yellow"}.get(f["severity"], "dim")
            mark = {"error": "✗", "warning": "!"}.get(f["severity"], "·")
            self.c.print(Padding(Text(f"{mark} [{f['step']}] {f['message']}", style=style),
                                 (0, 0, 0, 2), expand=False), overflow="fold")

    def summary(self) -> None:
        s = self.j.get("facts", {}).get("summary", {})
        err = self.j.get("error")
        self.c.print()
        parts = []
        if s.get("status"):
            parts.append(f"{s['status']} {s.get('reason') or ''}".strip())
        if s.get("http_version"):
            parts.append(str(s["http_version"]))
        if s.get("tls_version"):
            parts.append(str(s["tls_version"]))
        parts.append(f"{_ms(self.j.get('total_ms'))} total")
        if s.get("legs", 0) > 1:
            parts.append(f"{s['legs']} requests")
        line = Text(" · ".join(parts), style="bold green" if err is None else "bold")
        if err is not None:
            line = Text(f"failed at {err['step']}: ", style="bold red") + \
                Text(str(err["message"]), style="red") + \
                Text(f"  (exit {err['exit_code']})  ", style="dim") + line
        self.c.print(line, overflow="fold")


_TRAILING = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$")


def render_terminal(journey: dict[str, Any], out: TextIO, *, explain: bool = False,
                    color: bool = True, width: int | None = None) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None,
                      width=width or (shutil.get_terminal_size((120, 40)).columns
                                      if color else 120),
                      highlight=False, emoji=False, markup=False)
    # The one place journey values enter the report: every string made visible. The lab's
    # query plan ("explain") is the one multi-line text; the report prints it line by line.
    shown = visible_tree(journey, lines=("explain",))
    Report(shown, console, explain).render()
    # rich pads wrapped cells to their column's width; nobody wants those spaces pasted
    for line in buffer.getvalue().splitlines():
        out.write(_TRAILING.sub(r"\1", line) + "\n")
