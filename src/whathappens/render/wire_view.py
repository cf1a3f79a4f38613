"""The view of HTTP on the wire and of "what good timing looks like", for every renderer.

- :func:`wire_view`: an HTTP step's frames (HTTP/2: each frame sent and received, its stream,
  flags, length, time and parameters; the header blocks before and after HPACK) or its chunks
  (HTTP/1.1 chunked: each chunk's size and arrival), with how many were left out of the list.
- :func:`guide_view`: analysis/timing_guide.py's rows in words, the rule beside this
  journey's figure, labelled as rules of thumb.

Words only, no medium: the terminal, the HTML report and the live page lay these out.
"""

from __future__ import annotations

from dataclasses import dataclass

from whathappens.analysis.timing_guide import timing_guide
from whathappens.contract.document import JourneyDoc, SpanDoc
from whathappens.contract.facts import HeaderBlock, HttpFacts
from whathappens.explain.wire import CHUNK_TIMES, FRAME_TIMES
from whathappens.render.format import ms, plural, size

GUIDE_LABEL = {"dns": "DNS", "tcp": "TCP", "tls": "TLS", "quic": "QUIC", "ttfb": "TTFB",
               "navigation_ttfb": "TTFB (page)", "fcp": "FCP", "lcp": "LCP", "cls": "CLS"}
OUTCOME_WORDS = {"within": "within", "over": "over", "unknown": "no verdict", "good": "good",
                 "needs_improvement": "needs improvement", "poor": "poor"}
OUTCOME_TONE = {"within": "ok", "good": "ok", "over": "bad", "poor": "bad",
                "needs_improvement": "warn", "unknown": ""}


@dataclass(frozen=True)
class FrameRow:
    arrow: str                   # → sent, ← received
    sent: bool
    type: str
    stream: int
    flags: str
    length: int
    at: str                      # ms since t0
    detail: str


@dataclass(frozen=True)
class ChunkRow:
    number: int
    size: int
    at: str
    after: str                   # since the previous chunk


@dataclass(frozen=True)
class WireView:
    """One HTTP step on the wire."""

    kind: str                    # h2 | h3 | chunked
    headline: str                # "14 frames (6 sent, 8 received)…"
    blocks: list[str]            # the header blocks before and after HPACK
    frames: list[FrameRow]
    chunks: list[ChunkRow]
    dropped: str                 # how many are not listed, or ""


def _at(t_ns: int) -> str:
    return f"{t_ns / 1e6:.3f}"


def block_words(what: str, b: HeaderBlock | None) -> str | None:
    if b is None:
        return None
    ratio = f" ({b.ratio:.0%} of the raw size)" if b.ratio is not None else ""
    return (f"{what} header block: {plural(b.fields, 'field')}, {size(b.octets)} of names and "
            f"values ({size(b.list_size)} as RFC 9113 §6.5.2 counts it) → {size(b.encoded)} "
            f"after HPACK{ratio}")


def _h2(f: HttpFacts) -> WireView | None:
    w = f.h2_wire
    if w is None:
        return None
    sent = sum(1 for x in w.frames if x.direction == "sent")
    split = f"{sent} sent, {len(w.frames) - sent} received"
    headline = (f"{plural(w.total, 'HTTP/2 frame')} on this exchange: "
                + (f"the first {len(w.frames)} listed ({split})" if w.dropped else split)
                + f" ({FRAME_TIMES})")
    rows = [FrameRow("→" if x.direction == "sent" else "←", x.direction == "sent", x.type,
                     x.stream_id, " ".join(x.flags), x.length, _at(x.t_ns), x.detail or "")
            for x in w.frames]
    blocks = [b for b in (block_words("request", w.request_block),
                          block_words("response", w.response_block)) if b]
    dropped = (f"… {plural(w.dropped, 'more frame')} not listed (the first "
               f"{len(w.frames)} are)" if w.dropped else "")
    return WireView("h2", headline, blocks, rows, [], dropped)


