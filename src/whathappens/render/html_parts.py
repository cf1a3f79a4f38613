"""Pieces of HTML every section of the report is made of, and the one escaping function.

Shared by render/html.py (the report) and render/html_browser.py (its browser section), so
that a value from the journey is escaped the same way wherever it lands: :func:`esc` shows
control characters as visible escapes (render/visible.py) and then HTML-escapes, quotes
included; :func:`script_json` makes JSON safe inside a ``<script>`` element.
"""

from __future__ import annotations

import html
import json

from whathappens.render.visible import escape_json, visible


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


# ---------------------------------------------------------------------------- fragments
def table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
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


def dl(pairs: list[tuple[str, str]]) -> str:
    """Terms are our own words; values are already HTML."""
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in pairs)
    return f"<dl class=\"facts\">{items}</dl>"


def code(v: object) -> str:
    return f"<code>{esc(v)}</code>"


def section(ident: str, title: str, body: str, *, layer: str | None = None) -> str:
    tag = f" <span class=\"layer\">{esc(layer)} layer</span>" if layer else ""
    return (f"<section id=\"{ident}\" aria-labelledby=\"h-{ident}\">"
            f"<h2 id=\"h-{ident}\">{title}{tag}</h2>{body}</section>")
