"""Where HTTP/3 is advertised, as a browser learns it (pure, no I/O).

- ``Alt-Svc`` (RFC 7838): a response says its origin is also served by another protocol,
  here ``h3`` on a UDP port (``h3=":443"; ma=86400``). A browser keeps it per origin for
  ``ma`` seconds (24 hours when absent, RFC 7838 §3.1); ``clear`` forgets them.
- The HTTPS record (RFC 9460): ``alpn="h3,h2"`` says the name speaks HTTP/3 before any
  connection is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MA_S = 86400  # RFC 7838 §3.1: "ma" absent means 24 hours
_ENTRY = re.compile(r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)="([^"]*)"((?:\s*;\s*[^,;]+)*)')


@dataclass(frozen=True)
class Alternative:
    protocol: str      # the ALPN id: h3, h2…
    host: str          # "" means the origin's own host
    port: int
    max_age_s: int


def parse_alt_svc(value: str) -> list[Alternative] | None:
    """The alternatives in an Alt-Svc field value; None for ``clear``; bad entries skipped."""
    if value.strip() == "clear":
        return None
    out: list[Alternative] = []
    for part in _split(value):
        m = _ENTRY.fullmatch(part)
        if m is None:
            continue
        host, _, port = m.group(2).rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            continue
        ma = DEFAULT_MA_S
        for param in m.group(3).split(";"):
            name, _, val = param.strip().partition("=")
            if name.strip().lower() == "ma" and val.strip().isdigit():
                ma = int(val.strip())
        out.append(Alternative(m.group(1), host, int(port), ma))
    return out


def _split(value: str) -> list[str]:
    """Entries split at commas outside quotes."""
    parts, cur, quoted = [], "", False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


@dataclass(frozen=True)
class Advertised:
    """Why HTTP/3 may be tried for an origin, and on which UDP port."""

    port: int
    why: str


class AltSvcCache:
    """A browser's Alt-Svc cache for one journey: origin → h3 port until it expires."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, int], tuple[int, int, str]] = {}

    def store(self, origin: tuple[str, str, int], value: str, now_ns: int) -> None:
        alternatives = parse_alt_svc(value)
        if alternatives is None:
            self._entries.pop(origin, None)
            return
        for alt in alternatives:
            # Only the origin's own host: another host would need its certificate checked
            # for this origin (RFC 7838 §2.1), which this client does not do.
            if alt.protocol == "h3" and alt.host in ("", origin[1]) and alt.max_age_s > 0:
                self._entries[origin] = (alt.port, now_ns + alt.max_age_s * 10**9,
                                         f'Alt-Svc h3=":{alt.port}"; ma={alt.max_age_s} from '
                                         "an earlier response")
                return

    def lookup(self, origin: tuple[str, str, int], now_ns: int) -> Advertised | None:
        entry = self._entries.get(origin)
        if entry is None or entry[1] <= now_ns:
            return None
        return Advertised(entry[0], entry[2])


def https_record_h3(records: list[str], port: int) -> Advertised | None:
    """The HTTPS record advertises h3 (its alpn, RFC 9460 §7.1) for the same port."""
    for rec in records:
        m = re.search(r'alpn="?([^"\s]+)"?', rec)
        if m is not None and "h3" in m.group(1).split(","):
            return Advertised(port, f'the HTTPS record advertises it (alpn="{m.group(1)}")')
    return None
