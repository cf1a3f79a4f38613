"""lb-mistarget (HAProxy's backends pointed at the wrong port: its own 503) and
nginx-saturation (an app node's nginx with too few worker_connections: the latency curve as
concurrency rises), with what the app drills share: the tiers' logs read from an offset,
an nginx reloaded with an edited configuration, traffic kept on one app node."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from whathappens.lab.exercises import load, plot
from whathappens.lab.exercises.drills.app import Watch
from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Say,
    _nonce,
    _record,
    answered_by,
    counts,
    in_force,
    lb_lines,
    ms,
    pct,
    servers_line,
    wait_for,
)
from whathappens.lab.running import Lab
from whathappens.lab.tier import port_open
from whathappens.lab.topology import SITE

READ_MAX = 4 << 20           # bytes of a tier's log read after an offset


# ---------------------------------------------------------------------------------------------
# What the drills of this module and of ``appfaults`` share


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def lines_since(path: Path, offset: int) -> list[str]:
    """The lines a tier wrote to ``path`` after ``offset`` (at most READ_MAX bytes)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(READ_MAX)
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()


def json_since(path: Path, offset: int, needle: str = "") -> list[dict[str, Any]]:
    out = []
    for line in lines_since(path, offset):
        if line.startswith("{") and needle in line:
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append(item)
    return out


def children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (/proc/<pid>/stat, field 4)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(entry))
    return out


def reload_nginx(lab: Lab, tier: str, text: str) -> float:
    """Write ``text`` as ``tier``'s nginx.conf, check it with ``nginx -t`` and reload (SIGHUP
    to the master: new workers with the new configuration, the old ones finish their
    requests and leave). Seconds until only new workers run."""
    master = lab.pid(tier)
    if master is None:
        raise DrillError(f"{tier} is not running")
    conf = lab.ctx.dir(tier) / "nginx.conf"
    before = conf.read_text()
    conf.write_text(text)
    test = subprocess.run([*lab.tier(tier).command(lab.ctx), "-t", "-q"], capture_output=True,
                          text=True, timeout=30, check=False, cwd=lab.ctx.dir(tier))
    if test.returncode != 0:
        conf.write_text(before)
        raise DrillError(f"nginx -t rejected the edited configuration of {tier}: "
                         f"{(test.stderr + test.stdout).strip()[:400]}")
    old = children(master)
    os.kill(master, signal.SIGHUP)
    # Done when the old workers are gone: until then one may still take connections with
    # the old configuration.
    took = wait_for(lambda: bool(children(master)) and not children(master) & old,
                    timeout=15, interval=0.05)
    if took is None:
        raise DrillError(f"{tier}'s old nginx workers still run 15 s after SIGHUP")
    return took


def restore_nginx(lab: Lab, tier: str) -> bool:
    """``tier``'s nginx back on the configuration the lab generates; True if it changed."""
    from whathappens.lab.tiers.nginx import NginxTier

    driver = lab.tier(tier)
    if not isinstance(driver, NginxTier):
        raise DrillError(f"{tier} is not an nginx tier")
    normal = driver.config(lab.ctx)
    conf = lab.ctx.dir(tier) / "nginx.conf"
    if conf.read_text() == normal:
        return False
    reload_nginx(lab, tier, normal)
    return True


def nginx_of(lab: Lab, node: str) -> str:
    return next(t for t in lab.node_tiers(node) if t.endswith("-nginx"))


def gunicorn_of(lab: Lab, node: str) -> str:
    return next(t for t in lab.node_tiers(node) if t.endswith("-gunicorn"))


@contextlib.contextmanager
def only_node(lab: Lab, node: str, say: Say) -> Iterator[None]:
    """HAProxy sends everything to ``node``: the others in maintenance (``disable server``,
    its runtime API) for the block, enabled again after it."""
    lb = lab.haproxy()
    others = [n for n in lab.app_nodes() if n != node]
    for other in others:
        lb.admin(lab.ctx, f"disable server app/{other}")
    say(f"  HAProxy: {', '.join(others)} in maintenance for the probes (disable server), so "
        f"every request through the edge reaches {node}")
    try:
        yield
    finally:
        for other in others:
            with contextlib.suppress(OSError):
                lb.admin(lab.ctx, f"enable server app/{other}")
        wait_for(lambda: set(lb.servers(lab.ctx).values()) == {"UP"}, timeout=10)


