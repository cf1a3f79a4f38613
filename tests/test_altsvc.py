"""Alt-Svc (RFC 7838) and the HTTPS record's alpn (RFC 9460): where HTTP/3 is advertised."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from whathappens.net.altsvc import (
    DEFAULT_MA_S,
    Alternative,
    AltSvcCache,
    https_record_h3,
    parse_alt_svc,
)

ORIGIN = ("https", "www.example.com", 443)


def test_parse() -> None:
    assert parse_alt_svc('h3=":443"; ma=3600, h2="alt.example:8443"') == [
        Alternative("h3", "", 443, 3600), Alternative("h2", "alt.example", 8443, DEFAULT_MA_S)]
    assert parse_alt_svc("clear") is None
    assert parse_alt_svc('h3=":99999", nonsense, h3=":x"') == []


def test_cache_honours_ma_and_clear() -> None:
    cache = AltSvcCache()
    cache.store(ORIGIN, 'h3=":8443"; ma=60', now_ns=0)
    hit = cache.lookup(ORIGIN, now_ns=59 * 10**9)
    assert hit is not None
    assert hit.port == 8443
    assert "ma=60" in hit.why
    assert cache.lookup(ORIGIN, now_ns=61 * 10**9) is None  # expired
    assert cache.lookup(("https", "other.example", 443), now_ns=0) is None  # per origin
    cache.store(ORIGIN, "clear", now_ns=0)
    assert cache.lookup(ORIGIN, now_ns=1) is None


def test_another_host_is_not_taken() -> None:
    cache = AltSvcCache()
    cache.store(ORIGIN, 'h3="cdn.other:443"', now_ns=0)
    assert cache.lookup(ORIGIN, now_ns=1) is None


def test_https_record() -> None:
    got = https_record_h3(['1 . alpn="h3,h2"'], 443)
    assert got is not None
    assert got.port == 443
    assert https_record_h3(['1 . alpn="h2,http/1.1"'], 443) is None
    assert https_record_h3([], 443) is None


@given(st.text(max_size=200))
def test_parse_never_raises(value: str) -> None:
    parse_alt_svc(value)
