"""The caching analysis (analysis/caching.py), pure: RFC 9111's rules on headers, a table of
policies, malformed fields that must give a stated verdict and never raise (Hypothesis), the
revalidation plan, and the demo's conditional-request rule."""

from __future__ import annotations

import email.utils
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whathappens.analysis.caching import (
    conditional_fields,
    delta_seconds,
    lifetime_words,
    parse_cache_control,
    response_policy,
    revalidation_plan,
    split_list,
)
from whathappens.analysis.caching_model import ResponsePolicy
from whathappens.contract.document import SpanDoc
from whathappens.contract.facts import HttpFacts, LegFacts
from whathappens.demo.web import not_modified

NOW = 1_796_000_000  # a wall-clock second; the journey's t0 is put here
DATE = email.utils.formatdate(NOW, usegmt=True)


def policy(*headers: tuple[str, str], request: tuple[tuple[str, str], ...] = (),
           status: int = 200) -> ResponsePolicy:
    """The policy of a response that arrived 10 ms after t0 = NOW, sent 2 ms before."""
    facts = HttpFacts(status=status, response_headers=list(headers),
                      request_headers=list(request), t_request_sent_ns=8_000_000,
                      t_headers_ns=10_000_000)
    span = SpanDoc(id=7, name="http", step="http", actor="server", layer="application",
                   start_ms=0.0, end_ms=12.0, duration_ms=12.0, facts=facts, error=None,
                   children=[])
    return response_policy(span, LegFacts(index=0, url="https://x.test/", method="GET"),
                           True, NOW * 10**9)


def cache(p: ResponsePolicy, kind: str) -> tuple[bool, float | None, str]:
    c = next(c for c in p.caches if c.cache == kind)
    return c.may_store, c.lifetime_s, c.rule


# (headers, status, request) → (private verdict, shared verdict): (may store, lifetime, rule)
TABLE = [
    ([("cache-control", "public, max-age=60, s-maxage=300, stale-while-revalidate=30")], 200,
     (), (True, 60.0, "max-age"), (True, 300.0, "s-maxage")),
    ([("cache-control", "private, max-age=600")], 200, (),
     (True, 600.0, "max-age"), (False, None, "none")),
    ([("cache-control", "no-store")], 200, (), (False, None, "no-store"),
     (False, None, "no-store")),
    ([("cache-control", "private, no-store")], 200, (), (False, None, "no-store"),
     (False, None, "no-store")),
    ([("cache-control", "public, max-age=86400, immutable")], 200, (),
     (True, 86400.0, "max-age"), (True, 86400.0, "max-age")),
    ([("date", DATE), ("expires", email.utils.formatdate(NOW + 120, usegmt=True))], 200,
     (), (True, 120.0, "expires"), (True, 120.0, "expires")),
    ([("date", DATE), ("last-modified", email.utils.formatdate(NOW - 10_000, usegmt=True))],
     200, (), (True, 1000.0, "heuristic"), (True, 1000.0, "heuristic")),
    # 302 is not heuristically cacheable (RFC 9110 §15.1) and nothing says otherwise
    ([("date", DATE), ("last-modified", email.utils.formatdate(NOW - 10_000, usegmt=True))],
     302, (), (False, None, "none"), (False, None, "none")),
    # Authorization: a shared cache only with public / s-maxage / must-revalidate (§3.5)
    ([("cache-control", "max-age=60")], 200, (("authorization", "Bearer x"),),
     (True, 60.0, "max-age"), (False, None, "none")),
    ([("cache-control", "max-age=60, s-maxage=30")], 200, (("authorization", "Bearer x"),),
     (True, 60.0, "max-age"), (True, 30.0, "s-maxage")),
    ([("cache-control", "no-cache")], 200, (), (True, 0.0, "none"), (True, 0.0, "none")),
    # qualified: only the named fields are private; the shared cache may keep the rest
    ([("cache-control", 'private="Set-Cookie", max-age=60')], 200, (),
     (True, 60.0, "max-age"), (True, 60.0, "max-age")),
    ([("cache-control", "max-age=abc")], 200, (), (True, 0.0, "invalid"),
     (True, 0.0, "invalid")),
    ([("cache-control", "max-age=60, max-age=120")], 200, (), (True, 0.0, "invalid"),
     (True, 0.0, "invalid")),
    ([("cache-control", 'max-age="90"')], 200, (), (True, 90.0, "max-age"),
     (True, 90.0, "max-age")),
    ([("date", DATE), ("expires", "0")], 200, (), (True, 0.0, "expires"),
     (True, 0.0, "expires")),
    ([("cache-control", "max-age=99999999999999")], 200, (),
     (True, float(2**31), "max-age"), (True, float(2**31), "max-age")),
]


