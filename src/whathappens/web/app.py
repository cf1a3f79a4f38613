"""The live page's server: a small ASGI application (served by hypercorn).

Routes
    GET  /                      the page (static HTML; the URL box and an empty journey)
    GET  /static/NAME           its script, styles and icon, all from this package
    POST /api/journey           {"url": "..."} → a text/event-stream of the journey, live
                                (with "compare_http": true, then HTTP/1.1 vs 2 vs 3 too)
    GET  /journeys/ID.EXT       the finished journey as json, har or a self-contained html
    GET  /dashboard             the lab's metrics, plotted live (serve --lab, lab up --metrics)
    GET  /api/metrics?seconds=N their last N seconds as JSON, asked of Prometheus here, server-side

The stream sends ``start``, one ``step`` per finished step (url, dns, tcp, tls, http, leg) and,
inside DNS, one ``detail`` per resolver question and walk hop as it ends,
a ``tls-compare`` step when measured, an ``http-compare`` step when asked for (the page's
checkbox, when the server offers it), then ``report`` (the sections, rendered and escaped by
render/html.py) and ``end``; or ``refused`` when the journey may not run.

Why POST with a JSON body: a cross-site page cannot send one without a CORS preflight, which
this server never grants, so another site cannot make a visitor's browser start journeys here.
The Host header is checked too (DNS rebinding onto 127.0.0.1 would otherwise reach us).

Clients that misbehave (see command.py for the limits hypercorn and the listening socket apply
before a request reaches us): the request body has a size cap and a deadline
(``MAX_REQUEST_BODY``, ``BODY_TIMEOUT``); every send to the client has a deadline
(``ServeConfig.send_timeout``), so a client that stops reading its event stream is dropped, its
journey cancelled and its slot in the gate freed; events wait for the sender in a bounded queue
(``STREAM_QUEUE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from whathappens.errors import EXIT_INTERNAL
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
from whathappens.web.http_compare_events import http_compare_event, pending_event

if TYPE_CHECKING:
    from whathappens.contract.document import HttpCompare

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
    "dashboard.js": "text/javascript; charset=utf-8",
}
MAX_URL = 2048          # longer than any URL a person types; bounds what we echo back
KEEP_JOURNEYS = 32      # finished journeys kept for download, oldest dropped first
# ... and at most this many bytes of them, kept as compact JSON (as Python objects they took
# 1.3 times more): a journey with every redirect carrying 40 KB of headers is 0.9 MB, and
# anyone may start journeys.
KEEP_BYTES = 32 * 1024 * 1024
# The page's body is {"url": "..."} with a URL of at most MAX_URL characters: 8 KiB is room to
# spare. A larger Content-Length is refused (413) before a byte of the body is read.
MAX_REQUEST_BODY = 8192
# From the end of the request head to the end of its body. hypercorn bounds the head (its idle
# timer runs from the connection's start until a head is complete) but not the body: a client
# that sends a Content-Length and then a byte a minute, or a chunked body that never ends, would
# hold its connection and our handler for ever. A browser sends these few bytes at once.
BODY_TIMEOUT = 10.0
# Each send to the client (a response head, a piece of a page, one event) must be taken within
# this many seconds. hypercorn's send waits while its transport holds more than 64 KiB that the
# client has not taken (asyncio's high-water mark): it never buffers without bound, but it waits
# for ever — and a journey stream waiting for ever holds its slot in the gate. A browser that
# is still there takes every byte at once, even from a background tab.
SEND_TIMEOUT = 20.0
# Events waiting for the sender. A journey emits a few dozen per leg (steps and DNS details),
# a few hundred at most with every redirect taken; more waiting means the client is not taking
# them, and it is dropped like one whose send timed out.
STREAM_QUEUE = 1024

RunJourney = Callable[[str, Journey], Awaitable[Journey]]
# --compare-http after a journey: the comparison, or None and why not.
CompareHttp = Callable[[Journey], Awaitable[tuple["HttpCompare | None", str]]]


class _Feed:
    """One stream's events, from the journey (on whatever thread a span ends) to the sender:
    bounded, and a reader too slow to keep up is dropped, not buffered for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(STREAM_QUEUE)
        self.overflowed = False
        self.legs: list[int] = []

    def offer(self, item: tuple[str, Any]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True  # the sender drops the client at its next turn

    def listener(self, span: Span[Any]) -> None:
        """The journey's listener: each finished span the page shows becomes an event."""
        if span.name in DETAIL_SPANS:
            item = ("detail", detail_event(span.to_dict(), len(self.legs)))
        elif span.name in LIVE_SPANS:
            if span.name == "leg":
                self.legs.append(span.facts.index)
                leg: int | None = self.legs[-1]
            else:
                leg = len(self.legs) if span.name != "url" else None
            item = ("step", step_event(span.to_dict(), leg))
        else:
            return
        # Spans can end on a resolver thread: hand the event to the loop safely.
        self.loop.call_soon_threadsafe(self.offer, item)

    async def pump(self, send: Send, producer: asyncio.Task[None],
                   watcher: asyncio.Task[None]) -> bool:
        """Send events until the last; False when the reader went away first."""
        while True:
            getter = asyncio.ensure_future(self.queue.get())
            await asyncio.wait({getter, watcher, producer}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                if watcher.done():
                    return False  # the reader went away: the caller stops the journey
                if producer.done() and self.queue.empty():
                    producer.result()  # re-raise a bug of ours
                    return True
                continue
            kind, data = getter.result()
            if self.overflowed:
                raise ClientTooSlow
            await send({"type": "http.response.body", "body": _sse(kind, data),
                        "more_body": True})
            if kind == "end":
                return True


@dataclass
class ServeConfig:
    run: RunJourney                     # runs one journey (options decided by the command)
    public: bool = False
    allowed_hosts: frozenset[str] = frozenset()   # Host header values accepted; empty: any
    gate: Gate = field(default_factory=Gate)
    compare_tls: Callable[[Journey], Awaitable[dict[str, Any] | None]] | None = None
    # Offered on the page as a checkbox; run only for journeys that ask (nine more requests).
    compare_http: CompareHttp | None = None
    example_url: str = "https://www.example.com/"
    mode_note: str = ""
    # Behind a reverse proxy every visitor arrives from the proxy's address: with this set
    # (e.g. "x-forwarded-for"), the gate counts the address the proxy appended instead.
    client_header: str | None = None
    send_timeout: float = SEND_TIMEOUT
    # The lab's metrics for the dashboard: seconds → JSON (lab/metrics_command.py); None
    # without a lab. Blocking (it asks Prometheus): run on a thread.
    metrics: Callable[[int], dict[str, Any]] | None = None


TOO_LARGE = (f"the request body is larger than {MAX_REQUEST_BODY} bytes; "
             "send the URL as JSON: {\"url\": \"...\"}")


class BadBody(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class ClientTooSlow(Exception):
    """The client did not take what we sent within the send timeout, or let its events pile up:
    the request is abandoned (hypercorn closes the connection; the kernel drops it if the client
    still takes nothing, see command.py)."""


class Exchange:
    """One request's ``receive`` and ``send``, with the deadlines hypercorn does not have.

    ``send`` fails with ClientTooSlow when the client takes nothing for ``timeout`` seconds.
    The last message of a response is sent while draining what is left of the request body:
    hypercorn queues at most 10 body messages for the app, then its reader waits, and when the
    response ends it queues one more (the disconnect) from inside that send — with the queue
    full and nobody receiving, the put waits for ever and the connection is never closed
    (reproduced with hypercorn 0.18: an app that pauses, then answers a 2 MB upload it did not
    read, never returns). Our refusals answer before yielding, so the queue is not full then
    today; this keeps it so whatever a handler awaits first.
    """

    def __init__(self, receive: Receive, send: Send, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self.timeout = timeout
        self.body_done = False

    async def receive(self) -> Message:
        msg = await self._receive()
        if msg["type"] == "http.disconnect" or (msg["type"] == "http.request"
                                                and not msg.get("more_body")):
            self.body_done = True
        return msg

    async def send(self, msg: Message) -> None:
        last = msg["type"] == "http.response.body" and not msg.get("more_body")
        drain = (asyncio.create_task(self._discard_body())
                 if last and not self.body_done else None)
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(msg)
        except TimeoutError:
            raise ClientTooSlow from None
        finally:
            if drain is not None:
                drain.cancel()

    async def _discard_body(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass


def _static(name: str) -> bytes:
    return resources.files("whathappens.web").joinpath("static", name).read_bytes()


class WebApp:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.journeys: OrderedDict[str, bytes] = OrderedDict()  # id → the journey's JSON
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
        exchange = Exchange(receive, send, self.config.send_timeout)
        # A client too slow to take our bytes: nothing more to say to it; hypercorn closes
        # the connection once we return.
        with contextlib.suppress(ClientTooSlow):
            await self.handle(scope, exchange.receive, exchange.send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        elif path in ("/dashboard", "/api/metrics") and method in ("GET", "HEAD"):
            await self.dashboard(scope, send)
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
                        .replace("{{mode_note}}", esc(self.config.mode_note))
                        .replace("{{compare_http_hidden}}",
                                 "" if self.config.compare_http else " hidden"))
            self._page = html.encode()
        return self._page

    def stylesheet(self) -> bytes:
        from whathappens.render.html import CSS

        return (CSS + "\n" + _static("page.css").decode()).encode()

    # ---------------------------------------------------------------- stream
    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes | None:
        """The request body, or None when the client went away; BadBody when it is too large
        or too slow to arrive."""
        length = headers.get("content-length", "").strip()
        # h11 has checked it is digits; its length is checked first so that int() never
        # meets a 5000-digit number.
        if len(length) > 9 or (length and int(length) > MAX_REQUEST_BODY):
            raise BadBody(413, TOO_LARGE)
        body = bytearray()
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return None
                    body += msg.get("body", b"")
                    if len(body) > MAX_REQUEST_BODY:
                        raise BadBody(413, TOO_LARGE)  # chunked: no Content-Length to check
                    if not msg.get("more_body"):
                        return bytes(body)
        except TimeoutError:
            raise BadBody(408, f"the request body did not arrive within {BODY_TIMEOUT:g} s; "
                               "send it at once") from None

    def _url_from(self, body: bytes) -> str | None:
        data = _json_object(body)
        url = data.get("url")
        return url.strip() if isinstance(url, str) else None

    def _wants_http_compare(self, body: bytes) -> bool:
        """``"compare_http": true`` in the body, and this server offers the comparison."""
        return self.config.compare_http is not None and \
            _json_object(body).get("compare_http") is True

    async def journey_stream(self, scope: Scope, headers: dict[str, str], receive: Receive,
                             send: Send) -> None:
        site = headers.get("sec-fetch-site")
        if site not in (None, "same-origin", "none"):
            await self._text(send, 403, "journeys can only be started from this page")
            return
        if not headers.get("content-type", "").startswith("application/json"):
            await self._text(send, 415, "send the URL as JSON: {\"url\": \"...\"}")
            return
        try:
            body = await self._read_body(headers, receive)
        except BadBody as bad:
            await self._text(send, bad.status, bad.text, extra=[(b"connection", b"close")])
            return
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
            await self._run_stream(url, receive, send,
                                   compare_http=self._wants_http_compare(body))
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

    async def _run_stream(self, url: str, receive: Receive, send: Send, *,
                          compare_http: bool = False) -> None:
        feed = _Feed(asyncio.get_running_loop())
        journey = Journey(url=url, listener=feed.listener)

        async def produce() -> None:
            try:
                await journey_then_report()
            except Exception as exc:  # a bug of ours: say so on the page, no traceback
                feed.offer(("failed", {"message": f"whathappens met an unexpected "
                                       f"condition ({type(exc).__name__}: {exc}); this "
                                       "is a bug, please report it"}))
                feed.offer(("end", {"exit_code": EXIT_INTERNAL}))

        async def journey_then_report() -> None:
            done = await self.config.run(url, journey)
            done.listener = None
            if self.config.compare_tls is not None and done.error is None:
                feed.offer(("step", {"step": "tls-compare", "title": "TLS 1.2 vs 1.3",
                                     "summary": "measuring fresh TLS 1.2 and 1.3 handshakes…",
                                     "pending": True}))
                result = await self.config.compare_tls(done)
                if result is not None:
                    feed.offer(("step", compare_event(result)))
            if compare_http and self.config.compare_http is not None and done.error is None:
                feed.offer(("step", pending_event()))
                hc, why_not = await self.config.compare_http(done)
                feed.offer(("step", http_compare_event(hc, why_not)))
            feed.offer(("report", self.finish(done)))
            feed.offer(("end", {"exit_code": done.exit_code}))

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        await self._start_stream(send, 200)
        await send({"type": "http.response.body", "more_body": True,
                    "body": _sse("start", {"url": url, "public": self.config.public})})
        producer = asyncio.create_task(produce())
        watcher = asyncio.create_task(watch_disconnect())
        try:
            if await feed.pump(send, producer, watcher):
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
        self.journeys[ident] = json.dumps(data, ensure_ascii=False).encode()
        while len(self.journeys) > KEEP_JOURNEYS or sum(map(len, self.journeys.values())
                                                        ) > KEEP_BYTES:
            self.journeys.popitem(last=False)
        return {"id": ident, **HtmlReport(data, inline_style=False).live_parts(),
                "exit_code": journey.exit_code,
                "error": None if journey.error is None else visible_tree(
                    journey.error.to_dict()),
                "total_ms": data.get("total_ms")}

    # -------------------------------------------------------------- download
    async def download(self, name: str, send: Send) -> None:
        ident, _, ext = name.rpartition(".")
        kept = self.journeys.get(ident)
        if kept is None or ext not in ("json", "har", "html"):
            await self._text(send, 404, "no such journey (only the last "
                             f"{KEEP_JOURNEYS}, up to {KEEP_BYTES // 2**20} MiB, are kept)")
            return
        data = json.loads(kept)
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

    # -------------------------------------------------------------- dashboard
    async def dashboard(self, scope: Scope, send: Send) -> None:
        """The dashboard page, or its data: the browser never talks to Prometheus."""
        if self.config.metrics is None:
            await self._text(send, 404, "no lab metrics here: run whathappens lab up "
                             "--metrics, then whathappens serve --lab DIR (or lab dashboard)")
            return
        if scope["path"] == "/dashboard":
            await self._send(send, 200, _static("dashboard.html"), "text/html; charset=utf-8",
                             head=scope["method"] == "HEAD")
            return
        seconds = metrics_seconds(scope.get("query_string", b""))
        data = await asyncio.to_thread(self.config.metrics, seconds)
        await self._send(send, 200 if "error" not in data else 503,
                         json.dumps(data).encode(), "application/json",
                         head=scope["method"] == "HEAD")


def metrics_seconds(query: bytes, default: int = 120) -> int:
    """?seconds=N from the query string, bounded to 10..900 (default otherwise)."""
    from urllib.parse import parse_qs

    values = parse_qs(query[:256].decode("latin-1")).get("seconds") or []
    value = values[0] if values else ""
    return max(10, min(int(value), 900)) if value.isdigit() and len(value) < 6 else default


def _json_object(body: bytes) -> dict[str, Any]:
    """The request body's JSON object; empty when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested a few 1000 deep
        return {}
    return data if isinstance(data, dict) else {}


def _sse(kind: str, data: Any) -> bytes:
    """One server-sent event (HTML Living Standard §9.2): JSON on one data line. Every string
    in it is made visible (render/visible.py) — a backstop behind events.py and the HTML
    report, which already show control characters as escapes; TAB, LF and CR are kept, the
    report's ``<pre>`` blocks need them and the DOM lays them out as whitespace."""
    shown = visible_tree(data, keep_layout=True)
    return f"event: {kind}\ndata: {json.dumps(shown, ensure_ascii=False)}\n\n".encode()
