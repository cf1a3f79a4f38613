"""The journey's cookie jar, as a browser keeps one (RFC 6265), decided from facts alone.

A jar is frozen: ``jar.store(url, set_cookie_values, now)`` is the jar after a response,
``jar.header(url, now)`` the ``Cookie`` field a request to ``url`` carries. Nothing here reads
a socket, a clock or a file: the runner (``trace.py``) passes the time in, and the file forms
(curl's ``-b FILE`` and ``-c FILE``, the Netscape cookie file) are text in, text out.

What is followed, and where:

- parsing a Set-Cookie line, lenient as §5.2 asks: the pair before the first ``;``, then
  Expires, Max-Age, Domain, Path, Secure, HttpOnly (SameSite is kept, not enforced: a journey
  makes only top-level requests to the URL it was given);
- storing (§5.3): Max-Age wins over Expires; a Domain the request's host does not
  domain-match is refused, an IP address takes no Domain; without Domain the cookie is
  host-only; a Path that does not start with ``/`` becomes the default path (§5.1.4); a
  cookie with the same name, domain and path replaces the old one (keeping its creation
  time), and an expiry in the past deletes it; a Secure cookie from an insecure origin is
  refused (RFC 6265bis §5.7, what browsers do);
- sending (§5.4): host-only cookies to their host only, the others to it and its subdomains;
  path-match; Secure ones only over https; longer paths first, then older first.

Not followed: the public suffix check on Domain (§5.3 step 5; a browser refuses
``Domain=com``) — the journey's requests stay on the hosts the user typed or was redirected
to, and the report shows every cookie sent.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from whathappens.url import UrlAnatomy

MAX_COOKIES = 300            # per jar: RFC 6265 §6.1 asks for at least 3000 in all, 50 a domain
MAX_COOKIE_BYTES = 4096      # name + value + attributes (§6.1: at least 4096 per cookie)
# The standard library's lenient HTTP date reader (RFC 6265 §5.1.1 asks for leniency): the
# forms servers send (RFC 1123, RFC 850, asctime and variants). Not in typeshed's stubs.
http2time: Callable[[str], float | None] = http.cookiejar.http2time  # type: ignore[attr-defined]
NETSCAPE_HEADER = "# Netscape HTTP Cookie File"
HTTPONLY_PREFIX = "#HttpOnly_"


@dataclass(frozen=True)
class Cookie:
    name: str
    value: str
    domain: str               # lower-case, no leading dot
    path: str
    host_only: bool = True
    secure: bool = False
    http_only: bool = False
    expires: float | None = None    # unix seconds; None: a session cookie
    created: float = 0.0
    same_site: str = ""

    def key(self) -> tuple[str, str, str]:
        return self.name, self.domain, self.path


def domain_match(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3: the same string, or a subdomain of it when the host is a name."""
    host, domain = host.lower().rstrip("."), domain.lower().rstrip(".")
    if host == domain:
        return True
    return host.endswith("." + domain) and not _is_ip(host)


def default_path(path: str) -> str:
    """RFC 6265 §5.1.4: the request path up to, not including, its last ``/``."""
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[:path.rindex("/")]


