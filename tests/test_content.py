"""Content-Encoding undone with bounds: every coding, chains, corrupt data, and bombs."""

from __future__ import annotations

import gzip
import os
import sys
import time
import tracemalloc
import types
import zlib

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from whathappens.errors import HttpError
from whathappens.net.content import content_codings, decode_content

TEXT = b"<p>what happens when you hit a URL?</p>\n" * 2000 + os.urandom(3000)
BIG = 50 * 1024 * 1024


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.compress,
}


def encode(data: bytes, codings: list[str]) -> bytes:
    for coding in codings:  # applied in the order listed (RFC 9110 §8.4)
        data = ENCODERS[coding](data)
    return data


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_coding_round_trips(coding: str) -> None:
    decoded = decode_content(encode(TEXT, [coding]), [coding], max_decoded=BIG, keep=BIG)
    assert decoded.kept == TEXT
    assert decoded.size == len(TEXT)
    assert not decoded.truncated


def test_raw_deflate_is_accepted_like_browsers_do() -> None:
    decoded = decode_content(raw_deflate(TEXT), ["deflate"], max_decoded=BIG, keep=BIG)
    assert decoded.kept == TEXT


def test_codings_are_undone_in_reverse_order() -> None:
    data = encode(TEXT, ["br", "gzip"])  # Content-Encoding: br, gzip
    assert decode_content(data, ["br", "gzip"], max_decoded=BIG, keep=BIG).kept == TEXT
    with pytest.raises(HttpError) as err:
        decode_content(data, ["gzip", "br"], max_decoded=BIG, keep=BIG)
    assert err.value.code == "http.content_decode_failed"


def test_only_the_kept_prefix_is_held_but_all_is_counted() -> None:
    decoded = decode_content(gzip.compress(TEXT), ["gzip"], max_decoded=BIG, keep=100)
    assert decoded.kept == TEXT[:100]
    assert decoded.size == len(TEXT)
    assert decoded.truncated


def test_concatenated_gzip_members_and_zstd_frames_all_decode() -> None:
    half = len(TEXT) // 2
    members = gzip.compress(TEXT[:half]) + gzip.compress(TEXT[half:])
    assert decode_content(members, ["gzip"], max_decoded=BIG, keep=BIG).kept == TEXT
    frames = zstandard.compress(TEXT[:half]) + zstandard.compress(TEXT[half:])
    assert decode_content(frames, ["zstd"], max_decoded=BIG, keep=BIG).kept == TEXT


def test_an_empty_body_decodes_to_nothing_whatever_its_label() -> None:
    assert decode_content(b"", ["gzip", "br"], max_decoded=BIG, keep=BIG).size == 0


def test_content_codings_reads_every_line_in_order() -> None:
    headers = [
        ("Content-Type", "text/html"),
        ("Content-Encoding", "GZIP, identity"),
        ("content-encoding", " br "),
    ]
    assert content_codings(headers) == ["gzip", "br"]


def test_unknown_coding_is_named() -> None:
    with pytest.raises(HttpError) as err:
        decode_content(b"data", ["compress"], max_decoded=BIG, keep=BIG)
    assert err.value.code == "http.content_encoding_unknown"
    assert "'compress'" in err.value.message


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_garbage_does_not_decode(coding: str) -> None:
    with pytest.raises(HttpError) as err:
        decode_content(b"this is not compressed at all", [coding], max_decoded=BIG, keep=BIG)
    assert err.value.code == "http.content_decode_failed"
    assert coding in err.value.message


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_truncated_data_is_reported_not_passed_off_as_the_body(coding: str) -> None:
    data = encode(TEXT, [coding])[:-6]
    with pytest.raises(HttpError) as err:
        decode_content(data, [coding], max_decoded=BIG, keep=BIG)
    assert err.value.code == "http.content_decode_failed"
    assert "truncated" in err.value.message


