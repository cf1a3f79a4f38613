"""The final response's security headers and the journey's cookies, graded the way MDN HTTP
Observatory grades a site (its published score table: github.com/mdn/mdn-http-observatory,
src/grader/charts.js), each result with what to change.

What this journey can test is the response it received: the tests that need requests it did
not make (Subresource Integrity reads the page's script tags; CORS's worst case needs a
foreign Origin; the http → https redirect needs a journey begun on http) say so and count 0.
Per request, what the final response cannot show: HSTS sent over plain http is ignored (RFC
6797 §8.1), HSTS on an https redirect is remembered before the next request.

Pure: :func:`security` reads the typed journey; :func:`grade` takes headers alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from whathappens.analysis.security_headers import (
    Csp,
    Headers,
    Hsts,
    cookie_problems,
    csp_gaps,
    csp_result,
    joined,
    parse_cookie,
    parse_csp,
    parse_hsts,
    session_name,
    values,
)
from whathappens.analysis.security_model import (
    CookieCheck,
    CspDirective,
    HeaderCheck,
    HstsReading,
    LegNote,
    Requirement,
    ScoreRule,
    SecurityAnalysis,
)
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import HttpFacts, LegFacts, TlsFacts, UrlFacts
from whathappens.explain import security as words

# Each Observatory result's test and its published modifier (charts.js SCORE_TABLE).
MODIFIERS: dict[str, tuple[str, int]] = {
    "csp-implemented-with-no-unsafe-default-src-none": ("content-security-policy", 10),
    "csp-implemented-with-no-unsafe": ("content-security-policy", 5),
    "csp-implemented-with-unsafe-inline-in-style-src-only": ("content-security-policy", 0),
    "csp-implemented-with-insecure-scheme-in-passive-content-only":
        ("content-security-policy", -10),
    "csp-implemented-with-unsafe-eval": ("content-security-policy", -10),
    "csp-implemented-with-unsafe-inline": ("content-security-policy", -20),
    "csp-implemented-with-insecure-scheme": ("content-security-policy", -20),
    "csp-header-invalid": ("content-security-policy", -25),
    "csp-not-implemented": ("content-security-policy", -25),
    "cookies-secure-with-httponly-sessions-and-samesite": ("cookies", 5),
    "cookies-secure-with-httponly-sessions": ("cookies", 0),
    "cookies-not-found": ("cookies", 0),
    "cookies-without-secure-flag-but-protected-by-hsts": ("cookies", -5),
    "cookies-session-without-secure-flag-but-protected-by-hsts": ("cookies", -10),
    "cookies-without-secure-flag": ("cookies", -20),
    "cookies-samesite-flag-invalid": ("cookies", -20),
    "cookies-anticsrf-without-samesite-flag": ("cookies", -20),
    "cookies-session-without-httponly-flag": ("cookies", -30),
    "cookies-session-without-secure-flag": ("cookies", -40),
    "cross-origin-resource-sharing-not-implemented": ("cross-origin-resource-sharing", 0),
    "cross-origin-resource-sharing-implemented-with-public-access":
        ("cross-origin-resource-sharing", 0),
    "cross-origin-resource-sharing-implemented-with-restricted-access":
        ("cross-origin-resource-sharing", 0),
    "cross-origin-resource-sharing-implemented-with-universal-access":
        ("cross-origin-resource-sharing", -50),
    "redirection-to-https": ("redirection", 0),
    "redirection-off-host-from-http": ("redirection", -5),
    "redirection-not-to-https-on-initial-redirection": ("redirection", -10),
    "redirection-missing": ("redirection", -20),
    "redirection-not-to-https": ("redirection", -20),
    "referrer-policy-private": ("referrer-policy", 5),
    "referrer-policy-not-implemented": ("referrer-policy", 0),
    "referrer-policy-unsafe": ("referrer-policy", -5),
    "referrer-policy-header-invalid": ("referrer-policy", -5),
    "hsts-preloaded": ("strict-transport-security", 5),
    "hsts-implemented-max-age-at-least-six-months": ("strict-transport-security", 0),
    "hsts-implemented-max-age-less-than-six-months": ("strict-transport-security", -10),
    "hsts-not-implemented": ("strict-transport-security", -20),
    "hsts-header-invalid": ("strict-transport-security", -20),
    "hsts-not-implemented-no-https": ("strict-transport-security", -20),
    "x-content-type-options-nosniff": ("x-content-type-options", 0),
    "x-content-type-options-not-implemented": ("x-content-type-options", -5),
    "x-content-type-options-header-invalid": ("x-content-type-options", -5),
    "x-frame-options-implemented-via-csp": ("x-frame-options", 5),
    "x-frame-options-sameorigin-or-deny": ("x-frame-options", 0),
    "x-frame-options-allow-from-origin": ("x-frame-options", 0),
    "x-frame-options-not-implemented": ("x-frame-options", -20),
    "x-frame-options-header-invalid": ("x-frame-options", -20),
    "cross-origin-resource-policy-implemented-with-same-origin":
        ("cross-origin-resource-policy", 10),
    "cross-origin-resource-policy-implemented-with-same-site":
        ("cross-origin-resource-policy", 10),
    "cross-origin-resource-policy-implemented-with-cross-origin":
        ("cross-origin-resource-policy", 0),
    "cross-origin-resource-policy-not-implemented": ("cross-origin-resource-policy", 0),
    "cross-origin-resource-policy-header-invalid": ("cross-origin-resource-policy", -5),
}
SIX_MONTHS = 15768000        # the Observatory's HSTS threshold
PRELOAD_MAX_AGE = 31536000   # hstspreload.org's
EXTRA_CREDIT_FROM = 90       # bonuses count only from here (charts.js)
GRADES = ((100, "A+"), (90, "A"), (85, "A-"), (80, "B+"), (70, "B"), (65, "B-"), (60, "C+"),
          (50, "C"), (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"), (0, "F"))
PRIVATE_REFERRER = {"no-referrer", "same-origin", "strict-origin",
                    "strict-origin-when-cross-origin"}
UNSAFE_REFERRER = {"origin", "origin-when-cross-origin", "unsafe-url",
                   "no-referrer-when-downgrade"}


@dataclass(frozen=True)
class Exchange:
    """One request of the journey as the grade needs it."""

    leg: int
    url: str
    headers: Headers
    span_id: int = 0

    @property
    def https(self) -> bool:
        return self.url.lower().startswith("https:")

    @property
    def host(self) -> str:
        try:
            return (urlsplit(self.url).hostname or "").lower()
        except ValueError:
            return ""


@dataclass(frozen=True)
class Context:
    """What the grade knows beyond the final response's headers."""

    chain: list[Exchange] = field(default_factory=list)  # every request, final last
    preloaded: bool = False          # the host is in the shipped HSTS preload list
    began_on_http: bool = False      # the journey's first request was http://
    registrable_domain: str | None = None
    certificate_ok: bool | None = None


