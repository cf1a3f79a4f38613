"""The walk planner on its own: hand-made responses in, decisions out (no network)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whathappens.errors import JourneyTimeout
from whathappens.net import budget
from whathappens.net.dns.hints import NameServer, parse_root_hints
from whathappens.net.dns.walk import (
    MAX_CNAME_CHAIN,
    MAX_NESTED,
    MAX_QUERIES,
    HopKind,
    QueryAction,
    Walk,
    WalkLimits,
)

ROOTS = [NameServer("a.root-servers.net.", ["127.0.53.1"])]


def reply(action: QueryAction, *, rcode: int = dns.rcode.NOERROR, aa: bool = False,
          answer: list[str] = (), authority: list[str] = (),  # type: ignore[assignment]
          additional: list[str] = (), tc: bool = False) -> dns.message.Message:  # type: ignore[assignment]
    q = dns.message.make_query(action.qname, action.qtype)
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.Rcode(rcode))
    if aa:
        r.flags |= dns.flags.AA
    if tc:
        r.flags |= dns.flags.TC
    for section, lines in ((r.answer, answer), (r.authority, authority),
                           (r.additional, additional)):
        for line in lines:
            name, ttl, cls, rtype, rdata = line.split(None, 4)
            section.append(dns.rrset.from_text(name, int(ttl), cls, rtype, rdata))
    # Through the wire and back, as the walk gets it: records of one name and type merge.
    return dns.message.from_wire(r.to_wire())


def referral_to_com(action: QueryAction) -> dns.message.Message:
    return reply(action, authority=["com. 172800 IN NS a.gtld-servers.net."],
                 additional=["a.gtld-servers.net. 172800 IN A 127.0.53.2"])


def test_referrals_then_answer() -> None:
    w = Walk("www.example.com", "A", ROOTS)
    a1 = w.next_action()
    assert a1 is not None
    assert (a1.server, a1.address, a1.zone, a1.qname, a1.tcp) == (
        "a.root-servers.net.", "127.0.53.1", ".", "www.example.com.", False)
    hop = w.handle_response(a1, referral_to_com(a1))
    assert hop.kind is HopKind.REFERRAL
    assert hop.referral_zone == "com."
    assert hop.glue == {"a.gtld-servers.net.": ["127.0.53.2"]}

    a2 = w.next_action()
    assert a2 is not None
    assert (a2.address, a2.zone) == ("127.0.53.2", "com.")
    w.handle_response(a2, reply(a2, authority=["example.com. 172800 IN NS ns1.example.com."],
                                additional=["ns1.example.com. 172800 IN A 127.0.53.3"]))
    a3 = w.next_action()
    assert a3 is not None
    assert (a3.address, a3.zone) == ("127.0.53.3", "example.com.")
    hop = w.handle_response(a3, reply(a3, aa=True,
                                      answer=["www.example.com. 3600 IN A 127.0.80.1"]))
    assert hop.kind is HopKind.ANSWER
    assert w.next_action() is None
    assert w.result is not None
    assert w.result.outcome == "answer"
    assert w.result.records == ["127.0.80.1"]
    assert w.result.ttl == 3600
    assert w.result.authority_zone == "example.com."


def test_nxdomain_ends_the_walk_with_negative_ttl() -> None:
    w = Walk("nope.example.com", "A", ROOTS)
    a = w.next_action()
    assert a is not None
    hop = w.handle_response(a, reply(a, rcode=dns.rcode.NXDOMAIN, aa=True, authority=[
        "example.com. 3600 IN SOA ns1.example.com. admin.example.com. 1 7200 900 1209600 300"]))
    assert hop.kind is HopKind.NXDOMAIN
    assert w.next_action() is None
    assert w.result is not None
    assert w.result.outcome == "nxdomain"
    assert w.result.ttl == 300  # RFC 2308: min(SOA TTL, MINIMUM)


def test_nodata() -> None:
    w = Walk("txt.example.com", "A", ROOTS)
    a = w.next_action()
    assert a is not None
    hop = w.handle_response(a, reply(a, aa=True, authority=[
        "example.com. 3600 IN SOA ns1.example.com. admin.example.com. 1 7200 900 1209600 60"]))
    assert hop.kind is HopKind.NODATA
    assert w.result is not None
    assert w.result.outcome == "nodata"


def test_truncated_answer_is_asked_again_over_tcp_of_the_same_server() -> None:
    w = Walk("big.example.com", "A", ROOTS)
    a = w.next_action()
    assert a is not None
    hop = w.handle_response(a, reply(a, tc=True))
    assert hop.kind is HopKind.TRUNCATED
    again = w.next_action()
    assert again is not None
    assert again.tcp
    assert again.address == a.address


def test_timeout_moves_to_the_next_server_then_gives_up() -> None:
    roots = [NameServer("a.", ["127.0.0.1"]), NameServer("b.", ["127.0.0.2"])]
    w = Walk("x.test", "A", roots)
    a = w.next_action()
    assert a is not None
    assert w.handle_timeout(a).kind is HopKind.TIMEOUT
    b = w.next_action()
    assert b is not None
    assert b.address == "127.0.0.2"
    w.handle_timeout(b)
    assert w.next_action() is None
    assert w.result is not None
    assert w.result.outcome == "servfail"
    assert "no name server of zone ." in w.result.message


def test_servfail_from_one_server_tries_another() -> None:
    roots = [NameServer("a.", ["127.0.0.1"]), NameServer("b.", ["127.0.0.2"])]
    w = Walk("x.test", "A", roots)
    a = w.next_action()
    assert a is not None
    assert w.handle_response(a, reply(a, rcode=dns.rcode.SERVFAIL)).kind is HopKind.SERVFAIL
    b = w.next_action()
    assert b is not None
    assert b.server == "b."


def test_cname_to_another_zone_restarts_at_the_root() -> None:
    w = Walk("www.glueless.com", "A", ROOTS)
    a = w.next_action()
    assert a is not None
    hop = w.handle_response(a, reply(a, aa=True, answer=[
        "www.glueless.com. 300 IN CNAME www.example.com."]))
    assert hop.kind is HopKind.CNAME
    assert hop.cname_target == "www.example.com."
    b = w.next_action()
    assert b is not None
    assert (b.zone, b.qname, b.address) == (".", "www.example.com.", "127.0.53.1")
    w.handle_response(b, reply(b, aa=True, answer=["www.example.com. 60 IN A 127.0.80.1"]))
    assert w.result is not None
    assert w.result.final_name == "www.example.com."
    assert w.result.cname_chain == ["www.glueless.com. -> www.example.com."]


def test_cname_chain_inside_one_answer() -> None:
    w = Walk("alias.example.com", "A", ROOTS)
    a = w.next_action()
    assert a is not None
    hop = w.handle_response(a, reply(a, aa=True, answer=[
        "alias.example.com. 300 IN CNAME cdn.example.com.",
        "cdn.example.com. 300 IN CNAME www.example.com.",
        "www.example.com. 300 IN A 127.0.80.1"]))
    assert hop.kind is HopKind.ANSWER
    assert w.result is not None
    assert w.result.records == ["127.0.80.1"]
    assert len(w.result.cname_chain) == 2


def test_glueless_referral_resolves_the_ns_name_first() -> None:
    w = Walk("www.glueless.com", "A", ROOTS)
    a = w.next_action()
    assert a is not None
    w.handle_response(a, referral_to_com(a))
    b = w.next_action()
    assert b is not None
    hop = w.handle_response(b, reply(b, authority=["glueless.com. 172800 IN NS ns.dns-host.net."]))
    assert hop.glueless == ["ns.dns-host.net."]
    # Now the planner asks for the NS name's address, from the root, one level deeper.
    c = w.next_action()
    assert c is not None
    assert (c.qname, c.depth, c.zone) == ("ns.dns-host.net.", 1, ".")
    w.handle_response(c, reply(c, aa=True, answer=["ns.dns-host.net. 3600 IN A 127.0.53.4"]))
    d = w.next_action()
    assert d is not None
    assert (d.qname, d.depth, d.address, d.zone) == ("www.glueless.com.", 0, "127.0.53.4",
                                                     "glueless.com.")


def test_upward_referral_is_lame() -> None:
    roots = [NameServer("a.", ["127.0.0.1"]), NameServer("b.", ["127.0.0.2"])]
    w = Walk("www.example.com", "A", roots)
    a = w.next_action()
    assert a is not None
    hop = w.handle_response(a, reply(a, authority=[". 3600 IN NS a."]))
    assert hop.kind is HopKind.LAME


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["referral", "timeout", "servfail", "tc", "cname", "lame"]),
                min_size=1, max_size=200))
def test_any_sequence_of_replies_terminates(script: list[str]) -> None:
    """Whatever servers do, the walk ends within its query budget."""
    roots = [NameServer("a.", ["127.0.0.1"]), NameServer("b.", ["127.0.0.2"])]
    w = Walk("www.example.com", "A", roots)
    steps = 0
    for kind in script * 5:
        action = w.next_action()
        if action is None:
            break
        steps += 1
        if kind == "timeout":
            w.handle_timeout(action)
        elif kind == "servfail":
            w.handle_response(action, reply(action, rcode=dns.rcode.SERVFAIL))
        elif kind == "tc":
            w.handle_response(action, reply(action, tc=True))
        elif kind == "cname":
            w.handle_response(action, reply(action, answer=[
                f"{action.qname} 60 IN CNAME {action.qname}"]))
        elif kind == "lame":
            w.handle_response(action, reply(action, authority=[". 60 IN NS a."]))
        else:
            w.handle_response(action, referral_to_com(action))
    assert steps <= MAX_QUERIES + 1


def test_root_hints_file_format() -> None:
    text = """; comment
