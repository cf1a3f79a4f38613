"""Per-request tracing: one JSON line per request, with a span for each SQL query and Redis call.

The middleware reads the W3C ``traceparent`` header (keeping its trace id, or making one),
times the request, and while the view runs records:

- Django's own phases: the middleware's request half (up to the view: ``ViewBoundary``, the
  innermost middleware, stamps it in its ``process_view``), the view, the middleware's
  response half; every template render (``templating.py``);
- every SQL query, on every database alias, through ``connection.execute_wrapper``: the
  alias, where its connection goes (host:port, database), the SQL as sent (parameters
  bound), its time and row count. With the request header ``X-Explain: 1`` the request's
  main query (its first SELECT) is explained step by step (``explain.py``: EXPLAIN ANALYZE
  with buffers, the rejected plan really run, the B-tree depth, pg_stat_statements), its
  cost an ``explain`` span of its own; any later SELECT gets its plain plan (``EXPLAIN
  (ANALYZE false)``). Each query goes to PostgreSQL with a sqlcommenter comment,
  ``/*traceparent='00-<trace id>-<span id>-01'*/``, so the statement log of the server
  (PgBouncer passes it through) names the trace and the span;
- every new database connection (``db/base.py``: the connect and session setup), and per
  alias whether the request's connection was new or kept (``CONN_MAX_AGE``), in the line's
  ``connections`` (with Redis's, from redis-py's pool);
- every Redis command of the cache and the sessions, from inside the Redis client
  (``cache.py``), so a span is one round trip: ``GET :1:product:3``, ``SETEX …``;
- the Celery publish of a task (``views.py``).

It then writes ONE line to the span log (``WHATHAPPENS_SPAN_LOG``, else stderr)::

    {"trace_id": "…32 hex…", "parent_id": "…16 hex… or null", "span_id": "…16 hex…",
     "tier": "app-1", "kind": "django", "pid": 1234, "start_ns": …, "end_ns": …,
     "method": "GET", "path": "/", "status": 200, "view": "home",
     "spans": [{"name": "sql", "start_ns": …, "end_ns": …, "span_id": "…", "alias": "replica",
                "sql": "SELECT … WHERE … slug = 'home' …", "rows": 1, "explain": "…"},
               {"name": "redis", "start_ns": …, "end_ns": …, "alias": "default",
                "command": "GET :1:product:3", "result": "miss"}, …],
     "connections": [{"hop": "app → 127.0.93.10:6432 (site_ro)", "alias": "replica",
                      "new": false, "age_ms": 5120.3, "requests": 7, …}]}

and sets ``Server-Timing: app;dur=3.1, db;dur=0.8;desc="2 queries", cache;dur=0.2;desc="1
call"`` so a client without the logs still sees the inside durations. Times are wall-clock
nanoseconds (``time.time_ns()``): the client merges spans on the same machine's clock.
Health checks (``/healthz``, every 500 ms from HAProxy) are logged only when they carry a
``traceparent``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponseBase

from whathappens.lab.site.explain import explain_query

Span = dict[str, Any]
SQL_TEXT_MAX = 4000

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) from a W3C ``traceparent`` header, or None if invalid."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if m is None or m[1] == "ff" or set(m[2]) == {"0"} or set(m[3]) == {"0"}:
        return None
    return m[2], m[3]


def new_id(nbytes: int) -> str:
    return secrets.token_hex(nbytes)


@dataclass
class Trace:
    """The spans of one unit of work (a request, a task) under one trace id."""

    trace_id: str
    parent_id: str | None
    span_id: str = field(default_factory=lambda: new_id(8))
    explain: bool = False
    spans: list[Span] = field(default_factory=list)
    explained: bool = False          # the main query (the first SELECT) has had its EXPLAIN
    connections: dict[str, Span] = field(default_factory=dict)   # per database alias
    view_ns: tuple[int, int | None] | None = None    # ViewBoundary's stamps

    @classmethod
    def from_header(cls, traceparent: str | None, *, explain: bool = False) -> Trace:
        parsed = parse_traceparent(traceparent)
        if parsed is None:
            return cls(new_id(16), None, explain=explain)
        return cls(parsed[0], parsed[1], explain=explain)

    @property
    def traceparent(self) -> str:
        """The header for the next hop: our trace, our span as its parent."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    def add(self, span: Span) -> None:
        self.spans.append(span)

    def note_connection(self, wrapper: Any) -> None:
        """The first query on a database alias: was its connection new or reused, and how
        old? (``db/base.py`` stamps each connection when it opens; a reused one was kept
        by Django's ``CONN_MAX_AGE`` from an earlier request of this worker thread.)"""
        if wrapper.alias in self.connections:
            return
        opened = getattr(wrapper, "lab_opened_ns", None)
        connect = next((s for s in reversed(self.spans)
                        if s["name"] == "connect" and s.get("alias") == wrapper.alias), None)
        db = wrapper.settings_dict
        wrapper.lab_requests = getattr(wrapper, "lab_requests", 0) + 1   # this one included
        self.connections[wrapper.alias] = {
            "hop": f"app → {db['HOST']}:{db['PORT']} ({db['NAME']})",
            "alias": wrapper.alias, "new": connect is not None,
            "connect_ms": (round((connect["end_ns"] - connect["start_ns"]) / 1e6, 3)
                           if connect is not None else None),
            "age_ms": (round((time.time_ns() - opened) / 1e6, 1)
                       if opened is not None else None),
            "requests": wrapper.lab_requests,
            "conn_max_age_s": db.get("CONN_MAX_AGE"),
        }

    def totals(self, name: str) -> tuple[int, float]:
        """How many spans named ``name``, and their total time in milliseconds."""
        mine = [s for s in self.spans if s["name"] == name]
        return len(mine), sum(s["end_ns"] - s["start_ns"] for s in mine) / 1e6


