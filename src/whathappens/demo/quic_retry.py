"""retry.example.com: an HTTP/3 server that validates every client's address with a Retry
first (RFC 9000 §8.1.2), so a journey shows what address validation costs: one more round trip
before the handshake. aioquic's own server (hypercorn has no Retry); UDP only, one small page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent

PAGE = (b"<!doctype html><meta charset=utf-8><title>retry.example.com</title>\n"
        b"<p>Served over HTTP/3 after a Retry: the server asked your client to prove its "
        b"address before it spent anything on the handshake.</p>\n")


class _Page(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3: H3Connection | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for h in self.h3.handle_event(event):
            if isinstance(h, HeadersReceived) and h.stream_ended:
                self.h3.send_headers(h.stream_id, [
                    (b":status", b"200"), (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(PAGE)).encode()),
                    (b"cache-control", b"no-store"), (b"server", b"aioquic (demo, Retry)")])
                self.h3.send_data(h.stream_id, PAGE, end_stream=True)
                self.transmit()


async def serve_retry(address: str, port: int, chain: Path, key: Path) -> QuicServer:
    """Listen on UDP ``address:port``; close the returned server to stop."""
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(chain, key)
    return await serve(address, port, configuration=config, create_protocol=_Page,
                       retry=True)