@pytest.mark.parametrize(("headers", "status", "request_", "private", "shared"), TABLE)
def test_who_may_store_and_for_how_long(headers: list[tuple[str, str]], status: int,
                                        request_: tuple[tuple[str, str], ...],
                                        private: tuple[bool, float | None, str],
                                        shared: tuple[bool, float | None, str]) -> None:
    p = policy(*headers, request=request_, status=status)
    assert cache(p, "private") == private
    assert cache(p, "shared") == shared


def test_malformed_fields_are_stated_not_raised() -> None:
    p = policy(("cache-control", "max-age=abc"), ("expires", "yesterday"),
               ("etag", "no-quotes"), ("last-modified", "not a date"), ("age", "-3"))
    text = " | ".join(p.problems)
    assert "max-age=abc is not a number of seconds" in text
    assert "ETag 'no-quotes' is malformed" in text
    assert "Last-Modified 'not a date' is not an HTTP-date" in text
    assert "Age '-3' is not a number of seconds" in text
    assert [v.strength for v in p.validators] == ["invalid", "invalid"]


def test_conflicting_duplicates_are_stale_and_say_so() -> None:
    p = policy(("cache-control", "max-age=60"), ("cache-control", "max-age=120"))
    assert any("appears 2 times with different values" in x for x in p.problems)
    assert all(c.must_revalidate_before_use for c in p.caches)


def test_heuristic_freshness_is_labelled_as_modelled() -> None:
    p = policy(("date", DATE),
               ("last-modified", email.utils.formatdate(NOW - 36_000, usegmt=True)))
    c = p.caches[0]
    assert c.rule == "heuristic"
    assert c.modelled
    assert c.lifetime_s == 3600.0
    assert "rule of thumb" in c.rule_words
    assert c.cite == "RFC 9111 §4.2.2"


def test_age_and_what_is_left() -> None:
    p = policy(("cache-control", "max-age=600"), ("age", "100"), ("date", DATE))
    assert p.age is not None
    assert p.age.age_header_s == 100
    # Age + the response delay (2 ms, measured), beats Date's apparent age (0.01 s)
    assert p.age.current_age_s == pytest.approx(100.002, abs=1e-3)
    assert p.caches[0].remaining_s == pytest.approx(499.998, abs=1e-3)


def test_validators_vary_and_extensions() -> None:
    p = policy(("etag", 'W/"abc"'), ("last-modified", DATE), ("vary", "Accept-Encoding"),
               ("cache-control", "public, max-age=60, stale-if-error=600, "
                                 "stale-while-revalidate=30, immutable, must-revalidate"),
               request=(("accept-encoding", "br"),))
    assert [(v.header, v.strength, v.sent_as) for v in p.validators] == [
        ("ETag", "weak", "If-None-Match"), ("Last-Modified", "weak", "If-Modified-Since")]
    assert p.vary is not None
    assert p.vary.key == ["GET", "https://x.test/",
                                                  "Accept-Encoding: br"]
    assert (p.stale_if_error_s, p.stale_while_revalidate_s, p.immutable) == (600, 30, True)
    cites = {d.name: d.cite for d in p.directives}
    assert cites["stale-if-error"] == "RFC 5861 §4"
    assert cites["immutable"] == "RFC 8246 §2"
    assert cites["must-revalidate"] == "RFC 9111 §5.2.2.2"
    star = policy(("vary", "*"))
    assert star.vary is not None
    assert star.vary.any