# ------------------------------------------------------------------------------- the tests
def hsts_result(final: Exchange, ctx: Context) -> str:
    if ctx.preloaded:
        return "hsts-preloaded"
    if not final.https:
        return "hsts-not-implemented-no-https"
    found = values(final.headers, "strict-transport-security")
    if not found:
        return "hsts-not-implemented"
    h = parse_hsts(found[0])  # only the first counts (RFC 6797 §8.1)
    if h.error is not None or h.max_age is None:
        return "hsts-header-invalid"
    if h.max_age >= SIX_MONTHS:
        return "hsts-implemented-max-age-at-least-six-months"
    return "hsts-implemented-max-age-less-than-six-months"


def csp_of(headers: Headers) -> Csp | None:
    found = values(headers, "content-security-policy")
    return parse_csp(found[0]) if found else None


def csp_test(headers: Headers) -> str:
    csp = csp_of(headers)
    if csp is None:
        return "csp-not-implemented"
    return "csp-header-invalid" if csp.error else csp_result(csp)


def xcto_test(headers: Headers) -> str:
    v = joined(headers, "x-content-type-options")
    if v is None:
        return "x-content-type-options-not-implemented"
    ok = v.split(",")[0].strip().lower() == "nosniff"
    return "x-content-type-options-nosniff" if ok else "x-content-type-options-header-invalid"


