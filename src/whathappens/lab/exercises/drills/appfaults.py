"""app-timeout (a view slower than the timeouts: which tier cuts it, with which worker class)
and app-leak (a view that leaks under a real memory cap: the kernel kills the worker, the
gunicorn master boots another, some requests fail).

Both restart one app node's gunicorn with ``WHATHAPPENS_DRILL_VIEWS=1`` (the lab-only views
``/drill/slow`` and ``/drill/leak``, see ``site/drill_views.py``) and other arguments, keep
HAProxy's traffic on that node while they probe (the other node in maintenance), and leave
the node so until ``lab heal``, which restarts its gunicorn as the lab builds it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whathappens.lab import process
from whathappens.lab.exercises import load
from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Reply,
    Say,
    _record,
    answered_by,
    counts,
    in_force,
    wait_for,
)
from whathappens.lab.exercises.drills.serving import (
    all_up,
    children,
    gunicorn_of,
    json_since,
    lines_since,
    log_size,
    nginx_of,
    only_node,
    refuse_if_busy,
    reload_nginx,
    restore_nginx,
)
from whathappens.lab.exercises.experiments import Adjusted
from whathappens.lab.running import Lab
from whathappens.lab.tier import LabContext, Tier
from whathappens.lab.tiers.nginx import access_log
from whathappens.lab.topology import SITE

DRILL_ENV = {"WHATHAPPENS_DRILL_VIEWS": "1"}
GUNICORN_NEWS = ("WORKER TIMEOUT", "was sent", "exited with code", "Booting worker",
                 "Error handling request", "Autorestarting")


class Reargued(Adjusted):
    """A gunicorn tier as the topology builds it, with some of its arguments' values
    replaced (``{"--timeout": "3"}``) and the drill views turned on."""

    def __init__(self, base: Tier, args: dict[str, str]) -> None:
        super().__init__(base, DRILL_ENV)
        self.args = dict(args)

    def command(self, ctx: LabContext) -> list[str]:
        argv = list(self.base.command(ctx))
        for flag, value in self.args.items():
            if flag in argv:
                argv[argv.index(flag) + 1] = value
            else:
                argv += [flag, value]
        return argv


def restart_gunicorn(lab: Lab, tier: str, args: dict[str, str], say: Say) -> None:
    """Stop ``tier`` and start it again with ``args`` and the drill views. drills.json says
    so, not lab.json: rewriting lab.json would make every drill in force look older than
    the lab (its mtime is the lab's id)."""
    t0 = time.monotonic()
    process.stop(lab.ctx, tier)
    process.start(Reargued(lab.tier(tier), args), lab.ctx)
    node_up(lab, tier)
    shown = " ".join(f"{k} {v}" for k, v in args.items()) or "its usual arguments"
    say(f"  restarted {tier} with {shown} and the drill views; HAProxy sees its node UP "
        f"{time.monotonic() - t0:.1f} s after the stop")


def node_up(lab: Lab, tier: str, timeout: float = 15) -> None:
    """Until HAProxy's checks count the tier's node UP again (rise 2: about 1 s)."""
    node, lb = lab.topo.spec(tier).host, lab.haproxy()
    if wait_for(lambda: lb.servers(lab.ctx).get(node) == "UP", timeout) is None:
        raise DrillError(f"HAProxy does not see {node} UP {timeout:g} s after {tier} "
                         f"restarted: {lb.servers(lab.ctx)}")


def restore_gunicorn(lab: Lab, tier: str, say: Say) -> None:
    t0 = time.monotonic()
    process.stop(lab.ctx, tier)
    process.start(lab.tier(tier), lab.ctx)
    node_up(lab, tier)
    say(f"  restarted {tier} as the lab builds it; its node UP "
        f"{time.monotonic() - t0:.1f} s after the stop")


def gunicorn_news(lab: Lab, tier: str, offset: int) -> list[str]:
    """What gunicorn's master and workers said after ``offset``: timeouts, kills, boots."""
    return [line.split("] ", 1)[-1] if "] [" in line else line
            for line in lines_since(lab.ctx.log(tier), offset)
            if not line.startswith("{") and any(n in line for n in GUNICORN_NEWS)]


# ---------------------------------------------------------------------------------------------
# app-timeout: which tier cuts a slow view


SLOW_MS = 5000           # the view's sleep
GUNICORN_TIMEOUT = 3     # --timeout during the drill (the lab's is 60 s)
SHORT_READ = "1s"        # the app nginx's proxy_read_timeout in the "nginx first" order
# The view stuck in C: past --timeout and the SIGKILL that follows about a second later.
CPU_MS = 6000


@dataclass
class Cut:
    """One slow request and what each tier logged of it."""

    setting: str
    reply: Reply
    tiers: list[tuple[str, str, str]] = field(default_factory=list)   # tier, status, detail
    news: list[str] = field(default_factory=list)       # gunicorn's log
    nginx_error: str = ""

    def answered_by(self) -> str:
        """answered_by, but a 500 that gunicorn wrote itself (no Django timing, its own
        'Internal Server Error' page) is named as gunicorn's."""
        origin = self.origin()
        if origin.endswith("-gunicorn") and "app" not in self.reply.timing():
            return f"{origin} itself (its own error page: Django never answered)"
        return answered_by(self.reply)

    def origin(self) -> str:
        """The innermost tier that logged the status the client got."""
        found = "?"
        for tier, status, _ in self.tiers:
            if status == str(self.reply.status):
                found = tier
        return found


def slow_probe(lab: Lab, node: str, setting: str, cpu: bool = False) -> Cut:
    """GET /drill/slow?ms=SLOW_MS (``cpu``: in C, not asleep) through the edge; each tier's
    log line of it."""
    ngx, gun = nginx_of(lab, node), gunicorn_of(lab, node)
    logs = {"edge": access_log(lab.ctx, lab.topo.front().name), "lb": lab.ctx.log("lb"),
            ngx: access_log(lab.ctx, ngx), gun: lab.ctx.log(gun)}
    offsets = {k: log_size(p) for k, p in logs.items()}
    err_offset = log_size(lab.ctx.log(ngx))
    nonce = secrets.token_hex(6)
    wait = f"ms={CPU_MS}&cpu=1" if cpu else f"ms={SLOW_MS}"
    reply = Browser(lab).get(f"/drill/slow?{wait}&drill={nonce}")
    # The tiers write their lines as the request ends; gunicorn's master follows an abort
    # with SIGKILL at its next check, about a second later.
    time.sleep(1.2)
    cut = Cut(setting, reply)
    for tier, path in logs.items():
        lines = json_since(path, offsets[tier], nonce)
        if not lines:
            cut.tiers.append((tier, "-", "no line: it never finished the request"))
            continue
        x = lines[-1]
        cut.tiers.append((tier, str(x.get("status")), _detail(tier, x)))
    cut.news = gunicorn_news(lab, gun, offsets[gun])
    errors = [line for line in lines_since(lab.ctx.log(ngx), err_offset) if "upstream" in line]
    cut.nginx_error = errors[-1].split("] ", 1)[-1][:200] if errors else ""
    return cut


def _detail(tier: str, x: dict[str, Any]) -> str:
    if tier == "lb":
        return (f"server {x.get('server')}, response headers after {x.get('Tr')} ms, "
                f"termination {x.get('termination')}")
    if "duration_us" in x:
        return f"worker {x.get('pid')}, {int(x['duration_us']) / 1e6:.2f} s"
    if x.get("upstream_addr"):
        return (f"{float(x.get('request_time') or 0):.2f} s, upstream header "
                f"{x.get('upstream_header_time') or '-'} s")
    return f"{float(x.get('request_time') or 0):.2f} s"


def break_app_timeout(lab: Lab, say: Say) -> dict[str, Any]:
    node = lab.app_nodes()[0]
    refuse_if_busy(lab, node, "app-timeout")
    all_up(lab)
    gun, ngx = gunicorn_of(lab, node), nginx_of(lab, node)
    say(f"drill app-timeout: a view that takes {SLOW_MS / 1000:g} s (/drill/slow, lab only) "
        f"behind timeouts shorter than that; which tier cuts it, with which worker class")
    _record(lab, "app-timeout", {"node": node, "gunicorn": gun, "nginx": ngx})
    cuts = []
    with only_node(lab, node, say):
        restart_gunicorn(lab, gun, {"--timeout": str(GUNICORN_TIMEOUT)}, say)
        cuts.append(slow_probe(lab, node, f"gthread, --timeout {GUNICORN_TIMEOUT}; "
                                          f"nginx read 10s"))
        restart_gunicorn(lab, gun, {"--worker-class": "sync", "--threads": "1",
                                    "--timeout": str(GUNICORN_TIMEOUT)}, say)
        cuts.append(slow_probe(lab, node, f"sync, --timeout {GUNICORN_TIMEOUT}; "
                                          f"nginx read 10s"))
        cuts.append(slow_probe(lab, node, f"sync, --timeout {GUNICORN_TIMEOUT}; "
                                          f"nginx read 10s; view in C", cpu=True))
        conf = (lab.ctx.dir(ngx) / "nginx.conf").read_text()
        reload_nginx(lab, ngx, re.sub(r"proxy_read_timeout\s+\S+;",
                                      f"proxy_read_timeout {SHORT_READ};", conf))
        say(f"  reloaded {ngx} with proxy_read_timeout {SHORT_READ}")
        try:
            cuts.append(slow_probe(lab, node, f"sync, --timeout {GUNICORN_TIMEOUT}; "
                                              f"nginx read {SHORT_READ}"))
        finally:
            restore_nginx(lab, ngx)
            say(f"  {ngx} back on proxy_read_timeout 10s")
    for cut in cuts:
        _say_cut(say, cut)
    _say_timeout_means(say, cuts)
    say(f"  left in force: {gun} with sync workers and --timeout {GUNICORN_TIMEOUT} s "
        f"(try: GET /drill/slow?ms={SLOW_MS}).  undo: whathappens lab heal app-timeout")
    return {"node": node, "cuts": [{"setting": c.setting, "status": c.reply.status,
                                    "seconds": c.reply.ms / 1000, "origin": c.origin(),
                                    "answered_by": c.answered_by(), "tiers": c.tiers,
                                    "gunicorn": c.news, "nginx_error": c.nginx_error}
                                   for c in cuts]}


def _say_cut(say: Say, cut: Cut) -> None:
    say(f"  {cut.setting}: HTTP {cut.reply.status} after {cut.reply.ms / 1000:.2f} s, "
        f"answered by {cut.answered_by()}")
    for tier, status, detail in cut.tiers:
        say(f"      {tier:<16} {status:>4}  {detail}")
    if cut.nginx_error:
        say(f"      nginx error log: {cut.nginx_error}")
    for line in cut.news[:4]:
        say(f"      gunicorn: {line[:160]}")


def _say_timeout_means(say: Say, cuts: list[Cut]) -> None:
    got = [c.reply.status for c in cuts]
    say(f"  what it means (statuses here: {', '.join(map(str, got))}):")
    say("    gunicorn's --timeout is a heartbeat, not a request timer: a worker must "
        "report to the master at least every N seconds. A gthread worker's main loop "
        "keeps reporting while its threads run views, so the same --timeout never cuts a "
        "slow request: it ran to its end. There, only the proxies' timeouts bound it.")
    say("    A sync worker reports only between requests: past N seconds the master logs "
        "WORKER TIMEOUT and sends SIGABRT. When the view sleeps in Python, the signal "
        "handler runs at once and raises SystemExit inside the view; gunicorn catches it "
        "and writes its own 500 page ('Error handling request' in its log) before the "
        "worker exits: a 500 that no code of the site produced.")
    say("    When the view is stuck inside C (a C extension, a catastrophic regex), the "
        "handler cannot run; at the master's next check it sends SIGKILL, the connection "
        "closes without a response, and nginx answers 502 ('upstream prematurely closed "
        "connection').")
    say(f"    When nginx's proxy_read_timeout is the shorter ({SHORT_READ}), nginx stops "
        f"waiting and answers 504 itself; the worker goes on for nobody until gunicorn's "
        f"own timeout ends it.")
    say("    So the status tells which timer ran out first: 504 a proxy's, 502 a worker "
        "killed (or crashed) mid-request, 500 with gunicorn's page an aborted sync "
        "worker. Set them shrinking inwards (edge > LB > nginx > gunicorn) and mind the "
        "worker class: with gthread, gunicorn's --timeout is no request limit at all.")


def heal_app_timeout(lab: Lab, say: Say) -> dict[str, Any]:
    facts = in_force(lab).get("app-timeout", {})
    node = str(facts.get("node") or lab.app_nodes()[0])
    gun, ngx = gunicorn_of(lab, node), nginx_of(lab, node)
    say(f"heal app-timeout: {gun} and {ngx} back as the lab builds them")
    restore_gunicorn(lab, gun, say)
    if restore_nginx(lab, ngx):
        say(f"  {ngx} reloaded with its own configuration")
    all_up(lab, timeout=15)
    reply = Browser(lab).get(f"/drill/slow?ms=10&drill={secrets.token_hex(4)}")
    say(f"  /drill/slow now: {reply.status} (the drill views are gone with the restart)")
    _record(lab, "app-timeout", None)
    return {"slow_view": reply.status, "servers": lab.haproxy().servers(lab.ctx)}


# ---------------------------------------------------------------------------------------------
# app-leak: a leaking view under a memory cap


LEAK_MB = 16             # leaked per leaking request
LEAK_MAX = 40            # leaking requests at most (640 MiB: far past the cap)
LEAK_PAUSE = 0.1         # seconds between two leaking requests (one at a time)
HEADROOM_MB = 160        # the cap: what gunicorn used when capped, plus this
LEAK_REQUESTS = 120
LEAK_RATE = 20.0


class NoCgroup(DrillError):
    """No memory cgroup this process may create here."""


@dataclass
class Cgroup:
    """A memory cgroup (v1 or v2) made for the drill under the lab's own."""

    path: Path
    v2: bool

    @classmethod
    def make(cls, name: str) -> Cgroup:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            base = None
            if "memory" in controllers.split(",") and Path("/sys/fs/cgroup/memory").is_dir():
                base, v2 = Path("/sys/fs/cgroup/memory"), False
            elif controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
                base, v2 = Path("/sys/fs/cgroup"), True
            if base is None:
                continue
            path = base / where.lstrip("/") / name
            with contextlib.suppress(FileExistsError):
                path.mkdir()
            group = cls(path, v2)
            if group.limit_file.exists():
                return group
            with contextlib.suppress(OSError):
                path.rmdir()
        raise NoCgroup("no memory cgroup can be made here (cgroup v1 'memory' or v2 with the "
                       "memory controller delegated); app-leak needs one, as root")

    @property
    def limit_file(self) -> Path:
        return self.path / ("memory.max" if self.v2 else "memory.limit_in_bytes")

    def usage(self) -> int:
        name = "memory.current" if self.v2 else "memory.usage_in_bytes"
        return int((self.path / name).read_text().split()[0])

    def limit(self, size: int) -> None:
        self.limit_file.write_text(str(size))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        name = "memory.events" if self.v2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def cgroup_name(tier: str) -> str:
    return f"whathappens-drill-{tier}"


@dataclass
class PidWatch:
    """The gunicorn master's workers, polled: when each appeared and disappeared."""

    master: int
    t0: float
    events: list[tuple[float, str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> threading.Thread:
        def loop() -> None:
            seen = children(self.master)
            while not self._stop.is_set():
                now = children(self.master)
                t = time.monotonic() - self.t0
                self.events += [(t, "gone", p) for p in sorted(seen - now)]
                self.events += [(t, "new", p) for p in sorted(now - seen)]
                seen = now
                self._stop.wait(0.05)
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def first(self, kind: str) -> float | None:
        return next((t for t, k, _ in self.events if k == kind), None)


def cap_gunicorn(lab: Lab, tier: str, say: Say) -> tuple[Cgroup, int]:
    """The tier's master and workers in a memory cgroup of their own, capped at what they
    use now plus HEADROOM_MB: a container's memory limit, for this one gunicorn."""
    master = lab.pid(tier)
    if master is None:
        raise DrillError(f"{tier} is not running")
    group = Cgroup.make(cgroup_name(tier))
    for pid in [master, *sorted(children(master))]:
        group.add(pid)
    cap = group.usage() + (HEADROOM_MB << 20)
    group.limit(cap)
    say(f"  capped {tier} (master {master} and its workers) at {cap >> 20} MiB: cgroup "
        f"{'v2 memory.max' if group.v2 else 'v1 memory.limit_in_bytes'} at {group.path}; "
        f"charged to it now: {group.usage() >> 20} MiB, plus {HEADROOM_MB} MiB of headroom"
        + ("" if group.v2 else " (cgroup v1 leaves what a process used before the move "
                               "charged where it was: the cap counts what is allocated "
                               "from now on)"))
    return group, cap


@dataclass
class LeakRun:
    result: load.LoadResult                  # the pages
    leaks: list[tuple[float, int, str]]      # the leaking requests: start, status, who
    watch: PidWatch
    run_id: str
    nginx_lines: list[dict[str, Any]]
    nginx_errors: list[str]
    news: list[str]
    oom_kills: int
    t0_wall: float


def leak_load(lab: Lab, node: str, group: Cgroup, *, requests: int,
              rate: float) -> LeakRun:
    """A paced load of pages through the edge and, beside it, leaking requests one at a
    time (so one allocation at a time crosses the cap) until a worker is gone."""
    gun, ngx = gunicorn_of(lab, node), nginx_of(lab, node)
    master = lab.pid(gun)
    assert master is not None
    offsets = (log_size(lab.ctx.log(gun)), log_size(access_log(lab.ctx, ngx)),
               log_size(lab.ctx.log(ngx)))
    run_id = secrets.token_hex(4)
    watch, t0_wall = PidWatch(master, time.monotonic()), time.time()
    box: dict[str, load.LoadResult] = {}
    address, port = lab.front
    pages = threading.Thread(target=lambda: box.update(r=load.run(
        address, port, lambda n: f"/p/about/?drill={run_id}-{n}", requests=requests,
        concurrency=4, rate=rate, cafile=lab.cafile, host=SITE,
        seconds=requests / rate + 20)), daemon=True)
    thread = watch.run()
    pages.start()
    leaks: list[tuple[float, int, str]] = []
    browser = Browser(lab)
    deadline = time.monotonic() + requests / rate
    while watch.first("gone") is None and len(leaks) < LEAK_MAX and \
            time.monotonic() < deadline:
        t = time.monotonic() - watch.t0
        reply = browser.get(f"/drill/leak?mb={LEAK_MB}&drill={run_id}-leak{len(leaks)}")
        leaks.append((t, reply.status, answered_by(reply)))
        time.sleep(LEAK_PAUSE)
    pages.join(requests / rate + 40)
    time.sleep(0.5)
    watch.stop()
    thread.join(2)
    if "r" not in box:
        raise DrillError("the load run did not finish")
    errors = [line.split("] ", 1)[-1] for line in lines_since(lab.ctx.log(ngx), offsets[2])
              if "upstream" in line]
    return LeakRun(box["r"], leaks, watch, run_id,
                   json_since(access_log(lab.ctx, ngx), offsets[1], f"drill={run_id}-"),
                   errors, gunicorn_news(lab, gun, offsets[0]), group.oom_kills(), t0_wall)


def break_app_leak(lab: Lab, say: Say, *, requests: int = LEAK_REQUESTS,
                   rate: float = LEAK_RATE) -> dict[str, Any]:
    node = lab.app_nodes()[0]
    refuse_if_busy(lab, node, "app-leak")
    all_up(lab)
    gun = gunicorn_of(lab, node)
    say(f"drill app-leak: a view that keeps {LEAK_MB} MiB per request (/drill/leak, lab "
        f"only) on {node}, whose gunicorn runs under a memory cap; the kernel's OOM killer "
        f"ends the worker, gunicorn's master boots another")
    Cgroup.make(cgroup_name(gun)).remove()     # fails early, before any restart, if none
    _record(lab, "app-leak", {"node": node, "gunicorn": gun})
    restart_gunicorn(lab, gun, {}, say)
    group, cap = cap_gunicorn(lab, gun, say)
    _record(lab, "app-leak", {"node": node, "gunicorn": gun, "cgroup": str(group.path)})
    say(f"  load: {requests} page GETs through the edge, {rate:g} per second, 4 at a time "
        f"(unique URLs), and beside them /drill/leak?mb={LEAK_MB} one at a time, "
        f"{LEAK_PAUSE * 1000:.0f} ms apart, until a worker is gone")
    with only_node(lab, node, say):
        run = leak_load(lab, node, group, requests=requests, rate=rate)
    facts = _say_leak(lab, say, run)
    _say_leak_means(say, facts)
    say("  left in force: the cap and the leaking view (GET /drill/leak?mb=16 kills "
        "again).  undo: whathappens lab heal app-leak")
    return {**facts, "node": node, "cap_mb": cap >> 20}


def _say_leak(lab: Lab, say: Say, run: LeakRun) -> dict[str, Any]:
    t_gone, t_new = run.watch.first("gone"), run.watch.first("new")
    say("  gunicorn's workers (children of its master, polled every 50 ms):")
    for t, kind, pid in run.watch.events:
        say(f"    {t:6.2f} s  {'worker gone' if kind == 'gone' else 'new worker':<12} {pid}")
    if t_gone is not None and t_new is not None:
        say(f"  the master forked the replacement {1000 * (t_new - t_gone):.0f} ms after the "
            f"worker was seen gone (± 50 ms, the polling)")
    say(f"  the cgroup's OOM kills: {run.oom_kills}")
    for line in run.news[:6]:
        say(f"  gunicorn: {line[:170]}")
    samples = run.result.samples
    say(f"  the leaking requests: {len(run.leaks)} sent, "
        f"{counts([status for _, status, _ in run.leaks])}; the last answered by "
        f"{run.leaks[-1][2] if run.leaks else '-'}")
    say(f"  the pages: {counts([s.status for s in samples])}")
    failed_lines = [x for x in run.nginx_lines if str(x.get("status", "")).startswith("5")]
    say(f"  the requests that failed, from the app node's nginx log ({len(failed_lines)}):")
    for x in failed_lines[:8]:
        kind = "the leaking request" if "/drill/leak" in str(x.get("uri")) else "a page"
        at = float(x.get("time") or 0) - float(x.get("request_time") or 0) - run.t0_wall
        say(f"    {x.get('status')}  {kind:<20} {str(x.get('uri'))[:44]:<44} started "
            f"{at:5.2f} s, gunicorn's side ended after "
            f"{x.get('upstream_response_time') or '-'} s")
    for line in run.nginx_errors[:3]:
        say(f"  nginx's error log: {line[:170]}")
    after = [s for s in samples if t_gone is not None and s.start > t_gone + 0.5]
    return {"t_gone": t_gone, "t_new": t_new, "oom_kills": run.oom_kills,
            "news": run.news, "statuses": dict(sorted(
                {s.status: sum(1 for x in samples if x.status == s.status)
                 for s in samples}.items())),
            "failed": [(x.get("status"), x.get("uri")) for x in failed_lines],
            "nginx_errors": run.nginx_errors,
            "failed_after": sum(1 for s in after if not 200 <= s.status < 400),
            "answered_failed": sorted({s.served_by for s in run.result.failed}),
            "summary": run.result.summary(),
            "leaks": [(round(t, 3), status) for t, status, _ in run.leaks]}


def _say_leak_means(say: Say, facts: dict[str, Any]) -> None:
    say("  what it means:")
    if facts["oom_kills"] or any("SIGKILL" in n for n in facts["news"]):
        say("    The leak grew the cgroup's memory to its cap; the kernel's OOM killer "
            "chose the biggest process in it — the worker holding the leak — and sent "
            "SIGKILL. No Python code ran: no exception, no log line from the worker. "
            "gunicorn's master saw its child die ('was sent SIGKILL! Perhaps out of "
            "memory?') and booted a new worker at once.")
    else:
        say("    No worker was killed during the run: the cap was not reached.")
    leaking = sum(1 for _, uri in facts["failed"] if "/drill/leak" in str(uri))
    why = Counter("connection reset" if "reset by peer" in e else "closed early"
                  if "prematurely closed" in e else "other" for e in facts["nginx_errors"])
    say(f"    What failed: the requests that worker was serving when it died — "
        f"{len(facts['failed'])} here ({leaking} of them leaking ones: the kill comes "
        f"at whichever allocation crosses the cap, not necessarily the leak's), each a 502 "
        f"from the app node's nginx, whose connection to gunicorn was "
        f"{', '.join(f'{k} × {v}' for k, v in why.items()) or 'cut'}. HAProxy does not "
        f"retry an answer. The other worker served everything else: "
        f"{facts['failed_after']} failed after the replacement.")
    say("    A leak is not fixed by restarts, only hidden: gunicorn's --max-requests "
        "(2000 ± 200 in the lab) recycles workers gracefully before they grow, without "
        "failing requests; a memory cap makes the failure fast and local instead of "
        "the whole machine swapping.")


def heal_app_leak(lab: Lab, say: Say) -> dict[str, Any]:
    facts = in_force(lab).get("app-leak", {})
    node = str(facts.get("node") or lab.app_nodes()[0])
    gun = gunicorn_of(lab, node)
    say(f"heal app-leak: {gun} restarted as the lab builds it, its memory cgroup removed")
    restore_gunicorn(lab, gun, say)
    group_path = facts.get("cgroup")
    removed = False
    if group_path:
        group = Cgroup(Path(str(group_path)), Path(str(group_path), "memory.max").exists())
        with contextlib.suppress(OSError):
            group.remove()
        removed = not group.path.exists()
        say(f"  cgroup {group.path}: {'removed' if removed else 'still there'}")
    all_up(lab, timeout=15)
    reply = Browser(lab).get(f"/drill/leak?mb=1&drill={secrets.token_hex(4)}")
    say(f"  /drill/leak now: {reply.status} (the drill views are gone with the restart)")
    _record(lab, "app-leak", None)
    return {"leak_view": reply.status, "cgroup_removed": removed or not group_path,
            "servers": lab.haproxy().servers(lab.ctx)}
