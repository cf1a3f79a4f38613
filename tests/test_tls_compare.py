"""TLS 1.2 vs 1.3, measured (--compare-tls): two real handshakes against real local servers —
the demo internet (both versions), and servers started here that allow only one of them."""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from certgen import make_pki, serve_tls, server_context, write_cafile, write_server_files
from journey_helpers import child, demo_args, demo_url, legs, options, schema_errors, trace
from misbehaving import RawServer, free_port, wait_until_closed
from whathappens.analysis.tls_versions import count_round_trips, median_sample, model, waits
from whathappens.demo.internet import DemoInternet
from whathappens.journey import Journey
from whathappens.net.tls import TlsOptions, make_context
from whathappens.probes.tls_compare import compare_after_journey, compare_tls
from whathappens.render.html import render_html
from whathappens.render.terminal import render_terminal
from whathappens.trace import run_journey


def by_version(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["version"]: v for v in result["versions"]}


def types(v: dict[str, Any]) -> list[str]:
    return [m["type"] for m in v["messages"]]


def assert_measured(v: dict[str, Any], negotiated: str, round_trips: int) -> None:
    assert v["outcome"] == "measured", v["plain"]
    assert v["accepted"] is True
    assert v["error"] is None
    assert v["negotiated_version"] == negotiated
    assert v["round_trips"] == round_trips
    assert len(v["waits_ms"]) == round_trips
    assert all(w > 0 for w in v["waits_ms"])
    assert sum(v["waits_ms"]) < v["handshake_ms"]
    assert v["session_reused"] is False  # a full handshake: nothing was offered to resume
    assert v["cipher"]
    assert v["group"]
    assert v["tcp_connect_ms"] is not None
    assert v["tcp_connect_ms"] > 0
    assert v["kernel_rtt_ms"] is not None
    assert v["handshake_ms"] is not None
    assert v["handshake_ms"] > 0
    # the handshake lies within the connection's own time, on the shared clock
    assert v["started_ms"] < v["messages"][0]["t_ms"] <= v["ended_ms"]
    assert v["handshake_ms"] <= v["ended_ms"] - v["started_ms"]
    assert types(v)[0] == "client_hello"
    assert types(v)[-1] == "finished"
    times = [m["t_ms"] for m in v["messages"]]
    assert times == sorted(times)
    assert "ClientHello" in v["handshake_includes"]
    assert f"TLS {v['version']}" in v["plain"]
    assert "accepted" in v["plain"]


# --- the round-trip count, on its own -------------------------------------------------------

def msgs(*spec: str) -> list[dict[str, Any]]:
    """'>client_hello' sent, '<server_hello' received."""
    return [{"direction": "sent" if s[0] == ">" else "received", "type": s[1:],
             "t_ms": float(i)} for i, s in enumerate(spec)]


def test_round_trips_are_the_server_flights_the_client_waited_for() -> None:
    tls12 = msgs(">client_hello", "<server_hello", "<certificate", "<server_key_exchange",
                 "<server_hello_done", ">client_key_exchange", ">change_cipher_spec",
                 ">finished", "<new_session_ticket", "<change_cipher_spec", "<finished")
    tls13 = msgs(">client_hello", "<server_hello", "<change_cipher_spec",
                 "<encrypted_extensions", "<certificate", "<certificate_verify", "<finished",
                 ">change_cipher_spec", ">finished")
    hrr = msgs(">client_hello", "<hello_retry_request", ">client_hello", "<server_hello",
               "<encrypted_extensions", "<finished", ">finished")
    assert count_round_trips(tls12) == 2
    assert count_round_trips(tls13) == 1
    assert count_round_trips(hrr) == 2
    assert count_round_trips(msgs(">client_hello")) == 0
    assert count_round_trips([]) == 0
    assert waits(tls12) == [1.0, 1.0]  # from our LAST message of a flight, not its first
    assert waits(tls13) == [1.0]
    assert waits(hrr) == [1.0, 1.0]


