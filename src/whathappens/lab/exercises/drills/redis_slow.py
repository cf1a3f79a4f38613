"""redis-slow: one client runs a slow command again and again (a Lua busy loop of 800 ms,
every 1.6 s); Redis runs commands one at a time, so every other client waits behind it.

The slow client is a small process started and recorded like a tier (so ``lab down`` stops
it too): ``python -m whathappens.lab.exercises.drills redis-slow ADDRESS PORT SECONDS``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from whathappens.lab import process
from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Reply,
    Say,
    _nonce,
    _record,
    ms,
    pct,
)
from whathappens.lab.exercises.drills.measure import redis_client
from whathappens.lab.running import Lab
from whathappens.lab.tier import LabContext, Tier

HOLDER = "drill-redis-slow"     # the slow client, a recorded "tier"; also its CLIENT SETNAME
BLOCK_MS = 800                  # each slow command: longer than the site's 0.5 s socket_timeout
PERIOD = 1.6                    # s: one slow command every period (half the time blocked)
HOLD_MAX = 600.0                # it stops by itself after 10 minutes at the latest
PROBE_SECONDS = 4.0

# A busy loop on Redis's own clock (TIME): Redis runs a script to its end before any other
# client's command (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
BUSY = """local t = redis.call('TIME')
local start = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1]) * 1000
while true do
  t = redis.call('TIME')
  if tonumber(t[1]) * 1000000 + tonumber(t[2]) - start >= limit then break end
end
return 1"""


class SlowClient(Tier):
    role = "drill: a Redis client running a slow command over and over"

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.name = HOLDER
        self.host = lab.topo.spec("redis").host
        self.address, self.redis_port = lab.endpoint("redis")
        self.port = None
        self.since = time.time()

    def prepare(self, ctx: LabContext) -> None:
        pass

    def command(self, ctx: LabContext) -> list[str]:
        return [sys.executable, "-m", "whathappens.lab.exercises.drills", "redis-slow",
                self.address, str(self.redis_port), str(HOLD_MAX)]

    def ready(self, ctx: LabContext) -> bool:
        """Its first slow command is in Redis's slow log."""
        return bool(culprits(self.lab, self.since, 1))


def run_slow_client(address: str, port: int, seconds: float) -> int:
    import redis

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    r = redis.Redis(address, port, socket_timeout=BLOCK_MS / 1000 + 5, client_name=HOLDER)
    deadline = time.monotonic() + seconds
    print(f"EVAL busy loop of {BLOCK_MS} ms every {PERIOD} s for at most {seconds:g} s",
          flush=True)
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        r.eval(BUSY, 0, BLOCK_MS)
        time.sleep(max(0.0, PERIOD - (time.monotonic() - t0)))
    return 0


def culprits(lab: Lab, since: float, n: int = 3) -> list[dict[str, Any]]:
    """The slowest commands in Redis's slow log since ``since`` (Unix time)."""
    entries = redis_client(lab).slowlog_get(1024)
    recent = [e for e in entries if int(e.get("start_time", 0)) >= int(since)]
    recent.sort(key=lambda e: -int(e.get("duration", 0)))
    return [{"command": _text(e.get("command", b""))[:90],
             "duration_ms": int(e.get("duration", 0)) / 1000,
             "client": _text(e.get("client_name", b"")),
             "address": _text(e.get("client_address", b""))}
            for e in recent[:n] if int(e.get("duration", 0)) > 100_000]


def _text(value: Any) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# What the other clients see


def probe(lab: Lab, seconds: float = PROBE_SECONDS) -> dict[str, Any]:
    """For ``seconds``: a PING every 10 ms from a client of its own (PING's own round-trip
    times), and product pages one after another through the edge (each reads its product
    from Redis)."""
    pings: list[float] = []
    stop = threading.Event()

    def ping_loop() -> None:
        r = redis_client(lab, timeout=5.0)
        while not stop.is_set():
            t0 = time.monotonic()
            r.ping()
            pings.append((time.monotonic() - t0) * 1000)
            stop.wait(0.01)

    thread = threading.Thread(target=ping_loop, daemon=True)
    thread.start()
    browser = Browser(lab)
    pages: list[Reply] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        pages.append(browser.get(f"/product/{1 + len(pages) % 10}/?{_nonce()}"))
    stop.set()
    thread.join(10)
    return {"ping": _lat(pings),
            "pages": _lat([p.ms for p in pages if p.status]),
            "statuses": dict(Counter(p.status for p in pages)),
            "x_cache_product": dict(Counter(p.header("x-cache-product") or "-"
                                            for p in pages)),
            "cache_ms": _lat([v for v in (p.timing().get("cache") for p in pages)
                              if v is not None])}


