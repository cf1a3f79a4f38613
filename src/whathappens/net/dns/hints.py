"""Root hints: where an iterative walk starts (RFC 1034 §5.3.2 "SBELT").

The file format is the one IANA publishes as ``named.root``: NS records for ``.`` and A/AAAA
records for those names. Parsed by hand (one line per record) so the walk does not pay for
importing a zone parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NameServer:
    name: str                      # "a.root-servers.net."
    addresses: list[str] = field(default_factory=list)


# IPv4 addresses of the 13 root server letters (IANA root hints, 2023 revision).
BUILTIN_ROOTS: dict[str, str] = {
    "a": "198.41.0.4",
    "b": "170.247.170.2",
    "c": "192.33.4.12",
    "d": "199.7.91.13",
    "e": "192.203.230.10",
    "f": "192.5.5.241",
    "g": "192.112.36.4",
    "h": "198.97.190.53",
    "i": "192.36.148.17",
    "j": "192.58.128.30",
    "k": "193.0.14.129",
    "l": "199.7.83.42",
    "m": "202.12.27.33",
}


def builtin_root_servers() -> list[NameServer]:
    return [NameServer(f"{k}.root-servers.net.", [v]) for k, v in BUILTIN_ROOTS.items()]


def parse_root_hints(text: str) -> list[NameServer]:
    """Root servers from a hints file; raises ValueError when it names none with an address."""
    ns_names: list[str] = []
    addrs: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        # owner [ttl] [class] type rdata
        fields = [p for p in parts[1:] if not p.isdigit() and p.upper() != "IN"]
        if len(fields) < 2:
            continue
        owner, rtype, rdata = parts[0].lower(), fields[0].upper(), fields[1]
        if not owner.endswith("."):
            owner += "."
        if rtype == "NS" and owner == ".":
            name = rdata.lower() if rdata.endswith(".") else rdata.lower() + "."
            ns_names.append(name)
        elif rtype in ("A", "AAAA"):
            addrs.setdefault(owner, []).append(rdata)
    servers = [NameServer(n, addrs.get(n, [])) for n in ns_names]
    servers = [s for s in servers if s.addresses]
    if not servers:
        raise ValueError("no root server with an address in the hints file")
    return servers


def load_root_hints(path: str) -> list[NameServer]:
    with open(path, encoding="utf-8") as f:
        return parse_root_hints(f.read(1 << 20))
