"""The worker's span lines for one trace, as server spans: each task's life after it was
published — its wait in the queue, each attempt, the retries' countdowns, the dead letter.

The worker writes three kinds of line (``site/tasks.py``), all on this machine's wall clock:

- ``celery-received``: its main process took the message off the queue (``at_ns``);
- ``celery``: one run of the task in a pool process (``start_ns``, ``end_ns``, ``status``,
  ``retries``: 0 for the first run), with ``enqueued_ns``, the time the web request
  published it (a header the publisher set, its own clock: the same machine's);
- ``celery-dead-letter``: the retries were spent; the task was pushed onto the
  dead-letter list.

One ``task`` span per task id, from its publication to its last event, and beneath it, per
attempt: ``queue-wait`` (from the publication, or from the end of the attempt before it for
a retry: its countdown and its second wait in the queue, up to the moment the worker took
it), then ``celery`` (the run), and ``dead-letter`` at the end if it came to that. The task
span is marked ``background``: it names the web request that published it as its parent
(``parent_id``, that request's Django span), but it did not run inside it, and the timeline
shows it beside the response with its own times (``client/timeline.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from whathappens.lab.logs import ServerSpan

KINDS = ("celery-received", "celery", "celery-dead-letter")
TASK_ACTOR = "Celery task {task} (background work the request queued)"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _ms(a: int, b: int) -> float:
    return round((b - a) / 1e6, 3)


def group(items: Iterable[dict[str, Any]], trace_id: str) -> dict[str, list[dict[str, Any]]]:
    """The worker's lines of ``trace_id``, by task id, in the order they were written."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if item.get("trace_id") != trace_id or item.get("kind") not in KINDS:
            continue
        task_id = str(item.get("task_id") or "")
        if task_id:
            out.setdefault(task_id, []).append(item)
    return out


def task_span(task_id: str, lines: list[dict[str, Any]], tier: str,
              trace_id: str) -> ServerSpan | None:
    """One task's span with its waits and attempts; None without a run or a publication."""
    runs = sorted((x for x in lines if x.get("kind") == "celery"
                   and _int(x.get("start_ns")) is not None and _int(x.get("end_ns")) is not None),
                  key=lambda x: int(x["start_ns"]))
    received = sorted(int(x["at_ns"]) for x in lines
                      if x.get("kind") == "celery-received" and _int(x.get("at_ns")))
    dead = next((x for x in lines if x.get("kind") == "celery-dead-letter"
                 and _int(x.get("at_ns"))), None)
    enqueued = next((_int(x.get("enqueued_ns")) for x in lines
                     if _int(x.get("enqueued_ns")) is not None), None)
    first = lines[0]
    start = enqueued or (received[0] if received else None) or \
        (int(runs[0]["start_ns"]) if runs else None)
    if start is None:
        return None
    parent_id = str(first.get("parent_id") or "")
    traceparent = f"00-{trace_id}-{parent_id or '0' * 16}-01"
    children = _attempts(runs, received, start, tier, traceparent, dead)
    end = max([start, *(c.end_wall_ns for c in children)])
    name = str(first.get("task") or "?")
    ok = bool(runs) and str(runs[-1].get("status")) == "ok"
    outcome = ("succeeded after a replay from the dead-letter queue" if dead is not None and ok
               else "dead-lettered" if dead is not None else
               "succeeded" if ok else "failed" if runs else "waiting")
    waits = [c for c in children if c.kind == "queue-wait"]
    attrs: dict[str, Any] = {
        "task": name, "task_id": task_id, "outcome": outcome, "attempts": len(runs),
        "worker": next((str(r.get("worker")) for r in runs if r.get("worker")), None),
        "queue_wait_ms": waits[0].attrs.get("wait_ms") if waits else None,
        "background": "ran after the web request published it, in the Celery worker; "
                      "not part of the response's time"}
    span = ServerSpan("task", tier, TASK_ACTOR.format(task=name), start, end, traceparent,
                      attrs, children=children, parent_id=parent_id)
    return span


def _attempts(runs: list[dict[str, Any]], received: list[int], start: int, tier: str,
              traceparent: str, dead: dict[str, Any] | None) -> list[ServerSpan]:
    out: list[ServerSpan] = []
    since = start
    for i, run in enumerate(runs):
        begin, end = int(run["start_ns"]), int(run["end_ns"])
        took = max((r for r in received if since <= r <= begin), default=None)
        retry = i > 0
        what = ("the retry's countdown, then the queue again" if retry else
                "from the publisher's stamp (just before the publish, so the publish is "
                "in it) to the worker taking it off the queue (Redis list 'celery')")
        wait_end = took if took is not None else begin
        actor = ("the retry's countdown and the queue (Redis list 'celery')" if retry else
                 "the queue (Redis list 'celery')")
        out.append(ServerSpan("queue-wait", tier, actor, since,
                              max(since, wait_end), traceparent,
                              {"wait_ms": _ms(since, wait_end), "retry": retry,
                               "what": what, "received": took is not None}))
        status = str(run.get("status") or "")
        last = i == len(runs) - 1
        outcome = ("succeeded" if status == "ok" else
                   "failed: dead-lettered" if last and dead is not None else
                   "failed" if last else "failed, retried")
        out.append(ServerSpan(
            "celery", tier, f"Celery worker {run.get('worker') or '?'} (pid {run.get('pid')})",
            begin, end, traceparent,
            {"task": run.get("task"), "task_id": run.get("task_id"),
             "retries": run.get("retries"), "status": status, "outcome": outcome,
             "worker": run.get("worker"), "pid": run.get("pid"),
             "enqueued_ns": run.get("enqueued_ns"),
             "handover_ms": _ms(took, begin) if took is not None else None,
             "queries": sum(1 for s in run.get("spans") or [] if isinstance(s, dict)
                            and s.get("name") == "sql")}))
        since = end
    if dead is not None:
        at = int(dead["at_ns"])
        out.append(ServerSpan("dead-letter", tier, "the dead-letter queue (Redis list "
                              "'dead_letter')", at, at, traceparent,
                              {"task_id": dead.get("task_id"), "retries": dead.get("retries"),
                               "error": dead.get("error")}))
    return out
