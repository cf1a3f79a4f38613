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
zone), the walk resolves those names first with a nested walk from the root; its queries come
out of ``next_action`` like any other, marked with a greater ``depth``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from whathappens.net.dns.hints import NameServer

if TYPE_CHECKING:
    import dns.message
    import dns.rrset

MAX_QUERIES = 80          # whole walk, nested walks included: a loop guard
MAX_CNAME_RESTARTS = 8    # RFC 1034 §3.6.2 wants a bound; browsers' stubs use 8-16
MAX_DEPTH = 3             # nested walks for glueless name servers
SERVERS_PER_ZONE = 4      # tried before the zone is given up


class HopKind(StrEnum):
    REFERRAL = "referral"
    ANSWER = "answer"
    CNAME = "cname"            # the answer is an alias; the walk restarts for the target
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    LAME = "lame"              # a useless reply: an upward referral, or an error code
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

    def to_dict(self) -> dict[str, Any]:
        a = self.action
        return {
            "server": a.server,
            "address": a.address,
            "zone": a.zone,
            "qname": a.qname,
            "qtype": a.qtype,
            "transport": "tcp" if a.tcp else "udp",
            "depth": a.depth,
            "purpose": a.purpose,
            "kind": self.kind.value,
            "rcode": self.rcode,
            "authoritative": self.authoritative,
            "referral_zone": self.referral_zone,
            "referral_ns": self.referral_ns,
            "glue": self.glue,
            "glueless": self.glueless,
            "answers": self.answers,
            "cname_target": self.cname_target,
            "note": self.note,
        }


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


