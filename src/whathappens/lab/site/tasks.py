"""The contact form's background work, run by the Celery worker.

``send_contact_message`` is acknowledged late (after it ran) and rejected back to the queue
if its worker process dies, retried with exponential backoff when the database fails, and
idempotent: it marks the message sent only once, however often it is delivered. Each run
writes one JSON span line (kind ``celery``) under the trace id the web request passed in the
task's headers; the worker's main process writes one (kind ``celery-received``) when it
takes a message off the queue, so the timeline shows the queue wait, the hand-over to the
pool and each attempt (``tiers/celery.py`` reads them back).

Two tasks serve the queue drills: ``lab_work`` (a task of a set length: arrivals faster
than the worker make a backlog) and ``notify_partner`` (calls a "partner" that the
``queue-dlq`` drill turns off; after its retries it lands in the dead-letter queue, see
``deadletter.py``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Task
from celery.signals import task_received
from celery.utils.log import get_task_logger
from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.db.models.functions import Now

from whathappens.lab.site import deadletter
from whathappens.lab.site.celery_app import app
from whathappens.lab.site.models import ContactMessage
from whathappens.lab.site.tracing import Trace, span_log, tracing

logger = get_task_logger(__name__)


def task_header(task: Task[Any, Any], name: str) -> Any:
    """A custom message header (``apply_async(headers=…)``), wherever Celery put it."""
    request = task.request
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(name)
    return value


def attempt_line(task: Task[Any, Any], trace: Trace, start: int, status: str) -> None:
    """One run of a task, as a span line (kind ``celery``): which worker, which attempt,
    when it was published (``enqueued_ns``, the publisher's clock) and how it ended."""
    span_log.write({
        "trace_id": trace.trace_id, "parent_id": trace.parent_id,
        "span_id": trace.span_id, "tier": settings.NODE, "kind": "celery",
        "pid": os.getpid(), "start_ns": start, "end_ns": time.time_ns(),
        "task": task.name, "task_id": task.request.id, "retries": task.request.retries,
        "max_retries": task.max_retries, "worker": task.request.hostname,
        "enqueued_ns": task_header(task, "enqueued_ns"), "status": status,
        "spans": trace.spans,
    })


@task_received.connect
def _received(request: Any = None, **_: Any) -> None:
    """In the worker's main process: a message was taken off the queue (reserved, with the
    prefetch of one), before a pool process runs it."""
    if request is None:
        return
    headers = dict(getattr(request, "request_dict", None) or {})
    trace = Trace.from_header(headers.get("traceparent"))
    span_log.write({
        "trace_id": trace.trace_id, "parent_id": trace.parent_id, "tier": settings.NODE,
        "kind": "celery-received", "pid": os.getpid(), "at_ns": time.time_ns(),
        "task": getattr(request, "name", None), "task_id": getattr(request, "id", None),
        "retries": headers.get("retries", 0), "worker": getattr(request, "hostname", None),
        "eta": headers.get("eta"), "enqueued_ns": headers.get("enqueued_ns"),
    })


class DeadLetterTask(Task):  # type: ignore[type-arg]
    """A task that, once its retries are spent, is kept in the dead-letter queue (a Redis
    list beside the broker's queues) instead of being forgotten."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        import redis

        headers = {k: task_header(self, k) for k in ("traceparent", "enqueued_ns")}
        line = deadletter.entry(self.name, task_id, args, kwargs, headers,
                                self.request.retries, f"{type(exc).__name__}: {exc}",
                                time.time_ns())
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
        client.rpush(deadletter.DEAD_LETTER_KEY, line)
        trace = Trace.from_header(headers["traceparent"])
        span_log.write({"trace_id": trace.trace_id, "parent_id": trace.parent_id,
                        "tier": settings.NODE, "kind": "celery-dead-letter",
                        "at_ns": time.time_ns(), "task": self.name, "task_id": task_id,
                        "retries": self.request.retries, "error": str(exc)[:300]})
        logger.warning("task %s %s failed after %s retries: dead-lettered", self.name,
                       task_id, self.request.retries)


class PartnerDown(Exception):
    """The partner the task notifies refused (the queue-dlq drill's switch is on)."""


@app.task(bind=True, base=DeadLetterTask, name="notify_partner", acks_late=True,
          autoretry_for=(PartnerDown,), max_retries=3, retry_kwargs={"countdown": 0.3})
def notify_partner(self: Task[Any, Any], ref: str) -> dict[str, Any]:
    """Tell the partner about ``ref``; it refuses while ``lab:partner-down`` is set (in the
    broker's Redis). Each delivery is recorded once in ``lab:partner-notified``."""
    import redis

    trace = Trace.from_header(task_header(self, "traceparent"))
    start = time.time_ns()
    status = "ok"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
    try:
        if client.exists(deadletter.PARTNER_DOWN_KEY):
            raise PartnerDown("the partner answered 503 (lab:partner-down is set)")
        client.sadd("lab:partner-notified", ref)
        return {"ref": ref}
    except Exception as e:
        status = f"error: {type(e).__name__}: {str(e).strip()[:200]}"
        raise
    finally:
        attempt_line(self, trace, start, status)


@app.task(bind=True, name="lab_work", acks_late=True)
def lab_work(self: Task[Any, Any], seconds: float = 0.1) -> float:
    """Work of a set length (at most 5 s): the queue-backlog drill's unit of work."""
    trace = Trace.from_header(task_header(self, "traceparent"))
    start = time.time_ns()
    time.sleep(max(0.0, min(float(seconds), 5.0)))
    attempt_line(self, trace, start, "ok")
    return seconds


@app.task(bind=True, name="send_contact_message", acks_late=True,
          reject_on_worker_lost=True, autoretry_for=(DatabaseError,), max_retries=10,
          retry_backoff=1, retry_backoff_max=30, retry_jitter=False)
def send_contact_message(self: Task[Any, Any], message_id: int,
                         delay: float = 0.0) -> dict[str, Any]:
    trace = Trace.from_header(task_header(self, "traceparent"))
    start = time.time_ns()
    status = "ok"
    sent = 0
    try:
        with tracing(trace):
            ContactMessage.objects.filter(pk=message_id).update(attempts=F("attempts") + 1)
            if delay > 0:       # the lab's drill: a task long enough to kill its worker
                time.sleep(delay)
            # "Sending" is recording it, once: a redelivered task finds it already sent.
            sent = ContactMessage.objects.filter(pk=message_id, sent_at__isnull=True).update(
                sent_at=Now(), worker=self.request.hostname or "")
        logger.info("contact message %s %s (trace %s)", message_id,
                    "sent" if sent else "was already sent", trace.trace_id)
        return {"message_id": message_id, "sent": bool(sent)}
    except Exception as e:
        status = f"error: {type(e).__name__}: {str(e).strip()[:200]}"
        raise
    finally:
        attempt_line(self, trace, start, status)
