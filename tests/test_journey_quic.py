"""End to end: --http3 against a real aioquic server on 127.0.0.1 (tests/quic_server.py):
the QUIC step, its flights and packets, HTTP/3, and each way it can fail."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from certgen import make_leaf, make_pki, utcnow, write_cafile, write_server_files
from journey_helpers import assert_resumed_in_0rtt, child, demo_url, legs, options, run, trace
from quic_server import serve_h3, udp_black_hole, udp_relay
from whathappens.demo.internet import DemoInternet
from whathappens.journey import Journey

HOST = "h3.test"


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    d = tmp_path_factory.mktemp("quicpki")
    pki = make_pki([HOST, "127.0.0.1"])
    cert, key = write_server_files(d, pki.chain)
    return cert, key, write_cafile(d, [pki.root])


def h3(port: int, cafile: str, *args: str, host: str = HOST) -> Journey:
    return run(f"https://{host}:{port}/", options(
        "--http3", "--resolve", f"{host}:{port}:127.0.0.1", "--cacert", cafile,
        "--no-revalidate", *args))


@pytest.fixture
def server(pki_files: tuple[str, str, str]) -> Iterator[int]:
    cert, key, _ = pki_files
    with serve_h3(cert, key) as s:
        yield s.address[1]


def test_http3_journey(server: int, pki_files: tuple[str, str, str]) -> None:
    j = h3(server, pki_files[2])
    assert j.error is None, j.error
    leg = legs(j)[0]
    assert [c.name for c in leg.children] == ["dns", "quic", "http"]  # no TCP, no TLS span
    quic = child(leg, "quic")
    a = quic.attrs
    assert a["version"] == "QUIC v1 (0x00000001)"
    assert a["alpn"] == "h3"
    assert a["cipher"].startswith("TLS_")
    assert a["group"]
    assert a["retry"] is False
    assert a["chain_verification"]["ok"] is True
    types = [m["type"] for m in a["messages"]]
    assert types[0] == "client_hello"
    assert "server_hello" in types
    assert "finished" in types
    # (A probe flight can come between them on a loaded machine: a timeout is not a fault.)
    flights = [c.attrs["flight"] for c in quic.children if c.attrs["flight"] != "probe"]
    assert flights[0] == "client_initial"
    assert "server_handshake" in flights
    assert flights[-1] == "client_finished"
    first = a["packets"][0]
    assert first["direction"] == "sent"
    assert first["space"] == "initial"
    assert first["number"] == 0
    assert first["datagram_bytes"] >= 1200  # RFC 9000 §14.1: a client Initial is padded
    assert a["server_transport_parameters"]
    assert a["local_transport_parameters"]
    assert a["path_after_handshake"]["smoothed_rtt_ms"] is not None
    assert a["path_end"]["packets_sent"] > 0
    http = child(leg, "http")
    assert http.attrs["status"] == 200
    assert http.attrs["http_version"] == "HTTP/3"
    assert http.attrs["body_bytes_decoded"] > 0
    wire = http.attrs["h3_wire"]
    assert any(f["type"] == "HEADERS" for f in wire["frames"])
    assert wire["request_block"]["encoded"] > 0


def test_retry_costs_a_round_trip(pki_files: tuple[str, str, str]) -> None:
    cert, key, ca = pki_files
    with serve_h3(cert, key, retry=True) as s:
        j = h3(s.address[1], ca)
    assert j.error is None, j.error
    quic = child(legs(j)[0], "quic")
    assert quic.attrs["retry"] is True
    assert quic.attrs["retry_token_bytes"] > 0
    flights = [c.attrs["flight"] for c in quic.children if c.attrs["flight"] != "probe"]
    assert flights[:3] == ["client_initial", "retry", "client_initial"]
    # aioquic starts over: a second ClientHello, in the Initial that carries the token
    types = [m["type"] for m in quic.attrs["messages"]]
    assert types.count("client_hello") == 2
    assert "finished" in types
    retry = [p for p in quic.attrs["packets"] if p["space"] == "retry"]
    assert len(retry) == 1
    assert retry[0]["direction"] == "received"


def test_no_answer_on_udp(pki_files: tuple[str, str, str]) -> None:
    with udp_black_hole() as (_, port):
        j = h3(port, pki_files[2], "--connect-timeout", "0.6")
    assert j.error is not None
    assert j.error.step == "quic"
    assert j.error.code == "quic.no_answer"
    assert j.exit_code == 5  # the class of a TCP connect failure
    assert "no answer to the Initial within 600 ms" in j.error.message
    quic = child(legs(j)[0], "quic")
    # aioquic sent the Initial again on each probe timeout (RFC 9002 §6.2.4)
    assert quic.attrs["datagrams_sent"] >= 2
    assert quic.attrs["datagrams_received"] == 0
    assert [c.name for c in legs(j)[0].children] == ["dns", "quic"]  # no TCP fallback


def test_an_icmp_port_unreachable_answers_the_initial(pki_files: tuple[str, str, str]) -> None:
    """Nothing on the UDP port: the kernel reports the ICMP error on our connected socket."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    j = h3(port, pki_files[2])
    assert j.error is not None
    assert (j.error.step, j.error.code, j.exit_code) == ("quic", "quic.unreachable", 5)
    assert "ICMP error" in j.error.message


