"""The words of the security-header grade and of "who answered", as data.

Each Observatory result (analysis/security.py holds its published modifier) has what it
means and what to change, in our own words. The reference is MDN HTTP Observatory's score
table (github.com/mdn/mdn-http-observatory, src/grader/charts.js) and its grading chart.
"""

from __future__ import annotations

SCORING = ("MDN HTTP Observatory's scoring: start at 100, add each test's modifier; bonuses "
           "count only when the penalties leave 90 or more; grade from the score rounded down "
           "to a multiple of 5 (100+ A+, 90 A, 85 A-, 80 B+, 70 B, 65 B-, 60 C+, 50 C, 45 C-, "
           "40 D+, 30 D, 25 D-, below F). github.com/mdn/mdn-http-observatory "
           "src/grader/charts.js")

NOT_TESTED = "not-tested-here"

# result → (what it means, what to change or None)
RULES: dict[str, tuple[str, str | None]] = {
    # Content-Security-Policy
    "csp-implemented-with-no-unsafe-default-src-none": (
        "a CSP that denies by default (default-src 'none'), allows no unsafe sources and "
        "limits where forms post", None),
    "csp-implemented-with-no-unsafe": (
        "a CSP without 'unsafe-inline' or 'unsafe-eval' in its script rules",
        "start from default-src 'none' and allow each kind of resource by name"),
    "csp-implemented-with-unsafe-inline-in-style-src-only": (
        "a CSP whose only loose rule is in style-src ('unsafe-inline', data: or a whole "
        "scheme): scripts are locked down, styles are not",
        "move inline styles into stylesheets (or give them a nonce/hash) and drop "
        "'unsafe-inline' from style-src"),
    "csp-implemented-with-insecure-scheme-in-passive-content-only": (
        "a CSP that lets images or media load over plain http",
        "allow images and media over https only"),
    "csp-implemented-with-unsafe-eval": (
        "a CSP that allows 'unsafe-eval': strings can still become code",
        "stop using eval()/new Function() and remove 'unsafe-eval'"),
    "csp-implemented-with-insecure-scheme": (
        "a CSP that lets resources load over plain http", "list https sources only"),
    "csp-implemented-with-unsafe-inline": (
        "a CSP that does not stop injected scripts: 'unsafe-inline' or data: in script-src "
        "without a nonce or hash, a whole scheme or * as a script or object source, or no "
        "rule for scripts or objects at all",
        "set script-src and object-src (or default-src); use nonces or hashes instead of "
        "'unsafe-inline'; object-src 'none'"),
    "csp-header-invalid": (
        "a Content-Security-Policy header that cannot be read as a policy",
        "fix its syntax: directives separated by ';', each a name then its sources"),
    "csp-not-implemented": (
        "no Content-Security-Policy header: nothing limits what an injected script may do",
        "send one; start with default-src 'self'; object-src 'none'; base-uri 'self'"),
    # cookies
    "cookies-secure-with-httponly-sessions-and-samesite": (
        "every cookie is Secure, session cookies are HttpOnly, and every cookie has SameSite",
        None),
    "cookies-not-found": ("no cookie was set", None),
    "cookies-secure-with-httponly-sessions": (
        "every cookie is Secure and session cookies are HttpOnly, but some lack SameSite",
        "add SameSite=Lax (or Strict) to every cookie"),
    "cookies-without-secure-flag-but-protected-by-hsts": (
        "a cookie without Secure; HSTS keeps it off plain http for now",
        "add Secure to every cookie"),
    "cookies-session-without-secure-flag-but-protected-by-hsts": (
        "a session cookie without Secure; HSTS keeps it off plain http for now",
        "add Secure to the session cookie"),
    "cookies-without-secure-flag": (
        "a cookie without Secure (or set over plain http): it can leak on an http request",
        "add Secure, and HSTS"),
    "cookies-samesite-flag-invalid": (
        "a SameSite attribute that is not Strict, Lax or None, or SameSite=None without "
        "Secure (browsers reject that cookie)", "use SameSite=Strict or Lax"),
    "cookies-anticsrf-without-samesite-flag": (
        "an anti-CSRF token cookie without SameSite", "add SameSite=Strict or Lax"),
    "cookies-session-without-httponly-flag": (
        "a session cookie that page scripts can read (no HttpOnly): an injected script "
        "could steal the session", "add HttpOnly to the session cookie"),
    "cookies-session-without-secure-flag": (
        "a session cookie without Secure, with no HSTS to keep it off plain http",
        "add Secure to the session cookie, and HSTS"),
    # CORS
    "cross-origin-resource-sharing-not-implemented": (
        "no Access-Control-Allow-Origin: other sites' scripts cannot read this response", None),
    "cross-origin-resource-sharing-implemented-with-public-access": (
        "Access-Control-Allow-Origin: * — any site's script may read it (without "
        "credentials)", None),
    "cross-origin-resource-sharing-implemented-with-restricted-access": (
        "Access-Control-Allow-Origin names one origin", None),
    "cross-origin-resource-sharing-implemented-with-universal-access": (
        "any origin may read the response with the visitor's credentials",
        "allow named origins only, or * without Access-Control-Allow-Credentials"),
    # redirection
    "redirection-to-https": (
        "plain http redirects to https on the same host first", None),
    "redirection-off-host-from-http": (
        "plain http redirects to https on another host, so the first host never sets HSTS",
        "redirect http to https on the same host first, then to the other host"),
    "redirection-not-to-https-on-initial-redirection": (
        "plain http redirects to another http URL first",
        "redirect http to https on the same host first"),
    "redirection-missing": ("plain http does not redirect to https",
                            "answer http with a redirect to https on the same host"),
    "redirection-not-to-https": ("the redirects end on a plain http URL",
                                 "make the final URL https"),
    # Referrer-Policy
    "referrer-policy-private": (
        "Referrer-Policy keeps the path and query from other sites", None),
    "referrer-policy-not-implemented": (
        "no Referrer-Policy: browsers default to strict-origin-when-cross-origin today",
        "send strict-origin-when-cross-origin (or stricter) to say so"),
    "referrer-policy-unsafe": (
        "a Referrer-Policy that sends the full URL (path and query) to other sites",
        "use strict-origin-when-cross-origin or stricter"),
    "referrer-policy-header-invalid": (
        "a Referrer-Policy no browser recognises", "use strict-origin-when-cross-origin"),
    # HSTS
    "hsts-preloaded": ("the host is in the HSTS preload list browsers ship", None),
    "hsts-implemented-max-age-at-least-six-months": (
        "HSTS remembered for six months or more",
        "consider preloading: max-age ≥ 31536000, includeSubDomains, preload, then submit "
        "at hstspreload.org"),
    "hsts-implemented-max-age-less-than-six-months": (
        "HSTS remembered for less than six months (15768000 s)",
        "raise max-age to at least 15768000 (31536000 to preload) once https is settled"),
    "hsts-not-implemented": (
        "no Strict-Transport-Security: a typed http:// or link can be intercepted first",
        "send Strict-Transport-Security: max-age=31536000; includeSubDomains"),
    "hsts-header-invalid": (
        "a Strict-Transport-Security header browsers ignore (RFC 6797 §6.1: max-age "
        "required, each directive once)", "send max-age=<seconds>; includeSubDomains"),
    "hsts-not-implemented-no-https": (
        "HSTS cannot be set: the final response came over plain http",
        "serve the site over https"),
    # X-Content-Type-Options
    "x-content-type-options-nosniff": (
        "nosniff: browsers use the declared Content-Type, never guess", None),
    "x-content-type-options-not-implemented": (
        "no X-Content-Type-Options: a browser may guess a type and run a file as script",
        "send X-Content-Type-Options: nosniff"),
    "x-content-type-options-header-invalid": (
        "an X-Content-Type-Options value other than nosniff", "send exactly nosniff"),
    # framing
    "x-frame-options-implemented-via-csp": (
        "CSP frame-ancestors says who may frame the page (clickjacking)", None),
    "x-frame-options-sameorigin-or-deny": (
        "X-Frame-Options DENY or SAMEORIGIN", "say it with CSP frame-ancestors, its successor"),
    "x-frame-options-allow-from-origin": (
        "X-Frame-Options ALLOW-FROM, which current browsers ignore",
        "use CSP frame-ancestors"),
    "x-frame-options-not-implemented": (
        "nothing stops another site from framing the page (clickjacking)",
        "add frame-ancestors 'self' (or 'none') to the CSP"),
    "x-frame-options-header-invalid": (
        "an X-Frame-Options value no browser recognises", "use CSP frame-ancestors"),
    # Cross-Origin-Resource-Policy
    "cross-origin-resource-policy-implemented-with-same-origin": (
        "CORP same-origin: other origins cannot embed this response", None),
    "cross-origin-resource-policy-implemented-with-same-site": (
        "CORP same-site: other sites cannot embed this response", None),
    "cross-origin-resource-policy-implemented-with-cross-origin": (
        "CORP cross-origin: anyone may embed it (the default, said aloud)", None),
    "cross-origin-resource-policy-not-implemented": (
        "no Cross-Origin-Resource-Policy (anyone may embed it)",
        "send same-origin or same-site unless other sites must embed it"),
    "cross-origin-resource-policy-header-invalid": (
        "a Cross-Origin-Resource-Policy value browsers ignore",
        "use same-origin, same-site or cross-origin"),
    NOT_TESTED: ("not graded here: this test needs requests this journey did not make", None),
}

