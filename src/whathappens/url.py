"""Step 0 of the journey: what the browser reads out of a URL before any packet leaves.

Theory of operation
-------------------
``parse_url`` takes what the user typed and returns a ``UrlAnatomy``: every part of the URL
in the form it will take on the wire, plus the facts a browser works out before it opens a
socket (is the scheme assumed, is the host on the HSTS preload list, what is the registrable
domain). It is pure: no DNS, no sockets, no clock, no file writes.

The parser follows the WHATWG URL Standard for "special" schemes (http, https), because
that is what browsers do with the address bar and with ``Location`` headers, and falls back
on RFC 3986 where WHATWG is silent. Where we deliberately differ from a browser it is
because we are about to hand the name to a DNS resolver, so DNS rules win (RFC 1035 §2.3.4
lengths, RFC 1123 §2.1 host name characters, no empty labels). The steps:

1. clean the input the way a browser does (strip C0 controls and spaces, drop tabs and
   newlines),
2. find the scheme, or assume ``https://`` when there is none (``localhost:8080`` is a host
   and a port, not the scheme ``localhost``),
3. cut authority / path / query / fragment at their delimiters,
4. parse the host: ``[IPv6]``, the WHATWG IPv4 spellings (``0x7f.1``, ``2130706433``), or a
   domain mapped with UTS-46 and encoded to A-labels (RFC 5891),
5. percent-encode path, query and fragment with the WHATWG encode sets,
6. look up the HSTS preload list (RFC 6797 §8.3: upgrade http to https before any packet)
   and the public suffix list (offline snapshot bundled with tldextract).

``idna``, ``tldextract`` and ``hstspreload`` are imported on first use: together they cost
more to import than the rest of the CLI's cold start budget allows.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from whathappens.contract.codec import to_json
from whathappens.contract.facts import UrlFacts
from whathappens.errors import UrlError

__all__ = [
    "DEFAULT_PORTS",
    "UrlAnatomy",
    "is_default_port",
    "parse_url",
    "resolve_reference",
]

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}

# Schemes people really type that are not http(s): reported as unsupported rather than
# mistaken for a host name followed by a port ("tel:5551234" is not host "tel", port 5551234).
_KNOWN_OTHER_SCHEMES = frozenset(
    re.findall(
        r"\S+",
        "about blob chrome data feed file ftp ftps geo git gopher imap irc ircs javascript ldap "
        "ldaps magnet mailto news nntp rtsp sftp sip sips smb sms ssh tel telnet urn view-source "
        "webcal ws wss xmpp",
    )
)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")  # RFC 3986 §3.1
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
_DIGITS = re.compile(r"[0-9]+")
_HOST_LABEL = re.compile(r"[a-z0-9_-]+")  # RFC 1123 §2.1 letters/digits/hyphen, plus "_"
_PERCENT_BYTE = re.compile(rb"%([0-9A-Fa-f]{2})")
_URI_REFERENCE = re.compile(  # RFC 3986 Appendix B, with the scheme limited to §3.1 syntax
    r"(?:([A-Za-z][A-Za-z0-9+.\-]*):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.S
)

# WHATWG URL §1.3 percent-encode sets, beyond the C0 controls, DEL and non-ASCII that every
# set includes. "^" in paths: the WHATWG path set has it, and RFC 3986 §3.3 never allows it raw.
_FRAGMENT_SET = frozenset(' "<>`')
_QUERY_SET = frozenset(" \"#<>'")  # the *special*-query set: http(s) also encode "'"
_PATH_SET = frozenset(' "#<>?^`{}')
_USERINFO_SET = _PATH_SET | frozenset("/:;=@[\\]|")

_MAX_LABEL = 63  # RFC 1035 §2.3.4
_MAX_NAME = 253  # 255 octets on the wire = 253 characters in dotted form


@dataclass(frozen=True)
class UrlAnatomy:
    """A URL taken apart, each part in the form that goes on the wire."""

    original: str = field(repr=False)  # what the user typed (may hold a password: not in repr)
    scheme: str  # "http" | "https"
    scheme_assumed: bool  # the user typed no scheme; we assumed https:// as browsers now do
    username: str | None
    password: str | None = field(repr=False)  # to_dict() shows "***"
    host: str  # wire form: A-labels, dotted-quad IPv4, compressed IPv6 without brackets
    host_unicode: str  # display form (U-labels)
    host_kind: str  # "domain" | "ipv4" | "ipv6"
    host_spelled: str | None  # the host as typed when it differs from the canonical form
    port: int
    port_explicit: bool
    path: str  # percent-encoded, dot segments removed, "/" when empty
    query: str | None  # without "?"; "" when "?" is present but empty
    fragment: str | None  # without "#"; stays in the browser, never sent to the server
    public_suffix: str | None
    registrable_domain: str | None  # eTLD+1; None for IPs and for bare public suffixes
    hsts_preloaded: bool
    upgraded_from_http: bool  # http:// became https:// before any packet (RFC 6797 §8.3)
    original_redacted: str = field(default="", compare=False)  # original, password masked

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def request_target(self) -> str:
        """The origin-form request target (RFC 9112 §3.2.1): path and query, no fragment."""
        return self.path if self.query is None else f"{self.path}?{self.query}"

    @property
    def authority(self) -> str:
        """The Host header value (RFC 9110 §7.2): the port only when not the default."""
        host = f"[{self.host}]" if self.host_kind == "ipv6" else self.host
        return host if is_default_port(self.scheme, self.port) else f"{host}:{self.port}"

    def url(self) -> str:
        """The normalized URL that will be fetched. The fragment is left out: it is never sent."""
        return self._serialize(self.password)

    def _serialize(self, password: str | None) -> str:
        userinfo = ""
        if self.username is not None or password is not None:
            userinfo = (self.username or "") + ("" if password is None else f":{password}") + "@"
        return f"{self.scheme}://{userinfo}{self.authority}{self.request_target}"

    def facts(self, typed: str = "") -> UrlFacts:
        """The URL step's facts; ``typed`` is what the user typed (``input``)."""
        masked = None if self.password is None else "***"
        return UrlFacts(
            input=typed,
            original=self.original_redacted or (self.original if masked is None else "***"),
            url=self._serialize(masked),
            scheme=self.scheme,
            scheme_assumed=self.scheme_assumed,
            username=self.username,
            password=masked,
            host=self.host,
            host_unicode=self.host_unicode,
            host_kind=self.host_kind,
            host_spelled=self.host_spelled,
            port=self.port,
            port_explicit=self.port_explicit,
            authority=self.authority,
            path=self.path,
            query=self.query,
            request_target=self.request_target,
            fragment=self.fragment,
            fragment_sent=False,
            origin=self.origin,
            public_suffix=self.public_suffix,
            registrable_domain=self.registrable_domain,
            hsts_preloaded=self.hsts_preloaded,
            upgraded_from_http=self.upgraded_from_http,
        )

    def to_dict(self) -> dict[str, object]:
        """The facts as JSON, without ``input`` (a URL parsed on its own was not typed)."""
        out = to_json(self.facts())
        assert isinstance(out, dict)
        out.pop("input")
        out.pop("public_suffix_note")
        return dict(out)