def sample(outcome: str, handshake_ms: float | None, round_trips: int | None = None,
           rtt: float | None = None) -> dict[str, Any]:
    return {"outcome": outcome, "handshake_ms": handshake_ms, "round_trips": round_trips,
            "kernel_rtt_ms": rtt, "tcp_connect_ms": 0.1, "started_ms": 0.0, "ended_ms": 1.0}


def test_the_median_is_a_real_sample_and_lists_them_all() -> None:
    rounds = [sample("measured", 9.0, 2), sample("measured", 3.0, 2), sample("measured", 5.0, 2)]
    chosen = median_sample(rounds)
    assert chosen["handshake_ms"] == 5.0
    assert chosen["median_of"] == 3
    assert [s["handshake_ms"] for s in chosen["samples"]] == [9.0, 3.0, 5.0]
    # an even count: the lower middle sample, never an average of two
    assert median_sample(rounds[:2])["handshake_ms"] == 3.0
    refused = median_sample([sample("refused", None)])
    assert (refused["outcome"], refused["median_of"]) == ("refused", 0)


def test_the_model_is_round_trips_times_rtt_beside_the_measured_difference() -> None:
    m = model(sample("measured", 90.0, 2, rtt=40.0), sample("measured", 45.0, 1, rtt=42.0))
    assert m["modelled"] is True
    assert (m["round_trip_difference"], m["rtt_ms"]) == (1, 41.0)
    assert (m["expected_difference_ms"], m["measured_difference_ms"]) == (41.0, 45.0)
    assert m["beyond_round_trips_ms"] == 4.0
    no_rtt = model(sample("measured", 3.0, 2), sample("measured", 2.0, 1))
    assert (no_rtt["expected_difference_ms"], no_rtt["beyond_round_trips_ms"]) == (None, None)
    one_refused = model(sample("refused", None), sample("measured", 2.0, 1))
    assert one_refused["available"] is False


# --- the demo internet: both versions -------------------------------------------------------

def test_demo_internet_both_versions_measured(demo_internet: DemoInternet) -> None:
    net = demo_internet
    result = asyncio.run(compare_tls(net.web, net.https_port, "www.example.com",
                                     TlsOptions(cafile=str(net.ca)), timeout=10))
    assert result["measured"] is True
    assert (result["address"], result["port"]) == (net.web, net.https_port)
    v = by_version(result)
    assert list(v) == ["1.2", "1.3"]
    assert_measured(v["1.2"], "TLSv1.2", 2)
    assert_measured(v["1.3"], "TLSv1.3", 1)
    # RFC 5246 §7.3 against RFC 8446 §2: what each version's flights carry
    assert "server_hello_done" in types(v["1.2"])
    assert "client_key_exchange" in types(v["1.2"])
    assert "encrypted_extensions" in types(v["1.3"])
    assert "server_key_exchange" not in types(v["1.3"])
    assert [f["from"] for f in v["1.2"]["flights"]] == ["client", "server", "client", "server"]
    assert [f["from"] for f in v["1.3"]["flights"]] == ["client", "server", "client"]
    assert v["1.3"]["cipher"].startswith("TLS_")  # a TLS 1.3 suite (RFC 8446 §B.4)
    assert not v["1.2"]["cipher"].startswith("TLS_")
    # three rounds, one connection after the other, never at the same time, the order
    # alternating (1.2 first, then 1.3 first, then 1.2 first)
    for version in v.values():
        assert version["median_of"] == 3
        assert len(version["samples"]) == 3
        times = sorted(float(x["handshake_ms"]) for x in version["samples"])
        assert version["handshake_ms"] == times[1]  # the median sample's figures
    runs = sorted((x["started_ms"], x["ended_ms"], label) for label, version in v.items()
                  for x in version["samples"])
    for (_, end, _), (start, _, _) in itertools.pairwise(runs):
        assert end <= start
    assert [label for _, _, label in runs] == ["1.2", "1.3", "1.3", "1.2", "1.2", "1.3"]
    model = result["model"]
    assert model["modelled"] is True
    assert model["available"] is True
    assert model["round_trip_difference"] == 1
    assert model["rtt_ms"] is not None
    assert model["expected_difference_ms"] == pytest.approx(model["rtt_ms"], abs=0.002)
    assert model["measured_difference_ms"] == pytest.approx(
        v["1.2"]["handshake_ms"] - v["1.3"]["handshake_ms"], abs=0.002)
    assert "modelled, not measured" in model["note"]


