"""The misbehaving-server corpus, DNS part (issue 8, item 3): every case runs the real command
against name servers on loopback that misbehave in one way (tests/misbehaving_dns.py), and
holds it to what tests/corpus_harness.py checks: the failing step and exit class, plain words
naming what the peer did, no bare library text, wall time within --max-time, CPU and memory.

Two kinds of peer:

* a *resolver* (``--resolver 127.x.y.z:PORT --dns-views resolver``): one server that the
  recursive-resolver view asks A, AAAA and HTTPS;
* a *walk* (``--root-hints FILE --dns-port PORT --dns-views walk``): a root and the servers
  it delegates to, each on its own 127.x.y.z address, all on one port.

When DNS succeeds the journey goes on to connect: those cases point the answer at a small
HTTP server on 127.0.0.1, so a correct run ends with exit 0.
"""

from __future__ import annotations

import functools
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from corpus_harness import Outcome, check, run_cli
from misbehaving import RawServer, ok_reply
from misbehaving_dns import (
    CLOSE,
    DnsWorld,
    Later,
    Raw,
    Reply,
    Several,
    address_answer,
    header,
    nodata,
    nxdomain,
    qname,
    qtype,
    question_wire,
    referral,
    response,
)

HTTP_ADDRESS = "127.0.0.1"   # where every successful answer points (an HTTP server runs there)
DNS_TIMEOUT = "0.3"          # one query; the timeout cases wait this long
MAX_TIME = "3"
Query = dns.message.Message


@dataclass(frozen=True)
class Case:
    id: str
    view: str                                   # "resolver" | "walk"
    build: Callable[[DnsWorld], None]           # adds the servers; a walk's first is the root
    says: tuple[str, ...] = ()
    exit_code: int = 4
    step: str | None = "dns"
    host: str = "www.example.test"
    after: Callable[[Outcome, DnsWorld], None] | None = None
    dns_timeout: str = DNS_TIMEOUT   # the servers of the big cases need longer to build


# ------------------------------------------------------------------ raw replies
def ok_header(q: Query, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x8180) -> bytes:
    """A response header with our ID and one question (QR, RD, RA set)."""
    return header(q.id, flags, 1, an, ns, ar)


def a_record(rdata: bytes, rdlength: int | None = None) -> bytes:
    """An A record owned by the question's name (a pointer to offset 12)."""
    n = len(rdata) if rdlength is None else rdlength
    return b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, n) + rdata


def garbage_text(q: Query, transport: str) -> Reply:
    return Raw(b"HELLO, THIS IS NOT DNS AT ALL\r\n")


def garbage_after_our_id(q: Query, transport: str) -> Reply:
    return struct.pack("!HH", q.id, 0x8180) + bytes(range(7, 47))


def short_header(q: Query, transport: str) -> Reply:
    return struct.pack("!H", q.id) + b"\x81\x80\x00"


def pointer_loop(q: Query, transport: str) -> Reply:
    """The answer's owner name is a compression pointer to itself (RFC 1035 §4.1.4)."""
    body = question_wire(q)
    here = 12 + len(body)
    rr = struct.pack("!H", 0xC000 | here) + struct.pack("!HHIH", 1, 1, 300, 4) + bytes(4)
    return ok_header(q, an=1) + body + rr


def bad_rdata_length(q: Query, transport: str) -> Reply:
    return ok_header(q, an=1) + question_wire(q) + a_record(b"\x7f\x00\x00\x01\x00")


def counts_lie(q: Query, transport: str) -> Reply:
    return ok_header(q, an=3) + question_wire(q)


def rdlength_past_the_end(q: Query, transport: str) -> Reply:
    return ok_header(q, an=1) + question_wire(q) + a_record(b"\x7f\x00\x00\x01", 200)


def echo(q: Query, transport: str) -> Reply:
    return q.to_wire()


def wrong_id(q: Query, transport: str) -> Reply:
    r = address_answer(q, HTTP_ADDRESS)
    r.id = (q.id + 1) % 65536
    return r


