"""The web site of www.example.com in the demo internet: a small ASGI app, no framework.

What a tracer (or a browser) finds there:

    http://…/anything      301 to https://www.example.com/anything (same path and query)
    /                      the HTML page; waits the server's think time first
    /static/…, /api/banner the page's files (demo/page.py), each after its own injected
                           delay; static ones public and immutable for a day, the API
                           private and no-store
    /echo                  the request as the server saw it, as JSON
    /redirect/N            N redirects (relative Location), then /
    /loop                  redirects to itself
    /big?bytes=N           N bytes of body (at most 512 MiB), streamed
    /gzip-bomb             ~200 KB of gzip that inflates to 200 MiB
    /slow?ms=N             answers after N ms (at most 60 s)
    /status/N              answers with status N

Caching (RFC 9111): the page is ``public, max-age=60, s-maxage=300,
stale-while-revalidate=30``, every file has an ETag and a Last-Modified (the site's start), and
a conditional GET or HEAD gets 304 Not Modified when its validator matches: If-None-Match
first, If-Modified-Since only without it (RFC 9110 §13.2.2).

Text is compressed by Accept-Encoding, br preferred over gzip, with Content-Length and
``Vary: Accept-Encoding``. Every https response carries Strict-Transport-Security and a
Server-Timing header with the time the app spent, and the security headers of
SECURITY_HEADERS (RFC 9110 does the rest; hypercorn adds Date and Server).
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import hashlib
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import brotli

from whathappens.demo.page import PageFile, build_page

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

CANONICAL_HOST = "www.example.com"
# An hour only: a real browser pointed at the demo must not remember HSTS for the real
# example.com for long.
HSTS = b"max-age=3600"
SESSION_COOKIE = b"demo_session=1; Path=/; Secure; HttpOnly; SameSite=Lax"
# A strong but plausible set on every https response (analysis/security.py grades it: A-).
# Two things are as a real site often has them, so the grade has something to teach: the
# one-hour HSTS above (short for the reason given there) and an old Referrer-Policy that
# still sends the full URL to other https sites. style-src keeps 'unsafe-inline' (loose
# styles cost nothing in the grade, and the report says how to drop it).
SECURITY_HEADERS: Headers = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer-when-downgrade"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
MAX_BIG = 512 * 1024 * 1024
MAX_SLOW_MS = 60_000
MAX_REDIRECTS = 50
BOMB_SIZE = 200 * 1024 * 1024
CHUNK = 64 * 1024
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml",
              "font/ttf")
BIG = 64 * 1024  # above this, brotli at a quicker level: startup stays fast


@dataclass(frozen=True)
class Asset:
    """A file of the page, with its compressed forms made once at startup."""

    file: PageFile
    etag: bytes
    encoded: dict[str, bytes]

    @classmethod
    def of(cls, file: PageFile) -> Asset:
        body = file.body
        encoded: dict[str, bytes] = {}
        if file.content_type.startswith(TEXT_TYPES):
            quality = 5 if len(body) > BIG else 11
            encoded = {"br": brotli.compress(body, quality=quality),
                       "gzip": gzip.compress(body, mtime=0)}
        etag = b'"' + hashlib.sha256(body).hexdigest()[:16].encode() + b'"'
        return cls(file, etag, encoded)


class Site:
    """The ASGI application serving the demo site.

    ``think_ms`` is the page's injected wait; ``page_delays`` (ms by the keys of
    ``topology.PAGE_DELAYS_MS``, missing ones 0) those of the page's other files; ``font``
    the TTF the page's headings use (``page.find_font()``), None for none.
    """

    def __init__(self, *, https_port: int, think_ms: float,
                 page_delays: Mapping[str, float] | None = None,
                 font: Path | None = None) -> None:
        self.https_port = https_port
        self.think = think_ms / 1000
        self.page_delays = dict(page_delays or {})
        self.font = font
        files = build_page(self.page_delays, self.font)
        self.assets = {path: Asset.of(f) for path, f in files.items()}
        self.assets["/index.html"] = self.assets["/"]
        self._bomb: bytes | None = None
        # Every file was made now: its Last-Modified, in whole seconds as HTTP-dates are.
        self.modified = int(time.time())
        self.last_modified = email.utils.formatdate(self.modified, usegmt=True).encode()

    def delay(self, path: str) -> float:
        """Seconds the server waits before answering ``path`` (0 for most paths)."""
        asset = self.assets.get(path)
        if asset is None:
            return 0.0
        key = asset.file.delay_key
        return self.think if key is None else self.page_delays.get(key, 0.0) / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            started = time.perf_counter()
            await self._http(_Request(scope), send, started)

    async def _http(self, req: _Request, send: Send, started: float) -> None:
        if req.scheme == "http":
            await _respond(send, 301, [(b"location", self._https_url(req.target).encode())], req)
            return
        if req.host == "example.com":  # the apex is only a way to www
            await _respond(send, 301, [(b"location", self._https_url(req.target).encode())], req)
            return
        if req.method not in ("GET", "HEAD"):
            await _respond(send, 405, [(b"allow", b"GET, HEAD")], req, b"method not allowed\n")
            return
        path = req.path
        injected = self.delay(path)
        if injected:
            await asyncio.sleep(injected)  # the injected think time or delay, reported below
        timing = [(b"server-timing", _server_timing(started, injected or None))]
        if path in self.assets:
            await self._asset(req, send, self.assets[path], timing)
        elif path.startswith("/redirect/"):
            n = _int(path.removeprefix("/redirect/"), 1, MAX_REDIRECTS)
            if n is None:
                await _respond(send, 400, timing, req, b"bad redirect count\n")
                return
            location = b"/" if n == 1 else f"/redirect/{n - 1}".encode()
            await _respond(send, 302, [(b"location", location), *timing], req)
        elif path == "/loop":
            await _respond(send, 302, [(b"location", b"/loop"), *timing], req)
        elif path == "/big":
            size = _int(req.query("bytes", "1048576"), 0, MAX_BIG)
            if size is None:
                await _respond(send, 400, timing, req, b"bytes must be 0..512 MiB\n")
                return
            headers = [(b"content-type", b"application/octet-stream"), *timing]
            await _stream_zeros(send, size, headers, req)
        elif path == "/gzip-bomb":
            if self._bomb is None:
                self._bomb = await asyncio.to_thread(gzip_bomb, BOMB_SIZE)
            headers = [(b"content-type", b"text/html; charset=utf-8"),
                       (b"content-encoding", b"gzip"), *timing]
            await _respond(send, 200, headers, req, self._bomb)
        elif path == "/slow":
            wait = _int(req.query("ms", "1000"), 0, MAX_SLOW_MS)
            if wait is None:
                await _respond(send, 400, timing, req, b"ms must be 0..60000\n")
                return
            await asyncio.sleep(wait / 1000)
            await _respond(send, 200, _text(timing), req, f"waited {wait} ms\n".encode())
        elif path.startswith("/status/"):
            code = _int(path.removeprefix("/status/"), 200, 599)
            if code is None:
                await _respond(send, 400, timing, req, b"status must be 200..599\n")
                return
            await _respond(send, code, _text(timing), req, f"status {code}\n".encode())
        elif path == "/echo":
            body = json.dumps(req.echo(), indent=2).encode() + b"\n"
            headers = [(b"content-type", b"application/json"),
                       (b"cache-control", b"private, no-store")]
            await _respond(send, 200, [*headers, *timing], req, body)
        else:
            await _respond(send, 404, _text(timing), req, b"not found\n")

    async def _asset(self, req: _Request, send: Send, asset: Asset, extra: Headers) -> None:
        is_page = asset is self.assets["/"]
        headers: Headers = [
            (b"content-type", asset.file.content_type.encode()),
            (b"etag", asset.etag),
            (b"cache-control", asset.file.cache_control.encode()),
            *extra,
        ]
        if "no-store" not in asset.file.cache_control:
            headers.append((b"last-modified", self.last_modified))
        if is_page:
            headers.append((b"set-cookie", SESSION_COOKIE))
        if asset.encoded:
            headers.append((b"vary", b"Accept-Encoding"))
        if not_modified(req.header("if-none-match"), req.header("if-modified-since"),
                        asset.etag.decode(), self.modified):
            await _respond(send, 304, headers, req)
            return
        body = asset.file.body
        coding = _choose_encoding(req.header("accept-encoding"), asset.encoded)
        if coding:
            body = asset.encoded[coding]
            headers.append((b"content-encoding", coding.encode()))
        await _respond(send, 200, headers, req, body)

    def _https_url(self, target: str) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{CANONICAL_HOST}{port}{target}"


class _Request:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.scheme: str = scope["scheme"]
        self.path: str = scope["path"]
        self._query = parse_qs(scope["query_string"].decode("latin-1"))
        raw = scope.get("raw_path") or scope["path"].encode()
        qs = scope["query_string"]
        self.target = raw.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.host = (self.header("host") or self.header(":authority")).split(":")[0].lower()

    def header(self, name: str) -> str:
        key = name.encode()
        for k, v in self.headers:
            if k == key:
                return v.decode("latin-1")
        return ""

    def query(self, name: str, default: str) -> str:
        values = self._query.get(name)
        return values[0] if values else default

    def echo(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "scheme": self.scheme,
            "http_version": self.scope["http_version"],
            "target": self.target,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "client": list(self.scope.get("client") or []),
        }


async def _respond(
    send: Send, status: int, headers: Iterable[tuple[bytes, bytes]], req: _Request,
    body: bytes = b"",
) -> None:
    out: Headers = list(headers)
    if req.scheme == "https":
        out.append((b"strict-transport-security", HSTS))
        out += SECURITY_HEADERS
    if status not in (204, 304):
        out.append((b"content-length", str(len(body)).encode()))
    else:
        body = b""
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body",
                "body": b"" if req.method == "HEAD" else body})


async def _stream_zeros(send: Send, size: int, headers: Headers, req: _Request) -> None:
    out = [*headers, (b"content-length", str(size).encode()),
           (b"strict-transport-security", HSTS)]
    await send({"type": "http.response.start", "status": 200, "headers": out})
    left = 0 if req.method == "HEAD" else size
    zeros = bytes(CHUNK)
    while left > CHUNK:
        await send({"type": "http.response.body", "body": zeros, "more_body": True})
        left -= CHUNK
    await send({"type": "http.response.body", "body": zeros[:left]})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def not_modified(if_none_match: str, if_modified_since: str, etag: str,
                 modified: int) -> bool:
    """Whether a GET/HEAD's preconditions say the client's copy is current (RFC 9110 §13.2.2):
    If-None-Match when present (weak comparison, ``*`` matches, §13.1.2), else
    If-Modified-Since (a valid date no earlier than Last-Modified, §13.1.3)."""
    if if_none_match.strip():
        tags = [t.strip() for t in if_none_match.split(",")]
        mine = etag.removeprefix("W/")
        return any(t == "*" or t.removeprefix("W/") == mine for t in tags)
    if if_modified_since.strip():
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError, OverflowError):
            return False  # an invalid date: the field is ignored (§13.1.3)
        return since.timestamp() >= modified
    return False


def _choose_encoding(accept: str, available: dict[str, bytes]) -> str | None:
    """br if acceptable, else gzip, else none (RFC 9110 §12.5.3, q=0 means "not this")."""
    if not available:
        return None
    q: dict[str, float] = {}
    for item in accept.split(","):
        coding, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            q[coding.strip().lower()] = weight
    for coding in ("br", "gzip"):
        if q.get(coding, q.get("*", 0.0)) > 0 and coding in available:
            return coding
    return None


def gzip_bomb(size: int) -> bytes:
    """A gzip member that inflates to ``size`` zero bytes (a multiple of 1 MiB).

    After a full flush, deflate starts afresh with no history, so every further MiB of zeros
    compresses to the same bytes: compress one MiB once and repeat it, instead of pushing
    200 MiB through zlib. The trailer still needs the CRC-32 of the whole (RFC 1952 §2.3.1).
    """
    mib = bytes(1 << 20)
    count = max(1, size >> 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(mib) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(mib) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(mib, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = crc.to_bytes(4, "little") + ((count << 20) & 0xFFFFFFFF).to_bytes(4, "little")
    return header + first + again * (count - 1) + end + trailer


def _server_timing(started: float, think: float | None) -> bytes:
    """``app`` is the time the app spent; ``think`` the injected part of it (if any)."""
    app = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    if think is None:
        return app.encode()
    return f'think;dur={think * 1000:.1f};desc="injected delay", {app}'.encode()


def _text(headers: Headers) -> Headers:
    return [(b"content-type", b"text/plain; charset=utf-8"), *headers]


def _int(text: str, low: int, high: int) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if low <= value <= high else None


async def serve_site(
    app: Site,
    *,
    binds: Iterable[str],
    insecure_binds: Iterable[str] = (),
    quic_binds: Iterable[str] = (),
    chain: Path,
    key: Path,
    shutdown: asyncio.Event,
) -> None:
    """Serve ``app`` over TLS (h2 and http/1.1 by ALPN) until ``shutdown`` is set; on
    ``quic_binds`` (UDP) also HTTP/3, through aioquic, which hypercorn then advertises on
    every response with ``Alt-Svc: h3=":PORT"; ma=3600`` (RFC 7838), and whose QUIC
    connections keep session tickets (demo/quic_tickets.py: resumption and 0-RTT)."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = list(binds)
    config.insecure_bind = list(insecure_binds)
    config.quic_bind = list(quic_binds)
    if config.quic_bind:
        # hypercorn issues no session tickets: keep them, so HTTP/3 can resume with 0-RTT.
        from whathappens.demo.quic_tickets import keep_tickets

        keep_tickets()
        # One Alt-Svc for the port, not one per bound address (hypercorn's default).
        port = config.quic_bind[0].rsplit(":", 1)[1]
        config.alt_svc_headers = [f'h3=":{port}"; ma=3600']
    config.certfile = str(chain)
    config.keyfile = str(key)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 0.5  # a demo need not wait long for idle keep-alive clients
    await serve(app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
