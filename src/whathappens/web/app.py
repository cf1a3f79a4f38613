"""The live page's server: a small ASGI application (served by hypercorn).

Routes
    GET  /                      the page (static HTML; the URL box and an empty journey)
    GET  /static/NAME           its script, styles and icon, all from this package
    POST /api/journey           {"url": "..."} → a text/event-stream of the journey, live
    GET  /journeys/ID.EXT       the finished journey as json, har or a self-contained html

The stream sends ``start``, one ``step`` per finished step (url, dns, tcp, tls, http, leg) and,
inside DNS, one ``detail`` per resolver question and walk hop as it ends,
a ``tls-compare`` step when measured, then ``report`` (the sections, rendered and escaped by
render/html.py) and ``end``; or ``refused`` when the journey may not run.

Why POST with a JSON body: a cross-site page cannot send one without a CORS preflight, which
this server never grants, so another site cannot make a visitor's browser start journeys here.
The Host header is checked too (DNS rebinding onto 127.0.0.1 would otherwise reach us).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from whathappens.journey import Journey, Span
from whathappens.render.visible import escape_json, visible_tree
from whathappens.web.events import (
    DETAIL_SPANS,
    LIVE_SPANS,
    compare_event,
    detail_event,
    step_event,
)
from whathappens.web.gate import Gate

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The page's own policy: nothing inline, nothing from elsewhere (the report's bars are placed
# by app.js from data-* attributes; CSSOM writes are not inline style).
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
MAX_URL = 2048          # longer than any URL a person types; bounds what we echo back
MAX_REQUEST_BODY = 8192
KEEP_JOURNEYS = 32      # finished journeys kept for download, oldest dropped first

RunJourney = Callable[[str, Journey], Awaitable[Journey]]


@dataclass
class ServeConfig:
    run: RunJourney                     # runs one journey (options decided by the command)
    public: bool = False
    allowed_hosts: frozenset[str] = frozenset()   # Host header values accepted; empty: any
    gate: Gate = field(default_factory=Gate)
    compare_tls: Callable[[Journey], Awaitable[dict[str, Any] | None]] | None = None
    example_url: str = "https://www.example.com/"
    mode_note: str = ""
    # Behind a reverse proxy every visitor arrives from the proxy's address: with this set
    # (e.g. "x-forwarded-for"), the gate counts the address the proxy appended instead.
    client_header: str | None = None


def _static(name: str) -> bytes:
    return resources.files("whathappens.web").joinpath("static", name).read_bytes()


class WebApp:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.journeys: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._page: bytes | None = None

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if not self._host_ok(headers.get("host", "")):
            await self._text(send, 421, "this server answers only to its own address "
                             "(the Host header names another site)")
            return
        method, path = scope["method"], scope["path"]
        if path == "/" and method in ("GET", "HEAD"):
            await self._send(send, 200, self.page(), "text/html; charset=utf-8",
                             head=method == "HEAD")
        elif path.startswith("/static/") and method in ("GET", "HEAD"):
            name = path.removeprefix("/static/")
            if name not in STATIC:
                await self._text(send, 404, "not found")
                return
            data = self.stylesheet() if name == "page.css" else _static(name)
            await self._send(send, 200, data, STATIC[name], head=method == "HEAD",
                             cache=b"no-cache")
        elif path == "/api/journey":
            if method != "POST":
                await self._text(send, 405, "POST a JSON body {\"url\": \"...\"}",
                                 extra=[(b"allow", b"POST")])
                return
            await self.journey_stream(scope, headers, receive, send)
        elif path.startswith("/journeys/") and method == "GET":
            await self.download(path.removeprefix("/journeys/"), send)
        else:
            await self._text(send, 404, "not found")

    def _host_ok(self, host: str) -> bool:
        return not self.config.allowed_hosts or host.lower() in self.config.allowed_hosts

    # ------------------------------------------------------------- responses
    async def _send(self, send: Send, status: int, body: bytes, ctype: str, *,
                    head: bool = False, cache: bytes = b"no-store",
                    extra: list[tuple[bytes, bytes]] | None = None,
                    csp: str = PAGE_CSP) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", cache), (b"content-security-policy", csp.encode()),
            *SECURITY_HEADERS, *(extra or [])]})
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _text(self, send: Send, status: int, text: str,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await self._send(send, status, (text + "\n").encode(), "text/plain; charset=utf-8",
                         extra=extra)

    def page(self) -> bytes:
        if self._page is None:
            from whathappens.render.html import esc

            html = _static("index.html").decode()
            html = (html.replace("{{example_url}}", esc(self.config.example_url))
                        .replace("{{mode_note}}", esc(self.config.mode_note)))
            self._page = html.encode()
        return self._page

    def stylesheet(self) -> bytes:
        from whathappens.render.html import CSS

        return (CSS + "\n" + _static("page.css").decode()).encode()

    # ---------------------------------------------------------------- stream
    async def _read_body(self, receive: Receive) -> bytes | None:
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body += bytes(msg.get("body", b""))
            if len(body) > MAX_REQUEST_BODY:
                return b""
            if not msg.get("more_body"):
                return body

    def _url_from(self, body: bytes) -> str | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        url = data.get("url") if isinstance(data, dict) else None
        return url.strip() if isinstance(url, str) else None

    async def journey_stream(self, scope: Scope, headers: dict[str, str], receive: Receive,
                             send: Send) -> None:
        site = headers.get("sec-fetch-site")
        if site not in (None, "same-origin", "none"):
            await self._text(send, 403, "journeys can only be started from this page")
            return
        if not headers.get("content-type", "").startswith("application/json"):
            await self._text(send, 415, "send the URL as JSON: {\"url\": \"...\"}")
            return
        body = await self._read_body(receive)
        if body is None:
            return
        url = self._url_from(body)
        if not url:
            await self._text(send, 400, "send the URL as JSON: {\"url\": \"https://...\"}")
            return
        if len(url) > MAX_URL:
            await self._text(send, 400, f"the URL is longer than {MAX_URL} characters")
            return
        client = self.client_of(scope, headers)
        refused = self.config.gate.enter(client)
        if refused is not None:
            await self._events(send, 429, [("refused", {"message": refused})])
            return
        try:
            await self._run_stream(url, receive, send)
        finally:
            self.config.gate.leave(client)

    def client_of(self, scope: Scope, headers: dict[str, str]) -> str:
        """Who the gate counts: the peer, or the right-most entry of the proxy's header
        (the one our own proxy appended; entries to its left are the client's say-so)."""
        peer = str((scope.get("client") or ("unknown", 0))[0])
        name = self.config.client_header
        if name:
            value = headers.get(name.lower(), "").split(",")[-1].strip()
            if value:
                return value[:64]
        return peer

    async def _events(self, send: Send, status: int, events: list[tuple[str, Any]]) -> None:
        await self._start_stream(send, status)
        for kind, data in events:
            await send({"type": "http.response.body", "body": _sse(kind, data),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _start_stream(self, send: Send, status: int) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no"),
            (b"content-security-policy", PAGE_CSP.encode()), *SECURITY_HEADERS]})

    async def _run_stream(self, url: str, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        legs: list[int] = []

        def listener(span: Span) -> None:
            if span.name in DETAIL_SPANS:
                item = ("detail", detail_event(span.to_dict(), len(legs)))
            elif span.name in LIVE_SPANS:
                if span.name == "leg":
                    legs.append(int(span.attrs.get("index", len(legs))))
                    leg: int | None = legs[-1]
                else:
                    leg = len(legs) if span.name != "url" else None
                item = ("step", step_event(span.to_dict(), leg))
            else:
                return
            # Spans can end on a resolver thread: hand the event to the loop safely.
            loop.call_soon_threadsafe(queue.put_nowait, item)

        journey = Journey(url=url, listener=listener)

        async def produce() -> None:
            try:
                await journey_then_report()
            except Exception as exc:  # a bug of ours: say so on the page, no traceback
                await queue.put(("failed", {"message": f"whathappens met an unexpected "
                                            f"condition ({type(exc).__name__}: {exc}); this "
                                            "is a bug, please report it"}))
                await queue.put(("end", {"exit_code": 10}))

        async def journey_then_report() -> None:
            done = await self.config.run(url, journey)
            done.listener = None
            if self.config.compare_tls is not None and done.error is None:
                await queue.put(("step", {"step": "tls-compare", "title": "TLS 1.2 vs 1.3",
                                          "summary": "measuring fresh TLS 1.2 and 1.3 "
                                                     "handshakes…",
                                          "pending": True}))
                result = await self.config.compare_tls(done)
                if result is not None:
                    await queue.put(("step", compare_event(result)))
            await queue.put(("report", self.finish(done)))
            await queue.put(("end", {"exit_code": done.exit_code}))

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        await self._start_stream(send, 200)
        await send({"type": "http.response.body", "more_body": True,
                    "body": _sse("start", {"url": url, "public": self.config.public})})
        producer = asyncio.create_task(produce())
        watcher = asyncio.create_task(watch_disconnect())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, watcher, producer},
                                   return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    if watcher.done():
                        return  # the reader went away: stop the journey (finally)
                    if producer.done() and queue.empty():
                        producer.result()  # re-raise a bug of ours
                        break
                    continue
                kind, data = getter.result()
                await send({"type": "http.response.body", "body": _sse(kind, data),
                            "more_body": True})
                if kind == "end":
                    break
            await send({"type": "http.response.body", "body": b""})
        finally:
            for task in (producer, watcher):
                task.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)

    def finish(self, journey: Journey) -> dict[str, Any]:
        """Keep the finished journey for download and render the page's sections."""
        from whathappens.render.html import HtmlReport

        data = journey.to_dict()
        ident = secrets.token_urlsafe(12)
        self.journeys[ident] = data
        while len(self.journeys) > KEEP_JOURNEYS:
            self.journeys.popitem(last=False)
        report = HtmlReport(data, inline_style=False)
        return {"id": ident, "html": report.body() + report.footer(), "nav": report.nav(),
                "exit_code": journey.exit_code,
                "error": None if journey.error is None else visible_tree(
                    journey.error.to_dict()),
                "total_ms": data.get("total_ms")}

    # -------------------------------------------------------------- download
    async def download(self, name: str, send: Send) -> None:
        ident, _, ext = name.rpartition(".")
        data = self.journeys.get(ident)
        if data is None or ext not in ("json", "har", "html"):
            await self._text(send, 404, "no such journey (only the last "
                             f"{KEEP_JOURNEYS} are kept)")
            return
        disposition = f"attachment; filename=\"journey-{ident}.{ext}\"".encode()
        if ext == "html":
            from whathappens.render.html import CSP, render_html

            await self._send(send, 200, render_html(data).encode(), "text/html; charset=utf-8",
                             csp=CSP, extra=[(b"content-disposition", disposition)])
            return
        if ext == "har":
            from whathappens.render.har import to_har

            body = escape_json(json.dumps(to_har(data), indent=2, ensure_ascii=False))
        else:
            body = escape_json(json.dumps(data, indent=2, ensure_ascii=False))
        await self._send(send, 200, body.encode(), "application/json; charset=utf-8",
                         extra=[(b"content-disposition", disposition)])


def _sse(kind: str, data: Any) -> bytes:
    """One server-sent event (HTML Living Standard §9.2): JSON on one data line. Every string
    in it is made visible (render/visible.py) — a backstop behind events.py and the HTML
    report, which already show control characters as escapes; TAB, LF and CR are kept, the
    report's ``<pre>`` blocks need them and the DOM lays them out as whitespace."""
    shown = visible_tree(data, keep_layout=True)
    return f"event: {kind}\ndata: {json.dumps(shown, ensure_ascii=False)}\n\n".encode()