_current: ContextVar[Trace | None] = ContextVar("whathappens_trace", default=None)


def current() -> Trace | None:
    """The trace this thread is recording into, if any."""
    return _current.get()


class SQLRecorder:
    """A ``connection.execute_wrapper``: one span per query on one alias."""

    def __init__(self, trace: Trace, alias: str) -> None:
        self.trace = trace
        self.alias = alias

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: dict[str, Any]) -> Any:
        span_id = new_id(8)
        # sqlcommenter: PostgreSQL's statement log then names the trace and this very span.
        comment = f" /*traceparent='00-{self.trace.trace_id}-{span_id}-01'*/"
        self.trace.note_connection(context["connection"])
        start = time.time_ns()
        error: str | None = None
        try:
            return execute(sql + comment, params, many, context)
        except Exception as e:
            error = f"{type(e).__name__}: {e}".strip()
            raise
        finally:
            end = time.time_ns()
            self.trace.add(self._span(context, sql, params, many, comment, error,
                                      (start, end, span_id)))

    def _span(self, context: dict[str, Any], sql: str, params: Any, many: bool, comment: str,
              error: str | None, when: tuple[int, int, str]) -> Span:
        cursor = context["cursor"]
        text = self._text(context, sql, params).removesuffix(comment)
        db = context["connection"].settings_dict
        span: Span = {"name": "sql", "start_ns": when[0], "end_ns": when[1],
                      "span_id": when[2], "alias": self.alias, "sql": text,
                      "server": f"{db['HOST']}:{db['PORT']}", "database": db["NAME"],
                      "rows": cursor.rowcount if error is None else None}
        if many:
            span["many"] = len(params) if isinstance(params, list | tuple) else None
        if error is not None:
            span["error"] = error[:500]
        elif self.trace.explain and not many and _is_select(sql):
            if not self.trace.explained:
                # the request's main query (its first SELECT): the database, step by step
                self.trace.explained = True
                began = time.time_ns()
                span["explain"] = explain_query(context["connection"].connection, sql,
                                                params)
                self.trace.add({"name": "explain", "start_ns": began,
                                "end_ns": time.time_ns(), "alias": self.alias,
                                "note": "EXPLAIN ANALYZE twice, the B-tree depth and "
                                        "pg_stat_statements: X-Explain's cost, in the view"})
            else:
                span["explain"] = _explain(context, sql, params)
        return span

    @staticmethod
    def _text(context: dict[str, Any], sql: str, params: Any) -> str:
        """The query as PostgreSQL got it (parameters bound client-side), else as written."""
        text: str | None = None
        try:
            conn = context["connection"]
            text = conn.ops.last_executed_query(context["cursor"].cursor, sql, params)
        except Exception:
            text = None
        return (text or sql)[:SQL_TEXT_MAX]


def _is_select(sql: str) -> bool:
    return sql.lstrip().lstrip("(").upper().startswith(("SELECT", "WITH"))


def _explain(context: dict[str, Any], sql: str, params: Any) -> str:
    """The plan of ``sql`` on the same alias's connection, bypassing the wrappers."""
    try:
        raw = context["connection"].connection
        with raw.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE false) " + sql, params)
            return "\n".join(str(row[0]) for row in cur.fetchall())
    except Exception as e:
        return f"EXPLAIN failed: {type(e).__name__}: {e}"


@contextmanager
def tracing(trace: Trace) -> Iterator[Trace]:
    """Record this thread's SQL (every alias) and Redis calls into ``trace``."""
    token = _current.set(trace)
    try:
        with ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(SQLRecorder(trace, alias)))
            yield trace
    finally:
        _current.reset(token)


