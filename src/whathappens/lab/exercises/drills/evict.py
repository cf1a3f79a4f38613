"""redis-evict: Redis capped below its working set (maxmemory + an LRU policy); a cache-aside
workload over more keys than fit: evictions, and the hit ratio falls — in Redis's own
counters and in the site's X-Cache-Product."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Say,
    _nonce,
    _record,
    in_force,
)
from whathappens.lab.exercises.drills.measure import redis_client
from whathappens.lab.running import Lab

KEYS = 2000                 # the drill's own cache entries …
VALUE = 4096                # … of 4 KiB each: about 8 MiB of values
FIT = 0.25                  # maxmemory leaves room for about this share of them
OPS = 2000                  # cache-aside reads per phase, uniformly over the keys
PRODUCT_EVERY = 40          # one product page through the site every this many reads
PREFIX = "drill:evict:"
TTL = 600                   # s: every drill key expires, so volatile-lru may evict it
POLICY = "volatile-lru"
BROKER_KEY = "_kombu.binding.celery"    # Celery's queue binding, in the broker's db 1


def _stats(r: Any) -> dict[str, int]:
    info = r.info("stats")
    return {k: int(info.get(k, 0)) for k in ("keyspace_hits", "keyspace_misses",
                                             "evicted_keys")}


def _ratio(hits: int, misses: int) -> float | None:
    return hits / (hits + misses) if hits + misses else None


def pct_text(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def workload(lab: Lab, r: Any, seed: int) -> dict[str, Any]:
    """OPS cache-aside reads (GET; on a miss, SET with a TTL) over KEYS keys, and a product
    page through the site every PRODUCT_EVERY reads; Redis's counters around it."""
    rng = random.Random(seed)
    value = b"x" * VALUE
    browser = Browser(lab)
    start = _stats(r)
    hits = 0
    products: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for i in range(OPS):
        key = f"{PREFIX}{rng.randrange(KEYS)}"
        if r.get(key) is not None:
            hits += 1
        else:
            r.set(key, value, ex=TTL)
        if i % PRODUCT_EVERY == 0:
            reply = browser.get(f"/product/{1 + (i // PRODUCT_EVERY) % 10}/?{_nonce()}")
            statuses[reply.status] += 1
            products[reply.header("x-cache-product") or "-"] += 1
    end = _stats(r)
    delta = {k: end[k] - start[k] for k in end}
    memory = r.info("memory")
    return {"drill_hit_ratio": hits / OPS, "products": dict(products),
            "product_statuses": dict(statuses),
            "product_hit_ratio": _ratio(products["hit"], products["miss"]),
            "redis_hit_ratio": _ratio(delta["keyspace_hits"], delta["keyspace_misses"]),
            "evicted": delta["evicted_keys"], **delta,
            "used_memory": int(memory["used_memory"]),
            "maxmemory": int(memory.get("maxmemory", 0))}


def _say_phase(say: Say, label: str, w: dict[str, Any]) -> None:
    say(f"    {label}: the drill's {OPS} reads {pct_text(w['drill_hit_ratio'])} hits; Redis "
        f"INFO stats over the phase: keyspace_hits {w['keyspace_hits']}, keyspace_misses "
        f"{w['keyspace_misses']} ({pct_text(w['redis_hit_ratio'])} hits), evicted_keys "
        f"+{w['evicted']}; used_memory {w['used_memory'] / 2**20:.1f} MiB")
    say(f"      product pages through the site: X-Cache-Product {w['products']} "
        f"({pct_text(w['product_hit_ratio'])} hits), statuses {w['product_statuses']}")


def _fill(r: Any) -> None:
    value = b"x" * VALUE
    pipe = r.pipeline(transaction=False)
    for i in range(KEYS):
        pipe.set(f"{PREFIX}{i}", value, ex=TTL)
    pipe.execute()


def _broker_alive(lab: Lab) -> bool:
    import redis

    address, port = lab.endpoint("redis")
    return bool(redis.Redis(address, port, db=1, socket_timeout=5).exists(BROKER_KEY))


