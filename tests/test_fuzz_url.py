"""Fuzzing URLs: the WHATWG vectors (tests/data/whatwg_host_vectors.json) and every string of
tests/test_url.py, mutated and spliced (tests/fuzz_strategies.py). Whole URLs go through the
URL and DNS steps (a resolver on loopback answers 127.0.0.1 for every name, and every address
is then refused, so no packet leaves); mutated paths, queries and fragments are fetched from a
server on loopback. Whatever the input: no traceback, no exit 10, no deadline miss, a failure
names its step.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given

import fuzz_strategies as fz


@pytest.fixture(scope="module")
def target() -> Iterator[fz.Target]:
    with fz.UrlTarget() as t:
        yield t
        fz.check_variety(t)


@fz.ci_settings(300)
@given(case=fz.url_cases())
def test_any_url_keeps_the_promises(target: fz.Target, case: fz.UrlCase) -> None:
    fz.check(target, case)