@pytest.mark.parametrize("lost", [1, 2])
def test_a_lost_initial_is_sent_again_at_the_probe_timeout(
        server: int, pki_files: tuple[str, str, str], lost: int) -> None:
    """The relay drops our first Initial(s): each probe timeout (RFC 9002 §6.2; 2 × the
    initial RTT of 100 ms before any sample, doubled at each one in a row) sends the CRYPTO
    data again in a new packet, until one gets through."""
    with udp_relay(("127.0.0.1", server), drop_first=lost) as (_, port):
        j = run(f"https://{HOST}:{port}/", options(
            "--http3", "--resolve", f"{HOST}:{port}:127.0.0.1", "--cacert", pki_files[2],
            "--no-revalidate"))
    assert j.error is None, j.error
    quic = child(legs(j)[0], "quic")
    a = quic.attrs
    probes = a["probe_timeouts"]
    answered = min(p["t_ms"] for p in a["packets"] if p["direction"] == "received")
    # The timeouts of the lost Initial(s) fire before the server has said anything. A later
    # one can fire too on a loaded machine (an ACK slower than the timeout, whose RTT estimate
    # is by then loopback's): the report carries it as well, after the server's answer.
    early = [p for p in probes if p["t_ms"] < answered]
    assert probes[:len(early)] == early
    assert all(p["t_ms"] >= answered for p in probes[len(early):])
    assert [p["backoff"] for p in early] == list(range(1, lost + 1))
    assert [p["pto_ms"] for p in early] == [200.0] * lost
    for p in early:
        assert p["waited_ms"] == pytest.approx(200.0 * 2 ** (p["backoff"] - 1), abs=15)
    assert probes[0]["resent"] == ["initial 0"]
    flights = [c.attrs["flight"] for c in quic.children]
    assert flights[:lost + 2] == ["client_initial", *["probe"] * lost, "server_handshake"]
    sent = [p for p in a["packets"] if p["direction"] == "sent" and p["space"] == "initial"]
    # QUIC never sends a packet number twice (RFC 9000 §12.3): the probe is a new packet
    assert [p["number"] for p in sent[:lost + 1]] == list(range(lost + 1))
    assert all("crypto" in p["frames"] for p in sent[:lost + 1])
    path = a["path_after_handshake"]
    assert path["pto_count"] == len(probes)
    assert path["packets_lost"] >= lost
    # The handshake waited for the timeouts: 200 ms, then 200 + 400 ms.
    assert quic.end_ns is not None
    assert (quic.end_ns - quic.start_ns) / 1e6 >= 200 * (2 ** lost - 1)
    # The report says it: the probe's flight and each timeout, in the terminal and the HTML.
    import io

    from whathappens.render.html import render_html
    from whathappens.render.terminal import render_terminal

    doc = json.loads(json.dumps(j.to_dict()))
    out = io.StringIO()
    render_terminal(doc, out, color=False, width=300)
    text = out.getvalue()
    assert "→ probe" in text
    assert "probe timeout at" in text
    assert "sent again the data of initial 0" in text
    assert "probe timeout at" in render_html(doc)
    from whathappens.web.events import summary

    [quic_doc] = [c for top in doc["spans"] for c in top.get("children", [])
                  if c["name"] == "quic"]
    assert f"{len(probes)} probe timeout(s)" in summary(quic_doc)  # the live page's line


