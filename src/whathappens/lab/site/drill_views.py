"""LAB ONLY: the views the app drills need, mounted only when ``WHATHAPPENS_DRILL_VIEWS=1``
(see urls.py): a gunicorn restarted by ``lab break app-timeout`` or ``app-leak`` has them,
the lab's normal gunicorn does not, and nothing outside the lab ever runs this site.

``/drill/slow?ms=N``  sleeps N ms (at most ``SLOW_MAX_MS``), then answers 200: a view slower
                      than a timeout, to see which tier cuts it. ``&cpu=1``: instead of
                      sleeping, one call into C (PBKDF2 in OpenSSL) of at least about N ms
                      (N ≤ ``CPU_MAX_MS``): the interpreter runs no Python signal handler
                      until it returns, as with a view stuck in a C extension or a
                      catastrophic regex.
``/drill/leak?mb=N``  keeps N MiB (at most ``LEAK_MAX_MB`` per request) in a module-level
                      list that is never emptied, touching every page so the memory is
                      really resident: the process grows by N MiB per request until
                      something (a memory cap, a restart) ends it.
"""

from __future__ import annotations

import hashlib
import os
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

SLOW_MAX_MS = 60_000
CPU_MAX_MS = 10_000
LEAK_MAX_MB = 64
PAGE = 4096

# What the leak keeps: never emptied while the worker lives.
_LEAKED: list[bytearray] = []


def _number(request: HttpRequest, name: str, top: int) -> int | None:
    try:
        value = int(request.GET.get(name, ""))
    except ValueError:
        return None
    return value if 0 <= value <= top else None


@require_GET
@cache_control(private=True, no_store=True)
def slow(request: HttpRequest) -> HttpResponse:
    wait = _number(request, "ms", SLOW_MAX_MS)
    if wait is None:
        return JsonResponse({"error": f"ms must be 0..{SLOW_MAX_MS}"}, status=400)
    start = time.monotonic()
    if request.GET.get("cpu") == "1":
        _cpu(min(wait, CPU_MAX_MS) / 1000)
    else:
        time.sleep(wait / 1000)
    return JsonResponse({"slept_ms": round((time.monotonic() - start) * 1000, 1),
                         "pid": os.getpid()})


def _cpu(seconds: float) -> None:
    """At least about ``seconds`` inside one C call. Its size comes from a short call timed
    first, which on a busy machine misjudges the long one by up to a factor of three (both
    are wall-clock times shared with other processes): it is sized for three times as long."""
    probe = 100_000
    t0 = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"drill", b"salt", probe)
    rate = probe / max(time.perf_counter() - t0, 1e-6)
    hashlib.pbkdf2_hmac("sha256", b"drill", b"salt", max(1, int(3 * rate * seconds)))


@require_GET
@cache_control(private=True, no_store=True)
def leak(request: HttpRequest) -> HttpResponse:
    size = _number(request, "mb", LEAK_MAX_MB)
    if size is None:
        return JsonResponse({"error": f"mb must be 0..{LEAK_MAX_MB}"}, status=400)
    block = bytearray(size << 20)
    for i in range(0, len(block), PAGE):      # touch every page: resident, not just reserved
        block[i] = 1
    _LEAKED.append(block)
    return JsonResponse({"pid": os.getpid(), "leaked_mb": sum(len(b) for b in _LEAKED) >> 20,
                         "rss_mb": _rss_mb()})


def _rss_mb() -> float | None:
    """The process's resident set (VmRSS in /proc/self/status), MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