.                        3600000      NS    A.ROOT-SERVERS.NET.
A.ROOT-SERVERS.NET.      3600000      A     127.0.53.1
A.ROOT-SERVERS.NET.      3600000      AAAA  ::1
.                        3600000      NS    B.ROOT-SERVERS.NET.
"""
    servers = parse_root_hints(text)
    assert [(s.name, s.addresses) for s in servers] == [
        ("a.root-servers.net.", ["127.0.53.1", "::1"])]
    with pytest.raises(ValueError, match="no root server"):
        parse_root_hints("; nothing")


# --- limits and loops (issue 8): named failures, and the planner's own work stays small -----

PLANNER_CPU: list[float] = [0.0]   # CPU spent inside the planner by the last drive()
# A bound that tells bounded work from a runaway (4.5 s at n=30 and endless at n=100 before
# the fix; about 0.2 s at n=1000 after), not a performance figure: a busy CI machine must
# not fail it.
RUNAWAY_CPU_S = 3.0


def drive(w: Walk, respond: Callable[[QueryAction], dns.message.Message | None]) -> int:
    """Answer every action with ``respond`` (None: a timeout); the queries sent. The CPU
    the planner itself used (not the making of replies) is left in PLANNER_CPU."""
    sent = 0
    spent = 0.0
    while True:
        t0 = time.thread_time()
        action = w.next_action()
        spent += time.thread_time() - t0
        if action is None:
            break
        sent += 1
        reply_ = respond(action)
        t0 = time.thread_time()
        if reply_ is None:
            w.handle_timeout(action, 0.5)
        else:
            w.handle_response(action, reply_)
        spent += time.thread_time() - t0
    PLANNER_CPU[0] = spent
    return sent


def glueless_cycle(n: int) -> Callable[[QueryAction], dns.message.Message]:
    """The root delegates a.test. to n glueless names in b.test., and b.test. to n glueless
    names in a.test. (the case that once took 4.5 s of CPU at n=30 and never ended at 100)."""
    def respond(action: QueryAction) -> dns.message.Message:
        if action.qname.endswith("a.test."):
            return reply(action, authority=[f"a.test. 3600 IN NS ns{i}.b.test." for i in range(n)])
        return reply(action, authority=[f"b.test. 3600 IN NS ns{i}.a.test." for i in range(n)])
    return respond


@pytest.mark.parametrize("n", [1, 10, 100, 1000])
def test_glueless_cycle_is_named_with_few_queries_and_little_cpu(n: int) -> None:
    w = Walk("www.a.test", "A", ROOTS)
    sent = drive(w, glueless_cycle(n))
    assert w.result is not None
    assert w.result.code == "dns.delegation_cycle"
    assert "a.test. is served by" in w.result.message
    assert "inside a.test. again" in w.result.message
    assert sent <= 1 + MAX_NESTED  # the first referral, then one query per nested walk
    assert PLANNER_CPU[0] < RUNAWAY_CPU_S


def test_nested_walks_start_at_the_root_hints_not_at_the_zone() -> None:
    """The follow-up questions start at the zone's servers; when those are glueless, their
    addresses come from the root (they once came from the glueless servers themselves:
    N^3 nested walks without a single query)."""
    zone = [NameServer(f"ns{i}.b.test.") for i in range(50)]
    w = Walk("www.a.test", "AAAA", ROOTS, servers=zone, start_zone="a.test.")
    a = w.next_action()
    assert a is not None
    assert (a.address, a.zone, a.depth, a.qtype) == ("127.0.53.1", ".", 1, "A")
    assert a.qname.endswith(".b.test.")


def test_missing_glue_is_named_without_a_query() -> None:
    w = Walk("www.example.test", "A", ROOTS)
    sent = drive(w, lambda a: reply(a, authority=["example.test. 60 IN NS ns1.example.test."]))
    assert sent == 1
    assert w.result is not None
    assert w.result.code == "dns.missing_glue"
    assert "missing glue" in w.result.message


def test_glueless_names_per_referral_are_capped_nxns() -> None:
    """NXNSAttack (CVE-2020-12662): one referral naming 100 glueless names under a victim's
    zone; each costs the victim a query. At most ``max_nested`` are looked up."""
    victim: list[str] = []

    def respond(action: QueryAction) -> dns.message.Message:
        if action.address == "127.0.53.9":
            victim.append(action.qname)
            return reply(action, rcode=dns.rcode.NXDOMAIN, aa=True)
        if action.qname.endswith("victim.test."):
            return reply(action, authority=["victim.test. 60 IN NS ns.victim.test."],
                         additional=["ns.victim.test. 60 IN A 127.0.53.9"])
        return reply(action, authority=[f"example.test. 60 IN NS x{i}.victim.test."
                                        for i in range(100)])

    w = Walk("www.example.test", "A", ROOTS, limits=WalkLimits(max_nested=3))
    drive(w, respond)
    assert len(victim) == 3
    assert w.result is not None
    assert w.result.code == "dns.nested_limit"
    assert "--dns-max-nested 3" in w.result.message
    assert "97 more name servers" in w.result.message


def test_nested_depth_is_capped() -> None:
    """x.test. is served by ns.x1.test., x1.test. by ns.x2.test., … for ever."""
    def respond(action: QueryAction) -> dns.message.Message:
        zone = action.qname.split(".", 1)[1]           # "x3.test."
        n = int(zone.split(".")[0].removeprefix("x") or 0)
        return reply(action, authority=[f"{zone} 60 IN NS ns.x{n + 1}.test."])

    w = Walk("www.x.test", "A", ROOTS, limits=WalkLimits(max_depth=2))
    sent = drive(w, respond)
    assert w.result is not None
    assert w.result.code == "dns.nested_limit"
    assert "nested 3 deep, over the limit of 2" in w.result.message
    assert sent == 3


def test_glueless_fan_out_tree_is_bounded() -> None:
    """Every referral names 50 glueless servers, each in a zone of its own that is delegated
    the same way: no cycle to detect, a tree. Depth, fan-out and the query cap bound it."""
    def respond(action: QueryAction) -> dns.message.Message:
        zone = action.qname.split(".", 1)[1]
        stem = zone.split(".")[0]
        return reply(action, authority=[f"{zone} 60 IN NS ns.{stem}{i}.test."
                                        for i in range(50)])

    w = Walk("www.t.test", "A", ROOTS)
    sent = drive(w, respond)
    assert PLANNER_CPU[0] < RUNAWAY_CPU_S
    assert sent <= MAX_QUERIES
    assert w.result is not None
    assert w.result.code in ("dns.query_limit", "dns.nested_limit")


def test_query_cap_is_named_with_the_numbers() -> None:
    """Every answer a referral one label closer: legal each time, endless together."""
    def respond(action: QueryAction) -> dns.message.Message:
        labels = action.qname.rstrip(".").split(".")
        depth = 1 if action.zone == "." else len(action.zone.rstrip(".").split(".")) + 1
        zone = ".".join(labels[-depth:]) + "."
        return reply(action, authority=[f"{zone} 60 IN NS ns.{zone}"],
                     additional=[f"ns.{zone} 60 IN A 127.0.53.1"])

    w = Walk(".".join(["l"] * 60) + ".example.test", "A", ROOTS,
             limits=WalkLimits(max_queries=10))
    assert drive(w, respond) == 10
    assert w.result is not None
    assert w.result.code == "dns.query_limit"
    assert "gave up after 10 queries" in w.result.message
    assert "--dns-max-queries 10" in w.result.message


def test_cname_loop_is_named_not_nodata() -> None:
    w = Walk("www.example.test", "A", ROOTS)
    drive(w, lambda a: reply(a, aa=True, answer=[
        "www.example.test. 60 IN CNAME b.example.test.",
        "b.example.test. 60 IN CNAME www.example.test."]))
    assert w.result is not None
    assert (w.result.outcome, w.result.code) == ("servfail", "dns.cname_loop")
    assert "www.example.test. → b.example.test. → www.example.test." in w.result.message


def test_cname_loop_across_restarts_is_named() -> None:
    """a. → b. in one zone, b. → a. in another: each answer alone is no loop."""
    def respond(action: QueryAction) -> dns.message.Message:
        target = "b.other.test." if action.qname.startswith("www.") else "www.example.test."
        return reply(action, aa=True, answer=[f"{action.qname} 60 IN CNAME {target}"])

    w = Walk("www.example.test", "A", ROOTS)
    assert drive(w, respond) == 2
    assert w.result is not None
    assert w.result.code == "dns.cname_loop"


def test_long_cname_chain_names_the_limit() -> None:
    names = ["www.example.test."] + [f"c{i}.example.test." for i in range(40)]
    w = Walk("www.example.test", "A", ROOTS)
    drive(w, lambda a: reply(a, aa=True, answer=[f"{x} 60 IN CNAME {y}"
                                                 for x, y in itertools.pairwise(names)]))
    assert w.result is not None
    assert w.result.code == "dns.cname_chain_too_long"
    assert f"longer than {MAX_CNAME_CHAIN}" in w.result.message


def test_a_non_authoritative_empty_answer_is_lame_not_nodata() -> None:
    roots = [NameServer("a.", ["127.0.0.1"]), NameServer("b.", ["127.0.0.2"])]
    w = Walk("www.example.test", "A", roots)
    a = w.next_action()
    assert a is not None
    hop = w.handle_response(a, reply(a))          # NOERROR, empty, AA clear, no referral
    assert hop.kind is HopKind.LAME
    assert "not authoritative" in hop.note
    b = w.next_action()
    assert b is not None
    assert b.server == "b."                       # another server is asked


def test_truncated_even_over_tcp_is_unusable() -> None:
    w = Walk("big.example.test", "A", ROOTS)
    sent = drive(w, lambda a: reply(a, tc=True))
    assert sent == 2
    assert w.result is not None
    assert w.result.code == "dns.truncated"
    assert "even over TCP" in w.result.message


def test_a_view_wide_budget_stops_every_walk() -> None:
    """The record budget ran out in a nested walk: the whole walk stops and says who."""
    w = Walk("www.a.test", "A", ROOTS)
    a = w.next_action()
    assert a is not None
    w.handle_response(a, reply(a, authority=["a.test. 60 IN NS ns.b.test."]))
    nested = w.next_action()
    assert nested is not None
    assert nested.depth == 1
    w.handle_error(nested, "sent a reply of 9,000 records", "dns.record_limit")
    assert w.next_action() is None
    assert w.result is not None
    assert w.result.code == "dns.record_limit"
    assert "sent a reply of 9,000 records" in w.result.message


def test_the_planner_checks_the_deadline_itself() -> None:
    """A pure loop cannot be interrupted by asyncio's timer: it checks --max-time itself."""
    token = budget.install(budget.Budget(max_time=0.0))
    try:
        time.sleep(0.001)
        w = Walk("www.a.test", "A", ROOTS)
        with pytest.raises(JourneyTimeout):
            w.next_action()
    finally:
        budget.uninstall(token)