def test_handshake_timeout_when_the_server_stops_answering(
        pki_files: tuple[str, str, str]) -> None:
    """A server that only ever sends one (stale) datagram: heard, but no handshake."""
    import socket
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)

    def answer_once() -> None:
        try:
            _, peer = sock.recvfrom(65535)
            sock.sendto(b"\x40" + b"\x00" * 40, peer)  # a short header packet: dropped
        except OSError:
            pass

    t = threading.Thread(target=answer_once, daemon=True)
    t.start()
    try:
        j = h3(sock.getsockname()[1], pki_files[2], "--connect-timeout", "0.6")
    finally:
        t.join(3)
        sock.close()
    assert j.error is not None
    assert j.error.step == "quic"
    assert j.error.code == "quic.timeout"
    assert j.exit_code == 5
    assert "did not finish in time" in j.error.message


def test_expired_certificate_over_quic(tmp_path: Path) -> None:
    pki = make_pki([HOST])
    old = make_leaf(pki.intermediate, [HOST], not_before=utcnow() - dt.timedelta(days=100),
                    not_after=utcnow() - dt.timedelta(days=10))
    cert, key = write_server_files(tmp_path, [old, pki.intermediate])
    ca = write_cafile(tmp_path, [pki.root])
    with serve_h3(cert, key) as s:
        j = h3(s.address[1], ca)
    assert j.error is not None
    assert j.error.step == "quic"
    assert j.error.code == "tls.cert_expired"
    assert j.exit_code == 6  # the class of TLS
    assert f"certificate of {HOST} was rejected" in j.error.message
    assert "expired" in j.error.message
    quic = child(legs(j)[0], "quic")
    assert quic.attrs["chain"], "the chain the server sent is described"
    assert quic.attrs["close"]["by"] == "client"
    assert quic.attrs["close"]["error_code"] >= 0x100  # a TLS alert in CONNECTION_CLOSE


def test_insecure_goes_on_with_an_untrusted_certificate(tmp_path: Path) -> None:
    pki = make_pki([HOST])
    cert, key = write_server_files(tmp_path, pki.chain)
    other = make_pki([HOST], root_cn="Someone Else")
    ca = write_cafile(tmp_path, [other.root])
    with serve_h3(cert, key) as s:
        j = h3(s.address[1], ca, "-k")
    assert j.error is None, j.error
    assert child(legs(j)[0], "http").attrs["status"] == 200


def test_connection_close_with_its_code_and_reason(pki_files: tuple[str, str, str]) -> None:
    cert, key, ca = pki_files
    with serve_h3(cert, key, behaviour="close") as s:
        j = h3(s.address[1], ca)
    assert j.error is not None
    assert j.error.step == "http"
    assert j.error.code == "http.h3_closed"
    assert j.exit_code == 7
    assert "0x102 H3_INTERNAL_ERROR" in j.error.message
    assert "test server gives up" in j.error.message
    close = child(legs(j)[0], "quic").attrs["close"]
    assert close["by"] == "server"
    assert close["error_space"] == "application"


def test_stream_reset(pki_files: tuple[str, str, str]) -> None:
    cert, key, ca = pki_files
    with serve_h3(cert, key, behaviour="reset") as s:
        j = h3(s.address[1], ca)
    assert j.error is not None
    assert j.error.step == "http"
    assert j.error.code == "http.h3_stream_reset"
    assert j.exit_code == 7
    assert "H3_REQUEST_REJECTED" in j.error.message


