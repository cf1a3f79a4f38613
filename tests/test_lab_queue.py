"""The queue, for real: a contact form POST from the CLI (its CSRF round trip with a cookie
jar) whose Celery task shows on the timeline after the response; the queue-backlog and
queue-dlq drills; the retry-storm experiment. One production lab for the module, on
127.<N>.x.y; nothing of it left running after ``lab down``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab_helpers import bring_up, needs_lab
from whathappens.commands.trace import trace_main
from whathappens.cookies import read_netscape
from whathappens.lab import lab, process
from whathappens.lab.command import lab_main
from whathappens.lab.exercises import drills
from whathappens.lab.exercises.drills import queue
from whathappens.lab.tier import LabContext

pytestmark = needs_lab


@pytest.fixture(scope="module")
def production() -> Iterator[LabContext]:
    yield from bring_up("production", "whathappens-queue-")


def spans(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = list(doc["spans"])
    while stack:
        s = stack.pop()
        yield s
        stack.extend(s.get("children") or [])


def cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert trace_main([*argv, "--json", "--no-revalidate"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_contact_form_from_the_cli_and_its_task_after_the_response(
        production: LabContext, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jar = tmp_path / "jar.txt"
    url = "https://www.example.com/contact/"
    state = str(production.state)
    cli_json(capsys, [url, "--lab", state, "-c", str(jar)])
    cookies = read_netscape(jar.read_text(), 0)
    token = next(c.value for c in cookies.cookies if c.name == "csrftoken")
    doc = cli_json(capsys, [url, "--lab", state, "-b", str(jar), "-c", str(jar),
                            "-H", "Origin: https://www.example.com",
                            "-d", "name=Ada", "-d", "email=ada@example.com",
                            "--data-urlencode", "message=sent from the CLI",
                            "-d", f"csrfmiddlewaretoken={token}"])
    http = next(s for s in spans(doc) if s["name"] == "http")
    assert http["attrs"]["status"] == 202, http["attrs"].get("body_excerpt")
    sent = {n.lower(): v for n, v in http["attrs"]["request_headers"]}
    assert "csrftoken=" in sent["cookie"]
    task = next(s for s in spans(doc) if s["name"] == "server.task")
    extra = task["attrs"].get("extra") or task["attrs"]
    assert extra["task"] == "send_contact_message"
    assert extra["outcome"] == "succeeded"
    kinds = [c["name"] for c in task["children"]]
    assert kinds == ["server.queue-wait", "server.celery"]
    # beside the response, with its own times, not clipped into the request's span: it spans
    # its own queue wait and run, whenever they ended (often after the response, but an empty
    # queue can finish the task while the 202 is still on its way out through the tiers)
    assert task["start_ms"] >= http["start_ms"]
    assert task["end_ms"] == max(c["end_ms"] for c in task["children"])
    assert task["children"][0]["start_ms"] == task["start_ms"]
    run = task["children"][1]
    assert (run["attrs"].get("extra") or run["attrs"])["worker"] == "worker@lab"
    assert any("background: task send_contact_message" in f["message"]
               for f in doc["findings"])
    assert "sessionid" in jar.read_text()


def test_queue_backlog_grows_then_drains(production: LabContext) -> None:
    ctx = drills.open_lab(production)
    facts = queue.break_backlog(ctx, print, rate=30, seconds=2, work=0.1)
    healed: dict[str, Any] = {}
    try:
        assert facts["published"] == 60
        assert facts["peak"] >= 20                 # 30/s in, about 10/s out
        assert facts["growth_per_s"] > 5
        assert "queue-backlog" in drills.in_force(ctx)
        assert facts["visitor"]["status"] == 202             # the web side still answers
        assert facts["visitor"]["ms"] < 2000
    finally:
        healed = drills.do(production, "heal", "queue-backlog", say=print)
    assert healed["drained"]
    assert 2 < healed["drain_rate"] < 15           # one process, 0.1 s a task
    assert Path(healed["svg"]).read_text().startswith("<svg")
    # … but the visitor's task waited behind the backlog (about 4 s of it here)
    assert healed["visitor_s"] is not None
    assert healed["visitor_s"] > 1.0
    assert "queue-backlog" not in drills.in_force(ctx)


def test_queue_dlq_nothing_lost_and_replayed(production: LabContext,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    facts = drills.do(production, "break", "queue-dlq", say=print)
    healed: dict[str, Any] = {}
    try:
        assert facts["landed_s"] is not None
        assert facts["letters"] == 3
        for story in facts["story"].values():
            assert story["outcome"] == "dead-lettered"
            assert story["attempts"] == 4          # the first run and 3 retries
        capsys.readouterr()
        assert lab_main(["--state", str(production.state), "dlq", "list"]) == 0
        assert "3 task(s) in the dead-letter queue" in capsys.readouterr().out
    finally:
        healed = drills.do(production, "heal", "queue-dlq", say=print)
    assert sorted(healed["replayed"]) == sorted(facts["task_ids"])
    assert healed["delivered"] == healed["expected"] == 3
    assert healed["dlq_left"] == 0


def test_retry_storm_jitter_spreads_the_arrivals(production: LabContext, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert lab_main(["--state", str(production.state), "experiment", "retry-storm",
                     "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "retry-storm.json").read_text())
    by = {s["name"]: s["summary"] for s in data["settings"]}
    plain, jitter = by["no jitter"], by["full jitter"]
    assert plain["clients_done"] == jitter["clients_done"] == 40
    # synchronized retries hit the recovered dependency in spikes; jittered ones spread
    assert plain["peak_after_recovery"] > 2 * jitter["peak_after_recovery"]
    assert jitter["all_done_s"] < plain["all_done_s"]
    assert (tmp_path / "retry-storm.svg").read_text().startswith("<svg")


def test_nothing_left_running(production: LabContext) -> None:
    assert drills.in_force(drills.open_lab(production)) == {}
    records = process.records(production)
    lab.down(production)
    for rec in records:
        assert not process.alive(rec.pid), rec.tier
    assert process.records(production) == []
