"""The navigation planner on its own: responses in, decisions out (no sockets, no server).

Redirects and method rewriting (RFC 9110 §15.4, Fetch "HTTP-redirect fetch"), the HSTS memory
(RFC 6797) and connection reuse (RFC 9112 §9.3, RFC 9113 §5.1.1/§6.8), first rule by rule,
then as properties over random redirect graphs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whathappens.navigation import (
    Arrive,
    Follow,
    HstsMemory,
    Navigation,
    OpenNew,
    Outcome,
    Policy,
    PooledConnection,
    Response,
    Reuse,
    Stop,
    choose_connection,
    parse_sts,
    redirect_method,
)
from whathappens.url import UrlAnatomy, parse_url


def url(text: str) -> UrlAnatomy:
    return parse_url(text, with_public_suffix=False)


def start(text: str, method: str = "GET", headers: Sequence[tuple[str, str]] = (),
          **policy: object) -> Navigation:
    return Navigation.start(url(text), method=method, headers=headers,
                            policy=Policy(**policy))  # type: ignore[arg-type]


def redirect(status: int, location: str, *more: tuple[str, str],
             secure: bool = True) -> Response:
    return Response(status, (("Location", location), *more), secure=secure)


def follow(outcome: Outcome) -> Navigation:
    assert isinstance(outcome, Follow), outcome
    return outcome.next


def stopped(outcome: Outcome, code: str) -> str:
    assert isinstance(outcome, Stop), outcome
    assert outcome.error.code == code
    assert outcome.error.step == "redirect"
    return outcome.error.message


OK = Response(200)


# ------------------------------------------------------------------ redirects (RFC 9110 §15.4)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_redirect_status_is_followed_to_its_location(status: int) -> None:
    nav = follow(start("https://a.example/old").after(redirect(status, "/new?x=1")))
    assert nav.hop.url.url() == "https://a.example/new?x=1"  # relative: RFC 3986 §5.2
    assert nav.hop.index == 1
    done = nav.after(OK)
    assert isinstance(done, Arrive)
    assert (done.final_url, done.redirects) == ("https://a.example/new?x=1", 1)


@pytest.mark.parametrize("response", [
    Response(200, (("Location", "/elsewhere"),)),  # Location outside a redirect: information
    Response(300, (("Location", "/choice"),)),     # §15.4.1: no automatic choice
    Response(304, (("Location", "/cached"),)),     # §15.4.5: not a redirection at all
    Response(302),                                 # a redirect with nowhere to go
    Response(302, (("Location", ""),)),
])
def test_a_response_without_a_usable_redirect_ends_the_journey(response: Response) -> None:
    done = start("https://a.example/").after(response)
    assert isinstance(done, Arrive)
    assert (done.final_url, done.redirects) == ("https://a.example/", 0)


def test_no_follow_arrives_at_the_redirect_itself() -> None:
    done = start("http://a.example/", follow_redirects=False).after(
        redirect(301, "https://a.example/"))
    assert isinstance(done, Arrive)
    assert (done.final_url, done.redirects) == ("http://a.example/", 0)


@pytest.mark.parametrize("location", ["javascript:alert(1)", "http://exa mple.com:99999/%%%",
                                      "ftp://a.example/file"])
def test_a_location_that_is_no_http_url_stops_the_journey(location: str) -> None:
    message = stopped(start("https://a.example/").after(redirect(302, location)),
                      "redirect.bad_location")
    assert message.startswith(f"the server redirected to '{location}', which cannot be "
                              "followed: ")


def test_too_many_redirects_names_the_limit_and_the_start_of_the_chain() -> None:
    nav = start("https://a.example/r/0", max_redirects=2)
    for n in (1, 2):
        nav = follow(nav.after(redirect(302, f"/r/{n}")))
    message = stopped(nav.after(redirect(302, "/r/3")), "redirect.too_many")
    assert message == ("more than 2 redirects (https://a.example/r/0 → https://a.example/r/1"
                       " → https://a.example/r/2 …)")


def test_no_redirect_allowed_stops_at_the_first() -> None:
    stopped(start("https://a.example/", max_redirects=0).after(redirect(301, "/b")),
            "redirect.too_many")


def test_a_redirect_loop_is_named_before_the_repeated_request() -> None:
    nav = follow(start("https://a.example/a").after(redirect(302, "/b")))
    message = stopped(nav.after(redirect(302, "/a")), "redirect.loop")
    assert message == ("redirect loop: https://a.example/a was already visited "
                       "(https://a.example/a → https://a.example/b → https://a.example/a)")


def test_a_redirect_to_itself_is_a_loop() -> None:
    stopped(start("https://a.example/").after(redirect(301, "/")), "redirect.loop")


def test_post_redirect_get_to_the_same_url_is_no_loop() -> None:
    # The Post/Redirect/Get pattern: a form POSTs to /form, which answers 303 to itself.
    # The GET that follows is another request (it was a loop before the planner).
    nav = follow(start("https://a.example/form", "POST").after(redirect(303, "/form")))
    assert (nav.hop.method, nav.hop.url.url()) == ("GET", "https://a.example/form")
    stopped(nav.after(redirect(303, "/form")), "redirect.loop")  # now it does repeat


def test_a_307_keeps_post_and_its_repetition_is_a_loop() -> None:
    nav = follow(start("https://a.example/a", "POST").after(redirect(307, "/b")))
    assert nav.hop.method == "POST"
    stopped(nav.after(redirect(307, "/a")), "redirect.loop")


@pytest.mark.parametrize(("status", "method", "then"), [
    # RFC 9110 §15.4.4 / Fetch: 303 means "GET the other resource"; HEAD stays HEAD.
    (303, "POST", "GET"), (303, "PUT", "GET"), (303, "DELETE", "GET"), (303, "GET", "GET"),
    (303, "HEAD", "HEAD"),
    # §15.4.2-3: for historical reasons user agents turn POST into GET on 301 and 302; only POST.
    (301, "POST", "GET"), (302, "POST", "GET"), (301, "PUT", "PUT"), (302, "DELETE", "DELETE"),
    (301, "HEAD", "HEAD"),
    # §15.4.8-9: 307 and 308 forbid the change.
    (307, "POST", "POST"), (308, "POST", "POST"), (307, "PUT", "PUT"), (308, "GET", "GET"),
])
def test_method_after_a_redirect(status: int, method: str, then: str) -> None:
    assert redirect_method(status, method) == then
    nav = follow(start("https://a.example/a", method).after(redirect(status, "/b")))
    assert nav.hop.method == then


def test_the_preload_list_upgrades_a_redirect_target_unless_told_not_to() -> None:
    # .dev is preloaded as a whole (RFC 6797 §12.3, the browsers' list).
    nav = follow(start("https://a.example/").after(redirect(302, "http://example.dev/")))
    assert nav.hop.url.url() == "https://example.dev/"
    nav = follow(start("https://a.example/", hsts_upgrade=False).after(
        redirect(302, "http://example.dev/")))
    assert nav.hop.url.url() == "http://example.dev/"


# ------------------------------------------------------------------ request fields on a redirect
def test_credentials_stay_with_their_origin() -> None:
    headers = [("Authorization", "Bearer secret"), ("Cookie", "s=1"), ("X-Trace", "t")]
    nav = follow(start("https://a.example/", headers=headers).after(redirect(302, "/b")))
    assert list(nav.hop.headers) == headers  # same origin: all of them
    out = nav.after(redirect(302, "https://b.example/"))
    nav = follow(out)
    assert list(nav.hop.headers) == [("X-Trace", "t")]
    assert out.notes == ("Authorization, Cookie not sent to https://b.example: fields that "
                         "carry credentials stay with the origin they were given for (as "
                         "browsers and curl do)",)
    # Once left behind they stay behind, even on the way back (Fetch drops them for good).
    back = follow(nav.after(redirect(302, "https://a.example/c")))
    assert list(back.hop.headers) == [("X-Trace", "t")]


def test_another_scheme_or_port_is_another_origin() -> None:
    auth = [("authorization", "Basic eDp5")]
    for target in ("http://a.example/", "https://a.example:8443/"):
        out = start("https://a.example/", headers=auth).after(redirect(302, target))
        assert follow(out).hop.headers == ()


def test_body_fields_are_dropped_when_the_method_becomes_get() -> None:
    headers = [("Content-Type", "application/json"), ("Accept", "*/*")]
    nav = follow(start("https://a.example/", "POST", headers).after(redirect(303, "/b")))
    assert list(nav.hop.headers) == [("Accept", "*/*")]
    nav = follow(start("https://a.example/", "POST", headers).after(redirect(307, "/b")))
    assert list(nav.hop.headers) == headers  # 307: the method and its fields are kept


# ------------------------------------------------------------------ HSTS (RFC 6797)
SECURE_STS = ("Strict-Transport-Security", "max-age=31536000")


def learned(host_url: str, *values: str, secure: bool = True) -> HstsMemory:
    memory = HstsMemory()
    for value in values:
        memory = memory.learn(url(host_url), value, secure=secure)
    return memory


def test_sts_over_verified_https_is_remembered_and_upgrades_later_redirects() -> None:
    nav = start("https://a.example/")
    out = nav.after(redirect(302, "http://a.example/plain", SECURE_STS))
    nxt = follow(out)
    # §8.3: the http:// target is fetched as https:// (port 80 → 443).
    assert nxt.hop.url.url() == "https://a.example/plain"
    assert out.notes == ("a.example sent Strict-Transport-Security earlier in this journey: "
                         "http:// upgraded to https://",)


@pytest.mark.parametrize(("target", "upgraded"), [
    ("http://a.example:80/", "https://a.example/"),
    ("http://a.example:8080/x", "https://a.example:8080/x"),  # another explicit port is kept
    ("http://user@a.example/", "https://user@a.example/"),
])
def test_the_upgrade_rewrites_scheme_and_port_only(target: str, upgraded: str) -> None:
    memory = learned("https://a.example/", "max-age=60")
    nav = Navigation.start(url("https://a.example/start"), hsts=memory)
    assert follow(nav.after(redirect(301, target))).hop.url.url() == upgraded


@pytest.mark.parametrize(("where", "secure"), [
    ("http://a.example/", False),   # §8.1: ignored over insecure transport
    ("https://a.example/", False),  # §8.1/§8.4: ignored when the certificate was not verified (-k)
    ("https://127.0.0.1/", True),   # §8.1.1: never for an IP literal
    ("https://[::1]/", True),
])
def test_sts_is_ignored_unless_secure_and_named(where: str, secure: bool) -> None:
    assert learned(where, "max-age=60; includeSubDomains", secure=secure).hosts == {}


@pytest.mark.parametrize("value", [
    "includeSubDomains",                  # max-age is REQUIRED (§6.1.1)
    "max-age=60; max-age=70",             # §6.1: each directive at most once
    "max-age=60; includeSubDomains; includesubdomains",
    "max-age=-1", "max-age=", "max-age=1e3", "max-age=0x10",
    "max-age=\u00b2",                     # a Latin-1 superscript 2: isdigit(), but no number
    "max-age=\u0661\u0662",               # Arabic-Indic digits: not delta-seconds either
    "",
])
def test_malformed_sts_is_ignored_whole(value: str) -> None:
    assert parse_sts(value) is None
    assert learned("https://a.example/", value).hosts == {}


@pytest.mark.parametrize(("value", "parsed"), [
    ("max-age=31536000", (31536000, False)),
    ("Max-Age=60 ; INCLUDESUBDOMAINS", (60, True)),   # directive names ignore case
    ('max-age="60"; includeSubDomains', (60, True)),  # quoted-string form
    ("max-age = 60", (60, False)),                    # implied LWS around "="
    ("max-age=60; preload; unknown=1;", (60, False)),  # unknown directives are ignored
])
def test_sts_grammar(value: str, parsed: tuple[int, bool]) -> None:
    assert parse_sts(value) == parsed


def test_max_age_zero_forgets_the_host_and_its_subdomains() -> None:
    memory = learned("https://a.example/", "max-age=60; includeSubDomains")
    assert memory.match("www.a.example") == "a.example"
    memory = memory.learn(url("https://a.example/"), "max-age=0", secure=True)  # §6.1.1
    assert memory.hosts == {}
    assert memory.match("a.example") is None


def test_a_later_field_replaces_the_earlier_one() -> None:
    memory = learned("https://a.example/", "max-age=60; includeSubDomains", "max-age=60")
    assert memory.hosts == {"a.example": False}  # §8.1: update, includeSubDomains gone


def test_include_subdomains_covers_subdomains_only() -> None:
    memory = learned("https://a.example/", "max-age=60; includeSubDomains")
    assert memory.match("a.example") == "a.example"
    assert memory.match("deep.www.a.example") == "a.example"
    assert memory.match("example") is None
    assert memory.match("ba.example") is None  # a suffix of the name is not a parent domain
    plain = learned("https://a.example/", "max-age=60")
    assert plain.match("www.a.example") is None


def test_a_trailing_dot_names_the_same_hsts_host() -> None:
    memory = learned("https://a.example./", "max-age=60")
    assert memory.hosts == {"a.example": False}
    assert memory.match("a.example.") == memory.match("a.example") == "a.example"
    nav = Navigation.start(url("https://a.example/start"), hsts=memory)
    assert follow(nav.after(redirect(301, "http://a.example./"))).hop.url.url() == \
        "https://a.example./"


def test_an_upgrade_through_a_parent_domain_says_which() -> None:
    nav = start("https://a.example/")
    out = nav.after(redirect(302, "http://www.a.example/",
                             ("Strict-Transport-Security", "max-age=60; includeSubDomains")))
    assert follow(out).hop.url.url() == "https://www.a.example/"
    assert out.notes == ("a.example sent Strict-Transport-Security with includeSubDomains "
                         "earlier in this journey: http://www.a.example upgraded to https://",)


def test_only_the_first_sts_field_counts() -> None:
    response = Response(200, (("Strict-Transport-Security", "max-age=60"),
                              ("Strict-Transport-Security", "max-age=0")), secure=True)
    done = start("https://a.example/").after(response)
    assert done.hsts.hosts == {"a.example": False}


def test_an_https_to_http_bounce_on_an_hsts_host_is_a_loop() -> None:
    # https://a/ → http://a/, upgraded back to https://a/: the same request again.
    out = start("https://a.example/").after(redirect(301, "http://a.example/", SECURE_STS))
    assert "https://a.example/ was already visited" in stopped(out, "redirect.loop")
    assert out.notes  # the upgrade that made the loop is said first


def test_learning_happens_on_the_final_response_too() -> None:
    done = start("https://a.example/").after(Response(200, (SECURE_STS,), secure=True))
    assert isinstance(done, Arrive)
    assert done.hsts.match("a.example") == "a.example"


# ------------------------------------------------------------------ connection reuse
A = ("https", "a.example", 443)
B = ("https", "b.example", 443)


def pooled(origin: tuple[str, str, int] = A, protocol: str = "HTTP/1.1", *,
           reusable: bool = True, closed: bool = False) -> PooledConnection:
    return PooledConnection(origin, protocol, reusable, closed)


def test_the_first_request_to_an_origin_opens_a_connection() -> None:
    choice = choose_connection(A, [pooled(B)])  # another origin's connection is no candidate
    assert isinstance(choice, OpenNew)
    assert choice.retire is None


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/2"])
def test_an_open_reusable_connection_to_the_origin_is_reused(protocol: str) -> None:
    conn = pooled(protocol=protocol)
    choice = choose_connection(A, [pooled(B), conn])
    assert isinstance(choice, Reuse)
    assert choice.connection == conn
    assert ("RFC 9112 §9.3" if protocol == "HTTP/1.1" else "RFC 9113") in choice.reason


@pytest.mark.parametrize(("conn", "why"), [
    (pooled(closed=True), "closed"),
    (pooled(reusable=False), "RFC 9112 §9.3"),  # Connection: close, an unread body, ...
    (pooled(protocol="HTTP/2", reusable=False), "GOAWAY"),  # RFC 9113 §6.8
])
def test_a_spent_connection_is_retired_and_a_new_one_opened(conn: PooledConnection,
                                                             why: str) -> None:
    choice = choose_connection(A, [conn])
    assert isinstance(choice, OpenNew)
    assert choice.retire == conn
    assert why in choice.reason


def test_a_fresh_connection_retires_even_a_reusable_one() -> None:
    conn = pooled()
    choice = choose_connection(A, [conn], fresh=True)
    assert isinstance(choice, OpenNew)
    assert choice.retire == conn


def test_scheme_and_port_are_part_of_the_origin() -> None:
    for other in (("http", "a.example", 443), ("https", "a.example", 8443)):
        assert isinstance(choose_connection(A, [pooled(other)]), OpenNew)


# ------------------------------------------------------------------ properties
HOSTS = ["a.example", "www.a.example", "b.example", "127.0.0.1"]
PATHS = ["/", "/x"]
NODES = [f"{s}://{h}{p}" for s in ("http", "https") for h in HOSTS for p in PATHS]
STS = {None: None, "max-age=100": (100, False), "max-age=100; includeSubDomains": (100, True),
       "max-age=0": (0, False), "max-age=x": None}
METHODS = ["GET", "HEAD", "POST", "PUT"]

# Weighted towards what makes navigation interesting: redirects, to URLs of the graph, with
# Strict-Transport-Security over verified TLS.
responses = st.tuples(
    st.sampled_from([200, 404, 301, 302, 303, 307, 308]),
    st.one_of(st.sampled_from(NODES), st.sampled_from(NODES), st.sampled_from(NODES),
              st.none(), st.sampled_from(["/", "x", "/x?q", "//b.example/x", "javascript:0",
                                          "http://"])),
    st.sampled_from([*STS, "max-age=100", "max-age=100; includeSubDomains"]),
    st.sampled_from([True, True, False]),  # verified TLS, when over https
)
# For HSTS: long walks between a domain and its subdomain, learning and forgetting.
HSTS_NODES = [f"{s}://{h}/{p}" for s in ("http", "https") for h in HOSTS[:2] for p in "abcdef"]
hsts_responses = st.tuples(
    st.sampled_from([301, 302, 307, 308, 303, 200]),
    st.sampled_from(HSTS_NODES),
    st.sampled_from(list(STS)),
    st.sampled_from([True, True, True, False]),
)


class Graph:
    """A server per URL, each answering every request to it the same way, drawn on first use."""

    def __init__(self, data: st.DataObject, answers: st.SearchStrategy[
            tuple[int, str | None, str | None, bool]] = responses) -> None:
        self.data = data
        self.strategy = answers
        self.answers: dict[str, Response] = {}

    def respond(self, nav: Navigation) -> Response:
        key = nav.hop.url.url()
        if key not in self.answers:
            status, location, sts, verified = self.data.draw(self.strategy)
            headers = [("Location", location)] if location is not None else []
            if sts is not None:
                headers.append(("Strict-Transport-Security", sts))
            self.answers[key] = Response(status, tuple(headers),
                                         secure=nav.hop.url.scheme == "https" and verified)
        return self.answers[key]


def walk(graph: Graph, nav: Navigation) -> tuple[list[Navigation], Outcome]:
    navs = [nav]
    while True:
        outcome = navs[-1].after(graph.respond(navs[-1]))
        if not isinstance(outcome, Follow):
            return navs, outcome
        navs.append(outcome.next)
        assert len(navs) <= navs[0].policy.max_redirects + 1


journeys = st.tuples(st.sampled_from(NODES), st.sampled_from(METHODS), st.integers(0, 6))


@settings(max_examples=300, deadline=None)
@given(journeys, st.data())
def test_any_redirect_graph_ends_within_the_limit_and_loops_are_exact(
        journey: tuple[str, str, int], data: st.DataObject) -> None:
    first, method, limit = journey
    navs, outcome = walk(Graph(data), start(first, method, max_redirects=limit))
    requests = [(n.hop.method, n.hop.url.url()) for n in navs]
    # Every request made is a new one: a repeated request is never made ...
    assert len(set(requests)) == len(requests)
    assert [n.hop.index for n in navs] == list(range(len(navs)))
    if isinstance(outcome, Stop):
        message = outcome.error.message
        if outcome.error.code == "redirect.loop":
            # ... and a loop is said only when the next request was made before.
            target = message.removeprefix("redirect loop: ").split(" was already visited")[0]
            assert target in [u for _, u in requests]
        elif outcome.error.code == "redirect.too_many":
            assert len(navs) == limit + 1
            assert message.startswith(f"more than {limit} redirects ({first}")
        else:
            assert outcome.error.code == "redirect.bad_location"
    else:
        assert isinstance(outcome, Arrive)
        assert outcome.redirects == len(navs) - 1
        assert outcome.final_url == requests[-1][1]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NODES), st.sampled_from(METHODS), st.data())
def test_a_loop_is_always_caught_before_a_high_limit(first: str, method: str,
                                                     data: st.DataObject) -> None:
    # There are at most len(NODES) × len(METHODS) distinct requests: with a higher limit the
    # walk ends by arriving, by a bad Location, or by naming the loop, never by the limit.
    _, outcome = walk(Graph(data), start(first, method, max_redirects=1000))
    assert not (isinstance(outcome, Stop) and outcome.error.code == "redirect.too_many")


def _hsts_model(known: dict[str, bool], nav: Navigation, response: Response) -> None:
    """RFC 6797 §8.1 written out once more, for the property below to compare against."""
    u = nav.hop.url
    parsed = STS.get(response.sts)
    if response.secure and u.host_kind == "domain" and parsed is not None:
        if parsed[0] == 0:
            known.pop(u.host, None)
        else:
            known[u.host] = parsed[1]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(HSTS_NODES), st.data())
def test_no_request_goes_over_http_to_a_host_known_for_hsts(first: str,
                                                            data: st.DataObject) -> None:
    graph = Graph(data, hsts_responses)
    navs, _ = walk(graph, start(first))
    known: dict[str, bool] = {}
    for before, after in itertools.pairwise(navs):
        _hsts_model(known, before, graph.respond(before))
        host = after.hop.url.host
        covered = host in known or any(sub and host.endswith("." + h)
                                       for h, sub in known.items())
        if covered:
            assert after.hop.url.scheme == "https"
        if after.hop.url.upgraded_from_http:  # .example is on no preload list
            assert covered
        assert after.hsts.hosts == known


@settings(max_examples=300, deadline=None)
@given(journeys, st.data())
def test_methods_follow_the_status_table(journey: tuple[str, str, int],
                                         data: st.DataObject) -> None:
    first, method, limit = journey
    graph = Graph(data)
    navs, _ = walk(graph, start(first, method, max_redirects=limit))
    for before, after in itertools.pairwise(navs):
        status, old, new = graph.respond(before).status, before.hop.method, after.hop.method
        if status == 303:
            assert new == ("HEAD" if old == "HEAD" else "GET")
        elif status in (307, 308):
            assert new == old
        else:
            assert new == ("GET" if old == "POST" else old)


@settings(max_examples=300, deadline=None)
@given(journeys, st.data())
def test_credentials_never_reach_another_origin(journey: tuple[str, str, int],
                                                data: st.DataObject) -> None:
    first, method, limit = journey
    auth = ("Authorization", "Bearer secret")
    navs, _ = walk(Graph(data), start(first, method, [auth], max_redirects=limit))
    for i, nav in enumerate(navs):
        if auth in nav.hop.headers:
            assert {n.hop.url.origin for n in navs[: i + 1]} == {navs[0].hop.url.origin}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(list(k for k in STS if k)),
       st.sampled_from(["https://a.example/", "http://a.example/", "https://[::1]/",
                        "https://10.0.0.1/"]), st.booleans())
def test_any_sts_value_is_read_or_ignored(value: str, where: str, secure: bool) -> None:
    memory = HstsMemory().learn(url(where), value, secure=secure)  # never raises
    if memory.hosts:
        assert where == "https://a.example/"
        assert secure
        max_age, sub = parse_sts(value) or (0, False)
        assert max_age > 0
        assert memory.hosts == {"a.example": sub}


origins = st.sampled_from([A, B, ("http", "a.example", 80), ("https", "a.example", 8443)])
connections = st.builds(PooledConnection, origins, st.sampled_from(["HTTP/1.1", "HTTP/2"]),
                        st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(origins, st.lists(connections, max_size=5, unique_by=lambda c: c.origin),
       st.booleans())
def test_reuse_only_an_open_reusable_connection_to_the_same_origin(
        origin: tuple[str, str, int], pool: list[PooledConnection], fresh: bool) -> None:
    choice = choose_connection(origin, pool, fresh=fresh)
    same = [c for c in pool if c.origin == origin]
    usable = [c for c in same if c.reusable and not c.closed]
    if isinstance(choice, Reuse):
        assert not fresh
        assert choice.connection in usable
    else:
        assert fresh or not usable
        assert choice.retire == (same[0] if same else None)  # a spent one is closed first


def test_a_password_in_the_url_is_masked_in_what_the_report_shows() -> None:
    nav = follow(start("https://u:s3cret@a.example/a").after(redirect(302, "/b")))
    message = stopped(nav.after(redirect(302, "/a")), "redirect.loop")
    assert "s3cret" not in message
    assert "https://u:***@a.example/a was already visited" in message
    done = start("https://u:s3cret@a.example/").after(Response(200, (), secure=True))
    assert isinstance(done, Arrive)
    assert done.final_url == "https://u:***@a.example/"
