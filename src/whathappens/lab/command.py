"""``whathappens lab …``: install, up, status, down."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from whathappens.errors import EXIT_LAB_FAILED
from whathappens.lab.topology import PROFILES

if TYPE_CHECKING:
    from whathappens.lab.tier import LabContext


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whathappens lab",
        description="The production stack the articles draw (CDN edge, HAProxy, nginx, "
                    "gunicorn + Django, Redis, PgBouncer, PostgreSQL primary + replica, "
                    "Celery), run for real on this machine, each host on its own 127.0.x.y "
                    "address.")
    p.add_argument("--state", default="lab", metavar="DIR",
                   help="configs, data, logs and pids (default ./lab)")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("install", help="install the Debian packages the lab needs (as root)")
    upp = sub.add_parser("up", help="start every tier and wait until each is ready")
    upp.add_argument("--profile", choices=PROFILES, default="production")
    upp.add_argument("--algorithm", choices=("roundrobin", "leastconn", "source"),
                     default="roundrobin", help="HAProxy's balance algorithm")
    upp.add_argument("--subnet", type=int, default=0, metavar="N",
                     help="hosts on 127.N.x.y instead of 127.0.x.y (a second lab beside one)")
    upp.add_argument("--rtt", default=None, metavar="TIME",
                     help="as root: put a client network namespace (wh-client) behind a WAN "
                          "link with this round-trip time, e.g. 40ms")
    upp.add_argument("--jitter", default="0ms", metavar="TIME",
                     help="with --rtt: each packet's one-way delay ± this (order kept)")
    upp.add_argument("--loss", default="0", metavar="PCT",
                     help="with --rtt: drop this share of packets, e.g. 0.5%%")
    upp.add_argument("--drop-udp", default=None, metavar="PORT[:N]",
                     help="with --rtt: also drop the first N (default 1) UDP datagrams the "
                          "client sends to PORT, e.g. 443 for a lost QUIC Initial (random "
                          "--loss cannot choose which packet); 'lab wan --drop-udp' asks "
                          "again later")
    upp.add_argument("--mtls", action="store_true",
                     help="edge → LB → app nodes over TLS with client certificates from the "
                          "lab CA, each tier verifying the one in front (production profile)")
    upp.add_argument("--metrics", action="store_true",
                     help="also Prometheus and its exporters, scraping every second "
                          "(see 'lab metrics', 'lab dashboard')")
    sub.add_parser("status", help="every tier: address, port, pid, healthy or not, since")
    wan = sub.add_parser("wan", help="the running WAN link (lab up --rtt): drop chosen "
                                     "datagrams from now on")
    wan.add_argument("--drop-udp", required=True, metavar="PORT[:N]",
                     help="drop the next N (default 1) UDP datagrams the client sends to "
                          "PORT: with 443, the next QUIC connection's first Initial is lost")
    met = sub.add_parser("metrics", help="RPS, p95, error rate, cache hit ratio, DB QPS and "
                                         "queue depth over the last seconds (lab up --metrics)")
    met.add_argument("--seconds", type=int, default=60, metavar="N",
                     help="the window: the last N seconds (1-3600, default 60)")
    met.add_argument("--json", action="store_true", help="the series as JSON")
    dash = sub.add_parser("dashboard", help="the live web app with its /dashboard page, "
                                            "plotting the metrics live")
    dash.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1")
    brk = sub.add_parser("break", help="a drill: break a tier (see 'lab break --help')")
    brk.add_argument("target", help="what to break: app-2, db-primary, redis, slow-db, "
                                    "worker, queue-backlog, queue-dlq"
                                    "; at the CDN edge: waf, rate-limit, stale; data: "
                                    "db-pool, slow-query, replica-lag, redis-evict, "
                                    "redis-slow; serving: lb-mistarget, nginx-saturation, "
                                    "app-timeout, app-leak")
    heal = sub.add_parser("heal", help="undo 'lab break TARGET'")
    heal.add_argument("target")
    dlq = sub.add_parser("dlq", help="the dead-letter queue: tasks that failed every retry")
    dlq.add_argument("dlq_action", choices=("list", "replay"),
                     help="list: show them; replay: publish each again (then it is removed)")
    exp = sub.add_parser("experiment", help="measure a comparison the articles assert")
    exp.add_argument("name", help="lb-algorithms, pooling, microcache, retry-storm or mtls")
    exp.add_argument("--requests", type=int, default=200, help="per setting (bounded)")
    exp.add_argument("--concurrency", type=int, default=8)
    exp.add_argument("--out", default=None, metavar="DIR", help="where plots go "
                     "(default <state>/experiments)")
    dep = sub.add_parser("deploy", help="a new version of the site under a paced load: "
                                        "rolling, blue-green, rollback, reset")
    dep.add_argument("how", choices=("rolling", "blue-green", "rollback", "reset"))
    dep.add_argument("--version", default="v2", help="the new version (default v2)")
    dep.add_argument("--json", action="store_true", help="also print the facts as JSON")
    downp = sub.add_parser("down", help="stop everything; no process or port is left")
    downp.add_argument("--purge", action="store_true", help="also remove the state dir")
    return p


def lab_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from whathappens.lab.tier import LabContext as Context

    ctx = Context(state=Path(args.state).resolve())
    if args.action == "install":
        from whathappens.lab.install import install

        ok, words = install()
        print(words)
        return 0 if ok else EXIT_LAB_FAILED
    if args.action == "up":
        return _up(ctx, args)
    if args.action == "status":
        return _status(ctx)
    if args.action == "wan":
        return _wan(ctx, str(args.drop_udp))
    if args.action in ("metrics", "dashboard"):
        from whathappens.lab.metrics_command import main as metrics_main

        return metrics_main(ctx, args)
    if args.action in ("break", "heal"):
        from whathappens.lab.exercises.drills import main as drill

        return drill(ctx, args)
    if args.action == "dlq":
        from whathappens.lab.exercises.drills import dlq_main

        return dlq_main(ctx, str(args.dlq_action))
    if args.action == "experiment":
        from whathappens.lab.exercises.experiments import main as experiment

        return experiment(ctx, args)
    if args.action == "deploy":
        from whathappens.lab.exercises.deploy import main as deploy

        return deploy(ctx, args)
    from whathappens.lab.lab import down

    stopped = down(ctx, purge=args.purge)
    print(f"stopped {len(stopped)} tier(s)" + (f": {', '.join(stopped)}" if stopped else "")
          + (f"; removed {ctx.state}" if args.purge else ""))
    return 0


def _up(ctx: LabContext, args: argparse.Namespace) -> int:
    from whathappens.lab.install import missing_packages, missing_python
    from whathappens.lab.lab import up
    from whathappens.lab.process import LabError

    ctx.profile, ctx.algorithm, ctx.subnet = args.profile, args.algorithm, args.subnet
    ctx.mtls = bool(args.mtls)
    if ctx.mtls and ctx.profile != "production":
        print("whathappens lab: --mtls needs the production profile (tiers to secure "
              "between)", file=sys.stderr)
        return EXIT_LAB_FAILED
    ctx.metrics = bool(args.metrics)
    if args.rtt is not None:
        from whathappens.lab.tiers.wan import parse_drop_udp, parse_duration, parse_loss

        try:
            parse_duration(args.rtt), parse_duration(args.jitter), parse_loss(args.loss)
            if args.drop_udp is not None:
                parse_drop_udp(args.drop_udp)
        except ValueError as err:
            print(f"whathappens lab: {err}", file=sys.stderr)
            return EXIT_LAB_FAILED
        ctx.wan = {"rtt": args.rtt, "jitter": args.jitter, "loss": args.loss}
        if args.drop_udp is not None:
            ctx.wan["drop_udp"] = args.drop_udp
    elif args.drop_udp is not None:
        print("whathappens lab: --drop-udp works on the WAN link: it needs --rtt",
              file=sys.stderr)
        return EXIT_LAB_FAILED
    gaps = [n.package for n in missing_packages(metrics=ctx.metrics)] + missing_python()
    if gaps:
        print(f"whathappens lab: missing {', '.join(gaps)}; run: whathappens lab install",
              file=sys.stderr)
        return EXIT_LAB_FAILED
    from whathappens.lab.process import alive, records

    running = [r.tier for r in records(ctx) if alive(r.pid)]
    if running:
        print(f"whathappens lab: a lab is already running in {ctx.state} "
              f"({len(running)} tiers up); see 'whathappens lab status', or stop it first "
              "with 'whathappens lab down'", file=sys.stderr)
        return EXIT_LAB_FAILED
    t0 = time.monotonic()
    print(f"lab up: profile {ctx.profile}, state in {ctx.state}"
          + (", mTLS between tiers" if ctx.mtls else ""))
    try:
        up(ctx, report=print)
    except (LabError, OSError, ValueError) as err:
        print(f"whathappens lab: could not bring the lab up: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    print(f"lab up in {time.monotonic() - t0:.1f} s")
    if ctx.metrics:
        print(f"metrics: Prometheus scrapes every second; whathappens lab --state {ctx.state} "
              "metrics (or: lab dashboard)")
    if ctx.wan:
        from whathappens.lab.topology import WanNames

        ns = WanNames(ctx.subnet).namespace
        print(f"the client is behind the WAN link (rtt {ctx.wan['rtt']}): "
              f"ip netns exec {ns} whathappens https://www.example.com/ --lab {ctx.state}")
    return 0


def _wan(ctx: LabContext, drop: str) -> int:
    from whathappens.lab.tiers.wan import ask_drop, parse_drop_udp

    try:
        port, count = parse_drop_udp(drop)
        ask_drop(ctx, port, count)
    except (ValueError, LookupError, TimeoutError, OSError) as err:
        print(f"whathappens lab: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    print(f"the WAN link drops the next {count} UDP datagram(s) the client sends to port "
          f"{port} (its log says when: {ctx.log('wan')})")
    return 0


def _status(ctx: LabContext) -> int:
    from whathappens.lab.lab import status

    rows = status(ctx)
    if not rows:
        print("no lab here (whathappens lab up starts one)")
        return 1
    now = time.time()
    print(f"{'tier':<16} {'host':<8} {'address':<18} {'pid':>7}  {'state':<9} since")
    for r in rows:
        where = f"{r.address}:{r.port}" if r.port else r.address
        state = "healthy" if r.healthy else ("unhealthy" if r.running else "down")
        since = f"{now - r.since:.0f} s ago" if r.since and r.running else "-"
        print(f"{r.name:<16} {r.host:<8} {where:<18} {r.pid or '-':>7}  {state:<9} {since}")
    from whathappens.lab.exercises.drills import status_lines

    for line in status_lines(ctx):     # a tier down on purpose says so
        print(line)
    from whathappens.lab.exercises.deploy import status_lines as deploy_lines

    for line in deploy_lines(ctx):     # a version a deploy put in place
        print(line)
    return 0 if all(r.healthy for r in rows) else 1