def refuse_if_busy(lab: Lab, node: str, target: str) -> None:
    """A drill that changes ``node``'s nginx or gunicorn does not run over another one that
    changed or stopped them (heal that first)."""
    busy = {"nginx-saturation", "app-timeout", "app-leak", node, f"{node}-gunicorn"} - {target}
    found = sorted(busy & set(in_force(lab)))
    if found:
        raise DrillError(f"{found[0]} is in force on {node}: heal it first "
                         f"(whathappens lab heal {found[0]})")


def all_up(lab: Lab, timeout: float = 10) -> None:
    lb = lab.haproxy()
    if wait_for(lambda: set(lb.servers(lab.ctx).values()) == {"UP"}, timeout) is None:
        raise DrillError(f"HAProxy does not see every app node UP "
                         f"({servers_line(lb.servers(lab.ctx))}): heal the lab first")


def phases_line(label: str, samples: list[load.Sample]) -> str:
    ok = [s.latency_ms for s in samples if 200 <= s.status < 400]
    return (f"    {label:<26} {len(samples):>4} requests  {counts([s.status for s in samples])}"
            f"  (p50 {ms(pct(ok, 50))} of the successful ones)" if ok else
            f"    {label:<26} {len(samples):>4} requests  {counts([s.status for s in samples])}")


# ---------------------------------------------------------------------------------------------
# lb-mistarget: every backend on the wrong port


MISTARGET_REQUESTS = 60
MISTARGET_RATE = 20.0
MISTARGET_BREAK_AFTER = 1.0


def wrong_port(address: str, port: int) -> int:
    """The first port after the right one where nothing listens (a typo in a deploy)."""
    for candidate in range(port + 1, port + 50):
        if not port_open(address, candidate):
            return candidate
    raise DrillError(f"no free port near {address}:{port}")


def break_lb_mistarget(lab: Lab, say: Say, *, requests: int = MISTARGET_REQUESTS,
                       rate: float = MISTARGET_RATE,
                       break_after: float = MISTARGET_BREAK_AFTER) -> dict[str, Any]:
    lb = lab.haproxy()
    all_up(lab)
    targets = {lab.topo.spec(b).host: lab.topo.endpoint(b) for b in lb.backends}
    wrong = {node: wrong_port(*where) for node, where in targets.items()}
    say("drill lb-mistarget: every HAProxy backend is pointed at a port where nothing "
        "listens (its runtime API, 'set server app/NODE addr A port P', as a bad deploy "
        "or service-discovery entry would)")
    for node, (address, port) in sorted(targets.items()):
        say(f"    {node}: {address}:{port} → {address}:{wrong[node]}")
    run_id = secrets.token_hex(4)
    say(f"  load: {requests} GETs of /p/about/?drill={run_id}-N through the edge, "
        f"{rate:g} per second; the backends are moved {break_after:g} s in")
    t0, t0_wall = time.monotonic(), time.time()
    watch = Watch(lab, t0)
    box: dict[str, load.LoadResult] = {}
    address, port = lab.front
    loader = threading.Thread(target=lambda: box.update(r=load.run(
        address, port, lambda n: f"/p/about/?drill={run_id}-{n}", requests=requests,
        concurrency=2, rate=rate, cafile=lab.cafile, host=SITE,
        seconds=requests / rate + 20)), daemon=True)
    watch.start()
    loader.start()
    time.sleep(break_after)
    t_break = time.monotonic() - t0
    for node, (addr, _) in targets.items():
        lb.admin(lab.ctx, f"set server app/{node} addr {addr} port {wrong[node]}")
    _record(lab, "lb-mistarget", {"targets": {n: list(w) for n, w in targets.items()},
                                  "wrong": wrong})
    loader.join(requests / rate + 40)
    watch.stop()
    if "r" not in box:
        raise DrillError("the load run did not finish")
    t_down = max((watch.first(n, "DOWN") or 0.0 for n in targets), default=None)
    if any(watch.first(n, "DOWN") is None for n in targets):
        t_down = None
    facts = _say_mistarget(lab, say, box["r"], watch, run_id, (t0_wall, t_break, t_down))
    return {**facts, "t_break": t_break, "t_all_down": t_down, "wrong": wrong,
            "targets": targets, "changes": watch.changes}


