"""Helpers for the end-to-end journey tests: options as the CLI builds them, running a
journey in-process, finding spans, and the checks every journey must pass (schema, nesting,
complete spans before the failing step)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from whathappens.commands.arguments import add_trace_arguments, options_from
from whathappens.contract.codec import to_json
from whathappens.contract.document import read_journey
from whathappens.demo.internet import DemoInternet
from whathappens.journey import Journey, Span
from whathappens.trace import Options, run_journey

SCHEMA = Path(__file__).resolve().parents[1] / "src/whathappens/schema/journey.schema.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="whathappens")
    p.add_argument("url")
    add_trace_arguments(p)
    return p


def options(*args: str) -> Options:
    """Options exactly as ``whathappens URL ARGS`` builds them."""
    return options_from(parser().parse_args(["http://unused.test/", *args]))


def demo_args(net: DemoInternet) -> list[str]:
    """What ``whathappens demo`` sets: the demo's resolver (used), its root hints (the walk
    shown beside it), its DNS port, its CA, and no system view (the demo stays offline)."""
    assert net.resolver is not None, "the demo internet has no recursive resolver"
    return ["--resolver", f"{net.resolver}:{net.resolver_port}",
            "--root-hints", str(net.root_hints), "--dns-port", str(net.dns_port),
            "--cacert", str(net.ca), "--dns-views", "resolver,walk"]


def demo_url(net: DemoInternet, host: str = "www.example.com", path: str = "/",
             scheme: str = "https") -> str:
    """The URL in its normal form: the port only when it is not the scheme's default (the
    demo listens on 443/80 as root, on high ports otherwise)."""
    port = net.https_port if scheme == "https" else net.http_port
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}{'' if port == default else f':{port}'}{path}"


def run(url: str, opts: Options | None = None) -> Journey:
    """Trace ``url`` in-process; every journey also passes the universal checks."""
    journey = asyncio.run(run_journey(url, opts or Options()))
    check_universal(journey)
    return journey


def trace(net: DemoInternet, url: str, *args: str) -> Journey:
    return run(url, options(*demo_args(net), *args))


# --- checks every journey must pass -----------------------------------------------------------

@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator().iter_errors(doc)]


def nesting_errors(journey: Journey) -> list[str]:
    """Every span ends, not before it starts; every child lies within its parent."""
    problems: list[str] = []

    def visit(span: Span[Any], parent: Span[Any] | None) -> None:
        if span.end_ns is None:
            problems.append(f"{span.name}#{span.span_id} never ended")
        elif span.end_ns < span.start_ns:
            problems.append(f"{span.name}#{span.span_id} ends {span.start_ns - span.end_ns} ns "
                            "before it starts")
        if parent is not None and parent.end_ns is not None:
            if span.start_ns < parent.start_ns:
                problems.append(f"{span.name}#{span.span_id} starts "
                                f"{parent.start_ns - span.start_ns} ns before its parent "
                                f"{parent.name}#{parent.span_id}")
            if span.end_ns is not None and span.end_ns > parent.end_ns:
                problems.append(f"{span.name}#{span.span_id} ends "
                                f"{span.end_ns - parent.end_ns} ns after its parent "
                                f"{parent.name}#{parent.span_id}")
        for child in span.children:
            visit(child, span)

    for top in journey.spans:
        visit(top, None)
    return problems


def check_universal(journey: Journey) -> None:
    doc = journey.to_dict()
    assert schema_errors(doc) == [], schema_errors(doc)
    json.dumps(doc)  # serializable as it is
    typed = read_journey(json.loads(json.dumps(doc)))  # the renderers' typed view of it
    assert to_json(typed.facts) == doc["facts"]
    assert [s.name for s in typed.all_spans()] == [s.name for s in journey.all_spans()]
    assert nesting_errors(journey) == [], nesting_errors(journey)
    assert doc["exit_code"] == journey.exit_code
    if journey.error is not None:
        assert doc["facts"]["summary"]["failed_step"] == journey.error.step


# --- finding spans ---------------------------------------------------------------------------

def legs(journey: Journey) -> list[Span]:
    return [s for s in journey.spans if s.name == "leg"]


def child(span: Span, name: str) -> Span:
    found = [c for c in span.children if c.name == name]
    assert len(found) == 1, f"{span.name} has {len(found)} children named {name}: " \
        f"{[c.name for c in span.children]}"
    return found[0]


def children(span: Span, name: str) -> list[Span]:
    return [c for c in span.children if c.name == name]


def descendants(span: Span, name: str) -> Iterator[Span]:
    return (s for s in span.walk() if s.name == name and s is not span)


def url_span(journey: Journey) -> Span:
    found = [s for s in journey.spans if s.name == "url"]
    assert len(found) == 1
    return found[0]


def assert_complete(span: Span) -> None:
    """A step that ran to its end: timed, non-negative, no error."""
    assert span.end_ns is not None, f"{span.name} never ended"
    assert span.duration_ns is not None
    assert span.duration_ns >= 0
    assert span.error is None, f"{span.name} carries an error: {span.error}"
    d = span.to_dict()
    assert d["duration_ms"] is not None
    assert d["duration_ms"] >= 0


def assert_failed_at(journey: Journey, step: str, code: str, exit_code: int,
                     *words: str) -> None:
    """The journey failed at ``step`` with ``code``, the message says ``words`` (case
    insensitive), the exit code is ``exit_code``, and the JSON says the same."""
    err = journey.error
    assert err is not None, "the journey did not fail"
    assert (err.step, err.code, err.exit_code) == (step, code, exit_code), err.to_dict()
    assert journey.exit_code == exit_code
    message = err.message.lower()
    for word in words:
        assert word.lower() in message, f"{word!r} not in {err.message!r}"
    assert "traceback" not in message
    doc = journey.to_dict()
    assert doc["error"]["code"] == code
    assert doc["exit_code"] == exit_code


def assert_steps_before(journey: Journey, *steps: str) -> Span:
    """The url span and, in the last leg, each of ``steps`` (dns, tcp, tls, http) present and
    complete. Returns the last leg."""
    assert_complete(url_span(journey))
    leg = legs(journey)[-1]
    for step in steps:
        assert_complete(child(leg, step))
    return leg


def failed_span(leg: Span, name: str, code: str) -> Span:
    """The span ``name`` of the leg, ended and marked with the error ``code``."""
    span = child(leg, name)
    assert span.end_ns is not None
    assert span.duration_ns is not None
    assert span.duration_ns >= 0
    assert span.error is not None, f"{name} span not marked failed"
    assert span.error["code"] == code, span.error
    return span


def assert_resumed_in_0rtt(journey: Journey) -> tuple[Span, Span]:
    """--http3 --resume: the second connection offered the first's ticket, resumed, and its
    request rode in 0-RTT packets of the first flight (no certificate: RFC 8446 §2.2).
    Returns the second leg's quic and http spans."""
    assert journey.error is None, journey.error
    first, second = legs(journey)
    q1, q2 = child(first, "quic"), child(second, "quic")
    assert q1.attrs["session_offered"] is False
    assert q2.attrs["session_offered"] is True
    assert q2.attrs["session_resumed"] is True
    assert q2.attrs["early_data"] == "accepted"
    assert any(p["space"] == "0RTT" and p["direction"] == "sent" for p in q2.attrs["packets"])
    assert "certificate" not in [m["type"] for m in q2.attrs["messages"]]
    http = child(second, "http")
    assert http.attrs["status"] == 200
    assert http.start_ns < q2.end_ns   # the request left before the handshake was done
    return q2, http
