"""replica-lag: WAL replay paused on the replica; a write on the primary is not seen by the
reads the site routes to the replica (stale reads) until replay resumes."""

from __future__ import annotations

import time
from typing import Any

from whathappens.lab.exercises.drills.common import (
    Browser,
    DrillError,
    Reply,
    Say,
    _nonce,
    _pg,
    _record,
    answered_by,
    in_force,
    ms,
    wait_for,
)
from whathappens.lab.exercises.drills.measure import primary_lsn, replayed, wait_replayed
from whathappens.lab.running import Lab

SLUG = "about"


def lag(lab: Lab) -> dict[str, Any]:
    """The replica's lag, three ways: the age of the last transaction it replayed (its
    commit time on the primary's clock; it grows while the primary is idle too), the WAL
    it received but has not replayed, and the WAL the primary wrote that it has not
    replayed (bytes); with the primary's own view (pg_stat_replication.replay_lag)."""
    with _pg(lab, "db-replica") as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp()), "
            "pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, "
            "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), "
            "pg_get_wal_replay_pause_state()").fetchone()
    assert row is not None
    with _pg(lab, "db-primary") as conn:
        prow = conn.execute(
            "SELECT pg_current_wal_lsn()::text, pg_wal_lsn_diff(pg_current_wal_lsn(), %s), "
            "(SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication LIMIT 1)",
            (row[2],)).fetchone()
    assert prow is not None
    return {"replay_age_s": float(row[0]) if row[0] is not None else None,
            "receive_lsn": row[1], "replay_lsn": row[2],
            "unreplayed_bytes": int(row[3] or 0), "pause": str(row[4]),
            "primary_lsn": prow[0], "behind_primary_bytes": int(prow[1] or 0),
            "replay_lag_s": float(prow[2]) if prow[2] is not None else None}


def lag_line(v: dict[str, Any]) -> str:
    age = v["replay_age_s"]
    rl = v["replay_lag_s"]
    return (f"replay {v['pause']}; last replayed commit {'-' if age is None else f'{age:.2f} s'}"
            f" old (now() - pg_last_xact_replay_timestamp()); replayed up to "
            f"{v['replay_lsn']}, received {v['receive_lsn']} "
            f"({v['unreplayed_bytes']:,} bytes received, not replayed); the primary is at "
            f"{v['primary_lsn']}, {v['behind_primary_bytes']:,} bytes ahead; its "
            f"pg_stat_replication.replay_lag {'-' if rl is None else f'{rl:.3f} s'}")


def _title(lab: Lab, tier: str) -> str:
    with _pg(lab, tier) as conn:
        row = conn.execute("SELECT title FROM pages WHERE slug = %s", (SLUG,)).fetchone()
    if row is None:
        raise DrillError(f"no page {SLUG!r} in the site's database")
    return str(row[0])


def _has_message(lab: Lab, tier: str, message_id: int) -> bool:
    with _pg(lab, tier) as conn:
        row = conn.execute("SELECT count(*) FROM contact_messages WHERE id = %s",
                           (message_id,)).fetchone()
    return bool(row and row[0])


def _read(lab: Lab) -> Reply:
    return Browser(lab).get(f"/p/{SLUG}/?{_nonce()}")


def _shows(reply: Reply, title: str) -> bool:
    return f"<h1>{title}</h1>" in reply.body


def _pause(lab: Lab, on: bool) -> None:
    with _pg(lab, "db-replica", "postgres") as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if on else "SELECT pg_wal_replay_resume()")


def _pause_state(lab: Lab) -> str:
    with _pg(lab, "db-replica", "postgres") as conn:
        row = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
    return str(row[0]) if row else "?"