def _say_mistarget(lab: Lab, say: Say, result: load.LoadResult, watch: Watch, run_id: str,
                   times: tuple[float, float, float | None]) -> dict[str, Any]:
    t0_wall, t_break, t_down = times
    say("  HAProxy's view of the servers (admin socket, 'show stat'):")
    for t, states in watch.changes:
        mark = f"{t - t_break:+.2f} s" if t >= t_break else "before"
        say(f"    {mark:>9}  {servers_line(states)}")
    bounds = [("before the move", 0.0, t_break)]
    if t_down is not None:
        bounds += [(f"move → all DOWN ({t_down - t_break:.2f} s)", t_break, t_down),
                   ("all DOWN", t_down, float("inf"))]
    else:
        bounds += [("after the move", t_break, float("inf"))]
    logged = lb_lines(lab, f"drill={run_id}-")
    say("  what the load saw, and HAProxy's log of the same requests (status, server, "
        "termination state %tsc, retries %rc):")
    by_phase: dict[str, Counter[str]] = {}
    for label, lo, hi in bounds:
        say(phases_line(label, [s for s in result.samples if lo <= s.start < hi]))
        seen: Counter[str] = Counter()
        for x in logged:
            at = float(x.get("accept_time") or 0) - t0_wall
            if lo <= at < hi:
                seen[f"{x.get('status')} {x.get('server')} {x.get('termination')} "
                     f"retries {x.get('retries')}"] += 1
        by_phase[label] = seen
        for what, n in seen.most_common(4):
            say(f"      HAProxy logged {n:>3} × {what}")
    probe = Browser(lab).get(f"/p/about/?{_nonce()}")
    tier = answered_by(probe)
    first = re.sub(r"<[^>]+>", " ", probe.body).split()
    say(f"  one more request: {probe.status} in {ms(probe.ms)}, answered by {tier}: "
        f"\"{' '.join(first)[:90]}\"")
    nosrv = [x for x in logged if x.get("server") == "<NOSRV>"]
    hi = t_down if t_down is not None else float("inf")
    window = [x for x in logged
              if t_break <= float(x.get("accept_time") or 0) - t0_wall < hi]
    _say_mistarget_means(say, t_break, t_down, window, bool(nosrv))
    say("  undo: whathappens lab heal lb-mistarget")
    return {"summary": result.summary(), "by_phase": by_phase, "probe": probe,
            "window": [(x.get("status"), x.get("server"), x.get("termination"),
                        x.get("retries")) for x in window],
            "probe_answered_by": tier, "nosrv": len(nosrv),
            "terminations": dict(Counter(str(x.get("termination")) for x in logged)),
            "servers_after": lab.haproxy().servers(lab.ctx)}


