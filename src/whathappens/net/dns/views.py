"""The three views of a name: the system's, the recursive resolver's, the walk from the root.

All views run side by side, each a span of its own. Which answer the connection uses follows
what a browser would do — the system's (getaddrinfo) — unless the user pointed us elsewhere:
``--resolve`` (no DNS at all), then ``--resolver``, then ``--root-hints``. A view that fails
is reported in its span; only the failure of the view in use stops the journey.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from whathappens.contract.facts import (
    DnsFacts,
    DnsHopFacts,
    DnsQueryFacts,
    DnsResolverFacts,
    DnsSystemFacts,
    DnsWalkFacts,
    DnsWalkQuestionFacts,
)
from whathappens.errors import DnsError
from whathappens.journey import Journey, Span
from whathappens.net import budget
from whathappens.net.dns.hints import NameServer, builtin_root_servers, load_root_hints
from whathappens.net.dns.walk import (
    MAX_CNAME_CHAIN,
    MAX_DEPTH,
    MAX_NESTED,
    MAX_QUERIES,
    STRUCTURAL,
    Hop,
    Walk,
    WalkBudget,
    WalkLimits,
    WalkResult,
    rcode_words,
)
from whathappens.net.dns.wire import RecordBudget, WireError, WireResult, query_tcp, query_udp

if TYPE_CHECKING:
    import dns.message

EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: avoids IP fragmentation
# Addresses handed to the connection: a name with thousands of A records (a 64 KiB answer
# holds ~4,000) would otherwise make the TCP step try every one of them.
MAX_ADDRESSES = 128


@dataclass
class DnsOptions:
    resolver: tuple[str, int] | None = None        # --resolver IP[:PORT]
    root_hints: str | None = None                  # --root-hints FILE
    dns_port: int = 53                             # port every walk server listens on
    query_timeout: float = 2.0                     # one query, seconds
    view_timeout: float = 6.0                      # one whole view, seconds
    views: frozenset[str] = frozenset({"system", "resolver", "walk"})
    hosts_file: str = "/etc/hosts"
    resolv_conf: str = "/etc/resolv.conf"
    # Vets each name server the walk would query (whathappens.guard): a reason skips it.
    address_policy: Callable[[str], str | None] | None = None
    # The walk's limits (see walk.py): queries of one walk view, its questions and nested
    # walks together (--dns-max-queries); glueless name servers resolved per referral
    # (--dns-max-nested, against NXNS-style amplification, CVE-2020-12662); how deep nested
    # walks may go; aliases followed for one name.
    max_queries: int = MAX_QUERIES
    max_nested: int = MAX_NESTED
    max_nested_depth: int = MAX_DEPTH
    max_cname_chain: int = MAX_CNAME_CHAIN

    def walk_limits(self) -> WalkLimits:
        return WalkLimits(max_queries=self.max_queries, max_nested=self.max_nested,
                          max_depth=self.max_nested_depth,
                          max_cname_chain=self.max_cname_chain)


@dataclass
class Resolution:
    """The addresses the connection will use, and which view gave them."""

    view: str
    ipv6: list[str] = field(default_factory=list)
    ipv4: list[str] = field(default_factory=list)
    https_records: list[str] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return self.ipv6 + self.ipv4


def _split(addresses: list[str]) -> tuple[list[str], list[str]]:
    v6 = [a for a in addresses if ":" in a]
    v4 = [a for a in addresses if ":" not in a]
    return list(dict.fromkeys(v6)), list(dict.fromkeys(v4))


def _capped(journey: Journey, view: str, v6: list[str], v4: list[str]
            ) -> tuple[list[str], list[str]]:
    """At most MAX_ADDRESSES addresses, IPv6 and IPv4 in proportion; a finding says so."""
    total = len(v6) + len(v4)
    if total <= MAX_ADDRESSES:
        return v6, v4
    keep6 = min(len(v6), MAX_ADDRESSES // 2 if v4 else MAX_ADDRESSES)
    keep4 = min(len(v4), MAX_ADDRESSES - keep6)
    journey.note("warning", "dns", f"the {view} view gave {total:,} addresses; the connection "
                 f"uses the first {keep6 + keep4} of them")
    return v6[:keep6], v4[:keep4]


# ------------------------------------------------------------------ system view
def hosts_file_entries(host: str, path: str) -> list[str]:
    """Addresses the hosts file gives ``host`` (what getaddrinfo will find first)."""
    found: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and host.lower().rstrip(".") in (p.lower() for p in parts[1:]):
            found.append(parts[0])
    return found


async def system_view(journey: Journey, parent: Span[DnsFacts], host: str, port: int,
                      opts: DnsOptions) -> Resolution:
    hosts = hosts_file_entries(host, opts.hosts_file)
    with journey.timed("dns.system", "dns", "system resolver (getaddrinfo)", "application",
                       DnsSystemFacts(hosts_file=opts.hosts_file, hosts_file_hit=bool(hosts),
                                      hosts_file_addresses=hosts), parent=parent) as span:
        try:
            call = await asyncio.wait_for(getaddrinfo(host, port, journey.clock.now),
                                          opts.view_timeout)
        except TimeoutError:
            raise DnsError("dns.timeout", f"the system resolver did not answer for {host} "
                           f"within {opts.view_timeout:g} s") from None
        # The span is the call itself, timed on its thread: not the thread's start-up, nor
        # the event loop noticing the result.
        span.start_ns, span.end_ns = call.start_ns, call.end_ns
        if isinstance(call.error, socket.gaierror):
            raise _gai_error(host, call.error)
        if call.error is not None:
            raise DnsError("dns.system_failed", f"getaddrinfo failed for {host}: {call.error}")
        addresses = [str(info[4][0]) for info in call.infos]
        v6, v4 = _split(addresses)
        span.facts.addresses = v6 + v4
        span.facts.source = "hosts file" if hosts else "DNS via the system's resolver"
        return Resolution("system", v6, v4)


AddrInfo = list[tuple[Any, Any, int, str, tuple[Any, ...]]]


@dataclass
class GaiCall:
    infos: AddrInfo
    error: BaseException | None
    start_ns: int
    end_ns: int


def getaddrinfo(host: str, port: int, now: Callable[[], int]) -> asyncio.Future[GaiCall]:
    """getaddrinfo() on a daemon thread of its own, timed on that thread.

    Not the loop's default executor: creating that pool inside the DNS step would be counted
    as DNS time, and at exit asyncio waits for its threads, so a resolver that never answers
    would hold the process. The host goes in as ASCII bytes (it is already an A-label):
    a str would make CPython load its IDNA codec first, inside the measured call.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[GaiCall] = loop.create_future()

    def settle(call: GaiCall) -> None:
        if not future.done():
            future.set_result(call)

    def work() -> None:
        infos: AddrInfo = []
        error: BaseException | None = None
        start = now()
        try:
            infos = socket.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            error = exc
        call = GaiCall(infos, error, start, now())
        with contextlib.suppress(RuntimeError):  # the loop may be gone after a timeout
            loop.call_soon_threadsafe(settle, call)

    threading.Thread(target=work, name="getaddrinfo", daemon=True).start()
    return future


