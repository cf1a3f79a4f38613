"""Which addresses a journey made on someone else's behalf may reach (``serve --public``).

A page that fetches any URL typed into it is a server-side request forgery waiting to happen:
the URL can name the machine itself (127.0.0.1), the private network behind it (10/8,
192.168/16), a cloud metadata service (169.254.169.254) or something that only looks harmless
(``http://2130706433/``, ``http://0x7f.1/``, ``[::ffff:127.0.0.1]``). The rule here is about
*addresses*, never names: the tracer resolves the name once, this module vets every address it
would connect to, and the connection then goes to exactly that vetted address, so there is no
window for DNS rebinding between the check and the connect. Every redirect leg is vetted the
same way, and the DNS walk's name servers too.

An operator may exempt ranges of their own (``--allow-address CIDR``, e.g. an intranet
deployment): ``allowing(networks)`` is the same policy with those ranges let through. Tests use
it to run a "public" page on 127.0.0.0/8 while a loopback canary beside it stays refused.

Pure: ``refusal(address)`` says why an address may not be reached, or ``None``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services, named for a clearer message (each is also inside a range below).
METADATA = {
    ipaddress.ip_address("169.254.169.254"): "a cloud metadata service (AWS, GCP, Azure, …)",
    ipaddress.ip_address("169.254.170.2"): "the AWS ECS task metadata service",
    ipaddress.ip_address("100.100.100.200"): "the Alibaba Cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "the AWS metadata service (IPv6)",
}

# RFC 6890 special-purpose registries (IANA), the ranges a public fetcher must not reach.
BLOCKED: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in (
        ("0.0.0.0/8", "'this network' (RFC 1122), which reaches this machine"),
        ("10.0.0.0/8", "a private network (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT space (RFC 6598)"),
        ("127.0.0.0/8", "loopback: this machine itself (RFC 1122)"),
        ("169.254.0.0/16", "link-local (RFC 3927)"),
        ("172.16.0.0/12", "a private network (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
        ("192.0.2.0/24", "documentation space TEST-NET-1 (RFC 5737)"),
        ("192.88.99.0/24", "the retired 6to4 relay anycast (RFC 7526)"),
        ("192.168.0.0/16", "a private network (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking space (RFC 2544)"),
        ("198.51.100.0/24", "documentation space TEST-NET-2 (RFC 5737)"),
        ("203.0.113.0/24", "documentation space TEST-NET-3 (RFC 5737)"),
        ("224.0.0.0/4", "multicast (RFC 5771)"),
        ("240.0.0.0/4", "reserved (RFC 1112), including broadcast 255.255.255.255"),
        ("::/128", "the unspecified address (RFC 4291)"),
        ("::1/128", "loopback: this machine itself (RFC 4291)"),
        ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215), which can lead into private IPv4"),
        ("100::/64", "the discard prefix (RFC 6666)"),
        ("3fff::/20", "documentation space (RFC 9637)"),
        ("5f00::/16", "segment routing (SRv6) SIDs (RFC 9602), not a host"),
        ("2001::/23", "IETF protocol assignments (RFC 2928)"),
        ("2001:db8::/32", "documentation space (RFC 3849)"),
        ("fc00::/7", "a unique local (private) network (RFC 4193)"),
        ("fe80::/10", "link-local (RFC 4291)"),
        ("fec0::/10", "site-local, deprecated (RFC 3879)"),
        ("ff00::/8", "multicast (RFC 4291)"),
    ))

# IPv6 prefixes that carry an IPv4 address inside: the IPv4 address is what gets reached.
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")        # IPv4-mapped (RFC 4291 §2.5.5.2)
_COMPAT = ipaddress.ip_network("::/96")                # IPv4-compatible, deprecated
_NAT64 = ipaddress.ip_network("64:ff9b::/96")          # NAT64 well-known prefix (RFC 6052)
_6TO4 = ipaddress.ip_network("2002::/16")              # 6to4 (RFC 3056)


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the embedding forms."""
    if addr in _MAPPED or addr in _NAT64 or (addr in _COMPAT and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _6TO4:
        return ipaddress.IPv4Address((int(addr) >> 80) & 0xFFFFFFFF)
    return None


def parse_address(address: str) -> Address | None:
    """The IP address ``address`` spells (brackets and an IPv6 zone id dropped), or ``None``."""
    try:
        return ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def parse_network(value: str) -> Network:
    """``--allow-address``'s value: a CIDR range, or one address (a /32 or /128).

    Host bits are not allowed (``10.1.2.3/8`` is refused): a typo there would exempt far
    more than the operator meant. Raises ``ValueError`` with the reason.
    """
    try:
        return ipaddress.ip_network(value.strip().strip("[]"), strict=True)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not an address range such as 10.0.0.0/8 or "
                         f"fd00::/8 ({exc})") from None


def refusal(address: str) -> str | None:
    """Why ``address`` may not be reached by a public fetcher, or ``None`` when it may.

    Anything that does not parse as an IP address is refused: only addresses are vetted.
    """
    addr = parse_address(address)
    if addr is None:
        return f"'{address}' is not an IP address"
    if isinstance(addr, ipaddress.IPv6Address):
        inner = embedded_ipv4(addr)
        if inner is not None:
            why = refusal(str(inner))
            return None if why is None else f"{addr} carries the IPv4 address {inner}: {why}"
    if addr in METADATA:
        return f"{addr} is {METADATA[addr]}"
    for net, why in BLOCKED:
        if addr.version == net.version and addr in net:
            return f"{addr} is {why}"
    return None


def public_only(address: str) -> str | None:
    """The policy ``serve --public`` and ``--only-public`` use (same as ``refusal``)."""
    return refusal(address)


def _inside(addr: Address, networks: tuple[Network, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def allowing(networks: Iterable[Network]) -> Callable[[str], str | None]:
    """``public_only``, except that addresses inside ``networks`` may be reached.

    An IPv6 address that carries an IPv4 address (``::ffff:10.1.2.3``) is let through when
    the IPv4 address it stands for is inside a range, as that is what would be reached.
    Without ranges this is ``public_only`` itself.
    """
    exempt = tuple(networks)
    if not exempt:
        return public_only

    def policy(address: str) -> str | None:
        addr = parse_address(address)
        if addr is not None:
            inner = embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else None
            if _inside(addr, exempt) or (inner is not None and _inside(inner, exempt)):
                return None
        return refusal(address)

    return policy
