"""redis: Redis stops; the site serves from the database, sessions and the task queue are
gone."""

from __future__ import annotations

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
    _unsent,
    _wait_sent,
    answered_by,
    counts,
    in_force,
    latency,
    ms,
    pct,
    start_tiers,
)
from whathappens.lab.running import Lab

# ---------------------------------------------------------------------------------------------
# redis: the site serves from the database; sessions and the task queue are gone


def _product_probe(browser: Browser, n: int) -> list[Reply]:
    return [browser.get(f"/product/{1 + i % 3}/?{_nonce()}") for i in range(n)]


def _prefilled(reply: Reply, name: str) -> bool:
    return f'value="{name}"' in reply.body


def break_redis(lab: Lab, say: Say) -> dict[str, Any]:
    if not lab.running("redis"):
        raise DrillError("redis is not running (whathappens lab heal redis)")
    say("drill redis: Redis stops (the cache, the session store and Celery's broker)")
    visitor = Browser(lab)
    first = visitor.post_contact("Ada")          # a session: the form remembers the name
    remembered = _prefilled(visitor.get(f"/contact/?{_nonce()}"), "Ada")
    warm = _product_probe(Browser(lab), 3)       # fill the product cache
    before = _product_probe(Browser(lab), 10)
    t0 = time.monotonic()
    process.stop(lab.ctx, "redis")
    say(f"  stopped in {time.monotonic() - t0:.2f} s")
    after = _product_probe(Browser(lab), 10)
    form = visitor.get(f"/contact/?{_nonce()}")
    home = Browser(lab).get(f"/?{_nonce()}")
    write = visitor.post_contact("Grace")

    def app_ms(replies: list[Reply]) -> str:
        vals = [r.timing().get("app") for r in replies]
        got = [v for v in vals if v is not None]
        return f"Django p50 {ms(pct(got, 50))}"

    say("  product pages (GET /product/N/, cached in Redis for 30 s):")
    say(f"    with Redis:    {counts([r.status for r in before])}; X-Cache-Product "
        f"{dict(Counter(r.header('x-cache-product') for r in before))}; "
        f"{latency(before)}; {app_ms(before)}")
    say(f"    without Redis: {counts([r.status for r in after])}; X-Cache-Product "
        f"{dict(Counter(r.header('x-cache-product') for r in after))}; "
        f"{latency(after)}; {app_ms(after)}")
    say(f"  the home page: {home.status} ({answered_by(home)})")
    say(f"  the session: before, the contact form remembered the visitor's name: "
        f"{'yes' if remembered else 'no'} (first POST: {first.status}); now: "
        f"{form.status}, remembered: {'yes' if _prefilled(form, 'Ada') else 'no'}")
    say(f"  a contact POST: {write.status} from {answered_by(write)}: "
        f"{write.json().get('error') or write.body[:100]}")
    orphan = write.json().get("message_id")
    say("  what it means:")
    say("    The site still serves: the product view catches the Redis error and reads the "
        "database instead (X-Cache-Product: bypass). Each failed Redis call costs a refused "
        "connection (the client is set to give up at once, no retries), and every page "
        "now costs a database query.")
    say("    Sessions live in Redis: Django's cache session backend reads an unreachable "
        "cache as an empty session, so every visitor looks new (logged out, forms "
        "forgotten) while Redis is down.")
    if write.status == 503 and orphan:
        say(f"    The contact message was stored (row {orphan}) but its task could not be "
            f"queued (the broker is Redis): it will not be sent unless something re-queues "
            f"unsent rows. The client got a 503 saying so.")
    say("  undo: whathappens lab heal redis")
    _record(lab, "redis", {"stopped": ["redis"], "orphan": orphan,
                           "session": visitor.cookies.get("sessionid", "")})
    return {"before": before, "after": after, "warm": warm, "home": home, "form": form,
            "remembered_before": remembered, "remembered_after": _prefilled(form, "Ada"),
            "write": write}


def heal_redis(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal redis: start Redis again; check the cache, sessions and the task queue")
    facts = in_force(lab).get("redis", {})
    start_tiers(lab, ["redis"], say)
    browser = Browser(lab)
    replies = [browser.get(f"/product/1/?{_nonce()}") for _ in range(2)]
    say(f"  one product page twice: X-Cache-Product "
        f"{', '.join(r.header('x-cache-product') for r in replies)} (the restarted Redis "
        f"is empty: a miss fills it again)")
    visitor = Browser(lab)
    session = facts.get("session")
    if session:
        visitor.cookies["sessionid"] = str(session)
        form = visitor.get(f"/contact/?{_nonce()}")
        say(f"  the drill's visitor: remembered: {'yes' if _prefilled(form, 'Ada') else 'no'}"
            f" — the lab's Redis keeps nothing on disk, so sessions do not come back: "
            f"everyone was logged out")
    t0 = time.monotonic()
    write = visitor.post_contact("after redis heal")
    sent = None
    if write.status == 202:
        sent = _wait_sent(lab, int(write.json()["message_id"]), timeout=30)
    if sent is not None:
        say(f"  a contact POST: {write.status}; its task ran {sent - t0:.1f} s later (the "
            f"worker is back on the broker)")
    else:
        say(f"  a contact POST: {write.status}; its task did not run within 30 s")
    orphan = facts.get("orphan")
    if orphan:
        say(f"  the message stored while Redis was down (row {orphan}) is still unsent: "
            f"{'yes' if _unsent(lab, int(orphan)) else 'no'}")
    _record(lab, "redis", None)
    return {"products": replies, "write": write, "sent": sent is not None}

