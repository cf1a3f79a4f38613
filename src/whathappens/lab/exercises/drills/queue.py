"""queue-backlog (arrivals faster than the worker: the queue grows, then drains) and
queue-dlq (a task that fails every time lands in the dead-letter queue; heal replays it).

Tasks are published the way the site publishes them, with Celery (``send_task`` on the
lab's Redis broker, db 1), with the headers the site's own tasks read (a ``traceparent`` of
the drill's trace, ``enqueued_ns``), so the worker's span log tells their story under the
drill's trace id and ``tiers/celery_spans.py`` reads it back as it does for a ``--lab``
journey. The queue's depth is Redis's own count: ``LLEN celery`` (messages waiting) and
``HLEN unacked`` (taken by the worker, not yet acknowledged: acks_late), sampled.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Say,
    _message,
    _record,
    _wait_sent,
    in_force,
    wait_for,
)
from whathappens.lab.logs import json_lines
from whathappens.lab.running import Lab
from whathappens.lab.site.deadletter import (
    DEAD_LETTER_KEY,
    PARTNER_DOWN_KEY,
    QUEUE_KEY,
    read_entry,
)
from whathappens.lab.tiers.celery_spans import group, task_span
from whathappens.lab.tiers.gunicorn import span_log

BROKER_DB = 1
BACKLOG_RATE = 40.0       # tasks published per second …
BACKLOG_SECONDS = 3.0     # … for this long
BACKLOG_WORK = 0.1        # seconds each task works: one pool process does at most 10/s
SAMPLE_EVERY = 0.1        # seconds between depth samples
DRAIN_TIMEOUT = 90.0
DLQ_TASKS = 3
NOTIFIED_KEY = "lab:partner-notified"
MAX_REPLAY = 1000         # dead letters replayed in one go


def broker(lab: Lab) -> Any:
    import redis

    address, port = lab.topo.endpoint("redis")
    return redis.Redis(host=address, port=port, db=BROKER_DB, socket_timeout=2,
                       socket_connect_timeout=2)


def publisher(lab: Lab) -> Any:
    """A Celery app that only publishes, to the lab's broker (no Django, no task code)."""
    from celery import Celery

    address, port = lab.topo.endpoint("redis")
    app = Celery("whathappens_drill", broker=f"redis://{address}:{port}/{BROKER_DB}")
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_transport_options = {"socket_connect_timeout": 2, "socket_timeout": 5}
    return app


def publish(app: Any, task: str, args: tuple[Any, ...], trace_id: str,
            task_id: str | None = None) -> str:
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
               "enqueued_ns": time.time_ns()}
    result = app.send_task(task, args=args, headers=headers, task_id=task_id)
    return str(result.id)


def depth(client: Any) -> tuple[int, int]:
    """(messages waiting in the queue, messages taken but not acknowledged)."""
    return int(client.llen(QUEUE_KEY)), int(client.hlen("unacked"))


def _needs_worker(lab: Lab, target: str) -> None:
    if lab.pid("worker") is None or not lab.running("worker"):
        raise DrillError(f"the worker is not running (whathappens lab heal worker), which "
                         f"{target} needs")


# ---------------------------------------------------------------------------------------------
# queue-backlog


def _visitor_post(lab: Lab, say: Say) -> dict[str, Any]:
    """A visitor sends the contact form now, through the edge: what do they see, and (in
    heal) when does its task run?"""
    t_wall = time.time()
    post = Browser(lab).post_contact("queue-backlog drill")
    message_id = post.json().get("message_id") if post.status == 202 else None
    say(f"  a visitor's contact POST meanwhile: {post.status or post.error} in {post.ms:.0f} ms "
        f"(the web request only queues the task; it does not wait for it)")
    return {"status": post.status, "ms": round(post.ms, 1), "message_id": message_id,
            "t_wall": t_wall}


def _visitor_sent(lab: Lab, visitor: dict[str, Any], say: Say) -> float | None:
    """Seconds from the visitor's POST to its message being sent (the row's sent_at)."""
    message_id = visitor.get("message_id")
    if message_id is None:
        return None
    if _wait_sent(lab, int(message_id), timeout=10) is None:
        return None
    row = _message(lab, int(message_id))
    if row is None or row[1] is None:
        return None
    delay = float(row[1].timestamp()) - float(visitor["t_wall"])
    say(f"  the visitor's message (answered {visitor.get('status')} in {visitor.get('ms')} ms) "
        f"was sent {delay:.1f} s after the POST: its task waited behind the backlog")
    return round(delay, 2)