def is_default_port(scheme: str, port: int) -> bool:
    return DEFAULT_PORTS.get(scheme.lower()) == port


def parse_url(
    text: str, *, hsts_upgrade: bool = True, with_public_suffix: bool = True
) -> UrlAnatomy:
    """Take apart what the user typed, as a browser's address bar would.

    ``with_public_suffix=False`` leaves ``public_suffix``/``registrable_domain`` unset: the
    suffix list costs ~150 ms to load and no packet depends on it, so the journey asks for
    it (``public_suffix_of``) after the network steps.
    """
    original = text
    text = _clean(text)
    scheme, rest, scheme_assumed = _split_scheme(text)

    rest, _, fragment_raw = _partition(rest, "#")
    rest, _, query_raw = _partition(rest, "?")
    if scheme_assumed and rest.startswith("/") and not rest.startswith("//"):
        raise UrlError("url.host_missing", "The URL starts with a path; there is no host name.")
    # WHATWG "special authority ignore slashes": http:example.com and http:///example.com
    # both name the host example.com; "\" counts as "/" in special URLs.
    rest = rest.lstrip("/\\")
    cut = min((i for i in (rest.find("/"), rest.find("\\")) if i >= 0), default=len(rest))
    authority, path_raw = rest[:cut], rest[cut:]

    userinfo, at, hostport = authority.rpartition("@")  # WHATWG: the last "@" ends userinfo
    username = password = None
    redacted = original
    if at:
        user_raw, colon, pass_raw = userinfo.partition(":")
        username = _encode(user_raw, _USERINFO_SET) or None
        password = _encode(pass_raw, _USERINFO_SET) if colon and pass_raw else None
        if password is not None:
            redacted = _redact(original, text, pass_raw)

    host_typed, port_raw = _split_host_port(hostport)
    host, host_unicode, host_kind = _parse_host(host_typed)
    port_explicit = bool(port_raw)
    port = _parse_port(port_raw) if port_raw else DEFAULT_PORTS[scheme]

    spelled = host_typed.removeprefix("[").removesuffix("]")
    host_spelled = None if spelled.lower() in (host, host_unicode.lower()) else spelled

    public_suffix = registrable = None
    preloaded = False
    if host_kind == "domain":
        if with_public_suffix:
            public_suffix, registrable = public_suffix_of(host)
        preloaded = _hsts_preloaded(host.removesuffix("."))
    upgraded = False
    if scheme == "http" and preloaded and hsts_upgrade:
        # RFC 6797 §8.3: rewrite the scheme to https; an implied port, or an explicit 80,
        # becomes 443. Any other explicit port is kept.
        scheme, upgraded = "https", True
        if port == 80:
            port = 443

    return UrlAnatomy(
        original=original,
        scheme=scheme,
        scheme_assumed=scheme_assumed,
        username=username,
        password=password,
        host=host,
        host_unicode=host_unicode,
        host_kind=host_kind,
        host_spelled=host_spelled,
        port=port,
        port_explicit=port_explicit,
        path=_normalize_path(path_raw),
        query=None if query_raw is None else _encode(query_raw, _QUERY_SET),
        fragment=None if fragment_raw is None else _encode(fragment_raw, _FRAGMENT_SET),
        public_suffix=public_suffix,
        registrable_domain=registrable,
        hsts_preloaded=preloaded,
        upgraded_from_http=upgraded,
        original_redacted=redacted,
    )


