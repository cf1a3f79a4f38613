"""Readers of the security headers and cookies, one per header, pure and total: any value
(empty, duplicated, binary junk) gives a reading or a stated "invalid", never an exception.

analysis/security.py grades what these read; they know nothing of the journey.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

Headers = Sequence[tuple[str, str]]

# A CSP directive name (CSP3 §2.2.1: ALPHA / DIGIT / "-"); anything else is not a directive.
_DIRECTIVE = re.compile(r"^[a-z0-9-]+$")
_DIGITS = re.compile(r"^[0-9]+$")
HASH_PREFIXES = ("'sha256-", "'sha384-", "'sha512-")


def values(headers: Headers, name: str) -> list[str]:
    """Every value of the header ``name`` (case-insensitive, RFC 9110 §5.1), in order."""
    key = name.lower()
    return [str(v) for k, v in headers if str(k).lower() == key]


def joined(headers: Headers, name: str) -> str | None:
    """The header's field values joined by ', ' (RFC 9110 §5.3), or None when absent."""
    found = values(headers, name)
    return ", ".join(found) if found else None


# ------------------------------------------------------------------------------ HSTS
@dataclass(frozen=True)
class Hsts:
    max_age: int | None = None
    include_subdomains: bool = False
    preload: bool = False
    error: str | None = None  # why browsers ignore it (RFC 6797 §6.1)


def parse_hsts(value: str) -> Hsts:
    """Strict-Transport-Security per RFC 6797 §6.1: ';'-separated directives, names
    case-insensitive, each at most once, max-age required (delta-seconds, optionally
    quoted); unknown directives are ignored (§6.1 rule 4)."""
    seen: dict[str, str | None] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        name, eq, raw = part.partition("=")
        name = name.strip().lower()
        if name in seen:
            return Hsts(error=f"the directive {name} appears twice (RFC 6797 §6.1 rule 2)")
        seen[name] = raw.strip().strip('"') if eq else None
    if "max-age" not in seen:
        return Hsts(error="no max-age directive (RFC 6797 §6.1.1 requires one)")
    age = seen["max-age"] or ""
    if not _DIGITS.match(age):
        return Hsts(error=f"max-age is not a number of seconds: {age[:40]!r}")
    return Hsts(int(age[:18]), "includesubdomains" in seen, "preload" in seen)


# ------------------------------------------------------------------------------- CSP
@dataclass(frozen=True)
class Csp:
    directives: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    ignored: list[str] = field(default_factory=list)  # repeated or malformed directives

    def get(self, *names: str) -> list[str] | None:
        """The first of ``names`` the policy sets (a fetch directive falls back to
        default-src, CSP3 §6.8.3)."""
        return next((self.directives[n] for n in names if n in self.directives), None)


def parse_csp(value: str) -> Csp:
    """A serialized policy (CSP3 §2.2.1): ';'-separated directives, the name up to the
    first whitespace, lower-cased; a repeated directive is ignored (the first wins), a name
    with other characters is not a directive. No directive at all: the header is invalid."""
    if any(ord(c) > 0x7E or (ord(c) < 0x20 and c != "\t") for c in value):
        return Csp(error="characters outside printable ASCII: not a policy")
    directives: dict[str, list[str]] = {}
    ignored: list[str] = []
    for token in value.split(";"):
        words = token.split()
        if not words:
            continue
        name = words[0].lower()
        if not _DIRECTIVE.match(name) or name in directives:
            ignored.append(name)
            continue
        directives[name] = words[1:]
    if not directives:
        return Csp(error="no directive could be read")
    return Csp(directives, None, ignored)


def _lower(sources: list[str]) -> list[str]:
    return [s.lower() for s in sources]


def keyed(sources: list[str]) -> bool:
    """A nonce or hash source: with one, 'unsafe-inline' is ignored (CSP3 §6.7.3.3)."""
    return any(s.startswith("'nonce-") or s.startswith(HASH_PREFIXES) for s in _lower(sources))


def broad(sources: list[str]) -> bool:
    """A source that allows a whole scheme or everything."""
    return any(s in ("*", "http:", "https:", "data:") for s in _lower(sources))


def insecure(sources: list[str]) -> bool:
    return any(s == "http:" or s.startswith("http://") for s in _lower(sources))


