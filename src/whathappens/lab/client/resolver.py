"""The resolver on the timeline: what the lab's Unbound asked upstream for this journey.

The journey's resolver view sends its questions to Unbound and times them; what Unbound did
in between (root → com. → example.com, or nothing: a cache hit) only the servers it asked
can tell. The lab's authoritative servers (``tiers/dns.py``) log every query with who sent
it and two ``time.time_ns()`` stamps: received and answer ready. That is CLOCK_REALTIME on
this machine, the clock the journey's t0 is aligned to, with integer-nanosecond resolution;
a stamp is taken in the server's event-loop callback, so it is late by the loop's latency
(tens of microseconds on an idle machine), never by a log-writing delay. Unbound's own log
was the other candidate and was not taken: Unbound 1.17 (Debian 12) stamps its lines in whole
seconds (``log-time-ascii`` only changes the format; ``log-time-iso`` with milliseconds
arrived in a later release), and at verbosity 1 it logs the client's queries, not its own
upstream ones. No packet capture is involved.

DNS carries no trace context, so the queries are matched to the journey by **name and time
window**: sent from Unbound's address (its ``outgoing-interface``; the journey's own walk view
asks the same servers from another address), received while the journey's resolver view was
waiting (its span's start and end, mapped to wall time through t0), for the journey's name or
one of its ancestors (QNAME minimisation, RFC 9156: the root hears "com.", the TLD
"example.com."). Queries Unbound sent in that window for other names are listed, not hidden.

``--lab-cold`` flushes Unbound's cache first (``unbound-control flush_zone``): the name, or
everything, so the walk from the root is seen; a warm lookup shows no upstream query at all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whathappens.contract.facts import DnsRecursionFacts, DnsUpstreamFacts
from whathappens.journey import Journey, Span
from whathappens.lab.logs import json_lines
from whathappens.lab.process import LabError
from whathappens.lab.running import open_lab
from whathappens.lab.tier import LabContext, which

CLOCK = ("the authoritative servers' log: time.time_ns() (CLOCK_REALTIME, integer ns) when "
         "each query was received and when its answer was ready, on this machine's wall "
         "clock aligned at t0")
SCOPES = ("name", "all")


@dataclass(frozen=True)
class Upstream:
    """One line of the authoritative servers' query log, with its stamps."""

    server: str
    client: str
    qname: str
    qtype: str
    transport: str
    kind: str
    rcode: str | None
    aa: bool
    records: list[str]
    received_ns: int
    sent_ns: int


def parse_line(item: dict[str, Any]) -> Upstream | None:
    """A query-log line as an Upstream, or None for a line without the stamps (an older
    log) or with fields of the wrong shape."""
    try:
        received, sent = int(item["received_ns"]), int(item["sent_ns"])
        return Upstream(server=str(item["server"]), client=str(item.get("client") or ""),
                        qname=str(item["qname"]).lower(), qtype=str(item["qtype"]),
                        transport=str(item.get("transport", "udp")),
                        kind=str(item.get("kind", "")), rcode=item.get("rcode"),
                        aa=bool(item.get("aa")),
                        records=[str(r) for r in item.get("records") or []][:20],
                        received_ns=received, sent_ns=sent)
    except (KeyError, TypeError, ValueError):
        return None


def in_chain(qname: str, name: str) -> bool:
    """Is ``qname`` the name or one of its ancestors (what QNAME minimisation asks)?"""
    q, n = qname.lower().rstrip(".") + ".", name.lower().rstrip(".") + "."
    return q == "." or n == q or n.endswith("." + q)


def select(lines: Iterable[Upstream], resolver: str, name: str, lo_ns: int,
           hi_ns: int) -> tuple[list[Upstream], list[Upstream]]:
    """The resolver's queries received in [lo_ns, hi_ns]: (for this name, for others)."""
    mine: list[Upstream] = []
    others: list[Upstream] = []
    for up in lines:
        if up.client.rsplit(":", 1)[0] != resolver or not lo_ns <= up.received_ns <= hi_ns:
            continue
        (mine if in_chain(up.qname, name) else others).append(up)
    return (sorted(mine, key=lambda u: u.received_ns),
            sorted(others, key=lambda u: u.received_ns))


# ------------------------------------------------------------------- the running lab
@dataclass(frozen=True)
class LabResolver:
    address: str                  # Unbound's address, the source of its upstream queries
    conf: Path                    # its unbound.conf (unbound-control reads it too)
    query_log: Path               # the authoritative servers' JSON lines
    roles: dict[str, str]         # server name → root | tld | authoritative


