"""Who listens where in the demo internet, and with which injected delay.

Every server has its own loopback address; all DNS servers share one port because a
referral carries addresses only (RFC 1034 §4.2.2), so a resolver following it can only
use the port it already uses. As root the well-known ports are used (53, 443, 80);
otherwise high ports that need no privilege (10053, 10443, 10080).

The delays make the local timeline look like the real internet (a DNS hop costs tens of
milliseconds, a web server thinks for a few). They are injected by the servers before
they answer, and ``internet.json`` says so, so a report can say so too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROOT_PORTS = (53, 443, 80)
HIGH_PORTS = (10053, 10443, 10080)

RESOLVER_ADDRESS = "127.0.53.53"
WEB_ADDRESS = "127.0.80.1"
WEB_ADDRESS_V6 = "::1"
WEB_HOST = "www.example.com"

#: Injected delay per role, in milliseconds; ``--no-delay`` sets them all to 0.
DEFAULT_DELAYS_MS: dict[str, float] = {
    "root": 25.0,
    "tld": 20.0,
    "authoritative": 12.0,
    "resolver": 8.0,
    "web": 5.0,
}

#: Injected delay per file of www.example.com's page (demo/page.py says what each file is),
#: in milliseconds, applied by the web server before it answers that file; ``--delay
#: hero=900`` changes one, ``--no-delay`` sets them all to 0. Chosen so that a browser shows
#: a real critical chain: the stylesheet holds the first paint back, the font arrives after
#: it, the hero image (the LCP element) last, and the banner moves painted content.
PAGE_DELAYS_MS: dict[str, float] = {
    "css": 200.0,        # /static/style.css, render-blocking
    "js": 100.0,         # /static/app.js, parser-blocking
    "font": 250.0,       # /static/heading.ttf, requested once the CSS says it is needed
    "async": 350.0,      # /static/stats.js, async
    "logo": 40.0,        # /static/logo.png
    "img-dns": 80.0,     # /static/dns.svg
    "img-tls": 120.0,    # /static/tls.svg
    "img-http": 160.0,   # /static/http.svg
    "hero": 600.0,       # /static/hero.png, the largest image: the LCP element
    "banner": 350.0,     # /api/banner, fetched by app.js; its answer shifts the layout
}


@dataclass(frozen=True)
class Ports:
    dns: int
    https: int
    http: int

    @classmethod
    def default(cls, *, high: bool) -> Ports:
        return cls(*(HIGH_PORTS if high else ROOT_PORTS))


@dataclass(frozen=True)
class NameServer:
    """One authoritative DNS server: an address serving one or more zone files."""

    name: str
    role: str
    address: str
    zones: tuple[str, ...]  # file names in demo/zones/


@dataclass(frozen=True)
class TlsServer:
    """One HTTPS server: an address and the certificate it presents."""

    name: str
    address: str
    certificate: str  # "valid" or one of ca.BAD_KINDS
    problem: str = ""  # what a verifier should say about it, in plain words
    extra_addresses: tuple[str, ...] = field(default=())


NAME_SERVERS: tuple[NameServer, ...] = (
    NameServer("a.root-servers.net", "root", "127.0.53.1", ("root.zone",)),
    NameServer("a.gtld-servers.net", "tld", "127.0.53.2", ("com.zone", "net.zone", "org.zone")),
    NameServer("ns1.example.com", "authoritative", "127.0.53.3", ("example.com.zone",)),
    NameServer(
        "ns.dns-host.net", "authoritative", "127.0.53.4", ("dns-host.net.zone", "glueless.com.zone")
    ),
)

WEB_SERVER = TlsServer(WEB_HOST, WEB_ADDRESS, "valid")

#: HTTP/3 advertised (the zone's HTTPS record says alpn="h3,h2") but nothing answers on UDP:
#: a QUIC attempt gets no answer to its Initial, and a browser falls back to TCP (issue 12).
H3_DOWN_SERVER = TlsServer("h3-down.example.com", "127.0.80.7", "valid")
#: HTTP/3 only (UDP), with address validation: every client gets a Retry first.
RETRY_SERVER = TlsServer("retry.example.com", "127.0.80.8", "valid")

#: TLS servers with broken certificates, each reachable by name through example.com's zone.
BAD_TLS_SERVERS: tuple[TlsServer, ...] = (
    TlsServer("expired.example.com", "127.0.80.2", "expired", "the certificate has expired"),
    TlsServer(
        "wrong-host.example.com",
        "127.0.80.3",
        "wrong-host",
        "the certificate is for other.test, not this name",
    ),
    TlsServer(
        "self-signed.example.com",
        "127.0.80.4",
        "self-signed",
        "the certificate is signed by itself, not by a CA",
    ),
    TlsServer(
        "unknown-issuer.example.com",
        "127.0.80.5",
        "unknown-issuer",
        "the chain leads to a CA that is not trusted",
    ),
    TlsServer(
        "incomplete-chain.example.com",
        "127.0.80.6",
        "incomplete-chain",
        "the server sends its certificate without the intermediate CA",
    ),
)

#: Names the authoritative server treats specially (exact name or below it).
#: "drop" never answers (for timeout tests), the others answer with that rcode.
SPECIAL_NAMES: dict[str, str] = {
    "slow.example.com.": "drop",
    "servfail.example.com.": "servfail",
    "refused.example.com.": "refused",
}


def delays(enabled: bool, overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Every role's and page file's delay: the defaults, or all 0, then ``overrides``."""
    known = DEFAULT_DELAYS_MS | PAGE_DELAYS_MS
    chosen = dict(known) if enabled else dict.fromkeys(known, 0.0)
    chosen.update(overrides or {})
    return chosen


def parse_delay(text: str) -> tuple[str, float]:
    """``ROLE=MS`` (``root=40``, ``hero=900``) → ("root", 40.0); ValueError with a helpful
    message. ROLE is a server's role or one of the page's files (PAGE_DELAYS_MS)."""
    role, sep, value = text.partition("=")
    role = role.strip().lower()
    if not sep or role not in DEFAULT_DELAYS_MS | PAGE_DELAYS_MS:
        raise ValueError(f"expected ROLE=MS with ROLE one of {', '.join(DEFAULT_DELAYS_MS)} "
                         f"or a file of the page: {', '.join(PAGE_DELAYS_MS)}")
    ms = float(value)
    if not 0 <= ms <= 10_000:
        raise ValueError("a delay must be between 0 and 10000 ms")
    return role, ms
