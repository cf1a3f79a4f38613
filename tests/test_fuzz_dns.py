"""Fuzzing DNS: a UDP+TCP server on loopback answers the journey's own queries with messages
built from valid answers (answers, CNAME chains and loops, referrals with and without glue,
NXDOMAIN, NODATA, error codes, TC bit) and then mutated on the wire (tests/fuzz_strategies.py).
It serves as --resolver and, through --root-hints, as every server of the iterative walk.
Whatever it sends: no traceback, no exit 10, no deadline miss, a failure names its step.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given

import fuzz_strategies as fz


@pytest.fixture(scope="module")
def target() -> Iterator[fz.Target]:
    with fz.DnsTarget() as t:
        yield t
        fz.check_variety(t)


@fz.ci_settings(150)
@given(case=fz.dns_cases())
def test_any_dns_answer_keeps_the_promises(target: fz.Target, case: fz.DnsCase) -> None:
    fz.check(target, case)