def test_journey_with_compare_tls_keeps_its_own_steps(demo_internet: DemoInternet) -> None:
    net = demo_internet
    plain = trace(net, demo_url(net), "--http3=off")
    j = trace(net, demo_url(net), "--compare-tls", "--http3=off")  # validates the schema
    assert j.error is None
    tc = j.to_dict()["facts"]["tls_compare"]
    assert tc["measured"] is True
    tcp = child(legs(j)[0], "tcp")
    assert tc["address"] == tcp.attrs["address"]  # the SAME address the journey used
    assert tc["port"] == net.https_port
    assert tc["server_name"] == "www.example.com"
    v = by_version(tc)
    assert_measured(v["1.2"], "TLSv1.2", 2)
    assert_measured(v["1.3"], "TLSv1.3", 1)
    # outside the journey's spans: same steps as without it, total ends before the comparison
    assert [s.name for s in j.spans] == [s.name for s in plain.spans]
    assert [c.name for c in legs(j)[0].children] == ["dns", "tcp", "tls", "http"]
    doc = j.to_dict()
    assert doc["total_ms"] <= v["1.2"]["started_ms"]
    assert plain.facts.tls_compare is None
    from whathappens.render.har import to_har

    assert len(to_har(doc)["log"]["entries"]) == 1


def test_after_a_journey_with_its_options_and_address_policy(
        demo_internet: DemoInternet) -> None:
    net = demo_internet
    opts = options(*demo_args(net))
    j = asyncio.run(run_journey(demo_url(net), opts))
    assert j.facts.tls_compare is None

    def after(journey: Journey) -> dict[str, Any]:  # the call the page and the runner make
        return asyncio.run(compare_after_journey(journey, opts.tls, timeout=opts.connect_timeout,
                                                 address_policy=opts.address_policy))

    result = after(j)
    assert j.to_dict()["facts"]["tls_compare"]["address"] == result["address"]
    # HTTP/3 carried the journey (the demo's HTTPS record advertises h3): TLS over TCP is
    # compared at QUIC's address, on the origin's port.
    quic = child(legs(j)[0], "quic")
    assert quic.attrs["race"] == "won"
    assert result["address"] == quic.attrs["address"]
    assert result["port"] == net.https_port
    assert [v["outcome"] for v in result["versions"]] == ["measured", "measured"]
    asked: list[str] = []

    def refuse(address: str) -> str | None:
        asked.append(address)
        return f"{address} is not allowed here"

    opts.address_policy = refuse
    result = after(j)
    address = child(legs(j)[0], "quic").attrs["address"]
    assert asked == [address]  # asked before any packet went out
    assert result == {"measured": False, "reason": f"not measured: {address} is not allowed here"}


def test_plain_http_journey_says_nothing_was_compared(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, scheme="http"), "--compare-tls", "--no-follow")
    tc = j.to_dict()["facts"]["tls_compare"]
    assert tc["measured"] is False
    assert "no https connection" in tc["reason"]


# --- servers that allow one version only ----------------------------------------------------

@pytest.fixture(scope="module")
def pki_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    d = tmp_path_factory.mktemp("pki")
    pki = make_pki(["localhost", "127.0.0.1"])
    certfile, keyfile = write_server_files(d, pki.chain)
    return certfile, keyfile, write_cafile(d, [pki.root])