def test_gzip_body_decoded_and_qlog_written(pki_files: tuple[str, str, str],
                                           tmp_path: Path) -> None:
    cert, key, ca = pki_files
    qlog = tmp_path / "c.qlog"
    with serve_h3(cert, key, behaviour="gzip") as s:
        j = h3(s.address[1], ca, "--qlog", str(qlog))
    assert j.error is None, j.error
    http = child(legs(j)[0], "http").attrs
    assert http["content_encoding"] == ["gzip"]
    assert http["body_bytes_decoded"] > http["body_bytes_encoded"]
    doc = json.loads(qlog.read_text())
    events = doc["traces"][0]["events"]
    assert any(e["name"] == "transport:packet_sent" for e in events)


def test_the_demo_internet_answers_http3(demo_internet: DemoInternet) -> None:
    """www.example.com answers HTTP/3 on UDP at its https port (hypercorn through aioquic),
    advertised by Alt-Svc and by the HTTPS record."""
    net = demo_internet
    j = trace(net, demo_url(net), "--http3", "--no-revalidate")
    assert j.error is None, j.error
    leg = legs(j)[0]
    assert [c.name for c in leg.children] == ["dns", "quic", "http"]
    dns = child(leg, "dns").attrs
    assert any('alpn="h3,h2"' in r for r in dns["https_records"])
    assert child(leg, "quic").attrs["sni"] == "www.example.com"
    http = child(leg, "http").attrs
    assert http["http_version"] == "HTTP/3"
    assert http["status"] == 200
    # Over TCP the same server advertises HTTP/3, once, on the port it serves QUIC on.
    j = trace(net, demo_url(net), "--no-revalidate")
    h = child(legs(j)[0], "http").attrs
    assert h["alt_svc"] == f'h3=":{net.https_port}"; ma=3600'


def test_every_output_carries_the_quic_step(server: int, pki_files: tuple[str, str, str]) -> None:
    import io

    from whathappens.render.har import to_har
    from whathappens.render.html import render_html
    from whathappens.render.terminal import render_terminal
    from whathappens.web.events import step_event

    j = h3(server, pki_files[2])
    doc = json.loads(json.dumps(j.to_dict()))
    entry = to_har(doc)["log"]["entries"][0]
    quic = child(legs(j)[0], "quic")
    assert entry["response"]["httpVersion"] == "h3"
    assert entry["request"]["httpVersion"] == "h3"
    # HAR 1.2: connect covers ssl; in QUIC they are one handshake, so both are its time
    assert entry["timings"]["connect"] == entry["timings"]["ssl"] > 0
    assert abs(entry["timings"]["connect"] - quic.duration_ns / 1e6) < 0.01
    assert entry["serverIPAddress"] == "127.0.0.1"
    out = io.StringIO()
    render_terminal(doc, out, explain=True)
    text = out.getvalue()
    assert " QUIC " in text
    assert "client_initial" in text
    assert "server_handshake" in text
    assert "HTTP/3 200" in text
    assert "Connecting and making it private at once (QUIC)" in text
    html = render_html(doc)
    assert 'id="quic"' in html
    assert '<li><a href="#quic">QUIC</a></li>' in html  # the navigation links it
    assert "Flights" in html
    assert "client_finished" in html
    event = step_event(quic.to_dict(), 0)
    assert event["title"].startswith("QUIC")
    assert "QUIC v1" in event["summary"]
    assert "client_initial" in event["summary"]


def test_auto_uses_http3_when_the_https_record_advertises_it(
        demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net), "--http3=auto", "--no-revalidate")
    assert j.error is None, j.error
    leg = legs(j)[0]
    names = [c.name for c in leg.children]
    # aioquic is loaded once HTTP/3 is advertised, in a prepare span of the leg: no step pays
    assert names[:3] == ["dns", "prepare", "quic"]
    quic = child(leg, "quic")
    assert quic.attrs["advertised_by"].startswith("the HTTPS record advertises it")
    assert quic.attrs["race"] in ("won", "lost")  # a race: on a busy machine TCP may win
    http = child(leg, "http").attrs
    assert http["http_version"] == ("HTTP/3" if quic.attrs["race"] == "won" else "HTTP/2")
    assert any("QUIC raced TCP" in f.message for f in j.findings)


