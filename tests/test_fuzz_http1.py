"""Fuzzing HTTP/1.1: a server on loopback answers with responses generated from a grammar of
valid ones and then mutated (tests/fuzz_strategies.py). Whatever it sends, the journey ends
with no traceback, never in an internal error (exit 10), within --max-time, with a failure
that names its step, and a report every renderer accepts.

CI runs a fixed (derandomized) set of examples; bench/fuzz/run.py runs the long campaign.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given

import fuzz_strategies as fz


@pytest.fixture(scope="module")
def target() -> Iterator[fz.Target]:
    with fz.Http1Target() as t:
        yield t
        fz.check_variety(t)


@fz.ci_settings(250)
@given(case=fz.h1_cases())
def test_any_http1_response_keeps_the_promises(target: fz.Target, case: fz.H1Case) -> None:
    fz.check(target, case)
