"""The address guard (whathappens.guard): the SSRF corpus, refused with a reason in plain words.

Pure tests of ``refusal`` over every range a public fetcher must not reach (private, loopback,
link-local, CGNAT, multicast, cloud metadata, 'this network', IPv4 inside IPv6), the odd
spellings a URL may use for them, public addresses allowed, junk refused. Then the same policy
through ``whathappens URL --only-public`` (a real subprocess against a real local server): the
journey stops before any packet goes to the server, exit 13; without the flag it goes through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey_helpers import assert_complete, check_universal, child, legs, url_span
from misbehaving import RawServer, ok_reply
from whathappens.errors import TargetRefused
from whathappens.guard import (
    BLOCKED,
    allowing,
    embedded_ipv4,
    parse_network,
    public_only,
    refusal,
)
from whathappens.net.dns.views import DnsOptions
from whathappens.trace import Options, run_journey
from whathappens.url import parse_url

WHATHAPPENS = str(Path(sys.executable).parent / "whathappens")

# address -> words its refusal must say (case-insensitive): the range in plain words.
CORPUS: dict[str, tuple[str, ...]] = {
    # private (RFC 1918, RFC 4193)
    "10.0.0.1": ("10.0.0.1", "private network"),
    "10.255.255.255": ("private network",),
    "172.16.0.1": ("172.16.0.1", "private network"),
    "172.31.255.254": ("private network",),
    "192.168.0.1": ("192.168.0.1", "private network"),
    "192.168.255.254": ("private network",),
    "fc00::1": ("fc00::1", "private"),
    "fd12:3456:789a::1": ("private",),
    # loopback
    "127.0.0.1": ("127.0.0.1", "loopback", "this machine"),
    "127.0.0.2": ("loopback",),
    "127.255.255.254": ("loopback",),
    "::1": ("::1", "loopback", "this machine"),
    # link-local
    "169.254.0.1": ("169.254.0.1", "link-local"),
    "169.254.255.254": ("link-local",),
    "fe80::1": ("fe80::1", "link-local"),
    "febf:ffff::1": ("link-local",),
    # carrier-grade NAT
    "100.64.0.1": ("100.64.0.1", "carrier-grade nat"),
    "100.127.255.254": ("carrier-grade nat",),
    # multicast
    "224.0.0.1": ("224.0.0.1", "multicast"),
    "239.255.255.250": ("multicast",),
    "ff02::1": ("ff02::1", "multicast"),
    "ff0e::fb": ("multicast",),
    # cloud metadata services
    "169.254.169.254": ("169.254.169.254", "metadata"),
    "fd00:ec2::254": ("fd00:ec2::254", "metadata"),
    "100.100.100.200": ("100.100.100.200", "metadata"),
    "169.254.170.2": ("metadata",),
    # 'this network' 0.0.0.0/8 (connecting to 0.0.0.0 reaches this machine on Linux)
    "0.0.0.0": ("0.0.0.0", "this network", "this machine"),
    "0.1.2.3": ("this network",),
    "::": ("unspecified",),
    # IPv4 inside IPv6: the IPv4 address is what would be reached
    "::ffff:127.0.0.1": ("127.0.0.1", "loopback"),
    "::ffff:10.0.0.1": ("10.0.0.1", "private network"),
    "::ffff:169.254.169.254": ("169.254.169.254", "metadata"),
    "::ffff:0.0.0.0": ("0.0.0.0", "this network"),
    "64:ff9b::7f00:1": ("127.0.0.1", "loopback"),
    "64:ff9b::a00:1": ("10.0.0.1", "private network"),
    "2002:7f00:1::": ("127.0.0.1", "loopback"),
    "2002:a9fe:a9fe::1": ("169.254.169.254", "metadata"),
    "::127.0.0.1": ("127.0.0.1", "loopback"),           # IPv4-compatible (deprecated)
    # local-use NAT64 (RFC 8215): the operator's own gateway, e.g. into 10/8
    "64:ff9b:1::a00:1": ("64:ff9b:1::a00:1", "local-use NAT64", "private"),
    "64:ff9b:1:ffff::1": ("local-use NAT64",),
    # a few more reserved ranges
    "255.255.255.255": ("broadcast",),
    "240.0.0.1": ("reserved",),
    "192.0.2.1": ("documentation",),
    "198.18.0.1": ("benchmarking",),
    "2001:db8::1": ("documentation",),
    "3fff::1": ("documentation",),
    "5f00::1": ("segment routing",),
    "fec0::1": ("site-local",),
}

PUBLIC = [
    "93.184.215.14", "1.1.1.1", "8.8.8.8", "9.9.9.9", "2606:4700::1111",
    "2001:4860:4860::8888", "[2606:4700::1111]",
    # just outside the blocked ranges
    "9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255",
    "192.169.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
    "169.253.255.255", "169.255.0.0", "1.0.0.0", "223.255.255.255",
    # IPv4 inside IPv6 is allowed when the IPv4 address is
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
]

# The URL spellings of 127.0.0.1 that WHATWG URL parsing (and browsers) accept.
ODD_SPELLINGS = {
    "http://2130706433/": "2130706433",          # one decimal number
    "http://0177.0.0.1/": "0177.0.0.1",          # octal first part
    "http://017700000001/": "017700000001",      # one octal number
    "http://0x7f000001/": "0x7f000001",          # one hex number
    "http://0x7f.1/": "0x7f.1",                  # hex, then the rest as one number
    "http://127.1/": "127.1",                    # short form
}


# ---------------------------------------------------------------------------- pure


@pytest.mark.parametrize("address", CORPUS)
def test_corpus_is_refused_with_the_range_in_plain_words(address: str) -> None:
    why = refusal(address)
    assert why is not None, f"{address} was allowed"
    for word in CORPUS[address]:
        assert word.lower() in why.lower(), f"{word!r} not in {why!r}"
    assert public_only(address) == why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None
    assert public_only(address) is None


def test_each_blocked_range_is_refused_at_both_ends() -> None:
    for net, _why in BLOCKED:
        for addr in (net.network_address, net.broadcast_address):
            got = refusal(str(addr))
            assert got is not None, f"{addr} ({net}) allowed"
            assert str(addr) in got


@pytest.mark.parametrize(("address", "words"), [
    ("[::1]", ("loopback",)),
    ("[fe80::1]", ("link-local",)),
    ("fe80::1%eth0", ("fe80::1", "link-local")),
    ("[fe80::1%eth0]", ("link-local",)),
    ("fe80::1%25lo", ("link-local",)),
    ("ff02::1%1", ("multicast",)),
    ("[::ffff:127.0.0.1]", ("127.0.0.1", "loopback")),
])
def test_brackets_and_zone_ids_do_not_hide_the_address(address: str,
                                                       words: tuple[str, ...]) -> None:
    why = refusal(address)
    assert why is not None
    for word in words:
        assert word in why
    assert "%" not in why  # the zone id is not part of the address that is judged


@pytest.mark.parametrize("junk", [
    "", "localhost", "example.com", "127.1", "2130706433", "0x7f000001", "0177.0.0.1",
    "1.2.3.4.5", "256.1.1.1", "::g", "[", "[]", "1.1.1.1/32", "http://1.1.1.1/", " 8.8.8.8",
    "8.8.8.8 ", "8.8.8.8\n", "%eth0", "1.1.1.1:80",
])
def test_anything_that_is_not_an_ip_address_is_refused(junk: str) -> None:
    why = refusal(junk)
    assert why is not None
    assert "not an IP address" in why


@pytest.mark.parametrize("url", ODD_SPELLINGS)
def test_odd_spellings_parse_to_loopback_and_are_refused(url: str) -> None:
    parsed = parse_url(url)
    assert parsed.host == "127.0.0.1"
    assert parsed.host_spelled == ODD_SPELLINGS[url]
    why = refusal(parsed.host)
    assert why is not None
    assert "loopback" in why


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_inside_ipv6_is_judged_as_the_ipv4_address(n: int) -> None:
    v4 = ipaddress.IPv4Address(n)
    expected = refusal(str(v4)) is None
    for v6 in (ipaddress.IPv6Address((0xFFFF << 32) | n),             # ::ffff:a.b.c.d
               ipaddress.IPv6Address((0x64FF9B << 96) | n),           # 64:ff9b::a.b.c.d
               ipaddress.IPv6Address((0x2002 << 112) | (n << 80))):   # 2002:aabb:ccdd::
        assert embedded_ipv4(v6) == v4
        assert (refusal(str(v6)) is None) == expected, (v6, refusal(str(v6)))


# ------------------------------------------------------------ the runner and the CLI


def journey_to(url: str, policy: Any = public_only) -> Any:
    opts = Options(dns=DnsOptions(views=frozenset({"system"})), address_policy=policy,
                   connect_timeout=3, max_time=15)
    journey = asyncio.run(run_journey(url, opts))
    check_universal(journey)
    return journey


@pytest.mark.parametrize("url", ODD_SPELLINGS)
def test_runner_refuses_each_odd_spelling_and_says_how_it_was_typed(url: str) -> None:
    with RawServer(ok_reply) as server:
        spelled = ODD_SPELLINGS[url]
        target = url.replace(f"//{spelled}/", f"//{spelled}:{server.port}/")
        journey = journey_to(target)
        assert isinstance(journey.error, TargetRefused)
        assert journey.exit_code == 13
        assert f"typed as {spelled}" in journey.error.message
        assert "loopback" in journey.error.message
        leg = legs(journey)[-1]
        assert_complete(child(leg, "dns"))
        assert child(leg, "guard").error is not None
        assert not [c for c in leg.children if c.name in ("tcp", "http")]
        # Without the policy the very same URL reaches the server: the refusal is the guard's.
        assert server.accepted == 0
        allowed = journey_to(target, policy=None)
        assert allowed.error is None, allowed.error
        assert allowed.facts.summary.status == 200
        assert server.accepted == 1


def whathappens(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WHATHAPPENS, *args], capture_output=True, text=True, timeout=60)


def test_only_public_refuses_loopback_before_connecting() -> None:
    with RawServer(ok_reply) as server:
        url = f"http://127.0.0.1:{server.port}/"
        text = whathappens(url, "--only-public", "--no-color", "--width", "100")
        assert text.returncode == 13, text.stdout + text.stderr
        out = " ".join(text.stdout.split())  # the report wraps long lines
        assert "127.0.0.1 was not contacted" in out
        assert "only public addresses" in out
        assert "loopback" in out
        assert "exit 13" in out
        assert "Traceback" not in text.stdout + text.stderr
        # The steps before the refusal are still reported.
        lines = text.stdout.splitlines()
        assert any(line.lstrip().startswith("URL") for line in lines), text.stdout
        assert any(line.lstrip().startswith("DNS") for line in lines), text.stdout
        assert not any(line.lstrip().startswith(("TCP", "HTTP")) for line in lines)

        as_json = whathappens(url, "--only-public", "--json")
        assert as_json.returncode == 13
        doc: dict[str, Any] = json.loads(as_json.stdout)
        assert doc["exit_code"] == 13
        assert doc["error"]["code"] == "guard.refused"
        assert doc["error"]["step"] == "tcp"
        spans = doc["spans"]
        assert [s["name"] for s in spans if s["name"] in ("url", "leg")] == ["url", "leg"]
        leg = next(s for s in spans if s["name"] == "leg")
        names = [c["name"] for c in leg["children"]]
        assert "dns" in names
        assert "guard" in names
        assert "tcp" not in names
        assert "http" not in names
        dns = next(c for c in leg["children"] if c["name"] == "dns")
        assert dns["error"] is None
        assert server.accepted == 0, "a connection reached the server despite --only-public"

        plain = whathappens(url, "--no-color")
        assert plain.returncode == 0, plain.stdout + plain.stderr
        assert "200 OK" in plain.stdout
        assert server.accepted == 1


@pytest.mark.parametrize("spelled", ["2130706433", "0x7f.1"])
def test_only_public_refuses_an_odd_spelling_and_says_how_it_was_typed(spelled: str) -> None:
    with RawServer(ok_reply) as server:
        url = f"http://{spelled}:{server.port}/"
        refused = whathappens(url, "--only-public", "--no-color", "--width", "200")
        assert refused.returncode == 13, refused.stdout + refused.stderr
        out = " ".join(refused.stdout.split())
        assert f"127.0.0.1 (typed as {spelled}) was not contacted" in out
        assert "loopback" in out
        assert server.accepted == 0

        allowed = whathappens(url, "--no-color")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert server.accepted == 1


def test_only_public_refuses_a_name_that_resolves_to_loopback() -> None:
    """``localhost`` through the system resolver (/etc/hosts): the name is fine, its
    addresses are not."""
    with RawServer(ok_reply) as server:
        url = f"http://localhost:{server.port}/"
        refused = whathappens(url, "--only-public", "--dns-views", "system", "--json")
        assert refused.returncode == 13, refused.stdout + refused.stderr
        doc = json.loads(refused.stdout)
        assert "localhost was not contacted" in doc["error"]["message"]
        assert "loopback" in doc["error"]["message"]
        leg = next(s for s in doc["spans"] if s["name"] == "leg")
        dns = next(c for c in leg["children"] if c["name"] == "dns")
        assert dns["error"] is None
        assert "127.0.0.1" in dns["attrs"]["addresses"]
        assert server.accepted == 0


def test_url_step_is_complete_before_a_refusal() -> None:
    journey = journey_to("http://10.0.0.1:9/")
    assert isinstance(journey.error, TargetRefused)
    assert_complete(url_span(journey))
    assert "10.0.0.1 is a private network" in journey.error.message


# --------------------------------------------- --allow-address: an operator's own ranges


def test_allowing_lets_the_ranges_through_and_nothing_else() -> None:
    policy = allowing([parse_network("127.0.55.0/24"), parse_network("fd00:1::/32")])
    for address in ("127.0.55.5", "127.0.55.255", "[::ffff:127.0.55.5]", "fd00:1:2::3",
                    "64:ff9b::7f00:3705"):
        assert policy(address) is None, address
    # Next door, the refusal is the guard's own, word for word.
    for address in ("127.0.66.6", "127.0.54.255", "::1", "fd00:2::1", "10.0.0.1",
                    "169.254.169.254", "not an address"):
        assert policy(address) == refusal(address), address
        assert policy(address) is not None
    assert policy("8.8.8.8") is None


def test_without_ranges_allowing_is_public_only() -> None:
    assert allowing([]) is public_only


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=300, deadline=None)
def test_outside_its_ranges_allowing_says_what_refusal_says(n: int) -> None:
    address = str(ipaddress.IPv4Address(n))
    policy = allowing([parse_network("10.20.0.0/16")])
    inside = ipaddress.IPv4Address(n) in ipaddress.ip_network("10.20.0.0/16")
    assert policy(address) == (None if inside else refusal(address))


@pytest.mark.parametrize(("value", "network"), [
    ("10.0.0.0/8", "10.0.0.0/8"), ("10.1.2.3", "10.1.2.3/32"), ("fd00::/8", "fd00::/8"),
    ("[::1]", "::1/128"), (" 127.0.55.0/24 ", "127.0.55.0/24")])
def test_parse_network(value: str, network: str) -> None:
    assert str(parse_network(value)) == network


@pytest.mark.parametrize("value", ["10.1.2.3/8", "10.0.0.0/33", "intranet", "", "10/8x"])
def test_parse_network_refuses_what_would_exempt_more_or_other_than_meant(value: str) -> None:
    with pytest.raises(ValueError, match=r"is not an address range such as 10\.0\.0\.0/8"):
        parse_network(value)


def test_allow_address_exempts_an_operators_range_and_no_more() -> None:
    with RawServer(ok_reply) as server:
        url = f"http://127.0.0.1:{server.port}/"
        allowed = whathappens(url, "--only-public", "--allow-address", "10.0.0.0/8",
                              "--allow-address", "127.0.0.1/32", "--no-color")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert server.accepted == 1
        next_door = whathappens(url, "--only-public", "--allow-address", "127.0.0.2/32",
                                "--json")
        assert next_door.returncode == 13, next_door.stdout + next_door.stderr
        assert "loopback" in json.loads(next_door.stdout)["error"]["message"]
        assert server.accepted == 1


def test_allow_address_with_host_bits_is_a_usage_error() -> None:
    text = whathappens("http://127.0.0.1:9/", "--only-public", "--allow-address", "10.1.2.3/8")
    assert text.returncode == 2
    assert "--allow-address" in text.stderr
    assert "'10.1.2.3/8' is not an address range such as 10.0.0.0/8" in text.stderr
