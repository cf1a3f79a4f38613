"""The demo internet, tested over real sockets: its DNS hierarchy, its web site, its bad TLS."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import time
import zlib
from dataclasses import dataclass

import brotli
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import h2.connection
import h2.events
import h11
import pytest

from whathappens.demo.internet import DemoInternet

ROOT, TLD, EXAMPLE, DNS_HOST = "127.0.53.1", "127.0.53.2", "127.0.53.3", "127.0.53.4"
WEB = "127.0.80.1"


# --- small clients -------------------------------------------------------------------------

def udp(net: DemoInternet, server: str, name: str, rdtype: str = "A",
        **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return dns.query.udp(query, server, port=net.dns_port, timeout=3)


def tcp(net: DemoInternet, server: str, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.tcp(query, server, port=net.dns_port, timeout=3)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    alpn: str | None = None


def tls_socket(net: DemoInternet, alpn: list[str], *, address: str = WEB,
               host: str = "www.example.com") -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(net.ca))
    context.set_alpn_protocols(alpn)
    raw = socket.create_connection((address, net.https_port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def authority(net: DemoInternet, host: str = "www.example.com") -> str:
    return host if net.https_port == 443 else f"{host}:{net.https_port}"


def get_h1(sock: socket.socket, host: str, path: str,
           headers: list[tuple[str, str]] | None = None, limit: int = 10_000_000) -> Response:
    conn = h11.Connection(our_role=h11.CLIENT)
    request = h11.Request(method="GET", target=path,
                          headers=[("Host", host), *(headers or [])])
    sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
    status, head, body = 0, {}, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
            head = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
            assert len(body) <= limit
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return Response(status, head, bytes(body))


def get_h2(sock: ssl.SSLSocket, host: str, path: str,
           headers: list[tuple[str, str]] | None = None) -> Response:
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "GET"), (":scheme", "https"), (":authority", host),
                               (":path", path), *(headers or [])], end_stream=True)
    sock.sendall(conn.data_to_send())
    status, head, body = 0, {}, bytearray()
    while True:
        data = sock.recv(65536)
        assert data, "connection closed before the response ended"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                head = {k.decode(): v.decode() for k, v in event.headers}
                status = int(head.pop(":status"))
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamEnded):
                return Response(status, head, bytes(body), sock.selected_alpn_protocol())
        sock.sendall(conn.data_to_send())


def https_get(net: DemoInternet, path: str, headers: list[tuple[str, str]] | None = None,
              **kw: int) -> Response:
    with tls_socket(net, ["http/1.1"]) as sock:
        return get_h1(sock, authority(net), path, headers, **kw)


# --- DNS: the hierarchy --------------------------------------------------------------------

def test_root_hints_point_at_the_demo_root(demo_internet: DemoInternet) -> None:
    text = demo_internet.root_hints.read_text()
    records = [line.split() for line in text.splitlines() if line and not line.startswith(";")]
    assert [".", "3600000", "NS", "a.root-servers.net."] in records
    assert ["a.root-servers.net.", "3600000", "A", ROOT] in records


def test_root_refers_to_the_tld_server_with_glue(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, ROOT, "www.example.com")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.flags & dns.flags.AA
    assert not response.answer
    (ns,) = response.authority
    assert ns.name.to_text() == "com."
    assert ns.ttl == 172800
    assert [r.target.to_text() for r in ns] == ["a.gtld-servers.net."]
    assert [(r.name.to_text(), r[0].address) for r in response.additional] == [
        ("a.gtld-servers.net.", TLD)
    ]


def test_root_answers_priming_query_with_addresses(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, ROOT, ".", "NS")
    assert response.flags & dns.flags.AA
    assert response.answer[0][0].target.to_text() == "a.root-servers.net."
    assert response.additional[0][0].address == ROOT


def test_tld_refers_to_example_com_with_glue(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, TLD, "www.example.com")
    assert not response.flags & dns.flags.AA
    (ns,) = response.authority
    assert (ns.name.to_text(), ns[0].target.to_text()) == ("example.com.", "ns1.example.com.")
    assert response.additional[0][0].address == EXAMPLE


def test_authoritative_answer(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, EXAMPLE, "www.example.com")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert not response.flags & dns.flags.RA  # an authoritative server does not recurse
    (answer,) = response.answer
    assert [r.address for r in answer] == [WEB]
    assert answer.ttl == 3600


def test_aaaa_only_when_the_web_server_listens_on_ipv6(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, EXAMPLE, "www.example.com", "AAAA")
    addresses = [r.address for rrset in response.answer for r in rrset]
    assert addresses == (["::1"] if demo_internet.ipv6 else [])


def test_https_record(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, EXAMPLE, "www.example.com", "HTTPS")
    (rrset,) = response.answer
    assert rrset.rdtype == dns.rdatatype.HTTPS
    assert rrset[0].to_text() == '1 . alpn="h3,h2"'


def test_two_step_cname_chain_is_chased_in_zone(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, EXAMPLE, "alias.example.com")
    chain = [(r.name.to_text(), r.rdtype, r[0].to_text()) for r in response.answer]
    assert chain == [
        ("alias.example.com.", dns.rdatatype.CNAME, "cdn.example.com."),
        ("cdn.example.com.", dns.rdatatype.CNAME, "www.example.com."),
        ("www.example.com.", dns.rdatatype.A, WEB),
    ]


def test_nxdomain_carries_the_soa(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, EXAMPLE, "no-such-name.example.com")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    (soa,) = response.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.name.to_text() == "example.com."
    assert soa.ttl == min(soa.ttl, soa[0].minimum)


def test_nxdomain_from_a_tld(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, TLD, "no-such-domain.org")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].name.to_text() == "org."


def test_nodata_is_noerror_with_empty_answer(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, EXAMPLE, "nodata.example.com")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_big_answer_is_truncated_over_udp_and_complete_over_tcp(
    demo_internet: DemoInternet,
) -> None:
    over_udp = udp(demo_internet, EXAMPLE, "big.example.com", use_edns=0, payload=4096)
    assert over_udp.flags & dns.flags.TC
    assert over_udp.payload == 1232
    plain = udp(demo_internet, EXAMPLE, "big.example.com")  # no EDNS: 512 bytes at most
    assert plain.flags & dns.flags.TC
    over_tcp = tcp(demo_internet, EXAMPLE, "big.example.com")
    assert not over_tcp.flags & dns.flags.TC
    assert len(over_tcp.answer[0]) == 120
    assert len(over_tcp.to_wire()) > 1232


def test_glueless_delegation_has_no_glue(demo_internet: DemoInternet) -> None:
    response = udp(demo_internet, TLD, "www.glueless.com")
    (ns,) = response.authority
    assert ns[0].target.to_text() == "ns.dns-host.net."
    assert not response.additional
    # The resolver's side trip: the NS name resolves through net. ...
    side = udp(demo_internet, TLD, "ns.dns-host.net")
    assert side.additional[0][0].address == DNS_HOST
    # ... and then the real answer comes from that server.
    answer = udp(demo_internet, DNS_HOST, "www.glueless.com")
    assert answer.flags & dns.flags.AA
    assert answer.answer[0][0].address == WEB


def test_special_names(demo_internet: DemoInternet) -> None:
    assert udp(demo_internet, EXAMPLE, "servfail.example.com").rcode() == dns.rcode.SERVFAIL
    assert udp(demo_internet, EXAMPLE, "refused.example.com").rcode() == dns.rcode.REFUSED
    query = dns.message.make_query("slow.example.com", "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, EXAMPLE, port=demo_internet.dns_port, timeout=0.5)


def test_names_outside_the_servers_zones_are_refused(demo_internet: DemoInternet) -> None:
    assert udp(demo_internet, EXAMPLE, "www.example.org").rcode() == dns.rcode.REFUSED


def test_garbage_is_ignored_and_the_server_keeps_answering(demo_internet: DemoInternet) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(b"\x00\x01garbage", (EXAMPLE, demo_internet.dns_port))
        with pytest.raises(TimeoutError):
            s.recv(512)
    with socket.create_connection((EXAMPLE, demo_internet.dns_port), timeout=3) as s:
        s.sendall(b"\xff\xff")  # announces a 64 KiB query: over the cap, so the server hangs up
        assert s.recv(10) == b""
    assert udp(demo_internet, EXAMPLE, "www.example.com").answer


def test_several_queries_over_one_tcp_connection(demo_internet: DemoInternet) -> None:
    with socket.create_connection((EXAMPLE, demo_internet.dns_port), timeout=3) as s:
        for name in ("www.example.com", "cdn.example.com"):
            wire = dns.message.make_query(name, "A").to_wire()
            s.sendall(len(wire).to_bytes(2, "big") + wire)
            length = int.from_bytes(s.recv(2), "big")
            data = b""
            while len(data) < length:
                data += s.recv(length - len(data))
            assert dns.message.from_wire(data).answer


def test_delays_are_injected_and_described(demo_internet: DemoInternet) -> None:
    servers = {s["address"]: s for s in demo_internet.info["servers"]}
    assert demo_internet.info["delays_injected"] is True
    assert servers[ROOT]["delay_ms"] == 25
    assert servers[TLD]["role"] == "tld"
    assert servers[WEB]["role"] == "web"
    started = time.perf_counter()
    udp(demo_internet, ROOT, "www.example.com")
    assert (time.perf_counter() - started) * 1000 >= 25


# --- the web site --------------------------------------------------------------------------

def test_h2_by_alpn(demo_internet: DemoInternet) -> None:
    with tls_socket(demo_internet, ["h2", "http/1.1"]) as sock:
        assert sock.version() in ("TLSv1.3", "TLSv1.2")
        response = get_h2(sock, authority(demo_internet), "/")
    assert response.alpn == "h2"
    assert response.status == 200
    assert b"<title>Example Domain (whathappens demo)</title>" in response.body
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "think;dur=5.0" in response.headers["server-timing"]


def test_http11_by_alpn(demo_internet: DemoInternet) -> None:
    with tls_socket(demo_internet, ["http/1.1"]) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        response = get_h1(sock, authority(demo_internet), "/")
    assert response.status == 200
    assert int(response.headers["content-length"]) == len(response.body)
    for asset in (b"/static/style.css", b"/static/app.js", b"/static/logo.png"):
        assert asset in response.body


def test_web_server_also_on_ipv6(demo_internet: DemoInternet) -> None:
    if not demo_internet.ipv6:
        pytest.skip("no IPv6 on this host")
    with tls_socket(demo_internet, ["h2"], address="::1") as sock:
        assert get_h2(sock, authority(demo_internet), "/").status == 200


def test_plain_http_redirects_to_https(demo_internet: DemoInternet) -> None:
    with socket.create_connection((WEB, demo_internet.http_port), timeout=5) as sock:
        response = get_h1(sock, "www.example.com", "/some/page?x=1")
    assert response.status == 301
    port = "" if demo_internet.https_port == 443 else f":{demo_internet.https_port}"
    assert response.headers["location"] == f"https://www.example.com{port}/some/page?x=1"
    assert "strict-transport-security" not in response.headers  # only over https


def test_apex_redirects_to_www(demo_internet: DemoInternet) -> None:
    with tls_socket(demo_internet, ["http/1.1"], host="example.com") as sock:
        response = get_h1(sock, authority(demo_internet, "example.com"), "/about")
    assert response.status == 301
    assert response.headers["location"].startswith("https://www.example.com")
    assert response.headers["location"].endswith("/about")


def test_head_has_headers_but_no_body(demo_internet: DemoInternet) -> None:
    with tls_socket(demo_internet, ["http/1.1"]) as sock:
        conn = h11.Connection(our_role=h11.CLIENT)
        host = [("Host", authority(demo_internet))]
        request = h11.Request(method="HEAD", target="/", headers=host)
        sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
        events = []
        while not events or not isinstance(events[-1], h11.EndOfMessage):
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            else:
                events.append(event)
    response, *rest = events
    assert isinstance(response, h11.Response)
    assert response.status_code == 200
    assert int(dict(response.headers)[b"content-length"]) > 0
    assert not [e for e in rest if isinstance(e, h11.Data) and e.data]


@pytest.mark.parametrize(
    ("accept", "coding"),
    [("gzip, deflate, br", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("", None)],
)
def test_content_encoding_follows_accept_encoding(
    demo_internet: DemoInternet, accept: str, coding: str | None
) -> None:
    plain = https_get(demo_internet, "/static/style.css").body
    response = https_get(demo_internet, "/static/style.css", [("Accept-Encoding", accept)])
    assert response.headers.get("content-encoding") == coding
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(response.body)
    decode = {"br": brotli.decompress, "gzip": gzip.decompress, None: bytes}[coding]
    assert decode(response.body) == plain
    assert "immutable" in response.headers["cache-control"]


def test_images_are_not_compressed(demo_internet: DemoInternet) -> None:
    response = https_get(demo_internet, "/static/logo.png", [("Accept-Encoding", "br, gzip")])
    assert response.headers["content-type"] == "image/png"
    assert "content-encoding" not in response.headers
    assert response.body.startswith(b"\x89PNG")


def test_conditional_request_gets_304(demo_internet: DemoInternet) -> None:
    etag = https_get(demo_internet, "/").headers["etag"]
    response = https_get(demo_internet, "/", [("If-None-Match", etag)])
    assert response.status == 304
    assert response.body == b""


def test_redirect_endpoints(demo_internet: DemoInternet) -> None:
    assert https_get(demo_internet, "/redirect/3").headers["location"] == "/redirect/2"
    assert https_get(demo_internet, "/redirect/1").headers["location"] == "/"
    loop = https_get(demo_internet, "/loop")
    assert (loop.status, loop.headers["location"]) == (302, "/loop")


def test_status_big_slow_echo(demo_internet: DemoInternet) -> None:
    assert https_get(demo_internet, "/status/503").status == 503
    assert https_get(demo_internet, "/nothing-here").status == 404
    big = https_get(demo_internet, "/big?bytes=300000")
    assert (big.status, len(big.body)) == (200, 300000)
    started = time.perf_counter()
    assert https_get(demo_internet, "/slow?ms=200").status == 200
    assert time.perf_counter() - started >= 0.2
    echo = json.loads(https_get(demo_internet, "/echo", [("X-Probe", "1")]).body)
    assert ["x-probe", "1"] in echo["headers"]


def test_gzip_bomb_is_small_on_the_wire_and_huge_inflated(demo_internet: DemoInternet) -> None:
    response = https_get(demo_internet, "/gzip-bomb")
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.body) < 1_000_000
    inflater = zlib.decompressobj(wbits=31)
    total, data = 0, response.body
    while data:  # bounded inflation: never more than 1 MiB at a time in memory
        total += len(inflater.decompress(data, 1 << 20))
        data = inflater.unconsumed_tail
    assert inflater.eof
    assert total == 200 * 1024 * 1024


# --- the broken TLS servers ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("host", "address", "message"),
    [
        ("expired.example.com", "127.0.80.2", "certificate has expired"),
        ("wrong-host.example.com", "127.0.80.3",
         "Hostname mismatch, certificate is not valid for 'wrong-host.example.com'."),
        ("self-signed.example.com", "127.0.80.4", "self-signed certificate"),
        ("unknown-issuer.example.com", "127.0.80.5", "unable to get local issuer certificate"),
        ("incomplete-chain.example.com", "127.0.80.6", "unable to get local issuer certificate"),
    ],
)
def test_bad_certificates_fail_for_the_intended_reason(
    demo_internet: DemoInternet, host: str, address: str, message: str
) -> None:
    assert udp(demo_internet, EXAMPLE, host).answer[0][0].address == address
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        tls_socket(demo_internet, ["http/1.1"], address=address, host=host)
    assert failure.value.verify_message.replace("self signed", "self-signed") == message


def test_incomplete_chain_is_only_missing_the_intermediate(demo_internet: DemoInternet) -> None:
    """With the intermediate supplied, the incomplete chain verifies; the rogue one never does."""
    context = ssl.create_default_context(cafile=str(demo_internet.ca))
    context.load_verify_locations(cafile=str(demo_internet.state_dir / "pki/intermediate.pem"))
    for host, address, ok in [("incomplete-chain.example.com", "127.0.80.6", True),
                              ("unknown-issuer.example.com", "127.0.80.5", False)]:
        with socket.create_connection((address, demo_internet.https_port), timeout=5) as raw:
            if ok:
                context.wrap_socket(raw, server_hostname=host).close()
            else:
                with pytest.raises(ssl.SSLCertVerificationError):
                    context.wrap_socket(raw, server_hostname=host)
