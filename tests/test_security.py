"""The security-header grade (analysis/security.py, security_headers.py): each header's
reader as a table, the Observatory's modifiers and bonus rule, cookies under RFC 6265bis,
preload eligibility, per-request notes, and any header value read without an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whathappens.analysis.security import (
    MODIFIERS,
    Context,
    Exchange,
    cookies_test,
    csp_test,
    grade,
    hsts_reading,
    hsts_result,
    leg_notes,
    letter,
    referrer_test,
    xfo_test,
)
from whathappens.analysis.security_headers import (
    cookie_problems,
    csp_gaps,
    parse_cookie,
    parse_csp,
    parse_hsts,
)
from whathappens.explain.security import NOT_TESTED, RULES

HTTPS = "https://www.example.com/"
STRONG = [
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload"),
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Set-Cookie", "__Host-sid=1; Path=/; Secure; HttpOnly; SameSite=Lax"),
]


@pytest.mark.parametrize(("value", "expected"), [
    ("max-age=31536000", (31536000, False, False, None)),
    ("max-age=31536000; includeSubDomains; preload", (31536000, True, True, None)),
    ('MAX-AGE="600" ; INCLUDESUBDOMAINS', (600, True, False, None)),
    ("max-age=0", (0, False, False, None)),
    ("max-age=100; foo=bar; ;", (100, False, False, None)),           # unknown: ignored
    ("includeSubDomains", (None, False, False, "no max-age")),
    ("", (None, False, False, "no max-age")),
    ("max-age=1; max-age=2", (None, False, False, "appears twice")),
    ("max-age=-5", (None, False, False, "not a number")),
    ("max-age=1e9", (None, False, False, "not a number")),
    ("max-age", (None, False, False, "not a number")),
])
def test_hsts_is_read_as_rfc_6797_says(value: str, expected: tuple[object, ...]) -> None:
    h = parse_hsts(value)
    age, subs, preload, error = expected
    assert (h.max_age, h.include_subdomains, h.preload) == (age, subs, preload)
    assert (h.error is None) if error is None else (str(error) in str(h.error))


@pytest.mark.parametrize(("headers", "result"), [
    ([], "hsts-not-implemented"),
    ([("strict-transport-security", "max-age=15768000")],
     "hsts-implemented-max-age-at-least-six-months"),
    ([("Strict-Transport-Security", "max-age=3600")],
     "hsts-implemented-max-age-less-than-six-months"),
    ([("Strict-Transport-Security", "max-age=nope")], "hsts-header-invalid"),
    # only the first header counts (RFC 6797 §8.1)
    ([("Strict-Transport-Security", "max-age=3600"),
      ("Strict-Transport-Security", "max-age=63072000")],
     "hsts-implemented-max-age-less-than-six-months"),
])
def test_hsts_results(headers: list[tuple[str, str]], result: str) -> None:
    assert hsts_result(Exchange(0, HTTPS, headers), Context()) == result


def test_hsts_over_plain_http_cannot_count() -> None:
    ex = Exchange(0, "http://www.example.com/", [("Strict-Transport-Security", "max-age=9")])
    assert hsts_result(ex, Context()) == "hsts-not-implemented-no-https"


@pytest.mark.parametrize(("policy", "result"), [
    (None, "csp-not-implemented"),
    ("", "csp-header-invalid"),
    (";;;", "csp-header-invalid"),
    ("default-src 'self'\x1b", "csp-header-invalid"),
    ("default-src 'none'; form-action 'self'",
     "csp-implemented-with-no-unsafe-default-src-none"),
    ("default-src 'self'", "csp-implemented-with-no-unsafe"),
    ("default-src 'self'; style-src 'self' 'unsafe-inline'",
     "csp-implemented-with-unsafe-inline-in-style-src-only"),
    ("default-src 'self'; script-src 'self' 'unsafe-inline'",
     "csp-implemented-with-unsafe-inline"),
    # a nonce makes 'unsafe-inline' ignored (CSP3): no longer unsafe
    ("default-src 'self'; script-src 'nonce-abc' 'unsafe-inline'",
     "csp-implemented-with-no-unsafe"),
    ("default-src 'self'; script-src 'self' 'unsafe-eval'",
     "csp-implemented-with-unsafe-eval"),
    ("default-src 'self'; script-src https:", "csp-implemented-with-unsafe-inline"),
    ("script-src 'self'", "csp-implemented-with-unsafe-inline"),   # no object-src at all
    ("default-src 'self'; script-src http://cdn.example.net",
     "csp-implemented-with-insecure-scheme"),
    ("default-src 'self'; img-src http://img.example.net",
     "csp-implemented-with-insecure-scheme-in-passive-content-only"),
    ("DEFAULT-SRC 'self'; default-src *", "csp-implemented-with-no-unsafe"),  # first wins
])
def test_csp_results(policy: str | None, result: str) -> None:
    headers = [] if policy is None else [("Content-Security-Policy", policy)]
    assert csp_test(headers) == result


def test_csp_gaps_name_the_missing_directives() -> None:
    gaps = " ".join(csp_gaps(parse_csp("script-src 'self'; script-src *; b@d x")))
    for word in ("default-src", "object-src", "base-uri", "frame-ancestors", "ignored"):
        assert word in gaps


@pytest.mark.parametrize(("headers", "result"), [
    ([], "x-frame-options-not-implemented"),
    ([("X-Frame-Options", "DENY")], "x-frame-options-sameorigin-or-deny"),
    ([("X-Frame-Options", "sameorigin")], "x-frame-options-sameorigin-or-deny"),
    ([("X-Frame-Options", "ALLOW-FROM https://a.example")], "x-frame-options-allow-from-origin"),
    ([("X-Frame-Options", "DENY, SAMEORIGIN")], "x-frame-options-header-invalid"),
    ([("Content-Security-Policy", "frame-ancestors 'self'")],
     "x-frame-options-implemented-via-csp"),
])
def test_framing(headers: list[tuple[str, str]], result: str) -> None:
    assert xfo_test(headers) == result


@pytest.mark.parametrize(("value", "result"), [
    (None, "referrer-policy-not-implemented"),
    ("no-referrer", "referrer-policy-private"),
    ("Strict-Origin-When-Cross-Origin", "referrer-policy-private"),
    ("unsafe-url", "referrer-policy-unsafe"),
    ("no-referrer-when-downgrade", "referrer-policy-unsafe"),
    ("no-referrer, unsafe-url", "referrer-policy-unsafe"),   # the last known token wins
    ("unsafe-url, whatever", "referrer-policy-unsafe"),        # an unknown one is skipped
    ("whatever", "referrer-policy-header-invalid"),
])
def test_referrer_policy(value: str | None, result: str) -> None:
    assert referrer_test([] if value is None else [("Referrer-Policy", value)]) == result


@pytest.mark.parametrize(("score", "grade_"), [
    (135, "A+"), (100, "A+"), (99, "A"), (90, "A"), (89, "A-"), (85, "A-"), (84, "B+"),
    (70, "B"), (65, "B-"), (64, "C+"), (50, "C"), (45, "C-"), (44, "D+"), (30, "D"),
    (25, "D-"), (24, "F"), (0, "F"), (-40, "F")])
def test_the_grading_chart(score: int, grade_: str) -> None:
    assert letter(score) == grade_


def test_a_strong_set_earns_every_bonus() -> None:
    score, g, rules = grade(STRONG)
    by = {r.test: r for r in rules}
    assert by["content-security-policy"].result == \
        "csp-implemented-with-no-unsafe-default-src-none"
    assert by["cookies"].result == "cookies-secure-with-httponly-sessions-and-samesite"
    assert by["subresource-integrity"].result == NOT_TESTED
    assert all(r.counted for r in rules)
    assert score == 100 + 10 + 5 + 5 + 5 + 10
    assert g == "A+"


def test_no_security_header_at_all_is_a_d() -> None:
    score, g, rules = grade([])
    assert score == 100 - 25 - 20 - 5 - 20
    assert g == "D"
    assert sum(r.modifier for r in rules) == score - 100


def test_bonuses_count_only_from_90() -> None:
    headers = [h for h in STRONG if h[0] != "X-Content-Type-Options"]
    headers[0] = ("Strict-Transport-Security", "max-age=60")       # -10, -5: 85
    score, g, rules = grade(headers)
    assert (score, g) == (85, "A-")
    assert [r.test for r in rules if not r.counted] == [
        "content-security-policy", "cookies", "referrer-policy", "x-frame-options",
        "cross-origin-resource-policy"]


def test_every_result_has_words_and_a_modifier() -> None:
    assert set(MODIFIERS) <= set(RULES)
    for result, (says, _) in RULES.items():
        assert says, result


@pytest.mark.parametrize(("cookies", "result"), [
    ([], "cookies-not-found"),
    (["a=1; Secure; SameSite=Lax"], "cookies-secure-with-httponly-sessions-and-samesite"),
    (["a=1; Secure"], "cookies-secure-with-httponly-sessions"),
    (["a=1"], "cookies-without-secure-flag"),
    (["sessionid=1; Secure; SameSite=Lax"], "cookies-session-without-httponly-flag"),
    (["sessionid=1; HttpOnly; SameSite=Lax"], "cookies-session-without-secure-flag"),
    (["csrftoken=1; Secure"], "cookies-anticsrf-without-samesite-flag"),
    (["a=1; Secure; SameSite=Sometimes"], "cookies-samesite-flag-invalid"),
    (["a=1; SameSite=None"], "cookies-samesite-flag-invalid"),
    (["a=1; Secure; SameSite=Lax", "login=1; Secure; SameSite=Lax"],
     "cookies-session-without-httponly-flag"),
])
def test_the_observatory_cookie_test(cookies: list[str], result: str) -> None:
    ex = Exchange(0, HTTPS, [("Set-Cookie", c) for c in cookies])
    assert cookies_test([ex], hsts_ok=False) == result


def test_hsts_softens_a_missing_secure() -> None:
    ex = Exchange(0, HTTPS, [("Set-Cookie", "a=1; SameSite=Lax")])
    assert cookies_test([ex], hsts_ok=True) == "cookies-without-secure-flag-but-protected-by-hsts"


@pytest.mark.parametrize(("raw", "https", "expect"), [
    ("__Host-id=1; Secure; Path=/; SameSite=Lax", True, []),
    ("__Host-id=1; Secure; Path=/; Domain=example.com; SameSite=Lax", True, ["__Host-"]),
    ("__Host-id=1; Secure; Path=/app; SameSite=Lax", True, ["__Host-"]),
    ("__Secure-id=1; Path=/; SameSite=Lax", True, ["__Secure-", "no Secure"]),
    ("id=1; Secure; HttpOnly; SameSite=Strict", False, ["Secure set over plain http",
                                                        "set over plain http"]),
    ("id=1; SameSite=None", True, ["SameSite=None without Secure", "no Secure"]),
    ("sessionid=1; Secure; SameSite=Lax", True, ["without HttpOnly"]),
    ("id=1; Secure", True, ["no SameSite"]),
])
def test_cookie_rules_of_rfc_6265bis(raw: str, https: bool, expect: list[str]) -> None:
    problems = cookie_problems(parse_cookie(raw), https)
    assert len(problems) == len(expect), problems
    for p, e in zip(problems, expect, strict=True):
        assert e in p


def test_a_cookie_without_equals_has_an_empty_name() -> None:
    assert parse_cookie("justvalue; Secure").name == ""


def test_preload_eligibility_lists_what_is_missing() -> None:
    final = Exchange(1, "https://example.com/", [
        ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")])
    first = Exchange(0, "http://example.com/", [("Location", "https://example.com/")])
    reading = hsts_reading(final, Context(chain=[first, final], began_on_http=True,
                                          registrable_domain="example.com",
                                          certificate_ok=True))
    assert reading is not None
    assert not reading.preload_ready
    met = {r.rule.split(" (")[0]: r.met for r in reading.requirements}
    assert met["preload"] is False
    assert met["includeSubDomains"] is True
    assert met["http redirects to https on the same host first"] is True
    assert met["the header on the base domain's https response"] is True
    assert met["every subdomain serves https"] is None


def test_hsts_on_each_leg_is_noted() -> None:
    chain = [
        Exchange(0, "http://www.example.com/", [("Strict-Transport-Security", "max-age=9"),
                                                 ("Set-Cookie", "a=1")]),
        Exchange(1, "https://example.com/", [("Strict-Transport-Security", "max-age=99")]),
        Exchange(2, "https://www.example.com/", []),
    ]
    notes = [(n.leg, n.note) for n in leg_notes(chain)]
    assert "RFC 6797 §8.1" in notes[0][1]
    assert "ignore" in notes[0][1]
    assert notes[1][0] == 0
    assert "plain http" in notes[1][1]
    assert notes[2][0] == 1
    assert "remembered for example.com" in notes[2][1]


def test_redirection_is_graded_from_the_journey() -> None:
    def rules(*urls: str) -> str:
        chain = [Exchange(i, u, []) for i, u in enumerate(urls)]
        _, _, out = grade([], urls[-1], Context(chain=chain, began_on_http=True))
        return next(r.result for r in out if r.test == "redirection" or
                    (r.result == NOT_TESTED and "redirect" in r.says))

    assert rules("http://a.example/", "https://a.example/") == "redirection-to-https"
    assert rules("http://a.example/", "https://b.example/") == "redirection-off-host-from-http"
    assert rules("http://a.example/", "http://b.example/", "https://b.example/") == \
        "redirection-not-to-https-on-initial-redirection"
    assert rules("http://a.example/") == "redirection-missing"
    assert rules("http://a.example/", "http://b.example/") == "redirection-not-to-https"
    _, _, out = grade([])
    assert next(r for r in out if r.test == "redirection").result == NOT_TESTED


def test_a_journey_cut_after_its_redirect_reads_the_location() -> None:
    """Leg 2 failed (say, at TLS): the 301's Location still shows where http led."""
    first = Exchange(0, "http://a.example/x", [("Location", "https://a.example/x")])
    _, _, out = grade(first.headers, first.url, Context(chain=[first], began_on_http=True))
    assert next(r for r in out if r.test == "redirection").result == "redirection-to-https"
    away = Exchange(0, "http://a.example/", [("Location", "//b.example/")])
    _, _, out = grade(away.headers, away.url, Context(chain=[away], began_on_http=True))
    assert next(r for r in out if r.test == "redirection").result == "redirection-not-to-https"


