"""Navigation: what the journey does after each response, decided from facts alone.

Theory of operation. A journey is a series of requests, one per *leg*: the URL typed, then one
per redirect followed. The runner (``whathappens.trace``) does the I/O; this module decides,
and reads no socket, clock or option of its own:

- ``Navigation.start(url, ...)`` is the first request (a ``Hop``).
- ``navigation.after(response)`` takes what came back (status, fields, whether it came over
  verified TLS) and answers one of ``Follow`` (the next request, as a new ``Navigation``),
  ``Arrive`` (this response ends the journey) or ``Stop`` (a ``RedirectError``: a loop, too
  many redirects, a Location that cannot be followed). Each carries the notes the runner
  writes as findings, and the HSTS memory as it stands after the response.
- ``HstsMemory`` is the hosts known to want HTTPS only, learned from Strict-Transport-Security
  (RFC 6797 §8.1) and applied to every redirect target (§8.3).
- ``choose_connection(origin, pooled)`` says whether a request may go on a connection
  already open, or needs a new one (and which spent connection to close first).

Every value is frozen: a decision never changes the state it was made from, so a test can
replay any sequence of responses, and the runner's loop is "ask, do, feed back".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from whathappens.errors import RedirectError, UrlError
from whathappens.url import UrlAnatomy, parse_url, resolve_reference

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})  # RFC 9110 §15.4
MAX_REDIRECTS = 20  # what Chromium and Firefox allow

Origin = tuple[str, str, int]  # scheme, host, port (RFC 6454)
Field = tuple[str, str]  # a header field: name, value

# Fields that carry credentials: given for one origin, they do not follow a redirect to
# another (Fetch "HTTP-redirect fetch" drops Authorization; curl drops all three).
CREDENTIAL_FIELDS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Fields that describe a request body: dropped when a redirect turns the method into GET
# (Fetch "HTTP-redirect fetch", the request-body-header names).
BODY_FIELDS = frozenset({"content-encoding", "content-language", "content-location",
                         "content-type"})


# ------------------------------------------------------------------------------ HSTS
_DELTA_SECONDS = re.compile(r"[0-9]+")  # RFC 6797 §6.1.1: ASCII digits only


@dataclass(frozen=True)
class HstsMemory:
    """Known HSTS hosts (RFC 6797 §8.1): host → includeSubDomains. Never mutated."""

    hosts: Mapping[str, bool] = field(default_factory=dict)

    def match(self, host: str) -> str | None:
        """The known host that makes ``host`` HTTPS-only: itself, or a parent domain that
        asked for includeSubDomains (RFC 6797 §8.2); None when no known host does."""
        host = _hsts_name(host)
        if host in self.hosts:
            return host
        return next((h for h, sub in self.hosts.items() if sub and host.endswith("." + h)),
                    None)

    def learn(self, url: UrlAnatomy, value: str | None, *, secure: bool) -> HstsMemory:
        """The memory after a response from ``url`` whose first Strict-Transport-Security
        field is ``value``.

        RFC 6797 §8.1: only a response over secure transport without certificate errors
        counts (``secure``), and only the first such field; §8.1.1: never for an IP
        literal; §6.1: a field that breaks the grammar is ignored whole; §6.1.1: max-age=0
        forgets the host, includeSubDomains and all.
        """
        if not secure or url.scheme != "https" or url.host_kind != "domain" or not value:
            return self
        directives = parse_sts(value)
        if directives is None:
            return self
        max_age, subdomains = directives
        hosts = dict(self.hosts)
        if max_age == 0:
            hosts.pop(_hsts_name(url.host), None)
        else:
            hosts[_hsts_name(url.host)] = subdomains
        return HstsMemory(hosts)


def _hsts_name(host: str) -> str:
    # "a.example." and "a.example" are one host to HSTS, as browsers match them; they
    # are two origins to the connection pool.
    return host.removesuffix(".")


def parse_sts(value: str) -> tuple[int, bool] | None:
    """(max-age, includeSubDomains) of one Strict-Transport-Security field value, or None
    when it does not follow RFC 6797 §6.1 (no max-age, a directive twice, a max-age that is
    not delta-seconds). Directive names are case-insensitive; unknown ones are ignored."""
    seen: dict[str, str | None] = {}
    for part in value.split(";"):
        name, eq, raw = part.partition("=")
        name = name.strip().lower()
        if not name:
            continue  # empty directives (";;", a trailing ";") are allowed by the grammar
        if name in seen:
            return None  # §6.1: "All directives MUST appear only once"
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]  # quoted-string form
        seen[name] = raw if eq else None
    max_age = seen.get("max-age")
    if max_age is None or not _DELTA_SECONDS.fullmatch(max_age):
        return None
    return int(max_age), "includesubdomains" in seen


def upgrade_to_https(url: UrlAnatomy) -> UrlAnatomy:
    """RFC 6797 §8.3: the scheme becomes https; an implied port or an explicit 80 becomes
    443, any other explicit port is kept."""
    keep_port = url.port_explicit and url.port != 80
    return dataclasses.replace(url, scheme="https", port=url.port if keep_port else 443,
                               port_explicit=keep_port, upgraded_from_http=True)


# ------------------------------------------------------------------------- redirects
def redirect_method(status: int, method: str) -> str:
    """The method of the request a redirect leads to (RFC 9110 §15.4.2-4, and what
    browsers do, as Fetch's "HTTP-redirect fetch" writes it): 303 turns any method but GET
    and HEAD into GET; 301 and 302 turn POST into GET; 307 and 308 keep the method."""
    if status == 303 and method not in ("GET", "HEAD"):
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


@dataclass(frozen=True)
class Policy:
    """The user's choices that bear on navigation."""

    max_redirects: int = MAX_REDIRECTS
    follow_redirects: bool = True
    hsts_upgrade: bool = True  # the preload list upgrades http:// redirect targets too


@dataclass(frozen=True)
class Hop:
    """One request of the journey: the ``index``-th leg."""

    index: int
    url: UrlAnatomy
    method: str
    headers: tuple[Field, ...] = ()
    # The request's content (-d and friends). A redirect that keeps the method (307, 308)
    # sends it again; one that turns it into GET drops it with its fields (Fetch,
    # "HTTP-redirect fetch", step 12).
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    """What the planner needs of a response."""

    status: int
    headers: tuple[Field, ...] = ()
    # Came over TLS whose certificate was verified in the handshake (not with -k).
    secure: bool = False

    def _values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name]

    @property
    def location(self) -> str | None:
        """Location, repeated lines joined with ", " (RFC 9110 §5.3), as the report shows."""
        values = self._values("location")
        return ", ".join(values) if values else None

    @property
    def sts(self) -> str | None:
        """The first Strict-Transport-Security field: RFC 6797 §8.1 processes only that one."""
        return next(iter(self._values("strict-transport-security")), None)


