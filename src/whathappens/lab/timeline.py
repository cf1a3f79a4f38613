"""One timeline, inside and out: the lab tiers' own log lines, merged into the journey.

The client sends a W3C ``traceparent`` (``--traceparent``, implied by ``--lab``); every tier
logs it beside its own timers:

- nginx (edge, app nodes): ``logs/<tier>.access.jsonl``; a request spans
  ``[time − request_time, time]`` (seconds, millisecond resolution);
- HAProxy: JSON lines in ``logs/lb.log``; a request starts at ``accept_time + (Th + Ti)`` ms
  and lasts ``Ta`` ms, with the queue (Tw), connect (Tc) and response (Tr) timers;
- Django (behind gunicorn): ``logs/<gunicorn tier>.spans.jsonl``, one line per request with
  nanosecond wall-clock times and a span per SQL query and Redis call;
- PostgreSQL (primary, replica): ``logs/db-*.log``, every statement with its own duration and
  the SQL span's traceparent in a comment, so each SQL span gets the server's view beneath it.

All of them run on this machine, so their wall clock is the journey's: a server time maps to
the journey as ``wall_ns − t0_wall_ns``. Server spans go under the HTTP span of the request
whose traceparent they carry, nested outside in (edge ⊃ LB ⊃ app nginx ⊃ Django ⊃ SQL/Redis).
nginx and HAProxy log whole milliseconds, so a span can stick out of its parent by less than
a millisecond; it is clipped to the parent and its raw times are kept in its attributes.
Reads are bounded: only the last ``TAIL_BYTES`` of each log are looked at.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whathappens.contract.facts import ServerFacts
from whathappens.journey import Journey, Span

TAIL_BYTES = 4 * 1024 * 1024
ORDER = {"edge": 0, "lb": 1, "app": 2, "django": 3}


@dataclass
class ServerSpan:
    kind: str                 # "edge" | "lb" | "app" | "django" | "sql" | "redis" | ...
    tier: str
    actor: str
    start_wall_ns: int
    end_wall_ns: int
    traceparent: str
    attrs: dict[str, Any] = field(default_factory=dict)
    children: list[ServerSpan] = field(default_factory=list)


def tail_lines(path: Path, limit: int = TAIL_BYTES) -> Iterator[str]:
    """The lines of the last ``limit`` bytes of a log (the first, partial one dropped)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > limit and lines:
        lines = lines[1:]
    yield from lines


def _json_lines(path: Path, needle: str) -> Iterator[dict[str, Any]]:
    for line in tail_lines(path):
        if needle in line and line.lstrip().startswith("{"):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


def _seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def nginx_spans(path: Path, tier: str, kind: str, role: str, trace_id: str) -> list[ServerSpan]:
    out = []
    for item in _json_lines(path, trace_id):
        end, took = _seconds(item.get("time")), _seconds(item.get("request_time"))
        if end is None or took is None:
            continue
        attrs = {k: item.get(k) for k in (
            "status", "cache", "upstream_addr", "upstream_connect_time",
            "upstream_header_time", "upstream_response_time", "request_time", "request_id",
            "protocol", "ssl_protocol", "ssl_cipher", "ssl_session_reused", "node", "uri")
            if item.get(k) not in (None, "", "-")}
        out.append(ServerSpan(kind, tier, f"{tier} ({role})", int((end - took) * 1e9),
                              int(end * 1e9), str(item.get("traceparent", "")), attrs))
    return out


