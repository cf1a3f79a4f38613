"""worker (the Celery pool process killed mid-task) and worker-all (the whole worker
killed, and when the task comes back once it is restarted)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from whathappens.lab import process
from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Say,
    _message,
    _record,
    _wait_sent,
    in_force,
    kill_tier,
    start_tiers,
    wait_for,
)
from whathappens.lab.running import Lab

TASK_DELAY = 3.0           # the worker drill's task takes this long (X-Lab-Task-Delay)
KILL_AFTER = 1.0           # … and its pool process is killed this far into it


# ---------------------------------------------------------------------------------------------
# worker: the pool process killed mid-task


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _log_since(path: Path, offset: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(256 * 1024).decode(errors="replace").splitlines()
    except OSError:
        return []


def _worker_log(lab: Lab, offset: int, say: Say) -> None:
    """The worker's own lines since ``offset`` that tell the story (not its tracebacks)."""
    interesting = ("WorkerLostError", "exited with", "Restoring", "received", "succeeded")
    for line in _log_since(lab.ctx.log("worker"), offset):
        if line.startswith("[") and any(k in line for k in interesting):
            say(f"    worker log: {line.strip()[:160]}")


def _task_in_flight(lab: Lab, say: Say, delay: float) -> tuple[int, float, int]:
    """POST the contact form with a slow task; wait until the task runs.

    Returns (message id, time.monotonic() of the POST, the worker log's size before)."""
    log = lab.ctx.log("worker")
    offset = log.stat().st_size if log.exists() else 0
    t0 = time.monotonic()
    post = Browser(lab).post_contact("worker drill", headers={"X-Lab-Task-Delay": f"{delay:g}"})
    if post.status != 202:
        raise DrillError(f"the contact POST answered {post.status}: {post.body[:200]}")
    message_id = int(post.json()["message_id"])
    # The task counts its attempts in the row as it starts.
    started = wait_for(lambda: (_message(lab, message_id) or (0,))[0] >= 1, timeout=15,
                       interval=0.02)
    if started is None:
        raise DrillError("the task did not start within 15 s")
    say(f"  POST /contact/: 202 (message {message_id}); its task started "
        f"{time.monotonic() - t0:.2f} s later")
    return message_id, t0, offset


def break_worker(lab: Lab, say: Say, *, delay: float = TASK_DELAY,
                 kill_after: float = KILL_AFTER) -> dict[str, Any]:
    main_pid = lab.pid("worker")
    if main_pid is None:
        raise DrillError("the worker is not running (whathappens lab heal worker)")
    say(f"drill worker: a contact POST whose task takes {delay:g} s (X-Lab-Task-Delay); "
        f"the Celery pool process running it is killed (SIGKILL) {kill_after:g} s in")
    message_id, t0, offset = _task_in_flight(lab, say, delay)
    time.sleep(kill_after)
    victims = _children(main_pid)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic() - t0
    sent = _wait_sent(lab, message_id, timeout=30)
    row = _message(lab, message_id)
    attempts = row[0] if row else None
    t_done = (sent - t0) if sent is not None else None
    new_children = _children(main_pid)
    say(f"  killed pool process {', '.join(map(str, victims)) or '(none found)'} at "
        f"{t_kill:.2f} s; the worker's main process (pid {main_pid}) "
        f"{'lives' if process.alive(main_pid) else 'died'}, its pool now "
        f"{', '.join(map(str, new_children)) or '(none)'}")
    _worker_log(lab, offset, say)
    if t_done is not None:
        say(f"  the message was marked sent {t_done:.2f} s after the POST, "
            f"{t_done - t_kill:.2f} s after the kill; the task ran {attempts} times")
    else:
        say("  the message was NOT marked sent within 30 s")
    say("  what it means:")
    say("    The task is acknowledged late (acks_late) and rejected back to the queue if "
        "the process running it dies (reject_on_worker_lost): the main process saw its "
        "pool process die, put the task back and forked a new one, which ran it again at "
        "once. Nothing was lost; the task ran twice, so it must be safe to run twice (it "
        "marks the row sent only once).")
    say("    When the whole worker dies, nobody is left to put the task back: "
        "'lab break worker-all' measures that case.")
    return {"message_id": message_id, "victims": victims, "t_kill": t_kill,
            "t_done": t_done, "attempts": attempts, "new_children": new_children}


