"""``whathappens URL``: trace one journey and report it."""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.parse
from typing import TYPE_CHECKING

from whathappens import __version__
from whathappens.commands.arguments import (
    add_body_cookie_arguments,
    add_trace_arguments,
    browser_options,
    command_parser,
    cookie_jar,
    options_from,
)
from whathappens.commands.output import render
from whathappens.errors import EXIT_LAB_FAILED, EXIT_USAGE

if TYPE_CHECKING:
    from whathappens.journey import Journey
    from whathappens.trace import Options


def _parser() -> argparse.ArgumentParser:
    p = command_parser(
        "whathappens",
        "What happens when you hit a URL: every step performed, measured and "
        "explained. Also: 'whathappens demo' (the offline demo internet), 'whathappens "
        "serve' (the live page), 'whathappens lab' (the server side).")
    p.add_argument("url", help="the URL, e.g. https://www.example.com/")
    p.add_argument("--version", action="version", version=f"whathappens {__version__}")
    add_trace_arguments(p)
    add_body_cookie_arguments(p)
    return p


def trace_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from whathappens.trace import run_journey

    options = options_from(args)
    try:
        options.cookies = cookie_jar(args, urllib.parse.urlsplit(args.url).hostname)
    except (argparse.ArgumentTypeError, ValueError) as err:
        print(f"whathappens: {err}", file=sys.stderr)
        return EXIT_USAGE
    options.cookie_jar_out = args.cookie_jar
    flushed: str | None = None
    if args.http3 == "force" and args.tls_max == "1.2":
        print("whathappens: --http3 needs TLS 1.3 (QUIC carries only TLS 1.3, RFC 9001 §4.2):"
              " drop --tls-max 1.2, or use --http3=off", file=sys.stderr)
        return EXIT_USAGE
    if args.lab_cold and not args.lab:
        print("whathappens: --lab-cold flushes the lab's resolver: it needs --lab",
              file=sys.stderr)
        return EXIT_USAGE
    if args.lab:
        from pathlib import Path

        from whathappens.lab.client import LabNotRunning, apply, merge_inside
        from whathappens.lab.client.resolver import flush
        from whathappens.lab.process import LabError

        try:
            apply(options, Path(args.lab).resolve())
            flushed = flush(Path(args.lab).resolve(), urllib.parse.urlsplit(args.url).hostname
                            or "", args.lab_cold) if args.lab_cold else None
        except (LabNotRunning, LabError) as err:
            print(f"whathappens: {err}", file=sys.stderr)
            return EXIT_LAB_FAILED
    journey = asyncio.run(run_journey(args.url, options))
    if args.lab:
        merge_inside(journey, Path(args.lab).resolve(), flushed)
    if args.browser:
        _browser_phase(args, options, journey)
    render(journey.to_dict(), args, sys.stdout)
    return journey.exit_code


def _browser_phase(args: argparse.Namespace, options: Options, journey: Journey) -> None:
    """--browser: the page in Chromium; vetted like the journey with --only-public; with
    --lab each request carries a traceparent and the tiers' spans are merged under it."""
    browser = browser_options(args, options.tls.cafile)
    if args.lab:
        browser.trace_id = journey.facts.trace_id
    if options.address_policy is not None:  # --only-public: the page is vetted too
        from whathappens.browser.guarded import guarded_after_journey

        asyncio.run(guarded_after_journey(journey, browser, options.address_policy))
    else:
        from whathappens.browser.phase import after_journey

        asyncio.run(after_journey(journey, browser))
    if args.lab:
        from pathlib import Path

        from whathappens.lab.client import merge_page_inside

        merge_page_inside(journey, Path(args.lab).resolve())
