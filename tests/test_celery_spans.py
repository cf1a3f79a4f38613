"""The worker's span lines as a task's spans, and the task placed beside the response
(pure: no lab; the lines are what site/tasks.py writes)."""

from __future__ import annotations

from whathappens.contract.facts import HttpFacts, LegFacts
from whathappens.journey import Journey
from whathappens.lab.client.timeline import merge, nest, published
from whathappens.lab.logs import ServerSpan
from whathappens.lab.tiers.celery_spans import group, task_span

TRACE = "a" * 32
DJANGO = "d" * 16
MS = 1_000_000


def lines(t: int, *, fail_first: bool = False, dead: bool = False) -> list[dict[str, object]]:
    base = {"trace_id": TRACE, "parent_id": DJANGO, "task_id": "t1", "task": "notify"}
    out: list[dict[str, object]] = [
        {**base, "kind": "celery-received", "at_ns": t + 5 * MS},
        {**base, "kind": "celery", "start_ns": t + 6 * MS, "end_ns": t + 8 * MS,
         "retries": 0, "status": "error: PartnerDown" if fail_first or dead else "ok",
         "enqueued_ns": t, "worker": "worker@lab", "pid": 7}]
    if fail_first or dead:
        out += [{**base, "kind": "celery-received", "at_ns": t + 9 * MS},
                {**base, "kind": "celery", "start_ns": t + 310 * MS, "end_ns": t + 311 * MS,
                 "retries": 1, "status": "error: PartnerDown" if dead else "ok",
                 "enqueued_ns": t, "worker": "worker@lab", "pid": 7}]
    if dead:
        out.append({**base, "kind": "celery-dead-letter", "at_ns": t + 312 * MS,
                    "retries": 1, "error": "PartnerDown"})
    out.append({"trace_id": "b" * 32, "kind": "celery", "task_id": "other"})  # not ours
    return out


def test_a_task_with_a_retry_and_a_dead_letter() -> None:
    t = 10**18
    grouped = group(lines(t, dead=True), TRACE)
    assert list(grouped) == ["t1"]
    span = task_span("t1", grouped["t1"], "worker", TRACE)
    assert span is not None
    assert span.parent_id == DJANGO
    assert span.attrs["outcome"] == "dead-lettered"
    assert span.attrs["attempts"] == 2
    assert span.attrs["queue_wait_ms"] == 5.0
    kinds = [(c.kind, c.attrs.get("outcome")) for c in span.children]
    assert kinds == [("queue-wait", None), ("celery", "failed, retried"), ("queue-wait", None),
                     ("celery", "failed: dead-lettered"), ("dead-letter", None)]
    retry_wait = span.children[2]
    assert retry_wait.attrs["retry"] is True
    assert retry_wait.start_wall_ns == t + 8 * MS      # from the failed attempt's end …
    assert retry_wait.end_wall_ns == t + 9 * MS        # … to the worker taking it again
    assert span.children[3].attrs["handover_ms"] == 301.0
    assert span.end_wall_ns == t + 312 * MS


def test_the_task_goes_beside_the_response_with_its_own_times() -> None:
    j = Journey(url="https://www.example.com/contact/")
    t0 = j.clock.wall_origin_ns
    leg = j.span("leg", "journey", "you", "application", LegFacts(index=0, url="u",
                                                                    method="POST"))
    traceparent = f"00-{TRACE}-{'c' * 16}-01"
    http = j.span("http", "http", "server", "application",
                  HttpFacts(traceparent=traceparent), parent=leg, start_ns=0)
    http.end_ns = 20 * MS                                 # the response ended at 20 ms
    django = ServerSpan("django", "app-1-gunicorn", "Django", t0 + 2 * MS, t0 + 18 * MS,
                        traceparent, {}, span_id=DJANGO)
    django.children.append(ServerSpan("queue", "app-1-gunicorn", "publish", t0 + 10 * MS,
                                      t0 + 11 * MS, traceparent, {}))
    task = task_span("t1", group(lines(t0 + 10 * MS, fail_first=True), TRACE)["t1"],
                     "worker", TRACE)
    assert task is not None
    spans = nest([django, task])
    assert [s.kind for s in spans] == ["django", "task"]     # not nested under Django
    assert published(spans) == 1
    merge(j, spans)
    placed = {s.name: s for s in j.all_spans()}
    bg = placed["server.task"]
    assert bg.start_ns == 10 * MS                              # its real start …
    assert bg.end_ns == 321 * MS                               # … and end, past the response
    assert bg.end_ns > http.end_ns
    assert placed["server.django"].end_ns <= http.end_ns
    assert any("background: task notify" in f.message for f in j.findings)
