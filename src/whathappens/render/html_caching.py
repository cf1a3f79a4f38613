"""The caching section of the HTML report (and of the live page, which shows that report at
the end): each response's policy with every directive and its RFC, and the revalidation beside
the first response. Laid out from render/caching_view.py; every value escaped by
render/html_parts.py.
"""

from __future__ import annotations

from whathappens.render.caching_view import CachingView, ResponseCaching, RevalidationView
from whathappens.render.format import ms
from whathappens.render.html_parts import code, dl, esc, section, table

TONE = {"ok": "ok", "warn": "warn", "bad": "bad", "": "muted"}


def _response(r: ResponseCaching) -> str:
    out = [f"<h3>{esc(r.label)}{' (final)' if r.final else ''}</h3>",
           f"<p>{esc(r.summary)}</p>"]
    pairs = [("Cache-Control", code(r.cache_control))]
    pairs += [(esc(c.who), f"<span class=\"{TONE[c.tone]}\">{esc(c.verdict)}</span>"
                           + (f" <span class=\"muted\">({esc(c.cite)})</span>" if c.cite
                              else "")) for c in r.caches]
    if r.validators:
        pairs.append(("validators", "<br>".join(esc(v) for v in r.validators)))
    pairs.append(("age", esc(r.age)))
    if r.vary:
        pairs.append(("Vary", esc(r.vary)))
    out.append(dl(pairs))
    if r.extras:
        out.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in r.extras) + "</ul>")
    if r.problems:
        out.append("<ul>" + "".join(f"<li class=\"warn\">{esc(p)}</li>" for p in r.problems)
                   + "</ul>")
    if r.directives:
        out.append("<div class=\"advanced\">" + table(
            ["directive", "value", "what it means", "where"],
            [[code(d.name), esc(d.value or ""), esc(d.meaning), esc(d.cite)]
             for d in r.directives]) + "</div>")
    return "<div class=\"leg\">" + "".join(out) + "</div>"


def _revalidation(rv: RevalidationView) -> str:
    out = ["<h3>Revalidation, made after the journey</h3>",
           f"<p><strong class=\"{TONE[rv.tone]}\">{esc(rv.headline)}</strong>"
           + (f" in {esc(ms(rv.timing.duration_ms))}, at {esc(ms(rv.timing.start_ms))} on "
              "the journey's clock" if rv.timing is not None else "") + "</p>"]
    pairs = []
    if rv.sent:
        pairs.append(("sent again with", "<br>".join(code(s) for s in rv.sent)))
    if rv.connection:
        pairs.append(("connection", esc(rv.connection)))
    if pairs:
        out.append(dl(pairs))
    if rv.error is not None:
        out.append(f"<p class=\"bad\">{esc(rv.error.message)}</p>")
    out.append(table(["", "first response", "revalidation"],
                     [[esc(a), esc(b), esc(c)] for a, b, c in rv.rows]))
    out.append(f"<p>{esc(rv.words)}</p>")
    return "<div class=\"leg\">" + "".join(out) + "</div>"


def caching_html(v: CachingView | None) -> str:
    """The section, or nothing when no response came back."""
    if v is None:
        return ""
    body = f"<p class=\"muted\">{esc(v.note)}</p>"
    body += "".join(_response(r) for r in v.responses)
    if v.revalidation is not None:
        body += _revalidation(v.revalidation)
    body += f"<p class=\"small muted\">References: {esc(v.rules)}.</p>"
    return section("caching", esc(v.title), body, layer="application")
