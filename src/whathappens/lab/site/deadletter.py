"""The dead-letter queue: where a task goes when its last retry failed, so nothing is lost.

Celery (on Redis) has no dead-lettering of its own: a task that fails for good is logged and
forgotten (its message was acknowledged). ``tasks.DeadLetterTask`` catches that moment
(``on_failure``, called once the retries are spent) and pushes an entry onto the Redis list
``dead_letter`` beside the queues (the broker's db): the task's name, id, arguments, its
trace headers, how often it ran and the last error. ``lab heal queue-dlq`` (or ``lab dlq
replay``) pops the entries and publishes each task again, under its original id and
traceparent; ``lab dlq list`` shows them.

This module is plain data (no Django, no Celery), so the lab's commands read the list with
the same names the worker writes it with.
"""

from __future__ import annotations

import json
from typing import Any

DEAD_LETTER_KEY = "dead_letter"          # a Redis list, in the broker's database
QUEUE_KEY = "celery"                     # Celery's default queue: a Redis list of messages
PARTNER_DOWN_KEY = "lab:partner-down"    # the queue-dlq drill: the partner "API" refuses
ENTRY_MAX = 64 * 1024                    # an entry larger than this is cut (its error text)


def entry(task: str, task_id: str, args: Any, kwargs: Any, headers: dict[str, Any],
          retries: int, error: str, failed_ns: int) -> str:
    """One dead letter, as the JSON line pushed onto the list."""
    data = {"task": task, "task_id": task_id, "args": list(args or ()),
            "kwargs": dict(kwargs or {}), "headers": headers, "retries": retries,
            "error": error[:2000], "failed_ns": failed_ns}
    return json.dumps(data, separators=(",", ":"), default=str)[:ENTRY_MAX]


def read_entry(raw: bytes | str) -> dict[str, Any] | None:
    """An entry read back; None when it is not one of ours."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("task"), str):
        return None
    return data
