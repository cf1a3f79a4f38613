"""A small HTTPS site for the browser-phase tests: hypercorn (HTTP/2 over TLS, a test PKI) on
127.0.0.1, in a thread of its own, serving handmade pages whose parts each wait a stated
delay, and recording on the journey's clock (``time.perf_counter_ns``) when each request
arrived and when its response was sent.

    with page_site(tmp_path, PAGES) as site:
        site.url("/")          # https://www.page.test:PORT/
        site.cafile            # the root CA that issued its certificate
        site.log["/hero.png"]  # [(received_ns, responding_ns)], raw monotonic ns: when the
                               # request arrived, and just before its response was sent
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certgen import make_pki, write_cafile, write_server_files

HOST = "www.page.test"


@dataclass(frozen=True)
class Part:
    body: bytes
    content_type: str
    delay_ms: float = 0.0


@dataclass
class Site:
    port: int
    cafile: str
    address: str = "127.0.0.1"
    log: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return f"https://{HOST}:{self.port}{path}"


def png(width: int, height: int, rgb: tuple[int, int, int] | None = None) -> bytes:
    """A PNG (RFC 2083) made on the spot: noise unless ``rgb`` is given. Noise, because
    Chromium leaves low-entropy images (a solid colour) out of LCP."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rng = random.Random(10)
    rows = b"".join(b"\x00" + (bytes(rgb) * width if rgb else rng.randbytes(3 * width))
                    for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _app(parts: dict[str, Part], site: Site) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        received = time.perf_counter_ns()
        part = parts.get(scope["path"])
        if part is None:
            part = Part(b"not here", "text/plain")
            status = 404
        else:
            status = 200
        if part.delay_ms:
            await asyncio.sleep(part.delay_ms / 1000)
        # Taken before the response leaves: the client cannot have it earlier than this.
        responding = time.perf_counter_ns()
        site.log.setdefault(scope["path"], []).append((received, responding))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", part.content_type.encode()),
                                (b"content-length", str(len(part.body)).encode()),
                                (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": part.body})

    return app


@contextlib.contextmanager
def page_site(directory: Path, parts: dict[str, Part], *, hosts: list[str] | None = None,
              root_cn: str = "Page Test Root CA") -> Iterator[Site]:
    """Serve ``parts`` (path → Part) over HTTPS (h2 or http/1.1 by ALPN) on 127.0.0.1."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    pki = make_pki(hosts or [HOST], root_cn=root_cn)
    certfile, keyfile = write_server_files(directory, [pki.leaf, pki.intermediate])
    cafile = write_cafile(directory, [pki.root])
    listener = socket.create_server(("127.0.0.1", 0))
    site = Site(listener.getsockname()[1], cafile)
    config = Config()
    config.bind = [f"fd://{listener.fileno()}"]
    config.certfile, config.keyfile = certfile, keyfile
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = config.errorlog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def run() -> None:
        ready.set()
        await serve(_app(parts, site), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    ready.wait(5)
    _wait_listening(site.port)
    try:
        yield site
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
        with contextlib.suppress(OSError):  # hypercorn closed the fd it was given
            listener.close()


def _wait_listening(port: int) -> None:
    for _ in range(100):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
