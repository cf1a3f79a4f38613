"""The JSON Schema of the journey document, generated from the contract's dataclasses.

The checked-in ``whathappens/schema/journey.schema.json`` is this module's output; a test
fails when they differ, so the schema cannot drift from the code. Regenerate it with::

    .venv/bin/python -m whathappens.contract.schema > src/whathappens/schema/journey.schema.json

Each span's ``attrs`` is tied to its name (``if name is "tls" then attrs is TlsFacts``); every
facts object is closed (``additionalProperties: false``) except a lab tier's, which carries
the fields of that program's log as they were logged.
"""

from __future__ import annotations

import json
import sys

from whathappens.contract.codec import schema_of
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import SPAN_FACTS, ServerFacts

SCHEMA_ID = "https://whathappens.dev/schema/journey.schema.json"
SCHEMA_VERSION = "1.8"

# What each version added; a new optional field bumps the minor, anything that breaks a
# reader bumps the major.
CHANGELOG = (
    "1.1: server spans from the lab (step 'server').",
    "1.2: facts.tls_compare, the guard span, TCP capture attrs (handshake_segments, capture), "
    "exit code 13.",
    "1.3: facts.resources (the budget's report); error codes limit.* (a budget ran out, in "
    "the step it ran out in), http.h2_refused, http.too_many_1xx.",
    "1.4: the schema is generated from the typed facts of each span kind; every facts field "
    "is written (null when not established), so some attrs that were left out are now null; "
    "the analysis key (the summary, each step's verdict against its rule of thumb, who the "
    "journey met and in which role, the resolver's cache).",
    "1.5: analysis.browser (Core Web Vitals verdicts, the FCP and LCP chains); "
    "the browser phase: spans browser, browser.resource, browser.stage, browser.mark "
    "(step 'browser'), placed on the journey's clock; the page's times count from "
    "navigation_start_ms, as Web Vitals do.",
    "1.6: analysis.security (security headers and cookies graded with MDN HTTP "
    "Observatory's scoring, HSTS preload eligibility, CSP directives, each cookie) and "
    "analysis.who_answered (CDN, cache, load balancer, proxy, app server, framework, each "
    "with its evidence and confidence)"
    "; lab server spans: db_explain (the main query step by step with X-Explain: 1: "
    "chosen and rejected plan, buffers, B-tree depth, pg_stat_statements) and connections "
    "(each hop's connection, new or reused, its connect time); server spans of Django's "
    "middleware, view and template"
    "; caching: analysis.caching (each response's RFC 9111 policy: who may store it, for "
    "how long and by which rule, age, validators, Vary; the revalidation compared with the "
    "first response) and the revalidate span (step 'revalidate': the final request again "
    "with If-None-Match / If-Modified-Since, after the journey)"
    "; http attrs h2_wire (HTTP/2 frames sent and received, bounded, with HPACK header "
    "block sizes) and chunked (an HTTP/1.1 chunked body's chunks as they arrived), both only "
    "when there is something to say; dns attrs from_host_cache (a second lookup answered "
    "from the journey's own host cache); analysis.timing_guide (rules of thumb beside this "
    "journey's figures); analysis.resolver_cache entries carry the TTL evidence"
    "; the browser phase: browser.settle_ms and settle_ended (the measured wait after "
    "load); browser.stage font_load, image_decode, user_measure and its name; browser.mark "
    "user_mark and its name; analysis.browser.lcp_chain.decoded_ms.",
    "1.7: the resolver on the timeline (--lab): spans dns.recursion (the lab's Unbound's "
    "upstream work for the name, matched by name and time window) and dns.upstream (each "
    "query it sent, from the authoritative server's log)"
    "; HTTP/3 over QUIC (--http3): the quic span (step 'quic', in place of tcp + tls: "
    "version, ALPN, cipher, group, connection IDs, Retry, transport parameters both ways, "
    "every packet with its number space, number, size and frames, the TLS messages, QUIC's "
    "view of the path from loss recovery, a CONNECTION_CLOSE) with quic.flight children "
    "(the handshake's flights); http attr h3_wire (HTTP/3 frames and QPACK sizes); error "
    "codes quic.*; facts.http_compare (--compare-http: HTTP/1.1, HTTP/2 and HTTP/3 on fresh "
    "connections, medians, samples, round trips, a labelled model).",
    "1.8: quic probe_timeouts (each probe timeout that fired: when, the wait, the PTO, the "
    "backoff, what was sent again) and a 'probe' flight; a received quic packet's t_ms is "
    "its kernel arrival stamp, with read_ms when the loop read it later; analysis step "
    "'quic' in budgets and the timing guide (≈ 1 RTT, priced with QUIC's own min RTT).",
)

STEPS = ("url", "dns", "tcp", "tls", "http", "redirect", "journey", "server", "browser",
         "revalidate", "quic")
LAYERS = ("application", "transport", "internet", "link")


def journey_schema() -> dict[str, object]:
    defs: dict[str, object] = {}
    top = schema_of(JourneyDoc, defs)
    assert top == {"$ref": "#/$defs/JourneyDoc"}
    doc = defs.pop("JourneyDoc")
    assert isinstance(doc, dict)
    props = doc["properties"]
    props["spans"] = {"type": "array", "items": {"$ref": "#/$defs/span"}}
    props["schema_version"] = {"type": "string", "pattern": r"^1\.[0-9]+$"}
    defs["span"] = _span_schema(defs)
    defs.pop("SpanDoc", None)
    defs.pop("Facts", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "$comment": " ".join(CHANGELOG),
        "title": "whathappens journey",
        "description": "One traced journey: a tree of timed spans plus findings. Times are "
                       "milliseconds since the journey's t0 on one monotonic clock (see "
                       "clock). schema_version follows semver: a new optional field bumps "
                       "the minor, anything that breaks a reader bumps the major.",
        **{k: v for k, v in doc.items() if k != "description"},
        "$defs": dict(sorted(defs.items())),
    }


def _span_schema(defs: dict[str, object]) -> dict[str, object]:
    head = schema_of(SpanDoc, defs)
    assert head == {"$ref": "#/$defs/SpanDoc"}
    span = defs.pop("SpanDoc")
    assert isinstance(span, dict)
    props = dict(span["properties"])
    props["step"] = {"enum": list(STEPS), "description": "server: a span from a lab tier's "
                     "own log; browser: the page in headless Chromium"}
    props["layer"] = {"enum": list(LAYERS), "description": "TCP/IP model layer (RFC 1122)"}
    props["name"] = {"type": "string", "description": "what the span is: "
                     + ", ".join(SPAN_FACTS) + ", server.<kind>"}
    props["attrs"] = {"type": "object", "description": "the span's facts: their shape "
                      "depends on the name (see allOf)"}
    props["children"] = {"type": "array", "items": {"$ref": "#/$defs/span"}}
    cases: list[object] = []
    for name, cls in SPAN_FACTS.items():
        cases.append({"if": {"properties": {"name": {"const": name}}},
                      "then": {"properties": {"attrs": schema_of(cls, defs)}}})
    cases.append({"if": {"properties": {"name": {"pattern": "^server\\."}}},
                  "then": {"properties": {"attrs": schema_of(ServerFacts, defs)}}})
    required = list(dict.fromkeys([*span["required"], "attrs", "children"]))
    return {"type": "object", "required": required,
            "properties": props, "additionalProperties": False, "allOf": cases}


def render() -> str:
    return json.dumps(journey_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
