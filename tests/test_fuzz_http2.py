"""Fuzzing HTTP/2 (prior knowledge, --http2): a server on loopback answers the connection
preface with frame sequences built with hyperframe and hpack, then mutated frame by frame
(length, type, flags, stream id, payload) and byte by byte (tests/fuzz_strategies.py).
Whatever it sends: no traceback, no exit 10, no deadline miss, a failure names its step.
"""

from __future__ import annotations

from collections.abc import Iterator

import hpack
import pytest
from hyperframe import frame as hf
from hypothesis import example, given

import fuzz_strategies as fz


@pytest.fixture(scope="module")
def target() -> Iterator[fz.Target]:
    with fz.Http2Target() as t:
        yield t
        fz.check_variety(t)


def frames(*fs: hf.Frame) -> bytes:
    return b"".join(f.serialize() for f in fs)


def head(*fields: tuple[str, str], end_stream: bool = False) -> hf.HeadersFrame:
    flags = ["END_HEADERS", *(["END_STREAM"] if end_stream else [])]
    return hf.HeadersFrame(1, data=hpack.Encoder().encode(list(fields), huffman=False),
                           flags=flags)


# Found by fuzzing (shrunk): the body passes --max-body in a DATA frame that also ends the
# stream; http2.py then reset a stream h2 had already closed: StreamClosedError, exit 10
# (fixed in 877058a).
BODY_LIMIT_IN_LAST_FRAME = fz.H2Case(
    payload=frames(hf.SettingsFrame(0), head((":status", "200")),
                   hf.DataFrame(1, data=b"z" * 101, flags=["END_STREAM"])),
    args=("--http2", "--max-body", "100"))


@fz.ci_settings(250)
@given(case=fz.h2_cases())
@example(case=BODY_LIMIT_IN_LAST_FRAME)
def test_any_http2_frame_sequence_keeps_the_promises(target: fz.Target,
                                                     case: fz.H2Case) -> None:
    fz.check(target, case)


def test_body_limit_passed_in_the_frame_that_ends_the_stream(target: fz.Target) -> None:
    fz.check(target, BODY_LIMIT_IN_LAST_FRAME, tolerate_known=False)
