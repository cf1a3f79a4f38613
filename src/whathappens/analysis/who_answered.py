"""Who answered: the parties on the response's path (CDN or edge, shared cache, load
balancer, reverse proxy, app server, framework), inferred from what the journey carried,
each with the evidence and how sure it is.

Confidence: **certain** when the lab's own spans prove the tier was there (its log carried
this request's traceparent); **likely** from a header only that vendor or role sends (CF-Ray,
X-Amz-Cf-Pop, Via, X-Cache…), a CNAME into a CDN's domain, or a framework's cookie;
**possible** from a Server or X-Powered-By string alone (anyone may write any Server string,
RFC 9110 §10.2.4) or a certificate issuer.

Pure: :func:`who_answered` reads the typed journey; :func:`infer` takes the pieces alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from whathappens.analysis.security_headers import Headers, parse_cookie, values
from whathappens.analysis.security_model import Confidence, Evidence, WhoAnswered
from whathappens.contract.document import JourneyDoc
from whathappens.contract.facts import (
    DnsQueryFacts,
    DnsResolverFacts,
    DnsWalkFacts,
    HttpFacts,
    LegFacts,
    ServerFacts,
    TlsFacts,
)

RANK: dict[Confidence, int] = {"possible": 0, "likely": 1, "certain": 2}

# A CNAME target under one of these is that CDN's (the suffix each vendor documents).
CDN_DOMAINS = (
    ("cloudfront.net", "Amazon CloudFront"), ("akamaiedge.net", "Akamai"),
    ("akamai.net", "Akamai"), ("edgekey.net", "Akamai"), ("edgesuite.net", "Akamai"),
    ("akamaized.net", "Akamai"), ("fastly.net", "Fastly"), ("fastlylb.net", "Fastly"),
    ("cdn.cloudflare.net", "Cloudflare"), ("azureedge.net", "Azure CDN"),
    ("azurefd.net", "Azure Front Door"), ("edgecastcdn.net", "Edgio"),
    ("b-cdn.net", "bunny.net"), ("cdn77.org", "CDN77"), ("llnwd.net", "Limelight"),
    ("googleusercontent.com", "Google Cloud"), ("vercel-dns.com", "Vercel"),
    ("netlify.app", "Netlify"), ("github.io", "GitHub Pages"),
)

# (header, vendor, role): a header only that vendor (or that kind of box) sends.
VENDOR_HEADERS = (
    ("cf-ray", "Cloudflare", "cdn"), ("cf-cache-status", "Cloudflare", "cdn"),
    ("x-amz-cf-pop", "Amazon CloudFront", "cdn"), ("x-amz-cf-id", "Amazon CloudFront", "cdn"),
    ("x-akamai-transformed", "Akamai", "cdn"), ("akamai-grn", "Akamai", "cdn"),
    ("x-fastly-request-id", "Fastly", "cdn"),
    ("x-cache", "", "shared cache"), ("x-cache-status", "", "shared cache"),
    ("x-microcache", "", "reverse proxy"), ("x-azure-ref", "Azure Front Door", "cdn"),
    ("x-vercel-cache", "Vercel", "cdn"), ("x-nf-request-id", "Netlify", "cdn"),
    ("x-envoy-upstream-service-time", "Envoy", "proxy"), ("x-varnish", "Varnish",
                                                          "shared cache"),
    ("x-github-request-id", "GitHub", "cdn"),
)

# Server header word → (who, role), read only as "possible".
SERVER_WORDS = (
    ("cloudflare", "Cloudflare", "cdn"), ("akamaighost", "Akamai", "cdn"),
    ("amazons3", "Amazon S3", "web server"), ("cloudfront", "Amazon CloudFront", "cdn"),
    ("awselb", "AWS Elastic Load Balancing", "load balancer"),
    ("haproxy", "HAProxy", "load balancer"), ("envoy", "Envoy", "proxy"),
    ("nginx", "nginx", "reverse proxy"), ("openresty", "OpenResty (nginx)", "reverse proxy"),
    ("apache", "Apache httpd", "web server"), ("caddy", "Caddy", "reverse proxy"),
    ("microsoft-iis", "Microsoft IIS", "web server"), ("litespeed", "LiteSpeed", "web server"),
    ("gunicorn", "gunicorn", "app server"), ("uvicorn", "uvicorn", "app server"),
    ("hypercorn", "Hypercorn", "app server"), ("werkzeug", "Werkzeug (Flask)", "app server"),
    ("kestrel", "Kestrel (ASP.NET Core)", "app server"), ("jetty", "Jetty", "app server"),
    ("gws", "Google Web Server", "web server"), ("varnish", "Varnish", "shared cache"),
    ("ats", "Apache Traffic Server", "shared cache"), ("github.com", "GitHub", "web server"),
)

# Cookie name → (framework or box, role). Names the framework sets by default.
COOKIE_NAMES = (
    ("csrftoken", "Django", "framework"), ("sessionid", "Django", "framework"),
    ("phpsessid", "PHP", "framework"), ("jsessionid", "a Java servlet container",
                                        "framework"),
    ("laravel_session", "Laravel", "framework"), ("xsrf-token", "Laravel or Angular",
                                                  "framework"),
    ("connect.sid", "Express (Node.js)", "framework"), ("asp.net_sessionid", "ASP.NET",
                                                        "framework"),
    ("_rails_session", "Ruby on Rails", "framework"), ("awsalb", "AWS Application Load "
                                                       "Balancer", "load balancer"),
    ("awselb", "AWS Elastic Load Balancing", "load balancer"),
    ("serverid", "HAProxy (its default persistence cookie)", "load balancer"),
    ("__cf_bm", "Cloudflare", "cdn"),
)

ISSUERS = (("cloudflare", "Cloudflare", "cdn"), ("amazon", "Amazon (CloudFront or an AWS "
                                                           "load balancer)", "cdn"),
           ("google trust services", "Google (Cloud CDN or a Google front end)", "cdn"),
           ("microsoft azure", "Azure", "cdn"))

# A lab span's kind → (role, who).
LAB_KINDS = {"edge": ("cdn", "the lab's CDN edge (nginx cache, TLS)"),
             "pop": ("cdn", "the lab's second CDN POP (Caddy: HTTP/3, HTTP/2, TLS)"),
             "lb": ("load balancer", "the lab's load balancer (HAProxy)"),
             "app": ("reverse proxy", "nginx on the app node"),
             "django": ("app server", "gunicorn (WSGI) running Django")}
# Inside the app: the tier's own span names the program (its actor, e.g. "PostgreSQL (replica)
# via PgBouncer"); other inner spans (a new connection, think time) are steps, not parties.
LAB_INNER = {"sql": "database", "redis": "cache", "queue": "queue", "celery": "worker"}

_VIA = re.compile(r"^\s*(?:[A-Za-z]+/)?([0-9.]+)\s+(\S+)(?:\s+\((.*)\))?\s*$")


@dataclass
class Seen:
    """What the journey carried that tells who answered."""

    headers: list[tuple[int, Headers]] = field(default_factory=list)  # (leg, headers)
    cnames: list[str] = field(default_factory=list)
    issuer: str | None = None
    lab: list[tuple[str, str, str, int]] = field(default_factory=list)  # kind, tier, actor, id


class Board:
    """Inferences keyed by (role, who), each keeping its strongest confidence."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], tuple[Confidence, list[Evidence]]] = {}

    def add(self, role: str, who: str, confidence: Confidence, ev: Evidence) -> None:
        key = (role, who)
        conf, evidence = self.found.get(key, (confidence, []))
        if RANK[confidence] > RANK[conf]:
            conf = confidence
        if ev not in evidence:
            evidence.append(ev)
        self.found[key] = (conf, evidence)

    def fold(self) -> None:
        """A Server string that names a party already proven ("nginx" beside the lab's
        "nginx terminating TLS") is more evidence for it, not a party of its own."""
        for (role, who), (conf, evidence) in list(self.found.items()):
            if conf != "possible" or not who:
                continue
            word = who.lower().split()[0]
            into = next((k for k, (c, _) in self.found.items() if k != (role, who)
                         and k[0] == role and RANK[c] > RANK[conf]
                         and word in k[1].lower()), None)
            if into is not None:
                for ev in evidence:
                    self.add(into[0], into[1], self.found[into][0], ev)
                del self.found[(role, who)]

    def out(self) -> list[WhoAnswered]:
        self.fold()
        order = ("cdn", "shared cache", "proxy", "load balancer", "reverse proxy",
                 "web server", "app server", "framework", "database", "cache", "queue",
                 "worker")
        items = [WhoAnswered(r, w, c, e[:8]) for (r, w), (c, e) in self.found.items()]
        return sorted(items, key=lambda a: (order.index(a.role) if a.role in order else 99))


