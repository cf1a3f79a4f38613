"""HTTP/3 over QUIC against HTTP/2 over TCP + TLS 1.3, to the same host: the demo internet's
www.example.com (hypercorn serves both), journeys made in this process one after the other in
alternating order.

    .venv/bin/python bench/quic.py [--runs N]

Printed, each as the median of N runs with every sample after it (ms):

- connection set-up: the QUIC step (our first Initial → our Finished) against TCP connect +
  the TLS 1.3 handshake (SYN → our Finished);
- TTFB: request sent → first response byte (the http.wait phase), and from the first packet of
  the connection to the first response byte (set-up + request + wait);
- the reference for HTTP/3: aioquic's own asyncio client (aioquic.asyncio.connect and its
  H3Connection) making the same request, timed around its calls (its connect() returns when
  the handshake is complete);
- the cold-start cost of trying QUIC: importing our QUIC module (aioquic, ≈ 140 ms on an idle
  machine), in a fresh interpreter, against importing the TCP path's h2.

On loopback a round trip is a few microseconds, so these figures are the two stacks' own work
(aioquic is Python, TCP and TLS are the kernel and OpenSSL): they say what each costs on this
machine, not what the network would. The issue's physics (QUIC ≈ 1 RTT, TCP + TLS 1.3 ≈ 2 RTT)
need the lab's WAN emulation.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from whathappens.commands.arguments import add_trace_arguments, options_from
from whathappens.demo.internet import DemoInternet, DemoInternetError
from whathappens.trace import run_journey


def _options(net: DemoInternet, *extra: str) -> Any:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    add_trace_arguments(p)
    assert net.resolver is not None
    args = p.parse_args(["https://unused.test/", "--resolver",
                         f"{net.resolver}:{net.resolver_port}", "--dns-views", "resolver",
                         "--cacert", str(net.ca), "--no-revalidate", *extra])
    return options_from(args)


def _url(net: DemoInternet) -> str:
    port = "" if net.https_port == 443 else f":{net.https_port}"
    return f"https://www.example.com{port}/"


async def one_journey(net: DemoInternet, version: str) -> dict[str, float]:
    flag = "--http3" if version == "h3" else "--http2"
    j = await run_journey(_url(net), _options(net, flag))
    if j.error is not None:
        raise SystemExit(f"the {version} journey failed: {j.error.message}")
    leg = next(s for s in j.spans if s.name == "leg")
    kids = {c.name: c for c in leg.children}
    http = kids["http"]
    wait = next(c for c in http.children if c.name == "http.wait")
    first = kids["quic"] if version == "h3" else kids["tcp"]
    setup_end = first.end_ns if version == "h3" else kids["tls"].end_ns
    assert setup_end is not None
    assert wait.end_ns is not None
    assert wait.start_ns is not None
    return {"setup": (setup_end - first.start_ns) / 1e6,
            "ttfb": (wait.end_ns - wait.start_ns) / 1e6,
            "first byte from the first packet": (wait.end_ns - first.start_ns) / 1e6}


async def aioquic_reference(net: DemoInternet) -> dict[str, float]:
    """aioquic's own client: connect (handshake complete), then one GET."""
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import QuicEvent

    got: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    class Client(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)

        def quic_event_received(self, event: QuicEvent) -> None:
            for h in self.h3.handle_event(event):
                if isinstance(h, HeadersReceived | DataReceived) and not got.done():
                    got.set_result(time.perf_counter())

    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                               server_name="www.example.com")
    config.load_verify_locations(cafile=str(net.ca))
    t0 = time.perf_counter()
    async with connect("127.0.80.1", net.https_port, configuration=config,
                       create_protocol=Client) as client:
        assert isinstance(client, Client)
        t_hs = time.perf_counter()
        sid = client._quic.get_next_available_stream_id()
        client.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                     (b":authority", b"www.example.com"), (b":path", b"/")],
                               end_stream=True)
        t_sent = time.perf_counter()
        client.transmit()
        t_first = await asyncio.wait_for(got, 10)
    return {"setup": (t_hs - t0) * 1e3, "ttfb": (t_first - t_sent) * 1e3,
            "first byte from the first packet": (t_first - t0) * 1e3}


def import_cost(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; " \
           "print((time.perf_counter() - t) * 1e3)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    return float(out.stdout.strip())


def _line(name: str, xs: Sequence[float]) -> str:
    return (f"  {name:<34} {statistics.median(xs):9.2f}   "
            + " ".join(f"{x:.2f}" for x in xs))


async def measure(net: DemoInternet, runs: int) -> dict[str, dict[str, list[float]]]:
    series: dict[str, dict[str, list[float]]] = {"h3": {}, "h2": {}, "aioquic": {}}
    for i in range(runs):
        for version in (("h3", "h2") if i % 2 == 0 else ("h2", "h3")):
            for k, v in (await one_journey(net, version)).items():
                series[version].setdefault(k, []).append(v)
        for k, v in (await aioquic_reference(net)).items():
            series["aioquic"].setdefault(k, []).append(v)
    return series


def _demo(state: Path) -> DemoInternet:
    """The demo internet on its high ports, or on free ones when another demo has those."""
    try:
        return DemoInternet.start(state, high_ports=True, delays=False)
    except DemoInternetError as e:
        if not e.address_in_use:
            raise
    for _ in range(8):
        dns, https, http = random.sample(range(20000, 60000), 3)
        try:
            return DemoInternet.start(state, ports=(dns, https, http), delays=False)
        except DemoInternetError as e:
            if not e.address_in_use:
                raise
    raise SystemExit("no free ports for the demo internet")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as state, _demo(Path(state)) as net:
        series = asyncio.run(measure(net, args.runs))
    print(f"HTTP/3 (QUIC) vs HTTP/2 (TCP + TLS 1.3) to the demo's www.example.com, "
          f"{args.runs} runs each, alternating; median then every sample (ms)")
    titles = {"h3": "whathappens --http3", "h2": "whathappens --http2",
              "aioquic": "aioquic's own client (reference)"}
    for key, title in titles.items():
        print(title)
        for name, xs in series[key].items():
            print(_line(name, xs))
    print("Cold start: importing, in a fresh interpreter (ms)")
    print(_line("whathappens.net.quic (aioquic)", [import_cost("whathappens.net.quic")
                                                   for _ in range(3)]))
    print(_line("whathappens.net.http2 (h2)", [import_cost("whathappens.net.http2")
                                               for _ in range(3)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