def _burst(app: Any, trace_id: str, rate: float, seconds: float, work: float,
           out: list[float]) -> None:
    """Publish ``rate`` tasks a second for ``seconds``, on a schedule (no drift)."""
    t0 = time.monotonic()
    for i in range(round(rate * seconds)):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publish(app, "lab_work", (work,), trace_id)
        out.append(time.monotonic() - t0)


def break_backlog(lab: Lab, say: Say, *, rate: float = BACKLOG_RATE,
                  seconds: float = BACKLOG_SECONDS, work: float = BACKLOG_WORK
                  ) -> dict[str, Any]:
    _needs_worker(lab, "queue-backlog")
    client = broker(lab)
    start_depth = depth(client)
    say(f"drill queue-backlog: {rate:g} tasks/s published for {seconds:g} s, each working "
        f"{work:g} s on the lab's one worker process (concurrency 1): at most "
        f"{1 / work:g}/s can be done (modelled from the task's length, before overhead)")
    trace_id = secrets.token_hex(16)
    app = publisher(lab)
    sent: list[float] = []
    t_wall = time.time()
    t0 = time.monotonic()
    burst = threading.Thread(target=_burst, args=(app, trace_id, rate, seconds, work, sent),
                             daemon=True)
    burst.start()
    samples: list[tuple[float, int, int]] = []
    while burst.is_alive() or time.monotonic() - t0 < seconds:
        samples.append((round(time.monotonic() - t0, 3), *depth(client)))
        time.sleep(SAMPLE_EVERY)
    burst.join(seconds + 10)
    samples.append((round(time.monotonic() - t0, 3), *depth(client)))
    elapsed = time.monotonic() - t0
    peak = max(s[1] for s in samples)
    done = len(sent) - samples[-1][1] - samples[-1][2]
    growth = (samples[-1][1] - samples[0][1]) / max(elapsed, 1e-9)
    say(f"  published {len(sent)} tasks in {elapsed:.2f} s ({len(sent) / elapsed:.1f}/s "
        f"measured); the worker finished about {done} of them meanwhile "
        f"({done / elapsed:.1f}/s)")
    say(f"  queue depth (LLEN {QUEUE_KEY}, every {SAMPLE_EVERY:g} s): {samples[0][1]} → "
        f"{samples[-1][1]} (peak {peak}), growing {growth:.1f}/s; taken but unacknowledged: "
        f"{samples[-1][2]}")
    say("    " + _sparkline([s[1] for s in samples]))
    visitor = _visitor_post(lab, say)
    say("  what it means:")
    say("    Work arrived faster than the worker does it, so the difference piles up in the "
        "broker: every new task now waits for all the tasks before it. Nothing is lost and "
        "nothing errors: the only symptom is that background work (the contact form's "
        "mail) happens later and later. Adding workers, or slowing the arrivals, is the "
        "fix; the queue's depth over time is what to watch.")
    say("  undo: whathappens lab heal queue-backlog (waits for it to drain, and measures that)")
    facts = {"trace_id": trace_id, "published": len(sent), "rate": rate, "seconds": seconds,
             "work": work, "t_wall": t_wall, "samples": samples, "peak": peak,
             "growth_per_s": round(growth, 2), "done_during": done,
             "start_depth": list(start_depth), "visitor": visitor}
    _record(lab, "queue-backlog", facts)
    return facts