def wrong_id_then_right(q: Query, transport: str) -> Reply:
    """A stray reply first (a late answer to another query), then the real one."""
    stray = answers(q, transport)
    assert isinstance(stray, dns.message.Message)
    stray.id = (q.id + 7) % 65536
    return Several((stray, answers(q, transport)))


def wrong_question(q: Query, transport: str) -> Reply:
    other = dns.message.make_query("other.example.test.", qtype(q))
    r = address_answer(other, HTTP_ADDRESS)
    r.id = q.id
    return r


def flood_of_wrong_ids(q: Query, transport: str) -> Reply:
    """Thousands of replies that are not ours, as fast as the socket takes them."""
    r = address_answer(q, HTTP_ADDRESS)
    r.id = (q.id + 1) % 65536
    return Several((r.to_wire(),) * 3000)


# ------------------------------------------------------------------ resolver policies
def resolver(policy: Callable[[Query, str], Reply], *, tcp: bool = True
             ) -> Callable[[DnsWorld], None]:
    def build(world: DnsWorld) -> None:
        world.add("resolver.test.", policy, tcp=tcp)
    return build


def recursive(q: Query, **kw: object) -> dns.message.Message:
    """A recursive resolver's reply: RA set, AA clear."""
    return response(q, aa=False, ra=True, **kw)  # type: ignore[arg-type]


def answers(q: Query, transport: str) -> Reply:
    if qtype(q) != "A":
        return recursive(q, authority=["example.test. 60 SOA ns1.example.test. h.example.test. "
                                       "1 7200 900 1209600 60"])
    return recursive(q, answer=[f"{qname(q)} 300 A {HTTP_ADDRESS}"])


def rcode(code: int) -> Callable[[Query, str], Reply]:
    def policy(q: Query, transport: str) -> Reply:
        return response(q, rcode=code, aa=False, ra=True)
    return policy


def cname_loop(q: Query, transport: str) -> Reply:
    name = qname(q)
    return recursive(q, answer=[f"{name} 300 CNAME loop.example.test.",
                                f"loop.example.test. 300 CNAME {name}"])


def cname_chain(depth: int) -> Callable[[Query, str], Reply]:
    def policy(q: Query, transport: str) -> Reply:
        names = [qname(q)] + [f"c{i}.example.test." for i in range(depth)]
        chain = [f"{a} 300 CNAME {b}" for a, b in itertools.pairwise(names)]
        return recursive(q, answer=[*chain, f"{names[-1]} 300 A {HTTP_ADDRESS}"])
    return policy


def truncated_everywhere(q: Query, transport: str) -> Reply:
    return recursive(q, tc=True)


def truncated_udp(then: Reply | Callable[[Query], Reply]) -> Callable[[Query, str], Reply]:
    def policy(q: Query, transport: str) -> Reply:
        if transport == "udp":
            return recursive(q, tc=True)
        return then(q) if callable(then) else then
    return policy


def lame_resolver(q: Query, transport: str) -> Reply:
    return response(q, aa=False, ra=False)


def referral_instead(q: Query, transport: str) -> Reply:
    return referral(q, "example.test.", ["ns1.example.test."], {"ns1.example.test.": "127.9.9.9"})


def other_names_only(q: Query, transport: str) -> Reply:
    return recursive(q, answer=[f"elsewhere.example.test. 300 A {HTTP_ADDRESS}"])


def huge_answer(q: Query, transport: str) -> Reply:
    """Over UDP the answer does not fit (TC); over TCP, 3,900 A records in 62 KiB, none of
    them where HTTP listens: whichever 128 the connection is given (the records' order is a
    set's, which differs from run to run), every one is refused and the journey ends at TCP."""
    if qtype(q) != "A":
        return answers(q, transport)
    if transport == "udp":
        return recursive(q, tc=True)
    r = recursive(q)
    r.answer.append(_many_addresses(qname(q)))
    wire = r.to_wire(max_size=65535)  # not our EDNS 1232
    assert len(wire) > 60_000
    return wire