def _gai_error(host: str, exc: socket.gaierror) -> DnsError:
    if exc.errno == socket.EAI_NONAME:
        return DnsError("dns.not_found", f"the system resolver found no address for {host}: "
                        "the name does not exist, or has no A/AAAA record",
                        detail=str(exc))
    if exc.errno == socket.EAI_AGAIN:
        return DnsError("dns.temporary_failure", f"the system resolver could not get an "
                        f"answer for {host} right now (its DNS server failed or timed out)",
                        detail=str(exc))
    return DnsError("dns.system_failed", f"getaddrinfo failed for {host}: {exc.strerror}",
                    detail=str(exc))


# ---------------------------------------------------------------- resolver view
def configured_resolver(path: str) -> tuple[str, int] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f.read(1 << 16).splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1].split("%")[0], 53
    except OSError:
        pass
    return None


def _make_query(name: str, qtype: str, *, recursion: bool) -> dns.message.Message:
    import dns.flags
    import dns.message

    q = dns.message.make_query(name, qtype, use_edns=0, payload=EDNS_PAYLOAD)
    if not recursion:
        q.flags &= ~dns.flags.RD
    return q


async def _ask(q: dns.message.Message, address: str, port: int,
               timeout: float, records: RecordBudget) -> tuple[WireResult, bool]:
    """UDP first, then TCP when the answer is truncated; returns (result, retried_over_tcp).

    A failure over TCP after a truncated UDP answer says both: the server did answer, and
    then failed us over TCP (RFC 7766 §5: a server must serve TCP too).
    """
    import dns.flags

    spend = budget.current()
    spend.count("dns.query")
    res = await query_udp(q, address, port, timeout, records)
    if not res.response.flags & dns.flags.TC:
        return res, False
    spend.count("dns.query")
    before = "answered over UDP with a truncated reply (TC bit)"
    try:
        return await query_tcp(q, address, port, timeout, records), True
    except TimeoutError:
        raise WireError("dns.tcp_timeout", f"{before}, but did not answer the same question "
                        f"over TCP within {timeout:g} s") from None
    except WireError as exc:
        words = exc.words
        if exc.code == "dns.tcp_refused":
            words += ", though the whole answer can only come over TCP (RFC 7766 §5)"
        raise WireError(exc.code, f"{before}, but then {words}") from None


