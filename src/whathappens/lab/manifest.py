"""``lab.json``: what ``lab up`` started, read and written in one place.

``lab up`` writes it (profile, balance algorithm, subnet, WAN link, hosts, and every tier in
start order as its driver describes itself); ``lab status``, ``lab down``, the drills, the
experiments and ``whathappens URL --lab`` read it. A tier's entry keeps every fact its
driver wrote (versions, name servers, …) in ``facts``, so a rewrite (an experiment changing
the algorithm) loses nothing. A lab.json from an older lab may lack fields: they default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FILE = "lab.json"


@dataclass(frozen=True)
class HostEntry:
    address: str
    role: str


@dataclass
class TierEntry:
    name: str
    host: str
    role: str
    address: str
    port: int | None
    kind: str = ""                      # "" in a lab.json from before tiers said it
    env_overrides: dict[str, str] = field(default_factory=dict)   # set by an experiment
    facts: dict[str, object] = field(default_factory=dict)        # the rest, as written

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TierEntry:
        rest = dict(data)
        port = rest.pop("port", None)
        overrides = rest.pop("env_overrides", None) or {}
        return cls(name=str(rest.pop("name")), host=str(rest.pop("host", "")),
                   role=str(rest.pop("role", "")), address=str(rest.pop("address", "")),
                   port=None if port is None else int(str(port)),
                   kind=str(rest.pop("kind", "")),
                   env_overrides=({str(k): str(v) for k, v in overrides.items()}
                                  if isinstance(overrides, dict) else {}),
                   facts=rest)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "host": self.host, "role": self.role,
                                  "address": self.address, "port": self.port}
        if self.kind:
            out["kind"] = self.kind
        out.update(self.facts)
        if self.env_overrides:
            out["env_overrides"] = dict(self.env_overrides)
        return out


@dataclass
class Manifest:
    profile: str
    algorithm: str = "roundrobin"
    subnet: int = 0
    wan: dict[str, object] | None = None
    mtls: bool = False                  # lab up --mtls
    hosts: dict[str, HostEntry] = field(default_factory=dict)
    tiers: list[TierEntry] = field(default_factory=list)

    def tier(self, name: str) -> TierEntry | None:
        return next((t for t in self.tiers if t.name == name), None)

    def of_kind(self, kind: str) -> TierEntry | None:
        return next((t for t in self.tiers if t.kind == kind), None)

    @classmethod
    def from_json(cls, data: object) -> Manifest:
        """Raises ValueError when ``data`` is not a lab.json."""
        if not isinstance(data, dict) or "profile" not in data:
            raise ValueError("not a lab.json: no profile")
        try:
            hosts = {str(name): HostEntry(str(h.get("address", "")), str(h.get("role", "")))
                     for name, h in dict(data.get("hosts") or {}).items()}
            tiers = [TierEntry.from_json(dict(t)) for t in list(data.get("tiers") or [])]
            wan = data.get("wan")
            return cls(profile=str(data["profile"]),
                       algorithm=str(data.get("algorithm") or "roundrobin"),
                       subnet=int(data.get("subnet") or 0),
                       wan=dict(wan) if isinstance(wan, dict) else None,
                       mtls=data.get("mtls") is True,
                       hosts=hosts, tiers=tiers)
        except (AttributeError, KeyError, TypeError) as err:
            raise ValueError(f"not a lab.json: {err}") from None

    def to_json(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "algorithm": self.algorithm,
            "subnet": self.subnet,
            "wan": self.wan,
            "mtls": self.mtls,
            "hosts": {n: {"address": h.address, "role": h.role} for n, h in self.hosts.items()},
            "tiers": [t.to_json() for t in self.tiers],
        }


def path(state: Path) -> Path:
    return state / FILE


def read(state: Path) -> Manifest | None:
    """The lab in ``state``, or None when there is none (or its lab.json does not parse)."""
    try:
        return Manifest.from_json(json.loads(path(state).read_text()))
    except (OSError, ValueError):
        return None


def write(state: Path, manifest: Manifest) -> None:
    """Replace lab.json in one step (a reader never sees half a file)."""
    target = path(state)
    tmp = target.with_name(f".{FILE}.tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2))
    tmp.replace(target)
