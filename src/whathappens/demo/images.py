"""The demo page's pictures, drawn in code at startup: no image file comes from elsewhere.

``hero_png()`` is the page's large picture (its LCP element): a night sky over a line with
a dot at each hop of the journey. It is a real PNG (RFC 2083 / ISO 15948: signature, IHDR,
IDAT with zlib-compressed scanlines, IEND), drawn row by row with slice assignments so it
costs milliseconds, and sprinkled with stars so it is not a flat gradient: Chromium does not
count a picture with almost no information per pixel as the largest contentful paint.

``step_svg()`` draws the three small pictures (DNS, TLS, HTTP), as SVG text.
"""

from __future__ import annotations

import random
import struct
import zlib
from math import isqrt

HERO_SIZE = (1200, 450)
STARS = 2400
STAR_SEED = 10  # a fixed seed: the same bytes (and ETag) on every start


def hero_png(width: int = HERO_SIZE[0], height: int = HERO_SIZE[1]) -> bytes:
    """The hero picture as PNG bytes (8-bit RGB)."""
    line_y = height * 2 // 3
    hops = [(width * (i + 1) // 6, line_y) for i in range(5)]  # five hops along the line
    radius = height // 14
    rng = random.Random(STAR_SEED)
    stars: dict[int, list[int]] = {}
    for _ in range(STARS):
        stars.setdefault(rng.randrange(line_y - 12), []).append(rng.randrange(width))
    rows = []
    for y in range(height):
        row = bytearray(_sky(y, height) * width)
        for x in stars.get(y, ()):
            row[3 * x:3 * x + 3] = b"\xf4\xf1\xe0"
        if abs(y - line_y) <= 3:
            row[:] = b"\x9c\xc9\xdc" * width
        for i, (cx, cy) in enumerate(hops):
            dy = abs(y - cy)
            if dy < radius:
                dx = isqrt(radius * radius - dy * dy)
                lo, hi = max(0, cx - dx), min(width, cx + dx)
                colour = b"\xf2\xa6\x3b" if i == len(hops) - 1 else b"\xe8\xf1\xf5"
                row[3 * lo:3 * hi] = colour * (hi - lo)
        rows.append(b"\x00" + bytes(row))  # filter type 0 (None) for every scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _chunk(b"IEND", b""))


def _sky(y: int, height: int) -> bytes:
    """Night blue at the top to a dusk teal at the bottom."""
    t = y / max(1, height - 1)
    top, bottom = (16, 24, 48), (38, 96, 112)
    return bytes(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def step_svg(label: str, caption: str, colour: str) -> bytes:
    """A small card: a coloured disc with ``label`` in it and ``caption`` below."""
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="240" height="150" \
viewBox="0 0 240 150" role="img" aria-label="{label}: {caption}">
<rect width="240" height="150" rx="12" fill="#f1f4f8"/>
<circle cx="120" cy="62" r="40" fill="{colour}"/>
<text x="120" y="70" font-family="sans-serif" font-size="22" font-weight="bold" \
fill="#fff" text-anchor="middle">{label}</text>
<text x="120" y="130" font-family="sans-serif" font-size="15" fill="#1d2330" \
text-anchor="middle">{caption}</text>
</svg>
""".encode()
