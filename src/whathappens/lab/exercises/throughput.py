"""Which client was the limit: the same hot page at the edge, from three clients.

The micro-cache experiment's own rows come from the project's Python client (it needs
each response's X-Microcache header, and a client address per worker for the app node's
per-client rate limit). For the throughput question the same page is asked at the CDN edge
(TLS, loopback, answered from the edge cache; the edge has no per-client limit, and wrk and
h2load connect from one address) by the Python client, wrk (HTTP/1.1) and h2load (HTTP/2),
with the same number of connections, and the rows are put side by side. Whichever client
reaches the most requests per second shows how far the others were from nginx's limit: a
client that reaches a small fraction of another's rate on the same page was its own limit.
All three share the machine's cores with nginx, so even the best figure is a lower bound
for nginx.
"""

from __future__ import annotations

from typing import Any

from whathappens.lab.exercises import load
from whathappens.lab.exercises.loadtools import (
    PER_CONNECTION,
    ToolError,
    ToolResult,
    run_h2load,
    run_wrk,
)
from whathappens.lab.topology import SITE

TOOL_SECONDS = 3.0        # wrk's run; h2load's is a count (connections × PER_CONNECTION)
LIMIT_RATIO = 2.0         # a client below half the best rate was its own limit


def python_row(result: load.LoadResult, connections: int) -> ToolResult:
    """The Python client's run, in the tools' terms."""
    s = result.summary()
    return ToolResult("python (load.py)", protocol="http/1.1", requests=len(result.samples),
                      ok=len(result.ok), failed=len(result.failed), seconds=result.seconds,
                      rps=float(s["rps"] or 0), p50_ms=s["p50_ms"], p95_ms=s["p95_ms"],
                      p99_ms=result.percentile(99), max_ms=s["max_ms"],
                      command=[f"load.run(..., concurrency={connections}, tls=True)"])


def run_tools(address: str, port: int, connections: int) -> tuple[list[ToolResult], list[str]]:
    """wrk and h2load on the edge's hot page; a tool that is missing or fails is a line."""
    results: list[ToolResult] = []
    problems: list[str] = []
    def wrk() -> ToolResult:
        return run_wrk(address, port, "/", host=SITE, connections=connections,
                       seconds=TOOL_SECONDS)

    def h2load() -> ToolResult:
        return run_h2load(address, port, "/", host=SITE, connections=connections,
                          requests=connections * PER_CONNECTION)

    runs = (wrk, h2load)
    for run in runs:
        try:
            results.append(run())
        except ToolError as err:
            problems.append(f"not run: {err}")
    return results, problems


def limit_line(rows: list[ToolResult]) -> str:
    """Which client was the limit, from the rates on the same page."""
    best = max(rows, key=lambda r: r.rps)
    slow = [r for r in rows if r.rps * LIMIT_RATIO < best.rps]
    if best.rps <= 0:
        return "no client completed a request: nothing to compare"
    if not slow:
        return (f"all clients within {LIMIT_RATIO:g}× of {best.tool}'s {best.rps:,.0f} req/s: "
                "the limit is on the server's side (or the cores all of them share)")
    named = ", ".join(f"{r.tool} {r.rps:,.0f} req/s ({best.rps / max(r.rps, 1):.1f}× slower)"
                      for r in slow)
    return (f"the limit was the client: {named} on the same page where {best.tool} reached "
            f"{best.rps:,.0f} req/s. {best.tool}'s figure is a lower bound for nginx (the "
            "tool and nginx share the 2 cores).")


def table_lines(rows: list[ToolResult], connections: int) -> list[str]:
    head = (f"{'client':<17}  {'protocol':<8}  {'req/s':>7}  {'p50 ms':>7}  {'p95 ms':>7}  "
            f"{'p99 ms':>7}  {'requests':>8}  {'failed':>6}")
    out = [f"The same hot page at the edge (TLS, loopback, edge cache HIT), {connections} "
           "connections per client (python and h2load: a count of requests; wrk: "
           f"{TOOL_SECONDS:g} s):", head, "-" * len(head)]
    for r in rows:
        out.append(f"{r.tool:<17}  {r.protocol:<8}  {r.rps:>7.0f}  {_ms(r.p50_ms)}  "
                   f"{_ms(r.p95_ms)}  {_ms(r.p99_ms)}  {r.requests:>8}  {r.failed:>6}")
    return out


def _ms(value: float | None) -> str:
    return f"{value:7.2f}" if value is not None else f"{'-':>7}"


def compare(python: load.LoadResult, address: str, port: int,
            connections: int) -> tuple[list[str], dict[str, Any]]:
    """The table lines and the JSON entry of the edge comparison."""
    rows = [python_row(python, connections)]
    tools, problems = run_tools(address, port, connections)
    rows += tools
    lines = table_lines(rows, connections)
    lines.append(limit_line(rows))
    lines += [f"  {p}" for p in problems]
    lines.append("wrk: requests / wall time, latency percentiles from its own histogram (µs); "
                 "h2load: requests / wall time, percentiles from its per-request log; "
                 f"h2load sends at most {PER_CONNECTION} requests per connection (nginx's "
                 "keepalive_requests closes one at 1000).")
    extra = {"edge_clients": [r.summary() for r in rows], "edge_limit": limit_line(rows),
             "edge_problems": problems}
    return lines, extra