def xfo_test(headers: Headers) -> str:
    csp = csp_of(headers)
    if csp is not None and csp.error is None and "frame-ancestors" in csp.directives:
        return "x-frame-options-implemented-via-csp"
    v = joined(headers, "x-frame-options")
    if v is None:
        return "x-frame-options-not-implemented"
    v = v.strip().lower()
    if v in ("deny", "sameorigin"):
        return "x-frame-options-sameorigin-or-deny"
    if v.startswith("allow-from "):
        return "x-frame-options-allow-from-origin"
    return "x-frame-options-header-invalid"


def referrer_token(value: str) -> str | None:
    """The policy a browser uses: the last token it recognises (Referrer Policy §11.1)."""
    known = PRIVATE_REFERRER | UNSAFE_REFERRER
    tokens = [t.strip().lower() for t in value.split(",")]
    return next((t for t in reversed(tokens) if t in known), None)


def referrer_test(headers: Headers) -> str:
    v = joined(headers, "referrer-policy")
    if v is None:
        return "referrer-policy-not-implemented"
    t = referrer_token(v)
    if t is None:
        return "referrer-policy-header-invalid"
    return "referrer-policy-private" if t in PRIVATE_REFERRER else "referrer-policy-unsafe"


def corp_test(headers: Headers) -> str:
    v = joined(headers, "cross-origin-resource-policy")
    if v is None:
        return "cross-origin-resource-policy-not-implemented"
    return {"same-origin": "cross-origin-resource-policy-implemented-with-same-origin",
            "same-site": "cross-origin-resource-policy-implemented-with-same-site",
            "cross-origin": "cross-origin-resource-policy-implemented-with-cross-origin",
            }.get(v.strip().lower(), "cross-origin-resource-policy-header-invalid")


def cors_test(headers: Headers) -> str:
    v = joined(headers, "access-control-allow-origin")
    if v is None:
        return "cross-origin-resource-sharing-not-implemented"
    creds = (joined(headers, "access-control-allow-credentials") or "").strip().lower()
    if v.strip() == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access"
    if v.strip().lower() == "null" and creds == "true":
        return "cross-origin-resource-sharing-implemented-with-universal-access"
    return "cross-origin-resource-sharing-implemented-with-restricted-access"


def redirection_test(ctx: Context) -> str | None:
    """None when the journey did not begin on http (nothing to grade)."""
    if not ctx.began_on_http or not ctx.chain:
        return None
    chain = list(ctx.chain)
    location = joined(chain[-1].headers, "location")
    if location:
        # the journey stopped after a redirect (a later step failed): the Location says where
        # it led (RFC 9110 §10.2.2, resolved against the request's URL)
        chain.append(Exchange(chain[-1].leg + 1, _resolve(chain[-1].url, location), []))
    first, final = chain[0], chain[-1]
    if not final.https:
        return "redirection-missing" if len(chain) == 1 else "redirection-not-to-https"
    second = chain[1] if len(chain) > 1 else final
    if not second.https:
        return "redirection-not-to-https-on-initial-redirection"
    if second.host != first.host:
        return "redirection-off-host-from-http"
    return "redirection-to-https"


def _resolve(base: str, location: str) -> str:
    try:
        return urljoin(base, location.strip())
    except ValueError:
        return location


_COOKIE_ORDER = (  # the Observatory's order, best to worst (cookies.js ``goodness``)
    "cookies-without-secure-flag-but-protected-by-hsts", "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid", "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag", "cookies-session-without-secure-flag")