@dataclass
class _Answer:
    """What a resolver's reply said, and why it cannot be used (``problem``), if so."""

    rcode: str
    records: list[str]
    ttl: int | None
    cname_chain: list[str]
    recursion_available: bool
    authenticated_data: bool
    answer: list[str]
    problem: tuple[str, str] | None


@dataclass
class _Asked:
    """One question to the resolver: its answer, or the error that took its place."""

    qtype: str
    answer: _Answer | None = None
    error: DnsError | None = None


def _answer_facts(msg: dns.message.Message, name: str, qtype: str,
                  max_chain: int = MAX_CNAME_CHAIN) -> _Answer:
    """What a recursive resolver's reply says, and ``problem`` (code, words) when it is not
    an answer we can use: a CNAME loop or an over-long chain, a reply truncated even over
    TCP, a referral or a lame empty reply from a server that does not recurse, records for
    other names only, an error code."""
    import dns.flags
    import dns.rcode
    import dns.rdatatype

    rdtype = dns.rdatatype.from_text(qtype)
    aliases: dict[str, tuple[str, int]] = {}
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and len(rrset):
            aliases.setdefault(rrset.name.to_text().lower(),
                               (rrset[0].target.to_text().lower(), rrset.ttl))
    chain: list[str] = []
    names = [name]
    cur = name
    problem: tuple[str, str] | None = None
    while rdtype != dns.rdatatype.CNAME and cur in aliases:
        target, ttl = aliases[cur]
        chain.append(f"{cur} -> {target} (TTL {ttl})")
        if target in names:
            shown = [*names, target]
            shown = shown if len(shown) <= 6 else [*shown[:3], "…", *shown[-2:]]
            problem = ("dns.cname_loop", f"answered with aliases that loop: "
                       f"{' → '.join(shown)} (a CNAME loop: {target} is already in the "
                       "chain), so there is no address at its end")
            break
        names.append(target)
        cur = target
        if len(chain) > max_chain:
            problem = ("dns.cname_chain_too_long", f"answered with a chain of aliases (CNAME "
                       f"records) from {name} longer than {max_chain}, the most we follow "
                       f"(as BIND's max-query-restarts): it was still going at {target}")
            break
    records: list[str] = []
    ttl_final: int | None = None
    if problem is None:
        for rrset in msg.answer:
            if rrset.rdtype == rdtype and rrset.name.to_text().lower() == cur:
                records = [r.to_text() for r in rrset]
                ttl_final = rrset.ttl
    rcode = msg.rcode()
    if problem is None and msg.flags & dns.flags.TC:
        # Only a TCP reply gets here (a truncated UDP one is asked again over TCP), and over
        # TCP a message has room for 65,535 bytes: nothing whole is left (RFC 7766 §8).
        problem = ("dns.truncated", "marked its answer truncated (TC bit) even over TCP, "
                   "where nothing needs cutting: the answer cannot be used")
    elif problem is None and rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        problem = rcode_words(dns.rcode.to_text(rcode))
    elif problem is None and rcode == dns.rcode.NOERROR and not records:
        wanted = set(names)
        others = sorted({r.name.to_text() for r in msg.answer
                         if r.rdtype != dns.rdatatype.CNAME or
                         r.name.to_text().lower() not in wanted})
        ns = [r for r in msg.authority if r.rdtype == dns.rdatatype.NS]
        ra = bool(msg.flags & dns.flags.RA)
        aa = bool(msg.flags & dns.flags.AA)
        if others and not chain:
            listed = ", ".join(others[:3]) + (" …" if len(others) > 3 else "")
            problem = ("dns.unrelated_answer", f"answered with records for other names or "
                       f"types ({listed}), and no {qtype} record of {name} among them")
        elif ns and not aa and not ra:
            problem = ("dns.not_recursive", f"answered with a referral to the name servers "
                       f"of {ns[0].name.to_text()} instead of an answer: it does not resolve "
                       "names for others (recursion not available, RA bit clear), so it is "
                       "not a recursive resolver")
        elif not aa and not ra and not any(r.rdtype == dns.rdatatype.SOA
                                           for r in msg.authority):
            problem = ("dns.lame", "answered with an empty reply that carries no authority "
                       "(AA bit clear), no recursion (RA bit clear) and no SOA record: a lame "
                       "answer, which does not say whether the name has such a record")
    return _Answer(
        rcode=dns.rcode.to_text(rcode),
        records=records,
        ttl=ttl_final,
        cname_chain=chain,
        recursion_available=bool(msg.flags & dns.flags.RA),
        authenticated_data=bool(msg.flags & dns.flags.AD),
        answer=[line for r in msg.answer for line in r.to_text().splitlines()],
        problem=problem,
    )


