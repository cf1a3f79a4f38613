"""Who answered and the security grade in the terminal report.

Laid out from the view (render/security_view.py); render/terminal.py calls
:func:`who_section` and :func:`security_section` with its console. Every value came through
the report's ``visible_tree`` copy of the journey, so a header's control characters are
already visible escapes, and the console prints ``Text`` objects with markup off.
"""

from __future__ import annotations

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from whathappens.render.security_view import TONE, SecurityView, WhoView

STYLE = {"ok": "green", "warn": "yellow", "bad": "red", "": "dim"}
CONFIDENCE_STYLE = {"certain": "bold green", "likely": "green", "possible": "yellow"}


def _line(c: Console, text: Text | str, indent: int = 2, style: str = "") -> None:
    t = text if isinstance(text, Text) else Text(text, style=style)
    c.print(Padding(t, (0, 0, 0, indent), expand=False), overflow="fold")


def explain(c: Console, beginner: str, advanced: str) -> None:
    """--explain: the section's words, filled with this journey's values."""
    _line(c, Text(beginner, style="italic"), indent=4)
    _line(c, Text("Advanced: ", style="bold dim") + Text(advanced, style="dim"), indent=4)


def who_section(c: Console, who: WhoView | None, explain_it: bool = False) -> None:
    if who is None or not who.parties:
        return
    c.print()
    c.print(Text("Who answered", style="bold"))
    _line(c, who.intro, style="dim")
    for p in who.parties:
        t = Text(f"{p.role:<14}", style="bold")
        t.append(f"{p.who}  ")
        t.append(p.confidence, style=CONFIDENCE_STYLE.get(p.confidence, ""))
        _line(c, t)
        for e in p.evidence:
            leg = f" (request {e.leg + 1})" if e.leg is not None else ""
            _line(c, Text(f"{e.source}: {e.detail}{leg}", style="dim"), indent=18)
    if explain_it:
        explain(c, who.beginner, who.advanced)


def security_section(c: Console, s: SecurityView | None, explain_it: bool) -> None:
    if s is None:
        return
    c.print()
    title = Text("Security headers and cookies  ", style="bold")
    title.append(s.grade, style="bold " + ("green" if s.grade.startswith("A") else "yellow"))
    title.append(f" ({s.score})  of {s.url}", style="dim")
    c.print(title, overflow="fold")
    _line(c, s.scoring, style="dim")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=16)
    grid.add_column(justify="right", no_wrap=True, min_width=6)
    grid.add_column(overflow="fold")
    for r in s.rows:
        says = Text(r.says, style="dim" if r.tone in ("", "ok") else "")
        if explain_it:  # the Observatory's own name for the result (long: --explain only)
            says.append(f"  [{r.result}]", style="dim")
        grid.add_row(Text(r.test), Text(r.points, style=STYLE[r.tone]), says)
    c.print(Padding(grid, (0, 0, 0, 2), expand=False))
    if s.bonus_note:
        _line(c, s.bonus_note, style="dim")
    c.print(Text("  headers of the final response:", style="bold"))
    for h in s.headers:
        t = Text(f"{h.header}: ", style="bold")
        t.append(h.verdict, style=STYLE[TONE.get(h.verdict, "")])
        t.append(f"  {h.value if h.value is not None else '(absent)'}", style="dim")
        _line(c, t, indent=4)
        _line(c, Text(f"{h.says}  [{h.cite}]", style="dim"), indent=8)
    _hsts(c, s)
    for k in s.cookies:
        flags = [f for f, on in (("Secure", k.secure), ("HttpOnly", k.http_only)) if on]
        flags.append(f"SameSite={k.same_site}" if k.same_site else "no SameSite")
        t = Text(f"cookie {k.name}: ", style="bold")
        t.append(k.verdict, style=STYLE[TONE.get(k.verdict, "")])
        t.append(f"  {', '.join(flags)}" + ("  (session)" if k.session else ""), style="dim")
        _line(c, t, indent=4)
        for p in k.problems:
            _line(c, Text(p, style="dim"), indent=8)
    for n in s.legs:
        _line(c, Text(f"request {n.leg + 1} ({n.url}): {n.note}", style="dim"), indent=4)
    if s.changes:
        c.print(Text("  what to change:", style="bold"))
        for line in s.changes:
            _line(c, Text(f"→ {line}", style="yellow"), indent=4)
    if explain_it and s.csp:
        _line(c, Text("CSP directives: " + "; ".join(
            f"{d.name} {' '.join(d.sources)}".strip() for d in s.csp), style="dim"), indent=4)
    if explain_it:
        explain(c, s.beginner, s.advanced)


def _hsts(c: Console, s: SecurityView) -> None:
    h = s.hsts
    if h is None:
        return
    t = Text("HSTS preload list: ", style="bold")
    t.append("ready" if h.preload_ready else "not ready",
             style="green" if h.preload_ready else "yellow")
    t.append("  (hstspreload.org's requirements)", style="dim")
    _line(c, t, indent=4)
    for r in h.requirements:
        mark = "✓" if r.met else "✗" if r.met is False else "?"
        _line(c, Text(f"{mark} {r.rule}: {r.why}",
                      style="green" if r.met else "yellow" if r.met is False else "dim"),
              indent=8)