def test_stray_bytes_after_gzip_are_reported() -> None:
    with pytest.raises(HttpError) as err:
        decode_content(gzip.compress(TEXT) + b"junk", ["gzip"], max_decoded=BIG, keep=BIG)
    assert "4 stray bytes" in err.value.message


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_bomb_stops_at_the_limit_without_filling_memory(coding: str) -> None:
    zeros = b"\0" * (64 * 1024 * 1024)
    bomb = brotli.compress(zeros, quality=5) if coding == "br" else encode(zeros, [coding])
    assert len(bomb) < 100 * 1024  # at least 640:1
    tracemalloc.start()
    try:
        with pytest.raises(HttpError) as err:
            decode_content(bomb, [coding], max_decoded=1024 * 1024, keep=1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.code == "http.decoded_too_large"
    assert "1 MiB" in err.value.message
    assert "decompression bomb" in err.value.message
    assert peak < 16 * 1024 * 1024


def test_a_bomb_inside_another_coding_is_caught() -> None:
    nested = gzip.compress(gzip.compress(b"\0" * (100 * 1024 * 1024)))
    with pytest.raises(HttpError) as err:
        decode_content(nested, ["gzip", "gzip"], max_decoded=1024 * 1024, keep=1024)
    assert err.value.code == "http.decoded_too_large"


def test_brotli_without_bounded_output_is_fed_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """brotli < 1.2 has no output_buffer_limit; the fallback must still decode and bound."""

    class OldDecompressor:
        def __init__(self) -> None:
            self._d = brotli.Decompressor()

        def process(self, data: bytes) -> bytes:
            return bytes(self._d.process(data))

        def is_finished(self) -> bool:
            return bool(self._d.is_finished())

    old = types.SimpleNamespace(Decompressor=OldDecompressor, error=brotli.error)
    monkeypatch.setitem(sys.modules, "brotli", old)
    data = brotli.compress(TEXT)
    assert decode_content(data, ["br"], max_decoded=BIG, keep=BIG).kept == TEXT
    with pytest.raises(HttpError) as err:
        decode_content(
            brotli.compress(b"\0" * (20 << 20), quality=5), ["br"], max_decoded=1 << 20, keep=0
        )
    assert err.value.code == "http.decoded_too_large"


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=5000),
    codings=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=1, max_size=3),
)
def test_any_chain_of_codings_round_trips(data: bytes, codings: list[str]) -> None:
    encoded = encode(data, codings)
    decoded = decode_content(encoded, codings, max_decoded=BIG, keep=BIG)
    assert decoded.kept == data


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_a_flood_of_empty_members_is_refused_without_burning_cpu(coding: str) -> None:
    """Half a million empty gzip members (or zstd frames) in 10 MiB decode to nothing; before
    the member bound each member copied the rest of the body: 79 s of CPU for gzip."""
    member = gzip.compress(b"") if coding == "gzip" else zstandard.ZstdCompressor().compress(b"")
    body = member * ((10 << 20) // len(member))
    t0 = time.process_time()
    with pytest.raises(HttpError, match="more than 1000") as err:
        decode_content(body, [coding], max_decoded=BIG, keep=0)
    assert time.process_time() - t0 < 5   # a runaway, not a speed figure: it was 79 s
    assert err.value.code == "http.content_decode_failed"


def test_a_few_concatenated_members_still_decode() -> None:
    body = b"".join(gzip.compress(bytes([65 + i]) * 10) for i in range(20))
    decoded = decode_content(body, ["gzip"], max_decoded=BIG, keep=BIG)
    assert decoded.kept == b"".join(bytes([65 + i]) * 10 for i in range(20))


def test_a_tower_of_codings_is_refused() -> None:
    with pytest.raises(HttpError, match="stacked 500 content codings"):
        decode_content(b"x", ["gzip"] * 500, max_decoded=BIG, keep=BIG)


def test_zlib_errors_are_in_words() -> None:
    with pytest.raises(HttpError) as err:
        decode_content(b"\x1f\x8b\x08\x00" + b"\xff" * 100, ["gzip"], max_decoded=BIG, keep=0)
    assert "Error -3 while" not in err.value.message
    assert "(zlib error -3)" in err.value.message
