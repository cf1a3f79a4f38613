"""The journey as a report a person reads top to bottom.

Each step gets one line — its name, a waterfall bar placed on the journey's timeline, its
duration and its key facts — and a few indented lines of detail (DNS hops, TLS messages, the
request and response). Bars are proportional to the monotonic clock since t0, so one can see
at a glance where the time went. ``--explain`` adds each step's beginner paragraph, the
advanced facts and what its number includes. The browser phase has a section of its own
(render/terminal_browser.py: the page's waterfall and rendering path). Reads only the
journey's view (render/view.py) and lays it out: no value is worked out here.

Safety: the view is built from a copy of the journey whose every string went through
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

from whathappens.explain.fill import handshake_end
from whathappens.explain.report import COMPARE_HANDSHAKE, COMPARE_REST, RULES_SHORT
from whathappens.explain.texts import STEPS, Explanation
from whathappens.render.browser_view import BrowserView
from whathappens.render.compare import CompareView
from whathappens.render.format import ms, plural, size
from whathappens.render.steps import (
    DnsSource,
    DnsView,
    HopRow,
    HttpView,
    LegView,
    Problem,
    QueryRow,
    RecursionView,
    ServerNode,
    StepRef,
    TcpView,
    Timing,
    TlsView,
    UrlView,
)
from whathappens.render.terminal_browser import browser_section
from whathappens.render.terminal_caching import caching_section
from whathappens.render.terminal_quic import http_compare_block, quic_step
from whathappens.render.terminal_security import security_section, who_section
from whathappens.render.terminal_wire import guide_section, wire_section
from whathappens.render.view import JourneyView, OtherStep, PrepareView, journey_view, read
from whathappens.render.visible import visible_tree
from whathappens.render.wire_view import WireView

BAR = 28
SHOWN_HEADERS = 40  # response headers listed without --explain; the rest are counted

STEP_STYLE = {"url": "magenta", "dns": "cyan", "tcp": "green", "tls": "yellow", "quic": "green",
              "http": "blue", "redirect": "magenta", "journey": "white", "browser": "magenta"}
HOP_STYLE = {"referral": "", "answer": "green", "nxdomain": "red", "timeout": "red",
             "servfail": "red", "truncated": "yellow", "cname": "yellow"}
TONE_STYLE = {"ok": "green", "bad": "red", "warn": "yellow", "": ""}


class Report:
    def __init__(self, view: JourneyView, console: Console, explain: bool) -> None:
        self.v = view
        self.c = console
        self.explain = explain
        self.total = view.span_ms

    # --------------------------------------------------------------- helpers
    def bar(self, t: Timing) -> Text:
        a = round(t.start_ms / self.total * BAR)
        b = max(a + 1, round(t.end_ms / self.total * BAR))
        b = min(b, BAR)
        a = min(a, BAR - 1)
        style = "red" if t.failed else STEP_STYLE.get(t.step, "white")
        bar = Text("·" * a, style="dim")
        bar.append("█" * (b - a), style=style)
        bar.append("·" * (BAR - b), style="dim")
        return bar

    def row(self, label: Text, t: Timing, facts: Text | str, *, bold: bool = True) -> None:
        """label | bar | duration | facts — facts wrap under themselves, not under the bar."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=13)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, justify="right", min_width=10)
        grid.add_column(overflow="fold")
        grid.add_row(label, self.bar(t), Text(ms(t.duration_ms), style="bold" if bold else ""),
                     facts if isinstance(facts, Text) else Text(facts))
        self.c.print(grid)

    def head(self, label: str, t: Timing, error: Problem | None, facts: str) -> None:
        self.row(Text(f" {label:<5}", style="bold " + STEP_STYLE.get(t.step, "")), t, facts)
        if error is not None:
            self.fail(error)

    def fail(self, err: Problem, indent: int = 8) -> None:
        t = Text("✗ ", style="bold red")
        t.append(err.message, style="red")
        t.append(f"  [{err.code}]", style="dim")
        self.detail(t, indent=indent)

    def detail(self, text: str | Text, indent: int = 8, style: str = "") -> None:
        t = text if isinstance(text, Text) else Text(text, style=style)
        self.c.print(Padding(t, (0, 0, 0, indent), expand=False), overflow="fold")

    def explain_step(self, step: str) -> None:
        """A step's unfilled paragraph (the browser section's)."""
        self.explained(STEPS.get(step))

    def explained(self, e: Explanation | None, indent: int = 8) -> None:
        """--explain: a span's texts, filled with this journey's values (explain/fill.py)."""
        if not self.explain or e is None:
            return
        texts = [Text(e.title, style="bold"), Text(e.beginner, style="italic")]
        if e.advanced:
            texts.append(Text("Advanced: ", style="bold dim") + Text(e.advanced, style="dim"))
        if e.measures:
            texts.append(Text("What the number includes: ", style="bold dim")
                         + Text(e.measures, style="dim"))
        for text in texts:
            self.c.print(Padding(text, (0, 2, 0, indent), expand=False))

    # ----------------------------------------------------------------- steps
    def render(self) -> None:
        self.c.print(Text(f"whathappens {self.v.url}", style="bold"))
        self.c.print(Text(f"clock: {self.v.clock}; times in ms since t0; bars show "
                          "where each step sits on the journey's timeline", style="dim"))
        for step in self.v.order:
            if isinstance(step, UrlView):
                self.url(step)
            elif isinstance(step, LegView):
                self.leg(step)
            elif isinstance(step, PrepareView):
                self.row(Text(" setup", style="dim"), step.timing,
                         Text(f"loading {', '.join(step.loaded)} before the network steps, so "
                              "their times measure the network", style="dim"), bold=False)
            elif isinstance(step, BrowserView):
                browser_section(self, step)
            elif isinstance(step, OtherStep):
                pass  # no line of its own: its time shows on the steps around it
        if self.v.page_explain is not None and self.explain:
            self.c.print()
            self.explained(self.v.page_explain, indent=2)
        if self.v.compare is not None:
            self.tls_compare(self.v.compare)
        if self.v.http_compare is not None:
            http_compare_block(self, self.v.http_compare)
        if self.v.caching is not None:
            caching_section(self, self.v.caching)
        who_section(self.c, self.v.who, self.explain)
        security_section(self.c, self.v.security, self.explain)
        self.findings()
        guide_section(self, self.v.guide)
        self.summary()

    def url(self, u: UrlView) -> None:
        self.c.print()
        if not u.parsed:
            self.head("URL", u.timing, u.error, u.input)
            self.explained(u.explain)
            return
        how = "explicit" if u.port_explicit else "implied"
        self.head("URL", u.timing, u.error, f"{u.origin_line} · port {u.port} ({how})")
        parts = [f"scheme {u.scheme}", f"host {u.host}"]
        if u.typed_as:
            parts.append(f"(typed as {u.typed_as})")
        parts += [f"path {u.path}"]
        if u.query is not None:
            parts.append(f"query {u.query}")
        if u.fragment is not None:
            parts.append(f"fragment #{u.fragment} (stays in the browser)")
        self.detail(" · ".join(parts), style="dim")
        extra = [f"registrable domain {u.registrable_domain or '—'}",
                 f"public suffix {u.public_suffix or '—'}",
                 f"HSTS preloaded: {'yes' if u.hsts_preloaded else 'no'}"]
        self.detail(" · ".join(extra), style="dim")
        self.explained(u.explain)

    def leg(self, leg: LegView) -> None:
        self.c.print()
        title = Text(f"leg {leg.number}: {leg.method} {leg.url}", style="bold")
        title.append(f"  ({leg.connection} connection)", style="dim")
        self.c.print(title, overflow="fold")
        self.explained(leg.explain, indent=2)
        for ref in leg.order:
            if ref.name == "dns" and leg.dns is not None:
                self.dns(leg.dns)
            elif ref.name == "tcp" and leg.tcp is not None:
                self.tcp(leg.tcp)
            elif ref.name == "tls" and leg.tls is not None:
                self.tls(leg.tls)
            elif ref.name == "quic" and leg.quic is not None:
                quic_step(self, leg.quic)
            elif ref.name == "http" and leg.http is not None:
                self.http(leg.http, self.v.wire.get(leg.index))
            elif ref.name == "prepare":  # aioquic, loaded once HTTP/3 was advertised
                self.row(Text(" setup", style="dim"), ref.timing,
                         Text("loading aioquic: HTTP/3 is advertised, so QUIC will be tried; "
                              "loaded before it, so that no step's time includes it",
                              style="dim"), bold=False)
            else:
                self.other(ref)

    def other(self, ref: StepRef) -> None:
        self.head(ref.name.upper(), ref.timing, ref.error, "")

    # ------------------------------------------------------------------- DNS
    def dns(self, d: DnsView) -> None:
        facts = f"→ {d.answer}"
        if d.view_used == "host_cache":
            facts += f"  ({d.note})"
        elif d.view_used and d.view_used != "none":
            facts += f"  (using the {d.view_used} view)"
        elif d.note:
            facts += f"  ({d.note})"
        self.head("DNS", d.timing, d.error, facts)
        for source in d.sources:
            self.dns_source(source)
        self.explained(d.explain)

    def dns_source(self, s: DnsSource) -> None:
        label = Text(f"   {'●' if s.used else '○'} {s.kind}", style="bold" if s.used else "")
        line = Text()
        answer = ", ".join(s.addresses)
        if s.error is not None:
            line.append(s.error.message, style="red")
        elif s.kind == "system":
            line.append(f"{'hosts file' if s.hosts_file else 'getaddrinfo'} → {answer}")
        elif s.kind == "resolver":
            line.append(f"{s.actor} → {answer}")
        else:
            line.append(f"from {s.root_hints} → {answer}")
        self.row(label, s.timing, line, bold=False)
        for q in s.queries:
            self.resolver_query(q)
        for question in s.questions:
            self.detail(Text(f"{question.qtype} {question.qname}: {question.outcome} "
                             f"{' '.join(question.records)}", style="bold"), indent=12)
            for hop in question.hops:
                self.walk_hop(hop)
        if s.kind == "resolver" and s.cname_chain:
            self.detail("CNAME chain: " + " ; ".join(s.cname_chain), indent=12)
        if s.recursion is not None:
            self.recursion(s.recursion)

    def recursion(self, r: RecursionView) -> None:
        """The lab's Unbound's own upstream queries, from the servers' logs."""
        if r.from_cache:
            self.detail(Text("answered from Unbound's cache: no upstream queries",
                             style="green"), indent=12)
            return
        head = Text(f"inside {r.resolver}: {len(r.queries)} upstream queries", style="bold")
        head.append(f"{ms(r.timing.duration_ms):>10}")
        if r.flushed:
            head.append(f"  (cold: flushed {r.flushed})", style="dim")
        self.detail(head, indent=12)
        for q in r.queries:
            t = Text(f"{q.server + ' (' + q.role + ')':<40}", style="cyan")
            t.append(f"at {ms(q.timing.start_ms):>9}{ms(q.timing.duration_ms):>10}  "
                     f"{q.qtype} {q.qname}: ")
            t.append(q.kind, style=HOP_STYLE.get(q.kind, "") or "bold")
            self.detail(t, indent=14)
        if r.repeat_upstream == 0:
            self.detail(Text("the A question asked again sent nothing upstream: Unbound's "
                             "cache answered it", style="green"), indent=14)
        self.detail(Text(f"matched by {r.matched_by}; clock: {r.clock}", style="dim"),
                    indent=14)

    def resolver_query(self, q: QueryRow) -> None:
        t = Text(f"{q.qtype:<6}", style="bold")
        t.append(f"{ms(q.timing.duration_ms):>10}  ")
        if q.error is not None:
            t.append(q.error.message, style="red")
        else:
            t.append(q.records)
            if q.ttl is not None:
                t.append(f"  TTL {q.ttl}", style="dim")
            if q.tcp_retry:
                t.append("  (truncated, retried over TCP)", style="yellow")
            if q.cache is not None:
                t.append(f"  ← asked again: {q.cache.verdict} ({ms(q.cache.took_ms)} vs "
                         f"{ms(q.cache.first_ms)})", style="dim")
        self.detail(t, indent=12)

    def walk_hop(self, hop: HopRow) -> None:
        t = Text(f"{hop.actor:<34}", style="cyan")
        t.append(f"{ms(hop.timing.duration_ms):>10}  ")
        t.append(hop.kind, style=HOP_STYLE.get(hop.kind, "") or "bold")
        if hop.kind == "referral":
            glue = "with glue" if hop.glue else "no glue"
            t.append(f" to {hop.referral_zone} ({len(hop.referral_ns)} NS, {glue})")
        elif hop.kind in ("answer", "cname"):
            t.append(f" {'; '.join(hop.answers[:3])}")
        elif hop.note:
            t.append(f" {hop.note}", style="dim")
        if hop.transport == "tcp":
            t.append(" [TCP]", style="yellow")
        if hop.depth:
            t.append(f"  (resolving NS name {hop.qname})", style="dim")
        self.detail(t, indent=14 + 2 * hop.depth)

    # ------------------------------------------------------------------- TCP
    def tcp(self, t: TcpView) -> None:
        facts = f"{t.local} → {t.remote}"
        info = t.tcp_info
        if info:
            facts += (f"  kernel rtt {info.rtt_ms:.3f} ms ±{info.rttvar_ms:.3f}, "
                      f"mss {info.snd_mss}, cwnd {info.snd_cwnd}")
        self.head("TCP", t.timing, t.error, facts)
        if t.show_attempts:
            for a in t.attempts:
                self.detail(f"{a.family} {a.address}: {a.outcome} after {ms(a.duration_ms)}",
                            style="dim")
        for seg in t.segments:
            ack = "" if seg.ack is None else f" ack {seg.ack}"
            extra = seg.size_options
            self.detail(f"{seg.name:<7} {seg.source} → {seg.dest}  seq {seg.seq}{ack}  "
                        f"win {seg.window}" + (f"  {extra}" if extra else "")
                        + (f"  at {seg.t_ms:.3f} ms" if seg.t_ms is not None else ""),
                        style="dim")
        if t.captured is False:
            self.detail(f"SYN/SYN-ACK/ACK {t.capture_why}", style="dim")
        end = t.tcp_info_end
        if end:
            self.detail(f"after the exchange: rtt {end.rtt_ms:.3f} ms, cwnd {end.snd_cwnd}, "
                        f"retransmits {end.total_retrans}, segments out/in "
                        f"{end.segs_out}/{end.segs_in}", style="dim")
        self.explained(t.explain)

    # ------------------------------------------------------------------- TLS
    def tls(self, t: TlsView) -> None:
        facts = " ".join(x for x in (t.version, t.cipher, t.group) if x)
        if t.alpn:
            facts += f"  ALPN {t.alpn}"
        if t.sni:
            facts += f"  SNI {t.sni}"
        if t.resumed:
            facts += "  (resumed)"
        self.head("TLS", t.timing, t.error, facts)
        if t.handshake_ms is not None and t.context_setup_ms is not None:
            self.detail(f"{ms(t.timing.duration_ms)} = building the TLS context "
                        f"{ms(t.context_setup_ms)} + ClientHello sent → "
                        f"{handshake_end(t.error is None)} {ms(t.handshake_ms)}", style="dim")
        if t.messages:
            self.detail(Text("handshake (→ sent, ← received; ms since t0):", style="dim"))
            for i in range(0, len(t.messages), 3):
                seq = Text()
                for m in t.messages[i:i + 3]:
                    seq.append(f"{m.arrow} {m.type} ", style="yellow" if m.sent else "")
                    if m.t_ms is not None:
                        seq.append(f"{m.t_ms:.2f}", style="dim")
                    seq.append("   ")
                self.detail(seq)
        self.chain(t)
        if t.verified is not None:
            self.detail(Text(f"verification: {t.verification} (by {t.verified_by})",
                             style="green" if t.verified else "red"))
        self.explained(t.explain)

    def chain(self, t: TlsView) -> None:
        for cert in t.chain:
            line = Text(f"{'leaf' if cert.leaf else 'CA  '} {cert.who}",
                        style="bold" if cert.leaf else "")
            if cert.unreadable:
                line.append(f"  {cert.unreadable}", style="red")
                self.detail(line)
                continue
            line.append(f"  issued by {cert.issuer}", style="dim")
            line.append(f"  {cert.key}, {cert.signature_algorithm}, valid until "
                        f"{cert.not_after} ({cert.validity})", style="dim")
            if cert.leaf and cert.names:
                more = f" +{len(cert.names) - 4}" if len(cert.names) > 4 else ""
                line.append(f"  SANs {', '.join(cert.names[:4])}{more}", style="dim")
            if cert.leaf and cert.sct_count:
                line.append(f"  {cert.sct_count} SCTs", style="dim")
            self.detail(line)

    # ------------------------------------------------------------------ HTTP
    def http(self, h: HttpView, wire: WireView | None = None) -> None:
        if not h.answered:
            self.head("HTTP", h.timing, h.error, h.protocol)
            wire_section(self, wire)  # what crossed before it failed
            self.explained(h.explain)
            return
        facts = (f"{h.http_version} {h.status} {h.reason}  TTFB {ms(h.wait_ms)}  "
                 f"download {ms(h.receive_ms)}  {size(h.wire_received)} on the wire, "
                 f"{size(h.body_decoded)} decoded ({h.encoding})")
        self.head("HTTP", h.timing, h.error, facts)
        for name, value in h.request_headers:
            self.detail(Text(f"> {name}: {value}", style="dim"))
        self.response_headers(h.response_headers)
        if h.inside:
            self.detail(Text("inside (from the lab's own logs, same clock):", style="bold"))
            for node in h.inside:
                self.server_tree(node, 10)
        wire_section(self, wire)
        self.explained(h.explain)
        self.explained(h.response)

    def response_headers(self, headers: list[tuple[str, str]]) -> None:
        """Every response header (HSTS, X-Cache, Content-Encoding… come late in a list);
        only a very long list is cut, and then the report says how many and where they are.
        --explain shows them all."""
        shown = headers if self.explain else headers[:SHOWN_HEADERS]
        for name, value in shown:
            self.detail(Text(f"< {name}: {value}", style="dim"))
        hidden = len(headers) - len(shown)
        if hidden:
            self.detail(Text(f"… {plural(hidden, 'more response header')} of {len(headers)} "
                             "not shown: --explain lists every one, as do --json and --html "
                             "FILE", style="yellow"))

    def server_tree(self, node: ServerNode, indent: int) -> None:
        t = Text(f"└ {node.actor}", style="cyan")
        t.append(f"  {ms(node.duration_ms)}", style="bold")
        t.append(f"  {node.facts}", style="dim")
        self.detail(t, indent=indent)
        for line in (node.plan or "").splitlines()[:4]:
            self.detail(Text(f"  {line}", style="dim"), indent=indent + 2)
        for line in node.details:
            self.detail(Text(f"  {line}", style="dim"), indent=indent + 2)
        self.explained(node.explain, indent=indent + 2)
        for kid in node.children:
            self.server_tree(kid, indent + 2)

    # ------------------------------------------------------ TLS 1.2 vs 1.3
    def tls_compare(self, tc: CompareView) -> None:
        """--compare-tls: two more handshakes after the journey, side by side."""
        self.c.print()
        title = Text("TLS 1.2 vs 1.3, measured on this host", style="bold yellow")
        if not tc.measured:
            title.append(f"  not measured: {tc.reason}", style="dim")
            self.c.print(title, overflow="fold")
            return
        title.append(f"  (more connections to {tc.where} after the journey, one after the "
                     f"other, {tc.rounds} round(s); no session resumed)", style="dim")
        self.c.print(title, overflow="fold")
        self.explained(self.v.compare_explain)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="dim")
        for _ in tc.versions:
            grid.add_column(overflow="fold")
        grid.add_row("", *[Text(h, style="bold") for h in tc.head])
        for row in (r for r in tc.rows if r.brief):
            grid.add_row(row.label, *[Text(c.text + (f" {c.note}" if c.note else ""),
                                           style=TONE_STYLE[c.tone]) for c in row.cells])
        self.c.print(Padding(grid, (0, 0, 0, 8), expand=False))
        self.detail(Text(COMPARE_HANDSHAKE, style="dim"))
        for v in tc.versions:
            if not v.measured:
                self.detail(Text(v.plain, style=TONE_STYLE[v.tone]))
                continue
            seq = Text(f"TLS {v.version}: ", style="bold")
            for i, f in enumerate(v.flights):
                if i:
                    seq.append(" | ", style="dim")
                seq.append(f"{f.arrow} {', '.join(f.messages)}",
                           style="yellow" if f.sent else "")
                if f.since_hello_ms is not None:
                    seq.append(f" +{f.since_hello_ms:.2f}", style="dim")
            self.detail(seq)
        m = tc.model
        if m is not None and m.available:
            self.detail(Text(
                f"modelled, not measured: {plural(m.round_trips, 'round trip')} × kernel RTT "
                f"{m.rtt} = {m.expected}  ·  measured difference (1.2 − 1.3): {m.measured}; "
                f"{COMPARE_REST}", style="dim"))

    # ------------------------------------------------------------ the end
    def findings(self) -> None:
        if not self.v.findings:
            return
        self.c.print()
        self.c.print(Text("Findings", style="bold"))
        for f in self.v.findings:
            style = {"error": "red", "warning": "yellow"}.get(f.severity, "dim")
            self.c.print(Padding(Text(f"{f.mark} [{f.step}] {f.message}", style=style),
                                 (0, 0, 0, 2), expand=False), overflow="fold")

    def summary(self) -> None:
        s = self.v.summary
        self.c.print()
        for leg in sorted({b.leg for b in s.budgets}):
            items = " · ".join(b.item for b in s.budgets if b.leg == leg)
            which = f", request {leg}" if len(self.v.legs) > 1 else ""
            self.c.print(Text(f"{RULES_SHORT}{which}: {items}", style="dim"), overflow="fold")
        err = s.failure
        line = Text(s.line, style="bold green" if err is None else "bold")
        if err is not None:
            line = Text(f"failed at {err.step}: ", style="bold red") + \
                Text(err.message, style="red") + \
                Text(f"  (exit {err.exit_code})  ", style="dim") + line
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
    Report(journey_view(read(shown)), console, explain).render()
    # rich pads wrapped cells to their column's width; nobody wants those spaces pasted
    for line in buffer.getvalue().splitlines():
        out.write(_TRAILING.sub(r"\1", line) + "\n")
