"""Who answered and the security grade in the HTML report (and so on the live page, which
shows the report's sections when the journey ends).

Laid out from the view (render/security_view.py). Every value from the journey (header
values, cookie names, URLs, evidence) goes through :func:`~whathappens.render.html_parts.esc`:
control characters shown as escapes, then HTML-escaped, quotes included.
"""

from __future__ import annotations

from whathappens.render.html_parts import code, esc, section, table
from whathappens.render.security_view import TONE, SecurityView, WhoView


def _both(beginner: str, advanced: str) -> str:
    """The beginner/advanced switch's two texts (the report's CSS shows one)."""
    return (f"<div class=\"explain beginner\"><p>{esc(beginner)}</p></div>"
            f"<div class=\"explain advanced\"><p>{esc(advanced)}</p></div>")


def _tone(text: str, tone: str) -> str:
    return f"<span class=\"{tone}\">{esc(text)}</span>" if tone else esc(text)


def who_html(who: WhoView | None) -> str:
    if who is None or not who.parties:
        return section("who", "Who answered", "<p>Nothing in this journey tells who answered "
                       "(no response, or no telling header).</p>")
    rows = [[esc(p.role), esc(p.who), _tone(p.confidence, "ok" if p.confidence != "possible"
                                            else "warn"),
             "<br>".join(f"{esc(e.source)}: {code(e.detail)}"
                         + (f" <span class=\"muted\">(request {esc(e.leg + 1)})</span>"
                            if e.leg is not None else "") for e in p.evidence)]
            for p in who.parties]
    return section("who", "Who answered",
                   f"<p class=\"muted\">{esc(who.intro)}</p>"
                   + table(["role", "who", "confidence", "evidence"], rows)
                   + _both(who.beginner, who.advanced),
                   layer="application")


def _headers(s: SecurityView) -> str:
    rows = [[esc(h.header), _tone(h.verdict, TONE.get(h.verdict, "")),
             code(h.value) if h.value is not None else "<span class=\"muted\">absent</span>",
             esc(h.says) + (f"<br><strong>Change:</strong> {esc(h.change)}" if h.change
                            and h.verdict != "good" else "")
             + f"<br><span class=\"muted\">{esc(h.cite)}</span>"] for h in s.headers]
    return "<h3>The final response's headers</h3>" + table(
        ["header", "verdict", "value", "what it means"], rows)


def _hsts(s: SecurityView) -> str:
    h = s.hsts
    if h is None:
        return ""
    marks = {True: ("✓", "ok"), False: ("✗", "warn"), None: ("?", "")}
    items = "".join(
        f"<li>{_tone(*marks[r.met])} {esc(r.rule)}: <span class=\"muted\">{esc(r.why)}"
        "</span></li>" for r in h.requirements)
    verdict = _tone("ready", "ok") if h.preload_ready else _tone("not ready", "warn")
    return (f"<h3>HSTS preload list: {verdict}</h3><p class=\"muted\">hstspreload.org's "
            f"submission requirements, as this journey shows them.</p><ul>{items}</ul>")


def _cookies(s: SecurityView) -> str:
    if not s.cookies:
        return ""
    rows = [[code(k.name), esc(f"request {k.leg + 1}"), _tone(k.verdict, TONE.get(k.verdict, "")),
             esc(", ".join(f for f, on in (("Secure", k.secure), ("HttpOnly", k.http_only),
                                           (f"SameSite={k.same_site}", k.same_site is not None),
                                           (f"prefix {k.prefix}", k.prefix is not None),
                                           ("session", k.session)) if on)),
             "<br>".join(esc(p) for p in k.problems) or "—"] for k in s.cookies]
    return "<h3>Cookies</h3>" + table(["cookie", "set by", "verdict", "attributes",
                                       "problems (RFC 6265bis)"], rows)


def security_html(s: SecurityView | None) -> str:
    if s is None:
        return section("security", "Security", "<p>No response, so no headers to grade.</p>")
    rows = [[esc(r.test), _tone(r.points, r.tone), esc(r.says)
             + (f"<br><strong>Change:</strong> {esc(r.change)}" if r.change else "")
             + f"<br><span class=\"muted\">{code(r.result)}</span>"]
            for r in s.rows]
    changes = "".join(f"<li>{esc(c)}</li>" for c in s.changes)
    notes = "".join(f"<li>request {esc(n.leg + 1)} ({code(n.url)}): {esc(n.note)}</li>"
                    for n in s.legs)
    tone = "ok" if s.grade.startswith("A") else "warn"
    body = (f"<p class=\"summary {tone}\">{esc(s.grade)} · score {esc(s.score)} · "
            f"{code(s.url)}</p><p class=\"small\">{esc(s.scoring)}</p>"
            + table(["test", "points", "result"], rows)
            + (f"<p class=\"small\">{esc(s.bonus_note)}</p>" if s.bonus_note else "")
            + (f"<h3>What to change</h3><ol>{changes}</ol>" if changes else "")
            + _headers(s) + _hsts(s) + _cookies(s)
            + (f"<h3>Per request</h3><ul>{notes}</ul>" if notes else "")
            + _both(s.beginner, s.advanced))
    return section("security", "Security headers and cookies", body, layer="application")