async def resolver_view(journey: Journey, parent: Span[DnsFacts], host: str,
                        resolver: tuple[str, int] | None, opts: DnsOptions) -> Resolution:
    name = host.lower().rstrip(".") + "."
    address, port = resolver if resolver else ("", 53)
    actor = f"recursive resolver {address}:{port}" if resolver else "recursive resolver"
    with journey.timed("dns.resolver", "dns", actor, "application",
                       DnsResolverFacts(resolver=f"{address}:{port}" if resolver else None),
                       parent=parent) as span:
        if resolver is None:
            raise DnsError("dns.no_resolver", f"no resolver configured in {opts.resolv_conf}"
                           " (give one with --resolver IP[:PORT])")
        records = RecordBudget()

        async def one(qtype: str, label: str) -> _Asked:
            q = _make_query(name, qtype, recursion=True)
            with journey.timed("dns.query", "dns", actor, "application",
                               DnsQueryFacts(qname=name, qtype=qtype, purpose=label),
                               parent=span) as qs:
                try:
                    res, via_tcp = await _ask(q, address, port, opts.query_timeout, records)
                except (TimeoutError, OSError, ValueError) as exc:
                    err = _query_error(exc, actor, opts.query_timeout)
                    qs.fail(err)
                    return _Asked(qtype, error=err)
                ans = _answer_facts(res.response, name, qtype, opts.max_cname_chain)
                f = qs.facts
                f.rcode, f.records, f.ttl, f.cname_chain = (ans.rcode, ans.records, ans.ttl,
                                                            ans.cname_chain)
                f.recursion_available, f.authenticated_data = (ans.recursion_available,
                                                               ans.authenticated_data)
                f.answer, f.transport, f.tcp_retry = ans.answer, res.transport, via_tcp
                f.bytes_sent, f.bytes_received = res.bytes_sent, res.bytes_received
                f.local = res.local
                if ans.problem is not None:
                    code, words = ans.problem
                    err = DnsError(code, f"the {actor} could not give an address for {host}: "
                                   f"it {words}")
                    qs.fail(err)
                    return _Asked(qtype, ans, err)
                return _Asked(qtype, ans)

        results = await asyncio.gather(one("A", "IPv4 address"), one("AAAA", "IPv6 address"),
                                       one("HTTPS", "HTTPS/SVCB service binding (type 65)"))
        by_type = {r.qtype: r for r in results}
        # Ask again: a resolver that cached the first answer replies faster, TTL counting down.
        repeat: _Asked | None = None
        if by_type["A"].error is None:
            repeat = await one("A", "the same question again, to see the resolver's cache")
        span.facts.repeat_ttl = repeat.answer.ttl if repeat and repeat.answer else None
        first = by_type["A"].answer
        span.facts.first_ttl = first.ttl if first else None
        return _resolver_outcome(journey, span, host, by_type)


