"""Fuzzing TLS: a server on loopback sends raw records in place of a ServerHello, or runs a
real handshake (a server-side ssl.SSLObject over MemoryBIO) and then mutates its first flight,
or the records of its response (flipped, truncated, duplicated, dropped, swapped, headers
changed, plaintext alerts and garbage inserted, close_notify at any point), with HTTP/1.1 or
HTTP/2 inside as ALPN chose (tests/fuzz_strategies.py). Whatever it sends: no traceback, no
exit 10, no deadline miss, a failure names its step.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given

import fuzz_strategies as fz


@pytest.fixture(scope="module")
def target() -> Iterator[fz.Target]:
    with fz.TlsTarget() as t:
        yield t
        fz.check_variety(t)


@fz.ci_settings(150)
@given(case=fz.tls_cases())
def test_any_tls_peer_keeps_the_promises(target: fz.Target, case: fz.TlsCase) -> None:
    fz.check(target, case)
