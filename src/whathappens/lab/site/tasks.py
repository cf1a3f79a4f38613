"""The contact form's background work, run by the Celery worker.

``send_contact_message`` is acknowledged late (after it ran) and rejected back to the queue
if its worker process dies, retried with exponential backoff when the database fails, and
idempotent: it marks the message sent only once, however often it is delivered. Each run
writes one JSON span line (kind ``celery``) under the trace id the web request passed in the
task's headers.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger
from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.db.models.functions import Now

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
        span_log.write({
            "trace_id": trace.trace_id, "parent_id": trace.parent_id,
            "span_id": trace.span_id, "tier": settings.NODE, "kind": "celery",
            "pid": os.getpid(), "start_ns": start, "end_ns": time.time_ns(),
            "task": self.name, "task_id": self.request.id, "retries": self.request.retries,
            "enqueued_ns": task_header(self, "enqueued_ns"), "status": status,
            "spans": trace.spans,
        })
