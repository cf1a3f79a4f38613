"""Run the whole demo internet in this process until SIGTERM or SIGINT.

    python -m whathappens.demo.serve --state DIR [--root | --high-ports] [--no-delay]

Starts every server of :mod:`whathappens.demo.topology`, checks that each one really answers
(a DNS query over UDP and TCP to every name server, a TLS handshake with every HTTPS server,
a TCP connect to the plain-HTTP port), writes ``root.hints`` and ``internet.json`` into the
state directory, and then prints exactly one line on stdout::

    {"ready": true, "pid": ..., "dns_port": 53, "https_port": 443, "http_port": 80, ...}

Nothing else is ever written to stdout; diagnostics go to stderr. Exit status: 0 after a
clean stop, 98 when an address is already in use, 1 for any other failure to start.

The recursive resolver (127.0.53.53) lives in ``whathappens.demo.recursive`` and is started
when that module exists. Its contract::

    async def start_resolver(address: str, port: int, root_hints: str, *,
                             upstream_port: int, delay_ms: float) -> object

(keyword arguments it does not take are left out) returns once the resolver listens;
``upstream_port`` is the port of every authoritative server. The object returned is
stopped with ``await obj.aclose()`` or ``obj.close()`` (awaited if that returns an
awaitable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import inspect
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dns.name
import dns.zone

from whathappens.demo import topology
from whathappens.demo.authoritative import AuthoritativeServer
from whathappens.demo.authority import Authority, Special
from whathappens.demo.ca import Pki, ensure_pki
from whathappens.demo.page import describe as describe_page
from whathappens.demo.page import find_font
from whathappens.demo.readiness import StartupError, as_startup_error, dns_answers, web_accepts
from whathappens.demo.topology import Ports
from whathappens.demo.web import Site, serve_site
from whathappens.errors import EXIT_INTERRUPTED

ZONES_DIR = Path(__file__).parent / "zones"
READY_TIMEOUT = 10.0
EXIT_IN_USE = 98


@dataclass(frozen=True)
class Options:
    state_dir: Path
    ports: Ports
    delays: bool
    exit_with_stdin: bool = False
    delay_overrides: dict[str, float] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    options = _parse(argv)
    # Python-level handlers, not loop.add_signal_handler: those are removed when the loop
    # closes, and a SIGTERM arriving during the last moments of shutdown would then kill
    # the process (status -15) instead of letting it finish its clean exit.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _STOP.request)
    try:
        status = asyncio.run(_run(options))
        # Interpreter shutdown resets Python-level handlers to the default action; a late
        # second SIGTERM must not turn a clean exit into "killed by signal".
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        return status
    except KeyboardInterrupt:  # a ^C before the loop could install its handler
        return EXIT_INTERRUPTED
    except StartupError as e:
        print(f"whathappens demo: {e}", file=sys.stderr)
        return EXIT_IN_USE if e.in_use else 1


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m whathappens.demo.serve",
        description="Run the whathappens demo internet until SIGTERM/SIGINT.",
    )
    parser.add_argument("--state", required=True, type=Path, help="directory for CA, hints, ...")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--root", action="store_true", help="ports 53, 443, 80 (needs root)")
    which.add_argument("--high-ports", action="store_true", help="ports 10053, 10443, 10080")
    parser.add_argument("--no-delay", action="store_true", help="inject no delays")
    parser.add_argument("--delay", action="append", default=[], metavar="ROLE=MS",
                        type=_delay_arg, help="injected delay of one role, e.g. root=40")
    parser.add_argument("--dns-port", type=int)
    parser.add_argument("--https-port", type=int)
    parser.add_argument("--http-port", type=int)
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="stop when stdin reaches EOF (the parent went away)")
    args = parser.parse_args(argv)
    high = args.high_ports or (not args.root and os.geteuid() != 0)
    base = Ports.default(high=high)
    ports = Ports(args.dns_port or base.dns, args.https_port or base.https,
                  args.http_port or base.http)
    return Options(args.state.resolve(), ports, not args.no_delay, args.exit_with_stdin,
                   dict(args.delay))


def _delay_arg(text: str) -> tuple[str, float]:
    try:
        return topology.parse_delay(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


async def _run(options: Options) -> int:
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancellation)
    stop = _STOP.attach(loop)
    if options.exit_with_stdin:
        _watch_stdin(stop)

    internet = _Internet(options)
    try:
        await _until_stopped(internet.start(), stop)
        if stop.is_set():
            return 0
        ready = internet.ready_line(round((time.perf_counter() - started) * 1000, 1))
        try:
            print(json.dumps(ready), flush=True)
        except BrokenPipeError:
            return 0
        await stop.wait()
        return 0
    finally:
        await internet.stop()


class _Internet:
    """Every server of the topology, started and stopped together."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.ports = options.ports
        self.delays = topology.delays(options.delays, options.delay_overrides)
        self.state = options.state_dir
        self.dns: list[AuthoritativeServer] = []
        self.web_shutdown = asyncio.Event()
        self.web_tasks: list[asyncio.Task[None]] = []
        self.udp_sink: socket.socket | None = None
        self.retry_server: Any = None
        self.resolver: Any = None
        self.ipv6 = False
        self.pki: Pki | None = None
        self.font = find_font()

    def page_delays(self) -> dict[str, float]:
        return {key: self.delays[key] for key in topology.PAGE_DELAYS_MS}

    async def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_pki(self.state)
        self.ipv6 = (_can_listen(topology.WEB_ADDRESS_V6, self.ports.https)
                     and _can_listen(topology.WEB_ADDRESS_V6, self.ports.http))
        hints = self.state / "root.hints"
        hints.write_text(_root_hints())
        zones = _load_zones(drop_aaaa=not self.ipv6)
        special = {dns.name.from_text(n): Special(s) for n, s in topology.SPECIAL_NAMES.items()}
        for spec in topology.NAME_SERVERS:
            # Only the server authoritative for a special name plays its trick: the root and
            # the TLD must still refer the walk down to it.
            own = {n: k for n, k in special.items() if _closest_zone(n, zones) in spec.zones}
            authority = Authority([zones[z] for z in spec.zones], own)
            server = AuthoritativeServer(authority, delay_ms=self.delays[spec.role])
            self.dns.append(server)
            await _listening(server.start(spec.address, self.ports.dns),
                             f"{spec.address}:{self.ports.dns}")
        self._start_web()
        await self._start_retry()
        await self._start_resolver(hints)
        await asyncio.wait_for(self._check_ready(zones), READY_TIMEOUT)
        self._write_internet_json()

    def _start_web(self) -> None:
        assert self.pki is not None
        https, http = self.ports.https, self.ports.http
        binds = [f"{topology.WEB_ADDRESS}:{https}"]
        plain = [f"{topology.WEB_ADDRESS}:{http}"]
        if self.ipv6:  # the AAAA record promises both ports on [::1] too
            binds.append(f"[{topology.WEB_ADDRESS_V6}]:{https}")
            plain.append(f"[{topology.WEB_ADDRESS_V6}]:{http}")
        servers = [(topology.WEB_SERVER, self.pki.server, binds, plain)]
        servers += [(spec, self.pki.bad[spec.certificate], [f"{spec.address}:{https}"], [])
                    for spec in topology.BAD_TLS_SERVERS]
        down = topology.H3_DOWN_SERVER  # TCP only: its HTTP/3 is advertised, never served
        servers.append((down, self.pki.server, [f"{down.address}:{https}"], []))
        # A UDP socket on its https port that reads nothing: a QUIC Initial meets silence
        # (not an ICMP "port unreachable"), as behind a firewall that drops UDP.
        self.udp_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_sink.bind((down.address, https))
        site = Site(https_port=https, think_ms=self.delays["web"],  # one app, many servers
                    page_delays=self.page_delays(), font=self.font)
        for spec, files, secure, insecure in servers:
            # www.example.com also answers HTTP/3 on UDP, on the https port (issue 12).
            quic = secure if spec is topology.WEB_SERVER else []
            coro = serve_site(site, binds=secure, insecure_binds=insecure, quic_binds=quic,
                              chain=files.chain, key=files.key, shutdown=self.web_shutdown)
            self.web_tasks.append(asyncio.get_running_loop().create_task(coro))

    async def _start_retry(self) -> None:
        """retry.example.com: HTTP/3 only, every client validated with a Retry."""
        from whathappens.demo.quic_retry import serve_retry

        assert self.pki is not None
        spec = topology.RETRY_SERVER
        self.retry_server = await serve_retry(spec.address, self.ports.https,
                                              self.pki.server.chain, self.pki.server.key)

    async def _start_resolver(self, hints: Path) -> None:
        try:
            module = importlib.import_module("whathappens.demo.recursive")
        except ModuleNotFoundError as e:
            if e.name != "whathappens.demo.recursive":
                raise
            return
        start: Callable[..., Any] | None = getattr(module, "start_resolver", None)
        if start is None:
            return
        offered: dict[str, Any] = {
            "address": topology.RESOLVER_ADDRESS, "port": self.ports.dns,
            "root_hints": str(hints), "upstream_port": self.ports.dns,
            "delay_ms": self.delays["resolver"],
        }
        params = inspect.signature(start).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            offered = {k: v for k, v in offered.items() if k in params}
        result = start(**offered)
        self.resolver = await result if inspect.isawaitable(result) else result

    async def _check_ready(self, zones: dict[str, dns.zone.Zone]) -> None:
        """Ask every server a real question; return when all have answered."""
        assert self.pki is not None
        checks: list[Awaitable[None]] = []
        for spec in topology.NAME_SERVERS:
            for zone_file in spec.zones:
                origin = zones[zone_file].origin
                assert origin is not None
                checks.append(dns_answers(spec.address, self.ports.dns, origin))
        trusted = ssl.create_default_context(cafile=str(self.pki.ca))
        trusted.set_alpn_protocols(["h2", "http/1.1"])
        addresses = [topology.WEB_ADDRESS] + ([topology.WEB_ADDRESS_V6] if self.ipv6 else [])
        tasks = self.web_tasks
        for address in addresses:
            checks.append(web_accepts(address, self.ports.https, trusted, topology.WEB_HOST, tasks))
        checks.append(web_accepts(topology.WEB_ADDRESS, self.ports.http, None, None, tasks))
        down = topology.H3_DOWN_SERVER
        checks.append(web_accepts(down.address, self.ports.https, trusted, down.name, tasks))
        anything = ssl.create_default_context()
        anything.check_hostname = False
        anything.verify_mode = ssl.CERT_NONE
        for bad in topology.BAD_TLS_SERVERS:
            checks.append(web_accepts(bad.address, self.ports.https, anything, bad.name, tasks))
        await asyncio.gather(*checks)

    def _write_internet_json(self) -> None:
        (self.state / "internet.json").write_text(json.dumps(self.describe(), indent=2) + "\n")

    def describe(self) -> dict[str, Any]:
        assert self.pki is not None
        servers: list[dict[str, Any]] = [
            {"name": s.name, "role": s.role, "address": s.address,
             "ports": {"dns": self.ports.dns}, "delay_ms": self.delays[s.role],
             "zones": ["." if z == "root.zone" else z.removesuffix("zone") for z in s.zones]}
            for s in topology.NAME_SERVERS
        ]
        if self.resolver is not None:
            servers.insert(0, {"name": "resolver", "role": "resolver",
                               "address": topology.RESOLVER_ADDRESS,
                               "ports": {"dns": self.ports.dns},
                               "delay_ms": self.delays["resolver"]})
        web = topology.WEB_SERVER
        servers.append({
            "name": web.name, "role": "web", "address": web.address,
            "addresses": [web.address] + ([topology.WEB_ADDRESS_V6] if self.ipv6 else []),
            "ports": {"https": self.ports.https, "http": self.ports.http},
            "delay_ms": self.delays["web"], "delay_applies_to": "GET /",
            "certificate": "valid",
        })
        for bad in topology.BAD_TLS_SERVERS:
            servers.append({
                "name": bad.name, "role": "bad-tls", "address": bad.address,
                "ports": {"https": self.ports.https}, "delay_ms": self.delays["web"],
                "certificate": bad.certificate, "problem": bad.problem,
            })
        return {
            "version": 1,
            "delays_injected": any(self.delays.values()),
            "delays_note": "each server waits delay_ms before answering, on purpose, so the "
                           "local timeline looks like the real internet",
            "ports": asdict(self.ports),
            "root_hints": str(self.state / "root.hints"),
            "ca": str(self.pki.ca),
            "ipv6": self.ipv6,
            "special_names": topology.SPECIAL_NAMES,
            "servers": servers,
            # www.example.com's page: its files and their own delays (web's delay_ms is the
            # page's think time only).
            "page": describe_page(self.page_delays(), self.font),
        }

    def ready_line(self, startup_ms: float) -> dict[str, Any]:
        assert self.pki is not None
        return {
            "ready": True,
            "pid": os.getpid(),
            "state_dir": str(self.state),
            "root_hints": str(self.state / "root.hints"),
            "ca": str(self.pki.ca),
            "internet": str(self.state / "internet.json"),
            "dns_port": self.ports.dns,
            "https_port": self.ports.https,
            "http_port": self.ports.http,
            "resolver": topology.RESOLVER_ADDRESS if self.resolver is not None else None,
            "web": topology.WEB_ADDRESS,
            "ipv6": self.ipv6,
            "delays": any(self.delays.values()),
            "startup_ms": startup_ms,
        }

    async def stop(self) -> None:
        self.web_shutdown.set()
        if self.udp_sink is not None:
            self.udp_sink.close()
        if self.retry_server is not None:
            self.retry_server.close()
        if self.web_tasks:
            # A TLS client that never answers our close_notify would hold a server until
            # the SSL shutdown timeout (30 s): wait a moment, then cancel.
            await asyncio.wait(self.web_tasks, timeout=1.0)
            for task in self.web_tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*self.web_tasks, return_exceptions=True)
        if self.resolver is not None:
            closer = getattr(self.resolver, "aclose", None) or getattr(self.resolver, "close", None)
            if closer is not None:
                result = closer()
                if inspect.isawaitable(result):
                    await result
        for server in self.dns:
            await server.aclose()


