"""The lab's metrics for one window, as a report sees them: a table of every derived metric
(lab/promql.py) with its value at the window's end, its mean and its peak, and where it comes
from; the dashboard's JSON; and the paragraph a drill or an experiment report ends with.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from whathappens.lab.promql import RATE, PrometheusError, Series, window

if TYPE_CHECKING:
    from whathappens.lab.tier import LabContext

PROMETHEUS_TIER = "prometheus"
SCRAPE_LAG = 1.5          # seconds: one scrape interval, and the scrape's own time


class NoMetrics(Exception):
    """No lab here, or one started without --metrics."""


def prometheus_endpoint(ctx: LabContext) -> tuple[str, int]:
    from whathappens.lab.process import alive, records
    from whathappens.lab.running import LabNotRunning, open_lab

    try:
        lab = open_lab(ctx)
    except LabNotRunning as err:
        raise NoMetrics(str(err)) from None
    if lab.manifest.tier(PROMETHEUS_TIER) is None:
        raise NoMetrics(f"the lab in {ctx.state} runs without metrics "
                        "(start it with: whathappens lab up --metrics)")
    if not any(r.tier == PROMETHEUS_TIER and alive(r.pid) for r in records(ctx)):
        raise NoMetrics("Prometheus is not running (whathappens lab status)")
    return lab.endpoint(PROMETHEUS_TIER)


def collect(ctx: LabContext, start: float, end: float) -> list[Series]:
    """Every metric over [start, end]; NoMetrics or PrometheusError when it cannot."""
    return window(prometheus_endpoint(ctx), start, end)


def dashboard_json(ctx: LabContext, seconds: int) -> dict[str, Any]:
    """What /api/metrics answers: the last ``seconds`` of every series, or why there is none."""
    seconds = max(10, min(int(seconds), 900))
    end = time.time()
    try:
        series = collect(ctx, end - seconds, end)
    except (NoMetrics, PrometheusError) as err:
        return {"error": str(err)}
    return {"start": end - seconds, "end": end, "step": 1, "rate_window": RATE,
            "series": [s.to_json() for s in series]}


def shown(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    if unit == "tasks":
        return f"{value:.0f}"
    return f"{value:.1f}"


def table(series: list[Series]) -> list[str]:
    lines = [f"  {'metric':<34} {'last':>9} {'mean':>9} {'max':>9}  unit   from"]
    for s in series:
        m = s.metric
        unit = {"s": "", "ratio": ""}.get(m.unit, m.unit)
        lines.append(f"  {m.label:<34} {shown(s.last, m.unit):>9} {shown(s.mean, m.unit):>9} "
                     f"{shown(s.peak, m.unit):>9}  {unit:<6} {m.source}")
    return lines


def window_lines(ctx: LabContext, start: float, end: float) -> list[str]:
    """A report's paragraph on the metrics of its window; [] when the lab has none."""
    try:
        series = collect(ctx, start, end)
    except (NoMetrics, PrometheusError):
        return []
    return [f"metrics of this window ({end - start:.0f} s, Prometheus, scraped every 1 s; "
            f"rates over {RATE}):", *table(series)]


def wall_clock() -> float:
    """Now on the wall clock (Unix seconds): the clock Prometheus stamps samples with."""
    return time.time()


def cite_metrics(ctx: LabContext, start: float, end: float | None = None) -> None:
    """Print the metrics of [start, end] (end: now) under a report; nothing without them."""
    end = wall_clock() if end is None else end
    if end - start < 1:
        return
    try:
        prometheus_endpoint(ctx)
    except NoMetrics:
        return
    # The window's last second is in Prometheus once its next scrape (1 s) has been stored.
    time.sleep(max(0.0, end + SCRAPE_LAG - wall_clock()))
    lines = window_lines(ctx, start, end)
    if lines:
        print()
        print("\n".join(lines))