def resolve_reference(base: str, reference: str) -> str:
    """Resolve a reference (a redirect's Location) against an absolute base URL.

    RFC 3986 §5.2, in its non-strict form (§5.2.2: a reference whose scheme equals the
    base's is treated as relative), plus what browsers do for http(s) (WHATWG URL):
    "\\" counts as "/", and any run of slashes before an authority counts as "//".
    The base is meant to be a URL we fetched (``UrlAnatomy.url()``). The result is not yet
    percent-encoded: ``parse_url`` it to get the next request's wire form.
    """
    base = _clean(base)
    m = _SCHEME.match(base)
    if m is None:
        raise UrlError("url.base_invalid", f"Cannot resolve against {base!r}: not an absolute URL.")
    b_scheme = m.group(1).lower()
    if b_scheme in DEFAULT_PORTS:  # a browser's base is itself a parsed, normalized URL
        base = f"{b_scheme}:" + _special_form(base[m.end() :], authority=True)
    base_parts = _URI_REFERENCE.fullmatch(base)
    assert base_parts is not None  # every component of the pattern is optional
    _, b_auth, b_path, b_query, _ = base_parts.groups()
    b_path = _remove_dot_segments(b_path)

    ref = _clean(reference)
    m = _SCHEME.match(ref)
    r_scheme = m.group(1).lower() if m else None
    if m is not None and r_scheme == b_scheme:
        ref, r_scheme = ref[m.end() :], None  # non-strict: the same scheme means relative
    if r_scheme is None and b_scheme in DEFAULT_PORTS:
        ref = _special_form(ref, authority=len(ref) > 1 and set(ref[:2]) <= {"/", "\\"})
    elif r_scheme in DEFAULT_PORTS:
        ref = f"{r_scheme}:" + _special_form(ref[len(r_scheme) + 1 :], authority=True)

    r = _URI_REFERENCE.fullmatch(ref)
    assert r is not None  # every component of the pattern is optional
    _, r_auth, r_path, r_query, r_fragment = r.groups()
    if r_scheme is not None:
        scheme, auth, path, query = r_scheme, r_auth, _remove_dot_segments(r_path), r_query
    else:
        scheme = b_scheme
        if r_auth is not None:
            auth, path, query = r_auth, _remove_dot_segments(r_path), r_query
        else:
            auth = b_auth
            if not r_path:
                path, query = b_path, (b_query if r_query is None else r_query)
            else:
                if not r_path.startswith("/"):  # §5.2.3 merge
                    prefix = "/" if b_auth is not None and not b_path else b_path
                    r_path = prefix[: prefix.rfind("/") + 1] + r_path
                path, query = _remove_dot_segments(r_path), r_query
    # §5.3 recomposition
    out = f"{scheme}:" + ("" if auth is None else f"//{auth}") + path
    out += "" if query is None else f"?{query}"
    return out + ("" if r_fragment is None else f"#{r_fragment}")


