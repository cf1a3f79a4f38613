"""The lab's derived metrics: PromQL over Prometheus's HTTP API, asked from Python, bounded.

Each metric is one PromQL expression over what the exporters of ``lab up --metrics`` give
(tiers/metrics.py), evaluated by Prometheus for every second of a window (``query_range``,
step 1 s). Rates are over the last ``RATE`` of samples scraped every second, so a figure at
time t describes the requests of [t − 5 s, t]. The clock is Prometheus's: each sample is
stamped when it was scraped, in Unix seconds.

Reads are bounded: a few seconds per request, a capped response, a window of at most an
hour; Prometheus is on the lab's own address and only this module (and so the web app's
JSON endpoint, server-side) talks to it.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse
from dataclasses import dataclass, field

RATE = "5s"
STEP = 1.0
MAX_SECONDS = 3600
MAX_RESPONSE = 4 * 1024 * 1024
TIMEOUT = 5.0
CACHE_HITS = "HIT|STALE|UPDATING|REVALIDATED"   # $upstream_cache_status served from the cache
HIT_SELECTOR = f"{{cache=~'{CACHE_HITS}'}}"
CACHED_SELECTOR = "{cache!=''}"                 # the requests the edge cache was asked about
ERROR_SELECTOR = "{status=~'5..'}"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str           # "req/s", "s", "ratio", "tx/s", "tasks"
    expr: str
    source: str         # where the numbers come from, in words


def _edge(selector: str = "") -> str:
    return f"sum(rate(edge_requests_total{selector}[{RATE}]))"


METRICS: tuple[Metric, ...] = (
    Metric("rps", "requests/s at the edge", "req/s", _edge(),
           "edge access log lines (mtail), every response incl. cache hits"),
    Metric("p95", "p95 latency at the edge", "s",
           f"histogram_quantile(0.95, sum by (le) (rate(edge_request_seconds_bucket[{RATE}])))",
           "edge $request_time histogram (mtail; HAProxy 2.6 exports no histogram)"),
    Metric("error_rate", "error rate (5xx share)", "ratio",
           f"({_edge(ERROR_SELECTOR)} or vector(0)) / {_edge()}",
           "edge responses with a 5xx status / all edge responses (mtail)"),
    Metric("cache_hit_ratio", "edge cache hit ratio", "ratio",
           f"({_edge(HIT_SELECTOR)} or vector(0)) / {_edge(CACHED_SELECTOR)}",
           f"edge $upstream_cache_status in {CACHE_HITS} / responses with a cache status"),
    Metric("lb_rps", "requests/s at the load balancer", "req/s",
           f'sum(rate(haproxy_frontend_http_requests_total{{proxy="www"}}[{RATE}]))',
           "HAProxy's own exporter, frontend www (cache misses and POP 2)"),
    Metric("db_qps", "DB transactions/s", "tx/s",
           f'sum(rate(pg_stat_database_xact_commit{{datname="site"}}[{RATE}]))',
           "pg_stat_database.xact_commit of the site's database, primary + replica "
           "(postgres-exporter)"),
    Metric("queue_depth", "queue depth (Celery)", "tasks",
           'sum(redis_key_size{key="celery"})',
           "LLEN celery in the broker's Redis db (redis-exporter -check-single-keys)"),
)


class PrometheusError(Exception):
    """Prometheus did not answer, or not with a result."""


@dataclass
class Series:
    metric: Metric
    points: list[tuple[float, float | None]] = field(default_factory=list)

    def values(self) -> list[float]:
        return [v for _, v in self.points if v is not None]

    @property
    def last(self) -> float | None:
        vals = self.values()
        return vals[-1] if vals else None

    @property
    def mean(self) -> float | None:
        vals = self.values()
        return sum(vals) / len(vals) if vals else None

    @property
    def peak(self) -> float | None:
        vals = self.values()
        return max(vals) if vals else None

    def to_json(self) -> dict[str, object]:
        return {"key": self.metric.key, "label": self.metric.label, "unit": self.metric.unit,
                "source": self.metric.source, "expr": self.metric.expr,
                "last": self.last, "mean": self.mean, "max": self.peak,
                "points": [[t, v] for t, v in self.points]}


def _get(address: str, port: int, path: str, params: dict[str, str]) -> object:
    conn = http.client.HTTPConnection(address, port, timeout=TIMEOUT)
    try:
        conn.request("GET", f"{path}?{urllib.parse.urlencode(params)}")
        response = conn.getresponse()
        body = response.read(MAX_RESPONSE + 1)
    except OSError as err:
        raise PrometheusError(f"Prometheus at {address}:{port} did not answer: {err}") from None
    finally:
        conn.close()
    if len(body) > MAX_RESPONSE:
        raise PrometheusError(f"Prometheus's answer is over {MAX_RESPONSE} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise PrometheusError(f"Prometheus answered {response.status}, not JSON") from None
    if not isinstance(data, dict) or data.get("status") != "success":
        why = data.get("error") if isinstance(data, dict) else None
        raise PrometheusError(f"Prometheus: {why or 'no result'}")
    return data.get("data")


def _number(value: object) -> float | None:
    try:
        out = float(str(value))
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def parse_matrix(data: object) -> list[tuple[float, float | None]]:
    """The first series of a query_range answer as (time, value) (NaN, ±Inf: None)."""
    if not isinstance(data, dict):
        return []
    result = data.get("result")
    if not isinstance(result, list) or not result or not isinstance(result[0], dict):
        return []
    out: list[tuple[float, float | None]] = []
    for pair in result[0].get("values") or []:
        if isinstance(pair, list) and len(pair) == 2:
            t = _number(pair[0])
            if t is not None:
                out.append((t, _number(pair[1])))
    return out


def query_range(endpoint: tuple[str, int], expr: str, start: float, end: float,
                step: float = STEP) -> list[tuple[float, float | None]]:
    if end - start > MAX_SECONDS:
        start = end - MAX_SECONDS
    data = _get(*endpoint, "/api/v1/query_range",
                {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                 "step": f"{step:g}"})
    return fill(parse_matrix(data), start, end, step)


def fill(points: list[tuple[float, float | None]], start: float, end: float,
         step: float) -> list[tuple[float, float | None]]:
    """Prometheus leaves out the steps with no value: each step of the window, None there."""
    have = {round(t, 3): v for t, v in points}
    out = []
    n = int((end - start) / step + 1e-9)
    for i in range(n + 1):
        t = round(start + i * step, 3)
        out.append((t, have.get(t)))
    return out


def window(endpoint: tuple[str, int], start: float, end: float,
           metrics: tuple[Metric, ...] = METRICS) -> list[Series]:
    """Every metric for each second of [start, end] (at most the last MAX_SECONDS)."""
    start, end = float(math.floor(start)), float(math.floor(end))
    return [Series(m, query_range(endpoint, m.expr, start, end)) for m in metrics]