def haproxy_spans(path: Path, tier: str, role: str, algorithm: str,
                  trace_id: str) -> list[ServerSpan]:
    out = []
    for item in _json_lines(path, trace_id):
        accept = _seconds(item.get("accept_time"))
        if accept is None:
            continue
        th, ti, ta = (int(item.get(k) or 0) for k in ("Th", "Ti", "Ta"))
        start = accept + (max(th, 0) + max(ti, 0)) / 1000
        attrs = {k: item.get(k) for k in ("server", "backend", "status", "Tq", "Tw", "Tc",
                                           "Tr", "Ta", "termination", "retries", "queues",
                                           "request_id")}
        attrs["algorithm"] = algorithm
        attrs["timers"] = ("Tw: waited in queue, Tc: connect to the server, Tr: server "
                           "response headers, Ta: whole request (ms)")
        out.append(ServerSpan("lb", tier, f"{tier} ({role})", int(start * 1e9),
                              int((start + max(ta, 0) / 1000) * 1e9),
                              str(item.get("traceparent", "")), attrs))
    return out


# '2026-11-22 00:56:46.315 UTC [23653] site@site app=… LOG:  duration: 0.331 ms  statement: …
# /*traceparent='00-<trace>-<span>-01'*/' — log_line_prefix '%m [%p] …' and
# log_min_duration_statement = 0 (every statement, logged when it ends, with its duration).
_PG_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[(?P<pid>\d+)\].*?"
    r"duration: (?P<ms>[\d.]+) ms\s+(?:statement|execute [^:]*): .*"
    r"traceparent='00-[0-9a-f]{32}-(?P<span>[0-9a-f]{16})-01'")


def postgres_statements(path: Path, tier: str, trace_id: str) -> dict[str, ServerSpan]:
    """PostgreSQL's own timing of each statement of the trace, keyed by the SQL span id that
    Django put in the statement's comment (sqlcommenter)."""
    out: dict[str, ServerSpan] = {}
    for line in tail_lines(path):
        if trace_id not in line:
            continue
        m = _PG_LINE.match(line)
        if m is None:
            continue
        end = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        end_ns = int(end.timestamp() * 1e9)
        took_ns = int(float(m["ms"]) * 1e6)
        out[m["span"]] = ServerSpan(
            "postgres", tier, f"PostgreSQL {tier} (backend pid {m['pid']})",
            end_ns - took_ns, end_ns, "",
            {"duration_ms": float(m["ms"]), "backend_pid": int(m["pid"]),
             "note": "PostgreSQL's own statement time; its log stamps whole milliseconds"})
    return out


def gunicorn_requests(path: Path, trace_id: str) -> dict[str, dict[str, Any]]:
    """gunicorn's own access log (JSON lines in the tier's log): per traceparent, the worker
    that served the request and gunicorn's timing of it (from its parser to the last byte)."""
    out: dict[str, dict[str, Any]] = {}
    for item in _json_lines(path, trace_id):
        if "duration_us" in item and item.get("traceparent"):
            out[str(item["traceparent"])] = {
                "gunicorn_worker_pid": str(item.get("pid", "")).strip("<>"),
                "gunicorn_request_ms": round(int(item["duration_us"]) / 1000, 3)}
    return out


def django_spans(path: Path, tier: str, node: str, trace_id: str,
                 statements: dict[str, ServerSpan] | None = None,
                 gunicorn: dict[str, dict[str, Any]] | None = None) -> list[ServerSpan]:
    out = []
    for item in _json_lines(path, trace_id):
        if item.get("trace_id") != trace_id:
            continue
        traceparent = f"00-{trace_id}-{item.get('parent_id')}-01"
        top = ServerSpan("django", tier, f"{node} gunicorn → Django", int(item["start_ns"]),
                         int(item["end_ns"]), traceparent,
                         {k: item.get(k) for k in ("view", "status", "method", "path", "pid")})
        # the proxies pass the client's traceparent through unchanged: same key as Django's
        top.attrs.update((gunicorn or {}).get(traceparent, {}))
        for s in item.get("spans") or []:
            kind = str(s.get("name", "span"))
            alias = s.get("alias")
            actor = {"sql": f"PostgreSQL ({alias}) via PgBouncer",
                     "redis": "Redis",
                     "connect": f"new database connection ({alias})",
                     "queue": "Celery task published (Redis broker)"}.get(kind, kind)
            attrs = {k: v for k, v in s.items() if k not in ("start_ns", "end_ns", "name")}
            span = ServerSpan(kind, tier, actor, int(s["start_ns"]), int(s["end_ns"]),
                              traceparent, attrs)
            statement = (statements or {}).get(str(s.get("span_id")))
            if kind == "sql" and statement is not None:
                statement.traceparent = traceparent
                span.children.append(statement)
            top.children.append(span)
        out.append(top)
    return out


