"""The iterative walk from the root, as a planner with no I/O (like ``dig +trace``).

Theory of operation
-------------------
A ``Walk`` answers one question (name, type) the way a recursive resolver does when its cache
is empty (RFC 1034 §5.3.3): ask a server of the closest zone we know, starting at the root;
a *referral* (NS records in the authority section, RFC 1034 §4.3.2 step 3b) moves us one zone
down; an *answer* ends the walk, unless it is a CNAME whose target the server could not answer
itself, in which case the walk restarts at the root for the target (RFC 1034 §3.6.2).

The planner never touches the network or the clock. A driver loops::

    while (action := walk.next_action()) is not None:
        try:
            result = send(action)             # UDP, or TCP when action.tcp
        except TimeoutError:
            walk.handle_timeout(action)
        else:
            walk.handle_response(action, result.response)

and ``walk.result`` says how it ended. Every response is classified into a ``HopKind`` that
the report shows. When a referral names servers without glue (their addresses live in another
zone), the walk resolves those names first with a nested walk *from the root hints*; its
queries come out of ``next_action`` like any other, marked with a greater ``depth``.

Limits, as resolvers have them
------------------------------
A zone's owner writes its referrals, so a hostile or broken one can make a walker work for
nothing: NXNSAttack (CVE-2020-12662 in Unbound, CVE-2020-8616 in BIND) is a referral naming
many glueless servers, each costing a nested resolution. The walk therefore has, in
``WalkLimits``, a cap on the queries of a whole walk (every question of the view and their
nested walks: BIND's ``max-recursion-queries``, 32 since 9.18.29), on the glueless names
resolved per referral (the NXNS paper's *MaxFetch*), on the depth of nested walks, and on the
length of a CNAME chain (BIND's ``max-query-restarts``, 11). Each ends the walk with a code
and a message that gives the numbers.

The planner's own work stays small whatever a referral holds: nested walks start at the root
hints, never at the (glueless) servers of the zone being asked; glueless names are examined
once each, by a cursor; a name that lies inside a zone whose servers are still being looked
up (that zone itself: missing glue; or an enclosing walk's zone: a delegation cycle) is
refused without a query. Every loop calls ``budget.check()`` (--max-time, CPU, memory).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from whathappens.contract.facts import DnsHopFacts
from whathappens.net import budget
from whathappens.net.dns.hints import NameServer

if TYPE_CHECKING:
    import dns.message
    import dns.rrset

MAX_QUERIES = 64          # one walk view: every question and its nested walks (a loop guard)
MAX_NESTED = 4            # glueless NS names resolved per referral (NXNS "MaxFetch")
MAX_DEPTH = 3             # nested walks inside nested walks
MAX_CNAME_CHAIN = 11      # aliases followed for one name: BIND 9.18.29's max-query-restarts
SERVERS_PER_ZONE = 4      # addresses tried before the zone is given up
PROBLEMS_KEPT = 8         # what servers did, remembered per zone for the message

# Failures that end a walk and every walk above it: the whole question is hopeless, or we
# must stop spending on it.
STOP_ALL = frozenset({"dns.query_limit", "dns.record_limit"})
# Failures of the name itself (or of our budget for it): the view's other questions would
# meet them again, so they are not asked.
STRUCTURAL = frozenset({"dns.query_limit", "dns.record_limit", "dns.nested_limit",
                        "dns.delegation_cycle",
                        "dns.missing_glue", "dns.cname_loop", "dns.cname_chain_too_long"})


class HopKind(StrEnum):
    REFERRAL = "referral"
    ANSWER = "answer"
    CNAME = "cname"            # the answer is an alias; the walk restarts for the target
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    LAME = "lame"              # a useless reply: not authoritative, an upward referral…
    TRUNCATED = "truncated"    # TC bit: ask the same server again over TCP
    TIMEOUT = "timeout"
    ERROR = "error"            # the reply could not be used (garbage, connection reset)


@dataclass(frozen=True)
class QueryAction:
    server: str                # name server's name ("a.root-servers.net.")
    address: str
    zone: str                  # the zone we believe this server serves
    qname: str
    qtype: str
    tcp: bool
    depth: int                 # 0 for the main walk, 1+ for nested walks (glueless NS)
    purpose: str               # what the query is for, in words


@dataclass
class Hop:
    """One classified exchange, for the report."""

    action: QueryAction
    kind: HopKind
    rcode: str = ""
    authoritative: bool = False
    referral_zone: str | None = None
    referral_ns: list[str] = field(default_factory=list)
    glue: dict[str, list[str]] = field(default_factory=dict)
    glueless: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)      # rrsets as presentation text
    cname_target: str | None = None
    note: str = ""
    # filled in by the driver, which owns the clock and the socket
    start_ns: int = 0
    end_ns: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def facts(self) -> DnsHopFacts:
        a = self.action
        return DnsHopFacts(
            server=a.server,
            address=a.address,
            zone=a.zone,
            qname=a.qname,
            qtype=a.qtype,
            transport="tcp" if a.tcp else "udp",
            depth=a.depth,
            purpose=a.purpose,
            kind=self.kind.value,
            rcode=self.rcode,
            authoritative=self.authoritative,
            # A peer decides how long these lists are; the view's record budget
            # (wire.MAX_RECORDS) bounds them all together.
            referral_zone=self.referral_zone,
            referral_ns=self.referral_ns,
            glue=self.glue,
            glueless=self.glueless,
            answers=self.answers,
            cname_target=self.cname_target,
            note=self.note,
        )


@dataclass
class WalkResult:
    outcome: str                       # "answer" | "nxdomain" | "nodata" | "servfail"
    qname: str                         # the question as asked
    final_name: str                    # after following CNAMEs
    qtype: str
    cname_chain: list[str] = field(default_factory=list)   # "a. -> b."
    records: list[str] = field(default_factory=list)       # rdata of the final type
    ttl: int | None = None
    authority_servers: list[NameServer] = field(default_factory=list)
    authority_zone: str = "."
    message: str = ""
    code: str = ""                     # why a failed walk failed ("dns.delegation_cycle")


@dataclass(frozen=True)
class WalkLimits:
    max_queries: int = MAX_QUERIES
    max_nested: int = MAX_NESTED
    max_depth: int = MAX_DEPTH
    max_cname_chain: int = MAX_CNAME_CHAIN


class WalkBudget:
    """What the walks of one view share: the limits and the queries sent so far."""

    def __init__(self, limits: WalkLimits | None = None) -> None:
        self.limits = limits or WalkLimits()
        self.sent = 0
        self.nested = 0          # nested walks started


class Walk:
    def __init__(
        self,
        qname: str,
        qtype: str,
        roots: list[NameServer],
        *,
        servers: list[NameServer] | None = None,
        start_zone: str = ".",
        budget: WalkBudget | None = None,
        limits: WalkLimits | None = None,
        parent: Walk | None = None,
    ) -> None:
        self.qname = _absolute(qname)
        self.qtype = qtype.upper()
        self._parent = parent
        self.depth: int = 0 if parent is None else parent.depth + 1
        # Where nested walks start: always the root hints, never a zone's (glueless) servers.
        self._roots = roots
        self._budget: WalkBudget = budget or (parent._budget if parent else WalkBudget(limits))
        self._name = self.qname                  # current target (changes on CNAME)
        self._cnames: list[str] = []
        self._seen_names = {self.qname}
        self._set_zone(start_zone, servers if servers is not None else roots)
        self._sub: Walk | None = None
        self._sub_for: str | None = None
        self._want_tcp = False
        self._last: QueryAction | None = None
        self.hops: list[Hop] = []
        self.result: WalkResult | None = None

    @property
    def limits(self) -> WalkLimits:
        return self._budget.limits

    @property
    def queries_sent(self) -> int:
        return self._budget.sent

    # ----------------------------------------------------------------- planning
    def _set_zone(self, zone: str, servers: list[NameServer]) -> None:
        self._zone = zone
        self._servers = [NameServer(s.name, list(s.addresses)) for s in servers]
        self._tried: set[tuple[str, str]] = set()
        self._cursor = 0                 # next server examined for a glueless name
        self._nested_started = 0
        self._nested_limited = False     # glueless names left unexamined at the cap
        self._problems: list[str] = []   # what the zone's servers did, in words
        self._problem_codes: Counter[str] = Counter()

    def next_action(self) -> QueryAction | None:
        """The next query to send, or None when ``result`` is set."""
        pace = budget.current()
        while self.result is None:
            pace.check()  # a pure loop: --max-time, CPU and memory are checked here
            if self._sub is not None:
                action = self._sub.next_action()
                if action is not None:
                    return action
                self._absorb_sub()
                continue
            if self._budget.sent >= self.limits.max_queries:
                self._stop_for_queries()
                return None
            if self._want_tcp and self._last is not None:
                last = self._last
                self._want_tcp = False
                return self._issue(last.server, last.address, tcp=True)
            server = self._pick_server()
            if server is None:
                return None
            if isinstance(server, str):      # a glueless name: resolve it first
                self._sub_for = server
                self._sub = Walk(server, "A", self._roots, parent=self)
                self._budget.nested += 1
                continue
            name, address = server
            return self._issue(name, address, tcp=False)
        return None

    def _issue(self, server: str, address: str, *, tcp: bool) -> QueryAction:
        self._budget.sent += 1
        purpose = (f"find the address of name server {self.qname}" if self.depth
                   else f"{self.qtype} record of {self._name}")
        action = QueryAction(server, address, self._zone, self._name, self.qtype, tcp,
                             self.depth, purpose)
        self._last = action
        return action

    def _pick_server(self) -> tuple[str, str] | str | None:
        """A (name, address) not tried yet; else a glueless name to resolve; else give up.

        Work per call is linear in the zone's servers, and calls per zone are bounded
        (SERVERS_PER_ZONE addresses, ``max_nested`` glueless names): the cursor examines
        each glueless name once, however many the referral holds.
        """
        if len(self._tried) < SERVERS_PER_ZONE:
            for s in self._servers:
                for addr in s.addresses:
                    if ":" in addr:
                        continue  # IPv4 only for the walk: v6 reachability is not a given
                    if (s.name, addr) not in self._tried:
                        self._tried.add((s.name, addr))
                        return s.name, addr
            pace = budget.current()
            while self._cursor < len(self._servers):
                pace.check()
                s = self._servers[self._cursor]
                if s.addresses:
                    self._cursor += 1
                    continue
                if self._nested_started >= self.limits.max_nested:
                    self._nested_limited = True
                    break
                self._cursor += 1
                if self.depth >= self.limits.max_depth:
                    d = self.limits.max_depth
                    self._problem("dns.nested_limit", f"finding the address of name server "
                                  f"{s.name} would need a walk nested {self.depth + 1} deep, "
                                  f"over the limit of {d} (--dns-max-nested-depth {d})")
                    continue
                refused = self._unreachable(s.name)
                if refused is not None:
                    self._problem(*refused)
                    continue
                self._nested_started += 1
                return s.name
        self._give_up()
        return None

    def _unreachable(self, ns_name: str) -> tuple[str, str] | None:
        """Why resolving ``ns_name`` cannot work, before any query (or None).

        Its address can only come from the servers of a zone it lies in. If that is this
        zone, the referral had to give its address (glue, RFC 1034 §4.2.1); if it is the
        zone of a walk that is itself waiting for a server's address, resolving it would
        need what we are looking for: a delegation cycle.
        """
        chain: list[Walk] = []
        walk: Walk | None = self
        while walk is not None:
            chain.append(walk)
            if walk._zone != "." and _is_subdomain(ns_name, walk._zone):
                break
            walk = walk._parent
        else:
            return None
        if len(chain) == 1:
            return "dns.missing_glue", (f"name server {ns_name} is inside {self._zone} "
                                        "itself, and the referral gave no address for it "
                                        "(missing glue, RFC 1034 §4.2.1): it cannot be reached")
        # chain: self, its parent, …, the walk whose zone holds ns_name (outermost last)
        steps = [f"{w._zone} is served by {w._sub_for}" for w in reversed(chain[1:])]
        steps.append(f"{self._zone} by {ns_name}")
        cycle_zone = chain[-1]._zone
        return "dns.delegation_cycle", (
            f"a delegation cycle with no glue: {', '.join(steps)}, which is inside "
            f"{cycle_zone} again, so none of these addresses can be found")

    def _absorb_sub(self) -> None:
        sub, name = self._sub, self._sub_for
        self._sub = self._sub_for = None
        assert sub is not None
        assert name is not None
        self.hops.extend(sub.hops)
        r = sub.result
        assert r is not None
        if r.code in STOP_ALL:
            self.result = WalkResult(outcome=r.outcome, qname=self.qname, final_name=self._name,
                                     qtype=self.qtype, cname_chain=list(self._cnames),
                                     authority_zone=self._zone,
                                     authority_servers=self._servers, message=r.message,
                                     code=r.code)
            return
        if r.outcome == "answer" and r.records:
            for s in self._servers:
                if s.name == name:
                    s.addresses = list(r.records)
            return
        if r.outcome == "nxdomain":
            self._problem("dns.ns_not_found", f"name server {name} does not exist (NXDOMAIN)")
        elif r.outcome == "nodata":
            self._problem("dns.ns_not_found", f"name server {name} has no A record")
        elif r.code == "dns.delegation_cycle" and r.message.startswith("a delegation cycle"):
            self._problem(r.code, r.message)
        else:
            self._problem(r.code or "dns.ns_not_found",
                          f"the address of name server {name} could not be found: "
                          f"{r.message}")

    def _problem(self, code: str, words: str) -> None:
        self._problem_codes[code] += 1
        if len(self._problems) < PROBLEMS_KEPT:
            self._problems.append(words)

    def _give_up(self) -> None:
        """No server of the zone is left to ask: say what each did, and which limit hit."""
        count = sum(self._problem_codes.values())
        shown = 3 if self.depth == 0 else 1
        codes = set(self._problem_codes)
        common = next(iter(codes)) if len(codes) == 1 else None
        if common in ("dns.delegation_cycle", "dns.missing_glue") and self._problems:
            message = self._problems[0]
        elif count:
            message = (f"no name server of zone {self._zone} gave a usable answer: "
                       + "; ".join(self._problems[:shown]))
            if count > shown:
                message += f" (and {count - shown} more)"
        elif not self._nested_limited:
            message = f"zone {self._zone} has no name server with an IPv4 address to ask"
        else:
            message = f"no name server of zone {self._zone} could be asked"
        code = common or "dns.servfail"  # what a resolver would answer, failing so
        if self._nested_limited:
            left = sum(1 for s in self._servers[self._cursor:] if not s.addresses)
            k = self.limits.max_nested
            message += (f"; {self._zone} names {left} more name servers without an address "
                        f"(no glue), not looked up: at most {k} are per referral "
                        f"(--dns-max-nested {k}), a guard against NXNS-style amplification "
                        "(CVE-2020-12662)")
            if common not in ("dns.delegation_cycle", "dns.missing_glue"):
                code = "dns.nested_limit"
        self._finish("servfail", message, code=code)

    def _stop_for_queries(self) -> None:
        lim = self.limits.max_queries
        if self.depth:
            where = (f"it was finding the address of name server {self.qname} "
                     f"({_nested_words(self.depth)})")
        else:
            where = f"it was asking zone {self._zone} for the {self.qtype} record of {self._name}"
        self._finish("servfail", f"gave up after {self._budget.sent} queries, the most one "
                     f"walk may send (--dns-max-queries {lim}), without reaching an answer: "
                     f"{where} (a loop, or a very long chain of referrals, aliases or "
                     "glueless name servers)", code="dns.query_limit")

    def _finish(self, outcome: str, message: str = "", **kw: Any) -> None:
        self.result = WalkResult(outcome=outcome, qname=self.qname, final_name=self._name,
                                 qtype=self.qtype, cname_chain=list(self._cnames),
                                 authority_zone=self._zone,
                                 authority_servers=self._servers, message=message, **kw)

    # ----------------------------------------------------------------- responses
    def handle_timeout(self, action: QueryAction, timeout: float | None = None) -> Hop:
        owner = self._owner(action)
        within = f" within {timeout:g} s" if timeout is not None else ""
        words = f"did not answer{within}"
        owner._problem("dns.timeout", f"{_who(action)} {words}")
        return owner._record(Hop(action, HopKind.TIMEOUT, note=f"no reply{within}"))

    def handle_error(self, action: QueryAction, message: str,
                     code: str = "dns.query_failed") -> Hop:
        """The exchange failed; ``message`` says what the server did ("reset the …")."""
        owner = self._owner(action)
        owner._problem(code, f"{_who(action)} {message}")
        if code in STOP_ALL:  # a budget of the whole view ran out: stop, say who spent it
            owner._finish("servfail", f"stopped: {_who(action)} {message}", code=code)
        return owner._record(Hop(action, HopKind.ERROR, note=message))

    def handle_response(self, action: QueryAction, response: dns.message.Message) -> Hop:
        owner = self._owner(action)
        return owner._record(owner._classify(action, response))

    def _owner(self, action: QueryAction) -> Walk:
        """The (possibly nested) walk that issued ``action``."""
        walk = self
        while walk._sub is not None and action.depth > walk.depth:
            walk = walk._sub
        return walk

    def _record(self, hop: Hop) -> Hop:
        self.hops.append(hop)
        return hop

    def _lame(self, hop: Hop, code: str, words: str) -> Hop:
        hop.kind = HopKind.LAME
        hop.note = words
        self._problem(code, f"{_who(hop.action)} {words}")
        return hop

    def _classify(self, action: QueryAction, msg: dns.message.Message) -> Hop:
        import dns.flags
        import dns.rcode
        import dns.rdatatype

        rcode = dns.rcode.to_text(msg.rcode())
        aa = bool(msg.flags & dns.flags.AA)
        hop = Hop(action, HopKind.LAME, rcode=rcode, authoritative=aa)

        if msg.flags & dns.flags.TC:
            if not action.tcp:
                hop.kind = HopKind.TRUNCATED
                hop.note = "the answer did not fit in UDP (TC bit); asking again over TCP"
                self._want_tcp = True
                return hop
            # Over TCP a message has room for 65,535 bytes: a server that still truncates
            # leaves us nothing whole to use (RFC 7766 §8).
            hop.kind = HopKind.ERROR
            hop.note = ("marked its answer truncated (TC bit) even over TCP, where nothing "
                        "needs cutting: the answer cannot be used")
            self._problem("dns.truncated", f"{_who(action)} {hop.note}")
            return hop
        if msg.rcode() == dns.rcode.NXDOMAIN:
            hop.kind = HopKind.NXDOMAIN
            hop.answers = _texts(msg.authority)
            if self._follow_cnames(msg, hop) is None:
                return hop
            self._finish("nxdomain", f"{self._name} does not exist (NXDOMAIN from "
                         f"{action.server})", ttl=_soa_min(msg))
            return hop
        if msg.rcode() != dns.rcode.NOERROR:
            hop.kind = HopKind.REFUSED if msg.rcode() == dns.rcode.REFUSED else HopKind.SERVFAIL
            code, words = rcode_words(rcode)
            hop.note = f"{words}; trying another server"
            self._problem(code, f"{_who(action)} {words}")
            return hop

        qtype = dns.rdatatype.from_text(self.qtype)
        final = self._follow_cnames(msg, hop)
        if final is None:           # a loop, or a chain over the limit: the walk is over
            hop.kind = HopKind.CNAME
            hop.answers = _texts(msg.answer)
            return hop
        rrset = _find(msg.answer, final, qtype)
        if rrset is not None:
            hop.kind = HopKind.ANSWER
            hop.answers = _texts(msg.answer)
            self._name = final
            self._finish("answer", records=[r.to_text() for r in rrset], ttl=rrset.ttl)
            return hop
        if final != self._name:
            # An alias whose target this server does not serve: start over for the target.
            hop.kind = HopKind.CNAME
            hop.answers = _texts(msg.answer)
            hop.cname_target = final
            self._name = final
            self._set_zone(".", self._roots)
            return hop

        ns = [r for r in msg.authority if r.rdtype == dns.rdatatype.NS]
        if ns and not aa:
            zone = ns[0].name.to_text().lower()
            if _is_subdomain(zone, self._zone) and zone != self._zone and \
                    _is_subdomain(self._name, zone):
                names = list(dict.fromkeys(r.target.to_text().lower() for r in ns[0]))
                glue = _glue(msg, set(names))
                hop.kind = HopKind.REFERRAL
                hop.referral_zone = zone
                hop.referral_ns = names
                hop.glue = glue
                hop.glueless = [n for n in names if n not in glue]
                self._set_zone(zone, [NameServer(n, glue.get(n, [])) for n in names])
                return hop
            if zone == self._zone:
                return self._lame(hop, "dns.lame", f"referred us back to {zone}, the zone we "
                                  "asked it about, instead of answering (a delegation loop)")
            if _is_subdomain(self._zone, zone):
                return self._lame(hop, "dns.lame", f"sent a referral upward, to {zone}, "
                                  f"instead of answering for {self._zone} (a lame delegation: "
                                  "it does not serve the zone it was named for)")
            return self._lame(hop, "dns.lame", f"sent a referral to {zone}, which is not on "
                              f"the way to {self._name}")
        if not aa:
            # No answer, no referral, no authority: it does not serve the zone it was named
            # for (a lame delegation, RFC 4697 §2.8), so this is not a NODATA.
            return self._lame(hop, "dns.lame", f"answered without authority (AA bit clear) "
                              f"and without a referral: it is not authoritative for "
                              f"{self._zone}, though named as one of its servers (a lame "
                              "delegation)")

        hop.kind = HopKind.NODATA
        hop.answers = _texts(msg.authority)
        self._finish("nodata", f"{self._name} exists but has no {self.qtype} record",
                     ttl=_soa_min(msg))
        return hop

    def _follow_cnames(self, msg: dns.message.Message, hop: Hop) -> str | None:
        """Follow the CNAME chain inside an answer section; returns the last target, or
        None when the chain loops or runs over the limit (the walk has then finished)."""
        import dns.rdatatype

        name = self._name
        if self.qtype == "CNAME":
            return name
        # One pass over the section (it may hold thousands of records), then the chain.
        aliases: dict[str, str] = {}
        for rrset in msg.answer:
            if rrset.rdtype == dns.rdatatype.CNAME and len(rrset):
                aliases.setdefault(rrset.name.to_text().lower(),
                                   rrset[0].target.to_text().lower())
        limit = self.limits.max_cname_chain
        while (target := aliases.get(name)) is not None:
            self._cnames.append(f"{name} -> {target}")
            hop.cname_target = target
            if target in self._seen_names:
                names = [self.qname] + [c.split(" -> ")[1] for c in self._cnames]
                self._name = target
                self._finish("servfail", f"the aliases of {self.qname} loop: "
                             f"{' → '.join(_elide(names))} (a CNAME loop: {target} is "
                             "already in the chain), so there is no address at its end",
                             code="dns.cname_loop")
                return None
            self._seen_names.add(target)
            if len(self._cnames) > limit:
                self._name = target
                self._finish("servfail", f"the chain of aliases (CNAME records) from "
                             f"{self.qname} is longer than {limit}, the most we follow (as "
                             "BIND's max-query-restarts): it was still going at "
                             f"{target}", code="dns.cname_chain_too_long")
                return None
            name = target
        return name


# --------------------------------------------------------------------- helpers
def rcode_words(rcode: str) -> tuple[str, str]:
    """(code, words) for a response code other than NOERROR and NXDOMAIN (RFC 1035 §4.1.1,
    RFC 6895 §2.3), as what the server did."""
    return {
        "SERVFAIL": ("dns.servfail", "answered SERVFAIL (a failure on its side)"),
        "REFUSED": ("dns.refused", "answered REFUSED (it will not answer this question "
                                   "for us)"),
        "NOTIMP": ("dns.notimp", "answered NOTIMP (it does not implement this kind of "
                                 "query)"),
        "FORMERR": ("dns.formerr", "answered FORMERR (it could not read our query)"),
    }.get(rcode, ("dns.rcode", f"answered with the error code {rcode}"))


def _who(action: QueryAction) -> str:
    return f"{action.server} ({action.address})"


def _nested_words(depth: int) -> str:
    return "a nested walk" if depth == 1 else f"a walk nested {depth} deep"


def _elide(names: list[str]) -> list[str]:
    return names if len(names) <= 6 else [*names[:3], "…", *names[-2:]]


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _is_subdomain(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


def _find(section: list[dns.rrset.RRset], name: str, rdtype: int) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.rdtype == rdtype and rrset.name.to_text().lower() == name:
            return rrset
    return None


def _texts(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def _glue(msg: dns.message.Message, names: set[str]) -> dict[str, list[str]]:
    import dns.rdatatype

    glue: dict[str, list[str]] = {}
    for rrset in msg.additional:
        owner = rrset.name.to_text().lower()
        if owner in names and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(owner, []).extend(r.to_text() for r in rrset)
    return glue


def _soa_min(msg: dns.message.Message) -> int | None:
    """Negative-caching TTL: min(SOA TTL, SOA MINIMUM), RFC 2308 §5."""
    import dns.rdatatype

    for rrset in msg.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(min(rrset.ttl, rrset[0].minimum))
    return None
