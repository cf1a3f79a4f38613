"""The arguments every tracing command shares, and what they become: ``trace.Options``.

``whathappens URL``, ``whathappens demo`` and ``whathappens serve`` take the same DNS, TCP,
TLS, HTTP and limit flags (``add_trace_arguments``); the first two also the output flags
(``add_output_arguments``). The type parsers turn a malformed value into a usage error
(exit 2) naming the expected form. Modules behind the options are imported when the options
are built, not when the parser is: ``--help`` and a usage error stay fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from whathappens.errors import EXIT_CODES
from whathappens.guard import Network, parse_network  # small: ipaddress only

if TYPE_CHECKING:
    from whathappens.browser.chromium import BrowserOptions
    from whathappens.cookies import CookieJar
    from whathappens.net.budget import ResourceLimits
    from whathappens.trace import Options

EPILOG = "exit codes:\n" + "\n".join(
    f"  {code:>2}  {text}" for code, text in EXIT_CODES.items()
)


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A subcommand's parser, its help ending with the table of exit codes."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def _host_port(value: str, default_port: int = 53) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or bare IPv6."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, default_port


def _resolver_arg(value: str) -> tuple[str, int]:
    import ipaddress

    try:
        host, port = _host_port(value)
        ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{value}' is not IP[:PORT] (e.g. 1.1.1.1, 127.0.53.53:10053, [::1]:53)") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is out of range")
    return host, port


def _readable_file(value: str) -> str:
    if not os.path.isfile(value) or not os.access(value, os.R_OK):
        raise argparse.ArgumentTypeError(f"cannot read the file '{value}'")
    return value


def _resolve_entry(value: str) -> tuple[tuple[str, int], list[str]]:
    """curl's ``--resolve HOST:PORT:ADDR[,ADDR]``."""
    host, sep, rest = value.partition(":")
    port, sep2, addrs = rest.partition(":")
    if not (sep and sep2 and port.isdigit() and addrs):
        raise argparse.ArgumentTypeError("expected HOST:PORT:ADDRESS[,ADDRESS...]")
    return (host.lower(), int(port)), [a.strip("[]") for a in addrs.split(",")]


