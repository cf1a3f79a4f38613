"""app-N, app-N-gunicorn: an app node (or only its gunicorn) dies during a load run."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from whathappens.lab.exercises import load
from whathappens.lab.exercises.drills.common import (
    DrillError,
    Say,
    _record,
    counts,
    kill_tier,
    lb_lines,
    ms,
    pct,
    servers_line,
    start_tiers,
    wait_for,
)
from whathappens.lab.running import Lab
from whathappens.lab.topology import SITE

# The load run of the app-node drills: long enough to see the node fall (HAProxy checks
# every 500 ms, down after 2 failures), slow enough that the one node left stays under
# its nginx's per-client rate limit (50 r/s, burst 100).
LOAD_REQUESTS = 200
LOAD_CONCURRENCY = 4
LOAD_RATE = 40.0           # requests started per second
BREAK_AFTER = 1.0          # seconds of normal traffic before the break
POLL = 0.1                 # seconds between two looks at HAProxy's view


# ---------------------------------------------------------------------------------------------
# app-N, app-N-gunicorn: a node dies during a load run


@dataclass
class Watch:
    """HAProxy's view of the servers, polled on its admin socket while a drill runs."""

    lab: Lab
    t0: float
    changes: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lb = self.lab.haproxy()
        last: dict[str, str] | None = None
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                states = lb.servers(self.lab.ctx)
                if states != last:
                    self.changes.append((time.monotonic() - self.t0, states))
                    last = states
            self._stop.wait(POLL)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def first(self, server: str, state: str) -> float | None:
        """When ``server`` was first seen in ``state`` (seconds since t0)."""
        for t, states in self.changes:
            if states.get(server) == state:
                return t
        return None


@dataclass
class LoadPlan:
    """The bounded load run during which the node dies."""

    requests: int = LOAD_REQUESTS
    rate: float = LOAD_RATE
    concurrency: int = LOAD_CONCURRENCY
    break_after: float = BREAK_AFTER
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))

    def path(self, n: int) -> str:
        return f"/p/about/?drill={self.run_id}-{n}"


@dataclass
class Crash:
    """What happened: the load run's result, HAProxy's view, when the kill came."""

    result: load.LoadResult
    watch: Watch
    t_break: float
    t_killed: float


def break_app(lab: Lab, node: str, say: Say, *, only_gunicorn: bool = False,
              requests: int = LOAD_REQUESTS, rate: float = LOAD_RATE,
              concurrency: int = LOAD_CONCURRENCY,
              break_after: float = BREAK_AFTER) -> dict[str, Any]:
    tiers = lab.node_tiers(node)
    victims = [t for t in tiers if t.endswith("-gunicorn")] if only_gunicorn else \
        list(reversed(tiers))   # the node's front door first: HAProxy sees it go at once
    target = victims[0] if only_gunicorn else node
    _check_ready(lab, victims, target)
    plan = LoadPlan(requests, rate, concurrency, break_after)
    address, port = lab.front
    what = (f"{node}'s gunicorn is killed (SIGKILL); its nginx stays up" if only_gunicorn
            else f"the app node {node} dies: its nginx and gunicorn are killed (SIGKILL), "
                 f"as in a crash")
    say(f"drill {target}: {what}")
    say(f"  load: {requests} GETs of /p/about/?drill={plan.run_id}-N through the edge "
        f"({address}:{port}), {concurrency} at a time, {rate:g} per second; each URL its "
        f"own, so no cache answers for the app")
    crash = _kill_during_load(lab, victims, plan)
    result, t_break = crash.result, crash.t_break
    t_down = crash.watch.first(node, "DOWN")
    say(f"  killed {', '.join(victims)} {t_break:.2f} s into the run "
        f"(took {1000 * (crash.t_killed - t_break):.0f} ms)")
    say("  HAProxy's view of the servers (its admin socket, 'show stat', every "
        f"{POLL * 1000:.0f} ms):")
    for t, states in crash.watch.changes:
        mark = f"{t - t_break:+.2f} s" if t >= t_break else "before"
        say(f"    {mark:>9}  {servers_line(states)}")
    _say_what_the_load_saw(result, t_break, t_down, say)
    failed = result.failed
    # What HAProxy did about it: its log names retries and the server finally used
    retried = [x for x in lb_lines(lab, f"drill={plan.run_id}-")
               if str(x.get("retries", "0")) not in ("0", "")]
    redispatched = [x for x in retried if str(x.get("retries", "")).startswith("+")]
    if retried:
        say(f"  HAProxy's log: {len(retried)} request(s) retried after a failed attempt on "
            f"{node} ({len(redispatched)} redispatched to another server): "
            f"the client never saw those failures")
    after_down = [s for s in failed if t_down is not None and s.start >= t_down]
    now = lab.haproxy().servers(lab.ctx)
    _say_what_it_means(node, t_break, t_down, only_gunicorn, len(after_down), say)
    say(f"  now: {servers_line(now)}.  undo: whathappens lab heal {target}")
    _record(lab, target, {"node": node, "stopped": victims})
    return {"target": target, "node": node, "victims": victims, "t_break": t_break,
            "t_down": t_down, "changes": crash.watch.changes, "summary": result.summary(),
            "failed": len(failed), "failed_after_down": len(after_down),
            "failed_statuses": dict(Counter(s.status for s in failed)),
            "retried": len(retried), "servers_after": now}


