"""``whathappens serve``: the live page on http://127.0.0.1:PORT.

Every trace option (DNS, TLS, HTTP, limits) applies to each journey the page runs. ``--demo``
starts the offline demo internet beside the page and aims journeys at it; ``--lab DIR`` aims
them at a running lab and merges its tiers. Binding anything but loopback needs ``--public``,
which turns the guards on: only public addresses (``--allow-address CIDR`` exempts ranges of
the operator's own), tighter time and size bounds. After each journey the page loads in a warm
headless Chromium when it is installed (``--no-browser``: not), every request of the page
through a vetting proxy that applies the same guard (``whathappens.web.browser``). The page's
listener, its connection bounds and hypercorn are ``whathappens.web.command``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whathappens.commands.arguments import (
    add_trace_arguments,
    address_policy,
    command_parser,
    options_from,
)
from whathappens.errors import EXIT_DEMO_FAILED, EXIT_OK, EXIT_USAGE
from whathappens.web.command import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    PUBLIC_MAX_BODY,
    PUBLIC_MAX_TIME,
    bound_for_public,
)

if TYPE_CHECKING:
    from whathappens.contract.document import HttpCompare
    from whathappens.demo.internet import DemoInternet
    from whathappens.journey import Journey
    from whathappens.trace import Options
    from whathappens.web.app import CompareHttp, ServeConfig
    from whathappens.web.browser import PageRunner

# A page's browser phase on --public: launch (warm: none), load and trace, at most.
PUBLIC_BROWSER_TIME = 15.0

# A page that cannot start (a refused bind, a port in use) exits as a usage error does.
EXIT_SERVE_FAILED = EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    p = command_parser(
        "whathappens serve",
        "The live page: type a URL, watch its journey arrive step by step.")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; others need --public)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    p.add_argument("--public", action="store_true",
                   help="serve other people: refuse private, loopback, link-local, CGNAT, "
                        "multicast and metadata targets, bound each journey's time and bytes")
    p.add_argument("--per-client", type=int, default=2,
                   help="journeys one client address may run at once (default 2)")
    p.add_argument("--max-journeys", type=int, default=4,
                   help="journeys running at once in total (default 4)")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS,
                   help="open connections in total; more are answered 503 and closed "
                        f"(default {MAX_CONNECTIONS})")
    p.add_argument("--max-connections-per-client", type=int,
                   default=MAX_CONNECTIONS_PER_CLIENT,
                   help="open connections from one address (not applied with "
                        f"--client-header) (default {MAX_CONNECTIONS_PER_CLIENT})")
    p.add_argument("--send-timeout", type=float, default=None, metavar="SECONDS",
                   help="a client that takes none of what the page sends for this long is "
                        "dropped and its journey stopped (default 20)")
    p.add_argument("--demo", action="store_true",
                   help="start the offline demo internet too and trace through it")
    p.add_argument("--demo-state", default="demo", metavar="DIR",
                   help="where the demo internet keeps its CA and logs (default ./demo)")
    p.add_argument("--no-compare-tls", action="store_true",
                   help="skip the two extra handshakes (TLS 1.2 vs 1.3) after each journey")
    p.add_argument("--no-compare-http", action="store_true",
                   help="do not offer the page's HTTP/1.1 vs HTTP/2 vs HTTP/3 comparison (a "
                        "checkbox; nine more requests for each journey that asks for it)")
    p.add_argument("--client-header", metavar="NAME",
                   help="behind a reverse proxy: count journeys per the address the proxy "
                        "appends to this header (e.g. X-Forwarded-For), not per connection")
    p.add_argument("--no-browser", action="store_true",
                   help="do not load the page in headless Chromium after each journey (done "
                        "by default when Chromium is installed; with --public every request "
                        "of the page goes through a proxy that applies the same guard)")
    p.add_argument("--no-capture", action="store_true",
                   help="do not capture the TCP handshake's segments (done by default as root)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="also answer to this Host header (the page checks Host against "
                        "DNS rebinding)")
    add_trace_arguments(p, outputs=False)
    return p


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def allowed_hosts(bind: str, port: int, extra: list[str]) -> frozenset[str]:
    """Host header values the page answers to when bound to loopback."""
    names = {bind, "localhost", "127.0.0.1"} if ":" not in bind else {f"[{bind}]", "localhost"}
    hosts = {f"{n}:{port}" for n in names} | ({*names} if port == 80 else set())
    hosts |= {h.lower() if ":" in h else f"{h.lower()}:{port}" for h in extra}
    return frozenset(hosts)


def journey_options(args: argparse.Namespace) -> Options:
    """The options of one journey the page runs (new for each: a journey may change them)."""
    opts = options_from(args)
    opts.compare_tls = False  # the page runs its own comparison, as a step of its stream
    opts.compare_http = False  # likewise, for the journeys whose visitor asks for it
    # The page is where people look at the handshake: capture it whenever we may (root).
    opts.capture = opts.capture or (os.geteuid() == 0 and not args.no_capture)
    if args.public:
        bound_for_public(opts, address_policy(args, public=True))
    if args.lab:
        from whathappens.lab.client import apply

        apply(opts, Path(args.lab).resolve())
    return opts


def _mode_note(args: argparse.Namespace, demo: DemoInternet | None,
               browser: str | None = None) -> str:
    note = ("Public mode: only public addresses are fetched; each journey is bounded to "
            f"{PUBLIC_MAX_TIME:g} s and {PUBLIC_MAX_BODY // 2**20} MiB."
            if args.public else "Local mode: any address this machine can reach may be "
            "traced, including private ones.")
    if args.public and args.allow_address:
        note += (" The operator also allows " + ", ".join(map(str, args.allow_address))
                 + ".")
    if browser:
        note += " " + browser
    if demo is not None:
        note += " Journeys go through the offline demo internet (its own DNS servers and CA)."
    if args.lab:
        note += " Journeys go to the lab; every tier's part is merged into the timeline."
    return note


def page_runner(args: argparse.Namespace) -> tuple[PageRunner | None, str]:
    """The browser phase for every journey, when Chromium is here and not turned off; and
    what the page says about it."""
    if args.no_browser:
        return None, ""
    from whathappens.web.browser import PageRunner, missing_reason

    why = missing_reason()
    if why is not None:
        return None, f"The page is not loaded in a browser: {why}."
    runner = PageRunner(address_policy(args, public=args.public), cafile=args.cacert,
                        timeout=PUBLIC_BROWSER_TIME if args.public else 20.0)
    guarded = (" through a proxy that lets it reach only what a journey may" if args.public
               else "")
    return runner, f"Each page then loads in headless Chromium{guarded}."


def make_config(args: argparse.Namespace, demo: DemoInternet | None,
                pages: PageRunner | None = None, browser_note: str = "") -> ServeConfig:
    from whathappens.demo.command import annotate, demo_url
    from whathappens.trace import run_journey
    from whathappens.web.app import ServeConfig
    from whathappens.web.command import on_own_thread
    from whathappens.web.gate import Gate

    async def run(url: str, journey: Journey) -> Journey:
        opts = journey_options(args)
        done = await on_own_thread(run_journey(url, opts, journey=journey))
        if demo is not None:
            annotate(done, demo, opts.dns.views)
        if args.lab:
            from whathappens.lab.client import merge_inside

            await asyncio.to_thread(merge_inside, done, Path(args.lab).resolve())
        if pages is not None:
            await pages.run(done)
        return done

    compare = None if args.no_compare_tls else compare_tls_after(args)
    example = "https://www.example.com/" if demo is None else demo_url(demo, None)
    return ServeConfig(
        run=run, public=args.public,
        allowed_hosts=frozenset() if args.public else allowed_hosts(
            args.bind, args.port, args.allow_host),
        gate=Gate(per_client=max(args.per_client, 1), total=max(args.max_journeys, 1)),
        compare_tls=compare, example_url=example,
        compare_http=None if args.no_compare_http else compare_http_after(args),
        mode_note=_mode_note(args, demo, browser_note),
        client_header=args.client_header, send_timeout=send_timeout(args),
        metrics=lab_metrics(args))


def lab_metrics(args: argparse.Namespace) -> Callable[[int], dict[str, Any]] | None:
    """The dashboard's data source with --lab: the lab's Prometheus, asked server-side."""
    if not args.lab:
        return None
    from whathappens.lab.metrics_report import dashboard_json
    from whathappens.lab.tier import LabContext

    state = Path(args.lab).resolve()
    return lambda seconds: dashboard_json(LabContext(state=state), seconds)


def send_timeout(args: argparse.Namespace) -> float:
    from whathappens.web.app import SEND_TIMEOUT

    return SEND_TIMEOUT if args.send_timeout is None else max(args.send_timeout, 0.1)


def compare_tls_after(args: argparse.Namespace
                      ) -> Callable[[Journey], Awaitable[dict[str, Any] | None]]:
    """TLS 1.2 vs 1.3 on the address the journey used (real handshakes, median of 3 rounds)."""
    from whathappens.probes.tls_compare import compare_after_journey

    async def compare(journey: Journey) -> dict[str, Any] | None:
        opts = journey_options(args)
        return await compare_after_journey(journey, opts.tls,
                                           timeout=min(opts.connect_timeout, 10.0),
                                           address_policy=opts.address_policy)

    return compare


def compare_http_after(args: argparse.Namespace) -> CompareHttp:
    """HTTP/1.1 vs HTTP/2 vs HTTP/3 at the address the journey used (probes/http_compare.py:
    rounds of fresh connections, each a short journey with this page's options). Each of
    those journeys goes through the runner's guard like any other (the pinned address is
    vetted again before its first packet) and has the same time and size bounds; all of them
    together get the journey's --max-time."""
    from whathappens.probes.http_compare import compare_http
    from whathappens.trace import run_journey
    from whathappens.web.command import on_own_thread

    async def compare(journey: Journey) -> tuple[HttpCompare | None, str]:
        opts = journey_options(args)
        opts.capture = False  # nine more handshakes: the journey's own capture is the one shown
        try:
            await on_own_thread(asyncio.wait_for(compare_http(journey, opts, run_journey),
                                                 opts.max_time))
        except TimeoutError:
            return None, (f"not finished within {opts.max_time:g} s (the journey's time "
                          "bound): no comparison")
        except Exception as exc:  # a bug of ours must not cost the visitor the report
            return None, (f"the comparison failed unexpectedly ({type(exc).__name__}: {exc}); "
                          "this is a bug, please report it")
        if journey.facts.http_compare is None:
            return None, "not measured: the journey's last answer did not come over https"
        return journey.facts.http_compare, ""

    return compare


