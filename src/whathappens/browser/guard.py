"""The browser's guard: every connection a page makes goes through a vetting proxy of ours.

A page runs code inside our browser, and on ``serve --public`` a stranger chose the page. It
can ask for anything the web platform offers: subresources, fetch/XHR, beacons, prefetches,
WebSockets, workers of every kind, popups, form posts, redirects, WebRTC. Intercepting requests
inside the browser (Playwright's routing, CDP's Fetch domain) misses some of these: measured
here, WebSocket, a SharedWorker's fetch, WebRTC's UDP and bare TCP went past it. What held was
to leave the browser no way out but one:

- ``--proxy-server`` points every HTTP(S) and WebSocket connection at ``VettingProxy``, and
  ``--proxy-bypass-list=<-loopback>`` removes Chromium's implicit bypass for loopback, so
  127.0.0.1 and localhost go through the proxy too;
- ``--host-resolver-rules`` maps every name to ``~NOTFOUND`` except the target (mapped to the
  journey's own address) and the proxy itself: the browser resolves nothing on its own, so
  neither a STUN server's name nor a DNS prefetch reaches a resolver;
- WebRTC may only use proxied connections (``disable_non_proxied_udp``, forced): no UDP at
  all, and TURN over TCP meets the proxy like everything else.

Theory of operation. The proxy listens on 127.0.0.1 on a free port and speaks the two forms
an HTTP proxy is asked in (RFC 9110 §9.3.6, RFC 9112 §3.2.2): ``CONNECT host:port`` for https
and WebSockets (a tunnel), and absolute-form ``GET http://host/path`` for plain http. For each
it resolves the host itself (the target's host is pinned to the address the journey used),
asks the tracer's own address policy (``whathappens.guard``) about every address, and connects
to exactly a vetted address, so there is no window for DNS rebinding between the check and the
connect. What it refuses it records as a ``Refusal`` ("the page asked for X; refused: why"),
for the report. One proxy serves one page and enforces that page's ``PageBudget``: its time,
the requests it may make, the bytes it may move, the connections it may hold at once and the
size of a request head. A plain-http request is forwarded alone (``Connection: close`` both
ways), so a second request on the same connection cannot ride a vetted one to another host.

``hardening_args`` are the Chromium switches above; ``CONTEXT_OPTIONS`` are the Playwright
context options that go with them (downloads off).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from whathappens.guard import parse_address

Policy = Callable[[str], str | None]
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Playwright's context options for a hardened page: nothing is saved to disk. (Service workers
# are left on: what they fetch goes through the proxy like the rest, and a page that needs one
# still works; pass service_workers="block" as well to refuse them outright.)
CONTEXT_OPTIONS: dict[str, Any] = {"accept_downloads": False}

_READ = 64 * 1024
# Refusals kept one by one; past this many a page's further refusals are only counted (a page
# may be refused a million times within its time budget).
MAX_RECORDED = 500
# Below 1024 a page may reach only the web's own ports (the journey's target keeps its port):
# Chromium refuses most other low ports for http(s) and ws(s) itself (its "unsafe ports"),
# but not for a TURN server reached over TCP through the proxy.
WEB_PORTS = frozenset({80, 443})
# Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own, not forwarded to the origin.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
                         b"proxy-authenticate", b"te", b"trailer", b"upgrade"})


@dataclass(frozen=True)
class PageBudget:
    """What one page may use of the proxy. Defaults fit a public page on ``serve --public``."""

    max_time: float = 30.0                 # from the proxy's start, seconds; then all is cut
    max_requests: int = 256                # tunnels and plain-http requests (HTTP/2 carries
    #                                        many requests in one tunnel: bytes bound those)
    max_bytes: int = 32 * 1024 * 1024      # both directions, every connection together
    max_connections: int = 32              # open at once
    max_header_bytes: int = 16 * 1024      # one request head (and a plain-http response head)
    connect_timeout: float = 10.0          # one upstream connect, DNS included
    head_timeout: float = 10.0             # from a client's connection to its request head


@dataclass(frozen=True)
class Refusal:
    """A request the proxy did not carry out, or a connection it cut."""

    at_ns: int          # time.monotonic_ns(), the journey's clock
    method: str         # CONNECT, GET, POST, ...
    target: str         # what the page asked for: host:port (a tunnel) or the URL (plain http)
    reason: str
    host: str = ""      # the host and port asked for, when the request got that far
    port: int = 0

    def __str__(self) -> str:
        if self.method == "-":  # refused before a host was named (a bad head, too many)
            return f"the page's {self.target} was refused: {self.reason}"
        return f"the page asked for {self.target}; refused: {self.reason}"


@dataclass(frozen=True)
class Passage:
    """A request the proxy carried out: to which vetted address."""

    at_ns: int
    method: str
    target: str
    address: str
    port: int


@dataclass(frozen=True)
class ProxyRequest:
    """A request head as a proxy is asked: the method, the host and port to reach, and for
    plain http the head to send the origin (origin-form, hop-by-hop headers dropped)."""

    method: str
    host: str
    port: int
    target: str
    forward: bytes = b""            # plain http only: the head for the origin server
    body_length: int = 0            # plain http only: Content-Length


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, port = authority.split(":")
    else:
        host, port = authority, ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise BadRequest(400, f"'{authority}' has no valid port")
    if not host:
        raise BadRequest(400, f"'{authority}' names no host")
    return host.lower().rstrip("."), int(port) if port else default_port


def parse_request(head: bytes) -> ProxyRequest:
    """A proxy request head (up to and including the blank line), or ``BadRequest``."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise BadRequest(400, "the request head is not text") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, f"'{lines[0][:80]}' is not an HTTP/1 request line")
    method, target, version = parts
    if method == "CONNECT":
        host, port = _split_host_port(target, 443)
        return ProxyRequest(method, host, port, target)
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() != "http":
        raise BadRequest(400, f"'{target[:80]}' is not an absolute http:// URL (a proxy is "
                         "asked for https through CONNECT)")
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]  # userinfo is not the host
    host, port = _split_host_port(authority, 80)
    headers: list[bytes] = []
    body_length = 0
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest(400, "a request header without a colon")
        key = name.strip().lower().encode("latin-1")
        if key == b"transfer-encoding":
            raise BadRequest(411, "a request body without a Content-Length is not forwarded")
        if key == b"content-length":
            if not value.strip().isdigit():
                raise BadRequest(400, "a Content-Length that is not a number")
            body_length = int(value.strip())
        if key not in _HOP_BY_HOP:
            headers.append(line.encode("latin-1"))
    request_line = f"{method} {slash}{path} {version}".encode("latin-1")
    forward = b"\r\n".join([request_line, *headers, b"Connection: close", b"", b""])
    return ProxyRequest(method, host, port, target, forward, body_length)