def cookies_test(chain: list[Exchange], hsts_ok: bool) -> str:
    """The Observatory's cookie test over every Set-Cookie of the journey: the worst
    failure, else +5 when every cookie has SameSite."""
    worst = -1
    found = missing_same_site = False

    def worse(result: str) -> None:
        nonlocal worst
        worst = max(worst, _COOKIE_ORDER.index(result))

    for ex in chain:
        for raw in values(ex.headers, "set-cookie"):
            c = parse_cookie(raw)
            found = True
            secure = c.secure and ex.https
            same = (c.same_site or "").strip().lower()
            if (c.same_site is not None and same not in ("strict", "lax", "none")) or (
                    same == "none" and not secure):
                worse("cookies-samesite-flag-invalid")
            if not secure:
                worse("cookies-without-secure-flag-but-protected-by-hsts" if hsts_ok
                      else "cookies-without-secure-flag")
            if "csrf" in c.name.lower() and c.same_site is None:
                worse("cookies-anticsrf-without-samesite-flag")
            if session_name(c.name) and not secure:
                worse("cookies-session-without-secure-flag-but-protected-by-hsts" if hsts_ok
                      else "cookies-session-without-secure-flag")
            if session_name(c.name) and not c.http_only:
                worse("cookies-session-without-httponly-flag")
            missing_same_site = missing_same_site or c.same_site is None
    if not found:
        return "cookies-not-found"
    if worst >= 0:
        return _COOKIE_ORDER[worst]
    return ("cookies-secure-with-httponly-sessions" if missing_same_site
            else "cookies-secure-with-httponly-sessions-and-samesite")


# ------------------------------------------------------------------------------- the grade
def _rule(result: str, note: str | None = None) -> ScoreRule:
    test, modifier = MODIFIERS.get(result, ("", 0))
    says, change = words.RULES.get(result, ("", None))
    return ScoreRule(test, result, modifier, True, note or says, change)


def _not_tested(test: str, why: str) -> ScoreRule:
    return ScoreRule(test, words.NOT_TESTED, 0, True, why, None)


def letter(score: int) -> str:
    """The Observatory's grade: the score rounded down to a multiple of 5, capped at 100."""
    s = min(max(score, 0) - max(score, 0) % 5, 100)
    return next(g for floor, g in GRADES if s >= floor)


def score_rules(rules: list[ScoreRule]) -> tuple[int, list[ScoreRule]]:
    """Penalties first; bonuses only when those leave 90 or more (charts.js
    MINIMUM_SCORE_FOR_EXTRA_CREDIT); never below 0."""
    base = 100 + sum(r.modifier for r in rules if r.modifier < 0)
    bonus = base >= EXTRA_CREDIT_FROM
    out = [r if r.modifier <= 0 or bonus else ScoreRule(
        r.test, r.result, r.modifier, False, r.says, r.change) for r in rules]
    return max(base + (sum(r.modifier for r in rules if r.modifier > 0) if bonus else 0),
               0), out


def grade_rules(final: Exchange, ctx: Context) -> list[ScoreRule]:
    """Every Observatory test, as this journey passes it."""
    hsts = hsts_result(final, ctx)
    redirect = redirection_test(ctx)
    chain = ctx.chain or [final]
    return [
        _rule(csp_test(final.headers)),
        _rule(cookies_test(chain, hsts in ("hsts-preloaded",
                                           "hsts-implemented-max-age-at-least-six-months"))),
        _rule(cors_test(final.headers)) if joined(final.headers, "access-control-allow-origin")
        else _rule("cross-origin-resource-sharing-not-implemented", words.RULES[
            "cross-origin-resource-sharing-not-implemented"][0] + " " + words.CORS_NOT_TESTED),
        _rule(redirect) if redirect else _not_tested("redirection", words.REDIRECTION_NOT_TESTED),
        _rule(referrer_test(final.headers)),
        _rule(hsts),
        _not_tested("subresource-integrity", words.SRI_NOT_TESTED),
        _rule(xcto_test(final.headers)),
        _rule(xfo_test(final.headers)),
        _rule(corp_test(final.headers)),
    ]


def grade(headers: Headers, url: str = "https://www.example.com/",
          ctx: Context | None = None) -> tuple[int, str, list[ScoreRule]]:
    """Score, letter and each test's result for one response's headers."""
    final = Exchange(0, url, headers)
    score, rules = score_rules(grade_rules(final, ctx or Context(chain=[final])))
    return score, letter(score), rules


