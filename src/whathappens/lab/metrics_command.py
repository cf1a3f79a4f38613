"""``whathappens lab metrics`` and ``lab dashboard``.

``lab metrics`` prints each derived metric (lab/promql.py) over the last N seconds: its
value now, its mean and its peak, and where it comes from (lab/metrics_report.py).
``lab dashboard`` runs the live web app (``whathappens serve --lab``) whose /dashboard page
plots them, polling the app's own /api/metrics (which asks Prometheus server-side).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from whathappens.errors import EXIT_LAB_FAILED
from whathappens.lab.metrics_report import NoMetrics, collect, prometheus_endpoint, table
from whathappens.lab.promql import MAX_SECONDS, RATE, PrometheusError

if TYPE_CHECKING:
    from whathappens.lab.tier import LabContext


def main(ctx: LabContext, args: argparse.Namespace) -> int:
    if args.action == "dashboard":
        return dashboard(ctx, int(args.port))
    seconds = int(args.seconds)
    if not 1 <= seconds <= MAX_SECONDS:
        print(f"whathappens lab: --seconds must be between 1 and {MAX_SECONDS}",
              file=sys.stderr)
        return EXIT_LAB_FAILED
    end = time.time()
    try:
        series = collect(ctx, end - seconds, end)
        where = "{}:{}".format(*prometheus_endpoint(ctx))
    except (NoMetrics, PrometheusError) as err:
        print(f"whathappens lab: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    if args.json:
        print(json.dumps({"start": end - seconds, "end": end,
                          "series": [s.to_json() for s in series]}, indent=1))
        return 0
    print(f"the last {seconds} s, from Prometheus at {where} (scraped every 1 s; "
          f"rates over {RATE}; last = the latest second with a value, on Prometheus's clock)")
    for line in table(series):
        print(line)
    return 0


def dashboard(ctx: LabContext, port: int) -> int:
    try:
        prometheus_endpoint(ctx)
    except NoMetrics as err:
        print(f"whathappens lab: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    print(f"the dashboard: http://127.0.0.1:{port}/dashboard (Ctrl-C stops it)", flush=True)
    # The live web app itself (commands/serve.py sits above the lab: run, not imported).
    argv = [sys.executable, "-m", "whathappens", "serve", "--lab", str(ctx.state),
            "--port", str(port), "--no-browser"]
    os.execv(sys.executable, argv)