def csp_result(csp: Csp) -> str:
    """The Observatory's result for a readable policy (its content-security-policy test,
    read in our words: scripts and objects must be restricted; loose styles cost nothing;
    a deny-by-default policy earns the most)."""
    script = csp.get("script-src", "default-src")
    obj = csp.get("object-src", "default-src")
    style = csp.get("style-src", "default-src") or []
    if script is None or obj is None or broad(obj):
        return "csp-implemented-with-unsafe-inline"
    strict_dynamic = "'strict-dynamic'" in _lower(script)
    inline = "'unsafe-inline'" in _lower(script) and not keyed(script)
    if inline or "data:" in _lower(script) or (broad(script) and not strict_dynamic):
        return "csp-implemented-with-unsafe-inline"
    passive = [s for n in ("img-src", "media-src") for s in csp.directives.get(n, [])]
    active = [s for n, ss in csp.directives.items() if n not in (
        "img-src", "media-src", "report-uri", "report-to") for s in ss]
    if insecure(active):
        return "csp-implemented-with-insecure-scheme"
    if "'unsafe-eval'" in _lower(script):
        return "csp-implemented-with-unsafe-eval"
    if insecure(passive):
        return "csp-implemented-with-insecure-scheme-in-passive-content-only"
    if ("'unsafe-inline'" in _lower(style) and not keyed(style)) or broad(style):
        return "csp-implemented-with-unsafe-inline-in-style-src-only"
    default = _lower(csp.directives.get("default-src", []))
    form = _lower(csp.directives.get("form-action", []))
    if default == ["'none'"] and form and set(form) <= {"'none'", "'self'"}:
        return "csp-implemented-with-no-unsafe-default-src-none"
    return "csp-implemented-with-no-unsafe"


def csp_gaps(csp: Csp) -> list[str]:
    """What a policy leaves open beyond the grade: the directives worth setting."""
    out: list[str] = []
    if "default-src" not in csp.directives:
        out.append("no default-src: any resource type without its own directive loads from "
                   "anywhere")
    if csp.get("object-src", "default-src") is None:
        out.append("no object-src: plugins (<object>, <embed>) are unrestricted; set "
                   "object-src 'none'")
    if "base-uri" not in csp.directives:
        out.append("no base-uri: an injected <base> can re-point relative script URLs; set "
                   "base-uri 'self' (base-uri does not fall back to default-src)")
    if "frame-ancestors" not in csp.directives:
        out.append("no frame-ancestors: framing is left to X-Frame-Options")
    script = csp.get("script-src", "default-src") or []
    if "'unsafe-inline'" in _lower(script) and keyed(script):
        out.append("'unsafe-inline' beside a nonce or hash is ignored by CSP3 browsers "
                   "(kept for old ones)")
    if csp.ignored:
        out.append("ignored (repeated or malformed): " + ", ".join(csp.ignored[:5]))
    return out


# --------------------------------------------------------------------------- cookies
@dataclass(frozen=True)
class Cookie:
    name: str
    secure: bool = False
    http_only: bool = False
    same_site: str | None = None
    domain: str | None = None
    path: str | None = None
    persistent: bool = False


def parse_cookie(value: str) -> Cookie:
    """A Set-Cookie line (RFC 6265bis §5.6): name=value, then ';'-separated attributes,
    names case-insensitive; a pair without '=' is a cookie with an empty name."""
    first, *attrs = value.split(";")
    name, eq, _ = first.partition("=")
    out: dict[str, str | None] = {}
    for a in attrs:
        key, has, val = a.partition("=")
        out.setdefault(key.strip().lower(), val.strip() if has else None)
    return Cookie(
        name=name.strip() if eq else "",
        secure="secure" in out, http_only="httponly" in out,
        same_site=out.get("samesite") if "samesite" in out else None,
        domain=out.get("domain"), path=out.get("path"),
        persistent="expires" in out or "max-age" in out)


def cookie_problems(c: Cookie, over_https: bool) -> list[str]:
    """What RFC 6265bis and good practice say about this cookie, worst first."""
    out: list[str] = []
    lower = c.name.lower()
    if lower.startswith("__host-") and not (c.secure and c.domain is None and c.path == "/"):
        out.append("__Host- needs Secure, Path=/ and no Domain: browsers reject it "
                   "(RFC 6265bis §4.1.3.2)")
    elif lower.startswith("__secure-") and not c.secure:
        out.append("__Secure- needs Secure: browsers reject it (RFC 6265bis §4.1.3.1)")
    if c.secure and not over_https:
        out.append("Secure set over plain http: browsers reject it (RFC 6265bis §5.7)")
    if not over_https:
        out.append("set over plain http: visible to anyone on the path")
    same = (c.same_site or "").strip().lower()
    if c.same_site is not None and same not in ("strict", "lax", "none"):
        out.append(f"SameSite={c.same_site[:20]!r} is not Strict, Lax or None")
    if same == "none" and not c.secure:
        out.append("SameSite=None without Secure: browsers reject it")
    if not c.secure:
        out.append("no Secure: it would ride along on a plain-http request")
    if session_name(c.name) and not c.http_only:
        out.append("a session cookie without HttpOnly: page scripts can read it")
    if c.same_site is None:
        out.append("no SameSite: browsers apply their default (Lax in Chromium); say "
                   "SameSite=Lax or Strict")
    return out


def session_name(name: str) -> bool:
    """The Observatory's test for a session or login cookie: its name holds sess or login."""
    return any(k in name.lower() for k in ("sess", "login"))
