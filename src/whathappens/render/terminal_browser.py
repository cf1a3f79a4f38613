"""The browser phase in the terminal report: the page's own waterfall and rendering path.

Laid out from the view (render/browser_view.py) like the rest of the report (render/terminal.py
calls :func:`browser_section` with its console and helpers): the navigation beside the
journey's own steps, one row per subresource grouped by connection (its type, priority,
render-blocking class, HTTP/2 stream, bytes, cache), the rendering stages in the order they
ran, the metrics with their verdicts, why FCP and LCP came when they did, and the filmstrip's
frame times (the images are in the HTML report). Bars here are placed on the page's own
timeline — from the navigation's start to the phase's end — so that a 300 ms stylesheet is not
a sliver beside the browser's launch. ``--explain`` adds each stage's words with this page's
values.
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from whathappens.explain.browser import (
    LANES_NOTE,
    NAVIGATION_NOTE,
    NAVIGATION_OWN,
    VITALS_CAVEAT,
)
from whathappens.render.browser_view import BrowserView, ResourceRow, StageRow
from whathappens.render.format import ms, size
from whathappens.render.steps import Problem, Timing


class Report(Protocol):
    """What this section uses of the terminal report (render/terminal.py's ``Report``)."""

    c: Console
    explain: bool

    def head(self, label: str, t: Timing, error: Problem | None, facts: str) -> None: ...

    def detail(self, text: str | Text, indent: int = 8, style: str = "") -> None: ...

    def explain_step(self, step: str) -> None: ...

BAR = 28
KIND_STYLE = {"doc": "blue", "css": "magenta", "js": "yellow", "img": "green", "font": "cyan"}
VERDICT_STYLE = {"good": "green", "needs improvement": "yellow", "poor": "red"}


def page_bar(b: BrowserView, t: Timing, style: str) -> Text:
    """A bar on the page's timeline (navigation start → the phase's end)."""
    a = round((t.start_ms - b.start_ms) / b.span_ms * BAR)
    z = max(a + 1, round((t.end_ms - b.start_ms) / b.span_ms * BAR))
    a, z = min(max(a, 0), BAR - 1), min(z, BAR)
    bar = Text("·" * a, style="dim")
    bar.append("█" * (z - a), style="red" if t.failed else style)
    bar.append("·" * (BAR - z), style="dim")
    return bar


def grid_row(r: Report, label: Text, bar: Text, took: str, facts: Text) -> None:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=23, max_width=23)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, justify="right", min_width=10)
    grid.add_column(overflow="fold")
    grid.add_row(label, bar, Text(took), facts)
    r.c.print(grid)


def resource(r: Report, b: BrowserView, x: ResourceRow) -> None:
    label = Text(f"   {x.kind[:5]:<6}", style=KIND_STYLE.get(x.kind, ""))
    label.append(x.name if len(x.name) <= 13 else x.name[:12] + "…")
    facts = Text(f"{x.offset}  {x.priority}")
    if x.blocking and x.blocking != "non-blocking":
        facts.append(f"  {x.blocking}", style="bold")
    if x.stream is not None:
        facts.append(f"  stream {x.stream}", style="dim")
    facts.append(f"  {size(x.encoded)}", style="dim")
    if x.cache:
        facts.append(f"  {x.cache}", style="dim")
    if x.status is not None and x.status != 200:
        facts.append(f"  {x.status}", style="yellow")
    if x.failed:
        facts.append(f"  ✗ {x.failed}", style="red")
    if x.role:
        facts.append(f"  ← {x.role}", style="bold")
    grid_row(r, label, page_bar(b, x.timing, KIND_STYLE.get(x.kind, "white")),
             ms(x.timing.duration_ms), facts)


def stage(r: Report, b: BrowserView, s: StageRow) -> None:
    label = Text(f"   {s.label}", style="bold" if s.stage != "long_task" else "bold red")
    facts = Text(s.offset)
    if s.url:
        facts.append(f"  {s.line.removeprefix(s.label).strip()}", style="dim")
    elif s.count > 1:
        facts.append(f"  ×{s.count}", style="dim")
    grid_row(r, label, page_bar(b, s.timing, "magenta"), ms(s.timing.duration_ms), facts)
    if r.explain and s.words:
        r.c.print(Padding(Text(s.words, style="italic dim"), (0, 2, 0, 8), expand=False))


