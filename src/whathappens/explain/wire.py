"""The words of the wire and timing-guide parts of the reports, as data (render/wire_view.py
fills in this journey's values)."""

from __future__ import annotations

GUIDE_TITLE = "What good timing looks like"
GUIDE_CAPTION = ("rules of thumb, not measurements: each beside this journey's measured "
                 "figure; they say where a healthy step on a good network tends to end")
FRAME_TIMES = ("times: ms since t0; sent = the write returned, received = the read that "
               "brought its first byte returned")
CHUNK_TIMES = "ms since t0: when the read that brought each chunk's start returned"
HOST_CACHE_NOTE = ("from the journey's host cache, TTL {left:,} s left of {ttl:,}: no question "
                   "was asked")