def _sparkline(values: list[int]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    top = max(values) or 1
    return "".join(bars[min(7, v * 8 // (top + 1))] for v in values)


def heal_backlog(lab: Lab, say: Say, *, timeout: float = DRAIN_TIMEOUT) -> dict[str, Any]:
    facts = in_force(lab).get("queue-backlog", {})
    say("heal queue-backlog: nothing to undo but the backlog itself: the worker works it "
        "off; the queue's depth is sampled until it is empty")
    client = broker(lab)
    t_heal = time.time()
    offset = t_heal - float(facts.get("t_wall", t_heal))
    samples = [tuple(s) for s in facts.get("samples", [])]
    at_heal = depth(client)
    t0 = time.monotonic()
    while True:
        waiting, unacked = depth(client)
        samples.append((round(offset + time.monotonic() - t0, 3), waiting, unacked))
        if waiting == 0 and unacked == 0:
            break
        if time.monotonic() - t0 > timeout:
            break
        time.sleep(SAMPLE_EVERY)
    drain = time.monotonic() - t0
    drained = samples[-1][1] == 0 and samples[-1][2] == 0
    backlog = at_heal[0] + at_heal[1]
    rate = backlog / drain if drain > 0 and backlog else None
    if drained and not backlog:
        say("  the queue was already empty when heal began: the drain happened before it "
            "and is not measured here (run heal right after break to measure it)")
    elif drained and rate is not None:
        say(f"  {at_heal[0]} waiting + {at_heal[1]} in the worker's hands when heal began; "
            f"empty {drain:.2f} s later: the worker drained {rate:.1f} tasks/s (measured; "
            f"each task works {facts.get('work', '?')} s)")
    else:
        say(f"  still {samples[-1][1]} waiting after {timeout:.0f} s")
    visitor_s = _visitor_sent(lab, dict(facts.get("visitor") or {}), say) if drained else None
    svg = _plot(lab.ctx.state / "drills" / "queue-backlog.svg", samples, facts, offset)
    say(f"  depth over time: {svg}")
    _record(lab, "queue-backlog", None)
    return {"drained": drained, "drain_s": round(drain, 3), "at_heal": list(at_heal),
            "drain_rate": round(rate, 2) if rate else None, "samples": samples,
            "svg": str(svg), "published": facts.get("published"), "visitor_s": visitor_s,
            "visitor": facts.get("visitor")}


def _plot(out: Path, samples: list[tuple[Any, ...]], facts: dict[str, Any],
          heal_at: float) -> Path:
    from whathappens.lab.exercises import plot

    waiting = [(float(s[0]), float(s[1])) for s in samples]
    taken = [(float(s[0]), float(s[2])) for s in samples]
    svg = plot.figure(
        "queue-backlog: the queue's depth over time",
        f"{facts.get('published', '?')} tasks published at {facts.get('rate', '?')}/s for "
        f"{facts.get('seconds', '?')} s, each working {facts.get('work', '?')} s on one "
        f"worker process; heal (waiting for the drain) began at {heal_at:.1f} s. Redis LLEN "
        f"and HLEN, sampled every {SAMPLE_EVERY:g} s; not sampled between the break's "
        f"end and the heal (the straight stretch there is drawn, not measured).",
        [plot.LinePanel("Tasks in the broker", "seconds since the burst began", "tasks",
                        [plot.Series("waiting (LLEN celery)", [], waiting),
                         plot.Series("taken, not yet acknowledged (HLEN unacked)", [], taken)],
                        step=False)])
    out.parent.mkdir(parents=True, exist_ok=True)
    return plot.write(out, svg)


# ---------------------------------------------------------------------------------------------
# queue-dlq


def task_story(lab: Lab, trace_id: str) -> dict[str, dict[str, Any]]:
    """Each task of the drill's trace as the worker's log tells it (celery_spans.py)."""
    items = group(json_lines(span_log(lab.ctx, "worker"), trace_id), trace_id)
    out = {}
    for task_id, lines in items.items():
        span = task_span(task_id, lines, "worker", trace_id)
        if span is not None:
            out[task_id] = {**span.attrs, "ms": round((span.end_wall_ns - span.start_wall_ns)
                                                      / 1e6, 1)}
    return out


def dead_letters(lab: Lab) -> list[dict[str, Any]]:
    client = broker(lab)
    raw = client.lrange(DEAD_LETTER_KEY, 0, MAX_REPLAY - 1)
    return [e for e in (read_entry(r) for r in raw) if e is not None]


def replay(lab: Lab, say: Say) -> list[str]:
    """Every dead letter published again (its task, arguments, id and traceparent), each
    taken off the list only once it was published: nothing is lost if this stops."""
    client = broker(lab)
    app = publisher(lab)
    replayed = []
    for _ in range(MAX_REPLAY):
        raw = client.lindex(DEAD_LETTER_KEY, 0)
        if raw is None:
            break
        item = read_entry(raw)
        if item is not None:
            headers = {**{k: v for k, v in dict(item.get("headers") or {}).items() if v},
                       "enqueued_ns": time.time_ns(), "replayed_from_dlq": True}
            app.send_task(item["task"], args=tuple(item.get("args") or ()),
                          kwargs=dict(item.get("kwargs") or {}),
                          task_id=item.get("task_id"), headers=headers)
            replayed.append(str(item.get("task_id")))
            say(f"  replayed {item['task']} {item.get('task_id')} (failed after "
                f"{item.get('retries')} retries: {str(item.get('error'))[:80]})")
        client.lrem(DEAD_LETTER_KEY, 1, raw)
    return replayed


def break_dlq(lab: Lab, say: Say, *, tasks: int = DLQ_TASKS) -> dict[str, Any]:
    _needs_worker(lab, "queue-dlq")
    client = broker(lab)
    before = client.llen(DEAD_LETTER_KEY)
    say(f"drill queue-dlq: the partner the task notify_partner calls is made to refuse "
        f"(Redis key {PARTNER_DOWN_KEY}); {tasks} tasks are published; each is retried 3 "
        f"times, 0.3 s apart, then put in the dead-letter queue (Redis list "
        f"'{DEAD_LETTER_KEY}')")
    client.set(PARTNER_DOWN_KEY, "1")
    trace_id = secrets.token_hex(16)
    app = publisher(lab)
    refs = [f"dlq-{secrets.token_hex(4)}" for _ in range(tasks)]
    t0 = time.monotonic()
    ids = [publish(app, "notify_partner", (ref,), trace_id) for ref in refs]
    landed = wait_for(lambda: client.llen(DEAD_LETTER_KEY) >= before + tasks, timeout=30,
                      interval=0.05)
    time.sleep(0.2)                     # the worker's last span lines
    story = task_story(lab, trace_id)
    letters = [e for e in dead_letters(lab) if e.get("task_id") in ids]
    for task_id in ids:
        s = story.get(task_id, {})
        say(f"  task {task_id}: ran {s.get('attempts', '?')} times over {s.get('ms', '?')} ms "
            f"on {s.get('worker')}; {s.get('outcome', 'no line in the worker log yet')}")
    if landed is not None:
        say(f"  all {tasks} in the dead-letter queue {landed:.2f} s after publishing "
            f"(its length: {client.llen(DEAD_LETTER_KEY)}); delivered to the partner: "
            f"{sum(1 for r in refs if client.sismember(NOTIFIED_KEY, r))}")
    else:
        say(f"  NOT all in the dead-letter queue after 30 s ({len(letters)} of {tasks})")
    say("  what it means:")
    say("    Retrying helps with a blip; a dependency that stays down makes every retry "
        "fail too. Without a dead-letter queue the task would be dropped after its last "
        "retry (logged, its message acknowledged): the work silently lost. Here it is kept "
        "with its arguments, trace and error, to be replayed once the cause is fixed.")
    say("  undo: whathappens lab heal queue-dlq (the partner answers again; the dead "
        "letters are replayed)")
    facts = {"trace_id": trace_id, "refs": refs, "task_ids": ids,
             "landed_s": landed, "story": story, "letters": len(letters),
             "t_publish": time.monotonic() - t0}
    _record(lab, "queue-dlq", facts)
    return facts


def heal_dlq(lab: Lab, say: Say, *, timeout: float = 20.0) -> dict[str, Any]:
    facts = in_force(lab).get("queue-dlq", {})
    client = broker(lab)
    say("heal queue-dlq: the partner answers again; every dead letter is replayed")
    client.delete(PARTNER_DOWN_KEY)
    t0 = time.monotonic()
    replayed = replay(lab, say)
    refs = list(facts.get("refs", []))
    done = wait_for(lambda: all(client.sismember(NOTIFIED_KEY, r) for r in refs),
                    timeout=timeout, interval=0.05)
    delivered = sum(1 for r in refs if client.sismember(NOTIFIED_KEY, r))
    left = int(client.llen(DEAD_LETTER_KEY))
    if done is not None:
        say(f"  {len(replayed)} replayed; the drill's {len(refs)} tasks all delivered "
            f"{time.monotonic() - t0:.2f} s after the heal began; the dead-letter queue "
            f"holds {left}")
    else:
        say(f"  only {delivered} of {len(refs)} delivered after {timeout:.0f} s")
    _record(lab, "queue-dlq", None)
    return {"replayed": replayed, "delivered": delivered, "expected": len(refs),
            "dlq_left": left}