class SpanLog:
    """Appends JSON lines to one file (or stderr), one ``write`` per line.

    The file is opened with O_APPEND in each process (gunicorn forks workers, Celery forks
    its pool), so lines from workers and threads do not interleave.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _open(self) -> int:
        path = getattr(settings, "SPAN_LOG", "") or os.environ.get("WHATHAPPENS_SPAN_LOG", "")
        if not path:
            return sys.stderr.fileno()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._fd, self._pid = self._open(), os.getpid()
            os.write(self._fd, line)


span_log = SpanLog()


def server_timing(trace: Trace, total_ms: float) -> str:
    n_sql, sql_ms = trace.totals("sql")
    n_redis, redis_ms = trace.totals("redis")
    parts = [f"app;dur={total_ms:.2f}",
             f'db;dur={sql_ms:.2f};desc="{n_sql} {"query" if n_sql == 1 else "queries"}"',
             f'cache;dur={redis_ms:.2f};desc="{n_redis} {"call" if n_redis == 1 else "calls"}"']
    n_connect, connect_ms = trace.totals("connect")
    if n_connect:
        parts.append(f'dbconnect;dur={connect_ms:.2f};desc="{n_connect} new"')
    n_think, think_ms = trace.totals("think")
    if n_think:
        parts.append(f'think;dur={think_ms:.2f};desc="injected delay"')
    n_explain, explain_ms = trace.totals("explain")
    if n_explain:
        parts.append(f'explain;dur={explain_ms:.2f};desc="X-Explain: extra statements"')
    n_queue, queue_ms = trace.totals("queue")
    if n_queue:
        parts.append(f"queue;dur={queue_ms:.2f}")
    return ", ".join(parts)


MIDDLEWARE_SEEN = "the middleware between tracing and the view (settings.MIDDLEWARE)"


def phase_spans(trace: Trace, after_start: int, end: int) -> list[Span]:
    """Django's own phases, from the stamps ``ViewBoundary`` left: the middleware's request
    half (with URL routing and the process_view hooks, e.g. the CSRF check), the view (with
    its queries and template), the middleware's response half."""
    view = trace.view_ns
    if view is None or view[1] is None:
        return []
    classes = [m.rsplit(".", 1)[-1] for m in settings.MIDDLEWARE[1:] if "ViewBoundary" not in m]
    return [
        {"name": "middleware", "phase": "request", "start_ns": after_start,
         "end_ns": view[0], "middleware": ", ".join(classes),
         "includes": "each middleware's request half, URL routing, process_view hooks"},
        {"name": "view", "start_ns": view[0], "end_ns": view[1]},
        {"name": "middleware", "phase": "response", "start_ns": view[1], "end_ns": end,
         "middleware": ", ".join(reversed(classes)),
         "includes": "each middleware's response half, innermost first"},
    ]


class ViewBoundary:
    """Innermost middleware: stamps where the view starts (its ``process_view`` runs last,
    after every other middleware's) and where it ends (its response comes back here
    first), so the middleware and the view are spans of their own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return self.get_response(request)
        finally:
            trace = current()
            if trace is not None and trace.view_ns is not None:
                trace.view_ns = (trace.view_ns[0], time.time_ns())

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        trace = current()
        if trace is not None:
            trace.view_ns = (time.time_ns(), None)


class TracingMiddleware:
    """Outermost middleware: times the request and writes its span line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        start = time.time_ns()
        header = request.META.get("HTTP_TRACEPARENT")
        trace = Trace.from_header(header, explain=request.META.get("HTTP_X_EXPLAIN") == "1")
        with tracing(trace):
            if settings.THINK_MS > 0 and request.path != "/healthz":
                # LAB ONLY: a node made slow on purpose (WHATHAPPENS_THINK_MS), shown as a
                # span so the slowness is visible, not a mystery.
                think_start = time.time_ns()
                time.sleep(settings.THINK_MS / 1000)
                trace.add({"name": "think", "start_ns": think_start, "end_ns": time.time_ns()})
            inner_start = time.time_ns()
            response = self.get_response(request)
        end = time.time_ns()
        response["Server-Timing"] = server_timing(trace, (end - start) / 1e6)
        response["traceresponse"] = trace.traceparent
        if request.path != "/healthz" or header is not None:
            self.log(request, response, trace, (start, inner_start, end))
        return response

    @staticmethod
    def log(request: HttpRequest, response: HttpResponseBase, trace: Trace,
            times: tuple[int, int, int]) -> None:
        match = request.resolver_match
        span_log.write({
            "trace_id": trace.trace_id, "parent_id": trace.parent_id,
            "span_id": trace.span_id, "tier": settings.NODE, "kind": "django",
            "pid": os.getpid(), "start_ns": times[0], "end_ns": times[2],
            "method": request.method, "path": request.path,
            "status": response.status_code,
            "view": match.url_name if match is not None else None,
            "spans": phase_spans(trace, times[1], times[2]) + trace.spans,
            "connections": list(trace.connections.values()),
        })