SRI_NOT_TESTED = ("Subresource Integrity needs the page's HTML and its script tags; this "
                  "journey reads the response, not the page's markup, so it is not graded "
                  "(modifier 0 here; the Observatory's range is -50 to +5)")
CORS_NOT_TESTED = "(its worst case needs a foreign Origin, not sent here)"
REDIRECTION_NOT_TESTED = ("the journey began on https, so the http → https redirect was not "
                          "seen; run it with http://… to grade it")

HSTS_OVER_HTTP = ("this Strict-Transport-Security came over plain http: browsers ignore it "
                  "(RFC 6797 §8.1); only an https response sets HSTS")
HSTS_ON_REDIRECT = ("HSTS on this https redirect is remembered for {host} (RFC 6797 §8.1), "
                    "before the next request")
ENDED_ON_REDIRECT = ("the journey ended on this redirect (a later step failed, or redirects "
                     "were not followed): its headers are the ones graded")
COOKIE_OVER_HTTP = "cookie {name} was set over plain http: anyone on the path saw it"

WHO_INTRO = ("Who answered, inferred from what the responses carried: certain when the lab's "
             "own spans prove it, likely from a vendor's header, possible from a Server "
             "string or a name alone.")


# ---------------------------------------------------- --explain, with this journey's values
def security_beginner(grade: str, score: int, host: str, hsts_max_age: int | None,
                      hsts_for: str | None, script_sources: list[str] | None,
                      cookies: int) -> str:
    """The grade in plain words, with this response's own values."""
    if hsts_max_age is not None and hsts_for:
        hsts = (f"remember for {hsts_for} to come back to {host} only over https (that is "
                f"HSTS, max-age {hsts_max_age:,} s)")
    else:
        hsts = ("nothing about coming back only over https (no HSTS), so a typed http:// "
                "address goes out unprotected first")
    named = [{"'self'": "its own origin ('self')", "'none'": "nowhere ('none')"}.get(
        x.lower(), x) for x in (script_sources or [])]
    csp = (f"run scripts only from {' '.join(named)}" if named else
           "nothing about where scripts may come from")
    jar = f"; it set {cookies} cookie{'s' if cookies != 1 else ''}" if cookies else ""
    return (f"Besides the page, the server pinned instructions to its answer, like the care "
            f"label sewn into a coat: they tell your browser how to protect you on this site. "
            f"This answer told it to {hsts}, and to {csp}{jar}. Adding these up the way MDN's "
            f"HTTP Observatory does gives {score} points: {grade}.")