def test_a_cookie_on_a_shared_cacheable_response_is_flagged() -> None:
    public = policy(("cache-control", "public, s-maxage=60"), ("set-cookie", "a=1"))
    assert any(x.startswith("Set-Cookie on a response a shared cache may store")
               for x in public.problems)
    private = policy(("cache-control", "private, max-age=60"), ("set-cookie", "a=1"))
    assert not any("Set-Cookie" in x for x in private.problems)


def test_pragma_no_cache_without_cache_control() -> None:
    p = policy(("pragma", "no-cache"))
    assert any("Pragma" in x for x in p.problems)
    assert p.caches[0].must_revalidate_before_use


def test_parsing_helpers() -> None:
    assert split_list('no-cache="set-cookie, x", max-age=5') == ['no-cache="set-cookie, x"',
                                                                 "max-age=5"]
    assert parse_cache_control(["Max-Age=5, PUBLIC", 'private="a, b"']) == [
        ("max-age", "5"), ("public", None), ("private", "a, b")]
    assert delta_seconds("12") == 12
    assert delta_seconds("-1") is None
    assert delta_seconds("١٢") is None  # digits, but not ASCII ones
    assert lifetime_words(86400) == "1 day"
    assert lifetime_words(90) == "90 s"


def test_revalidation_plan() -> None:
    fields = [("etag", '"a"'), ("last-modified", DATE)]
    assert revalidation_plan("GET", 200, fields) == (
        [("if-none-match", '"a"'), ("if-modified-since", DATE)], None)
    assert revalidation_plan("POST", 200, fields)[1] is not None
    assert "no-store" in (revalidation_plan("GET", 200, [*fields, ("cache-control",
                                                                   "no-store")])[1] or "")
    assert "no validator" in (revalidation_plan("GET", 200, [])[1] or "")
    assert revalidation_plan("GET", 500, fields)[1] is not None
    assert conditional_fields([("ETag", ' "b" ')]) == [("if-none-match", '"b"')]


def test_demo_server_conditional_rule() -> None:
    """RFC 9110 §13.2.2: If-None-Match first (weak comparison), If-Modified-Since only
    without it; an invalid date is ignored."""
    modified = int(time.time()) - 100
    later = email.utils.formatdate(modified + 10, usegmt=True)
    earlier = email.utils.formatdate(modified - 10, usegmt=True)
    assert not_modified('"a"', "", '"a"', modified)
    assert not_modified('W/"a", "b"', "", '"a"', modified)
    assert not_modified("*", "", '"a"', modified)
    assert not not_modified('"x"', later, '"a"', modified)      # INM decides, IMS ignored
    assert not_modified("", later, '"a"', modified)
    assert not not_modified("", earlier, '"a"', modified)
    assert not not_modified("", "garbage", '"a"', modified)


FIELD_NAMES = st.sampled_from(["cache-control", "expires", "date", "last-modified", "etag",
                               "age", "vary", "pragma", "authorization"])
VALUES = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["max-age", "s-maxage", "=", ",", '"', "no-store", "private",
                              "public", "abc", "-1", "99999999999999999999", "W/", " ",
                              "Mon, 07 Dec 2026", "GMT", "stale-if-error", "immutable"]),
             max_size=10).map("".join))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(FIELD_NAMES, VALUES), max_size=8),
       st.lists(st.tuples(FIELD_NAMES, VALUES), max_size=3),
       st.integers(min_value=100, max_value=599))
def test_any_headers_give_a_verdict_never_an_exception(
        headers: list[tuple[str, str]], request: list[tuple[str, str]], status: int) -> None:
    p = policy(*headers, request=tuple(request), status=status)
    assert [c.cache for c in p.caches] == ["private", "shared"]
    for c in p.caches:
        assert c.why
        assert c.may_store == (c.lifetime_s is not None)
        assert c.lifetime_s is None or 0 <= c.lifetime_s <= 2**31
    assert p.summary
    revalidation_plan("GET", status, headers)
