"""Writes tests/data/journey_browser.json: the recorded demo journey (journey_demo.json) with a
browser phase added by hand, as the capture core will write it (contract/facts.py's browser
facts, every field through the contract's own writer, so the fixture follows it exactly).

The page is the demo's www.example.com page as issue 10 describes it, with its injected delays:
a render-blocking stylesheet (style.css, +300 ms), a web font discovered from it, a
parser-blocking script at the end of the body (app.js, +150 ms), an async script, a hero image
that is the LCP element (+600 ms), two small images and a late banner that shifts the content
(CLS 0.12). Three filmstrip frames are tiny real PNGs. Times are ms on the journey's clock:
the browser launches at 95 ms, the navigation starts at 300 ms; the page's own times (fcp_ms…)
count from the navigation, as Web Vitals do.

Run ``.venv/bin/python tests/make_journey_browser.py`` after changing it, and read the diff.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from whathappens.contract.codec import to_json
from whathappens.contract.facts import (
    BrowserFacts,
    BrowserMarkFacts,
    BrowserResourceFacts,
    BrowserStageFacts,
    Facts,
    FilmstripFrame,
    LayoutShiftFacts,
    ResourceTiming,
)

DATA = Path(__file__).parent / "data"
SITE = "https://www.example.com"
SERVER = "server [::1]:10443"
NAV = 300.0  # the navigation's start on the journey's clock


def png(width: int, height: int, rows: list[tuple[int, int, int]]) -> str:
    """A real PNG (RFC 2083), each pixel row one colour, as a data: URI."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + bytes(rows[y % len(rows)]) * width for y in range(height))
    body = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(body).decode()


WHITE, TEXT, HERO = (255, 255, 255), (40, 40, 40), (30, 110, 200)