def _lat(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "p99": pct(values, 99), "max": max(values) if values else None,
            "over_100ms": sum(v > 100 for v in values)}


def _say_probe(say: Say, label: str, p: dict[str, Any]) -> None:
    g, w, c = p["ping"], p["pages"], p["cache_ms"]
    say(f"    {label}:")
    say(f"      PING (its own client, every 10 ms): {g['n']} pings, p50 {ms(g['p50'])}, p95 "
        f"{ms(g['p95'])}, max {ms(g['max'])}; {g['over_100ms']} over 100 ms")
    say(f"      product pages through the edge: {w['n']} pages {p['statuses']}, p50 "
        f"{ms(w['p50'])}, p95 {ms(w['p95'])}, max {ms(w['max'])}; X-Cache-Product "
        f"{p['x_cache_product']}; Django's Redis time (Server-Timing cache) p95 "
        f"{ms(c['p95'])}, max {ms(c['max'])}")


def break_redis_slow(lab: Lab, say: Say) -> dict[str, Any]:
    if lab.running(HOLDER):
        raise DrillError("redis-slow is already in force (whathappens lab heal redis-slow)")
    if not lab.running("redis"):
        raise DrillError("redis is not running")
    say(f"drill redis-slow: a client runs a slow command (EVAL of a Lua busy loop, "
        f"{BLOCK_MS} ms) every {PERIOD:g} s; Redis runs one command at a time")
    Browser(lab).get("/product/1/")                 # the cache warm before measuring
    before = probe(lab)
    say("  before:")
    _say_probe(say, f"{PROBE_SECONDS:g} s", before)
    holder = SlowClient(lab)
    process.start(holder, lab.ctx, timeout=15)
    _record(lab, "redis-slow", {"holder": HOLDER, "since": holder.since})
    during = probe(lab)
    say("  during:")
    _say_probe(say, f"{PROBE_SECONDS:g} s", during)
    found = culprits(lab, holder.since)
    say("  Redis's SLOWLOG (slowest since the drill began) names the culprit:")
    for c in found:
        say(f"    {c['duration_ms']:7.1f} ms  client {c['client'] or '?'} "
            f"({c['address']})  {c['command']}")
    _say_meaning(say, during)
    say("  undo: whathappens lab heal redis-slow")
    return {"before": before, "during": during, "culprits": found}


def _say_meaning(say: Say, during: dict[str, Any]) -> None:
    say("  what it means:")
    say(f"    Redis executes commands on one thread, one after another: while the script "
        f"ran, every other client's command — a PING, the site's GET of a product — "
        f"waited behind it. The PING client saw up to {ms(during['ping']['max'])}; it "
        f"runs nothing slow itself.")
    if during["x_cache_product"].get("bypass"):
        say("    The site's Redis client gives up after 0.5 s (socket_timeout): a page "
            "caught early in a block fell back to the database (X-Cache-Product: bypass) "
            "and still waited half a second; one caught late waited out the rest of the "
            "block and was a slow hit.")
    say("    SLOWLOG names the command and the client that ran it; the victims show up "
        "only as latency. The cure: no O(N) commands (KEYS, big SORT, long scripts) on a "
        "shared Redis — SCAN in steps, or a separate instance for such work.")


def heal_redis_slow(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal redis-slow: stop the slow client")
    was = process.stop(lab.ctx, HOLDER)
    say(f"  {'stopped' if was else 'was not running'}")
    after = probe(lab)
    say("  after:")
    _say_probe(say, f"{PROBE_SECONDS:g} s", after)
    _record(lab, "redis-slow", None)
    return {"after": after, "stopped": was}