def _short(value: str, n: int = 120) -> str:
    return value if len(value) <= n else value[:n] + "…"


def _headers(board: Board, leg: int, headers: Headers) -> None:
    for name, vendor, role in VENDOR_HEADERS:
        for v in values(headers, name)[:1]:
            board.add(role, vendor or "a shared cache on the path", "likely",
                      Evidence("header", _short(f"{name}: {v}"), leg))
    for v in values(headers, "x-served-by")[:1]:
        # Fastly names its cache nodes cache-<pop>…; anything else names a node of the site
        fastly = v.strip().lower().startswith("cache-")
        board.add("cdn" if fastly else "web server",
                  "Fastly" if fastly else f"the node that says it is {_short(v.strip(), 40)}",
                  "likely" if fastly else "possible",
                  Evidence("header", _short(f"X-Served-By: {v}"), leg))
    for v in values(headers, "via")[:4]:
        for hop in v.split(",")[:6]:
            m = _VIA.match(hop)
            who = (m.group(3) or m.group(2)) if m else hop.strip()
            vendor = "Amazon CloudFront" if "cloudfront" in hop.lower() else (
                "Varnish" if "varnish" in hop.lower() else f"an intermediary ({who[:60]})")
            board.add("cdn" if "cloudfront" in hop.lower() else "proxy", vendor, "likely",
                      Evidence("header", _short(f"Via: {hop.strip()}"), leg))
    for v in values(headers, "age")[:1]:
        if v.strip().isdigit() and int(v.strip()[:12]) > 0:
            board.add("shared cache", "a shared cache on the path", "likely", Evidence(
                "header", f"Age: {v.strip()[:12]} (a cache held it that long, RFC 9111 §5.1)",
                leg))
    for v in values(headers, "server")[:1]:
        low = v.lower()
        for word, who, role in SERVER_WORDS:
            if word in low:
                board.add(role, who, "possible", Evidence("header", _short(f"Server: {v}"),
                                                          leg))
                break
    for v in values(headers, "x-powered-by")[:1]:
        board.add("framework", _short(v, 60), "likely",
                  Evidence("header", _short(f"X-Powered-By: {v}"), leg))
    _cookies(board, leg, headers)


