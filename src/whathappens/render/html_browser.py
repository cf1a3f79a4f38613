"""The browser phase in the HTML report (and the live page, which shows the report's sections).

Laid out from the view (render/browser_view.py): the navigation beside the journey's own
steps, the subresource waterfall (each request's bar split into its timing phases), the
connections drawn as lanes (requests in flight at once on one HTTP/2 connection side by side),
the rendering path, the metrics with their verdicts, why FCP and LCP came when they did, and
the filmstrip — its frames are ``data:`` URIs inlined in ``<img>``, so the report stays one file
that loads nothing (the report's CSP allows ``img-src data:`` only, and a frame that is not a
``data:image/`` URI is not shown). Every value from the journey goes through ``esc``.

``place(left, width)`` is the report's: inline ``style`` in the file, ``data-*`` only on the
live page (its CSP allows no inline style; app.js places the bars).
"""

from __future__ import annotations

from collections.abc import Callable

from whathappens.explain.browser import (
    ASIDES,
    BROWSER_NOTE,
    FILMSTRIP_NOTE,
    LANES_NOTE,
    NAVIGATION_NOTE,
    NAVIGATION_OWN,
    PHASES_NOTE,
    SETTLE_NOTE,
    VITALS_CAVEAT,
)
from whathappens.render.browser_view import (
    BrowserView,
    ConnectionView,
    FrameView,
    ResourceRow,
    StageRow,
)
from whathappens.render.format import DASH, ms, size
from whathappens.render.html_parts import code, dl, esc, section, table
from whathappens.render.steps import Timing

Place = Callable[[float, float | None], str]
TONE = {"good": "ok", "needs improvement": "warn", "poor": "bad"}


