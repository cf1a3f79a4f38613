"""One timeline, inside and out: the lab tiers' own log lines, merged into the journey.

The client sends a W3C ``traceparent`` (``--traceparent``, implied by ``--lab``); every tier
logs it beside its own timers:

- nginx (edge, app nodes): ``logs/<tier>.access.jsonl``; a request spans
  ``[time − request_time, time]`` (seconds, millisecond resolution);
- Caddy (the second POP): ``logs/<tier>.access.jsonl``; a request spans
  ``[ts − duration, ts]`` (seconds, nanosecond resolution);
- HAProxy: JSON lines in its ``logs/<tier>.log``; a request starts at ``accept_time + (Th + Ti)`` ms
  and lasts ``Ta`` ms, with the queue (Tw), connect (Tc) and response (Tr) timers;
- Django (behind gunicorn): ``logs/<gunicorn tier>.spans.jsonl``, one line per request with
  nanosecond wall-clock times and a span per SQL query and Redis call (and gunicorn's own
  timing of the request from its access log, ``logs/<gunicorn tier>.log``);
- PostgreSQL (primary, replica): ``logs/<tier>.log``, every statement with its own duration and
  the SQL span's traceparent in a comment, so each SQL span gets the server's view beneath it.

All of them run on this machine, so their wall clock is the journey's: a server time maps to
the journey as ``wall_ns − t0_wall_ns``. Server spans go under the HTTP span of the request
whose traceparent they carry, nested outside in (edge ⊃ LB ⊃ app nginx ⊃ Django ⊃ SQL/Redis).
nginx and HAProxy log whole milliseconds, so a span can stick out of its parent by less than
a millisecond; it is clipped to the parent and its raw times are kept in its attributes.
Each tier's driver reads its own log (``Tier.trace_spans``, helpers in ``logs.py``); reads
are bounded to the last ``logs.TAIL_BYTES`` of each log.

Background work is not nested: a Celery task the request published (``tiers/celery_spans.py``)
names the request's Django span as its parent, but it ran later, in another process. It is
placed beside the response — under the request's HTTP span, with its own real times, never
clipped into the span — marked ``background``, and a note says when it ran relative to the
response. The client waits for it a bounded ``TASK_WAIT`` seconds after the response.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from whathappens.contract.facts import ServerFacts
from whathappens.journey import Journey, Span
from whathappens.lab.client.cached import FROM_CACHE, refresh_note, split_refresh
from whathappens.lab.logs import ServerSpan
from whathappens.lab.running import Lab, LabNotRunning, open_lab
from whathappens.lab.tier import LabContext

ORDER = {"edge": 0, "pop": 0, "lb": 1, "app": 2, "django": 3}
# Front doors: a request passes one of them (the nginx edge or the Caddy POP), so they count
# as one step, the edge's, when the timeline waits for a request's spans.
FRONT_KINDS = frozenset({"edge", "pop"})


def step_kind(kind: str) -> str:
    return "edge" if kind in FRONT_KINDS else kind


TASK_WAIT = 8.0           # seconds the client waits for a published task to finish
FINAL = ("succeeded", "dead-lettered", "succeeded after a replay from the dead-letter queue")


def collect(state: Path, trace_id: str) -> list[ServerSpan]:
    """Every tier's spans for ``trace_id``, from the lab in ``state``: each tier's driver
    reads its own log; spans that name a parent span go under it."""
    try:
        lab = open_lab(LabContext(state=state))
    except LabNotRunning:
        return []
    spans = nest([span for tier in lab.tiers() for span in tier.trace_spans(lab.ctx, trace_id)])
    for top in spans:
        if top.kind == "django":
            settle_backends(top)
    return spans


def settle_backends(django: ServerSpan) -> None:
    """A PostgreSQL backend that authorized its connection after the request reached
    Django was opened for this request; one from before was kept (by PgBouncer's pool or
    Django's CONN_MAX_AGE)."""
    for span in django.walk():
        for hop in span.connections:
            if span.kind == "postgres" and hop.age_ms is not None and hop.new is None:
                opened = span.start_wall_ns - int(hop.age_ms * 1e6)
                hop.new = opened >= django.start_wall_ns


def join_hops(spans: list[ServerSpan]) -> None:
    """One fact per hop: where the accepting program said new or reused (nginx's
    $connection_requests, HAProxy's connection) and the connecting one timed the connect
    (nginx's $upstream_connect_time, HAProxy's Tc), the two are joined on the accepting
    tier's span. A connect time is kept only for a new connection: on a kept-alive one
    the programs report ~0, which is no connect at all."""
    accepting = {h.hop: h for s in spans for h in s.connections if h.requests is not None}
    for span in spans:
        kept = []
        for hop in span.connections:
            into = accepting.get(hop.hop)
            if into is None or into is hop:
                kept.append(hop)
                continue
            into.connect_ms = hop.connect_ms if into.new else None
            into.evidence = f"{into.evidence}; {hop.evidence}"
        span.connections = kept


def nest(spans: list[ServerSpan]) -> list[ServerSpan]:
    """The spans without a ``parent_id``; each one with a parent_id moved under the span of
    that ``span_id`` (and given its traceparent), or dropped when no such span was found."""
    by_id = {s.span_id: s for top in spans for s in top.walk() if s.span_id}
    out = []
    for span in spans:
        if not span.parent_id:
            out.append(span)
        elif (parent := by_id.get(span.parent_id)) is not None:
            span.traceparent = parent.traceparent
            if span.attrs.get("background"):
                out.append(span)        # it names the request, but ran outside it
            else:
                parent.children.append(span)
    return out


def published(spans: list[ServerSpan]) -> int:
    """How many tasks the requests of these spans published (Django's ``queue`` spans)."""
    return sum(1 for top in spans for s in top.walk()
               if s.kind == "queue" and not s.attrs.get("error"))


def wait_for_tasks(state: Path, trace_id: str, spans: list[ServerSpan],
                   timeout: float = TASK_WAIT) -> list[ServerSpan]:
    """When a request published tasks, wait (bounded) until each has finished: succeeded,
    or dead-lettered after its retries."""
    want = published(spans)
    deadline = time.monotonic() + timeout
    while want:
        done = [s for s in spans if s.kind == "task" and s.attrs.get("outcome") in FINAL]
        if len(done) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
        spans = collect(state, trace_id)
    return spans


def request_kinds(lab: Lab) -> set[str]:
    """The kinds of span a request through the whole lab leaves (one per tier it passes)."""
    return {step_kind(t.span_kind) for t in lab.tiers() if t.span_kind}


def logged_in_full(spans: list[ServerSpan], kinds: set[str],
                   traceparents: frozenset[str] = frozenset()) -> bool:
    """Whether the tiers' logs hold all of the requests sent with ``traceparents``, in a
    lab whose requests leave spans of ``kinds`` (``request_kinds``). With a front tier
    (edge, POP), each request has its front's line: the front logs last, after the tiers
    behind it have answered, and an nginx edge that served a stale copy only after its
    background refresh, whose lines behind the edge come first and must not pass for the
    request's own. Unless every front answered from its cache (nothing behind it was
    asked), as many kinds of tier as ``kinds`` have logged."""
    fronts = [s for s in spans if step_kind(s.kind) == "edge"]
    if "edge" in kinds:
        if not {s.traceparent for s in fronts} >= traceparents:
            return False
        if fronts and all(str(s.attrs.get("cache", "")) in FROM_CACHE for s in fronts):
            return True
    return len({step_kind(s.kind) for s in spans}) >= len(kinds)


def wait_and_collect(state: Path, trace_id: str, kinds: set[str],
                     traceparents: frozenset[str] = frozenset(),
                     timeout: float = 1.5) -> list[ServerSpan]:
    """Logs are written as requests end: give the last lines a moment to land
    (``logged_in_full``), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        spans = collect(state, trace_id)
        if logged_in_full(spans, kinds, traceparents) or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def merge(journey: Journey, spans: list[ServerSpan], names: tuple[str, ...] = ("http",)) -> int:
    """Put server spans under the request spans they belong to (the journey's ``http``
    spans, or the page's ``browser.resource`` ones), matched by traceparent; returns how
    many were placed."""
    t0 = journey.clock.wall_origin_ns
    placed = 0
    for http in (s for s in journey.all_spans() if s.name in names):
        traceparent = http.facts.traceparent
        if not traceparent:
            continue
        mine = sorted((s for s in spans if s.traceparent == traceparent),
                      key=lambda s: (ORDER.get(s.kind, 9), s.start_wall_ns))
        background = [s for s in mine if s.attrs.get("background")]
        mine = [s for s in mine if not s.attrs.get("background")]
        mine, refresh = split_refresh(mine)
        if refresh:
            journey.note("info", "server", refresh_note(refresh))
        join_hops(mine)
        parent = http
        for server in mine:
            parent = _attach(journey, parent, server, t0)
            placed += sum(1 for _ in parent.walk())
        if mine:
            http.facts.inside = [s.tier for s in mine]
        for task in background:
            placed += sum(1 for _ in _beside(journey, http, task, t0).walk())
            journey.note("info", "server", background_note(task, http, t0))
    return placed


def _beside(journey: Journey, http: Span[Any], server: ServerSpan,
            t0: int) -> Span[ServerFacts]:
    """A background span under the request it came from, with its own times: not clipped
    into the request's span, which ended before it did."""
    start, end = server.start_wall_ns - t0, server.end_wall_ns - t0
    facts = ServerFacts(tier=server.tier, clock="the worker's span log, wall clock of this "
                        "machine aligned at t0 (not clipped: background work)",
                        raw_start_ms=round(start / 1e6, 3), raw_end_ms=round(end / 1e6, 3),
                        extra=dict(server.attrs))
    span = journey.span(f"server.{server.kind}", "server", server.actor, "application",
                        facts, parent=http, start_ns=start)
    span.end_ns = max(end, start)
    for child in server.children:
        _beside(journey, span, child, t0)
    return span


def background_note(task: ServerSpan, http: Span[Any], t0: int) -> str:
    """When the task ran, against the response it was published from."""
    end = http.end_ns if http.end_ns is not None else http.start_ns
    run = next((c for c in task.children if c.kind == "celery"), None)
    began = (run.start_wall_ns - t0 - end) / 1e6 if run is not None else None
    a = task.attrs
    when = (f"its first run began {began:.1f} ms after the response ended" if began is not None
            and began >= 0 else f"its first run began {-began:.1f} ms before the response "
            "ended" if began is not None else "it had not run yet")
    return (f"background: task {a.get('task')} ({a.get('task_id')}) was published by this "
            f"request and ran in the Celery worker: {when}; it waited "
            f"{a.get('queue_wait_ms')} ms in the queue, ran {a.get('attempts')} time(s) and "
            f"{a.get('outcome')}, {(task.end_wall_ns - task.start_wall_ns) / 1e6:.1f} ms "
            "from publication to its end (the worker's log). Shown beside the response "
            "with its own times: the response did not wait for it")


def _attach(journey: Journey, parent: Span[Any], server: ServerSpan,
            t0: int) -> Span[ServerFacts]:
    start, end = server.start_wall_ns - t0, server.end_wall_ns - t0
    facts = ServerFacts(tier=server.tier, clock="the tier's log, wall clock of this machine "
                        "aligned at t0", raw_start_ms=round(start / 1e6, 3),
                        raw_end_ms=round(end / 1e6, 3), db_explain=server.db_explain,
                        connections=server.connections,
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