def _check_ready(lab: Lab, victims: list[str], target: str) -> None:
    """The victims run, and HAProxy sees every node UP: a steady state to break."""
    if not all(lab.running(t) for t in victims):
        raise DrillError(f"{target} is not running (whathappens lab heal {target})")
    lb = lab.haproxy()
    # A lab just brought up can still have a node's first checks failing (its first
    # requests load the app): start from a steady state, every node UP.
    if wait_for(lambda: set(lb.servers(lab.ctx).values()) == {"UP"}, timeout=10) is None:
        raise DrillError(f"HAProxy does not see every app node UP "
                         f"({servers_line(lb.servers(lab.ctx))})")


def _kill_during_load(lab: Lab, victims: list[str], plan: LoadPlan) -> Crash:
    """Start the load run and HAProxy's watch; kill ``victims`` ``break_after`` s in."""
    address, port = lab.front
    box: dict[str, load.LoadResult] = {}

    def run_load() -> None:
        box["r"] = load.run(address, port, plan.path, requests=plan.requests,
                            concurrency=plan.concurrency, rate=plan.rate, cafile=lab.cafile,
                            host=SITE, seconds=plan.requests / plan.rate + 20)

    t0 = time.monotonic()
    loader = threading.Thread(target=run_load, daemon=True)
    watch = Watch(lab, t0)
    watch.start()
    loader.start()
    time.sleep(plan.break_after)
    t_break = time.monotonic() - t0
    for name in victims:
        kill_tier(lab, name)
    t_killed = time.monotonic() - t0
    loader.join(plan.requests / plan.rate + 60)
    watch.stop()
    result = box.get("r")
    if result is None:
        raise DrillError("the load run did not finish")
    return Crash(result, watch, t_break, t_killed)


