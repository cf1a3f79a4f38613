"""Step 0, URL anatomy: real cases for every field and error, WHATWG and RFC 3986 vectors,
and Hypothesis properties (never crash, always round-trip)."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whathappens import psl
from whathappens.errors import UrlError
from whathappens.url import (
    UrlAnatomy,
    is_default_port,
    parse_url,
    resolve_reference,
)

DATA = Path(__file__).parent / "data" / "whatwg_host_vectors.json"


def error_of(text: str, **kwargs: Any) -> UrlError:
    with pytest.raises(UrlError) as info:
        parse_url(text, **kwargs)
    return info.value


# --- scheme ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "scheme", "assumed"),
    [
        ("https://example.com/", "https", False),
        ("HTTP://example.com/", "http", False),
        ("www.example.com/path", "https", True),
        ("example.com", "https", True),
        ("//example.com/x", "https", True),
    ],
)
def test_scheme_is_lowercased_or_assumed(typed: str, scheme: str, assumed: bool) -> None:
    anatomy = parse_url(typed, hsts_upgrade=False)
    assert (anatomy.scheme, anatomy.scheme_assumed) == (scheme, assumed)


@pytest.mark.parametrize(
    ("typed", "host", "port", "explicit"),
    [
        ("localhost:8080", "localhost", 8080, True),
        ("example.com:443", "example.com", 443, True),
        ("example.com:8443/admin?x=1", "example.com", 8443, True),
        ("localhost:8080/", "localhost", 8080, True),
        ("example.com:", "example.com", 443, False),
    ],
)
def test_host_and_port_without_scheme_are_not_a_scheme(
    typed: str, host: str, port: int, explicit: bool
) -> None:
    anatomy = parse_url(typed)
    assert anatomy.scheme == "https"
    assert anatomy.scheme_assumed
    assert (anatomy.host, anatomy.port, anatomy.port_explicit) == (host, port, explicit)


def test_userinfo_without_scheme_is_userinfo() -> None:
    anatomy = parse_url("alice:s3cret@example.com/inbox")
    assert (anatomy.username, anatomy.password, anatomy.host) == ("alice", "s3cret", "example.com")
    assert anatomy.path == "/inbox"


@pytest.mark.parametrize(
    ("typed", "scheme"),
    [
        ("ftp://ftp.example.com/file.txt", "ftp"),
        ("file:///etc/passwd", "file"),
        ("javascript:alert(1)", "javascript"),
        ("mailto:someone@example.com", "mailto"),
        ("data:text/plain,hello", "data"),
        ("ws://example.com/socket", "ws"),
        ("tel:5551234", "tel"),
        ("gopher://example.com", "gopher"),
        ("made-up:thing", "made-up"),
    ],
)
def test_other_schemes_are_refused_in_plain_words(typed: str, scheme: str) -> None:
    err = error_of(typed)
    assert err.code == "url.scheme_unsupported"
    assert f"{scheme}:" in err.message
    assert "http://" in err.message
    assert "https://" in err.message
    assert err.exit_code == 3


def test_surrounding_whitespace_and_inner_tabs_newlines_are_dropped() -> None:
    anatomy = parse_url("  \t https://exa\tmple.com/pa\nth?q=1 \r\n")
    assert anatomy.url() == "https://example.com/path?q=1"
    assert anatomy.original == "  \t https://exa\tmple.com/pa\nth?q=1 \r\n"


# --- userinfo ----------------------------------------------------------------------------


def test_password_is_kept_but_masked_in_dict_and_repr() -> None:
    anatomy = parse_url("https://alice:s3cret@example.com/")
    assert anatomy.username == "alice"
    assert anatomy.password == "s3cret"
    assert anatomy.url() == "https://alice:s3cret@example.com/"
    shown = anatomy.to_dict()
    assert shown["password"] == "***"
    assert shown["url"] == "https://alice:***@example.com/"
    assert shown["original"] == "https://alice:***@example.com/"
    assert "s3cret" not in json.dumps(shown)
    assert "s3cret" not in repr(anatomy)


def test_hand_built_anatomy_does_not_leak_the_password_through_original() -> None:
    parsed = parse_url("https://alice:s3cret@example.com/")
    rebuilt = UrlAnatomy(**{**parsed.__dict__, "original_redacted": ""})
    assert rebuilt == parsed
    assert "s3cret" not in json.dumps(rebuilt.to_dict())


def test_userinfo_is_percent_encoded_and_split_at_the_last_at_sign() -> None:
    anatomy = parse_url("https://us er@home:p@ss:w@example.com/")
    assert anatomy.username == "us%20er%40home"
    assert anatomy.password == "p%40ss%3Aw"
    assert anatomy.host == "example.com"


def test_no_userinfo_means_none() -> None:
    anatomy = parse_url("https://@example.com/")
    assert (anatomy.username, anatomy.password) == (None, None)
    assert anatomy.to_dict()["password"] is None


# --- host: domains -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "host", "host_unicode"),
    [
        ("https://EXAMPLE.com/", "example.com", "example.com"),
        ("https://Bücher.example/", "xn--bcher-kva.example", "bücher.example"),
        ("https://xn--bcher-kva.example/", "xn--bcher-kva.example", "bücher.example"),
        ("https://faß.de/", "xn--fa-hia.de", "faß.de"),  # UTS-46 non-transitional: ß stays
        ("https://例え.テスト/", "xn--r8jz45g.xn--zckzah", "例え.テスト"),
        ("https://ＥＸＡＭＰＬＥ。com/", "example.com", "example.com"),  # full-width folded
        ("https://www.example.com./", "www.example.com.", "www.example.com."),
        ("https://_dmarc.example.com/", "_dmarc.example.com", "_dmarc.example.com"),
    ],
)
def test_domain_host_wire_and_display_forms(typed: str, host: str, host_unicode: str) -> None:
    anatomy = parse_url(typed)
    assert anatomy.host_kind == "domain"
    assert (anatomy.host, anatomy.host_unicode) == (host, host_unicode)


def test_host_spelled_records_only_odd_spellings() -> None:
    assert parse_url("https://EXAMPLE.com/").host_spelled is None
    assert parse_url("https://Bücher.example/").host_spelled is None
    assert parse_url("https://%65xample.com/").host_spelled == "%65xample.com"
    assert parse_url("https://ｅxample.com/").host_spelled == "ｅxample.com"


def test_percent_encoded_host_is_decoded() -> None:
    assert parse_url("https://%65xample.com/").host == "example.com"


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("", "url.host_missing"),
        ("   ", "url.host_missing"),
        ("https://", "url.host_missing"),
        ("http:///", "url.host_missing"),
        ("https://:8443/", "url.host_missing"),
        ("https://user:pw@/path", "url.host_missing"),
        ("https://?q", "url.host_missing"),
        ("/just/a/path", "url.host_missing"),
    ],
)
def test_missing_host(typed: str, code: str) -> None:
    assert error_of(typed).code == code


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("https://exa mple.com/", "' '"),
        ("https://exa!mple.com/", "'!'"),
        ("https://a..b.example/", "empty label"),
        ("https://.example.com/", "empty label"),
        ("https://" + "a" * 64 + ".example/", "at most 63"),
        ("https://" + ".".join(["a" * 63] * 4) + "/", "at most 253"),
        ("https://xn--a.example/", "IDNA"),
        ("https://\u200d.example/", "IDNA"),
        ("https://\ufdd0zyx.com/", "not a valid name"),
        ("https://\u00ad/", "Nothing is left"),
        ("https://example.com%80/", "not a valid name"),
        ("https://ho%2Fst/", "'/'"),
        ("https://[::1/", "never closed"),
        ("https://[::1]x/", "after the IPv6"),
        ("https://[::1%25eth0]/", "zone"),
        ("https://[fe80::1%eth0]/", "zone"),
        ("https://[2001:db8::g]/", "not a valid IPv6"),
        ("https://2001:db8::1/", "brackets"),
        ("https://256.256.256.256/", "out of range"),
        ("https://4294967296/", "out of range"),
        ("https://1.2.3.4.5/", "more than four parts"),
        ("https://foo.1.2.3/", "'foo' is not a number"),
        ("https://1.2.3.09/", "'09' is not a number"),
    ],
)
def test_invalid_host_says_which_rule(typed: str, says: str) -> None:
    err = error_of(typed)
    assert err.code == "url.host_invalid"
    assert says in err.message


# --- host: IP literals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["0x7f.1", "2130706433", "0177.0.0.1", "127.1", "0x7f000001", "127.0.0.1.", "0x7F.0.0.1"],
)
def test_ipv4_odd_spellings_are_canonicalized_and_remembered(spelling: str) -> None:
    anatomy = parse_url(f"http://{spelling}/")
    assert (anatomy.host, anatomy.host_unicode, anatomy.host_kind) == (
        "127.0.0.1",
        "127.0.0.1",
        "ipv4",
    )
    assert anatomy.host_spelled == spelling


def test_plain_ipv4_has_no_odd_spelling_and_no_suffix() -> None:
    anatomy = parse_url("http://192.0.2.7:8080/")
    assert anatomy.host_spelled is None
    assert (anatomy.public_suffix, anatomy.registrable_domain) == (None, None)
    assert not anatomy.hsts_preloaded
    assert anatomy.authority == "192.0.2.7:8080"


@pytest.mark.parametrize(
    ("typed", "host", "port", "authority"),
    [
        ("[::1]", "::1", 443, "[::1]"),
        ("https://[2001:DB8::1]:8443/", "2001:db8::1", 8443, "[2001:db8::1]:8443"),
        ("http://[2001:db8:0:0:0:0:0:1]/", "2001:db8::1", 80, "[2001:db8::1]"),
        ("http://[::ffff:192.0.2.1]/", "::ffff:c000:201", 80, "[::ffff:c000:201]"),
    ],
)
def test_ipv6_literals_are_compressed_without_brackets(
    typed: str, host: str, port: int, authority: str
) -> None:
    anatomy = parse_url(typed)
    assert anatomy.host_kind == "ipv6"
    assert (anatomy.host, anatomy.port, anatomy.authority) == (host, port, authority)
    assert anatomy.host == str(ipaddress.IPv6Address(host))
    assert anatomy.public_suffix is None


# --- port --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "port", "explicit", "authority"),
    [
        ("http://example.com/", 80, False, "example.com"),
        ("https://example.com/", 443, False, "example.com"),
        ("https://example.com:443/", 443, True, "example.com"),
        ("http://example.com:8080/", 8080, True, "example.com:8080"),
        ("https://example.com:80/", 80, True, "example.com:80"),
        ("https://example.com:00080/", 80, True, "example.com:80"),
        ("https://example.com:65535/", 65535, True, "example.com:65535"),
        ("https://example.com:1/", 1, True, "example.com:1"),
    ],
)
def test_port_explicit_or_implied(typed: str, port: int, explicit: bool, authority: str) -> None:
    anatomy = parse_url(typed)
    assert (anatomy.port, anatomy.port_explicit, anatomy.authority) == (port, explicit, authority)


@pytest.mark.parametrize(
    "port", ["0", "000", "65536", "99999999999", "-1", "abc", "80a", "٨٠", " 80"]
)
def test_invalid_port(port: str) -> None:
    err = error_of(f"https://example.com:{port}/")
    assert err.code == "url.port_invalid"
    assert "1 to 65535" in err.message


def test_is_default_port() -> None:
    assert is_default_port("http", 80)
    assert is_default_port("HTTPS", 443)
    assert not is_default_port("https", 80)
    assert not is_default_port("ftp", 21)


# --- path, query, fragment ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "path"),
    [
        ("https://example.com", "/"),
        ("https://example.com?q", "/"),
        ("https://example.com/a b/ü", "/a%20b/%C3%BC"),
        ("https://example.com/100%25/%7Euser", "/100%25/%7Euser"),
        ("https://example.com/a/./b/../c", "/a/c"),
        ("https://example.com/a/%2E%2e/b", "/b"),
        ("https://example.com\\a\\b", "/a/b"),
        ('https://example.com/<"{x}">^`', "/%3C%22%7Bx%7D%22%3E%5E%60"),
    ],
)
def test_path_is_encoded_as_sent(typed: str, path: str) -> None:
    assert parse_url(typed).path == path


@pytest.mark.parametrize(
    ("typed", "query", "target"),
    [
        ("https://example.com/p", None, "/p"),
        ("https://example.com/p?", "", "/p?"),
        ("https://example.com/p?a=1&b=2", "a=1&b=2", "/p?a=1&b=2"),
        ("https://example.com/p?q=ü x&'", "q=%C3%BC%20x&%27", "/p?q=%C3%BC%20x&%27"),
        ("https://example.com/p?a=%20?b", "a=%20?b", "/p?a=%20?b"),
    ],
)
def test_query_absent_empty_or_encoded(typed: str, query: str | None, target: str) -> None:
    anatomy = parse_url(typed)
    assert anatomy.query == query
    assert anatomy.request_target == target


def test_fragment_is_kept_but_never_sent() -> None:
    anatomy = parse_url("https://example.com/doc?x=1#part 2")
    assert anatomy.fragment == "part%202"
    assert anatomy.url() == "https://example.com/doc?x=1"
    assert "#" not in anatomy.request_target
    assert anatomy.to_dict()["fragment_sent"] is False
    assert parse_url("https://example.com/#").fragment == ""
    assert parse_url("https://example.com/").fragment is None


# --- derived views -----------------------------------------------------------------------


def test_origin_authority_request_target_and_url() -> None:
    anatomy = parse_url("HTTPS://User@Bücher.Example:8443/a/../b c?q=1#top", hsts_upgrade=False)
    assert anatomy.origin == ("https", "xn--bcher-kva.example", 8443)
    assert anatomy.authority == "xn--bcher-kva.example:8443"
    assert anatomy.request_target == "/b%20c?q=1"
    assert anatomy.url() == "https://User@xn--bcher-kva.example:8443/b%20c?q=1"


def test_to_dict_is_json_ready_and_complete() -> None:
    anatomy = parse_url("example.co.uk:8443/x?y#z")
    shown = anatomy.to_dict()
    assert json.loads(json.dumps(shown)) == shown
    assert shown["origin"] == ["https", "example.co.uk", 8443]
    assert shown["scheme_assumed"] is True
    assert shown["registrable_domain"] == "example.co.uk"
    assert shown["url"] == "https://example.co.uk:8443/x?y"
    field_names = set(UrlAnatomy.__dataclass_fields__) - {"original_redacted"}
    assert field_names <= set(shown)


# --- public suffix -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "suffix", "registrable"),
    [
        ("www.example.co.uk", "co.uk", "example.co.uk"),
        ("example.com", "com", "example.com"),
        ("a.b.example.com.", "com", "example.com"),
        ("co.uk", "co.uk", None),
        ("alice.github.io", "github.io", "alice.github.io"),  # PSL private section
        ("www.xn--bcher-kva.de", "de", "xn--bcher-kva.de"),
        ("shop.xn--p1ai", "xn--p1ai", "shop.xn--p1ai"),  # .рф
        ("localhost", "localhost", None),  # the PSL's implicit "*" rule
        ("intranet.corp", "corp", "intranet.corp"),
    ],
)
def test_public_suffix_and_registrable_domain(
    host: str, suffix: str, registrable: str | None
) -> None:
    anatomy = parse_url(f"https://{host}/")
    assert (anatomy.public_suffix, anatomy.registrable_domain) == (suffix, registrable)


def test_public_suffix_list_is_used_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the public suffix lookup tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    psl._rules.cache_clear()
    assert parse_url("https://www.example.org.uk/").registrable_domain == "example.org.uk"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("host", "suffix", "registrable"),
    [
        ("www.ck", "ck", "www.ck"),  # "!www.ck" is an exception to "*.ck"
        ("a.b.ck", "b.ck", "a.b.ck"),  # "*.ck" makes every child of ck a suffix
        ("city.kawasaki.jp", "kawasaki.jp", "city.kawasaki.jp"),  # exception "!city.kawasaki.jp"
        ("x.y.kawasaki.jp", "y.kawasaki.jp", "x.y.kawasaki.jp"),
        ("shop.xn--fiqs8s", "xn--fiqs8s", "shop.xn--fiqs8s"),  # 中国, a Unicode rule
    ],
)
def test_public_suffix_wildcard_and_exception_rules(
    host: str, suffix: str, registrable: str
) -> None:
    assert psl.split(host) == (suffix, registrable)


# --- HSTS preload ------------------------------------------------------------------------


def test_preloaded_http_is_upgraded_before_any_packet() -> None:
    anatomy = parse_url("http://example.dev/page")  # .dev is preloaded as a whole TLD
    assert anatomy.hsts_preloaded
    assert anatomy.upgraded_from_http
    assert (anatomy.scheme, anatomy.port, anatomy.port_explicit) == ("https", 443, False)
    assert anatomy.url() == "https://example.dev/page"


def test_preloaded_upgrade_keeps_an_explicit_port_but_maps_80_to_443() -> None:
    assert parse_url("http://example.dev:8080/").url() == "https://example.dev:8080/"
    assert parse_url("http://example.dev:80/").port == 443  # RFC 6797 §8.3
    assert parse_url("http://github.com/").url() == "https://github.com/"


def test_upgrade_can_be_turned_off_and_is_not_claimed_for_https() -> None:
    off = parse_url("http://example.dev/", hsts_upgrade=False)
    assert (off.scheme, off.port, off.hsts_preloaded, off.upgraded_from_http) == (
        "http",
        80,
        True,
        False,
    )
    https = parse_url("https://example.dev/")
    assert https.hsts_preloaded
    assert not https.upgraded_from_http


def test_hosts_not_preloaded_stay_on_http() -> None:
    anatomy = parse_url("http://example.com/")
    assert (anatomy.scheme, anatomy.hsts_preloaded, anatomy.upgraded_from_http) == (
        "http",
        False,
        False,
    )
    assert not parse_url("http://127.0.0.1/").hsts_preloaded


# --- resolve_reference: RFC 3986 §5.4 and browser edge cases ---------------------------

RFC3986_BASE = "http://a/b/c/d;p?q"
RFC3986_EXAMPLES = [  # §5.4.1 normal examples, §5.4.2 abnormal examples
    ("g:h", "g:h"),
    ("g", "http://a/b/c/g"),
    ("./g", "http://a/b/c/g"),
    ("g/", "http://a/b/c/g/"),
    ("/g", "http://a/g"),
    ("//g", "http://g"),
    ("?y", "http://a/b/c/d;p?y"),
    ("g?y", "http://a/b/c/g?y"),
    ("#s", "http://a/b/c/d;p?q#s"),
    ("g#s", "http://a/b/c/g#s"),
    ("g?y#s", "http://a/b/c/g?y#s"),
    (";x", "http://a/b/c/;x"),
    ("g;x", "http://a/b/c/g;x"),
    ("g;x?y#s", "http://a/b/c/g;x?y#s"),
    ("", "http://a/b/c/d;p?q"),
    (".", "http://a/b/c/"),
    ("./", "http://a/b/c/"),
    ("..", "http://a/b/"),
    ("../", "http://a/b/"),
    ("../g", "http://a/b/g"),
    ("../..", "http://a/"),
    ("../../", "http://a/"),
    ("../../g", "http://a/g"),
    ("../../../g", "http://a/g"),
    ("../../../../g", "http://a/g"),
    ("/./g", "http://a/g"),
    ("/../g", "http://a/g"),
    ("g.", "http://a/b/c/g."),
    (".g", "http://a/b/c/.g"),
    ("g..", "http://a/b/c/g.."),
    ("..g", "http://a/b/c/..g"),
    ("./../g", "http://a/b/g"),
    ("./g/.", "http://a/b/c/g/"),
    ("g/./h", "http://a/b/c/g/h"),
    ("g/../h", "http://a/b/c/h"),
    ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
    ("g;x=1/../y", "http://a/b/c/y"),
    ("g?y/./x", "http://a/b/c/g?y/./x"),
    ("g?y/../x", "http://a/b/c/g?y/../x"),
    ("g#s/./x", "http://a/b/c/g#s/./x"),
    ("g#s/../x", "http://a/b/c/g#s/../x"),
    ("http:g", "http://a/b/c/g"),  # §5.2.2 non-strict ("backward compatible") reading
]


@pytest.mark.parametrize(("reference", "expected"), RFC3986_EXAMPLES)
def test_resolve_reference_rfc3986_examples(reference: str, expected: str) -> None:
    assert resolve_reference(RFC3986_BASE, reference) == expected


@pytest.mark.parametrize(
    ("base", "reference", "expected"),
    [
        ("https://a.example/x/y", "https://b.example/z", "https://b.example/z"),
        ("https://a.example/x/y", "//b.example/z", "https://b.example/z"),
        ("http://a.example/x/y", "https:b.example", "https://b.example"),
        ("https://a.example/x/y", "\\\\evil.example\\z", "https://evil.example/z"),
        ("https://a.example/x/y", "/\\evil.example/z", "https://evil.example/z"),
        ("https://a.example/x/y", "///evil.example/z", "https://evil.example/z"),
        ("https://a.example/x/y", "z\\w?q=\\", "https://a.example/x/z/w?q=\\"),
        ("https://a.example/x/y", "  /next \n", "https://a.example/next"),
        ("https://a.example/x/y#frag", "", "https://a.example/x/y"),
        ("https://a.example/x?q", "?", "https://a.example/x?"),
        ("https://a.example/x?q", "#", "https://a.example/x?q#"),
        ("https://a.example", "next", "https://a.example/next"),
        ("https://a.example/x", "ftp://files.example/f", "ftp://files.example/f"),
    ],
)
def test_resolve_reference_browser_edge_cases(base: str, reference: str, expected: str) -> None:
    assert resolve_reference(base, reference) == expected


def test_resolve_reference_needs_an_absolute_base() -> None:
    with pytest.raises(UrlError) as info:
        resolve_reference("/relative/only", "x")
    assert info.value.code == "url.base_invalid"


# --- published WHATWG vectors (web-platform-tests) -------------------------------------

VECTORS = json.loads(DATA.read_text(encoding="utf-8"))

# Deliberate differences from the WHATWG URL Standard, each for a reason: we are about to
# hand the name to DNS and open a TCP connection, not to store it in a URL object.
DEVIATIONS = {
    "http://f:0/c": "port 0 cannot be connected to; we reject it",
    "http://f:00000000000000/c": "port 0 cannot be connected to; we reject it",
    "http://./": "an empty label cannot be resolved in DNS (RFC 1035 §2.3.1)",
    "http://../": "an empty label cannot be resolved in DNS (RFC 1035 §2.3.1)",
    "http://foo.09..": "an empty label cannot be resolved in DNS (RFC 1035 §2.3.1)",
    "x..xn--zca": "an empty label cannot be resolved in DNS (RFC 1035 §2.3.1)",
    "x..\u00df": "an empty label cannot be resolved in DNS (RFC 1035 §2.3.1)",
    "http://!\"$&'()*+,-.;=_`{}~/": (
        "host names are letters, digits, '-' and '_' (RFC 1123 §2.1); a resolver would refuse"
    ),
    "https://%e2%98%83": "the idna package applies IDNA2008 code point rules (RFC 5892): no ☃",
    "\u2260": "the idna package applies IDNA2008 code point rules (RFC 5892): no symbols",
    "\u226e": "the idna package applies IDNA2008 code point rules (RFC 5892): no symbols",
    "\u226f": "the idna package applies IDNA2008 code point rules (RFC 5892): no symbols",
    "a\u2020--": "the idna package enforces CheckHyphens on U-labels (RFC 5891 §4.2.3.1)",
    "-\u2020": "the idna package enforces CheckHyphens on U-labels (RFC 5891 §4.2.3.1)",
}
LONG_NAME_REASON = "DNS limits labels to 63 and names to 253 characters (RFC 1035 §2.3.4)"


def deviation(text: str) -> str | None:
    if text in DEVIATIONS:
        return DEVIATIONS[text]
    labels = text.split(".")
    if any(len(label) > 63 for label in labels) or len(text) > 253:
        return LONG_NAME_REASON
    return None


def vector_params(section: str, key: str) -> list[Any]:
    params = []
    for vector in VECTORS[section]:
        if isinstance(vector, str):
            continue
        reason = deviation(vector["input"])
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(vector, id=ascii(vector[key])[:60], marks=marks))
    return params


def whatwg_view(anatomy: UrlAnatomy) -> dict[str, str]:
    """Our anatomy in the WHATWG URL API's terms, as the test data states them."""
    return {
        "hostname": f"[{anatomy.host}]" if anatomy.host_kind == "ipv6" else anatomy.host,
        "port": "" if is_default_port(anatomy.scheme, anatomy.port) else str(anatomy.port),
        "pathname": anatomy.path,
        "search": f"?{anatomy.query}" if anatomy.query else "",
        "hash": f"#{anatomy.fragment}" if anatomy.fragment else "",
        "username": anatomy.username or "",
        "password": anatomy.password or "",
    }