async def _until_stopped(work: Awaitable[None], stop: asyncio.Event) -> None:
    """Run ``work`` unless a stop request comes first; startup errors become StartupError."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    error = task.exception()
    if isinstance(error, StartupError):
        raise error
    if isinstance(error, TimeoutError):
        raise StartupError(f"servers not ready after {READY_TIMEOUT:.0f} s") from None
    if error is not None:
        raise as_startup_error(error, "startup")


async def _listening(start: Awaitable[None], where: str) -> None:
    try:
        await start
    except OSError as e:
        raise as_startup_error(e, where) from None


def _closest_zone(name: dns.name.Name, zones: dict[str, dns.zone.Zone]) -> str | None:
    """The file name of the deepest zone that contains ``name`` (RFC 1034 §4.3.2)."""
    best: tuple[int, str] | None = None
    for file, zone in zones.items():
        origin = zone.origin
        if origin is not None and name.is_subdomain(origin) and \
                (best is None or len(origin) > best[0]):
            best = (len(origin), file)
    return None if best is None else best[1]


def _load_zones(*, drop_aaaa: bool) -> dict[str, dns.zone.Zone]:
    zones = {p.name: dns.zone.from_file(str(p), relativize=False)
             for p in sorted(ZONES_DIR.glob("*.zone"))}
    if drop_aaaa:
        zones["example.com.zone"].delete_rdataset(f"{topology.WEB_HOST}.", "AAAA")
    return zones


def _root_hints() -> str:
    """The root hints file, in the format of IANA's named.root."""
    root = topology.NAME_SERVERS[0]
    return (
        "; Root hints for the whathappens demo internet (format of IANA's named.root).\n"
        f".                        3600000      NS    {root.name}.\n"
        f"{root.name + '.':<24} 3600000      A     {root.address}\n"
    )