# ------------------------------------------------------------------------- header readings
def hsts_reading(final: Exchange, ctx: Context) -> HstsReading | None:
    found = values(final.headers, "strict-transport-security")
    if not found or not final.https:
        return None
    h: Hsts = parse_hsts(found[0])
    base = ctx.registrable_domain
    on_base = base is not None and final.host == base.lower()
    redirect = redirection_test(ctx)
    reqs = [
        Requirement("a valid certificate", ctx.certificate_ok,
                    "the chain verified" if ctx.certificate_ok else
                    "the chain did not verify" if ctx.certificate_ok is False else "not seen"),
        Requirement("http redirects to https on the same host first",
                    None if redirect is None else redirect == "redirection-to-https",
                    "seen on this journey" if redirect else
                    "not seen: the journey began on https"),
        Requirement("max-age ≥ 31536000 (one year)",
                    h.max_age is not None and h.max_age >= PRELOAD_MAX_AGE,
                    f"max-age={h.max_age}" if h.max_age is not None else str(h.error)),
        Requirement("includeSubDomains", h.include_subdomains,
                    "present" if h.include_subdomains else "absent"),
        Requirement("preload", h.preload, "present" if h.preload else "absent"),
        Requirement(f"the header on the base domain's https response ({base or '?'})",
                    True if on_base else None,
                    "this response is the base domain's" if on_base else
                    f"this response is {final.host}'s; {base or 'the base domain'} was not "
                    "fetched"),
        Requirement("every subdomain serves https", None, "a journey cannot check this"),
    ]
    ready = all(r.met is not False for r in reqs)
    return HstsReading(h.max_age, h.include_subdomains, h.preload, ready, reqs)


def _check(header: str, value: str | None, verdict: str, says: str, change: str | None,
           cite: str) -> HeaderCheck:
    return HeaderCheck(header, value, verdict, says, change, cite)  # type: ignore[arg-type]


def _rule_check(header: str, value: str | None, result: str, cite: str) -> HeaderCheck:
    """A header whose verdict is its Observatory result's."""
    _, modifier = MODIFIERS.get(result, ("", 0))
    says, change = words.RULES.get(result, ("", None))
    verdict = ("missing" if value is None else "invalid" if "invalid" in result
               else "bad" if modifier < 0 else "weak" if change else "good")
    return _check(header, value, verdict, says, change, cite)


def duration(seconds: int) -> str:
    """``1 hour``, ``365 days``: a max-age a person can read."""
    if seconds < 3600:
        return f"{seconds / 60:,.0f} minutes"
    if seconds < 86400:
        hours = seconds / 3600
        return f"{hours:,.0f} hour" + ("" if round(hours) == 1 else "s")
    return f"{seconds / 86400:,.0f} days"


def _hsts_check(final: Exchange) -> HeaderCheck:
    v = joined(final.headers, "strict-transport-security")
    cite = "RFC 6797"
    if v is None:
        return _rule_check("Strict-Transport-Security", None, "hsts-not-implemented", cite)
    h = parse_hsts(values(final.headers, "strict-transport-security")[0])
    if h.error is not None:
        return _check("Strict-Transport-Security", v, "invalid", h.error,
                      words.RULES["hsts-header-invalid"][1], cite + " §6.1")
    says = (f"remembered for {h.max_age:,} s ({duration(h.max_age or 0)})"
            + ("; subdomains too" if h.include_subdomains else "")
            + ("; asks to be preloaded" if h.preload else ""))
    if not final.https:
        return _check("Strict-Transport-Security", v, "bad", words.HSTS_OVER_HTTP,
                      "serve the site over https", cite + " §8.1")
    short = (h.max_age or 0) < SIX_MONTHS
    return _check("Strict-Transport-Security", v, "weak" if short else "good", says,
                  words.RULES["hsts-implemented-max-age-less-than-six-months"][1] if short
                  else None, cite + " §6.1")