@dataclass(frozen=True)
class Follow:
    """Make the next request: ``next.hop``."""

    next: Navigation
    notes: tuple[str, ...] = ()

    @property
    def hsts(self) -> HstsMemory:
        return self.next.hsts


@dataclass(frozen=True)
class Arrive:
    """This response is the journey's answer."""

    final_url: str
    redirects: int
    hsts: HstsMemory
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stop:
    """The chain of redirects cannot go on: ``error`` says why."""

    error: RedirectError
    hsts: HstsMemory
    notes: tuple[str, ...] = ()


Outcome = Follow | Arrive | Stop


@dataclass(frozen=True)
class Navigation:
    """Where the journey stands: the request being made, and what was learned so far."""

    hop: Hop
    policy: Policy = Policy()
    hsts: HstsMemory = HstsMemory()
    # (method, URL) of every request made, this one last: a request made twice is a loop
    # (the same request to a server that answered it with a redirect before).
    # (method, URL) of every request made, the URL as fetched (for loops) and as shown (a
    # password masked: it goes into messages and the report).
    visited: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def start(cls, url: UrlAnatomy, *, method: str = "GET", headers: Sequence[Field] = (),
              policy: Policy | None = None, hsts: HstsMemory | None = None,
              body: bytes = b"") -> Navigation:
        return cls(Hop(0, url, method, tuple(headers), body), policy or Policy(),
                   hsts or HstsMemory(), ((method, url.url(), url.shown()),))

    def after(self, response: Response) -> Outcome:
        """What comes after ``response`` to this navigation's request."""
        hop, policy = self.hop, self.policy
        hsts = self.hsts.learn(hop.url, response.sts, secure=response.secure)
        location = response.location
        if not (policy.follow_redirects and response.status in REDIRECT_STATUSES
                and location):
            return Arrive(hop.url.shown(), hop.index, hsts)
        try:
            url, notes = _redirect_target(hop.url, location, hsts, policy)
        except UrlError as err:
            return Stop(RedirectError(
                "redirect.bad_location", f"the server redirected to '{location}', which "
                f"cannot be followed: {err.message}"), hsts)
        seen = [shown for _, _, shown in self.visited]
        if hop.index >= max(policy.max_redirects, 0):
            return Stop(RedirectError(
                "redirect.too_many", f"more than {policy.max_redirects} redirects "
                f"({' → '.join(seen[:4])} …)"), hsts, notes)
        method = redirect_method(response.status, hop.method)
        target = url.url()
        if (method, target) in {(m, u) for m, u, _ in self.visited}:
            return Stop(RedirectError(
                "redirect.loop", f"redirect loop: {url.shown()} was already visited "
                f"({' → '.join([*seen, url.shown()])})"), hsts, notes)
        headers, dropped = _carried_fields(hop, url, method)
        if dropped:
            origin = f"{url.scheme}://{url.authority}"
            notes += (f"{', '.join(dropped)} not sent to {origin}: fields that carry "
                      "credentials stay with the origin they were given for (as browsers "
                      "and curl do)",)
        body = hop.body if method == hop.method else b""
        nxt = Navigation(Hop(hop.index + 1, url, method, headers, body), policy, hsts,
                         (*self.visited, (method, target, url.shown())))
        return Follow(nxt, notes)