def collect(state: Path, trace_id: str) -> list[ServerSpan]:
    """Every tier's spans for ``trace_id``, from the lab in ``state``."""
    try:
        manifest = json.loads((state / "lab.json").read_text())
    except (OSError, ValueError):
        return []
    logs = state / "logs"
    algorithm = str(manifest.get("algorithm", "roundrobin"))
    hosts = manifest.get("hosts", {})
    spans: list[ServerSpan] = []
    statements: dict[str, ServerSpan] = {}
    for tier in manifest.get("tiers", []):
        if str(tier["name"]).startswith("db-"):
            statements.update(postgres_statements(logs / f"{tier['name']}.log", tier["name"],
                                                  trace_id))
    for tier in manifest.get("tiers", []):
        name, host = tier["name"], tier["host"]
        role = str(hosts.get(host, {}).get("role", tier.get("role", "")))
        if name.endswith("-nginx"):
            spans += nginx_spans(logs / f"{name}.access.jsonl", name, "app", role, trace_id)
        elif name in ("edge", "nginx"):
            spans += nginx_spans(logs / f"{name}.access.jsonl", name, "edge", role, trace_id)
        elif name == "lb":
            spans += haproxy_spans(logs / f"{name}.log", name, role, algorithm, trace_id)
        elif name.endswith("gunicorn"):
            spans += django_spans(logs / f"{name}.spans.jsonl", name, host, trace_id,
                                  statements, gunicorn_requests(logs / f"{name}.log", trace_id))
    return spans


def wait_and_collect(state: Path, trace_id: str, expected: int,
                     timeout: float = 1.5) -> list[ServerSpan]:
    """Logs are written as requests end: give the last lines a moment to land."""
    deadline = time.monotonic() + timeout
    while True:
        spans = collect(state, trace_id)
        if len({s.kind for s in spans}) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def merge(journey: Journey, spans: list[ServerSpan]) -> int:
    """Put server spans under the HTTP spans they belong to; returns how many were placed."""
    t0 = journey.clock.wall_origin_ns
    placed = 0
    for http in (s for s in journey.all_spans() if s.name == "http"):
        traceparent = http.attrs.get("traceparent")
        if not traceparent:
            continue
        mine = sorted((s for s in spans if s.traceparent == traceparent),
                      key=lambda s: (ORDER.get(s.kind, 9), s.start_wall_ns))
        parent = http
        for server in mine:
            parent = _attach(journey, parent, server, t0)
            placed += sum(1 for _ in parent.walk())
        if mine:
            http.facts.inside = [s.tier for s in mine]
    return placed


def _attach(journey: Journey, parent: Span[Any], server: ServerSpan,
            t0: int) -> Span[ServerFacts]:
    start, end = server.start_wall_ns - t0, server.end_wall_ns - t0
    facts = ServerFacts(tier=server.tier, clock="the tier's log, wall clock of this machine "
                        "aligned at t0", raw_start_ms=round(start / 1e6, 3),
                        raw_end_ms=round(end / 1e6, 3),
                        extra={k: v for k, v in server.attrs.items()
                               if k not in ("tier", "clock", "raw_start_ms", "raw_end_ms",
                                            "interrupted")})
    lo = parent.start_ns
    hi = parent.end_ns if parent.end_ns is not None else end
    span = journey.span(f"server.{server.kind}", "server", server.actor, "application",
                        facts, parent=parent, start_ns=min(max(start, lo), hi))
    span.end_ns = max(min(end, hi), span.start_ns)
    for child in server.children:
        _attach(journey, span, child, t0)
    return span