def _resolver_outcome(journey: Journey, span: Span[DnsResolverFacts], host: str,
                      by_type: dict[str, _Asked]) -> Resolution:
    """The addresses the resolver's answers give, or the error that says why there are none."""
    a, aaaa = by_type["A"], by_type["AAAA"]
    if a.error is not None and aaaa.error is not None:
        raise a.error
    rcodes = {r.answer.rcode for r in (a, aaaa) if r.error is None and r.answer}
    if "NXDOMAIN" in rcodes:
        raise DnsError("dns.nxdomain", f"{host} does not exist: the resolver answered "
                       "NXDOMAIN (no such domain)")
    addresses = [rec for r in (a, aaaa) if r.answer for rec in r.answer.records]
    if not addresses:
        failed = next((r.error for r in (a, aaaa) if r.error is not None), None)
        if failed is not None:
            raise failed  # a question left unanswered: "no record" cannot be concluded
        raise DnsError("dns.nodata", f"{host} exists but has no A or AAAA record "
                       "(NODATA)")
    v6, v4 = _capped(journey, "resolver", *_split(addresses))
    span.facts.addresses = v6 + v4
    span.facts.cname_chain = ((a.answer.cname_chain if a.answer else None)
                              or (aaaa.answer.cname_chain if aaaa.answer else None))
    https = by_type["HTTPS"].answer
    span.facts.https_records = list(https.records) if https else []
    return Resolution("resolver", v6, v4, list(span.facts.https_records))


def _query_error(exc: BaseException, actor: str, timeout: float) -> DnsError:
    if isinstance(exc, TimeoutError):
        return DnsError("dns.timeout", f"the {actor} did not answer within {timeout:g} s")
    if isinstance(exc, WireError):
        if exc.code == "dns.refused_port":
            # The ICMP "port unreachable" the host sent back (RFC 1122 §4.1.3.1).
            return DnsError(exc.code, f"nothing answers DNS at the {actor}: the host said "
                            "no program listens on that port. Is a resolver running there?")
        if exc.code in ("dns.malformed", "dns.wrong_id", "dns.wrong_question",
                        "dns.not_a_response"):
            return DnsError(exc.code, f"the {actor} answered, but with nothing usable: it "
                            f"{exc.words}")
        return DnsError(exc.code, f"the {actor} {exc.words}")
    # Not expected (the wire layer says what happened in words); still no library text.
    return DnsError("dns.query_failed", f"asking the {actor} failed ({type(exc).__name__})",
                    detail=str(exc))


# -------------------------------------------------------------------- walk view
async def drive_walk(journey: Journey, parent: Span[DnsWalkQuestionFacts], walk: Walk, port: int,
                     timeout: float, policy: Callable[[str], str | None] | None = None,
                     records: RecordBudget | None = None) -> WalkResult:
    """Run a planner's queries one after the other; each hop becomes a span.

    Every query sent counts against the journey's DNS budget (``--max-events dns.query``);
    the planner itself checks --max-time, CPU and memory in its loops, and each read of a
    reply paces the event loop (wire.py).
    """
    spend = budget.current()
    while (action := walk.next_action()) is not None:
        q = _make_query(action.qname, action.qtype, recursion=False)
        actor = f"{action.server.rstrip('.') or '.'} ({action.address})"
        span = journey.span("dns.hop", "dns", actor, "application", DnsHopFacts(),
                            parent=parent)
        hop: Hop
        refused = policy(action.address) if policy is not None else None
        if refused is not None:
            # A referral's glue is whatever the zone's owner wrote: in public mode it must
            # not steer our queries into a private network.
            # Code dns.servfail, as a resolver would answer us (the serve tests rely on it).
            hop = walk.handle_error(action, f"not queried: {refused}", "dns.servfail")
        else:
            spend.count("dns.query")
            try:
                if action.tcp:
                    res = await query_tcp(q, action.address, port, timeout, records)
                else:
                    res = await query_udp(q, action.address, port, timeout, records)
            except TimeoutError:
                if action.tcp:
                    hop = walk.handle_error(action, "answered over UDP with a truncated reply "
                                            "(TC bit), but did not answer the same question "
                                            f"over TCP within {timeout:g} s", "dns.tcp_timeout")
                else:
                    hop = walk.handle_timeout(action, timeout)
            except WireError as exc:
                words = exc.words
                if action.tcp and exc.code == "dns.tcp_refused":
                    words = ("answered over UDP with a truncated reply (TC bit), but then "
                             f"{words}, though the whole answer can only come over TCP "
                             "(RFC 7766 §5)")
                elif action.tcp:
                    words = f"answered over UDP with a truncated reply (TC bit), but then {words}"
                hop = walk.handle_error(action, words, exc.code)
            except (OSError, ValueError) as exc:  # not expected: wire.py words its failures
                hop = walk.handle_error(action, f"could not be asked ({type(exc).__name__})")
            else:
                hop = walk.handle_response(action, res.response)
                hop.bytes_sent, hop.bytes_received = res.bytes_sent, res.bytes_received
        journey.end(span)
        hop.start_ns, hop.end_ns = span.start_ns, span.end_ns or span.start_ns
        span.facts = hop.facts()
        journey.ended(span)  # complete now: a live listener may show the hop
    assert walk.result is not None
    return walk.result