# --- steps of parse_url ------------------------------------------------------------------


def _clean(text: str) -> str:
    # WHATWG basic URL parser: strip leading/trailing C0 control or space, remove every
    # tab and newline inside. Lone surrogates cannot be UTF-8 encoded: U+FFFD, as browsers.
    text = _TAB_OR_NEWLINE.sub("", text.strip(_C0_OR_SPACE))
    return _SURROGATE.sub("\ufffd", text)


def _split_scheme(text: str) -> tuple[str, str, bool]:
    m = _SCHEME.match(text)
    if m is None:
        return "https", text, True
    scheme, rest = m.group(1).lower(), text[m.end() :]
    if scheme in DEFAULT_PORTS:
        return scheme, rest, False
    # "localhost:8080", "example.com:443", "user:pw@host": a host (and port), not a scheme.
    head = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    host_like = not rest.startswith("//") and scheme not in _KNOWN_OTHER_SCHEMES
    if host_like and (re.fullmatch(r"[0-9]*", head) or "." in scheme or "@" in head):
        return "https", text, True
    raise UrlError(
        "url.scheme_unsupported",
        f"The URL uses the {scheme}: scheme; whathappens can only follow http:// and "
        "https:// URLs.",
    )


def _partition(text: str, sep: str) -> tuple[str, str, str | None]:
    head, found, tail = text.partition(sep)
    return head, found, (tail if found else None)


def _special_form(rest: str, *, authority: bool) -> str:
    """WHATWG for http(s): "\\" is "/" before the query; any run of slashes opens the authority."""
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head = rest[:cut].replace("\\", "/")
    if authority:
        head = "//" + head.lstrip("/")
    return head + rest[cut:]


