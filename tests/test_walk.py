"""The walk planner on its own: hand-made responses in, decisions out (no network)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whathappens.net.dns.hints import NameServer, parse_root_hints
from whathappens.net.dns.walk import MAX_QUERIES, HopKind, QueryAction, Walk

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
    return r


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
