"""HTTP on the wire and the timing guide in the terminal report.

Laid out from render/wire_view.py's views (render/terminal.py calls these with its report):
under each HTTP step, the exchange on the wire — by default one compact line of the frames in
order (runs of one type folded: ``← DATA×12``) or of the chunks, plus the header blocks before
and after HPACK; with ``--explain`` the whole table, one row per frame or chunk. After the
findings, the table "What good timing looks like": the rules of thumb beside this journey's
figures.
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from whathappens.explain.wire import GUIDE_CAPTION, GUIDE_TITLE
from whathappens.render.format import size
from whathappens.render.wire_view import FrameRow, GuideLine, WireView

TONE = {"ok": "green", "bad": "red", "warn": "yellow", "": "dim"}
COMPACT_CHUNKS = 8


class Report(Protocol):
    c: Console
    explain: bool

    def detail(self, text: str | Text, indent: int = 8, style: str = "") -> None: ...


def folded(frames: list[FrameRow]) -> Text:
    """The frames in order, runs of the same direction and type folded."""
    out = Text()
    runs: list[tuple[FrameRow, int]] = []
    for f in frames:
        if runs and (runs[-1][0].arrow, runs[-1][0].type) == (f.arrow, f.type):
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((f, 1))
    for i, (f, n) in enumerate(runs):
        if i:
            out.append("  ")
        out.append(f"{f.arrow} {f.type}" + (f"×{n}" if n > 1 else ""),
                   style="yellow" if f.sent else "")
    return out


def wire_section(r: Report, w: WireView | None) -> None:
    """An HTTP step on the wire: compact by default, every row with --explain."""
    if w is None:
        return
    r.detail(Text(w.headline, style="bold dim"))
    for line in w.blocks:
        r.detail(Text(line, style="dim"))
    if w.kind in ("h2", "h3"):
        if r.explain:
            frame_table(r, w)
        else:
            r.detail(folded(w.frames))
    elif r.explain:
        chunk_table(r, w)
    else:
        shown = ", ".join(f"{size(c.size)}" + (f" {c.after}" if c.after else "")
                          for c in w.chunks[:COMPACT_CHUNKS])
        more = len(w.chunks) - COMPACT_CHUNKS
        r.detail(Text(shown + (f", … {more} more listed with --explain" if more > 0 else ""),
                      style="dim"))
    if w.dropped:
        r.detail(Text(w.dropped, style="yellow"))


def frame_table(r: Report, w: WireView) -> None:
    grid = Table.grid(padding=(0, 2))
    for justify in ("left", "left", "right", "left", "right", "right", "left"):
        grid.add_column(justify=justify, no_wrap=justify == "right", overflow="fold")
    grid.columns[3].max_width = len("END_HEADERS")  # flags wrap, one a line
    grid.columns[6].min_width = len("INITIAL_WINDOW_SIZE=6291456,")
    grid.add_row(*[Text(h, style="bold dim") for h in
                   ("", "frame", "stream", "flags", "length", "at ms", "carries")])
    for f in w.frames:
        grid.add_row(Text(f.arrow, style="yellow" if f.sent else ""),
                     Text(f.type, style="yellow" if f.sent else ""), str(f.stream), f.flags,
                     f"{f.length:,}", f.at, Text(f.detail, style="dim"))
    r.c.print(Padding(grid, (0, 0, 0, 8), expand=False))


def chunk_table(r: Report, w: WireView) -> None:
    grid = Table.grid(padding=(0, 2))
    for _ in range(4):
        grid.add_column(justify="right", no_wrap=True)
    grid.add_row(*[Text(h, style="bold dim") for h in ("chunk", "size", "at ms", "after")])
    for c in w.chunks:
        grid.add_row(str(c.number), f"{c.size:,} B", c.at, c.after)
    r.c.print(Padding(grid, (0, 0, 0, 8), expand=False))


def guide_section(r: Report, lines: list[GuideLine]) -> None:
    """What good timing looks like: the rule beside this journey's figure."""
    if not lines:
        return
    r.c.print()
    title = Text(GUIDE_TITLE, style="bold")
    title.append(f"  ({GUIDE_CAPTION})", style="dim")
    r.c.print(title, overflow="fold")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold", max_width=34)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(*[Text(h, style="bold dim") for h in
                   ("", "rule of thumb", "this journey", "", "what the figure was")])
    for g in lines:
        label = g.label + (f", {g.request}" if g.request else "")
        grid.add_row(Text(label, style="bold"), g.rule, g.figure,
                     Text(g.outcome, style=TONE.get(g.tone, "")), Text(g.note, style="dim"))
    r.c.print(Padding(grid, (0, 0, 0, 2), expand=False))
    if r.explain:
        said: set[str] = set()
        for g in lines:
            if g.label not in said:
                said.add(g.label)
                r.detail(Text(f"{g.label}: {g.basis}", style="dim"), indent=4)
