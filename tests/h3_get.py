"""One HTTP/3 GET with aioquic's own client, timed: the reference for the lab's QUIC POP.

Used by tests/test_lab_pop.py in-process, and as a script inside the WAN link's network
namespace (``ip netns exec wh-client-N python tests/h3_get.py ADDRESS PORT NAME CA
TRACEPARENT``), where it prints one JSON object. Times are time.perf_counter() milliseconds
from the start of ``connect`` (the client's first Initial is sent then).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, QuicEvent
from aioquic.quic.logger import QuicLogger


@dataclass
class H3Result:
    status: int = 0
    alpn: str = ""
    handshake_ms: float = 0.0       # connect → HandshakeCompleted
    ttfb_ms: float = 0.0            # connect → response HEADERS
    total_ms: float = 0.0           # connect → last DATA
    body_bytes: int = 0
    # From aioquic's qlog (its time.time() in ms, each packet logged as it is processed):
    # the first Initial sent → the server's first packet, and → the last packet of the
    # server's handshake flight (its Initial and Handshake packets that came before our first
    # 1-RTT packet, which we can send only once the handshake is done). Python's own crypto
    # (the certificate check after the flight) is outside both: they count round trips.
    first_reply_ms: float = 0.0
    flight_ms: float = 0.0
    packets: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


class _Client(QuicConnectionProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.h3 = H3Connection(self._quic)
        self.t0 = time.perf_counter()
        self.result = H3Result()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _ms(self) -> float:
        return round((time.perf_counter() - self.t0) * 1000, 3)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.result.handshake_ms = self._ms()
            self.result.alpn = event.alpn_protocol or ""
        for h3 in self.h3.handle_event(event):
            self._h3_event(h3)

    def _h3_event(self, event: H3Event) -> None:
        ended = False
        if isinstance(event, HeadersReceived):
            self.result.ttfb_ms = self._ms()
            self.result.headers = {k.decode(): v.decode() for k, v in event.headers}
            self.result.status = int(self.result.headers.get(":status", "0"))
            ended = event.stream_ended
        elif isinstance(event, DataReceived):
            self.result.body_bytes += len(event.data)
            ended = event.stream_ended
        if ended and not self.done.done():
            self.result.total_ms = self._ms()
            self.done.set_result(None)


async def h3_get(address: str, port: int, name: str, cafile: str, traceparent: str,
                 path: str = "/", timeout: float = 10.0) -> H3Result:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=name)
    config.load_verify_locations(cafile)
    config.quic_logger = QuicLogger()
    async with connect(address, port, configuration=config, create_protocol=_Client,
                       wait_connected=False) as client:
        assert isinstance(client, _Client)
        # t0 was set as the endpoint was made, just before connect() sent the first Initial;
        # the request waits in aioquic until the 1-RTT keys exist (no 0-RTT here).
        stream = client._quic.get_next_available_stream_id()
        client.h3.send_headers(stream, [
            (b":method", b"GET"), (b":scheme", b"https"), (b":authority", name.encode()),
            (b":path", path.encode()), (b"traceparent", traceparent.encode())],
            end_stream=True)
        client.transmit()
        await asyncio.wait_for(client.done, timeout)
    result = client.result
    _flight(result, config.quic_logger)
    return result


def _flight(result: H3Result, logger: QuicLogger) -> None:
    events = [e for trace in logger.to_dict()["traces"] for e in trace["events"]]
    sent = [e for e in events if e["name"] == "transport:packet_sent"]
    got = [e for e in events if e["name"] == "transport:packet_received"]
    if not sent or not got:
        return
    t0 = sent[0]["time"]
    done = next((e["time"] for e in sent if e["data"]["header"]["packet_type"] == "1RTT"),
                float("inf"))
    handshake = [e for e in got if e["time"] < done
                 and e["data"]["header"]["packet_type"] in ("initial", "handshake")]
    result.first_reply_ms = round(got[0]["time"] - t0, 3)
    result.flight_ms = round((handshake or got)[-1]["time"] - t0, 3)
    result.packets = [f"{'→' if e in sent else '←'} {e['data']['header']['packet_type']} "
                      f"{e['time'] - t0:.1f}" for e in events if e in sent or e in got][:12]


if __name__ == "__main__":
    address, port, name, cafile, traceparent = sys.argv[1:6]
    result = asyncio.run(h3_get(address, int(port), name, cafile, traceparent))
    print(json.dumps(asdict(result)))