def break_replica(lab: Lab, say: Say) -> dict[str, Any]:
    if _pause_state(lab) != "not paused":
        raise DrillError("the replica's replay is already paused (whathappens lab heal "
                         "replica-lag)")
    say("drill replica-lag: WAL replay paused on the replica (SELECT pg_wal_replay_pause()): "
        "it still receives the primary's WAL but applies none of it")
    old = _title(lab, "db-primary")
    before = lag(lab)
    say(f"  before: {lag_line(before)}")
    _pause(lab, True)
    paused = wait_for(lambda: _pause_state(lab) == "paused", timeout=5)
    _record(lab, "replica-lag", {"title": old})
    say(f"  paused after {'-' if paused is None else f'{paused * 1000:.0f} ms'}")
    written = time.monotonic()
    write = Browser(lab).post_contact("replica-lag drill")
    message_id = write.json().get("message_id")
    say(f"  a write through the site: POST /contact/ → {write.status} from "
        f"{answered_by(write)}, row {message_id} INSERTed on the primary")
    new = f"{old} (edited {time.strftime('%H:%M:%S', time.gmtime())} UTC)"
    with _pg(lab, "db-primary") as conn:
        conn.execute("UPDATE pages SET title = %s WHERE slug = %s", (new, SLUG))
    primary_lsn(lab)            # flushed, so it is streamed to the replica
    say(f"  an edit on the primary (as a CMS would): UPDATE pages SET title = {new!r} "
        f"WHERE slug = {SLUG!r}")
    reads = [_read(lab) for _ in range(3)]
    stale = sum(_shows(r, old) for r in reads)
    say(f"  reads through the site (GET /p/{SLUG}/, routed to the replica): "
        f"{', '.join(f'{r.status} in {ms(r.ms)} from {answered_by(r)}' for r in reads[:1])}"
        f"; {stale} of {len(reads)} show the OLD title, {sum(_shows(r, new) for r in reads)}"
        f" the new one")
    on_primary = _has_message(lab, "db-primary", int(message_id)) if message_id else False
    on_replica = _has_message(lab, "db-replica", int(message_id)) if message_id else False
    say(f"  row {message_id}: on the primary {'yes' if on_primary else 'no'}, on the replica "
        f"{'yes' if on_replica else 'no'}")
    time.sleep(1.0)
    now = lag(lab)
    unseen = time.monotonic() - written
    say(f"  one second later: {lag_line(now)}")
    say(f"  the write is {unseen:.2f} s old (the drill's clock) and "
        f"{'already' if _has_message(lab, 'db-replica', int(message_id or 0)) else 'still not'}"
        f" on the replica")
    _record(lab, "replica-lag", {"title": old, "new_title": new, "message_id": message_id})
    _say_meaning(say, before)
    say("  undo: whathappens lab heal replica-lag")
    return {"before": before, "unseen_s": unseen, "write": write, "reads": reads,
            "stale_reads": stale, "old": old, "new": new,
            "on_primary": on_primary, "on_replica": on_replica, "lag": now}


def _say_meaning(say: Say, before: dict[str, Any]) -> None:
    say("  what it means:")
    say("    The site sends every read to the replica and every write to the primary. While "
        "the replica lags, a visitor who has just written reads the world from before the "
        "write: the contact form said 202, the edited page still shows the old title.")
    age = before["replay_age_s"]
    say("    Lag in bytes is exact: WAL received (or written on the primary) and not yet "
        "replayed. Lag in time is only approximate: now() - pg_last_xact_replay_timestamp() "
        "is the age of the last commit replayed, which grows while the primary is idle too "
        f"(before the pause it read {'-' if age is None else f'{age:.2f} s'} with "
        f"{before['behind_primary_bytes']:,} bytes behind), and the primary's "
        "pg_stat_replication.replay_lag is measured for WAL the replica has replayed, so it "
        "does not count what waits behind the pause. Streaming did not stop: the WAL "
        "arrives, it is only not applied.")
    say("    The cures: read-your-writes (send a session's reads to the primary for a while "
        "after it writes), or refuse a replica whose lag passes a bound.")


def heal_replica(lab: Lab, say: Say) -> dict[str, Any]:
    say("heal replica-lag: resume WAL replay on the replica (SELECT pg_wal_replay_resume())")
    facts = in_force(lab).get("replica-lag", {})
    target = primary_lsn(lab)
    _pause(lab, False)
    caught = wait_for(lambda: replayed(lab, target), timeout=30, interval=0.01)
    say(f"  the replica replayed up to the primary's {target} "
        f"{'(not within 30 s)' if caught is None else f'{caught * 1000:.0f} ms'} after "
        f"resuming")
    after = lag(lab)
    say(f"  now: {lag_line(after)}")
    new, old = facts.get("new_title"), facts.get("title")
    reads = [_read(lab) for _ in range(3)]
    fresh = sum(_shows(r, str(new)) for r in reads) if new else 0
    say(f"  reads through the site: {fresh} of {len(reads)} show the new title (fresh)")
    message_id = facts.get("message_id")
    on_replica = _has_message(lab, "db-replica", int(message_id)) if message_id else None
    if message_id:
        say(f"  row {message_id} on the replica: {'yes' if on_replica else 'no'}")
    if old:
        with _pg(lab, "db-primary") as conn:
            conn.execute("UPDATE pages SET title = %s WHERE slug = %s", (old, SLUG))
        wait_replayed(lab)
        say(f"  the page's title put back to {old!r}")
    _record(lab, "replica-lag", None)
    return {"caught_up": caught, "lag": after, "fresh_reads": fresh, "reads": reads,
            "on_replica": on_replica}