def _say_mistarget_means(say: Say, t_break: float, t_down: float | None,
                         window: list[dict[str, Any]], nosrv: bool) -> None:
    say("  what it means:")
    if t_down is not None:
        say(f"    HAProxy's health checks follow the server's address: they went to the "
            f"wrong port, were refused, and after 2 failures (500 ms apart) every server "
            f"was DOWN, {t_down - t_break:.2f} s after the move.")
    saved = [x for x in window if x.get("status") == 200]
    failed = [x for x in window if x.get("status") == 503]
    if saved:
        say(f"    Between the move and DOWN, {len(saved)} request(s) still got 200, each on "
            f"its second attempt (%rc '+1': the first connection was refused, the request "
            f"redispatched). The new port refuses everything, so those most likely went "
            f"over a server connection HAProxy had opened before the move and kept idle: "
            f"a new address only applies to new connections.")
    if failed:
        worst = max(int(x.get("Ta") or 0) for x in failed)
        say(f"    {len(failed)} request(s) in that window got 503 after HAProxy's retries "
            f"(up to {worst} ms: it waits about a second before retrying a refused "
            f"connection).")
    if nosrv:
        say("    Once all were DOWN, HAProxy no longer tried: '<NOSRV>' in its log (no "
            "server chosen), termination 'SC' (the server side failed at connection "
            "time), and its own 503 page at once. Nothing behind it saw these requests: "
            "no app nginx, no Django.")
    say("    The edge passed the 503 on (no stale copy of a unique URL to serve instead). "
        "A 503 from the LB with <NOSRV> says 'no healthy backend', not 'the app failed': "
        "look at where the LB sends traffic (addresses, ports, health checks) before "
        "looking at the app.")


def heal_lb_mistarget(lab: Lab, say: Say) -> dict[str, Any]:
    facts = in_force(lab).get("lb-mistarget")
    lb = lab.haproxy()
    targets = {lab.topo.spec(b).host: lab.topo.endpoint(b) for b in lb.backends}
    say("heal lb-mistarget: every backend back on its address and port (runtime API)")
    t0 = time.monotonic()
    for node, (address, port) in sorted(targets.items()):
        lb.admin(lab.ctx, f"set server app/{node} addr {address} port {port}")
        say(f"    {node}: {address}:{port}")
    up = wait_for(lambda: set(lb.servers(lab.ctx).values()) == {"UP"}, timeout=15)
    if up is None:
        raise DrillError(f"HAProxy does not see every node UP 15 s after the fix: "
                         f"{servers_line(lb.servers(lab.ctx))}")
    say(f"  every node UP {time.monotonic() - t0:.2f} s later (rise 2: two passing checks)")
    run_id = secrets.token_hex(4)
    address, port = lab.front
    result = load.run(address, port, lambda n: f"/p/about/?drill={run_id}-{n}", requests=20,
                      concurrency=2, rate=MISTARGET_RATE, cafile=lab.cafile, host=SITE,
                      seconds=10)
    say(f"  20 requests after: {counts([s.status for s in result.samples])}")
    _record(lab, "lb-mistarget", None)
    return {"was_broken": facts is not None, "up_after": up, "summary": result.summary(),
            "servers": lb.servers(lab.ctx)}


# ---------------------------------------------------------------------------------------------
# nginx-saturation: too few worker_connections, and the latency curve as concurrency rises


SATURATED_CONNECTIONS = 16
STEPS = (1, 2, 4, 8, 16, 32)
STEP_SECONDS = 8.0


def client_sources(lab: Lab, n: int) -> tuple[str, ...]:
    """One loopback address per concurrent client (127.S.250.k, outside every lab host),
    so the app nginx's per-client rate limit sees C clients, as experiments do."""
    return tuple(f"127.{lab.ctx.subnet}.250.{k + 1}" for k in range(n))


def unique_paths(run_id: str) -> Callable[[int], str]:
    return lambda n: f"/p/about/?drill={run_id}-{n}"


def curve(lab: Lab, tier: str, steps: tuple[int, ...], label: str) -> list[dict[str, Any]]:
    """One bounded load run per concurrency step, straight to ``tier`` (plain HTTP), each
    request a URL of its own so the micro-cache never answers: Django behind it works."""
    address, port = lab.endpoint(tier)
    out = []
    for c in steps:
        result = load.run(address, port, unique_paths(secrets.token_hex(3)),
                          requests=max(24, 6 * c), concurrency=c, seconds=STEP_SECONDS,
                          tls=False, host=SITE, sources=client_sources(lab, c))
        s = result.summary()
        out.append({"label": label, "concurrency": c, "requests": s["requests"],
                    "failed": s["failed"], "statuses": s["statuses"], "p50_ms": s["p50_ms"],
                    "p95_ms": s["p95_ms"], "rps": s["rps"],
                    "errors": dict(Counter(x.error.split(":")[0] for x in result.failed
                                           if x.error))})
    return out