header_names = st.sampled_from([
    "Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
    "Referrer-Policy", "X-Frame-Options", "Permissions-Policy", "Cross-Origin-Opener-Policy",
    "Cross-Origin-Resource-Policy", "Set-Cookie", "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(header_names, st.text(max_size=80)), max_size=12),
       st.sampled_from(["https://a.example/", "http://a.example/", "not a url", ""]))
def test_any_header_values_get_a_verdict_never_an_exception(
        headers: list[tuple[str, str]], url: str) -> None:
    from whathappens.analysis.security import cookie_checks, header_checks

    score, g, rules = grade(headers, url)
    assert score >= 0
    assert g in {"A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+",
                                "D", "D-", "F"}
    assert len(rules) == 10
    ex = Exchange(0, url, headers)
    checks = header_checks(ex)
    assert {c.verdict for c in checks} <= {"good", "weak", "bad", "missing", "invalid"}
    cookie_checks([ex])
    leg_notes([ex])
    hsts_reading(ex, Context(chain=[ex]))


def test_the_labs_front_sends_a_strong_set() -> None:
    """The lab's nginx front (lab/tiers/nginx.py) and Django's cookie settings, graded."""
    from whathappens.lab.site import settings
    from whathappens.lab.tiers.nginx import HSTS, SECURITY_HEADERS

    def cookie(name: str, secure: bool, http_only: bool, same_site: str) -> str:
        return (f"{name}=x; Path=/" + ("; Secure" if secure else "")
                + ("; HttpOnly" if http_only else "") + f"; SameSite={same_site}")

    headers = [("Strict-Transport-Security", HSTS), *SECURITY_HEADERS.items(),
               ("Set-Cookie", cookie("csrftoken", settings.CSRF_COOKIE_SECURE, False,
                                     settings.CSRF_COOKIE_SAMESITE)),
               ("Set-Cookie", cookie("sessionid", settings.SESSION_COOKIE_SECURE,
                                     settings.SESSION_COOKIE_HTTPONLY,
                                     settings.SESSION_COOKIE_SAMESITE))]
    score, g, rules = grade(headers)
    assert g == "A+"
    assert [r.result for r in rules if r.modifier < 0] == []
    assert score == 100 + 5 + 5 + 5 + 5 + 10