def _allowed_range(value: str) -> Network:
    try:
        return parse_network(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def address_policy(args: argparse.Namespace, *, public: bool
                   ) -> Callable[[str], str | None] | None:
    """The guard the flags ask for: ``public`` (--only-public, serve --public) refuses private
    and reserved addresses except the ``--allow-address`` ranges; otherwise no guard."""
    if not public:
        return None
    from whathappens.guard import allowing

    return allowing(getattr(args, "allow_address", None) or ())


def _event_limit(value: str) -> tuple[str, int]:
    from whathappens.net.budget import EVENT_WORDS

    kind, sep, number = value.partition("=")
    if not sep or not number.isdigit():
        raise argparse.ArgumentTypeError("expected KIND=N, e.g. h2.control=500")
    if kind not in EVENT_WORDS:
        raise argparse.ArgumentTypeError(f"unknown kind '{kind}': one of "
                                         f"{', '.join(EVENT_WORDS)}")
    return kind, int(number)


def resource_limits(args: argparse.Namespace) -> ResourceLimits:
    """The budgets from the limit flags; 0 turns one off."""
    from whathappens.net.budget import ResourceLimits

    limits = ResourceLimits(
        max_cpu=args.max_cpu or None,
        max_memory=args.max_memory * 1024 * 1024 or None,
        max_event_rate=args.max_event_rate or None,
    )
    for kind, number in args.max_events:
        if number:
            limits.max_events[kind] = number
        else:
            limits.max_events.pop(kind, None)
    return limits


def _header(value: str) -> tuple[str, str]:
    name, sep, val = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError("expected 'Name: value'")
    return name.strip(), val.strip()


def add_trace_arguments(p: argparse.ArgumentParser, *, outputs: bool = True) -> None:
    """Every trace option (DNS, TCP, TLS, HTTP, limits), and the output ones unless told not."""
    if outputs:
        add_output_arguments(p)
    _add_dns_arguments(p)
    _add_tcp_tls_arguments(p)
    _add_http_arguments(p)
    _add_limit_arguments(p)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the journey as JSON")
    out.add_argument("--har", metavar="FILE",
                     help="also write the journey as HAR 1.2 (one entry per request)")
    out.add_argument("--html", metavar="FILE",
                     help="also write the journey as one self-contained HTML page")
    out.add_argument("--explain", action="store_true",
                     help="explain every step for a beginner, with the advanced facts")
    out.add_argument("--browser", action="store_true",
                     help="then load the page in headless Chromium (/usr/bin/chromium), "
                          "pointed at the same address and trusting the same CA: its "
                          "subresources, rendering stages, FCP, LCP, CLS and a filmstrip on "
                          "the journey's timeline")
    out.add_argument("--browser-timeout", type=float, default=20.0, metavar="SECONDS",
                     help="the whole browser phase: launch, load and trace (default 20)")
    out.add_argument("--no-color", action="store_true", help="plain text, no colour")
    out.add_argument("--width", type=int, default=None, help="terminal width for the report")


def _add_dns_arguments(p: argparse.ArgumentParser) -> None:
    dns = p.add_argument_group("DNS")
    dns.add_argument("--resolver", metavar="IP[:PORT]", type=_resolver_arg,
                     help="ask this recursive resolver (its answer is then the one used)")
    dns.add_argument("--root-hints", metavar="FILE", type=_readable_file,
                     help="start the iterative walk from these root servers (its answer is "
                          "used unless --resolver is given)")
    dns.add_argument("--dns-port", type=int, default=53,
                     help="port every name server of the walk listens on (default 53)")
    dns.add_argument("--resolve", metavar="HOST:PORT:ADDR", action="append", default=[],
                     type=_resolve_entry, help="use ADDR for HOST:PORT, no DNS (like curl)")
    dns.add_argument("--dns-views", default="system,resolver,walk",
                     help="which DNS views to run (comma list of system, resolver, walk)")
    dns.add_argument("--dns-timeout", type=float, default=2.0, help="one DNS query, seconds")
    dns.add_argument("--dns-max-queries", type=int, default=64,
                     help="queries one walk view may send, nested walks included (default 64)")
    dns.add_argument("--dns-max-nested", type=int, default=4,
                     help="glueless name servers resolved per referral, the NXNS defence "
                          "(default 4)")
    dns.add_argument("--dns-max-nested-depth", type=int, default=3,
                     help="how deep walks for glueless name servers may nest (default 3)")
    dns.add_argument("--dns-max-cname-chain", type=int, default=11,
                     help="aliases (CNAMEs) followed in a row (default 11)")


def _add_tcp_tls_arguments(p: argparse.ArgumentParser) -> None:
    tcp = p.add_argument_group("TCP")
    tcp.add_argument("--capture", action="store_true",
                     help="capture the SYN, SYN-ACK and ACK with their sequence numbers and "
                          "options (needs root: an AF_PACKET socket)")
    tls = p.add_argument_group("TLS")
    tls.add_argument("--cacert", metavar="FILE", type=_readable_file,
                     help="trust these CA certificates (PEM)")
    tls.add_argument("--tls-max", choices=("1.2", "1.3"), default=None,
                     help="highest TLS version to offer (like curl's --tls-max): compare "
                          "TLS 1.2's two round trips with TLS 1.3's one")
    tls.add_argument("--resume", action="store_true",
                     help="after the journey, connect again offering the TLS session: an "
                          "abbreviated handshake, no certificate")
    tls.add_argument("--compare-tls", action="store_true",
                     help="after the journey (https only), fresh handshakes with the same "
                          "server address, TLS 1.2 and TLS 1.3 in 3 alternating rounds, the "
                          "medians side by side")
    tls.add_argument("-k", "--insecure", action="store_true",
                     help="report certificate problems but continue")


def _add_http_arguments(p: argparse.ArgumentParser) -> None:
    http = p.add_argument_group("HTTP")
    ver = http.add_mutually_exclusive_group()
    ver.add_argument("--http1.1", dest="http_version", action="store_const", const="1.1",
                     help="offer only HTTP/1.1 in ALPN")
    ver.add_argument("--http2", dest="http_version", action="store_const", const="2",
                     help="insist on HTTP/2 (prior knowledge for http://)")
    # Each spelling its own flag (argparse matches an exact option string before splitting at
    # "="), so a bare --http3 never swallows the URL that follows it.
    ver.add_argument("--http3", "--http3=force", dest="http3", action="store_const",
                     const="force", default="auto",
                     help="HTTP/3 over QUIC on UDP for https://, with no TCP at all")
    ver.add_argument("--http3=auto", dest="http3", action="store_const", const="auto",
                     help="HTTP/3 when the HTTPS record or an earlier Alt-Svc advertises it, "
                          "raced against TCP + TLS, as a browser does (the default)")
    ver.add_argument("--http3=off", dest="http3", action="store_const", const="off",
                     help="never try HTTP/3: TCP + TLS only")
    http.add_argument("--compare-http", action="store_true",
                      help="after the journey, HTTP/1.1, HTTP/2 and HTTP/3 to the same address "
                           "on fresh connections, 3 rounds in alternating order (https)")
    http.add_argument("--qlog", metavar="FILE", default=None,
                      help="with --http3: write the QUIC connection's qlog (JSON) to FILE")
    http.add_argument("-X", "--request", dest="method", default=None,
                      help="method (default GET, or POST with a body, as curl)")
    http.add_argument("-H", "--header", action="append", default=[], type=_header,
                      help="extra request header 'Name: value'")
    http.add_argument("--lab", nargs="?", const="lab", default=None, metavar="DIR",
                      help="go to the lab's front door (whathappens lab up; state in DIR, "
                           "default ./lab) and merge every tier's spans into the timeline")
    http.add_argument("--lab-cold", nargs="?", const="name", default=None,
                      choices=("name", "all"),
                      help="with --lab: flush the lab's Unbound first (unbound-control "
                           "flush_zone): the name (default) or all, so its upstream queries "
                           "show on the timeline")
    http.add_argument("--traceparent", action="store_true",
                      help="send a W3C traceparent header (servers that log it can be "
                           "matched to this journey)")
    http.add_argument("--max-redirects", type=int, default=20)
    http.add_argument("--no-follow", action="store_true", help="do not follow redirects")
    http.add_argument("--no-hsts", action="store_true",
                      help="do not upgrade http:// for HSTS-preloaded hosts")
    http.add_argument("--no-revalidate", action="store_true",
                      help="do not make the final request again with its validators "
                           "(If-None-Match / If-Modified-Since) after the journey")


class _BodyPart(argparse.Action):
    """Each body option appends (kind, bytes) to ``args.body_parts``, in the order given;
    a file that cannot be read is a usage error here, before any packet."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from whathappens.request_body import BodyError, make_part

        kind = (option_string or "--data").lstrip("-")
        kind = "data" if kind == "d" else kind
        try:
            part = make_part(kind, str(values))
        except BodyError as err:
            parser.error(f"{option_string}: {err}")
        parts = list(getattr(namespace, self.dest, None) or [])
        parts.append(part)
        setattr(namespace, self.dest, parts)


def add_body_cookie_arguments(p: argparse.ArgumentParser) -> None:
    """A request body and a cookie jar, as curl's -d/--data-* and -b/-c (``whathappens URL``
    only: the demo and the live page make plain GETs)."""
    body = p.add_argument_group("request body (as curl; implies POST unless -X)")
    for flags, text in (
            (("-d", "--data"), "form data, 'a=1&b=2' or @FILE (newlines dropped); "
                               "Content-Type: application/x-www-form-urlencoded"),
            (("--data-raw",), "as -d, but @ is not special"),
            (("--data-binary",), "as -d, but @FILE is sent byte for byte"),
            (("--data-urlencode",), "percent-encoded: 'content', 'name=content', "
                                    "'name@FILE' or '@FILE'"),
            (("--data-json",), "a JSON body (curl's --json; --json here is the output "
                               "flag): Content-Type and Accept application/json")):
        body.add_argument(*flags, dest="body_parts", action=_BodyPart, metavar="DATA",
                          default=[], help=text)
    jar = p.add_argument_group("cookies (RFC 6265, kept across the journey's legs)")
    jar.add_argument("-b", "--cookie", metavar="DATA|FILE",
                     help="'name=value; n2=v2' sent to the URL's host, or a Netscape cookie "
                          "file to start from ('' turns the jar on empty, as in curl)")
    jar.add_argument("-c", "--cookie-jar", metavar="FILE",
                     help="write every cookie the journey holds at its end to FILE "
                          "(Netscape format, as curl)")


def cookie_jar(args: argparse.Namespace, host: str | None) -> CookieJar | None:
    """The journey's starting jar from -b/-c (None: the cookie engine stays off)."""
    import time

    from whathappens.cookies import CookieJar, parse_cookie_string, read_netscape
    from whathappens.request_body import BodyError, read_bounded

    given = getattr(args, "cookie", None)
    if given is None:
        return CookieJar() if getattr(args, "cookie_jar", None) else None
    if "=" in given or not given:
        return parse_cookie_string(given, host or "", time.time())
    try:
        text = read_bounded(given, 1024 * 1024).decode("utf-8", errors="replace")
    except BodyError as err:
        raise argparse.ArgumentTypeError(f"-b: {err}") from None
    return read_netscape(text, time.time())