def _table(say: Say, rows: list[dict[str, Any]]) -> None:
    say(f"    {'setting':<24} {'conc.':>5} {'req':>4} {'req/s':>6} {'p50':>8} {'p95':>8}  "
        f"failed")
    for r in rows:
        bad = {int(k): int(v) for k, v in r["statuses"].items() if int(k) > 0 and
               not 200 <= int(k) < 400}
        why = ", ".join([f"{k} × {v}" for k, v in sorted(bad.items())] +
                        [f"{k} × {v}" for k, v in sorted(r["errors"].items())])
        say(f"    {r['label']:<24} {r['concurrency']:>5} {r['requests']:>4} "
            f"{r['rps'] or 0:>6.0f} {ms(r['p50_ms']):>8} {ms(r['p95_ms']):>8}  "
            f"{r['failed']:>3}{'  ' + why if why else ''}")


def break_nginx_saturation(lab: Lab, say: Say, *, steps: tuple[int, ...] = STEPS,
                           connections: int = SATURATED_CONNECTIONS) -> dict[str, Any]:
    node = lab.app_nodes()[0]
    refuse_if_busy(lab, node, "nginx-saturation")
    all_up(lab)
    tier = nginx_of(lab, node)
    say(f"drill nginx-saturation: {tier} keeps worker_processes 1 and gets worker_connections "
        f"{connections} (from 1024), reloaded (SIGHUP); the latency curve as concurrency "
        f"rises, before and after")
    say(f"  load: straight to {tier} ({':'.join(map(str, lab.endpoint(tier)))}, plain "
        f"HTTP), each concurrent client on its own address, steps {list(steps)}, "
        f"max(24, 6 × C) requests per step, each URL its own (Django answers every one)")
    before = curve(lab, tier, steps, "worker_connections 1024")
    conf = (lab.ctx.dir(tier) / "nginx.conf").read_text()
    edited = re.sub(r"worker_connections\s+\d+;", f"worker_connections {connections};", conf)
    log = lab.ctx.log(tier)
    offset = log_size(log)
    took = reload_nginx(lab, tier, edited)
    _record(lab, "nginx-saturation", {"tier": tier, "connections": connections})
    say(f"  reloaded: only new workers {took * 1000:.0f} ms after SIGHUP")
    t0 = time.monotonic()
    watch = Watch(lab, t0)
    watch.start()
    after = curve(lab, tier, steps, f"worker_connections {connections}")
    watch.stop()
    errors = [x for x in lines_since(log, offset) if "worker_connections are not enough" in x]
    say("  the curve (latency of the successful requests, measured by the client: "
        "request sent → last byte):")
    _table(say, before + after)
    first_fail = next((r["concurrency"] for r in after if r["failed"]), None)
    say(f"  {tier}'s error log: {len(errors)} × \"worker_connections are not enough\"" +
        (f", e.g. {errors[-1].split('] ', 1)[-1][:160]}" if errors else ""))
    downs = [(t, s) for t, s in watch.changes if s.get(node) not in (None, "UP")]
    if downs:
        say(f"  HAProxy's checks (through the same nginx) failed too: {node} "
            f"{downs[0][1].get(node)} {downs[0][0]:.1f} s into the saturated run")
    svg_path = _plot(lab, tier, connections, before, after)
    _say_saturation_means(say, connections, first_fail, len(errors))
    say(f"  plot: {svg_path}\n  undo: whathappens lab heal nginx-saturation")
    return {"tier": tier, "before": before, "after": after, "first_failing_step": first_fail,
            "not_enough": len(errors), "svg": str(svg_path),
            "haproxy_saw": [(t, s) for t, s in watch.changes]}