def path_match(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 §5.1.4."""
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _path_of(url: UrlAnatomy) -> str:
    return url.path or "/"


@dataclass(frozen=True)
class Parsed:
    """One Set-Cookie line read (§5.2), before the storage model decides (§5.3)."""

    name: str
    value: str
    attrs: tuple[tuple[str, str], ...] = ()


def parse_set_cookie(line: str) -> Parsed | None:
    """RFC 6265 §5.2; None when the line is to be ignored (no ``=`` in the pair, no name)."""
    if len(line) > MAX_COOKIE_BYTES:
        return None
    pair, _, rest = line.partition(";")
    name, eq, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not eq or not name:
        return None
    attrs = []
    for part in rest.split(";"):
        key, _, val = part.partition("=")
        key = key.strip().lower()
        if key:
            attrs.append((key, val.strip()))
    return Parsed(name, value, tuple(attrs))


def _expiry(attrs: Iterable[tuple[str, str]], now: float) -> tuple[bool, float | None]:
    """(whether any expiry was given, the expiry time): the last Max-Age wins over any
    Expires (§5.3 step 3); a Max-Age of zero or less is the earliest time there is."""
    max_age = expires = None
    for key, val in attrs:
        if key == "max-age" and val.lstrip("-").isdigit():
            seconds = int(val)
            max_age = now + seconds if seconds > 0 else float("-inf")
        elif key == "expires":
            when = http2time(val)
            if when is not None:
                expires = float(when)
    if max_age is not None:
        return True, max_age
    return expires is not None, expires


def refusal(url: UrlAnatomy, parsed: Parsed) -> str | None:
    """Why a browser would not store this cookie from ``url`` (§5.3), or None."""
    host = url.host.lower().rstrip(".")
    attrs = dict(parsed.attrs)
    domain = attrs.get("domain", "").lstrip(".").lower().rstrip(".")
    if domain and (not domain_match(host, domain) or (_is_ip(host) and domain != host)):
        return (f"{parsed.name}: Domain={domain} does not cover {host} (RFC 6265 §5.3 "
                "step 6)")
    if "secure" in attrs and url.scheme != "https":
        return (f"{parsed.name}: Secure, but set over {url.scheme} (RFC 6265bis §5.7: only "
                "a secure origin sets a Secure cookie)")
    return None


def refusals(url: UrlAnatomy, lines: Iterable[str]) -> list[str]:
    """Why each refused Set-Cookie line of a response was refused (unparsable ones too)."""
    out = []
    for line in lines:
        parsed = parse_set_cookie(line)
        if parsed is None:
            out.append(f"'{line[:40]}': no name=value pair (RFC 6265 §5.2), ignored")
        elif (why := refusal(url, parsed)) is not None:
            out.append(why)
    return out


@dataclass(frozen=True)
class CookieJar:
    cookies: tuple[Cookie, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.cookies)

    # ------------------------------------------------------------------- storing
    def store(self, url: UrlAnatomy, lines: Iterable[str], now: float) -> CookieJar:
        """The jar after a response from ``url`` carrying these Set-Cookie lines."""
        jar = self
        for line in lines:
            parsed = parse_set_cookie(line)
            if parsed is not None:
                jar = jar.put(url, parsed, now)
        return jar

    def put(self, url: UrlAnatomy, parsed: Parsed, now: float) -> CookieJar:
        """§5.3, one cookie (a refused one leaves the jar as it was: see ``refusal``)."""
        if refusal(url, parsed) is not None:
            return self
        host = url.host.lower().rstrip(".")
        attrs = dict(parsed.attrs)      # the last of each attribute counts
        domain = attrs.get("domain", "").lstrip(".").lower().rstrip(".")
        host_only = not domain
        domain = domain or host
        path = attrs.get("path", "")
        if not path.startswith("/"):
            path = default_path(_path_of(url))
        secure = "secure" in attrs
        _, expires = _expiry(parsed.attrs, now)
        cookie = Cookie(parsed.name, parsed.value, domain, path, host_only, secure,
                        "httponly" in attrs, expires, now,
                        attrs.get("samesite", "").lower())
        return self.with_cookie(cookie, now)

    def with_cookie(self, cookie: Cookie, now: float) -> CookieJar:
        """Replace the cookie of the same name, domain and path (keeping its creation time);
        an expired one deletes it. The oldest go when the jar is full."""
        old = next((c for c in self.cookies if c.key() == cookie.key()), None)
        kept = [c for c in self.cookies if c.key() != cookie.key()]
        if cookie.expires is not None and cookie.expires <= now:
            return CookieJar(tuple(kept))
        if old is not None:
            cookie = dataclasses.replace(cookie, created=old.created)
        kept.append(cookie)
        kept.sort(key=lambda c: c.created)
        return CookieJar(tuple(kept[-MAX_COOKIES:]))

    def expire(self, now: float) -> CookieJar:
        return CookieJar(tuple(c for c in self.cookies
                               if c.expires is None or c.expires > now))

    # ------------------------------------------------------------------- sending
    def for_url(self, url: UrlAnatomy, now: float) -> list[Cookie]:
        """§5.4: the cookies a request to ``url`` carries, in the order they are sent."""
        host, path = url.host.lower().rstrip("."), _path_of(url)
        chosen = [c for c in self.cookies
                  if (c.expires is None or c.expires > now)
                  and (host == c.domain if c.host_only else domain_match(host, c.domain))
                  and path_match(path, c.path)
                  and (url.scheme == "https" or not c.secure)]
        return sorted(chosen, key=lambda c: (-len(c.path), c.created))

    def header(self, url: UrlAnatomy, now: float) -> str | None:
        """The Cookie field for a request to ``url``, or None when no cookie goes."""
        chosen = self.for_url(url, now)
        return "; ".join(f"{c.name}={c.value}" for c in chosen) if chosen else None


# --------------------------------------------------------------------------- files
def parse_cookie_string(text: str, host: str, now: float) -> CookieJar:
    """curl's ``-b 'a=1; b=2'``: host-only cookies for the typed URL's host, path ``/``
    (curl sends the string to every host; a browser's cookies stay with their host)."""
    jar = CookieJar()
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if eq and name.strip():
            jar = jar.with_cookie(Cookie(name.strip(), value.strip(), host.lower(), "/",
                                         created=now), now)
    return jar


def read_netscape(text: str, now: float) -> CookieJar:
    """A Netscape cookie file (what curl's ``-c`` writes): tab-separated domain, subdomains
    flag, path, secure flag, expiry (unix seconds, 0 for a session cookie), name, value;
    ``#HttpOnly_`` before the domain marks an HttpOnly cookie, other ``#`` lines are
    comments. Lines that do not fit are skipped."""
    jar = CookieJar()
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        http_only = line.startswith(HTTPONLY_PREFIX)
        if http_only:
            line = line[len(HTTPONLY_PREFIX):]
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) == 6:
            parts.append("")
        if len(parts) != 7 or not parts[4].lstrip("-").isdigit():
            continue
        domain, sub, path, secure, expires, name, value = parts
        when = float(int(expires)) or None
        jar = jar.with_cookie(Cookie(name, value, domain.lstrip(".").lower(), path or "/",
                                     host_only=sub.upper() != "TRUE",
                                     secure=secure.upper() == "TRUE", http_only=http_only,
                                     expires=when, created=now), now)
    return jar


def write_netscape(jar: CookieJar) -> str:
    """The jar as a Netscape cookie file, as curl writes it (session cookies with 0)."""
    lines = [NETSCAPE_HEADER, "# written by whathappens (-c); edit at your own risk", ""]
    for c in jar.cookies:
        domain = c.domain if c.host_only else f".{c.domain}"
        expires = 0 if c.expires is None else max(0, int(c.expires))
        lines.append("\t".join([
            (HTTPONLY_PREFIX if c.http_only else "") + domain,
            "FALSE" if c.host_only else "TRUE", c.path, "TRUE" if c.secure else "FALSE",
            str(expires), c.name, c.value]))
    return "\n".join(lines) + "\n"