def test_vector_file_names_its_origin_and_license() -> None:
    assert VECTORS["source"]["repository"] == "https://github.com/web-platform-tests/wpt"
    assert "BSD-3-Clause" in VECTORS["source"]["license"]
    assert len([v for v in VECTORS["urltestdata"] if isinstance(v, dict)]) > 300


@pytest.mark.parametrize("vector", vector_params("urltestdata", "input"))
def test_whatwg_urltestdata(vector: dict[str, Any]) -> None:
    if vector.get("failure"):
        with pytest.raises(UrlError):
            parse_url(vector["input"], hsts_upgrade=False)
        return
    view = whatwg_view(parse_url(vector["input"], hsts_upgrade=False))
    expected = {key: value for key, value in vector.items() if key in view}
    assert {key: view[key] for key in expected} == expected


@pytest.mark.parametrize("vector", vector_params("toascii", "input"))
def test_whatwg_toascii(vector: dict[str, Any]) -> None:
    text = f"https://{vector['input']}/x"
    if vector["output"] is None:
        with pytest.raises(UrlError):
            parse_url(text)
    else:
        assert parse_url(text).host == vector["output"]


def test_deliberate_deviations_are_rejected_as_invalid() -> None:
    cases = [(v["input"], v["input"]) for v in VECTORS["urltestdata"] if isinstance(v, dict)]
    cases += [(f"https://{v['input']}/", v["input"]) for v in VECTORS["toascii"]]
    deviating = [text for text, key in cases if deviation(key)]
    assert len(deviating) > len(DEVIATIONS)  # the long-name vectors come on top
    for text in deviating:
        assert error_of(text).code in {"url.host_invalid", "url.port_invalid"}, text