def _redirect_target(base: UrlAnatomy, location: str, hsts: HstsMemory,
                     policy: Policy) -> tuple[UrlAnatomy, tuple[str, ...]]:
    """The URL a Location leads to, and the notes it earns; raises UrlError when there is
    none (not an http(s) URL, a host that cannot be, ...)."""
    # The public suffix is looked up for the typed URL only, after the journey: loading the
    # list here would sit between two legs.
    url = parse_url(resolve_reference(base.url(), location),
                    hsts_upgrade=policy.hsts_upgrade, with_public_suffix=False)
    known = hsts.match(url.host) if url.scheme == "http" and url.host_kind == "domain" \
        else None
    if known is None:
        return url, ()
    # RFC 6797 §8.3: a known HSTS host is only ever reached over https.
    if known == _hsts_name(url.host):
        note = (f"{url.host} sent Strict-Transport-Security earlier in this journey: "
                "http:// upgraded to https://")
    else:
        note = (f"{known} sent Strict-Transport-Security with includeSubDomains earlier in "
                f"this journey: http://{url.host} upgraded to https://")
    return upgrade_to_https(url), (note,)


def _carried_fields(hop: Hop, url: UrlAnatomy,
                    method: str) -> tuple[tuple[Field, ...], list[str]]:
    """The fields the next request carries, and the names of credential fields left out."""
    drop: set[str] = set()
    if url.origin != hop.url.origin:
        drop |= CREDENTIAL_FIELDS
    if method != hop.method:
        drop |= BODY_FIELDS
    kept = tuple((n, v) for n, v in hop.headers if n.lower() not in drop)
    dropped = sorted({n.lower() for n, _ in hop.headers if n.lower() in drop
                      and n.lower() in CREDENTIAL_FIELDS})
    return kept, [_SPELLED.get(n, n) for n in dropped]


_SPELLED = {"authorization": "Authorization", "proxy-authorization": "Proxy-Authorization",
            "cookie": "Cookie"}


# ------------------------------------------------------------------------ connections
@dataclass(frozen=True)
class PooledConnection:
    """What the planner needs of an open connection."""

    origin: Origin
    protocol: str  # "HTTP/1.1" | "HTTP/2"
    reusable: bool  # its HTTP layer would carry another request
    closed: bool  # its transport is closed


@dataclass(frozen=True)
class Reuse:
    connection: PooledConnection
    reason: str


@dataclass(frozen=True)
class OpenNew:
    reason: str
    retire: PooledConnection | None = None  # a spent connection to the origin: close it first


def choose_connection(origin: Origin, pooled: Iterable[PooledConnection], *,
                      fresh: bool = False) -> Reuse | OpenNew:
    """Whether a request to ``origin`` goes on a connection already open.

    Only a connection to the same origin (scheme, host, port) is a candidate: no HTTP/2
    coalescing across hosts (RFC 9113 §9.1.1 allows it; this journey shows one origin per
    connection). An HTTP/1.1 connection carries the next request once the previous one is
    complete and neither side closed it (RFC 9112 §9.3); an HTTP/2 connection opens new
    streams until a GOAWAY or an error (RFC 9113 §5.1.1, §6.8). ``fresh`` asks for a new
    connection whatever the pool holds (to offer the first one's TLS session).
    """
    conn = next((c for c in pooled if c.origin == origin), None)
    if conn is None:
        return OpenNew("no connection to this origin is open")
    if fresh:
        return OpenNew("a fresh connection was asked for", retire=conn)
    if conn.closed:
        return OpenNew("the connection to this origin was closed", retire=conn)
    if not conn.reusable:
        why = ("an HTTP/1.1 connection carries a request only after the previous exchange "
               "completed with the connection kept open (RFC 9112 §9.3)"
               if conn.protocol == "HTTP/1.1" else
               "the HTTP/2 connection opens no new stream after GOAWAY or an error "
               "(RFC 9113 §6.8)")
        return OpenNew(why, retire=conn)
    if conn.protocol == "HTTP/2":
        return Reuse(conn, "a new stream on the open HTTP/2 connection (RFC 9113 §5.1.1)")
    return Reuse(conn, "the idle persistent HTTP/1.1 connection (RFC 9112 §9.3)")
