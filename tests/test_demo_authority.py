"""The authoritative answer logic on its own, fed messages, with no sockets."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from whathappens.demo.authority import Authority, Special

ZONE = """
$ORIGIN test.
$TTL 300
@           IN SOA ns.test. admin.test. 1 7200 3600 1209600 60
@           IN NS  ns.test.
ns          IN A   192.0.2.53
www         IN A   192.0.2.1
a.b.c       IN A   192.0.2.2
out         IN CNAME www.elsewhere.example.
loop1       IN CNAME loop2
loop2       IN CNAME loop1
child       IN NS  ns.child
ns.child    IN A   192.0.2.54
"""


@pytest.fixture
def authority() -> Authority:
    zone = dns.zone.from_text(ZONE, relativize=False)
    return Authority([zone], {dns.name.from_text("dead.test."): Special.DROP})


def ask(authority: Authority, name: str, rdtype: str = "A",
        **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    response = authority.respond(query)
    assert response is not None
    return response


def test_empty_non_terminal_is_nodata_not_nxdomain(authority: Authority) -> None:
    # b.c.test owns no records but a.b.c.test exists below it (RFC 8020).
    response = ask(authority, "b.c.test.")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_negative_ttl_is_soa_minimum_when_smaller(authority: Authority) -> None:
    response = ask(authority, "missing.test.")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].ttl == 60  # min(SOA TTL 300, minimum 60), RFC 2308 §3


def test_ds_at_cut_is_answered_by_the_parent(authority: Authority) -> None:
    response = ask(authority, "child.test.", "DS")
    assert response.flags & dns.flags.AA
    assert response.rcode() == dns.rcode.NOERROR
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_names_below_a_cut_get_a_referral_with_glue(authority: Authority) -> None:
    response = ask(authority, "deep.www.child.test.", "AAAA")
    assert not response.flags & dns.flags.AA
    assert [r.name.to_text() for r in response.authority] == ["child.test."]
    assert [(r.name.to_text(), r[0].address) for r in response.additional] == [
        ("ns.child.test.", "192.0.2.54")
    ]


def test_cname_leaving_the_zone_stops_the_chain(authority: Authority) -> None:
    response = ask(authority, "out.test.")
    assert response.rcode() == dns.rcode.NOERROR
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.CNAME]
    assert not response.authority


def test_cname_loop_terminates(authority: Authority) -> None:
    response = ask(authority, "loop1.test.")
    assert [r.name.to_text() for r in response.answer] == ["loop1.test.", "loop2.test."]


def test_cname_query_returns_the_cname_itself(authority: Authority) -> None:
    response = ask(authority, "out.test.", "CNAME")
    assert response.answer[0].rdtype == dns.rdatatype.CNAME
    assert len(response.answer) == 1


def test_any_returns_every_rrset_at_the_name(authority: Authority) -> None:
    response = ask(authority, "test.", "ANY")
    assert {r.rdtype for r in response.answer} == {dns.rdatatype.SOA, dns.rdatatype.NS}


def test_names_outside_our_zones_are_refused(authority: Authority) -> None:
    assert ask(authority, "www.example.org.").rcode() == dns.rcode.REFUSED


def test_zone_transfer_is_refused(authority: Authority) -> None:
    assert ask(authority, "test.", "AXFR").rcode() == dns.rcode.REFUSED


def test_unknown_edns_version_gets_badvers(authority: Authority) -> None:
    response = ask(authority, "www.test.", use_edns=1)
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0


def test_edns_is_echoed_with_our_payload(authority: Authority) -> None:
    response = ask(authority, "www.test.", use_edns=0, payload=4096)
    assert response.edns == 0
    assert response.payload == 1232


def test_other_opcodes_are_not_implemented(authority: Authority) -> None:
    query = dns.message.make_query("www.test.", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    response = authority.respond(query)
    assert response is not None
    assert response.rcode() == dns.rcode.NOTIMP


def test_dropped_names_get_no_response(authority: Authority) -> None:
    assert authority.respond(dns.message.make_query("x.dead.test.", "A")) is None
