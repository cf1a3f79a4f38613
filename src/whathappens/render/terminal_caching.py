"""The caching section of the terminal report: who may keep the final response and for how
long, its validators, and the revalidation's answer with its timing beside the first one's.

Laid out from render/caching_view.py (render/terminal.py calls :func:`caching_section` with
its console and helpers). Earlier responses of the journey (redirects) get their one-line
summary; the final one its details. The JSON and the HTML report carry every directive.
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from whathappens.render.caching_view import CachingView, ResponseCaching, RevalidationView
from whathappens.render.steps import Timing

TONE = {"ok": "green", "warn": "yellow", "bad": "red", "": ""}


class Report(Protocol):
    """What this section uses of the terminal report (render/terminal.py's ``Report``)."""

    c: Console

    def row(self, label: Text, t: Timing, facts: Text | str, *, bold: bool = True) -> None: ...

    def detail(self, text: str | Text, indent: int = 8, style: str = "") -> None: ...


def caching_section(r: Report, v: CachingView) -> None:
    r.c.print()
    title = Text(v.title, style="bold blue")
    title.append(f"  {v.note}", style="dim")
    r.c.print(title, overflow="fold")
    for resp in v.responses:
        if resp.final:
            _final(r, resp)
        else:
            r.detail(Text(f"{resp.label}: {resp.summary}", style="dim"), indent=2)
    if v.revalidation is not None:
        _revalidation(r, v.revalidation)


def _final(r: Report, resp: ResponseCaching) -> None:
    head = Text(resp.label, style="bold")
    head.append(f"  Cache-Control: {resp.cache_control}", style="dim")
    r.detail(head, indent=2)
    for line in resp.caches:
        t = Text(f"{line.who:<28}", style="bold")
        t.append(line.verdict, style=TONE[line.tone])
        if line.cite:
            t.append(f"  ({line.cite})", style="dim")
        r.detail(t, indent=4)
    for text in resp.validators:
        r.detail(Text(f"validator  {text}"), indent=4)
    for text in [resp.age, *( [resp.vary] if resp.vary else []), *resp.extras]:
        r.detail(Text(text, style="dim"), indent=4)
    for text in resp.problems:
        r.detail(Text(f"! {text}", style="yellow"), indent=4)


def _revalidation(r: Report, rv: RevalidationView) -> None:
    if rv.timing is not None:
        facts = Text(rv.headline, style=TONE[rv.tone])
        r.row(Text(" revalidate", style="bold blue"), rv.timing, facts)
    else:
        r.detail(Text(f"revalidation {rv.headline}: ", style="bold") +
                 Text(rv.words, style="dim"), indent=2)
        return
    if rv.sent:
        r.detail(Text("sent again with " + " · ".join(rv.sent), style="dim"))
    if rv.connection:
        r.detail(Text(rv.connection, style="dim"))
    if rv.error is not None:
        r.detail(Text(f"✗ {rv.error.message}", style="red"))
    if rv.rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row("", Text("first response", style="bold"),
                     Text("revalidation", style="bold"))
        for what, first, again in rv.rows:
            grid.add_row(what, first, again)
        r.c.print(Padding(grid, (0, 0, 0, 8), expand=False))
    r.detail(Text(rv.words, style=TONE[rv.tone]))