def _add_limit_arguments(p: argparse.ArgumentParser) -> None:
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-time", type=float, default=60.0, help="whole journey, seconds")
    lim.add_argument("--connect-timeout", type=float, default=10.0, help="seconds")
    lim.add_argument("--max-body", type=int, default=10 * 1024 * 1024,
                     help="largest body read, bytes on the wire (default 10 MiB)")
    lim.add_argument("--max-decoded", type=int, default=50 * 1024 * 1024,
                     help="largest body after decompression, bytes (default 50 MiB)")
    lim.add_argument("--max-header-bytes", type=int, default=64 * 1024,
                     help="largest response head, bytes (default 64 KiB)")
    lim.add_argument("--max-1xx", type=int, default=20,
                     help="informational (1xx) responses before the final one (default 20)")
    lim.add_argument("--read-timeout", type=float, default=30.0,
                     help="longest silence while a response is read, seconds (default 30)")
    lim.add_argument("--max-cpu", type=float, default=5.0,
                     help="CPU seconds the journey may use (default 5; 0: no limit)")
    lim.add_argument("--max-memory", type=int, default=512,
                     help="MiB of memory the journey may add (default 512; 0: no limit)")
    lim.add_argument("--max-events", metavar="KIND=N", action="append", default=[],
                     type=_event_limit,
                     help="total of one kind of peer event per journey: h2.frame (50000), "
                          "h2.control (1000), tls.record (50000), h1.chunk (50000), "
                          "http.1xx (50), dns.query (200); 0: no limit")
    lim.add_argument("--max-event-rate", type=int, default=20000,
                     help="those events together per second (default 20000; 0: no limit)")
    lim.add_argument("--allow-address", metavar="CIDR", action="append", default=[],
                     type=_allowed_range,
                     help="with --only-public or serve --public: may still reach this range "
                          "of your own (e.g. an intranet, 10.20.0.0/16); repeatable")
    lim.add_argument("--only-public", action="store_true",
                     help="refuse private, loopback, link-local, CGNAT, multicast and "
                          "metadata addresses, as 'serve --public' does (exit 13)")


