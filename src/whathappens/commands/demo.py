"""``whathappens demo``: the whole journey through the local demo internet, offline.

Starts the demo's servers (root, TLD, authoritative, recursive resolver, web) in a process of
their own, traces the URL through them — the resolver's answer is the one used, the walk
from the demo's root hints is shown beside it — prints the report and stops everything.
``--serve`` keeps the servers up for curl, dig or a browser instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.commands.arguments import (
    add_trace_arguments,
    browser_options,
    command_parser,
    options_from,
)
from whathappens.commands.output import render
from whathappens.errors import EXIT_DEMO_FAILED, EXIT_OK

if TYPE_CHECKING:
    from whathappens.demo.internet import DemoInternet
    from whathappens.journey import Journey


def _parser() -> argparse.ArgumentParser:
    p = command_parser(
        "whathappens demo",
        "Trace a URL through a local demo internet (root, TLD and authoritative "
        "DNS servers, a recursive resolver and an HTTPS server on 127.0.0.0/8), "
        "offline.")
    p.add_argument("url", nargs="?", default=None,
                   help="URL to trace (default https://www.example.com/)")
    p.add_argument("--serve", action="store_true",
                   help="keep the demo internet running (Ctrl-C to stop) instead of tracing")
    p.add_argument("--state", default="demo", metavar="DIR",
                   help="where the CA, root hints and logs live (default ./demo)")
    p.add_argument("--no-delay", action="store_true",
                   help="no injected delays: loopback speed everywhere")
    p.add_argument("--delay", action="append", default=[], metavar="ROLE=MS", type=_delay,
                   help="injected delay of one role (resolver, root, tld, authoritative, "
                        "web), e.g. --delay root=60; repeatable")
    p.add_argument("--high-ports", action="store_true",
                   help="ports 10053/10443/10080 even as root (default: 53/443/80 as root)")
    add_trace_arguments(p)
    return p


def _delay(text: str) -> tuple[str, float]:
    from whathappens.demo.topology import parse_delay

    try:
        return parse_delay(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def point_at(demo: DemoInternet, args: argparse.Namespace) -> None:
    """Aim the trace arguments at the demo's DNS servers and CA (what the user set stays)."""
    args.root_hints = args.root_hints or str(demo.root_hints)
    args.cacert = args.cacert or str(demo.ca)
    args.dns_port = demo.dns_port
    if args.resolver is None and demo.resolver:
        args.resolver = (demo.resolver, demo.resolver_port)
    if args.dns_views == "system,resolver,walk":
        # The demo's names exist only inside the demo internet: asking the system's own
        # resolver would send a query out of this machine, and the demo is offline.
        args.dns_views = "resolver,walk"


def trace_through(demo: DemoInternet, args: argparse.Namespace) -> Journey:
    """The journey to the URL of ``args`` (or the demo's own site) through ``demo``."""
    from whathappens.demo.command import annotate, demo_url
    from whathappens.trace import run_journey

    point_at(demo, args)
    opts = options_from(args)
    journey = asyncio.run(run_journey(demo_url(demo, args.url), opts))
    annotate(journey, demo, opts.dns.views)
    if getattr(args, "browser", False):
        from whathappens.browser.phase import after_journey

        # While the demo internet is still up: Chromium loads the page from it.
        asyncio.run(after_journey(journey, browser_options(args, opts.tls.cafile)))
    return journey


def demo_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from whathappens.demo.command import serve_forever
    from whathappens.demo.internet import DemoInternet, DemoInternetError

    try:
        demo = DemoInternet.start(Path(args.state), high_ports=True if args.high_ports else None,
                                  delays=not args.no_delay, delay_overrides=dict(args.delay))
    except DemoInternetError as err:
        print(f"whathappens demo: could not start the demo internet: {err}", file=sys.stderr)
        return EXIT_DEMO_FAILED
    with demo:
        if args.serve:
            serve_forever(demo)
            return EXIT_OK
        journey = trace_through(demo, args)
    render(journey.to_dict(), args, sys.stdout)
    return journey.exit_code