def security_advanced(penalties: int, bonuses: int, counted: bool, rules: int,
                      max_age: int | None) -> str:
    bonus = (f"bonuses +{bonuses} counted (the penalties left 90 or more)" if counted
             else f"bonuses +{bonuses} not counted (the penalties left less than 90)")
    hsts = (f"HSTS max-age={max_age} applies from the next request on this host (RFC 6797 "
            "§8.1, §8.3), and only when it arrived over https; "
            if max_age is not None else "")
    return (f"{rules} Observatory tests: penalties {penalties}, {bonus}. {hsts}CSP Level 3 "
            "falls back from script-src to default-src, ignores 'unsafe-inline' beside a nonce "
            "or hash, and base-uri and frame-ancestors never fall back. RFC 6265bis: a Secure "
            "cookie set over http, a __Host- cookie with Domain or a Path other than /, and "
            "SameSite=None without Secure are rejected by browsers.")


def who_beginner(line: str) -> str:
    found = f" Here: {line}." if line else " Here the answer carried no such marks."
    return ("A response can pass through several hands before it reaches you — a CDN's "
            "server near you, a load balancer, a proxy, the program that built the page — "
            "like a parcel that collects stamps at each depot. Some hands stamp their name on "
            "it, some hide it." + found)


WHO_ADVANCED = ("Via lists each proxy the message went through (RFC 9110 §7.6.3); Age above "
                "0 says a cache held the response that many seconds (RFC 9111 §5.1); Server "
                "is free text any program may fill in or omit (RFC 9110 §10.2.4); vendors "
                "add their own headers (CF-Ray, X-Amz-Cf-Pop, X-Served-By); a CNAME into a "
                "CDN's zone shows where DNS sent the client. Only the lab's own logs, which "
                "carry this request's traceparent (W3C Trace Context), prove a tier took part.")