def browser_options(args: argparse.Namespace, cafile: str | None) -> BrowserOptions:
    """The browser phase's options from ``--browser-timeout`` and the journey's CA file."""
    from whathappens.browser.chromium import BrowserOptions

    return BrowserOptions(cafile=cafile, timeout=args.browser_timeout)


def options_from(args: argparse.Namespace) -> Options:
    """The journey's options from the parsed trace arguments."""
    import ssl

    from whathappens.net.dns.views import DnsOptions
    from whathappens.net.http_types import Limits
    from whathappens.net.tls import TlsOptions
    from whathappens.request_body import join, method_for
    from whathappens.trace import Options

    body = join(getattr(args, "body_parts", None) or [])
    tls_versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
    views = frozenset(v.strip() for v in args.dns_views.split(",") if v.strip())
    policy = address_policy(args, public=getattr(args, "only_public", False))
    return Options(
        dns=DnsOptions(
            resolver=args.resolver,
            root_hints=args.root_hints,
            dns_port=args.dns_port,
            query_timeout=args.dns_timeout,
            max_queries=args.dns_max_queries,
            max_nested=args.dns_max_nested,
            max_nested_depth=args.dns_max_nested_depth,
            max_cname_chain=args.dns_max_cname_chain,
            views=views,
            address_policy=policy,
        ),
        tls=TlsOptions(cafile=args.cacert, insecure=args.insecure,
                       timeout=args.connect_timeout,
                       max_version=tls_versions.get(args.tls_max or "")),
        limits=Limits(max_body_bytes=args.max_body, max_decoded_bytes=args.max_decoded,
                      max_header_bytes=args.max_header_bytes,
                      max_informational=args.max_1xx, read_timeout=args.read_timeout),
        resources=resource_limits(args),
        resolve=dict(args.resolve),
        http_version="3" if args.http3 == "force" else args.http_version,
        http3=args.http3,
        connect_timeout=args.connect_timeout,
        max_time=args.max_time,
        max_redirects=args.max_redirects,
        follow_redirects=not args.no_follow,
        method=method_for(args.method, body),
        headers=[*args.header, *(body.headers(args.header) if body else [])],
        body=body.data if body else b"",
        hsts_upgrade=not args.no_hsts,
        traceparent=args.traceparent,
        resume=args.resume,
        address_policy=policy,
        compare_tls=getattr(args, "compare_tls", False),
        capture=getattr(args, "capture", False),
        revalidate=not getattr(args, "no_revalidate", False),
        qlog=getattr(args, "qlog", None),
        compare_http=getattr(args, "compare_http", False),
    )
