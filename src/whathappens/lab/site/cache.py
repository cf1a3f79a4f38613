"""Django's Redis cache, with a client that records every command as a span.

The wrapping is inside the client, at ``execute_command`` (every command passes there), so a
span is one round trip to Redis as redis-py made it: ``GET :1:product:3`` → hit or miss,
``SETEX …``. Values are never logged, only the command and its key.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from whathappens.lab.site.tracing import current


class TracedRedis(redis.Redis):
    alias = "default"

    def execute_command(self, *args: Any, **options: Any) -> Any:
        trace = current()
        if trace is None:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        pool = self.connection_pool
        made = getattr(pool, "_created_connections", None)   # redis-py's own pool counter
        start = time.time_ns()
        error: str | None = None
        result: Any = None
        try:
            result = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            return result
        except Exception as e:
            error = f"{type(e).__name__}: {e}".strip()[:300]
            raise
        finally:
            command = " ".join(_word(a) for a in args[:2])
            span: dict[str, Any] = {"name": "redis", "start_ns": start, "end_ns": time.time_ns(),
                                    "alias": self.alias, "command": command}
            if error is not None:
                span["error"] = error
            elif str(args[0]).upper() == "GET":
                span["result"] = "miss" if result is None else "hit"
            if made is not None:
                # a connection the pool had to open for this command, or one it kept
                span["new_connection"] = getattr(pool, "_created_connections", made) > made
                _note_connection(trace, pool, span["new_connection"])
            trace.add(span)


def _note_connection(trace: Any, pool: Any, new: bool) -> None:
    """The request's first Redis command: over a new connection or a pooled one."""
    if "redis" in trace.connections:
        return
    kwargs = getattr(pool, "connection_kwargs", {})
    trace.connections["redis"] = {
        "hop": f"app → {kwargs.get('host')}:{kwargs.get('port')} (Redis)", "alias": "redis",
        "new": new, "connect_ms": None, "age_ms": None, "requests": None,
        "pooled": "redis-py's connection pool, per worker process"}


def _word(arg: Any) -> str:
    if isinstance(arg, bytes):
        return arg.decode(errors="replace")
    return str(arg)


class TracedRedisCacheClient(RedisCacheClient):
    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._client = TracedRedis


class TracedRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = TracedRedisCacheClient