def _csp_check(headers: Headers) -> HeaderCheck:
    v = joined(headers, "content-security-policy")
    result = csp_test(headers)
    check = _rule_check("Content-Security-Policy", v, result, "CSP Level 3")
    csp = csp_of(headers)
    if csp is None or csp.error:
        return check if csp is None else _check(
            check.header, v, "invalid", str(csp.error), check.change, check.cite)
    gaps = csp_gaps(csp)
    many = len(values(headers, "content-security-policy"))
    if many > 1:
        gaps.append(f"{many} policies: browsers enforce each; the first is read here")
    return _check(check.header, v, check.verdict,
                  check.says + ("; " + "; ".join(gaps) if gaps else ""),
                  check.change, check.cite)


def _permissions_check(headers: Headers) -> HeaderCheck:
    v = joined(headers, "permissions-policy")
    cite = "Permissions Policy (W3C), not scored by the Observatory"
    if v is None:
        return _check("Permissions-Policy", None, "missing",
                      "no Permissions-Policy: powerful features (camera, microphone, "
                      "geolocation) are left at their defaults",
                      "deny what the site does not use, e.g. camera=(), microphone=()", cite)
    items = [i.strip() for i in v.split(",") if i.strip()]
    bad = [i for i in items if "=" not in i]
    if not items or bad:
        return _check("Permissions-Policy", v, "invalid",
                      "not a structured-field dictionary (feature=(allowlist)) (RFC 8941)",
                      "write each as feature=(…)", cite)
    wide = [i.split("=")[0] for i in items if i.split("=", 1)[1].strip() == "*"]
    if wide:
        return _check("Permissions-Policy", v, "weak",
                      f"{', '.join(wide[:5])} allowed to every origin, frames included",
                      "allow those to (self) only", cite)
    return _check("Permissions-Policy", v, "good",
                  f"{len(items)} feature(s) limited", None, cite)


def _coop_check(headers: Headers) -> HeaderCheck:
    v = joined(headers, "cross-origin-opener-policy")
    cite = "HTML Standard, cross-origin opener policies; not scored by the Observatory"
    if v is None:
        return _check("Cross-Origin-Opener-Policy", None, "missing",
                      "no COOP: a page this one opens (or that opens it) keeps a handle on "
                      "its window", "send same-origin (same-origin-allow-popups for OAuth "
                      "pop-ups)", cite)
    token = v.split(";")[0].split(",")[0].strip().lower()
    verdict = {"same-origin": "good", "same-origin-allow-popups": "good",
               "noopener-allow-popups": "good", "unsafe-none": "weak"}.get(token, "invalid")
    says = {"good": f"{token}: cross-origin windows get no handle on this one",
            "weak": "unsafe-none: the default, said aloud",
            "invalid": "a value browsers ignore"}[verdict]
    return _check("Cross-Origin-Opener-Policy", v, verdict, says,
                  None if verdict == "good" else "use same-origin", cite)


def header_checks(final: Exchange) -> list[HeaderCheck]:
    h = final.headers
    xfo = xfo_test(h)
    xfo_value = joined(h, "x-frame-options")
    return [
        _hsts_check(final),
        _csp_check(h),
        _rule_check("X-Content-Type-Options", joined(h, "x-content-type-options"),
                    xcto_test(h), "Fetch Standard §X-Content-Type-Options"),
        _rule_check("Referrer-Policy", joined(h, "referrer-policy"), referrer_test(h),
                    "Referrer Policy (W3C)"),
        _rule_check("X-Frame-Options", xfo_value, xfo, "RFC 7034; CSP frame-ancestors")
        if xfo != "x-frame-options-implemented-via-csp" else _check(
            "X-Frame-Options", xfo_value, "good", words.RULES[xfo][0]
            + ("; X-Frame-Options is then ignored by CSP-aware browsers" if xfo_value else ""),
            None, "CSP Level 3 frame-ancestors"),
        _permissions_check(h),
        _coop_check(h),
        _rule_check("Cross-Origin-Resource-Policy", joined(h, "cross-origin-resource-policy"),
                    corp_test(h), "Fetch Standard §CORP"),
    ]


