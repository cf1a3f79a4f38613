"""The words ``explain/fill.py`` picks from by a value: what a status, a cache verdict, a
balancing rule or a DNS hop's outcome means. Data only, in our own words.
"""

from __future__ import annotations

# RFC 9110 §15: the status codes a journey meets most, in plain words.
STATUS: dict[int, str] = {
    200: "here it is",
    204: "done, nothing to send back",
    206: "here is the part you asked for",
    301: "it moved for good, go there from now on",
    302: "it is over there for now",
    303: "see the answer over there",
    304: "nothing changed since your copy, use it",
    307: "it is over there for now, ask the same way",
    308: "it moved for good, ask the same way",
    400: "I do not understand the question",
    401: "who are you? log in first",
    403: "you may not have this",
    404: "there is nothing here",
    405: "not with that method",
    429: "too many questions, slow down",
    500: "something broke on the server",
    502: "the server behind me answered badly",
    503: "not available right now",
    504: "the server behind me did not answer in time",
}
STATUS_CLASS: dict[int, str] = {
    1: "informational, more is coming",
    2: "success",
    3: "redirection: the answer is elsewhere",
    4: "the client's error",
    5: "the server's error",
}

PROTOCOL: dict[str, str] = {
    "HTTP/2": "one connection carries many requests as streams, headers compressed with "
              "HPACK (RFC 9113, RFC 7541); chosen in the TLS handshake by ALPN",
    "HTTP/1.1": "a request line and text headers, one request at a time on a connection "
                "(RFC 9112)",
    "HTTP/1.0": "one request per connection unless kept alive (RFC 1945)",
    "HTTP/3": "HTTP over QUIC, on UDP (RFC 9114)",
}
ALPN: dict[str, str] = {"h2": "HTTP/2", "http/1.1": "HTTP/1.1", "h3": "HTTP/3"}

TLS_VERSION: dict[str, str] = {
    "TLSv1.3": "TLS 1.3 (RFC 8446) sends a key share in the ClientHello, so one round trip "
               "brings back ServerHello, the encrypted certificate, CertificateVerify and "
               "Finished.",
    "TLSv1.2": "TLS 1.2 (RFC 5246) needs two round trips: hellos and certificate first, then "
               "the key exchange and Finished.",
}
TLS_ROUND_TRIPS: dict[str, str] = {"TLSv1.3": "one round trip", "TLSv1.2": "two round trips"}

HSTS_PRELOADED = "{host} is on Chromium's preload list, so it is only ever reached over https"
HSTS_NOT = ("{host} is not on Chromium's preload list; a Strict-Transport-Security header "
            "seen later can still pin it to https")

USED: dict[str, str] = {
    "system": "the system's answer (getaddrinfo), as a browser would",
    "resolver": "the recursive resolver's answer",
    "walk": "the iterative walk's answer",
    "none": "no lookup (an address, or --resolve)",
}
VIEW: dict[str, str] = {"dns.system": "system (getaddrinfo)",
                        "dns.resolver": "recursive resolver", "dns.walk": "iterative walk"}

# The resolver's answer, judged by its TTL against the zone's own (the walk saw it).
TTL_CACHED = ("Your resolver answered from its cache: TTL {left} s left of {full} (the "
              "authoritative server's own TTL, seen by the walk).")
TTL_FRESH = ("The TTL your resolver gave, {left} s of the zone's {full}, is within the "
             "{slack} s a fresh answer can lose to whole-second counting: fetched for this "
             "question, or cached a moment before.")
REPEAT_FASTER = ("Asked again, it answered in {again} instead of {first}, from its cache "
                 "(TTL {ttl} s left).")
REPEAT_NOT_FASTER = ("Asked again, it answered in {again} (first time {first}): not faster, "
                     "so nothing suggests a cache.")

HOP_KIND: dict[str, str] = {
    "referral": "it did not know, but pointed to the servers of {referral_zone}",
    "answer": "it answered",
    "cname": "the name is an alias (CNAME) for {cname_target}",
    "nxdomain": "no such name (NXDOMAIN)",
    "nodata": "the name exists, but has no record of that type (NODATA)",
    "error": "it failed to answer",
    "timeout": "it did not answer in time",
}
HOP_ROLE_DEFAULT = "name"

CACHE: dict[str, str] = {
    "HIT": "it had a fresh copy and answered itself, without asking the server behind it",
    "MISS": "it had no copy, so it asked the server behind it and may keep the answer",
    "EXPIRED": "its copy was too old, so it asked the server behind it again",
    "STALE": "its copy was too old, but it answered with it anyway (the server behind it "
             "failed, or the copy is being refreshed)",
    "UPDATING": "its copy was too old and is being refreshed, so it answered with it",
    "REVALIDATED": "its old copy was checked with the server behind it and is still good",
    "BYPASS": "this request skips the cache",
}
CACHE_NONE = "nothing: this answer is not cached here"

ALGORITHM: dict[str, tuple[str, str]] = {
    # (beginner, mechanism)
    "roundrobin": ("each server in turn",
                   "each server in turn, weighted, adjusted on the fly as servers come and go"),
    "static-rr": ("each server in turn, in a fixed order",
                  "each server in turn by weight, without dynamic weights"),
    "leastconn": ("the server with the fewest requests in progress",
                  "the server with the fewest connections in progress; round-robin among "
                  "equals"),
    "source": ("the same server for the same visitor's address",
               "a hash of the client's source address, so one client sticks to one server"),
    "first": ("the first server with room left",
              "the first server (by id) with a free connection slot (maxconn)"),
    "random": ("a server picked at random",
               "random, power-of-two choices by default: the less loaded of two random picks"),
}
TERMINATION: dict[str, str] = {
    "--": "ended normally",
    "CD": "the client went away while data was flowing",
    "SC": "the server refused or failed the connection",
    "sH": "the server timed out before sending its headers",
    "sQ": "it waited too long in the queue",
}
REDIS_RESULT: dict[str, str] = {"hit": "found in the cache", "miss": "not in the cache"}

MARK: dict[str, str] = {
    "first_paint": "The first pixels that were not the blank page.",
    "fcp": "First Contentful Paint: the first text or image on screen.",
    "lcp": "Largest Contentful Paint: the largest text block or image was drawn.",
    "dom_content_loaded": "DOMContentLoaded: the HTML was read and the blocking scripts ran.",
    "load": "load: the page and everything it needed had arrived.",
    "layout_shift": "Something on the page moved after it was drawn (a layout shift).",
}