@functools.cache
def _many_addresses(name: str) -> dns.rrset.RRset:
    """Made once: 3,900 records take a while to make, and the client's timer runs."""
    return dns.rrset.from_text_list(name, 300, "IN", "A", [
        f"127.{100 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(1, 3901)])


def addresses_capped(out: Outcome, world: DnsWorld) -> None:
    """~3,900 addresses in the answer: the connection is given the first 128 (a finding says
    so), so the TCP step tries 128 refused ports, not thousands."""
    notes = [f["message"] for f in (out.journey or {}).get("findings", [])]
    assert any("3,900 addresses" in n and "first 128" in n for n in notes), notes
    connects = [s for s in out.spans() if s.get("name") == "tcp.connect"]
    assert len(connects) <= 128


def length_prefix_lies(q: Query, transport: str) -> Reply:
    """Over TCP: a length of 500, then 20 bytes, then the connection closes."""
    if transport == "udp":
        return recursive(q, tc=True)
    return Several((Raw(struct.pack("!H", 500) + bytes(20)), CLOSE))


def closes_tcp(q: Query, transport: str) -> Reply:
    if transport == "udp":
        return recursive(q, tc=True)
    return CLOSE


def never(q: Query, transport: str) -> Reply:
    return None


def slow(q: Query, transport: str) -> Reply:
    return Later(1.0, answers(q, transport))


# ------------------------------------------------------------------ walk worlds
AUTH = "ns1.example.test."


def walk_world(auth: Callable[[Query, str], Reply], *, tcp: bool = True,
               root: Callable[[Query, str], Reply] | None = None) -> Callable[[DnsWorld], None]:
    """A root that delegates example.test. (with glue) to one authoritative server."""
    def build(world: DnsWorld) -> None:
        found: dict[str, str] = {}   # filled below; read when queries arrive

        def delegate(q: Query, transport: str) -> Reply:
            if qname(q).endswith("example.test."):
                return referral(q, "example.test.", [AUTH], {AUTH: found[AUTH]})
            return nxdomain(q, ".")

        world.add("a.root.test.", root or delegate)
        found[AUTH] = world.add(AUTH, auth, tcp=tcp)
    return build


def authoritative(q: Query, transport: str) -> Reply:
    if qname(q) == "www.example.test.":
        return address_answer(q, HTTP_ADDRESS) if qtype(q) == "A" else \
            nodata(q, "example.test.")
    return nxdomain(q, "example.test.")


def glueless_cycle(n: int) -> Callable[[DnsWorld], None]:
    """Zone a.test. is served by n names in b.test., whose servers are n names back in
    a.test., none with glue: NXNS-style fan-out, and a cycle (issue 8)."""
    def build(world: DnsWorld) -> None:
        def root(q: Query, transport: str) -> Reply:
            name = qname(q)
            if name.endswith("a.test."):
                return referral(q, "a.test.", [f"ns{i}.b.test." for i in range(n)])
            if name.endswith("b.test."):
                return referral(q, "b.test.", [f"ns{i}.a.test." for i in range(n)])
            return nxdomain(q, ".")
        world.add("a.root.test.", root)
    return build


def few_queries(limit: int) -> Callable[[Outcome, DnsWorld], None]:
    def after(out: Outcome, world: DnsWorld) -> None:
        sent = world.queries()
        assert len(sent) <= limit, f"{len(sent)} queries: {sent[:20]}"
    return after


def nxns_fan_out(world: DnsWorld) -> None:
    """The NXNS attack: a referral naming 100 glueless servers under a victim's zone, none
    of which exist. Each costs the walker a nested resolution, and the victim a query."""
    found: dict[str, str] = {}

    def root(q: Query, transport: str) -> Reply:
        name = qname(q)
        if name.endswith("victim.test."):
            return referral(q, "victim.test.", ["ns.victim.test."],
                            {"ns.victim.test.": found["victim"]})
        if name.endswith("example.test."):
            return referral(q, "example.test.", [f"x{i}.victim.test." for i in range(100)])
        return nxdomain(q, ".")

    world.add("a.root.test.", root)
    found["victim"] = world.add("ns.victim.test.", lambda q, t: nxdomain(q, "victim.test."))


def victim_spared(out: Outcome, world: DnsWorld) -> None:
    """The victim hears one query per glueless name looked up: --dns-max-nested, not 100."""
    victim = next(a for a, s in world.servers.items() if s.name == "ns.victim.test.")
    assert 1 <= len(world.queries(victim)) <= 4, world.queries(victim)


def glueless_tree(world: DnsWorld) -> None:
    """No cycle to detect: every zone is served by 30 glueless names, each in a zone of its
    own that is delegated the same way, for ever. The fan-out per referral, the depth and
    the query cap bound the walk."""
    def root(q: Query, transport: str) -> Reply:
        zone = qname(q).split(".", 1)[1]
        stem = zone.split(".")[0]
        return referral(q, zone, [f"ns.{stem}{i}.test." for i in range(30)])
    world.add("a.root.test.", root)


def missing_glue(world: DnsWorld) -> None:
    def root(q: Query, transport: str) -> Reply:
        return referral(q, "example.test.", ["ns1.example.test.", "ns2.example.test."])
    world.add("a.root.test.", root)


def nested_too_deep(world: DnsWorld) -> None:
    """example.test. is served by ns.b.test., b.test. by ns.c.test., … e.test. by a server
    with glue: finding the first address needs walks nested four deep."""
    chain = ["example.test.", "b.test.", "c.test.", "d.test.", "e.test."]
    found: dict[str, str] = {}

    def root(q: Query, transport: str) -> Reply:
        name = qname(q)
        for zone, nxt in itertools.pairwise(chain):
            if name.endswith(zone):
                return referral(q, zone, [f"ns.{nxt}"])
        if name.endswith("e.test."):
            return referral(q, "e.test.", ["ns.e.test."], {"ns.e.test.": found["e"]})
        return nxdomain(q, ".")

    world.add("a.root.test.", root)
    found["e"] = world.add("ns.e.test.", lambda q, t: address_answer(q, "127.9.9.9"))


def referral_chain(world: DnsWorld) -> None:
    """Every answer is a referral one label closer, with glue, for ever: legal each time, a
    walk that never ends. The query cap ends it."""
    found: dict[str, str] = {}
    asked = [0]

    def root(q: Query, transport: str) -> Reply:
        labels = qname(q).rstrip(".").split(".")
        asked[0] += 1
        zone = ".".join(labels[-min(asked[0] + 1, len(labels) - 1):]) + "."
        return referral(q, zone, [f"ns.{zone}"], {f"ns.{zone}": found["root"]})

    found["root"] = world.add("a.root.test.", root)


def deep_name() -> str:
    return ".".join(["l"] * 70) + ".example.test"


def lame_authoritative(q: Query, transport: str) -> Reply:
    return response(q, aa=False)


def upward_referral(q: Query, transport: str) -> Reply:
    return referral(q, ".", ["a.root.test."])


def referral_to_itself(q: Query, transport: str) -> Reply:
    return referral(q, "example.test.", [AUTH])


def sideways_referral(q: Query, transport: str) -> Reply:
    return referral(q, "elsewhere.test.", ["ns.elsewhere.test."])


def walk_cname_loop(q: Query, transport: str) -> Reply:
    name = qname(q)
    return response(q, answer=[f"{name} 300 CNAME loop.example.test.",
                               f"loop.example.test. 300 CNAME {name}"])


def walk_cname_chain(q: Query, transport: str) -> Reply:
    names = [qname(q)] + [f"c{i}.example.test." for i in range(40)]
    return response(q, answer=[f"{a} 300 CNAME {b}"
                               for a, b in itertools.pairwise(names)])


def cname_hops_zones(world: DnsWorld) -> None:
    """Each alias points into another zone, so the walk restarts at the root every time."""
    found: dict[str, str] = {}

    def root(q: Query, transport: str) -> Reply:
        zone = ".".join(qname(q).split(".")[-3:])
        return referral(q, zone, [f"ns.{zone}"], {f"ns.{zone}": found["auth"]})

    def alias(q: Query, transport: str) -> Reply:
        labels = qname(q).split(".")
        n = int(labels[-3].removeprefix("z")) if labels[-3].startswith("z") else 0
        return response(q, answer=[f"{qname(q)} 300 CNAME www.z{n + 1}.test."])

    world.add("a.root.test.", root)
    found["auth"] = world.add("ns.z.test.", alias)


def huge_glueless_referral(world: DnsWorld) -> None:
    """A referral of 2,000 glueless names (over TCP: it does not fit in UDP), and the same
    again for every nested walk: reading them is the cost, so the view's record budget
    (wire.MAX_RECORDS) ends it, before the nested limit would."""
    names = dns.rrset.from_text_list("example.test.", 172800, "IN", "NS",
                                     [f"n{i}.other.test." for i in range(2000)])

    def root(q: Query, transport: str) -> Reply:
        r = response(q, aa=False, tc=transport == "udp")
        if transport == "tcp":
            r.authority.append(names)  # made once: 2,000 records take a while to make
        return r
    world.add("a.root.test.", root)


def glueless_then_answer(world: DnsWorld) -> None:
    """A healthy glueless delegation: the walk finds ns.dns-host.test. first, then asks it."""
    found: dict[str, str] = {}

    def root(q: Query, transport: str) -> Reply:
        name = qname(q)
        if name.endswith("example.test."):
            return referral(q, "example.test.", ["ns.dns-host.test."])
        if name.endswith("dns-host.test."):
            return referral(q, "dns-host.test.", ["ns.dns-host.test."],
                            {"ns.dns-host.test.": found["host"]})
        return nxdomain(q, ".")

    def server(q: Query, transport: str) -> Reply:
        if qname(q) == "ns.dns-host.test.":
            return address_answer(q, found["host"])
        return authoritative(q, transport)

    world.add("a.root.test.", root)
    found["host"] = world.add("ns.dns-host.test.", server)


# ------------------------------------------------------------------ the cases
R = "resolver"
W = "walk"
OK = {"exit_code": 0, "step": None}

CASES = [
    # --- resolver: replies that are not ours, or not DNS
    Case("resolver-wrong-id", R, resolver(wrong_id), ("message ID", "not our query")),
    Case("resolver-wrong-id-then-right", R, resolver(wrong_id_then_right), **OK),
    Case("resolver-wrong-question", R, resolver(wrong_question),
         ("another question", "other.example.test")),
    Case("resolver-garbage-text", R, resolver(garbage_text),
         ("answered", "not DNS|not a response")),
    Case("resolver-garbage-after-our-id", R, resolver(garbage_after_our_id),
         ("answered", "malformed")),
    Case("resolver-short-header", R, resolver(short_header), ("12-byte header",)),
    Case("resolver-compression-pointer-loop", R, resolver(pointer_loop),
         ("malformed", "compression pointer")),
    Case("resolver-bad-rdata-length", R, resolver(bad_rdata_length),
         ("malformed", "A record whose data is 5 bytes")),
    Case("resolver-counts-lie", R, resolver(counts_lie), ("malformed", "count that lies")),
    Case("resolver-rdlength-past-the-end", R, resolver(rdlength_past_the_end),
         ("malformed", "record length that lies")),
    Case("resolver-echo", R, resolver(echo), ("our own query back", "echo")),
    Case("resolver-flood-of-wrong-ids", R, resolver(flood_of_wrong_ids),
         ("replies", "message ID")),
    # --- resolver: truncation and TCP
    Case("resolver-truncated-over-tcp-too", R, resolver(truncated_everywhere),
         ("truncated", "even over TCP")),
    Case("resolver-tcp-closed-after-udp", R, resolver(truncated_udp(None), tcp=False),
         ("over UDP", "truncated", "refused the TCP connection")),
    Case("resolver-tcp-close-without-answer", R, resolver(closes_tcp),
         ("over UDP", "closed the TCP connection without answering")),
    Case("resolver-tcp-length-prefix-lies", R, resolver(length_prefix_lies),
         ("closed the TCP connection in the middle", "20 of the 500 bytes")),
    Case("resolver-tcp-silent", R, resolver(truncated_udp(None)),
         ("truncated", "did not answer .* over TCP within 0.3 s")),
    Case("resolver-huge-answer", R, resolver(huge_answer), ("refused",), exit_code=5,
         step="tcp", after=addresses_capped, dns_timeout="1"),
    # --- resolver: answers that are not answers
    Case("resolver-cname-loop", R, resolver(cname_loop), ("loop", "CNAME")),
    Case("resolver-cname-chain-40", R, resolver(cname_chain(40)),
         ("chain of aliases", "longer than 11")),
    Case("resolver-lame", R, resolver(lame_resolver), ("lame", "no recursion")),
    Case("resolver-referral-not-recursive", R, resolver(referral_instead),
         ("referral", "not a recursive resolver")),
    Case("resolver-records-for-other-names", R, resolver(other_names_only),
         ("other names", "elsewhere.example.test")),
    # --- resolver: error codes, negative answers, silence
    Case("resolver-servfail", R, resolver(rcode(dns.rcode.SERVFAIL)), ("SERVFAIL",)),
    Case("resolver-refused", R, resolver(rcode(dns.rcode.REFUSED)), ("REFUSED",)),
    Case("resolver-notimp", R, resolver(rcode(dns.rcode.NOTIMP)), ("NOTIMP", "implement")),
    Case("resolver-formerr", R, resolver(rcode(dns.rcode.FORMERR)), ("FORMERR",)),
    Case("resolver-nxdomain", R, resolver(lambda q, t: nxdomain(q, "example.test.")),
         ("does not exist", "NXDOMAIN")),
    Case("resolver-nodata", R, resolver(lambda q, t: nodata(q, "example.test.")),
         ("exists but has no A or AAAA record", "NODATA")),
    Case("resolver-never-answers", R, resolver(never), ("did not answer within 0.3 s",)),
    Case("resolver-answers-after-the-timeout", R, resolver(slow),
         ("did not answer within 0.3 s",)),
    # --- walk: glueless cycles and fan-out (NXNS), limits
    Case("walk-glueless-cycle-10", W, glueless_cycle(10), ("delegation cycle", "a.test",
                                                           "b.test"),
         host="www.a.test", after=few_queries(10)),
    Case("walk-glueless-cycle-30", W, glueless_cycle(30), ("delegation cycle",),
         host="www.a.test", after=few_queries(10)),
    Case("walk-glueless-cycle-100", W, glueless_cycle(100), ("delegation cycle",
                                                             "--dns-max-nested 4"),
         host="www.a.test", after=few_queries(10)),
    Case("walk-nxns-fan-out", W, nxns_fan_out, ("--dns-max-nested 4", "NXNS", "96 more"),
         after=victim_spared),
    Case("walk-huge-glueless-referral", W, huge_glueless_referral,
         (r"2,00\d records", "flood"), dns_timeout="1"),
    Case("walk-glueless-tree", W, glueless_tree, ("--dns-max-(nested|queries)",),
         host="www.t.test", after=few_queries(64)),
    Case("walk-missing-glue", W, missing_glue, ("missing glue", "ns[12].example.test")),
    Case("walk-nested-too-deep", W, nested_too_deep, ("nested 4 deep", "limit of 3")),
    Case("walk-endless-referrals", W, referral_chain, ("--dns-max-queries 64", "64 queries"),
         host=deep_name(), after=few_queries(64)),
    # --- walk: lame and looping delegations
    Case("walk-lame-authoritative", W, walk_world(lame_authoritative),
         ("not authoritative", "lame delegation")),
    Case("walk-upward-referral", W, walk_world(upward_referral), ("referral upward", "lame")),
    Case("walk-referral-to-itself", W, walk_world(referral_to_itself),
         ("referred us back to example.test", "delegation loop")),
    Case("walk-sideways-referral", W, walk_world(sideways_referral),
         ("elsewhere.test", "not on the way")),
    # --- walk: aliases
    Case("walk-cname-loop", W, walk_world(walk_cname_loop), ("loop", "CNAME")),
    Case("walk-cname-chain-40", W, walk_world(walk_cname_chain), ("longer than 11",)),
    Case("walk-cname-across-zones", W, cname_hops_zones, ("longer than 11",),
         host="www.z0.test", after=few_queries(40)),
    # --- walk: truncation, TCP, unusable replies
    Case("walk-truncated-over-tcp-too", W, walk_world(truncated_everywhere),
         ("truncated", "even over TCP")),
    Case("walk-tcp-closed-after-udp", W, walk_world(truncated_udp(None), tcp=False),
         ("over UDP", "refused the TCP connection")),
    Case("walk-tcp-silent", W, walk_world(truncated_udp(None)),
         ("truncated", "did not answer .* over TCP within 0.3 s")),
    Case("walk-garbage-after-our-id", W, walk_world(garbage_after_our_id), ("malformed",)),
    Case("walk-compression-pointer-loop-at-the-root", W,
         walk_world(authoritative, root=pointer_loop), ("compression pointer",)),
    Case("walk-wrong-id", W, walk_world(wrong_id), ("message ID",)),
    Case("walk-wrong-question", W, walk_world(wrong_question), ("another question",)),
    # --- walk: error codes, negative answers, silence, success
    Case("walk-servfail", W, walk_world(rcode(dns.rcode.SERVFAIL)), ("SERVFAIL",)),
    Case("walk-refused", W, walk_world(rcode(dns.rcode.REFUSED)), ("REFUSED",)),
    Case("walk-notimp", W, walk_world(rcode(dns.rcode.NOTIMP)), ("NOTIMP",)),
    Case("walk-nxdomain", W, walk_world(lambda q, t: nxdomain(q, "example.test.")),
         ("does not exist", "NXDOMAIN")),
    Case("walk-nodata", W, walk_world(lambda q, t: nodata(q, "example.test.")),
         ("exists but has no A or AAAA record", "NODATA")),
    Case("walk-root-never-answers", W, walk_world(authoritative, root=never),
         ("did not answer within 0.3 s", "a.root.test")),
    Case("walk-authoritative-answers-after-the-timeout", W, walk_world(slow),
         ("did not answer within 0.3 s",)),
    Case("walk-glueless-delegation-works", W, glueless_then_answer, **OK),
    Case("walk-answer", W, walk_world(authoritative), **OK),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_dns_corpus(case: Case, tmp_path: Path) -> None:
    world = DnsWorld()
    case.build(world)
    with RawServer(ok_reply, host=HTTP_ADDRESS) as http, world:
        url = f"http://{case.host}:{http.port}/"
        common = ["--max-time", MAX_TIME, "--dns-timeout", case.dns_timeout,
                  "--dns-views", case.view]
        if case.view == R:
            address = next(iter(world.servers))
            args = [url, "--resolver", f"{address}:{world.port}", *common]
        else:
            args = [url, "--root-hints", str(world.root_hints(tmp_path)), "--dns-port",
                    str(world.port), *common]
        out = run_cli(args)
    assert not world.errors, world.errors
    check(out, step=case.step, exit_code=case.exit_code, says=case.says)
    if case.after is not None:
        case.after(out, world)