# --- properties --------------------------------------------------------------------------

PARSE_ERROR_CODES = {
    "url.scheme_unsupported",
    "url.host_missing",
    "url.host_invalid",
    "url.port_invalid",
}
WIRE_FIELDS = (
    "scheme",
    "username",
    "password",
    "host",
    "host_unicode",
    "host_kind",
    "port",
    "path",
    "query",
    "public_suffix",
    "registrable_domain",
    "hsts_preloaded",
)


def assert_round_trips(anatomy: UrlAnatomy) -> None:
    again = parse_url(anatomy.url())
    assert {f: getattr(again, f) for f in WIRE_FIELDS} == {
        f: getattr(anatomy, f) for f in WIRE_FIELDS
    }
    assert again.url() == anatomy.url()


ldh_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
unicode_label = st.sampled_from(["bücher", "münchen", "例え", "пример", "ελληνικά", "faß"])
tld = st.sampled_from(["com", "co.uk", "org", "example", "dev", "github.io", "xn--p1ai", "рф"])
domain = st.builds(
    lambda labels, suffix: ".".join([*labels, suffix]),
    st.lists(st.one_of(ldh_label, unicode_label), min_size=1, max_size=4),
    tld,
)
path_segment = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
url_like = st.text(alphabet="abcxn-_.:/\\@[]%0123456789?#ü ÄＡ。\t", max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", ""]),
    host=domain,
    port=st.one_of(st.none(), st.integers(1, 65535)),
    segments=st.lists(path_segment, max_size=4),
    query=st.one_of(st.none(), path_segment),
)
def test_valid_generated_urls_parse_and_round_trip(
    scheme: str, host: str, port: int | None, segments: list[str], query: str | None
) -> None:
    segments = [s.replace("?", "").replace("#", "") for s in segments]
    query = None if query is None else query.replace("#", "")
    text = (f"{scheme}://" if scheme else "") + host + ("" if port is None else f":{port}")
    text += "/" + "/".join(segments) + ("" if query is None else f"?{query}")
    anatomy = parse_url(text)
    import idna

    expected = [
        label if label.isascii() else idna.alabel(label).decode() for label in host.split(".")
    ]
    assert anatomy.host == ".".join(expected)
    assert anatomy.host_kind == "domain"
    if port is not None and not (anatomy.upgraded_from_http and port == 80):
        assert anatomy.port == port
    assert anatomy.scheme_assumed == (not scheme)
    assert anatomy.path.isascii()
    assert " " not in anatomy.path
    assert_round_trips(anatomy)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), url_like, st.builds("http://{}".format, url_like)))