def test_the_default_is_a_browsers_choice_and_every_analysis_reads_quic(
        demo_internet: DemoInternet) -> None:
    """No flag: the demo's HTTPS record advertises h3, so QUIC races TCP and wins; the
    analyses that read the connection (budgets, timing guide, actors, summary) read QUIC's."""
    from whathappens.analysis.document import analyze

    net = demo_internet
    j = trace(net, demo_url(net), "--no-revalidate")
    assert j.error is None, j.error
    leg = legs(j)[0]
    assert [c.name for c in leg.children] == ["dns", "prepare", "quic", "http"]
    assert child(leg, "prepare").attrs["loaded"] == ["aioquic"]
    quic = child(leg, "quic")
    assert quic.attrs["race"] == "won"
    a = analyze(j.to_dict())
    [budget] = [b for b in a["budgets"] if b["step"] == "quic"]
    assert budget["guide"].startswith("≈ 1 RTT")
    assert budget["rtt_ms"] == quic.attrs["path_end"]["min_rtt_ms"]
    assert budget["outcome"] in ("within", "over")
    [row] = [r for r in a["timing_guide"]["rows"] if r["metric"] == "quic"]
    # loopback is faster than aioquic's 1 ms floor for an RTT sample: then the note says so
    assert "(QUIC's estimate)" in row["note"] or "aioquic never estimates less" in row["note"]
    server = next(x for x in a["actors"] if x["role"] == "server")
    assert server["address"].strip("[]").rsplit(":", 1)[0].strip("[]") in (
        quic.attrs["address"], f"[{quic.attrs['address']}]")
    assert "quic" in a["summary"]["time_by_step"]


def test_auto_falls_back_to_tcp_when_udp_is_silent(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, host="h3-down.example.com"), "--http3=auto",
              "--no-revalidate")
    assert j.error is None, j.error
    leg = legs(j)[0]
    assert [c.name for c in leg.children] == ["dns", "prepare", "quic", "tcp", "tls", "http"]
    quic = child(leg, "quic").attrs
    assert quic["race"] == "lost"
    assert quic["datagrams_received"] == 0
    assert quic["datagrams_sent"] >= 1
    assert child(leg, "http").attrs["status"] == 200
    note = next(f.message for f in j.findings if "QUIC unreachable" in f.message)
    assert "no answer to the Initial within" in note
    assert "fell back to TCP" in note


def test_off_never_tries(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net), "--http3=off", "--no-revalidate")
    assert "quic" not in [c.name for c in legs(j)[0].children]


def test_resume_sends_the_request_in_0rtt(server: int, pki_files: tuple[str, str, str]) -> None:
    assert_resumed_in_0rtt(h3(server, pki_files[2], "--resume"))


def test_version_negotiation_with_no_common_version(pki_files: tuple[str, str, str]) -> None:
    """A server that answers every Initial with Version Negotiation listing a version we do
    not speak (RFC 9000 §6, §17.2.1)."""
    import socket
    import threading

    from aioquic.quic.packet import encode_quic_version_negotiation

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                continue
            dlen = data[5]
            dcid = data[6:6 + dlen]
            scid = data[7 + dlen:7 + dlen + data[6 + dlen]]
            sock.sendto(encode_quic_version_negotiation(source_cid=dcid, destination_cid=scid,
                                                        supported_versions=[0x1A2A3A4A]), peer)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        j = h3(sock.getsockname()[1], pki_files[2], "--connect-timeout", "2")
    finally:
        stop.set()
        t.join(3)
        sock.close()
    assert j.error is not None
    assert j.error.step == "quic"
    assert j.error.code == "quic.version_negotiation"
    assert j.exit_code == 5
    assert "0x1a2a3a4a" in j.error.message
    assert "no common QUIC version" in j.error.message
    quic = child(legs(j)[0], "quic")
    assert any(p["space"] == "version_negotiation" for p in quic.attrs["packets"])


def test_a_malformed_http3_frame(pki_files: tuple[str, str, str]) -> None:
    cert, key, ca = pki_files
    with serve_h3(cert, key, behaviour="badframe") as s:
        j = h3(s.address[1], ca)
    assert j.error is not None
    assert j.error.step == "http"
    assert j.error.code == "http.h3_malformed"
    assert j.exit_code == 7
    assert "H3_FRAME_UNEXPECTED" in j.error.message
    close = child(legs(j)[0], "quic").attrs["close"]
    assert close["by"] == "client"