# --- reading replies: whatever the bytes, a reply or words (wire.py) -------------------------

def _valid_reply_bytes() -> bytes:
    q = dns.message.make_query("www.example.com.", "A")
    q.id = 4660
    r = dns.message.make_response(q)
    for line in ("www.example.com. 60 IN CNAME cdn.example.com.",
                 "cdn.example.com. 60 IN A 127.0.80.1"):
        name, ttl, cls, rtype, rdata = line.split(None, 4)
        r.answer.append(dns.rrset.from_text(name, int(ttl), cls, rtype, rdata))
    r.authority.append(dns.rrset.from_text("example.com.", 60, "IN", "NS", "ns.example.com."))
    return bytes(r.to_wire())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 220), st.booleans())
def test_any_mutated_reply_is_read_or_described(flips: list[tuple[int, int]], cut: int,
                                                udp: bool) -> None:
    """Bytes flipped and the message cut anywhere: the reply is read, or set aside with
    words that name what is wrong (never a library's exception escaping)."""
    from whathappens.net.dns import wire

    data = bytearray(_valid_reply_bytes())
    for pos, value in flips:
        if 2 <= pos < len(data):  # the ID stays ours, so the rest is looked at
            data[pos] = value
    data = data[:max(cut, 2)] if cut < len(data) else data
    q = dns.message.make_query("www.example.com.", "A")
    q.id = 4660
    what = ""
    try:
        wire.read_reply(bytes(data), q, udp=udp, records=wire.RecordBudget())
    except wire._Unusable as bad:
        what = bad.what or "(no words)"
    if what:
        assert "Error" not in what
        assert "\\x" not in what