def _h3(f: HttpFacts) -> WireView | None:
    """HTTP/3's frames (RFC 9114 §7.2) and the QPACK sizes of the header blocks (RFC 9204)."""
    w = f.h3_wire
    if w is None:
        return None
    sent = sum(1 for x in w.frames if x.direction == "sent")
    headline = (f"{plural(w.total, 'HTTP/3 frame')} on this exchange: {sent} sent, "
                f"{len(w.frames) - sent} received (times: when aioquic made or parsed each "
                "frame, on the journey's clock)")
    rows = [FrameRow("→" if x.direction == "sent" else "←", x.direction == "sent", x.type,
                     x.stream_id, "", x.length, _at(x.t_ns), "") for x in w.frames]
    blocks = [b.replace("HPACK", "QPACK").replace("RFC 9113 §6.5.2", "RFC 9114 §4.2.2")
              for b in (block_words("request", w.request_block),
                        block_words("response", w.response_block)) if b]
    dropped = (f"… {plural(w.dropped, 'more frame')} not listed (the first "
               f"{len(w.frames)} are)" if w.dropped else "")
    return WireView("h3", headline, blocks, rows, [], dropped)


def _chunked(f: HttpFacts) -> WireView | None:
    c = f.chunked
    if c is None:
        return None
    rows: list[ChunkRow] = []
    prev: int | None = None
    for i, chunk in enumerate(c.chunks):
        after = "" if prev is None else f"+{ms((chunk.t_ns - prev) / 1e6)}"
        rows.append(ChunkRow(i + 1, chunk.size, _at(chunk.t_ns), after))
        prev = chunk.t_ns
    headline = (f"chunked transfer (RFC 9112 §7.1): {plural(c.total, 'chunk')}, "
                f"{size(c.body_bytes)} of body, as they arrived ({CHUNK_TIMES})")
    dropped = (f"… {plural(c.dropped, 'more chunk')} not listed (the first {len(c.chunks)} "
               "are)" if c.dropped else "")
    return WireView("chunked", headline, [], [], rows, dropped)


def wire_view(span: SpanDoc) -> WireView | None:
    """The HTTP step on the wire, when the driver recorded it."""
    f = span.facts_as(HttpFacts)
    if f is None:
        return None
    return _h2(f) or _h3(f) or _chunked(f)


# ------------------------------------------------------------------ the timing guide
@dataclass(frozen=True)
class GuideLine:
    label: str                   # DNS, TCP, TTFB (page), FCP…
    request: str                 # "request 2", or "" for the journey and the page
    rule: str
    figure: str                  # this journey's figure: "16.3 ms", "0.12"
    mark: str                    # the rule's mark here: "< 50.0 ms", "≤ 0.027 ms"
    outcome: str                 # in words
    tone: str                    # ok, bad, warn, ""
    note: str
    basis: str


def _value(metric: str, v: float | None) -> str:
    if metric == "cls":
        return "—" if v is None else f"{v:.3f}"
    return ms(v)


def guide_view(doc: JourneyDoc) -> list[GuideLine]:
    rows = timing_guide(doc).rows
    many = len({r.leg for r in rows if r.leg is not None}) > 1
    return [GuideLine(
        GUIDE_LABEL.get(r.metric, r.metric),
        f"request {r.leg + 1}" if many and r.leg is not None else "", r.rule,
        _value(r.metric, r.value), "" if r.limit is None else _value(r.metric, r.limit),
        OUTCOME_WORDS.get(r.outcome, r.outcome), OUTCOME_TONE.get(r.outcome, ""), r.note,
        r.basis) for r in rows]


def wire_summary(span: SpanDoc) -> str:
    """A few words on the wire for the live page's line: ``; 9 HTTP/2 frames, response
    headers 357 B → 205 B with HPACK`` or ``; 3 chunks``; "" when nothing was recorded."""
    f = span.facts_as(HttpFacts)
    if f is None:
        return ""
    if f.h2_wire is not None:
        b = f.h2_wire.response_block
        block = (f", response headers {size(b.octets)} → {size(b.encoded)} with HPACK"
                 if b is not None else "")
        return f"; {plural(f.h2_wire.total, 'HTTP/2 frame')}{block}"
    if f.chunked is not None:
        return f"; chunked: {plural(f.chunked.total, 'chunk')}"
    return ""