def _refused(args: argparse.Namespace) -> str | None:
    """Why these arguments must not serve, if they must not."""
    if not _is_loopback(args.bind) and not args.public:
        return (f"binding {args.bind} lets other machines use this page to fetch URLs from "
                "here; add --public to turn on the guards (only public addresses, bounded "
                "journeys)")
    if args.public and (args.demo or args.lab):
        return ("--public refuses private and loopback addresses, and the demo internet and "
                "the lab live on 127.0.0.0/8; use one or the other")
    return None


def _start_demo(args: argparse.Namespace) -> DemoInternet:
    from whathappens.demo.internet import DemoInternet, DemoInternetError

    try:
        return DemoInternet.start(Path(args.demo_state), high_ports=None)
    except DemoInternetError as err:
        if not err.address_in_use:
            raise
    # Another demo holds 53/443 (e.g. `whathappens demo --serve`): high ports.
    return DemoInternet.start(Path(args.demo_state), high_ports=True)


def serve_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if (why := _refused(args)) is not None:
        print(f"whathappens serve: {why}", file=sys.stderr)
        return EXIT_SERVE_FAILED
    from whathappens.web.command import limit_connections, listen, serve_page, warm_up

    try:
        sock = listen(args.bind, args.port)
    except OSError as exc:
        print(f"whathappens serve: cannot listen on {args.bind}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_SERVE_FAILED
    args.port = sock.getsockname()[1]
    limit_connections(sock, total=args.max_connections,
                      per_client=0 if args.client_header else args.max_connections_per_client,
                      send_timeout=send_timeout(args))
    with contextlib.ExitStack() as stack:
        demo = None
        if args.demo:
            from whathappens.commands.demo import point_at
            from whathappens.demo.internet import DemoInternetError

            try:
                demo = _start_demo(args)
            except DemoInternetError as err:
                print(f"whathappens serve: could not start the demo internet: {err}",
                      file=sys.stderr)
                return EXIT_DEMO_FAILED
            stack.enter_context(demo)
            point_at(demo, args)
        pages, browser_note = page_runner(args)
        if pages is not None:
            pages.start()
            stack.callback(pages.close)
        config = make_config(args, demo, pages, browser_note)
        warm_up()
        host = f"[{args.bind}]" if ":" in args.bind else args.bind
        mode = "public mode: guards on" if args.public else "local mode"
        print(f"whathappens serve: http://{host}:{args.port}/  ({mode}; Ctrl-C stops)",
              flush=True)
        asyncio.run(serve_page(config, sock))
    return EXIT_OK