class Walk:
    def __init__(
        self,
        qname: str,
        qtype: str,
        roots: list[NameServer],
        *,
        depth: int = 0,
        start_zone: str = ".",
        budget: list[int] | None = None,
    ) -> None:
        self.qname = _absolute(qname)
        self.qtype = qtype.upper()
        self.depth = depth
        self._roots = roots
        self._name = self.qname                  # current target (changes on CNAME)
        self._cnames: list[str] = []
        self._restarts = 0
        self._budget = budget if budget is not None else [MAX_QUERIES]
        self._set_zone(start_zone, [NameServer(s.name, list(s.addresses)) for s in roots])
        self._sub: Walk | None = None
        self._sub_for: str | None = None
        self._want_tcp = False
        self._last: QueryAction | None = None
        self.hops: list[Hop] = []
        self.result: WalkResult | None = None

    # ----------------------------------------------------------------- planning
    def _set_zone(self, zone: str, servers: list[NameServer]) -> None:
        self._zone = zone
        self._servers = servers
        self._tried: set[str] = set()
        self._resolving_failed: set[str] = set()

    def next_action(self) -> QueryAction | None:
        """The next query to send, or None when ``result`` is set."""
        while self.result is None:
            if self._sub is not None:
                action = self._sub.next_action()
                if action is not None:
                    return action
                self._absorb_sub()
                continue
            if self._budget[0] <= 0:
                self._finish("servfail", "gave up: the walk needed more than "
                             f"{MAX_QUERIES} queries (a loop or a very long chain)")
                return None
            if self._want_tcp and self._last is not None:
                last = self._last
                self._want_tcp = False
                return self._issue(last.server, last.address, tcp=True)
            server = self._pick_server()
            if server is None:
                return None
            if isinstance(server, str):      # a glueless name: resolve it first
                if self.depth >= MAX_DEPTH:
                    self._resolving_failed.add(server)
                    continue
                self._sub_for = server
                self._sub = Walk(server, "A", self._roots, depth=self.depth + 1,
                                 budget=self._budget)
                continue
            name, address = server
            return self._issue(name, address, tcp=False)
        return None

    def _issue(self, server: str, address: str, *, tcp: bool) -> QueryAction:
        self._budget[0] -= 1
        purpose = (f"find the address of name server {self.qname}" if self.depth
                   else f"{self.qtype} record of {self._name}")
        action = QueryAction(server, address, self._zone, self._name, self.qtype, tcp,
                             self.depth, purpose)
        self._last = action
        return action

    def _pick_server(self) -> tuple[str, str] | str | None:
        """A (name, address) not tried yet; else a glueless name to resolve; else give up."""
        tried_servers = {t.split("@")[0] for t in self._tried}
        if len(tried_servers) < SERVERS_PER_ZONE:
            for s in self._servers:
                for addr in s.addresses:
                    if ":" in addr:
                        continue  # IPv4 only for the walk: v6 reachability is not a given
                    key = f"{s.name}@{addr}"
                    if key not in self._tried:
                        self._tried.add(key)
                        return s.name, addr
            for s in self._servers:
                if not s.addresses and s.name not in self._resolving_failed:
                    return s.name
        self._finish("servfail", f"no name server of zone {self._zone} gave a usable answer")
        return None

    def _absorb_sub(self) -> None:
        sub, name = self._sub, self._sub_for
        self._sub = self._sub_for = None
        assert sub is not None
        assert name is not None
        self.hops.extend(sub.hops)
        if sub.result and sub.result.outcome == "answer" and sub.result.records:
            for s in self._servers:
                if s.name == name:
                    s.addresses = list(sub.result.records)
        else:
            self._resolving_failed.add(name)

    def _finish(self, outcome: str, message: str = "", **kw: Any) -> None:
        self.result = WalkResult(outcome=outcome, qname=self.qname, final_name=self._name,
                                 qtype=self.qtype, cname_chain=list(self._cnames),
                                 authority_zone=self._zone,
                                 authority_servers=self._servers, message=message, **kw)

    # ----------------------------------------------------------------- responses
    def handle_timeout(self, action: QueryAction) -> Hop:
        owner = self._owner(action)
        return owner._record(Hop(action, HopKind.TIMEOUT, note="no reply before the timeout"))

    def handle_error(self, action: QueryAction, message: str) -> Hop:
        owner = self._owner(action)
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

    def _classify(self, action: QueryAction, msg: dns.message.Message) -> Hop:
        import dns.flags
        import dns.rcode
        import dns.rdatatype

        rcode = dns.rcode.to_text(msg.rcode())
        aa = bool(msg.flags & dns.flags.AA)
        hop = Hop(action, HopKind.LAME, rcode=rcode, authoritative=aa)

        if msg.flags & dns.flags.TC and not action.tcp:
            hop.kind = HopKind.TRUNCATED
            hop.note = "the answer did not fit in UDP (TC bit); asking again over TCP"
            self._want_tcp = True
            return hop
        if msg.rcode() == dns.rcode.NXDOMAIN:
            hop.kind = HopKind.NXDOMAIN
            hop.answers = _texts(msg.authority)
            self._cnames_from(msg, hop)
            self._finish("nxdomain", f"{self._name} does not exist (NXDOMAIN from "
                         f"{action.server})", ttl=_soa_min(msg))
            return hop
        if msg.rcode() != dns.rcode.NOERROR:
            hop.kind = HopKind.REFUSED if msg.rcode() == dns.rcode.REFUSED else HopKind.SERVFAIL
            hop.note = f"{action.server} answered {rcode}; trying another server"
            return hop

        qtype = dns.rdatatype.from_text(self.qtype)
        final = self._cnames_from(msg, hop)
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
            self._restarts += 1
            self._name = final
            if self._restarts > MAX_CNAME_RESTARTS:
                self._finish("servfail", f"more than {MAX_CNAME_RESTARTS} CNAMEs in a row")
            else:
                self._set_zone(".", [NameServer(s.name, list(s.addresses))
                                     for s in self._roots])
            return hop

        ns = [r for r in msg.authority if r.rdtype == dns.rdatatype.NS]
        if ns and not aa:
            zone = ns[0].name.to_text()
            if _is_subdomain(zone, self._zone) and zone != self._zone and \
                    _is_subdomain(self._name, zone):
                names = [r.target.to_text().lower() for r in ns[0]]
                glue = _glue(msg, names)
                hop.kind = HopKind.REFERRAL
                hop.referral_zone = zone
                hop.referral_ns = names
                hop.glue = glue
                hop.glueless = [n for n in names if n not in glue]
                self._set_zone(zone, [NameServer(n, glue.get(n, [])) for n in names])
                return hop
            hop.note = f"{action.server} sent a referral that does not lead closer ({zone})"
            return hop

        hop.kind = HopKind.NODATA
        hop.answers = _texts(msg.authority)
        self._finish("nodata", f"{self._name} exists but has no {self.qtype} record",
                     ttl=_soa_min(msg))
        return hop

    def _cnames_from(self, msg: dns.message.Message, hop: Hop) -> str:
        """Follow the CNAME chain inside an answer section; returns the last target."""
        import dns.rdatatype

        name = self._name
        for _ in range(MAX_CNAME_RESTARTS + 1):
            rr = _find(msg.answer, name, dns.rdatatype.CNAME)
            if rr is None or self.qtype == "CNAME":
                break
            target = rr[0].target.to_text().lower()
            self._cnames.append(f"{name} -> {target}")
            hop.cname_target = target
            name = target
        return name


# --------------------------------------------------------------------- helpers
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


def _glue(msg: dns.message.Message, names: list[str]) -> dict[str, list[str]]:
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
