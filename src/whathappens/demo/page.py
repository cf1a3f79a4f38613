"""www.example.com's page in the demo internet: what it loads, why, and how late each file is.

The page is built for a browser to show a real critical rendering path on one HTTP/2
connection, every file from the same origin, each answered after its own injected delay
(``topology.PAGE_DELAYS_MS``; all 0 with ``--no-delay``):

    /                   the HTML (the web server's think time, topology "web")
    /static/style.css   render-blocking stylesheet: nothing is painted before it arrives
    /static/app.js      parser-blocking script in <head>; it also asks for /api/banner
    /static/heading.ttf the headings' web font, found only once the CSS is applied
                        (font-display: swap, so the text shows in a fallback first)
    /static/stats.js    async script: runs whenever it arrives, blocks nothing
    /static/logo.png    small images …
    /static/dns.svg, tls.svg, http.svg
    /static/hero.png    … and the largest image above the fold: the LCP element
    /api/banner         JSON fetched by app.js; the banner it fills in is inserted above
                        the content, which moves down: a layout shift (CLS > 0)

The texts on the page state those delays, so they are rendered from templates (``site/``)
with the delays this server was started with. The font is Liberation Serif Bold read from
Debian's fonts-liberation package at startup (GPL-2 with the font exception; it is served,
never copied into this repository); without that package the page has no web font and says
so. Static files are public and immutable for a day; the page itself may be kept a minute by
the browser and five by a CDN, and served stale for 30 s while it is checked again
(``PAGE_CACHE``); the JSON is private and never stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from whathappens.demo.images import hero_png, step_svg
from whathappens.demo.topology import PAGE_DELAYS_MS

SITE_DIR = Path(__file__).parent / "site"
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf"),
)
STATIC_CACHE = "public, max-age=86400, immutable"
PAGE_CACHE = "public, max-age=60, s-maxage=300, stale-while-revalidate=30"
DYNAMIC_CACHE = "private, no-store"
BANNER_TEXT = ("A late banner: its text came from /api/banner, which answered after "
               "{ms} ms, and pushed everything below it down.")


@dataclass(frozen=True)
class PageFile:
    """One file of the page: its bytes, and what the report and the page say about it."""

    path: str
    body: bytes
    content_type: str
    delay_key: str | None  # the key in PAGE_DELAYS_MS (None: the web server's think time)
    kind: str              # document, stylesheet, script, font, image, fetch
    purpose: str
    cache_control: str = STATIC_CACHE


@dataclass(frozen=True)
class _Spec:
    path: str
    key: str
    kind: str
    purpose: str


SPECS: tuple[_Spec, ...] = (
    _Spec("/static/style.css", "css", "stylesheet",
          "render-blocking stylesheet: the browser paints nothing until it has it"),
    _Spec("/static/app.js", "js", "script",
          "parser-blocking script in the head: the HTML parser waits for it"),
    _Spec("/static/heading.ttf", "font", "font",
          "web font of the headings, discovered only after the stylesheet is applied"),
    _Spec("/static/stats.js", "async", "script",
          "async script: fetched in parallel, runs when it arrives, blocks nothing"),
    _Spec("/static/logo.png", "logo", "image", "small logo in the header"),
    _Spec("/static/dns.svg", "img-dns", "image", "small picture: the name lookup"),
    _Spec("/static/tls.svg", "img-tls", "image", "small picture: the handshake"),
    _Spec("/static/http.svg", "img-http", "image", "small picture: the request"),
    _Spec("/static/hero.png", "hero", "image",
          "the largest image above the fold: the Largest Contentful Paint element"),
    _Spec("/api/banner", "banner", "fetch",
          "JSON asked for by app.js; the banner it fills moves the page down (layout shift)"),
)


def find_font() -> Path | None:
    """The first serif bold TTF a Debian package installed, or None."""
    return next((p for p in FONT_CANDIDATES if p.is_file()), None)


def build_page(delays: Mapping[str, float], font: Path | None) -> dict[str, PageFile]:
    """Every file of the page by path, its texts stating ``delays`` (ms, by PAGE_DELAYS_MS
    key; a missing key is 0)."""
    ms = {key: float(delays.get(key, 0.0)) for key in PAGE_DELAYS_MS}
    font_bytes = font.read_bytes() if font is not None else None
    bodies: dict[str, tuple[bytes, str]] = {
        "/static/style.css": (_style(font_bytes is not None), "text/css; charset=utf-8"),
        "/static/app.js": (_read("static/app.js"), "application/javascript; charset=utf-8"),
        "/static/stats.js": (_read("static/stats.js"), "application/javascript; charset=utf-8"),
        "/static/logo.png": (_read("static/logo.png"), "image/png"),
        "/static/dns.svg": (step_svg("DNS", "where is the name?", "#2f6f8f"), "image/svg+xml"),
        "/static/tls.svg": (step_svg("TLS", "who is it, really?", "#6a4c93"), "image/svg+xml"),
        "/static/http.svg": (step_svg("HTTP", "what do you have?", "#3c8d5a"),
                             "image/svg+xml"),
        "/static/hero.png": (hero_png(), "image/png"),
        "/api/banner": (json.dumps({"text": BANNER_TEXT.format(ms=f"{ms['banner']:g}")})
                        .encode(), "application/json"),
    }
    if font_bytes is not None:
        bodies["/static/heading.ttf"] = (font_bytes, "font/ttf")
    files = {
        spec.path: PageFile(spec.path, *bodies[spec.path], spec.key, spec.kind, spec.purpose,
                            DYNAMIC_CACHE if spec.kind == "fetch" else STATIC_CACHE)
        for spec in SPECS if spec.path in bodies
    }
    html = _html(ms, font)
    files["/"] = PageFile("/", html, "text/html; charset=utf-8", None, "document",
                          "the page itself", PAGE_CACHE)
    return files


def describe(delays: Mapping[str, float], font: Path | None) -> dict[str, object]:
    """The page for internet.json: each file, its delay and its purpose."""
    files = [{"path": s.path, "kind": s.kind, "delay_key": s.key,
              "delay_ms": float(delays.get(s.key, 0.0)), "purpose": s.purpose}
             for s in SPECS if s.key != "font" or font is not None]
    return {
        "url": "/",
        "files": files,
        "font": str(font) if font is not None else None,
        "note": "each file of the page is answered after its own injected delay_ms, so a "
                "browser shows a critical chain; --no-delay sets them to 0",
    }


def delay_words(page: Mapping[str, object]) -> str:
    """internet.json's "page" in a few words: "style.css 200 ms, app.js 100 ms, …" (the files
    with a delay, slowest last), "" when none was injected."""
    files = page.get("files")
    if not isinstance(files, list):
        return ""
    delayed = sorted((float(f.get("delay_ms") or 0), str(f.get("path", "")).rsplit("/", 1)[-1])
                     for f in files if isinstance(f, dict) and f.get("delay_ms"))
    return ", ".join(f"{name} {ms:g} ms" for ms, name in delayed)


def _read(name: str) -> bytes:
    return (SITE_DIR / name).read_bytes()


def _style(with_font: bool) -> bytes:
    face = ""
    if with_font:
        face = ('@font-face {\n  font-family: "Demo Heading";\n'
                '  src: url("/static/heading.ttf") format("truetype");\n'
                '  font-weight: 700;\n  font-display: swap;\n}\n')
    return Template(_read("static/style.css").decode()).substitute(font_face=face).encode()


def _html(ms: Mapping[str, float], font: Path | None) -> bytes:
    rows = []
    for spec in SPECS:
        if spec.key == "font" and font is None:
            continue
        rows.append(f"<tr><td><code>{spec.path}</code></td><td>{spec.kind}</td>"
                    f"<td>{ms[spec.key]:g} ms</td><td>{spec.purpose}</td></tr>")
    font_note = (f"The headings use a web font, {font.stem}, read from {font.parent} when "
                 "the server started." if font is not None else
                 "No web font this time: the server found no font package to serve "
                 "(Debian's fonts-liberation provides one).")
    values = {
        "rows": "\n".join(rows),
        "font_note": font_note,
        "hero_ms": f"{ms['hero']:g}",
        "css_ms": f"{ms['css']:g}",
        "banner_ms": f"{ms['banner']:g}",
        "delayed": "on" if any(ms.values()) else "off (--no-delay)",
    }
    return Template(_read("index.html").decode()).substitute(values).encode()