def _plot(lab: Lab, tier: str, connections: int, before: list[dict[str, Any]],
          after: list[dict[str, Any]]) -> Path:
    series = []
    for rows, color in ((before, plot.PALETTE[0]), (after, plot.PALETTE[5])):
        for key, dash in (("p50_ms", "p50"), ("p95_ms", "p95")):
            series.append(plot.Series(f"{rows[0]['label']}: {dash}", [],
                                      [(float(r["concurrency"]), float(r[key]))
                                       for r in rows if r[key] is not None],
                                      color=color if dash == "p95" else color + "99"))
    failed = [plot.Series(rows[0]["label"], [100.0 * r["failed"] / max(r["requests"], 1)
                                             for r in rows], color=color)
              for rows, color in ((before, plot.PALETTE[0]), (after, plot.PALETTE[5]))]
    svg = plot.figure(
        f"nginx worker saturation on {tier}",
        f"worker_processes 1; worker_connections 1024 vs {connections}. Bounded load "
        f"straight to the app node's nginx, one client address per concurrent client, "
        f"unique URLs (every request reaches Django). Latency measured by the client "
        f"(monotonic clock, request sent → last byte), successful requests only.",
        [plot.LinePanel("Latency as concurrency rises", "concurrent clients (log scale)",
                        "latency (ms)", series, log_x=True, step=False),
         plot.BarPanel("Failed requests", "failed (% of the step)",
                       [str(r["concurrency"]) for r in before], failed, fmt="{:.0f}",
                       y_max=100)])
    out = lab.ctx.state / "drills"
    data = {"tier": tier, "connections": connections, "before": before, "after": after}
    out.mkdir(parents=True, exist_ok=True)
    (out / "nginx-saturation.json").write_text(json.dumps(data, indent=2))
    return plot.write(out / "nginx-saturation.svg", svg)


def _say_saturation_means(say: Say, connections: int, first_fail: int | None,
                          errors: int) -> None:
    say("  what it means:")
    say(f"    One nginx worker can hold {connections} connections in all — the listening "
        f"socket, each client connection (kept alive between requests) and each "
        f"connection to gunicorn count. A proxied request needs two.")
    if first_fail is not None:
        say(f"    From {first_fail} concurrent clients on (1 listening socket + C clients + "
            f"C upstream connections > {connections}), the slots ran out: nginx closes "
            f"idle kept-alive connections to make room (a client reusing one sees it "
            f"closed without an answer: RemoteDisconnected), and accepts then drops new "
            f"ones (ConnectionResetError); each time it logs 'worker_connections are not "
            f"enough' ({errors} here). Nothing waits politely in a queue: the requests "
            f"over the limit fail fast, which is why the successful ones do not slow "
            f"down.")
    else:
        say("    No step failed: the slots were enough for this load.")
    say("    With 1024 the latency rises with concurrency because the requests queue for "
        "gunicorn's 8 threads and the 2 cores; with the small limit that queueing turns "
        "into failures instead. worker_connections × worker_processes "
        "is a hard ceiling on what one node takes; size it for peak connections (keep-alive "
        "included), not for requests per second.")


def heal_nginx_saturation(lab: Lab, say: Say) -> dict[str, Any]:
    facts = in_force(lab).get("nginx-saturation", {})
    tier = str(facts.get("tier") or nginx_of(lab, lab.app_nodes()[0]))
    say(f"heal nginx-saturation: {tier} back on the lab's configuration (worker_connections "
        f"1024), reloaded")
    changed = restore_nginx(lab, tier)
    say(f"  {'reloaded' if changed else 'its configuration was already the lab one'}")
    all_up(lab, timeout=15)
    rows = curve(lab, tier, (8,), "healed")
    say(f"  8 concurrent clients after: {rows[0]['requests']} requests, "
        f"{rows[0]['failed']} failed, p95 {ms(rows[0]['p95_ms'])}")
    _record(lab, "nginx-saturation", None)
    return {"reloaded": changed, "check": rows[0]}