# ------------------------------------------------------------------------- cookies, legs
def cookie_checks(chain: list[Exchange]) -> list[CookieCheck]:
    out: list[CookieCheck] = []
    for ex in chain:
        for raw in values(ex.headers, "set-cookie")[:50]:
            c = parse_cookie(raw)
            problems = cookie_problems(c, ex.https)
            rejected = any("reject" in p for p in problems)
            verdict = ("bad" if rejected or not c.secure or (
                session_name(c.name) and not c.http_only)
                else "weak" if problems else "good")
            prefix = next((p for p in ("__Host-", "__Secure-")
                           if c.name.lower().startswith(p.lower())), None)
            out.append(CookieCheck(ex.leg, c.name[:200], c.secure, c.http_only,
                                   c.same_site, prefix, session_name(c.name), c.persistent,
                                   problems, verdict))  # type: ignore[arg-type]
    return out


def leg_notes(chain: list[Exchange]) -> list[LegNote]:
    """What an earlier request did that the final response does not show."""
    out: list[LegNote] = []
    for ex in chain:
        sts = values(ex.headers, "strict-transport-security")
        if sts and not ex.https:
            out.append(LegNote(ex.leg, ex.url, words.HSTS_OVER_HTTP))
        elif sts and ex is not chain[-1] and parse_hsts(sts[0]).error is None:
            out.append(LegNote(ex.leg, ex.url, words.HSTS_ON_REDIRECT.format(host=ex.host)))
        for raw in values(ex.headers, "set-cookie"):
            if not ex.https:
                out.append(LegNote(ex.leg, ex.url, words.COOKIE_OVER_HTTP.format(
                    name=parse_cookie(raw).name[:80])))
    if chain and joined(chain[-1].headers, "location"):
        out.append(LegNote(chain[-1].leg, chain[-1].url, words.ENDED_ON_REDIRECT))
    return out


# ------------------------------------------------------------------------------ the journey
def exchanges(journey: JourneyDoc) -> Iterator[tuple[Exchange, SpanDoc]]:
    """Each request that got a response, with its leg span, in order."""
    for leg in journey.spans:
        facts = leg.facts_as(LegFacts)
        http = leg.child("http")
        hf = http.facts_as(HttpFacts) if http is not None else None
        if facts is None or http is None or hf is None or hf.status is None:
            continue
        yield Exchange(facts.index, facts.url, list(hf.response_headers), http.id), leg


def _context(journey: JourneyDoc, chain: list[Exchange], final_leg: SpanDoc) -> Context:
    url = next((s.facts for s in journey.spans if isinstance(s.facts, UrlFacts)), None)
    tls = final_leg.child("tls")
    tf = tls.facts_as(TlsFacts) if tls is not None else None
    verified = tf.chain_verification.ok if tf is not None and tf.chain_verification else None
    same_host = url is not None and chain[-1].host == url.host.lower()
    return Context(chain=chain,
                   preloaded=bool(url is not None and url.hsts_preloaded and same_host),
                   began_on_http=bool(chain and not chain[0].https),
                   registrable_domain=url.registrable_domain if url is not None else None,
                   certificate_ok=verified)


def security(journey: JourneyDoc) -> SecurityAnalysis | None:
    """The grade of the journey's final response; None when no response came."""
    found = list(exchanges(journey))
    if not found:
        return None
    chain = [ex for ex, _ in found]
    final, final_leg = found[-1]
    ctx = _context(journey, chain, final_leg)
    score, rules = score_rules(grade_rules(final, ctx))
    csp = csp_of(final.headers)
    return SecurityAnalysis(
        span_id=final.span_id, url=final.url, score=score, grade=letter(score),
        scoring=words.SCORING, rules=rules, headers=header_checks(final),
        csp=[CspDirective(n, s) for n, s in (csp.directives.items() if csp else [])],
        hsts=hsts_reading(final, ctx), cookies=cookie_checks(chain), legs=leg_notes(chain))
