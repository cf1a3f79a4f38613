"""The demo's HTTP/3 keeps session tickets (demo/quic_tickets.py): the store on its own, the
replacement inside hypercorn's module (in a process of its own, as in the demo), and a real
--http3 --resume journey through the demo internet, resumed with its request in 0-RTT."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from aioquic.tls import CipherSuite, SessionTicket
from hypothesis import given
from hypothesis import strategies as st

from certgen import make_pki, write_server_files
from journey_helpers import assert_resumed_in_0rtt, child, demo_url, legs, trace
from whathappens.demo.internet import DemoInternet
from whathappens.demo.quic_tickets import TicketStore


def ticket(label: bytes) -> SessionTicket:
    now = dt.datetime.now(dt.UTC)
    return SessionTicket(age_add=0, cipher_suite=CipherSuite.AES_128_GCM_SHA256,
                         not_valid_after=now + dt.timedelta(days=1), not_valid_before=now,
                         resumption_secret=b"s" * 32, server_name="www.example.com",
                         ticket=label)


def test_a_ticket_is_handed_out_once() -> None:
    store = TicketStore()
    store.add(ticket(b"a"))
    assert store.pop(b"a") is not None
    assert store.pop(b"a") is None  # a replayed ClientHello: a full handshake (RFC 8446 §8.1)
    assert store.pop(b"unknown") is None
    assert (store.issued, store.resumed) == (1, 1)


@given(st.lists(st.binary(min_size=1, max_size=4), max_size=60), st.integers(1, 8))
def test_the_store_is_bounded_and_keeps_the_newest(labels: list[bytes], limit: int) -> None:
    store = TicketStore(limit)
    for label in labels:
        store.add(ticket(label))
    assert len(store) <= limit
    newest = list(dict.fromkeys(reversed(labels)))[:limit]
    assert len(store) == len(newest)
    for label in newest:
        assert store.pop(label) is not None


def test_hypercorn_builds_ticket_keeping_connections(tmp_path: Path) -> None:
    """In a fresh interpreter (the demo's server process is one): hypercorn's QUIC module then
    builds connections that carry the store's two callbacks; calling it again changes nothing."""
    cert, key = write_server_files(tmp_path, make_pki(["www.example.com"]).chain)
    code = """
import sys
from pathlib import Path
import hypercorn.protocol.quic as hq
from aioquic.quic.configuration import QuicConfiguration
from whathappens.demo.quic_tickets import keep_tickets
store = keep_tickets()
assert store is not None and keep_tickets() is store
config = QuicConfiguration(is_client=False)
config.load_cert_chain(sys.argv[1], sys.argv[2])
conn = hq.QuicConnection(configuration=config, original_destination_connection_id=b"12345678")
assert conn._session_ticket_handler == store.add
assert conn._session_ticket_fetcher == store.pop
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code, cert, key], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_demo_resumes_http3_with_its_request_in_0rtt(demo_internet: DemoInternet) -> None:
    net = demo_internet
    j = trace(net, demo_url(net), "--http3", "--resume", "--no-revalidate")
    _, http2 = assert_resumed_in_0rtt(j)
    http1 = child(legs(j)[0], "http")
    assert http1.attrs["http_version"] == http2.attrs["http_version"] == "HTTP/3"
    note = next(f.message for f in j.findings if f.message.startswith("0-RTT accepted"))
    assert "after the resumed connection's first Initial" in note