def only(version: str, certfile: str, keyfile: str) -> ssl.SSLContext:
    ctx = server_context(certfile, keyfile)
    if version == "1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def test_server_that_only_allows_tls_1_3(pki_files: tuple[str, str, str]) -> None:
    certfile, keyfile, cafile = pki_files
    with serve_tls(only("1.3", certfile, keyfile)) as server:
        host, port = server.address
        result = asyncio.run(compare_tls(host, port, "localhost", TlsOptions(cafile=cafile),
                                         timeout=5))
    v = by_version(result)
    refused = v["1.2"]
    assert refused["outcome"] == "refused"
    assert refused["accepted"] is False
    assert refused["handshake_ms"] is None
    assert refused["round_trips"] is None
    assert refused["tcp_connect_ms"] is not None  # TCP was fine: the refusal is TLS's
    assert refused["error"]["code"] == "tls.alert"
    assert "protocol_version" in refused["error"]["message"]
    words = refused["plain"]
    assert words.startswith("The server did not accept TLS 1.2:")
    assert "protocol_version" in words
    assert "normal result" in words
    assert types(refused)[0] == "client_hello"  # what we offered is still shown
    assert_measured(v["1.3"], "TLSv1.3", 1)
    model = result["model"]
    assert model["available"] is False
    assert "both versions" in model["why_not"]


def test_server_that_only_allows_tls_1_2(pki_files: tuple[str, str, str]) -> None:
    certfile, keyfile, cafile = pki_files
    with serve_tls(only("1.2", certfile, keyfile)) as server:
        host, port = server.address
        result = asyncio.run(compare_tls(host, port, "localhost", TlsOptions(cafile=cafile),
                                         timeout=5))
    v = by_version(result)
    assert_measured(v["1.2"], "TLSv1.2", 2)
    refused = v["1.3"]
    assert refused["outcome"] == "refused", refused["plain"]
    assert refused["accepted"] is False
    assert refused["handshake_ms"] is None
    assert refused["plain"].startswith("The server did not accept TLS 1.3:")
    assert "normal result" in refused["plain"]
    assert "traceback" not in refused["plain"].lower()


def test_nothing_listening_is_reported_not_raised() -> None:
    port = free_port()
    result = asyncio.run(compare_tls("127.0.0.1", port, "localhost", TlsOptions(), timeout=2))
    for v in result["versions"]:
        assert v["outcome"] == "tcp_failed"
        assert v["accepted"] is None
        assert v["error"]["code"] == "tcp.refused"
        assert "refused the connection" in v["plain"]
    assert result["model"]["available"] is False


def test_each_version_is_bounded_by_the_timeout_and_closes_its_socket() -> None:
    closed: list[float] = []
    lock = threading.Lock()

    def silent(conn: Any) -> None:  # accepts, never answers the ClientHello
        wait_until_closed(conn, 10)
        with lock:
            closed.append(time.monotonic())

    with RawServer(silent) as server:
        start = time.monotonic()
        result = asyncio.run(compare_tls("127.0.0.1", server.port, "localhost", TlsOptions(),
                                         timeout=0.5))
        took = time.monotonic() - start
        deadline = time.monotonic() + 3
        while len(closed) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.accepted == 2
    assert took < 3, took  # two bounded attempts, one after the other
    assert len(closed) == 2, "each socket was closed when its attempt gave up"
    for v in result["versions"]:
        assert v["outcome"] == "failed"
        assert v["accepted"] is None
        assert "0.5 s" in v["error"]["message"]
        assert v["tcp_connect_ms"] is not None


def test_tls_options_min_version_is_optional_and_applied() -> None:
    assert TlsOptions().min_version is None
    ctx = make_context(TlsOptions(min_version=ssl.TLSVersion.TLSv1_3))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert make_context(TlsOptions()).minimum_version != ssl.TLSVersion.TLSv1_3


# --- CLI, JSON schema, terminal and HTML ----------------------------------------------------