def _redact(original: str, cleaned: str, raw_password: str) -> str:
    needle = f":{raw_password}@"
    source = original if needle in original else cleaned
    return source.replace(needle, ":***@", 1)


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise UrlError("url.host_invalid", "The IPv6 address opened with '[' is never closed.")
        after = hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise UrlError("url.host_invalid", f"Unexpected {after!r} after the IPv6 address.")
        return hostport[: end + 1], after[1:] or None
    if hostport.count(":") > 1 and _is_ipv6(hostport):
        raise UrlError(
            "url.host_invalid",
            f"{hostport} looks like an IPv6 address: write it in brackets, as [{hostport}].",
        )
    host, colon, port = hostport.partition(":")
    return host, (port if colon else None)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _parse_port(text: str) -> int:
    # WHATWG allows leading zeros ("00080" is 80); port 0 cannot be connected to.
    digits = text.lstrip("0")
    if not _DIGITS.fullmatch(text) or not digits or len(digits) > 5 or int(digits) > 65535:
        raise UrlError("url.port_invalid", f"The port {text!r} is not a number from 1 to 65535.")
    return int(digits)


def _parse_host(typed: str) -> tuple[str, str, str]:
    """WHATWG host parser for special schemes, with DNS rules on top (see module doc)."""
    if not typed:
        raise UrlError("url.host_missing", "The URL has no host name.")
    if typed.startswith("["):
        inner = typed[1:-1]
        if "%" in inner:
            # RFC 6874 zone ids are not part of the WHATWG URL syntax, and they only mean
            # something on the machine that typed them.
            raise UrlError("url.host_invalid", "IPv6 zone ids (the '%' part) are not supported.")
        try:
            address = str(ipaddress.IPv6Address(inner))
        except ValueError as exc:
            raise UrlError("url.host_invalid", f"[{inner}] is not a valid IPv6 address.") from exc
        return address, address, "ipv6"

    import idna

    # Percent-decode, then UTF-8 decode; bytes that are not UTF-8 become U+FFFD, which
    # UTS-46 rejects (WHATWG host parser steps 4-5).
    raw = _PERCENT_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), typed.encode("utf-8"))
    decoded = raw.decode("utf-8", errors="replace")
    try:
        # UTS-46 §4 mapping, non-transitional (ß stays ß), UseSTD3ASCIIRules off as in WHATWG:
        # lowercases, folds full-width forms and "。" dots, drops ignorable code points.
        mapped = idna.uts46_remap(decoded, std3_rules=False)
    except idna.IDNAError as exc:
        raise UrlError(
            "url.host_invalid", f"The host {typed!r} is not a valid name: {exc}."
        ) from exc
    if not mapped:
        raise UrlError(
            "url.host_invalid", f"Nothing is left of the host {typed!r} after IDNA mapping."
        )
    if _ends_in_number(mapped):
        address = _parse_ipv4(mapped, typed)
        return address, address, "ipv4"
    return (*_domain_to_ascii(mapped, typed, idna), "domain")


def _domain_to_ascii(mapped: str, typed: str, idna: Any) -> tuple[str, str]:
    labels = mapped.split(".")
    trailing_dot = len(labels) > 1 and labels[-1] == ""  # "example.com." is a valid FQDN
    if trailing_dot:
        labels.pop()
    ascii_labels: list[str] = []
    unicode_labels: list[str] = []
    for label in labels:
        if not label:
            raise UrlError("url.host_invalid", f"The host {typed!r} has an empty label ('..').")
        try:
            if not label.isascii():
                ascii_label, unicode_label = idna.alabel(label).decode("ascii"), label
            elif label.startswith("xn--"):
                # RFC 5891 §5.3: an A-label must decode, pass IDNA2008, and re-encode exactly.
                ascii_label, unicode_label = label, idna.ulabel(label)
            elif _HOST_LABEL.fullmatch(label):
                ascii_label = unicode_label = label
            else:
                bad = next(c for c in label if not _HOST_LABEL.fullmatch(c))
                raise UrlError(
                    "url.host_invalid",
                    f"The host {typed!r} contains {bad!r}; host names may only use letters, "
                    "digits, '-' and '_'.",
                )
        except idna.IDNAError as exc:
            raise UrlError(
                "url.host_invalid",
                f"The label {label!r} of {typed!r} is not a valid internationalized name "
                f"(IDNA, RFC 5891): {exc}.",
            ) from exc
        if len(ascii_label) > _MAX_LABEL:
            raise UrlError(
                "url.host_invalid",
                f"The label {ascii_label[:20]}... is {len(ascii_label)} characters long; DNS "
                f"allows at most {_MAX_LABEL} per label.",
            )
        ascii_labels.append(ascii_label)
        unicode_labels.append(unicode_label)
    name = ".".join(ascii_labels)
    if len(name) > _MAX_NAME:
        raise UrlError(
            "url.host_invalid",
            f"The host name is {len(name)} characters long; DNS allows at most {_MAX_NAME}.",
        )
    dot = "." if trailing_dot else ""
    return name + dot, ".".join(unicode_labels) + dot


