"""HTTP on the wire and "what good timing looks like" in the HTML report (and the live page,
which shows the report's sections): laid out from render/wire_view.py's views; every value
escaped by :func:`~whathappens.render.html_parts.esc`."""

from __future__ import annotations

from whathappens.explain.wire import GUIDE_CAPTION, GUIDE_TITLE
from whathappens.render.html_parts import esc, section, table
from whathappens.render.wire_view import GuideLine, WireView

TONE_CLASS = {"ok": "ok", "bad": "bad", "warn": "warn", "": "muted"}


def wire_html(w: WireView | None) -> str:
    """An HTTP step on the wire: every frame (HTTP/2) or chunk (HTTP/1.1 chunked) listed."""
    if w is None:
        return ""
    out = ["<h4>On the wire</h4>", f"<p class=\"muted\">{esc(w.headline)}</p>"]
    if w.blocks:
        out.append("<ul>" + "".join(f"<li>{esc(b)}</li>" for b in w.blocks) + "</ul>")
    if w.kind in ("h2", "h3"):
        rows = [[esc(f.arrow + (" sent" if f.sent else " received")), esc(f.type),
                 esc(f.stream), esc(f.flags), esc(f"{f.length:,}"), esc(f.at), esc(f.detail)]
                for f in w.frames]
        out.append(table(["", "frame", "stream", "flags", "length", "at (ms)", "carries"],
                         rows, "frames"))
    else:
        rows = [[esc(c.number), esc(f"{c.size:,} B"), esc(c.at), esc(c.after)]
                for c in w.chunks]
        out.append(table(["chunk", "size", "at (ms)", "after the previous"], rows, "chunks"))
    if w.dropped:
        out.append(f"<p class=\"warn\">{esc(w.dropped)}</p>")
    return "<div class=\"advanced wire\">" + "".join(out) + "</div>"


def guide_html(lines: list[GuideLine]) -> str:
    """The section: the rule of thumb beside this journey's figure, row by row."""
    if not lines:
        return ""
    rows = [[f"<strong>{esc(g.label)}</strong>" + (f" <span class=\"muted\">"
             f"{esc(g.request)}</span>" if g.request else ""), esc(g.rule), esc(g.figure),
             f"<span class=\"{TONE_CLASS.get(g.tone, 'muted')}\">{esc(g.outcome)}</span>",
             esc(g.note), f"<span class=\"muted\">{esc(g.basis)}</span>"] for g in lines]
    return section("timing", esc(GUIDE_TITLE),
                   f"<p class=\"note\">{esc(GUIDE_CAPTION.capitalize())}.</p>"
                   + table(["step", "rule of thumb", "this journey", "verdict",
                            "what the figure was", "why the rule"], rows, "guide"))