def test_parser_only_ever_raises_url_error_and_round_trips(text: str) -> None:
    outcome: UrlAnatomy | UrlError
    try:
        outcome = parse_url(text)
    except UrlError as err:
        outcome = err
    if isinstance(outcome, UrlError):
        assert outcome.code in PARSE_ERROR_CODES
        return
    assert_round_trips(outcome)
    json.dumps(outcome.to_dict())


@given(
    st.integers(0, 2**32 - 1), st.lists(st.sampled_from(["d", "x", "o"]), min_size=4, max_size=4)
)
def test_any_ipv4_spelling_means_the_same_address(value: int, radixes: list[str]) -> None:
    address = ipaddress.IPv4Address(value)
    spelled = ".".join(
        {"d": str(b), "x": hex(b), "o": f"0{b:o}"}[r]
        for b, r in zip(address.packed, radixes, strict=True)
    )
    for text in (spelled, str(value), hex(value)):
        anatomy = parse_url(f"http://{text}/")
        assert (anatomy.host, anatomy.host_kind) == (str(address), "ipv4")


@given(st.text(max_size=30), st.one_of(st.text(max_size=30), url_like))
def test_resolving_against_a_fetched_url_is_idempotent(path: str, reference: str) -> None:
    try:
        base = parse_url(f"https://example.com/{path}").url()  # bases are URLs we fetched
    except UrlError:
        return
    result = resolve_reference(base, reference)
    assert re.match(r"[a-z][a-z0-9+.-]*:", result)
    assert resolve_reference(base, result) == result


# --- cost --------------------------------------------------------------------------------


def test_importing_the_module_does_not_load_the_heavy_libraries() -> None:
    code = (
        "import sys, whathappens.url;"
        "print(sorted(m for m in ('idna', 'tldextract', 'hstspreload', 'requests')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
