"""The RFC 9113 frame rules, on frames built by hand (no I/O): each broken rule is named."""

from __future__ import annotations

import struct

import pytest

from whathappens.net.h2rules import FrameRules


def frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([type_, flags]) + \
        struct.pack(">I", stream_id) + payload


SETTINGS = frame(0x4, 0, 0)
HEADERS_END = frame(0x1, 0x4 | 0x1, 1, b"\x88")


def rules_after_preface(opened: int = 1) -> FrameRules:
    rules = FrameRules()
    rules.opened(opened)
    assert rules.check(SETTINGS) is None
    return rules


def test_a_correct_exchange_keeps_every_rule() -> None:
    rules = rules_after_preface()
    for f in (frame(0x4, 0x1, 0), frame(0x8, 0, 0, struct.pack(">I", 1000)),
              frame(0x1, 0x0, 1, b"\x88"), frame(0x9, 0x4, 1, b""),
              frame(0x0, 0x1, 1, b"hello"), frame(0x6, 0, 0, b"12345678"),
              frame(0x2, 0, 7, b"\x00\x00\x00\x00\x10"),  # PRIORITY may name any stream
              frame(0xFA, 0, 9, b"x")):                     # unknown types are ignored
        assert rules.check(f) is None


@pytest.mark.parametrize(("frames", "words"), [
    ([HEADERS_END], "HEADERS frame as its first frame"),
    ([frame(0x4, 0x1, 0)], "a SETTINGS acknowledgement as its first frame"),
    ([SETTINGS, frame(0x0, 0, 0, b"x")], "DATA frame on stream 0"),
    ([SETTINGS, frame(0x4, 0, 1)], "SETTINGS frame on stream 1; SETTINGS belongs to the "
                                   "connection"),
    ([SETTINGS, frame(0x4, 0, 0, b"\x00" * 5)], "not a whole number of 6-byte settings"),
    ([SETTINGS, frame(0x4, 0x1, 0, b"\x00" * 6)], "acknowledgement carrying 6 bytes"),
    ([SETTINGS, frame(0x4, 0, 0, struct.pack(">HI", 2, 1))], "enable-push"),
    ([SETTINGS, frame(0x4, 0, 0, struct.pack(">HI", 4, 2**31))], "initial window size"),
    ([SETTINGS, frame(0x4, 0, 0, struct.pack(">HI", 5, 100))], "max frame size"),
    ([SETTINGS, frame(0x6, 0, 0, b"1234567")], "PING frame of 7 bytes, where it is always 8"),
    ([SETTINGS, frame(0x8, 0, 0, struct.pack(">I", 0))], "WINDOW_UPDATE of 0 bytes"),
    ([SETTINGS, frame(0x7, 0, 0, b"\x00" * 3)], "GOAWAY frame of 3 bytes"),
    ([SETTINGS, frame(0x3, 0, 3, b"\x00" * 4)], "stream 3, which we never opened"),
    ([SETTINGS, frame(0x1, 0x4, 2, b"\x88")], "stream 2, an even number"),
    ([SETTINGS, frame(0x9, 0x4, 1)], "CONTINUATION frame on stream 1 that continues no"),
    ([SETTINGS, frame(0x1, 0, 1, b"\x88"), frame(0x0, 0, 1, b"x")],
     "in the middle of the header block of stream 1"),
])
def test_each_broken_rule_is_named(frames: list[bytes], words: str) -> None:
    rules = FrameRules()
    rules.opened(1)
    said = [rules.check(f) for f in frames]
    assert said[:-1] == [None] * (len(frames) - 1)
    assert said[-1] is not None
    assert words in said[-1]
    assert "RFC 9113 §" in said[-1]
