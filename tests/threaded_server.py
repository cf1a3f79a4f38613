"""A real asyncio server on 127.0.0.1:0 in a thread of its own, for the HTTP tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from whathappens.net.http_types import Request
from whathappens.net.stream import PlainStream

Serve = Callable[[socket.socket, asyncio.Event], Awaitable[None]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.contextmanager
def serving(run: Serve) -> Iterator[int]:
    """A server on 127.0.0.1:0 in its own thread; yields the port, stops it afterwards."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(run(listener, stop),))
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
        listener.close()


def raw_server(handler: Handler, connections: list[int] | None = None) -> Serve:
    """An asyncio server that runs ``handler`` per connection and counts connections."""

    async def run(listener: socket.socket, stop: asyncio.Event) -> None:
        tasks: set[asyncio.Task[Any]] = set()

        async def on_connection(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            if connections is not None:
                connections.append(1)
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await handler(reader, w)
            w.close()

        server = await asyncio.start_server(on_connection, sock=listener)
        await stop.wait()
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return run


def request(port: int, target: str = "/", **kw: Any) -> Request:
    return Request(
        method=kw.pop("method", "GET"),
        authority=f"127.0.0.1:{port}",
        target=target,
        scheme="http",
        **kw,
    )


def connect(port: int) -> PlainStream:
    return PlainStream(socket.create_connection(("127.0.0.1", port), timeout=5))