class BrowserSection:
    def __init__(self, b: BrowserView, place: Place) -> None:
        self.b = b
        self.place = place

    def pct(self, at_ms: float) -> float:
        return min(max((at_ms - self.b.start_ms) / self.b.span_ms * 100, 0.0), 99.5)

    def bar(self, t: Timing, cls: str, title: str = "") -> str:
        left = self.pct(t.start_ms)
        width = max(min((t.end_ms - t.start_ms) / self.b.span_ms * 100, 100 - left), 0.3)
        tip = f" title=\"{esc(title)}\"" if title else ""
        return f"<span class=\"bar {cls}\" {self.place(left, width)}{tip}></span>"

    # --------------------------------------------------------------------- parts
    def navigation(self) -> str:
        n = self.b.navigation
        if n is None:
            return ""
        theirs = " · ".join(f"{p.name} {ms(p.ms)}" for p in n.chromium) or DASH
        pairs = [("document", f"{code(n.url)} {esc(n.status)} over {esc(n.protocol or DASH)}"),
                 ("Chromium's timing", esc(theirs) + (" — no connect or TLS of its own "
                                                      "(preconnected)" if n.preconnected
                                                      else ""))]
        if n.ours:
            pairs.append(("the journey's own", esc(" · ".join(f"{k} {ms(v)}"
                                                              for k, v in n.ours))))
        note = n.note or (NAVIGATION_NOTE if n.preconnected else NAVIGATION_OWN)
        return "<h3>The navigation</h3>" + dl(pairs) + f"<p class=\"note small\">{esc(note)}</p>"

    def phases(self, x: ResourceRow) -> str:
        out, at = [], x.timing.start_ms
        for p in x.phases:
            width = max(p.ms / self.b.span_ms * 100, 0.0)
            out.append(f"<span class=\"bar ph ph-{esc(p.name)}\" "
                       f"{self.place(self.pct(at), width)} title=\"{esc(p.name)} "
                       f"{esc(ms(p.ms))}\"></span>")
            at += p.ms
        return "".join(out) or self.bar(x.timing, "ph ph-wait")

    def resource_row(self, x: ResourceRow) -> str:
        role = f" <strong class=\"role-tag\">{esc(x.role)}</strong>" if x.role else ""
        blocking = (f"<span class=\"{'bad' if x.holds_paint else 'muted'}\">"
                    f"{esc(x.blocking or DASH)}</span>")
        failed = f" <span class=\"bad\">✗ {esc(x.failed)}</span>" if x.failed else ""
        note = f"<div class=\"small advanced\">{esc(x.note)}</div>" if x.note else ""
        return (
            f"<tr><th scope=\"row\"><span class=\"kind k-{esc(x.kind)}\">{esc(x.kind)}</span> "
            f"<span title=\"{esc(x.url)}\">{esc(x.name)}</span>{role}{failed}"
            f"<div class=\"small\">{esc(x.initiator)}</div>{note}</th>"
            f"<td>{esc(x.priority or DASH)}<br>{blocking}</td>"
            f"<td class=\"nw\">{esc(x.where)}</td>"
            f"<td class=\"barcell\"><div class=\"track\">{self.phases(x)}</div></td>"
            f"<td class=\"num\">{esc(ms(x.timing.duration_ms))}<div class=\"small\">"
            f"{esc(x.offset)}</div></td>"
            f"<td class=\"num\">{esc(size(x.encoded))}<div class=\"small\">"
            f"{esc(size(x.decoded))}</div></td><td>{esc(x.cache or DASH)}</td></tr>")

    def waterfall(self) -> str:
        rows = "".join(self.resource_row(x) for x in self.b.resources)
        legend = "".join(f"<span class=\"bar ph ph-{p}\"></span>{p} " for p in
                         ("queued", "dns", "connect", "tls", "send", "wait", "receive"))
        return ("<h3>Subresources</h3>"
                f"<p class=\"small\">{esc(PHASES_NOTE)} <span class=\"legend\">{legend}"
                "</span></p><div class=\"scroll\"><table class=\"waterfall page\"><thead><tr>"
                "<th scope=\"col\">request</th><th scope=\"col\">priority</th>"
                "<th scope=\"col\">where</th>"
                f"<th scope=\"col\">from the navigation (+0 → +{esc(ms(self.b.span_ms))})</th>"
                "<th scope=\"col\">took</th><th scope=\"col\">bytes</th>"
                "<th scope=\"col\">cache</th></tr></thead><tbody>" + rows
                + "</tbody></table></div>")

    def lanes(self, c: ConnectionView) -> str:
        mine = [x for x in self.b.resources if x.connection == c.id]
        lanes = "".join(
            "<div class=\"track lane\">" + "".join(
                self.bar(x.timing, f"k-{esc(x.kind)}", f"{x.name} ({x.where})")
                for x in mine if x.lane == i) + "</div>" for i in range(c.lanes))
        return f"<div class=\"lanes\"><p class=\"small\">{esc(c.line)}</p>{lanes}</div>"

    def stage_table(self, stages: list[StageRow]) -> str:
        rows = [[f"<strong>{esc(s.label)}</strong>"
                 + (f" {code(s.line.removeprefix(s.label).strip())}"
                    if s.line != s.label else ""),
                 f"<div class=\"track\">{self.bar(s.timing, 'k-stage')}</div>",
                 esc(ms(s.timing.duration_ms)), esc(s.offset),
                 f"<span class=\"beginner-text\">{esc(s.does)}</span>"
                 f"<div class=\"advanced small\">{esc(s.words)}</div>"]
                for s in stages]
        return table(["stage", "on the page's timeline", "took", "at", "what it does"],
                     rows, "stages")

    def stages(self) -> str:
        b = self.b
        later = b.later_stages
        rest = (f"<details><summary>{esc(b.later_line)}</summary>"
                + self.stage_table(later) + "</details>") if later else ""
        return ("<h3>The rendering path</h3><p class=\"small\">The trace's stages up to FCP, "
                "in the order they ran (what each one did here, in the advanced view).</p>"
                + self.stage_table([s for s in b.stages if s.critical]) + rest
                + self.asides() + self.settle())

    def asides(self) -> str:
        """Fonts, image decodes and the page's own user timing, beside the path."""
        if not self.b.asides:
            return ""
        rows = [[f"<strong>{esc(a.label)}</strong> {code(a.what)}",
                 f"<div class=\"track\">{self.bar(a.timing, 'k-stage')}</div>",
                 esc("" if a.kind == "user_mark" else ms(a.timing.duration_ms)),
                 esc(a.offset), f"<span class=\"beginner-text\">{esc(ASIDES[a.kind].does)}"
                 f"</span><div class=\"advanced small\">{esc(a.words)}</div>"]
                for a in self.b.asides]
        return ("<h4>Fonts, image decodes and the page's own timings</h4>"
                + table(["what", "on the page's timeline", "took", "at", "what it is"], rows,
                        "asides"))

    def settle(self) -> str:
        line = self.b.settle_line
        if not line:
            return ""
        return (f"<p class=\"small\">{esc(line)}. <span class=\"advanced\">"
                f"{esc(SETTLE_NOTE)}</span></p>")

    def metrics(self) -> str:
        rows = []
        for m in self.b.metrics:
            verdict = (f"<span class=\"{TONE.get(m.outcome, 'muted')}\">{esc(m.outcome)}</span>"
                       f" <span class=\"muted\">({esc(m.guide)})</span>" if m.outcome else "")
            rows.append([f"<strong>{esc(m.label)}</strong>", esc(m.value), verdict,
                         esc(m.detail)])
        return ("<h3>Paints and verdicts</h3>"
                + table(["moment", "when", "Core Web Vitals (guidance)", "what"], rows)
                + f"<p class=\"note small\">{esc(VITALS_CAVEAT)}</p>")

    def chains(self) -> str:
        c = self.b.chains
        out = ["<h3>Why it took that long</h3>"]
        if c.fcp:
            out.append(f"<p><strong>{esc(c.fcp)}</strong></p>")
        if c.fcp_blocking:
            out.append("<p class=\"small\">Render-blocking before FCP, in the order they "
                       "finished:</p><ul>" + "".join(f"<li>{esc(w)}</li>"
                                                     for w in c.fcp_blocking) + "</ul>")
        if c.lcp:
            out.append(f"<p><strong>{esc(c.lcp)}</strong></p>")
        if c.lcp_steps:
            out.append("<ol class=\"chain\">" + "".join(
                f"<li>{esc(s.label)} <span class=\"muted\">{esc(s.offset)}</span></li>"
                for s in c.lcp_steps) + "</ol>")
        return "".join(out) if len(out) > 1 else ""

    def frame(self, f: FrameView) -> str:
        if not f.image.startswith("data:image/"):
            return ""
        size_attrs = "".join(f" {k}=\"{esc(v)}\"" for k, v in (("width", f.width),
                                                                ("height", f.height)) if v)
        return (f"<figure><img src=\"{esc(f.image)}\" alt=\"the page at {esc(f.offset)}\""
                f"{size_attrs}><figcaption>{esc(f.offset)}</figcaption></figure>")

    def filmstrip(self) -> str:
        frames = "".join(self.frame(f) for f in self.b.filmstrip)
        if not frames:
            return ""
        return (f"<h3>Filmstrip</h3><p class=\"small\">{esc(FILMSTRIP_NOTE)}</p>"
                f"<div class=\"filmstrip\">{frames}</div>")

    def render(self, explain: str) -> str:
        b = self.b
        head = (f"<p>{esc(BROWSER_NOTE)}</p><p class=\"summary-small\"><span class=\"url\">"
                f"{esc(b.url)}</span> in {esc(b.line)}</p>")
        if b.notes:
            head += "<ul class=\"notes\">" + "".join(f"<li class=\"warn\">{esc(x)}</li>"
                                                     for x in b.notes) + "</ul>"
        if not b.loaded:
            return section("browser", "Browser", head + f"<p class=\"bad\">"
                           f"{esc(b.skipped_line)}</p>" + explain, layer="application")
        body = [head, self.metrics(), self.chains(), self.filmstrip(), self.navigation(),
                self.waterfall(), "<h3>Connections</h3>"
                f"<p class=\"small\">{esc(LANES_NOTE)}</p>",
                *[self.lanes(c) for c in b.connections], self.stages(), explain]
        return section("browser", "Browser", "".join(body), layer="application")


def browser_html(b: BrowserView | None, place: Place, explain: str) -> str:
    """The report's browser section; without a browser phase, a note saying how to get one."""
    if b is None:
        return section("browser", "Browser",
                       "<p>This journey did not load the page in a browser. Run it with "
                       "<code>--browser</code> to see the page load in headless Chromium: "
                       "its subresources, rendering path, FCP, LCP and CLS.</p>" + explain)
    return BrowserSection(b, place).render(explain)