def break_evict(lab: Lab, say: Say) -> dict[str, Any]:
    r = redis_client(lab)
    config = r.config_get("maxmemory*")
    if int(config.get("maxmemory", 0)):
        raise DrillError("Redis already has a maxmemory (whathappens lab heal redis-evict)")
    say(f"drill redis-evict: Redis given a maxmemory below the working set, with the "
        f"{POLICY} eviction policy; a cache-aside workload over {KEYS} keys of "
        f"{VALUE // 1024} KiB (and the site's product pages)")
    base = int(r.info("memory")["used_memory"])
    _fill(r)
    browser = Browser(lab)
    for n in range(1, 11):
        browser.get(f"/product/{n}/?{_nonce()}")        # the site's product cache, warm
    _record(lab, "redis-evict", {"maxmemory": config.get("maxmemory", "0"),
                                 "policy": config.get("maxmemory-policy", "noeviction")})
    say("  before (no maxmemory; every key filled once):")
    before = workload(lab, r, seed=1)
    _say_phase(say, "workload", before)
    cap = base + int(KEYS * VALUE * FIT)
    r.config_set("maxmemory-policy", POLICY)
    r.config_set("maxmemory", str(cap))
    say(f"  CONFIG SET maxmemory {cap} ({cap / 2**20:.1f} MiB: what Redis used before the "
        f"drill's keys, {base / 2**20:.1f} MiB, plus room for about {FIT:.0%} of them), "
        f"maxmemory-policy {POLICY}")
    during = workload(lab, r, seed=2)
    say("  during:")
    _say_phase(say, "workload", during)
    broker = _broker_alive(lab)
    say(f"  Celery's queue binding ({BROKER_KEY}, no TTL) still there: "
        f"{'yes' if broker else 'NO'}")
    _say_meaning(say, before, during)
    say("  undo: whathappens lab heal redis-evict")
    return {"before": before, "during": during, "cap": cap, "broker_binding": broker}


def _say_meaning(say: Say, before: dict[str, Any], during: dict[str, Any]) -> None:
    say("  what it means:")
    say(f"    With room for about a quarter of the keys, a uniform workload can hit at best "
        f"about a quarter of the time (arithmetic): measured "
        f"{pct_text(during['drill_hit_ratio'])}, against "
        f"{pct_text(before['drill_hit_ratio'])} before. Every write over the cap made "
        f"Redis evict (evicted_keys +{during['evicted']}), and each eviction is a later "
        f"miss: a read from the database instead.")
    say("    The site's product entries lived in the same memory and were evicted with the "
        "rest: X-Cache-Product turned to 'miss', and each miss is a query on the replica. "
        "Nothing failed; the site got slower and the database busier.")
    say(f"    {POLICY} evicts only keys with a TTL: this Redis is also Celery's broker, whose "
        f"queues and bindings have none. allkeys-lru could evict those too (losing "
        f"tasks); noeviction (the default) would refuse writes with OOM errors instead.")


def heal_evict(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal redis-evict: maxmemory and the policy back as they were; the drill's keys "
        "deleted")
    facts = in_force(lab).get("redis-evict", {})
    r = redis_client(lab)
    r.config_set("maxmemory", str(facts.get("maxmemory", "0")))
    r.config_set("maxmemory-policy", str(facts.get("policy", "noeviction")))
    deleted = 0
    for batch in _batches(r.scan_iter(match=f"{PREFIX}*", count=1000), 500):
        deleted += int(r.unlink(*batch))
    browser = Browser(lab)
    replies = [browser.get(f"/product/{1 + i % 10}/?{_nonce()}") for i in range(20)]
    seen = Counter(x.header("x-cache-product") or "-" for x in replies)
    config = r.config_get("maxmemory*")
    say(f"  maxmemory {config.get('maxmemory')}, policy {config.get('maxmemory-policy')}; "
        f"{deleted} drill keys deleted")
    say(f"  20 product pages (each product twice): X-Cache-Product {dict(seen)} (a first "
        f"miss fills a key again, the second read hits)")
    _record(lab, "redis-evict", None)
    return {"deleted": deleted, "products": dict(seen), "config": config}


def _batches(items: Any, size: int) -> Any:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