def _close_response_head(head: bytes) -> bytes:
    """A response head with ``Connection: close`` in place of any connection header."""
    lines = head.split(b"\r\n")
    kept = [ln for ln in lines[1:] if ln and ln.split(b":", 1)[0].strip().lower()
            not in (b"connection", b"keep-alive", b"proxy-connection")]
    return b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""])


async def system_resolver(host: str, port: int) -> list[str]:
    """The machine's resolver (getaddrinfo), every address it gives, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


class VettingProxy:
    """An HTTP proxy on 127.0.0.1 that lets a page reach only the addresses ``policy`` allows.

    ``policy`` is the tracer's (``guard.public_only``, or ``guard.allowing(ranges)`` with an
    operator's --allow-address); ``None`` allows every address and only records and bounds.
    ``pinned`` maps a host name to the addresses to use for it instead of resolving it (the
    journey's target and the address it used, so the page is the page the journey measured).
    """

    def __init__(self, policy: Policy | None, *, pinned: Mapping[str, Sequence[str]] = {},
                 budget: PageBudget | None = None, resolver: Resolver = system_resolver,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.policy = policy
        self.pinned = {k.lower().rstrip("."): list(v) for k, v in pinned.items()}
        self.budget = budget or PageBudget()
        self.resolver = resolver
        self.clock = clock
        self.refused: list[Refusal] = []
        self.unrecorded = 0             # refusals past MAX_RECORDED, only counted
        self.passed: list[Passage] = []
        self.requests = 0
        self.bytes = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._deadline_ns = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """What ``--proxy-server`` (or Playwright's ``proxy={"server": ...}``) is given."""
        return f"http://127.0.0.1:{self.port}"

    # -- the decisions (no I/O) --------------------------------------------------------------

    def over_budget(self) -> str | None:
        """Why a new request may not start now, or ``None``."""
        b = self.budget
        if self.clock() >= self._deadline_ns:
            return f"the page's time budget ({b.max_time:g} s) is spent"
        if self.requests >= b.max_requests:
            return f"the page's request budget ({b.max_requests} requests) is spent"
        if self.bytes >= b.max_bytes:
            return f"the page's byte budget ({b.max_bytes} bytes) is spent"
        return None

    def vet(self, addresses: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """The addresses the policy allows, in order, and why each other one was refused."""
        if self.policy is None:
            return list(addresses), {}
        refused = {a: why for a in addresses if (why := self.policy(a)) is not None}
        return [a for a in addresses if a not in refused], refused

    def refuse(self, reason: str, request: ProxyRequest | None = None,
               what: str = "request") -> Refusal:
        """Record why ``request`` (or, before it could be read, ``what``) was refused."""
        if request is None:
            refusal = Refusal(self.clock(), "-", what, reason)
        else:
            refusal = Refusal(self.clock(), request.method, request.target, reason,
                              request.host, request.port)
        if len(self.refused) < MAX_RECORDED:
            self.refused.append(refusal)
        else:
            self.unrecorded += 1
        return refusal

    def port_refusal(self, request: ProxyRequest) -> str | None:
        """Why the request's port may not be reached, or ``None`` (guarded pages only)."""
        if (self.policy is None or request.host in self.pinned or request.port >= 1024
                or request.port in WEB_PORTS):
            return None
        return (f"port {request.port}: below 1024 a page may reach only the web's ports "
                "(80, 443)")

    # -- the I/O ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._deadline_ns = self.clock() + int(self.budget.max_time * 1e9)
        self._server = await asyncio.start_server(self._serve, host, port,
                                                  limit=self.budget.max_header_bytes)
        self.port = self._server.sockets[0].getsockname()[1]
        self._watchdog = asyncio.create_task(self._expire())

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def __aenter__(self) -> VettingProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _expire(self) -> None:
        """At the end of the time budget every connection still open is cut."""
        await asyncio.sleep(max(self._deadline_ns - self.clock(), 0) / 1e9)
        for writer in list(self._open):
            writer.transport.abort()

    def _spend(self, n: int) -> bool:
        """Count ``n`` bytes; False once the page's byte budget is spent."""
        self.bytes += n
        return self.bytes <= self.budget.max_bytes

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= self.budget.max_connections:
            self.refuse(f"the page already holds {self.budget.max_connections} connections",
                        what="connection to the proxy")
            await _answer(writer, 503, "too many connections")
            return
        self._open.add(writer)
        try:
            await self._one_request(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._open.discard(writer)
            writer.transport.abort()

    async def _one_request(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                          self.budget.head_timeout)
        except (asyncio.LimitOverrunError, ValueError):
            self.refuse(f"its head is larger than {self.budget.max_header_bytes} bytes")
            await _answer(writer, 431, "request head too large")
            return
        try:
            request = parse_request(head)
        except BadRequest as bad:
            self.refuse(bad.reason)
            await _answer(writer, bad.status, bad.reason)
            return
        if (why := self.over_budget()) is not None:
            self.refuse(why, request)
            await _answer(writer, 429, why)
            return
        self.requests += 1
        upstream = await self._connect(request)
        if isinstance(upstream, Refusal):
            await _answer(writer, 403, upstream.reason)
            return
        up_reader, up_writer = upstream
        self._open.add(up_writer)
        try:
            if request.method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await self._relay(request, reader, writer, up_reader, up_writer)
            else:
                await self._forward(request, reader, writer, up_reader, up_writer)
        finally:
            self._open.discard(up_writer)
            up_writer.transport.abort()

    async def _addresses(self, request: ProxyRequest) -> list[str] | str:
        """The addresses for the request's host, or why there are none."""
        if request.host in self.pinned:
            return self.pinned[request.host]
        if parse_address(request.host) is not None:
            return [request.host.strip("[]")]
        try:
            found = await asyncio.wait_for(self.resolver(request.host, request.port),
                                           self.budget.connect_timeout)
        except (OSError, TimeoutError) as exc:
            return f"{request.host} did not resolve ({exc.__class__.__name__})"
        return found or f"{request.host} has no address"

    async def _connect(self, request: ProxyRequest
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | Refusal:
        """A connection to a vetted address of the request's host, or the refusal."""
        if (why := self.port_refusal(request)) is not None:
            return self.refuse(why, request)
        found = await self._addresses(request)
        if isinstance(found, str):
            return self.refuse(found, request)
        allowed, refused = self.vet(found)
        if not allowed:
            return self.refuse("; ".join(refused.values()), request)
        failures: list[str] = []
        for address in allowed:
            try:
                pair = await asyncio.wait_for(
                    asyncio.open_connection(address, request.port, limit=_READ),
                    self.budget.connect_timeout)
            except (OSError, TimeoutError) as exc:
                failures.append(f"{address}: {exc.__class__.__name__}")
                continue
            self.passed.append(Passage(self.clock(), request.method, request.target, address,
                                       request.port))
            return pair
        return self.refuse("no vetted address answered (" + "; ".join(failures) + ")", request)

    async def _relay(self, request: ProxyRequest, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                     up_writer: asyncio.StreamWriter) -> None:
        """A tunnel: bytes both ways until either side closes or a budget is spent."""
        await asyncio.gather(self._pipe(request, reader, up_writer, None),
                             self._pipe(request, up_reader, writer, None))

    async def _forward(self, request: ProxyRequest, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                       up_writer: asyncio.StreamWriter) -> None:
        """One plain-http request: its head and body to the origin, the response back, and
        nothing more on this connection (both sides are told ``Connection: close``)."""
        if not self._spend(len(request.forward)):
            self.refuse("cut: the page's byte budget is spent", request)
            return
        up_writer.write(request.forward)
        await asyncio.gather(self._pipe(request, reader, up_writer, request.body_length),
                             self._respond(request, up_reader, writer))

    async def _respond(self, request: ProxyRequest, up_reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            head = await up_reader.readuntil(b"\r\n\r\n")
        except (asyncio.LimitOverrunError, ValueError):
            self.refuse(f"cut: the response head is larger than {_READ} bytes", request)
            return
        if not self._spend(len(head)):
            self.refuse("cut: the page's byte budget is spent", request)
            return
        writer.write(_close_response_head(head))
        await writer.drain()
        await self._pipe(request, up_reader, writer, None)

    async def _pipe(self, request: ProxyRequest, src: asyncio.StreamReader,
                    dst: asyncio.StreamWriter, length: int | None) -> None:
        """Copy ``length`` bytes (``None``: until the end) from ``src`` to ``dst``. A side
        that fails, or the byte budget, ends both directions (``dst`` is aborted, so the pipe
        the other way reads its end too)."""
        left = length
        try:
            while left is None or left > 0:
                data = await src.read(_READ if left is None else min(_READ, left))
                if not data:
                    break
                if not self._spend(len(data)):
                    self.refuse(f"cut: the page's byte budget ({self.budget.max_bytes} "
                                "bytes) is spent", request)
                    dst.transport.abort()
                    return
                if left is not None:
                    left -= len(data)
                dst.write(data)
                await dst.drain()
            if length is None and dst.can_write_eof():
                dst.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            dst.transport.abort()


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    """A short plain-text answer from the proxy itself, then the connection closes."""
    body = f"whathappens refused this request: {text}\n".encode()
    reason = {403: "Forbidden", 411: "Length Required", 429: "Too Many Requests",
              431: "Request Header Fields Too Large", 503: "Service Unavailable"}.get(
        status, "Bad Request")
    with contextlib.suppress(OSError):
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8"
                     f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                     + body)
        await writer.drain()


@contextlib.contextmanager
def proxy_thread(proxy: VettingProxy) -> Iterator[VettingProxy]:
    """Run ``proxy`` on an event loop of its own thread, for a caller that is not async (the
    synchronous Playwright API, a test); it stops when the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(proxy.start())
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(proxy.close())
        loop.close()

    thread = threading.Thread(target=main, name="vetting-proxy", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)


def _rule_address(address: str) -> str:
    """An address as a host-resolver rule's replacement writes it (IPv6 in brackets)."""
    addr = parse_address(address)
    if addr is None:
        raise ValueError(f"'{address}' is not an IP address")
    return f"[{addr}]" if isinstance(addr, ipaddress.IPv6Address) else str(addr)


def resolver_rules(target_host: str | None, target_address: str | None,
                   proxy_url: str) -> str:
    """``--host-resolver-rules``: the target to its address, the proxy as it is, every other
    name unresolvable.

    Chromium (net/base/host_mapping_rules.cc) takes the first MAP rule whose pattern matches
    and applies it unless an EXCLUDE pattern matches too, so the target's MAP comes first and
    only the proxy's host is excluded (an excluded target would be resolved by the system).
    """
    rules: list[str] = []
    if target_host and target_address:
        rules.append(f"MAP {target_host.lower().rstrip('.')} {_rule_address(target_address)}")
    rules.append("MAP * ~NOTFOUND")
    proxy_host = proxy_url.split("://", 1)[-1].rsplit(":", 1)[0]
    rules.append(f"EXCLUDE {proxy_host}")
    return ", ".join(rules)


def hardening_args(target_host: str | None, target_address: str | None,
                   proxy_url: str) -> list[str]:
    """The Chromium switches that leave a page no way out but through ``proxy_url``.

    ``target_host``/``target_address``: the journey's host and the address it used (the proxy
    pins them too; may be ``None`` for a warm browser that serves many targets, where each
    page's proxy pins its own). Give the result as the whole of ``--host-resolver-rules``
    (it already maps the target).
    """
    return [
        f"--proxy-server={proxy_url}",
        # Chromium never proxies loopback unless told: '<-loopback>' removes that bypass.
        "--proxy-bypass-list=<-loopback>",
        f"--host-resolver-rules={resolver_rules(target_host, target_address, proxy_url)}",
        # WebRTC: no UDP that does not go through the proxy (so none), forced over any pref.
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--force-webrtc-ip-handling-policy",
        # QUIC would be UDP; through an HTTP proxy it is never used, but say so.
        "--disable-quic",
        # <a ping> would only go through the proxy too: off, to spend the budget on the page.
        "--no-pings",
    ]

