"""Undoing Content-Encoding with a bound on every step (RFC 9110 §8.4).

Theory of operation: the encoded payload is already in memory (its size was bounded by the
body limit as it arrived). The codings named in Content-Encoding were applied in the order
listed, so they are undone in reverse (RFC 9110 §8.4). Each coding is a generator stage that
takes chunks in and yields chunks out, with a bound on the output of every call into the codec
(``_CHUNK`` for gzip, deflate and brotli 1.2; a few MiB for zstd and older brotli, which can
only be fed small slices), so a small input that expands enormously (a decompression bomb) is
caught at the limit instead of after it has filled memory. Every stage, not just the last, is
held to the decoded limit. Only the first ``keep`` decoded bytes are kept; the rest is counted.

brotli and zstandard are imported only when a body actually uses them.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence

from whathappens.errors import HttpError
from whathappens.net import budget
from whathappens.net.http_types import size_words

_CHUNK = 64 * 1024
# zstd and old brotli have no output bound per call, so their input goes in in slices small
# enough that even the densest encoding (a zstd RLE block turns 4 bytes into 128 KiB) stays a
# few MiB per call.
_ZSTD_SLICE = 128
_BROTLI_OLD_SLICE = 256
# RFC 9659 §3: encoders must not need a zstd window over 8 MB, so a decoder may refuse more.
_ZSTD_MAX_WINDOW = 8 * 1024 * 1024
# gzip members (RFC 1952 §2.2) and zstd frames (RFC 8878 §3.1) may follow one another, and
# each costs a new decoder: a body of half a million empty members is a CPU bomb that decodes
# to nothing. Real bodies have one, or a few when files were concatenated.
_MAX_MEMBERS = 1000
# Codings stacked in Content-Encoding: one is usual; each adds a stage to every chunk.
_MAX_CODINGS = 8
# gzip/deflate input goes in slices, so that what zlib copies as unused_data at the end of a
# member is one slice, not the rest of the body (which made many members quadratic).
_ZLIB_SLICE = 64 * 1024


class DecodedBody:
    __slots__ = ("kept", "size")

    def __init__(self, kept: bytes, size: int) -> None:
        self.kept = kept  # the first bytes of the decoded payload, at most ``keep`` of them
        self.size = size  # the whole decoded size

    @property
    def truncated(self) -> bool:
        return self.size > len(self.kept)


def content_codings(headers: list[tuple[str, str]]) -> list[str]:
    """The codings of every Content-Encoding line, in the order applied (RFC 9110 §8.4).

    Names are case-insensitive (RFC 9110 §8.4.1); ``identity`` means no coding and is dropped.
    """
    codings: list[str] = []
    for name, value in headers:
        if name.lower() == "content-encoding":
            codings.extend(c.strip().lower() for c in value.split(",") if c.strip())
    return [c for c in codings if c != "identity"]


def decode_content(
    data: bytes, codings: Sequence[str], *, max_decoded: int, keep: int
) -> DecodedBody:
    """Undo ``codings`` on ``data``; raise HttpError when a coding is unknown, the data is
    corrupt, or the result would pass ``max_decoded`` bytes."""
    stages: list[Callable[[Iterable[bytes]], Iterator[bytes]]] = []
    if len(codings) > _MAX_CODINGS:
        raise HttpError(
            "http.content_encoding_unknown",
            f"The server stacked {len(codings)} content codings on the body "
            f"({', '.join(codings[:4])} …); more than {_MAX_CODINGS} is not a real encoding "
            "but a way to make a client work, so it was not decoded.",
        )
    for coding in reversed(codings):
        stage = _STAGES.get(coding)
        if stage is None:
            raise HttpError(
                "http.content_encoding_unknown",
                f"The server encoded the body as {coding!r}, a content coding whathappens "
                f"cannot undo (it knows {', '.join(sorted(_STAGES))}); we asked only for "
                "those in Accept-Encoding.",
            )
        stages.append(stage)
    if not data:  # an empty body decodes to nothing, whatever its label says
        return DecodedBody(b"", 0)

    chunks: Iterable[bytes] = [data]
    for coding, stage in zip(reversed(codings), stages, strict=True):
        chunks = _bounded(stage(chunks), coding, len(data), max_decoded)

    kept = bytearray()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
    return DecodedBody(bytes(kept), size)


def _bounded(stage: Iterator[bytes], coding: str, encoded: int, limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in stage:
        total += len(chunk)
        if total > limit:
            raise HttpError(
                "http.decoded_too_large",
                f"The body arrived as {size_words(encoded)} but undoing its {coding} encoding "
                f"passed the decoded limit of {size_words(limit)}, so decoding stopped there. "
                "A body that expands this much looks like a decompression bomb.",
            )
        yield chunk


def _failed(coding: str, why: str) -> HttpError:
    return HttpError(
        "http.content_decode_failed",
        f"The body says it is {coding}-encoded but it does not decode as {coding}: {why}.",
    )


def _zlib_stage(coding: str, wbits: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """gzip (RFC 1952) or deflate (RFC 1950/1951); ``max_length`` bounds each call exactly."""
    d = zlib.decompressobj(wbits)
    members = 1
    pace = budget.current()
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            for i in range(0, len(view), _ZLIB_SLICE):
                pending = bytes(view[i : i + _ZLIB_SLICE])
                while True:
                    if d.eof:
                        rest = d.unused_data + pending
                        if coding == "gzip" and rest.startswith(b"\x1f\x8b"):
                            # RFC 1952 §2.2: members may follow
                            members += 1
                            if members > _MAX_MEMBERS:
                                raise _failed(coding, f"it is made of more than {_MAX_MEMBERS} "
                                              "gzip members in a row, a decompression bomb "
                                              "pattern")
                            pace.check()
                            d = zlib.decompressobj(wbits)
                            pending = rest
                        elif rest.strip(b"\0"):
                            raise _failed(coding, f"{len(rest)} stray bytes follow its end")
                        else:
                            break  # nothing, or zero padding, after the end
                    out = d.decompress(pending, _CHUNK)
                    # At the end of a stream CPython leaves the rest in both unused_data and
                    # unconsumed_tail; unused_data is the one read above.
                    pending = b"" if d.eof else d.unconsumed_tail
                    if out:
                        yield out
                    # A full output buffer may mean zlib holds more even with no input
                    # left; at the end of a stream the top of the loop decides what follows.
                    if not pending and len(out) < _CHUNK and not d.eof:
                        break
        if not d.eof:
            raise _failed(coding, "the data ends before its end marker (truncated)")
    except zlib.error as e:
        raise _failed(coding, _zlib_words(e)) from None


def _zlib_words(e: zlib.error) -> str:
    """zlib's "Error -3 while decompressing data: invalid block type" as "invalid block
    type (zlib error -3)"."""
    text = str(e)
    head, sep, why = text.partition(": ")
    code = head.split()[1] if sep and head.startswith("Error ") and " " in head else ""
    return f"{why} (zlib error {code})" if sep and code else text


