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
            trace.add(span)


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