def _cookies(board: Board, leg: int, headers: Headers) -> None:
    for raw in values(headers, "set-cookie")[:20]:
        name = parse_cookie(raw).name.lower()
        for cookie, who, role in COOKIE_NAMES:
            if name == cookie:
                board.add(role, who, "likely" if role == "framework" or cookie.startswith(
                    "aws") else "possible",
                          Evidence("cookie", f"Set-Cookie {name}=… (its default name)", leg))


def _alt_svc(board: Board, seen: Seen) -> None:
    """Alt-Svc backs an edge already inferred: CDNs advertise HTTP/3 (RFC 7838)."""
    cdn = [w for (r, w) in board.found if r == "cdn"]
    for leg, headers in seen.headers:
        for v in values(headers, "alt-svc")[:1]:
            for who in cdn:
                board.add("cdn", who, "possible",
                          Evidence("header", _short(f"Alt-Svc: {v}"), leg))


def infer(seen: Seen) -> list[WhoAnswered]:
    """The inferences from what was seen, strongest role first."""
    board = Board()
    for kind, tier, actor, span_id in seen.lab:
        if kind not in LAB_KINDS and kind not in LAB_INNER:
            continue
        role, who = LAB_KINDS.get(kind, (LAB_INNER.get(kind, kind), actor))
        if kind == "edge" and tier != "edge":
            role, who = "reverse proxy", "nginx terminating TLS"
        board.add(role, who, "certain",
                  Evidence("lab span", f"server.{kind} from {tier}'s own log (span {span_id})"))
        if kind == "django":
            board.add("framework", "Django", "certain",
                      Evidence("lab span", f"Django's middleware logged this request "
                                           f"(span {span_id})"))
    for target in seen.cnames:
        low = target.lower().rstrip(".")
        for suffix, vendor in CDN_DOMAINS:
            if low == suffix or low.endswith("." + suffix):
                board.add("cdn", vendor, "likely",
                          Evidence("dns", f"CNAME → {_short(target, 80)} ({vendor}'s domain)"))
    for leg, headers in seen.headers:
        _headers(board, leg, headers)
    if seen.issuer:
        low = seen.issuer.lower()
        for word, who, role in ISSUERS:
            if word in low:
                board.add(role, who, "possible",
                          Evidence("certificate", _short(f"issued by {seen.issuer}")))
    _alt_svc(board, seen)
    return board.out()


def cname_target(item: str) -> str:
    """The alias's target in one CNAME-chain entry."""
    text = item.replace("→", "->")
    rest = text.split("->")[-1] if "->" in text else text.split("CNAME")[-1]
    words = rest.split()
    return words[0] if words else ""


def _cnames(journey: JourneyDoc) -> list[str]:
    out: list[str] = []
    for s in journey.all_spans():
        f = s.facts
        chain: Sequence[str] | None = None
        if isinstance(f, DnsResolverFacts | DnsQueryFacts | DnsWalkFacts):
            chain = f.cname_chain
        for item in chain or []:
            # the views write "a -> b (TTL n)"; a walk may write "a CNAME b"
            target = cname_target(str(item))
            if target and target not in out:
                out.append(target)
    return out[:20]


def seen_in(journey: JourneyDoc) -> Seen:
    seen = Seen(cnames=_cnames(journey))
    for leg in journey.spans:
        lf = leg.facts_as(LegFacts)
        http = leg.child("http")
        hf = http.facts_as(HttpFacts) if http is not None else None
        if lf is not None and hf is not None:
            seen.headers.append((lf.index, list(hf.response_headers)))
        tls = leg.child("tls")
        tf = tls.facts_as(TlsFacts) if tls is not None else None
        if tf is not None and tf.chain:
            seen.issuer = tf.chain[0].issuer_cn or tf.chain[0].issuer
    seen.lab = [(s.name.removeprefix("server."), sf.tier, s.actor, s.id)
                for s in journey.all_spans()
                if s.name.startswith("server.") and (sf := s.facts_as(ServerFacts)) is not None]
    return seen


def who_answered(journey: JourneyDoc) -> list[WhoAnswered]:
    """Who answered this journey, inferred from its evidence."""
    return infer(seen_in(journey))


def from_headers(headers: Iterable[tuple[str, str]]) -> list[WhoAnswered]:
    """The inferences from one response's headers alone."""
    return infer(Seen(headers=[(0, list(headers))]))