def _gzip_stage(chunks: Iterable[bytes]) -> Iterator[bytes]:
    return _zlib_stage("gzip", 16 + zlib.MAX_WBITS, chunks)


def _deflate_stage(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """RFC 9110 §8.4.1.2: "deflate" is the zlib format (RFC 1950), but some servers send a raw
    deflate stream (RFC 1951); the zlib header tells them apart, and browsers accept both."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 2:
            break
    is_zlib = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    wbits = zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS
    return _zlib_stage("deflate", wbits, itertools.chain([head], it))


def _brotli_stage(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """br (RFC 7932). brotli 1.2 bounds each call's output (``output_buffer_limit``); older
    versions cannot, so they get the input in small slices instead."""
    import brotli

    d = brotli.Decompressor()
    bounded = hasattr(d, "can_accept_more_data")
    try:
        for chunk in chunks:
            if bounded:
                # Input is taken whole; output comes out at most _CHUNK (give or take one
                # block) per call until a call gives nothing more.
                out = d.process(chunk, output_buffer_limit=_CHUNK)
                while out:
                    yield out
                    out = d.process(b"", output_buffer_limit=_CHUNK)
            else:
                view = memoryview(chunk)
                for i in range(0, len(view), _BROTLI_OLD_SLICE):
                    yield d.process(bytes(view[i : i + _BROTLI_OLD_SLICE]))
        if not d.is_finished():
            raise _failed("br", "the data ends before its end marker (truncated)")
    except brotli.error as e:
        raise _failed("br", str(e) or "corrupt data") from None


def _zstd_stage(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """zstd (RFC 9659). One decompressobj per frame so a frame cut short is noticed."""
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    d = dctx.decompressobj()
    started = False
    frames = 1
    pace = budget.current()
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            for i in range(0, len(view), _ZSTD_SLICE):
                piece = bytes(view[i : i + _ZSTD_SLICE])
                while piece:
                    if d.eof:  # RFC 8878 §3.1: frames may follow one another
                        frames += 1
                        if frames > _MAX_MEMBERS:
                            raise _failed("zstd", f"it is made of more than {_MAX_MEMBERS} "
                                          "zstd frames in a row, a decompression bomb pattern")
                        pace.check()
                        d = dctx.decompressobj()
                    started = True
                    out = d.decompress(piece)
                    piece = d.unused_data if d.eof else b""
                    if out:
                        yield out
        if started and not d.eof:
            raise _failed("zstd", "the data ends before its frame does (truncated)")
    except zstandard.ZstdError as e:
        raise _failed("zstd", str(e)) from None


_STAGES: dict[str, Callable[[Iterable[bytes]], Iterator[bytes]]] = {
    "gzip": _gzip_stage,
    "x-gzip": _gzip_stage,  # RFC 9110 §8.4.1.3: a recipient should treat x-gzip as gzip
    "deflate": _deflate_stage,
    "br": _brotli_stage,
    "zstd": _zstd_stage,
}