def lab_resolver(state: Path) -> LabResolver | None:
    ctx = LabContext(state=state)
    manifest = open_lab(ctx).manifest
    auth, unbound = manifest.of_kind("dns-authoritative"), manifest.of_kind("unbound")
    if auth is None or unbound is None:
        return None
    servers = auth.facts.get("servers")
    roles = {str(s["name"]): str(s["role"]) for s in servers
             if isinstance(s, dict)} if isinstance(servers, list) else {}
    return LabResolver(unbound.address, state / "tiers" / unbound.name / "unbound.conf",
                       ctx.log(auth.name).with_suffix(".queries.jsonl"), roles)


def flush(state: Path, host: str, scope: str) -> str:
    """Empty Unbound's cache of ``host`` (scope "name") or of everything (scope "all");
    returns what was flushed. ``flush_zone`` removes every type at and below the name (HTTPS
    records too, which plain ``flush`` leaves), and the message cache with them."""
    found = lab_resolver(state)
    if found is None:
        raise LabError(f"the lab in {state} has no resolver tier: nothing to flush")
    zone = "." if scope == "all" else host.lower().rstrip(".") + "."
    control = which("unbound-control", "/usr/sbin/unbound-control")
    done = subprocess.run([control, "-c", str(found.conf), "flush_zone", zone],
                          capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise LabError(f"unbound-control flush_zone {zone} failed: "
                       f"{(done.stdout + done.stderr).strip()[:300]}")
    return "everything (flush_zone .)" if zone == "." else f"{zone} (flush_zone {zone})"


def merge_resolver(journey: Journey, state: Path, flushed: str | None = None) -> int:
    """Under each resolver view of the journey, Unbound's upstream queries for its name;
    returns how many were placed."""
    found = lab_resolver(state)
    if found is None:
        return 0
    lines = [u for item in json_lines(found.query_log, "received_ns")
             if (u := parse_line(item)) is not None]
    placed = 0
    for view in [s for s in journey.all_spans() if s.name == "dns.resolver"]:
        placed += _place(journey, view, found, lines, flushed)
    return placed


def _place(journey: Journey, view: Span[Any], found: LabResolver, lines: list[Upstream],
           flushed: str | None) -> int:
    query = next((c for c in view.children if c.name == "dns.query"), None)
    if query is None or view.end_ns is None:
        return 0
    name = str(query.facts.qname)
    t0 = journey.clock.wall_origin_ns
    mine, others = select(lines, found.address, name, t0 + view.start_ns, t0 + view.end_ns)
    facts = DnsRecursionFacts(
        resolver=f"{found.address} (Unbound)", name=name, upstream_queries=len(mine),
        from_cache=not mine, servers=[f"{u.server} ({u.qname} {u.qtype})" for u in mine],
        flushed=flushed, other_queries=[f"{u.qname} {u.qtype}" for u in others],
        matched_by=f"name and time window: queries from {found.address} received while this "
                   f"view waited, for {name} or an ancestor (DNS carries no trace context)",
        clock=CLOCK)
    facts.repeat_upstream = _repeat_upstream(view, mine, t0)
    start = mine[0].received_ns - t0 if mine else view.start_ns
    span = journey.span("dns.recursion", "dns", f"recursive resolver {found.address}",
                        "application", facts, parent=view, start_ns=start)
    span.end_ns = max(u.sent_ns for u in mine) - t0 if mine else start
    for up in mine:
        up_facts = DnsUpstreamFacts(
            server=up.server, role=found.roles.get(up.server, ""), client=up.client,
            qname=up.qname, qtype=up.qtype, transport=up.transport, kind=up.kind,
            rcode=up.rcode, authoritative=up.aa, records=up.records,
            server_ms=round((up.sent_ns - up.received_ns) / 1e6, 3))
        child = journey.span("dns.upstream", "dns", up.server, "application", up_facts,
                             parent=span, start_ns=up.received_ns - t0)
        child.end_ns = up.sent_ns - t0
    if mine:
        journey.note("info", "dns", f"the lab's Unbound asked {len(mine)} upstream "
                     f"question(s) for {name}: {', '.join(facts.servers)} (matched by name and "
                     "time window, from the authoritative servers' logs)")
    else:
        journey.note("info", "dns", f"answered from Unbound's cache: no upstream queries for "
                     f"{name} while the resolver view waited")
    return 1 + len(mine)


def _repeat_upstream(view: Span[Any], mine: list[Upstream], t0: int) -> int | None:
    """How many of the upstream queries arrived while the repeated question (asked to see
    the resolver's cache) waited; None when there was no repeat."""
    repeat = next((c for c in view.children if c.name == "dns.query"
                   and "cache" in str(c.facts.purpose) and c.end_ns is not None), None)
    if repeat is None or repeat.end_ns is None:
        return None
    lo, hi = t0 + repeat.start_ns, t0 + repeat.end_ns
    return sum(1 for u in mine if lo <= u.received_ns <= hi)