def asides(r: Report, b: BrowserView) -> None:
    """Fonts, image decodes and the page's own user timing; then how long the capture
    waited after load, and why it stopped."""
    if b.asides:
        r.detail(Text("fonts, image decodes and the page's own timings:", style="bold"))
    for a in b.asides:
        label = Text(f"   {a.label}", style="bold")
        took = "" if a.kind == "user_mark" else ms(a.timing.duration_ms)
        grid_row(r, label, page_bar(b, a.timing, "cyan"), took,
                 Text(f"{a.offset}  ") + Text(a.what, style="dim"))
        if r.explain:
            r.c.print(Padding(Text(a.words, style="italic dim"), (0, 2, 0, 8), expand=False))
    if b.settle_line:
        r.detail(Text(b.settle_line, style="dim"))


def navigation(r: Report, b: BrowserView) -> None:
    n = b.navigation
    if n is None:
        return
    theirs = " · ".join(f"{p.name} {ms(p.ms)}" for p in n.chromium) or "—"
    line = Text(f"navigation {n.url}: Chromium's timing {theirs}", style="dim")
    if n.preconnected:
        line.append("; no connect or TLS of its own (preconnected)", style="dim")
    r.detail(line)
    if n.ours:
        r.detail(Text("the journey's own: " + " · ".join(f"{k} {ms(v)}" for k, v in n.ours)
                      + " (these are the ones to read for the document)", style="dim"))
    if r.explain:
        r.detail(Text(n.note or (NAVIGATION_NOTE if n.preconnected else NAVIGATION_OWN),
                      style="italic dim"))


def metrics(r: Report, b: BrowserView) -> None:
    plain = [m for m in b.metrics if not m.outcome]
    r.detail(Text(" · ".join(m.item for m in plain), style="bold"))
    line = Text()
    for i, m in enumerate(x for x in b.metrics if x.outcome):
        if i:
            line.append(" · ")
        line.append(f"{m.label} {m.value} ", style="bold")
        line.append(m.outcome, style=VERDICT_STYLE.get(m.outcome, "dim"))
        line.append(f" ({m.guide})" + (f": {m.detail}" if m.detail else ""))
    r.detail(line)
    r.detail(Text(VITALS_CAVEAT, style="dim"))


def chains(r: Report, b: BrowserView) -> None:
    c = b.chains
    if c.fcp:
        r.detail(Text("why: ", style="bold") + Text(c.fcp))
    for words in c.fcp_blocking[:-1] if len(c.fcp_blocking) > 1 else []:
        r.detail(Text(f"also render-blocking: {words}", style="dim"), indent=13)
    if c.lcp:
        r.detail(Text(c.lcp), indent=13)


def browser_section(r: Report, b: BrowserView) -> None:
    r.c.print()
    title = Text(f"browser: {b.url}", style="bold")
    title.append(f"  (headless {b.browser or 'Chromium'}, on the journey's clock)", style="dim")
    r.c.print(title, overflow="fold")
    if not b.loaded:
        r.head("PAGE", b.timing, b.error, b.skipped_line)
        for note in b.notes:
            r.detail(Text(f"note: {note}", style="yellow"))
        return
    r.head("PAGE", b.timing, None, b.line)
    for note in b.notes:
        r.detail(Text(f"note: {note}", style="yellow"))
    navigation(r, b)
    r.detail(Text(f"subresources (bars from the navigation's start to +{ms(b.span_ms)}):",
                  style="bold"))
    for conn in b.connections:
        r.detail(Text(conn.line, style="dim"), indent=3)
        for x in (x for x in b.resources if x.connection == conn.id):
            resource(r, b, x)
    if r.explain:
        r.detail(Text(LANES_NOTE, style="italic dim"))
    r.detail(Text("rendering path to FCP (the trace's stages, in the order they ran):",
                  style="bold"))
    for s in b.shown_stages:
        stage(r, b, s)
    if b.later_line:
        r.detail(Text(b.later_line, style="dim"))
    asides(r, b)
    metrics(r, b)
    chains(r, b)
    if b.filmstrip:
        times = ", ".join(f.offset for f in b.filmstrip)
        r.detail(Text(f"filmstrip: {len(b.filmstrip)} frames at {times} (the images are in "
                      "the HTML report)", style="dim"))
    r.explain_step("browser")
