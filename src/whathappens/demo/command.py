"""``whathappens demo``: the whole journey through the local demo internet, offline.

Starts the demo's servers (root, TLD, authoritative, recursive resolver, web) in a process of
their own, traces the URL through them — the resolver's answer is the one used, the walk
from the demo's root hints is shown beside it — prints the report and stops everything.
``--serve`` keeps the servers up for curl, dig or a browser instead.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from pathlib import Path

from whathappens.cli import EPILOG, add_trace_arguments, options_from, render
from whathappens.contract.codec import from_json
from whathappens.contract.document import DemoFacts
from whathappens.demo.internet import DemoInternet, DemoInternetError
from whathappens.journey import Journey

EXIT_DEMO_FAILED = 11


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whathappens demo",
        description="Trace a URL through a local demo internet (root, TLD and authoritative "
                    "DNS servers, a recursive resolver and an HTTPS server on 127.0.0.0/8), "
                    "offline.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def delay_words(demo: DemoInternet) -> str:
    """Injected delay per role, e.g. "root 25 ms, tld 20 ms"."""
    by_role: dict[str, float] = {}
    for server in demo.info.get("servers", []):
        if server.get("delay_ms"):
            by_role.setdefault(str(server.get("role")), float(server["delay_ms"]))
    return ", ".join(f"{role} {delay:g} ms" for role, delay in by_role.items())


def demo_url(demo: DemoInternet, url: str | None) -> str:
    if url:
        return url
    port = "" if demo.https_port == 443 else f":{demo.https_port}"
    return f"https://www.example.com{port}/"


def trace_through(demo: DemoInternet, args: argparse.Namespace) -> Journey:
    from whathappens.trace import run_journey

    point_at(demo, args)
    opts = options_from(args)
    journey = asyncio.run(run_journey(demo_url(demo, args.url), opts))
    annotate(journey, demo, opts.dns.views)
    return journey


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


def annotate(journey: Journey, demo: DemoInternet, views: frozenset[str]) -> None:
    """Say on the journey that it went through the demo internet, and what was injected."""
    journey.facts.demo = from_json(DemoFacts, {"servers": demo.info.get("servers", []),
                                               "delays_injected": demo.delays})
    if "system" not in views:
        journey.note("info", "dns", "the system resolver view is skipped in the demo: its "
                     "names exist only in the demo internet, and the demo stays offline")
    if demo.delays:
        journey.note("info", "demo", "the demo internet injects delays so its timeline looks "
                     f"like the real internet's: {delay_words(demo)} per answer. Every time "
                     "shown is measured; those waits are part of what was measured. "
                     "Run with --no-delay for loopback speed.")


def serve_forever(demo: DemoInternet) -> None:
    port = "" if demo.https_port == 443 else f":{demo.https_port}"
    dport = "" if demo.dns_port == 53 else f" -p {demo.dns_port}"
    print(f"""demo internet running (state in {demo.state_dir}); Ctrl-C stops it.
  servers:""")
    for s in demo.info.get("servers", []):
        print(f"    {s.get('role', ''):<14} {s.get('name', ''):<28} {s.get('address', '')}"
              f"  delay {s.get('delay_ms', 0):g} ms")
    print(f"""  try:
    dig @{demo.resolver}{dport} www.example.com
    dig @127.0.53.1{dport} +norecurse www.example.com
    curl --cacert {demo.ca} --resolve www.example.com:{demo.https_port}:{demo.web} \
https://www.example.com{port}/
    whathappens https://www.example.com{port}/ --root-hints {demo.root_hints} \
--dns-port {demo.dns_port} --cacert {demo.ca}""")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5) and demo.running:
            pass
    except KeyboardInterrupt:
        pass


def demo_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    state = Path(args.state)
    try:
        demo = DemoInternet.start(state, high_ports=True if args.high_ports else None,
                                  delays=not args.no_delay, delay_overrides=dict(args.delay))
    except DemoInternetError as err:
        print(f"whathappens demo: could not start the demo internet: {err}", file=sys.stderr)
        return EXIT_DEMO_FAILED
    with demo:
        if args.serve:
            serve_forever(demo)
            return 0
        journey = trace_through(demo, args)
    render(journey.to_dict(), args, sys.stdout)
    return journey.exit_code