def _ipv4_number(part: str) -> int | None:
    """WHATWG "IPv4 number parser": 0x hex, leading-0 octal, else decimal."""
    radix, digits = 10, "0123456789"
    if part[:2].lower() == "0x":
        part, radix, digits = part[2:], 16, "0123456789abcdef"
    elif len(part) > 1 and part[0] == "0":
        part, radix, digits = part[1:], 8, "01234567"
    if not part:
        return 0  # "0x" alone is zero
    if any(c not in digits for c in part.lower()):
        return None
    # Anything this long is out of range anyway; don't feed int() megabytes of digits.
    return int(part, radix) if len(part) <= 32 else 2**32


def _ends_in_number(host: str) -> bool:
    """WHATWG "ends in a number checker": such a host is IPv4 or nothing."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    return bool(_DIGITS.fullmatch(last)) or (last != "" and _ipv4_number(last) is not None)


def _parse_ipv4(host: str, typed: str) -> str:
    """WHATWG IPv4 parser: 1 to 4 parts, the last one filling the remaining bytes."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    invalid = f"The host {typed!r} ends in a number, so it must be an IPv4 address, but "
    if len(parts) > 4:
        raise UrlError("url.host_invalid", invalid + "it has more than four parts.")
    numbers: list[int] = []
    for part in parts:
        number = _ipv4_number(part) if part else None
        if number is None:
            raise UrlError("url.host_invalid", invalid + f"{part!r} is not a number.")
        numbers.append(number)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UrlError("url.host_invalid", invalid + "a part is out of range.")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def _encode(text: str, unsafe: frozenset[str]) -> str:
    """UTF-8 percent-encode (WHATWG URL §1.3); existing %XX escapes are left as they are."""
    if text.isascii() and text.isprintable() and not unsafe.intersection(text):
        return text
    out: list[str] = []
    for ch in text:
        if ch in unsafe or not " " <= ch <= "~":
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def _normalize_path(raw: str) -> str:
    # WHATWG path state: "\" is "/" in special URLs; "%2e" is a "." in dot segments.
    path = _remove_dot_segments(raw.replace("\\", "/") or "/", percent_dots=True)
    return "/".join(_encode(segment, _PATH_SET) for segment in path.split("/"))


def _remove_dot_segments(path: str, *, percent_dots: bool = False) -> str:
    """RFC 3986 §5.2.4, segment by segment; a trailing "." or ".." leaves a trailing "/"."""
    absolute = path.startswith("/")
    segments = path.split("/")[1:] if absolute else path.split("/")
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        name = segment.lower().replace("%2e", ".") if percent_dots else segment
        if name == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif name == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return ("/" if absolute else "") + "/".join(out)


def public_suffix_of(host: str) -> tuple[str | None, str | None]:
    """(public suffix, registrable domain) of a domain name, from the offline PSL snapshot."""
    from whathappens import psl

    return psl.split(host)


def _hsts_preloaded(name: str) -> bool:
    import hstspreload

    return bool(hstspreload.in_hsts_preload(name))