async def walk_view(journey: Journey, parent: Span[DnsFacts], host: str,
                    opts: DnsOptions) -> Resolution:
    source = opts.root_hints or "built-in root hints (the 13 real root servers)"
    with journey.timed("dns.walk", "dns", "iterative walk from the root", "application",
                       DnsWalkFacts(root_hints=source, port=opts.dns_port),
                       parent=parent) as span:
        try:
            roots = load_root_hints(opts.root_hints) if opts.root_hints \
                else builtin_root_servers()
        except OSError as exc:
            raise DnsError("dns.root_hints", f"cannot read root hints {opts.root_hints}: "
                           f"{exc.strerror or 'unreadable'}") from None
        except ValueError as exc:
            raise DnsError("dns.root_hints", f"cannot use root hints {opts.root_hints}: "
                           f"{exc}") from None
        name = host.lower().rstrip(".") + "."
        # One budget for the whole view: A, AAAA, HTTPS and every nested walk share the
        # query cap, so a loop costs at most --dns-max-queries whatever it loops through.
        shared = WalkBudget(opts.walk_limits())
        records = RecordBudget()
        a_span = journey.span("dns.walk.question", "dns", "you", "application",
                              DnsWalkQuestionFacts(qname=name, qtype="A"), parent=span)
        a = await drive_walk(journey, a_span, Walk(name, "A", roots, budget=shared),
                             opts.dns_port, opts.query_timeout, opts.address_policy, records)
        journey.end(a_span)
        _walk_facts(a_span.facts, a)
        if a.outcome == "nxdomain":
            raise DnsError("dns.nxdomain", f"{host} does not exist: {a.message}")
        results = [a]
        https: WalkResult | None = None
        if a.code not in STRUCTURAL:
            # The other types go straight to the zone's authoritative servers the walk
            # found, as a resolver with that delegation cached would do. After a loop or a
            # limit they are not asked: they would only meet it again.
            zone_servers = [NameServer(s.name, list(s.addresses))
                            for s in a.authority_servers]

            async def more(qtype: str) -> WalkResult:
                sub = journey.span("dns.walk.question", "dns", "you", "application",
                                   DnsWalkQuestionFacts(qname=a.final_name, qtype=qtype),
                                   parent=span)
                w = Walk(a.final_name, qtype, roots, servers=zone_servers or roots,
                         start_zone=a.authority_zone if zone_servers else ".", budget=shared)
                r = await drive_walk(journey, sub, w, opts.dns_port, opts.query_timeout,
                                     opts.address_policy, records)
                journey.end(sub)
                _walk_facts(sub.facts, r)
                return r

            aaaa, https = await asyncio.gather(more("AAAA"), more("HTTPS"))
            results.append(aaaa)
        addresses = [rec for r in results if r.outcome == "answer" for rec in r.records]
        span.facts.addresses, span.facts.cname_chain = addresses, a.cname_chain
        span.facts.https_records = (https.records if https and https.outcome == "answer"
                                    else [])
        span.facts.queries = shared.sent
        if not addresses:
            failed = next((r for r in results if r.outcome == "servfail"), None)
            if failed is not None:
                raise DnsError(failed.code or "dns.servfail", f"the walk could not resolve "
                               f"{host}: {failed.message}")
            raise DnsError("dns.nodata", f"{host} exists but has no A or AAAA record "
                           "(NODATA)")
        v6, v4 = _capped(journey, "walk", *_split(addresses))
        return Resolution("walk", v6, v4, list(span.facts.https_records))


