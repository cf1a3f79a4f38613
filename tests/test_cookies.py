"""The cookie jar (RFC 6265), pure: storing, matching, sending, the Netscape file."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from whathappens.cookies import (
    CookieJar,
    default_path,
    domain_match,
    parse_cookie_string,
    parse_set_cookie,
    path_match,
    read_netscape,
    write_netscape,
)
from whathappens.url import parse_url

NOW = 1_800_000_000.0


def url(text: str):  # type: ignore[no-untyped-def]
    return parse_url(text, with_public_suffix=False)


def test_domain_and_path_matching() -> None:
    assert domain_match("www.example.com", "example.com")
    assert domain_match("example.com", "example.com")
    assert not domain_match("badexample.com", "example.com")
    assert not domain_match("1.2.3.4", "2.3.4")            # never for an IP address
    assert path_match("/a/b", "/a")
    assert path_match("/a/", "/a/")
    assert path_match("/a", "/a")
    assert not path_match("/ab", "/a")
    assert default_path("/a/b/c") == "/a/b"
    assert default_path("/a") == "/"
    assert default_path("") == "/"


def test_parse_set_cookie_is_lenient_and_ignores_nameless() -> None:
    p = parse_set_cookie("sid = abc ; Path=/x; Secure; HttpOnly; SameSite=Lax")
    assert p is not None
    assert (p.name, p.value) == ("sid", "abc")
    assert dict(p.attrs)["path"] == "/x"
    assert "secure" in dict(p.attrs)
    assert parse_set_cookie("novalue") is None
    assert parse_set_cookie("=x") is None


def test_host_only_and_domain_cookies() -> None:
    jar = CookieJar().store(url("https://www.example.com/a/b"),
                            ["host=1", "dom=2; Domain=.example.com; Path=/",
                             "evil=3; Domain=other.com"], NOW)
    assert {c.name for c in jar.cookies} == {"host", "dom"}
    assert jar.header(url("https://www.example.com/a/x"), NOW) == "host=1; dom=2"
    assert jar.header(url("https://api.example.com/"), NOW) == "dom=2"  # host-only stays
    assert jar.header(url("https://www.example.com/"), NOW) == "dom=2"  # path /a for host


def test_secure_cookies_only_over_https_and_only_set_from_it() -> None:
    jar = CookieJar().store(url("https://example.com/"), ["s=1; Secure", "p=2"], NOW)
    assert jar.header(url("http://example.com/"), NOW) == "p=2"
    assert jar.header(url("https://example.com/"), NOW) == "s=1; p=2"
    assert len(CookieJar().store(url("http://example.com/"), ["s=1; Secure"], NOW)) == 0


def test_expiry_max_age_wins_and_deletion() -> None:
    u = url("https://example.com/")
    jar = CookieJar().store(u, ["a=1; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"],
                            NOW)
    assert jar.header(u, NOW + 30) == "a=1"
    assert jar.header(u, NOW + 61) is None
    jar = jar.store(u, ["a=2"], NOW + 1)                 # replaced, keeps creation time
    assert jar.cookies[0].value == "2"
    assert jar.cookies[0].created == NOW
    jar = jar.store(u, ["a=; Max-Age=0"], NOW + 2)       # deleted
    assert len(jar) == 0
    jar = CookieJar().store(u, ["old=1; Expires=Wed, 09 Jun 2021 10:18:14 GMT"], NOW)
    assert len(jar) == 0                                  # an expiry in the past


def test_order_longer_paths_first_then_older() -> None:
    u = url("https://example.com/a/b")
    jar = CookieJar().store(u, ["x=1; Path=/"], NOW).store(u, ["y=2; Path=/a"], NOW + 1)
    jar = jar.store(u, ["z=3; Path=/"], NOW + 2)
    assert jar.header(u, NOW + 3) == "y=2; x=1; z=3"


def test_netscape_round_trip_and_curl_lines() -> None:
    u = url("https://www.example.com/")
    jar = CookieJar().store(u, ["sid=abc; HttpOnly", "d=1; Domain=example.com; Secure; "
                                "Max-Age=3600"], NOW)
    text = write_netscape(jar)
    assert text.startswith("# Netscape HTTP Cookie File")
    assert "#HttpOnly_www.example.com\tFALSE\t/\tFALSE\t0\tsid\tabc" in text
    assert f".example.com\tTRUE\t/\tTRUE\t{int(NOW) + 3600}\td\t1" in text
    back = read_netscape(text, NOW)
    assert back.header(u, NOW) == jar.header(u, NOW)
    # what curl writes, with a value-less line and junk that is skipped
    curl = ("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tcsrftoken\tT0K\n"
            "garbage line\n127.0.0.1\tFALSE\t/\tFALSE\t0\tempty\n")
    jar2 = read_netscape(curl, NOW)
    assert jar2.header(url("http://127.0.0.1:8000/contact/"), NOW) == "csrftoken=T0K; empty="


def test_cookie_string_is_host_only() -> None:
    jar = parse_cookie_string("a=1; b=2;", "Example.com", NOW)
    assert jar.header(url("https://example.com/x"), NOW) == "a=1; b=2"
    assert jar.header(url("https://sub.example.com/"), NOW) is None


@given(st.lists(st.text(max_size=60), max_size=8))
def test_any_set_cookie_lines_never_raise(lines: list[str]) -> None:
    jar = CookieJar().store(url("https://www.example.com/p"), lines, NOW)
    header = jar.header(url("https://www.example.com/p"), NOW)
    assert header is None or isinstance(header, str)
    read_netscape(write_netscape(jar), NOW)


def test_refusals_say_why() -> None:
    from whathappens.cookies import refusals

    why = refusals(url("http://www.example.com/"), ["a=1; Domain=other.com", "s=1; Secure",
                                                    "junk", "ok=1; Domain=example.com"])
    assert len(why) == 3
    assert "Domain=other.com does not cover www.example.com" in why[0]
    assert "Secure, but set over http" in why[1]
    assert "no name=value pair" in why[2]
