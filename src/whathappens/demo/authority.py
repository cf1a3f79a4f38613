"""What an authoritative name server answers: the decision, with no I/O.

An :class:`Authority` holds the zones one server is authoritative for and turns a query
message into a response message, following the algorithm of RFC 1034 §4.3.2:

1. Pick the zone: the nearest enclosing zone origin among ours. None → REFUSED, since this
   server is not a resolver and has nothing to say about other names.
2. Walk down from the zone origin towards the name. Meeting a node with NS records below the
   origin means the name lives in a delegated zone (a zone cut): answer with a *referral* —
   not authoritative, the child's NS set in the authority section and, in the additional
   section, any addresses we hold for those servers (glue).
3. At the name itself: the records of the asked type → an authoritative answer; a CNAME →
   put it in the answer and start again at its target while the target stays in the same
   zone (the "in-zone chasing" of step 3.a); records of other types only → NODATA.
4. No such name → NXDOMAIN, unless some longer name exists below it (an empty
   non-terminal), which is NODATA.

Negative answers carry the zone's SOA in the authority section with the negative-caching
TTL, min(SOA TTL, SOA minimum) (RFC 2308 §3). The response code of a CNAME chain is the one
of its last name (RFC 6604).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
from dns.flags import AA

MAX_CNAME_CHAIN = 8

#: EDNS versions this server speaks (RFC 6891 §6.1.3: higher versions get BADVERS).
EDNS_VERSION = 0


class Special(enum.Enum):
    """A name the demo answers wrongly on purpose, for failure tests."""

    DROP = "drop"  # never answered: the client times out
    SERVFAIL = "servfail"
    REFUSED = "refused"


class Authority:
    """The zones one server is authoritative for, and the answers they give."""

    def __init__(
        self,
        zones: Iterable[dns.zone.Zone],
        special: Mapping[dns.name.Name, Special] | None = None,
        *,
        our_payload: int = 1232,
    ) -> None:
        self.zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self._cuts: dict[dns.name.Name, set[dns.name.Name]] = {}
        self._parents: dict[dns.name.Name, set[dns.name.Name]] = {}
        for zone in zones:
            origin = zone.origin
            assert origin is not None
            assert origin.is_absolute()
            self.zones[origin] = zone
            names = {self._absolute(zone, n) for n in zone.nodes}
            self._cuts[origin] = {
                n for n in names
                if n != origin and zone.get_rdataset(n, dns.rdatatype.NS) is not None
            }
            # Every proper ancestor of an owner name inside the zone: these exist as empty
            # non-terminals even without records of their own (RFC 8020).
            parents: set[dns.name.Name] = set()
            for n in names:
                while n != origin and len(n) > len(origin):
                    n = n.parent()
                    parents.add(n)
            self._parents[origin] = parents
        self.special = dict(special or {})
        self.our_payload = our_payload

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to ``query``, or None when it is to be dropped unanswered."""
        response = dns.message.make_response(query, our_payload=self.our_payload)
        if query.edns > EDNS_VERSION:
            response.use_edns(EDNS_VERSION, 0, self.our_payload)
            response.set_rcode(dns.rcode.BADVERS)
            return response
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        meta = dns.rdatatype.is_metatype(qtype) and qtype != dns.rdatatype.ANY
        if question.rdclass != dns.rdataclass.IN or meta:
            # Zone transfers and other meta-queries are not offered; only class IN is served.
            response.set_rcode(dns.rcode.REFUSED)
            return response
        for name, special in self.special.items():
            if qname.is_subdomain(name):
                if special is Special.DROP:
                    return None
                response.set_rcode(
                    dns.rcode.SERVFAIL if special is Special.SERVFAIL else dns.rcode.REFUSED
                )
                return response
        zone = self._zone_for(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        self._answer(response, zone, qname, qtype)
        return response

    def _answer(
        self, response: dns.message.Message, zone: dns.zone.Zone, qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
    ) -> None:
        origin = _origin(zone)
        name = qname
        for step in range(MAX_CNAME_CHAIN + 1):
            cut = self._cut_above(origin, name, qtype)
            if cut is not None:
                if step == 0:
                    self._refer(response, zone, cut)
                return  # a chain into a delegated zone ends here; the client follows it
            if step == 0:
                response.flags |= AA
            node = zone.get_node(name)
            if node is None:
                if name not in self._parents[origin]:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(response, zone)
                return
            if qtype == dns.rdatatype.ANY:
                for rdataset in node.rdatasets:
                    response.answer.append(_rrset(name, rdataset))
                return
            wanted = node.get_rdataset(dns.rdataclass.IN, qtype)
            if wanted is not None:
                response.answer.append(_rrset(name, wanted))
                if qtype == dns.rdatatype.NS:
                    _add_addresses(response, zone, (rd.target for rd in wanted))
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                self._add_soa(response, zone)  # NODATA
                return
            response.answer.append(_rrset(name, cname))
            target: dns.name.Name = cname[0].target
            if not target.is_subdomain(origin) or target in {r.name for r in response.answer}:
                return  # leaves the zone (or loops): the client carries on from here
            name = target

    def _refer(self, response: dns.message.Message, zone: dns.zone.Zone,
               cut: dns.name.Name) -> None:
        ns = zone.get_rdataset(cut, dns.rdatatype.NS)
        assert ns is not None
        response.authority.append(_rrset(cut, ns))
        _add_addresses(response, zone, (rd.target for rd in ns))

    def _add_soa(self, response: dns.message.Message, zone: dns.zone.Zone) -> None:
        origin = _origin(zone)
        soa = zone.get_rdataset(origin, dns.rdatatype.SOA)
        assert soa is not None
        rrset = _rrset(origin, soa)
        rrset.ttl = min(soa.ttl, soa[0].minimum)
        response.authority.append(rrset)

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        for depth in range(len(name), 0, -1):
            zone = self.zones.get(name.split(depth)[1])
            if zone is not None:
                return zone
        return None

    def _cut_above(self, origin: dns.name.Name, name: dns.name.Name,
                   qtype: dns.rdatatype.RdataType) -> dns.name.Name | None:
        """The highest zone cut between the origin and ``name`` (inclusive), if any."""
        cuts = self._cuts[origin]
        for depth in range(len(origin) + 1, len(name) + 1):
            candidate = name.split(depth)[1]
            if candidate in cuts:
                if candidate == name and qtype == dns.rdatatype.DS:
                    return None  # DS lives on the parent side of the cut (RFC 4035 §3.1.4.1)
                return candidate
        return None

    @staticmethod
    def _absolute(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name:
        return name if name.is_absolute() else name.derelativize(_origin(zone))


def _add_addresses(response: dns.message.Message, zone: dns.zone.Zone,
                   targets: Iterable[dns.name.Name]) -> None:
    """Add the addresses this zone holds for these server names (glue) as additional data.

    Only from the same zone: a server that also serves net. must not hand out net. data in a
    com. referral, or a delegation meant to be glueless (glueless.com) would not be.
    """
    for target in targets:
        if not target.is_subdomain(_origin(zone)):
            continue
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rdataset = zone.get_rdataset(target, rdtype)
            if rdataset is not None:
                response.additional.append(_rrset(target, rdataset))


def _origin(zone: dns.zone.Zone) -> dns.name.Name:
    assert zone.origin is not None
    return zone.origin


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