def _walk_facts(f: DnsWalkQuestionFacts, r: WalkResult) -> None:
    f.outcome, f.final_name, f.records, f.ttl = r.outcome, r.final_name, r.records, r.ttl
    f.cname_chain, f.message, f.code = r.cname_chain, r.message, r.code


# --------------------------------------------------------------------- together
def chosen_view(opts: DnsOptions) -> str:
    if opts.resolver is not None:
        return "resolver"
    if opts.root_hints is not None:
        return "walk"
    return "system"


def needs_dnspython(opts: DnsOptions) -> bool:
    """Only the system view does without it."""
    return bool(opts.views - {"system"} or opts.resolver or opts.root_hints)


def prepare() -> None:
    """Load dnspython before the DNS step's clock starts.

    Importing it costs tens of milliseconds; inside the step that cost would read as DNS time.
    The record types are imported too: dnspython loads each one the first time it parses it.
    """
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype
    import dns.rdtypes.ANY.CNAME
    import dns.rdtypes.ANY.NS
    import dns.rdtypes.ANY.SOA
    import dns.rdtypes.IN.A
    import dns.rdtypes.IN.AAAA
    import dns.rdtypes.IN.HTTPS
    import dns.rrset  # noqa: F401


async def _bounded(view: str, coro: Coroutine[Any, Any, Resolution],
                   timeout: float) -> Resolution:
    try:
        return await asyncio.wait_for(coro, timeout)
    except TimeoutError:
        raise DnsError("dns.timeout", f"the {view} view did not finish within "
                       f"{timeout:g} s and was stopped") from None


async def resolve(journey: Journey, parent: Span[DnsFacts], host: str, port: int,
                  opts: DnsOptions) -> Resolution:
    """Run every enabled view; return the chosen view's answer or raise its DnsError.

    Views run side by side, each bounded by ``view_timeout``. When the view in use fails,
    the others are stopped at once: their answers could no longer change the outcome.
    """
    use = chosen_view(opts)
    views = set(opts.views) | {use}
    parent.facts.view_used = use
    coros: dict[str, Coroutine[Any, Any, Resolution]] = {}
    if "system" in views:
        coros["system"] = system_view(journey, parent, host, port, opts)
    if "resolver" in views:
        res = opts.resolver or configured_resolver(opts.resolv_conf)
        coros["resolver"] = resolver_view(journey, parent, host, res, opts)
    if "walk" in views:
        coros["walk"] = walk_view(journey, parent, host, opts)
    tasks = {v: asyncio.create_task(_bounded(v, c, opts.view_timeout)) for v, c in coros.items()}
    try:
        await asyncio.wait([tasks[use]])
        if tasks[use].exception() is None:
            await asyncio.wait(tasks.values())
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    outcome: dict[str, Resolution | BaseException] = {}
    for view, task in tasks.items():
        if task.cancelled():
            stopped = DnsError("dns.cancelled", f"the {view} view was stopped: the {use} "
                               "view, the one in use, had already failed")
            _mark_stopped(journey, parent, view, stopped)
            outcome[view] = stopped
        else:
            outcome[view] = task.exception() or task.result()
    for view, result in outcome.items():
        if isinstance(result, BaseException) and not isinstance(result, DnsError):
            raise result
        if view != use and isinstance(result, DnsError):
            journey.note("info", "dns", f"the {view} view failed ({result.message}); "
                         f"the connection uses the {use} view")
    chosen = outcome[use]
    if isinstance(chosen, BaseException):
        raise chosen
    others = {v: r for v, r in outcome.items() if isinstance(r, Resolution) and v != use}
    for view, r in others.items():
        if set(r.addresses) != set(chosen.addresses):
            journey.note("warning", "dns", f"the {view} view gave other addresses "
                         f"({', '.join(r.addresses) or 'none'}) than the {use} view "
                         f"({', '.join(chosen.addresses)})")
    if not chosen.https_records:
        for r in others.values():
            chosen.https_records = chosen.https_records or r.https_records
    parent.facts.addresses = chosen.addresses
    parent.facts.https_records = chosen.https_records
    return chosen


def _mark_stopped(journey: Journey, parent: Span[DnsFacts], view: str, err: DnsError) -> None:
    """A view cut short: it says why; what it had under way ends within it."""
    for span in parent.children:
        if span.name != f"dns.{view}":
            continue
        if span.error is None:
            span.fail(err)
        journey.close_open(span)