@pytest.fixture(scope="module")
def cli_doc(demo_internet: DemoInternet) -> dict[str, Any]:
    net = demo_internet
    proc = subprocess.run(
        [sys.executable, "-m", "whathappens", demo_url(net), *demo_args(net),
         "--dns-views", "resolver", "--compare-tls", "--json"],
        capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_cli_compare_tls_json_validates(cli_doc: dict[str, Any]) -> None:
    assert schema_errors(cli_doc) == []
    tc = cli_doc["facts"]["tls_compare"]
    v = by_version(tc)
    assert (v["1.2"]["round_trips"], v["1.3"]["round_trips"]) == (2, 1)
    # the schema really checks the fact: a broken one is caught
    broken = json.loads(json.dumps(cli_doc))
    broken["facts"]["tls_compare"]["versions"][0]["outcome"] = "maybe"
    del broken["facts"]["tls_compare"]["versions"][1]["plain"]
    errors = schema_errors(broken)
    assert any("maybe" in e for e in errors), errors
    assert any("plain" in e for e in errors), errors


def test_terminal_shows_the_comparison(cli_doc: dict[str, Any]) -> None:
    import io

    out = io.StringIO()
    render_terminal(cli_doc, out, color=False, width=160)
    text = out.getvalue()
    assert "TLS 1.2 vs 1.3, measured on this host" in text
    assert "round trips" in text
    assert "modelled, not measured" in text
    assert "← new_session_ticket, change_cipher_spec, finished" in text


class Section(HTMLParser):
    """The text, tags and attributes inside <section id="tls-compare">."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.text: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.nav: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if tag == "a" and d.get("href"):
            self.nav.append(str(d["href"]))
        if self.depth:
            self.depth += tag == "section"
            self.attrs += [(tag, k, v) for k, v in attrs]
        elif tag == "section" and d.get("id") == "tls-compare":
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == "section":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def section(page: str) -> Section:
    s = Section()
    s.feed(page)
    s.close()
    return s


HOSTILE = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>"


def test_html_section_with_escaped_values(cli_doc: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(cli_doc))
    tc = doc["facts"]["tls_compare"]
    tc["server_name"] = HOSTILE
    tc["versions"][0]["cipher"] = HOSTILE
    tc["versions"][1]["messages"][0]["type"] = HOSTILE
    tc["versions"][1]["plain"] = HOSTILE
    page = render_html(doc)
    s = section(page)
    assert "#tls-compare" in s.nav
    text = " ".join(s.text)
    assert "TLS 1.2 vs 1.3, measured on this host" in text
    assert text.count(HOSTILE) == 4  # shown where it was put, as text
    assert "<script>alert(1)" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert all(name not in ("style", "onerror") for _, name, _ in s.attrs), s.attrs
    real = by_version(cli_doc["facts"]["tls_compare"])
    for value in ("round trips waited for", "Modelled, not measured:", "TLSv1.2", "TLSv1.3",
                  real["1.3"]["cipher"], "server_hello_done", "encrypted_extensions",
                  "What the handshake time includes:"):
        assert value in text, value
    # beginner and advanced texts, with the page's own classes
    classes = {v for _, k, v in s.attrs if k == "class"}
    assert {"explain beginner", "explain advanced"} <= classes
    assert "ordering at a counter" in text
    assert "RFC 8446" in text


def test_html_section_when_not_measured() -> None:
    doc = json.loads((Path(__file__).parent / "data" / "journey_demo.json").read_text())
    assert "tls_compare" not in doc["facts"]
    s = section(render_html(doc))
    text = " ".join(s.text)
    assert "Not measured on this journey" in text
    assert "--compare-tls" in text
    doc["facts"]["tls_compare"] = {"measured": False, "reason": HOSTILE}
    page = render_html(doc)
    assert "Not measured: " + HOSTILE in " ".join(section(page).text)
    assert "<img" not in page