class Spans:
    def __init__(self, first_id: int) -> None:
        self.next_id = first_id

    def span(self, name: str, actor: str, start: float, end: float, facts: Facts,
             children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        ident = self.next_id
        self.next_id += 1
        return {"id": ident, "name": name, "step": "browser", "actor": actor,
                "layer": "application", "start_ms": start, "end_ms": end,
                "duration_ms": round(end - start, 3), "attrs": to_json(facts), "error": None,
                "children": children or []}


# (path, type, priority, render_blocking, initiator, stream, start, queued, send, wait,
#  receive, encoded, decoded, mime)
RESOURCES: list[tuple[str, str, str, str, str, int, float, float, float, float, float, int,
                      int, str]] = [
    ("/static/style.css", "Stylesheet", "VeryHigh", "blocking", f"parser {SITE}/ line 6", 3,
     316.2, 0.6, 0.2, 301.4, 6.1, 2411, 7820, "text/css"),
    ("/static/app.js", "Script", "High", "in_body_parser_blocking", f"parser {SITE}/ line 31", 5,
     316.5, 0.7, 0.1, 151.2, 2.4, 1630, 4210, "text/javascript"),
    ("/static/async.js", "Script", "Low", "non_blocking", f"parser {SITE}/ line 7", 7,
     316.8, 0.8, 0.1, 60.3, 1.9, 980, 2304, "text/javascript"),
    ("/static/hero.jpg", "Image", "High", "non_blocking", f"parser {SITE}/ line 14", 11,
     317.0, 1.1, 0.1, 600.8, 11.2, 48211, 48000, "image/jpeg"),
    ("/static/logo.png", "Image", "Low", "non_blocking", f"parser {SITE}/ line 12", 13,
     317.2, 1.2, 0.1, 20.4, 0.9, 3122, 2900, "image/png"),
    ("/static/thumb-1.jpg", "Image", "Low", "non_blocking", f"parser {SITE}/ line 22", 15,
     317.4, 1.3, 0.1, 35.2, 2.6, 9310, 9100, "image/jpeg"),
    ("/static/font.woff2", "Font", "VeryHigh", "non_blocking",
     f"parser {SITE}/static/style.css line 3", 17, 627.9, 0.4, 0.1, 120.5, 4.3, 15402, 15200,
     "font/woff2"),
    ("/static/banner.jpg", "Image", "Low", "non_blocking",
     f"script {SITE}/static/async.js line 9", 19, 1100.5, 0.5, 0.1, 41.0, 3.1, 12044, 11800,
     "image/jpeg"),
]


def resource_spans(s: Spans) -> list[dict[str, Any]]:
    doc_timing = ResourceTiming(queued_ms=0.4, dns_ms=None, connect_ms=None, tls_ms=None,
                                send_ms=0.3, wait_ms=12.1, receive_ms=5.2)
    out = [s.span("browser.resource", SERVER, NAV, 318.0, BrowserResourceFacts(
        url=f"{SITE}/", navigation=True, resource_type="Document", initiator="other",
        priority="VeryHigh", render_blocking=None, status=200, mime_type="text/html",
        protocol="h2", connection_id=42, connection_reused=True, stream_id=1,
        remote_address="[::1]:10443", timing=doc_timing, encoded_bytes=1850,
        decoded_bytes=4100, cache_status="MISS",
        note="Chromium opened this connection itself before the request was sent (a "
             "preconnect at navigation start), so its timing for the document shows no DNS, "
             "connect or TLS; the journey's own DNS, TCP and TLS steps measured them."))]
    for (path, kind, prio, blocking, initiator, stream, start, queued, send, wait, receive,
         encoded, decoded, mime) in RESOURCES:
        end = round(start + queued + send + wait + receive, 3)
        out.append(s.span("browser.resource", SERVER, start, end, BrowserResourceFacts(
            url=SITE + path, resource_type=kind, initiator=initiator, priority=prio,
            render_blocking=blocking, status=200, mime_type=mime, protocol="h2",
            connection_id=42, connection_reused=True, stream_id=stream,
            remote_address="[::1]:10443",
            timing=ResourceTiming(queued_ms=queued, send_ms=send, wait_ms=wait,
                                  receive_ms=receive),
            encoded_bytes=encoded, decoded_bytes=decoded, cache_status="MISS")))
    return out


# (stage, event, start, end, url, count)
STAGES: list[tuple[str, str, float, float, str | None, int]] = [
    ("dom", "ParseHTML", 318.4, 320.1, f"{SITE}/", 1),
    ("script", "EvaluateScript", 386.0, 388.2, f"{SITE}/static/async.js", 1),
    ("cssom", "ParseAuthorStyleSheet", 624.6, 625.4, f"{SITE}/static/style.css", 1),
    ("script", "EvaluateScript", 625.6, 630.8, f"{SITE}/static/app.js", 1),
    ("dom", "ParseHTML", 630.9, 631.8, f"{SITE}/", 1),
    ("style", "UpdateLayoutTree", 632.6, 634.0, None, 1),
    ("layout", "Layout", 634.1, 636.9, None, 1),
    ("prepaint", "PrePaint", 637.0, 637.4, None, 1),
    ("paint", "Paint", 637.5, 638.9, None, 3),
    ("layerize", "Layerize", 639.0, 639.3, None, 1),
    ("commit", "Commit", 639.4, 640.0, None, 1),
    ("composite", "DrawFrame", 645.0, 645.3, None, 1),
    ("long_task", "RunTask", 700.0, 765.0, f"{SITE}/static/async.js", 1),
    ("layout", "Layout", 931.0, 932.2, None, 1),
    ("paint", "Paint", 932.4, 934.0, None, 2),
    ("composite", "DrawFrame", 945.0, 945.3, None, 1),
    ("layout", "Layout", 1100.2, 1101.6, None, 1),
    ("paint", "Paint", 1101.8, 1102.9, None, 2),
]

# What the page waited on or timed itself: (stage, event, start, end, url, name)
WORK: list[tuple[str, str, float, float, str | None, str | None]] = [
    ("user_measure", "performance.measure", 626.0, 640.2, None, "app:boot"),
    ("font_load", "BeginRemoteFontLoad → RemoteFontLoaded", 641.0, 905.5,
     f"{SITE}/static/font.woff2", "Example Sans"),
    ("image_decode", "Decode Image", 940.1, 943.0, f"{SITE}/static/hero.jpg", "jpeg"),
]

# (mark, at, element, url, value)
MARKS: list[tuple[str, float, str | None, str | None, float | None]] = [
    ("dom_content_loaded", 632.4, None, None, None),
    ("first_paint", 645.2, None, None, None),
    ("fcp", 645.2, None, None, None),
    ("lcp", 945.2, "img.hero", f"{SITE}/static/hero.jpg", None),
    ("load", 1010.0, None, None, None),
    ("layout_shift", 1101.7, "div.content", None, 0.12),
]


def browser_span(first_id: int) -> dict[str, Any]:
    s = Spans(first_id + 1)
    children = resource_spans(s)
    children += [s.span("browser.stage", "Chromium renderer", start, end,
                        BrowserStageFacts(stage=stage, event=event, url=url, count=count))
                 for stage, event, start, end, url, count in STAGES]
    children += [s.span("browser.mark", "Chromium renderer", at, at,
                        BrowserMarkFacts(mark=mark, element=el, url=url, value=value))
                 for mark, at, el, url, value in MARKS]
    children += [s.span("browser.stage", "Chromium renderer", start, end,
                        BrowserStageFacts(stage=stage, event=event, url=url, name=name))
                 for stage, event, start, end, url, name in WORK]
    children.append(s.span("browser.mark", "Chromium renderer", 640.2, 640.2,
                           BrowserMarkFacts(mark="user_mark", name="app:ready")))
    children.sort(key=lambda c: (c["start_ms"], c["id"]))
    frames = [FilmstripFrame(t_ms=402.0, image=png(8, 6, [WHITE]), width=8, height=6),
              FilmstripFrame(t_ms=645.6, image=png(8, 6, [TEXT, WHITE, WHITE]), width=8,
                             height=6),
              FilmstripFrame(t_ms=945.6, image=png(8, 6, [TEXT, HERO, HERO, WHITE]), width=8,
                             height=6)]
    facts = BrowserFacts(
        url=f"{SITE}/", browser="Chromium 130.0.6723.116", outcome="loaded",
        address="::1", trusted_ca="the demo's CA (demo-ca.pem)", warm=False, launch_ms=195.0,
        final_url=f"{SITE}/", status=200, navigation_start_ms=NAV,
        dom_content_loaded_ms=332.4, load_ms=710.0,
        first_paint_ms=345.2, fcp_ms=345.2, lcp_ms=645.2, lcp_element="img.hero",
        lcp_url=f"{SITE}/static/hero.jpg", cls=0.12,
        layout_shifts=[LayoutShiftFacts(t_ms=1101.7, score=0.12, moved=["div.content",
                                                                        "footer"])],
        long_tasks=1, requests=9, bytes_on_wire=94960, filmstrip=frames,
        trace_events=6968, trace_bytes=1281771,
        notes=["the trace was read back whole (6,968 events)"], settle_ms=512.3,
        settle_ended="quiet: no request in flight and no new LCP candidate or layout shift "
                     "for 500 ms")
    return {"id": first_id, "name": "browser", "step": "browser", "actor": "headless Chromium",
            "layer": "application", "start_ms": 95.0, "end_ms": 1160.0, "duration_ms": 1065.0,
            "attrs": to_json(facts), "error": None, "children": children}


def main() -> None:
    journey: dict[str, Any] = json.loads((DATA / "journey_demo.json").read_text())
    journey["schema_version"] = "1.6"

    def ids(spans: list[dict[str, Any]]) -> list[int]:
        return [i for sp in spans for i in [sp["id"], *ids(sp["children"])]]

    journey["spans"].append(browser_span(max(ids(journey["spans"])) + 1))
    journey["total_ms"] = 1160.0
    (DATA / "journey_browser.json").write_text(
        json.dumps(journey, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