def _unacked(lab: Lab) -> int | None:
    """Messages delivered but not acknowledged, in the broker (kombu's 'unacked' hash)."""
    try:
        import redis
    except ImportError:
        return None
    address, port = lab.topo.endpoint("redis")
    try:
        client = redis.Redis(host=address, port=port, db=1, socket_timeout=1)
        return int(client.hlen("unacked"))
    except redis.RedisError:
        return None


def _broker_options() -> dict[str, Any]:
    """The broker transport options the worker runs with (the site's settings: constants,
    read without setting Django up)."""
    from whathappens.lab.site import settings as site_settings

    return dict(site_settings.CELERY_BROKER_TRANSPORT_OPTIONS)


def break_worker_all(lab: Lab, say: Say, *, delay: float = TASK_DELAY,
                     kill_after: float = KILL_AFTER) -> dict[str, Any]:
    if lab.pid("worker") is None:
        raise DrillError("the worker is not running (whathappens lab heal worker-all)")
    say(f"drill worker-all: a contact POST whose task takes {delay:g} s; the whole Celery "
        f"worker (main process and pool) is killed (SIGKILL) {kill_after:g} s in, as when "
        f"its machine dies, and stays down until 'lab heal worker-all'")
    message_id, t0, offset = _task_in_flight(lab, say, delay)
    time.sleep(kill_after)
    kill_tier(lab, "worker")
    t_kill = time.monotonic() - t0
    unacked = _unacked(lab)
    say(f"  killed the worker at {t_kill:.2f} s; the broker holds {unacked} delivered but "
        f"unacknowledged message(s) (Redis db 1, hash 'unacked')")
    options = _broker_options()
    say(f"  the broker's transport options: {options or '(unknown)'}")
    say("  what it means:")
    say("    acks_late kept the message: it is acknowledged only after the task ran, so "
        "the broker still has it. But no process is left to reject it back to the "
        "queue: it comes back only when a running worker sweeps for messages "
        "unacknowledged for longer than the visibility timeout (lab heal worker-all "
        "restarts the worker and measures when the task completes).")
    say("  undo: whathappens lab heal worker-all")
    _record(lab, "worker-all", {"message_id": message_id, "killed": time.time(),
                                "log_offset": offset})
    return {"message_id": message_id, "unacked": unacked, "options": options}


def heal_worker_all(lab: Lab, say: Say, *, wait: float = 180.0) -> dict[str, Any]:
    say("heal worker-all: start the worker again; wait for the task that was running when "
        "it died")
    facts = in_force(lab).get("worker-all", {})
    start_tiers(lab, ["worker"], say)
    restarted = time.time()
    message_id = facts.get("message_id")
    if message_id is None:
        _record(lab, "worker-all", None)
        return {}
    sent = _wait_sent(lab, int(message_id), timeout=wait)
    done = time.time()
    row = _message(lab, int(message_id))
    _worker_log(lab, int(facts.get("log_offset", 0)), say)
    killed = float(facts.get("killed", restarted))
    if sent is not None:
        say(f"  message {message_id} was marked sent {done - killed:.1f} s after the kill, "
            f"{done - restarted:.1f} s after the restart; the task ran {row[0] if row else '?'} "
            f"times")
        visibility = _broker_options().get("visibility_timeout")
        say(f"    The worker looks for messages left unacknowledged longer than the "
            f"visibility timeout ({visibility} s) when it starts, then only every "
            f"unacked_restore_interval × unacked_restore_throttle seconds (kombu's "
            f"defaults: 10 × 10). It restarted {restarted - killed:.1f} s after the kill"
            + (", before the message was old enough, so the sweep at start-up left it and "
               "the next one came much later." if visibility is not None
               and restarted - killed < float(visibility) else "."))
    else:
        say(f"  message {message_id} was NOT marked sent within {wait:.0f} s of the restart")
    _record(lab, "worker-all", None)
    return {"sent": sent is not None, "after_kill": done - killed,
            "after_restart": done - restarted}


def heal_worker(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal worker: make sure the Celery worker runs")
    if lab.running("worker"):
        say("  it runs (a killed pool process is replaced by the worker itself)")
        started: list[str] = []
    else:
        started = start_tiers(lab, ["worker"], say)
    _record(lab, "worker", None)
    return {"started": started}

