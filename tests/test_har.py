"""HAR 1.2 export: valid against the spec's schema, and its timings are the journey's."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from journey_helpers import child, demo_url, legs, trace
from whathappens.demo.internet import DemoInternet
from whathappens.render.har import to_har

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())


def validate(har: dict[str, object]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(har)


def test_one_entry_per_leg_with_the_journeys_timings(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/1"), "--http3=off")
    assert j.error is None
    doc = j.to_dict()
    har = to_har(doc)
    validate(har)
    entries = har["log"]["entries"]
    assert len(entries) == 2  # the redirect leg is an entry of its own
    first_leg, second_leg = legs(j)
    first, second = entries
    # phases as the journey measured them (ms)
    t = first["timings"]
    assert t["dns"] == round(child(first_leg, "dns").duration_ns / 1e6, 3)
    tcp, tls = child(first_leg, "tcp"), child(first_leg, "tls")
    assert t["ssl"] == round(tls.duration_ns / 1e6, 3)
    assert t["connect"] >= t["ssl"]  # HAR 1.2: ssl is included in connect
    assert abs(t["connect"] - (tls.end_ns - tcp.start_ns) / 1e6) < 0.002
    http = child(first_leg, "http")
    assert t["wait"] == round(child(http, "http.wait").duration_ns / 1e6, 3)
    assert first["time"] == round(sum(v for k, v in t.items() if k != "ssl" and v > 0), 3)
    assert first["response"]["status"] == 302
    assert first["response"]["redirectURL"]
    # the second leg reused the connection: no DNS, no connect, no TLS
    assert second_leg.attrs["connection"] == "reused"
    assert (second["timings"]["dns"], second["timings"]["connect"],
            second["timings"]["ssl"]) == (-1, -1, -1)
    assert second["response"]["status"] == 200
    assert second["request"]["httpVersion"] == "HTTP/2"
    assert first["startedDateTime"] <= second["startedDateTime"]


def test_an_http3_journey_gives_the_quic_handshake_as_connect_and_ssl(
        demo_internet: DemoInternet) -> None:
    """The demo's default: the HTTPS record advertises h3, QUIC wins the race. As Chrome
    writes it, one QUIC handshake is both ``connect`` and ``ssl``; the redirect's second
    request rides the same QUIC connection."""
    net = demo_internet
    j = trace(net, demo_url(net, path="/redirect/1"))
    assert j.error is None
    har = to_har(j.to_dict())
    validate(har)
    first, second = har["log"]["entries"]
    first_leg, second_leg = legs(j)
    quic = child(first_leg, "quic")
    t = first["timings"]
    assert t["connect"] == t["ssl"] == round(quic.duration_ns / 1e6, 3)
    assert first["request"]["httpVersion"] == first["response"]["httpVersion"] == "h3"
    assert second_leg.attrs["connection"] == "reused"
    assert (second["timings"]["connect"], second["timings"]["ssl"]) == (-1, -1)
    assert second["response"]["httpVersion"] == "h3"


def test_cli_writes_the_har_file(demo_internet: DemoInternet, tmp_path: Path) -> None:
    from whathappens.cli import main

    net = demo_internet
    out = tmp_path / "journey.har"
    code = main([demo_url(net), "--json", "--har", str(out), "--cacert", str(net.ca),
                 "--resolver", f"{net.resolver}:{net.dns_port}", "--root-hints",
                 str(net.root_hints), "--dns-port", str(net.dns_port),
                 "--dns-views", "resolver"])
    assert code == 0
    har = json.loads(out.read_text())
    validate(har)
    assert har["log"]["entries"][0]["response"]["status"] == 200