def _say_what_the_load_saw(result: load.LoadResult, t_break: float, t_down: float | None,
                           say: Say) -> None:
    """The load run split at the break and at HAProxy's DOWN, and its failures."""
    def phase(lo: float, hi: float) -> list[load.Sample]:
        return [s for s in result.samples if lo <= s.start < hi]

    end = float("inf")
    phases = [("before the break", phase(0, t_break))]
    if t_down is not None:
        phases += [(f"break → DOWN ({t_down - t_break:.2f} s)", phase(t_break, t_down)),
                   ("after DOWN", phase(t_down, end))]
    else:
        phases += [("after the break", phase(t_break, end))]
    say("  what the load saw (by when each request started):")
    for label, samples in phases:
        ok = [s.latency_ms for s in samples if 200 <= s.status < 400]
        failed = [s for s in samples if not 200 <= s.status < 400]
        served = Counter(s.served_by for s in samples if 200 <= s.status < 400)
        served_text = ", ".join(f"{k} {v}" for k, v in sorted(served.items())) or "-"
        say(f"    {label:<24} {len(samples):>4} requests  {len(failed):>3} failed  "
            f"p50 {ms(pct(ok, 50)):>6}  p95 {ms(pct(ok, 95)):>6}  served by {served_text}")
    failed = result.failed
    say(f"  statuses: {counts([s.status for s in result.samples])}")
    for s in failed[:5]:
        why = s.error or f"HTTP {s.status}"
        say(f"    failed at {s.start - t_break:+.2f} s after the break: {why}"
            + (f" (from {s.served_by})" if s.served_by else ""))
    if len(failed) > 5:
        say(f"    … and {len(failed) - 5} more")


def _say_what_it_means(node: str, t_break: float, t_down: float | None, only_gunicorn: bool,
                       failed_after_down: int, say: Say) -> None:
    say("  what it means:")
    if t_down is not None:
        say(f"    HAProxy marked {node} DOWN {t_down - t_break:.2f} s after the kill: its "
            f"health check (GET /healthz through the node's nginx, every 500 ms) failed "
            f"twice. From then on it sends nothing there.")
    else:
        say(f"    HAProxy never marked {node} DOWN during the run.")
    if only_gunicorn:
        say(f"    The node's nginx stayed up, so HAProxy could connect: each request it sent "
            f"to {node} got nginx's own 502 Bad Gateway (gunicorn refused the connection). "
            f"A 502 is an answer, and HAProxy does not retry answers (retry-on "
            f"conn-failure empty-response): those requests failed until the checks "
            f"caught up. Health checks bound such a window; they do not close it.")
    else:
        say(f"    With the node's nginx gone, HAProxy's connections to {node} were refused "
            f"or cut without an answer: 'retry-on conn-failure empty-response' with "
            f"'option redispatch' replays such a request on the other server, so the "
            f"node's death costs time, not errors.")
    if failed_after_down:
        say(f"    {failed_after_down} request(s) still failed after DOWN: see above.")
    else:
        say("    After the checks took the node out: 0 failed requests.")


def heal_app(lab: Lab, node: str, say: Say, *, target: str) -> dict[str, Any]:
    say(f"heal {target}: start {node}'s tiers again, wait until HAProxy sends it traffic")
    t0 = time.monotonic()
    started = start_tiers(lab, lab.node_tiers(node), say)
    lb = lab.haproxy()
    up = wait_for(lambda: lb.servers(lab.ctx).get(node) == "UP", timeout=15)
    t_up = time.monotonic() - t0
    if up is None:
        raise DrillError(f"HAProxy does not see {node} UP 15 s after the start: "
                         f"{servers_line(lb.servers(lab.ctx))}")
    say(f"  HAProxy marked {node} UP {up:.2f} s after its tiers were ready (2 passing checks "
        f"500 ms apart); {t_up:.1f} s in all")
    address, port = lab.front
    run_id = secrets.token_hex(4)
    result = load.run(address, port, lambda n: f"/p/about/?drill={run_id}-{n}", requests=20,
                      concurrency=2, rate=LOAD_RATE, cafile=lab.cafile, host=SITE, seconds=10)
    summary = result.summary()
    served = ", ".join(f"{k} {v}" for k, v in sorted(summary["served_by"].items()))
    say(f"  20 requests after: {counts([s.status for s in result.samples])}; served by "
        f"{served}")
    for name in (node, f"{node}-gunicorn"):     # however the node was broken
        _record(lab, name, None)
    return {"started": started, "up_after": up, "summary": summary,
            "servers": lb.servers(lab.ctx)}