def _can_listen(address: str, port: int) -> bool:
    """Whether this host can listen on an IPv6 address (it may have no IPv6 at all)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((address, port))
    except OSError as e:
        return e.errno == errno.EADDRINUSE  # IPv6 works; the port clash is reported later
    return True


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop the report of a connection handler cancelled at shutdown, pass on the rest.

    asyncio 3.11's stream server asks a cancelled handler task for its exception, which
    raises CancelledError inside a callback and prints a traceback for what is a normal stop
    (fixed in 3.12).
    """
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def _watch_stdin(stop: asyncio.Event) -> None:
    """Stop when stdin reaches EOF: the parent that holds its other end went away."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    # Not a pipe or socket (e.g. a regular file): nothing to watch.
    with contextlib.suppress(OSError, ValueError):
        loop.add_reader(fd, readable)


class _StopRequest:
    """Turns SIGTERM/SIGINT into an asyncio.Event set on the running loop."""

    def __init__(self) -> None:
        self.requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        self._loop, self._event = loop, asyncio.Event()
        if self.requested:
            self._event.set()
        return self._event

    def request(self, signum: int, frame: object) -> None:
        self.requested = True
        loop, event = self._loop, self._event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


_STOP = _StopRequest()


if __name__ == "__main__":
    sys.exit(main())