def test_the_http3_frames_in_the_report(server: int, pki_files: tuple[str, str, str]) -> None:
    import io

    from whathappens.render.terminal import render_terminal

    j = h3(server, pki_files[2])
    wire = child(legs(j)[0], "http").attrs["h3_wire"]
    assert [f["type"] for f in wire["frames"]][:1] == ["HEADERS"]
    assert wire["response_block"]["fields"] == 4  # :status and three fields
    out = io.StringIO()
    render_terminal(json.loads(json.dumps(j.to_dict())), out, color=False, width=300)
    assert "HTTP/3 frames on this exchange" in out.getvalue()
    assert "after QPACK" in out.getvalue()


def test_the_demo_retry_host(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net, host="retry.example.com"), "--http3", "--no-revalidate")
    assert j.error is None, j.error
    leg = legs(j)[0]
    quic = child(leg, "quic")
    assert quic.attrs["retry"] is True
    assert [c.attrs["flight"] for c in quic.children][:3] == [
        "client_initial", "retry", "client_initial"]
    assert child(leg, "http").attrs["status"] == 200


def test_auto_on_an_http3_only_host(demo_internet: DemoInternet) -> None:
    """retry.example.com has no TCP server: QUIC must carry the request, whatever TCP does."""
    net = demo_internet
    j = trace(net, demo_url(net, host="retry.example.com"), "--http3=auto", "--no-revalidate")
    assert j.error is None, j.error
    leg = legs(j)[0]
    assert child(leg, "quic").attrs["race"] == "won"
    assert child(leg, "http").attrs["http_version"] == "HTTP/3"


def test_compare_http_versions(demo_internet: DemoInternet) -> None:
    import io

    from whathappens.render.terminal import render_terminal

    net = demo_internet
    j = trace(net, demo_url(net), "--compare-http", "--no-revalidate")
    assert j.error is None, j.error
    hc = j.facts.http_compare
    assert hc is not None
    assert [v.version for v in hc.versions] == ["HTTP/1.1", "HTTP/2", "HTTP/3"]
    for v in hc.versions:
        assert len(v.samples) == hc.rounds == 3
        assert all(s.error is None for s in v.samples), v.samples
        assert v.median_first_byte_ms is not None
    trips = {v.version: v.round_trips for v in hc.versions}
    assert trips == {"HTTP/1.1": 3, "HTTP/2": 3, "HTTP/3": 2}  # TCP + TLS 1.3 + request
    assert all(line.startswith("modelled, not measured") for line in hc.modelled)
    # the comparison is outside the journey: its steps are the journey's own
    assert [s.name for s in j.spans].count("leg") == 1
    out = io.StringIO()
    render_terminal(json.loads(json.dumps(j.to_dict())), out, color=False, width=200)
    assert "HTTP/1.1 vs HTTP/2 vs HTTP/3, measured on this host" in out.getvalue()
    from whathappens.render.html import render_html

    html = render_html(json.loads(json.dumps(j.to_dict())))
    assert 'id="http-compare"' in html
    assert '<li><a href="#http-compare">HTTP versions</a></li>' in html
    assert "modelled, not measured" in html


@pytest.mark.parametrize(("rtt", "words"), [(1.0, "aioquic never estimates less"),
                                            (40.2, "1 RTT = 40.200 ms here (QUIC's estimate)")])
def test_the_guide_prices_quic_with_its_own_rtt_and_names_aioquics_floor(
        rtt: float, words: str) -> None:
    from whathappens.analysis.model import Verdict
    from whathappens.analysis.timing_guide import network_row

    v = Verdict(span_id=1, leg=0, step="quic", guide="≈ 1 RTT", took_ms=45.0, limit_ms=rtt,
                mark_ms=rtt, rtt_ms=rtt, rtt_multiple=round(45.0 / rtt, 2), outcome="over")
    row = network_row(v, None)
    assert words in row.note
    assert "QUIC sets up the connection and TLS 1.3 in one round trip" in row.basis
