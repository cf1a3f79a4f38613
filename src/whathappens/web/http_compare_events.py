"""The live page's ``http-compare`` step: --compare-http (HTTP/1.1 vs HTTP/2 vs HTTP/3 on fresh
connections) as one event, with everything the reports show: the medians side by side, every
sample, the round trips counted, and the modelled lines, which say they are modelled.

Pure, like events.py: the page puts every string in with ``textContent``, and every string
leaves through :func:`~whathappens.render.visible.visible_tree` (a URL or an error from the
peer shows a control character as an escape, never as itself).
"""

from __future__ import annotations

from typing import Any

from whathappens.contract.document import HttpCompare, HttpCompareVersion
from whathappens.explain.http_compare import explain_http_compare
from whathappens.render.format import ms
from whathappens.render.visible import visible_tree

STEP = "http-compare"
TITLE = "HTTP/1.1 vs HTTP/2 vs HTTP/3"
HEAD = ["", "set-up", "TTFB", "first byte from the first packet", "round trips"]
PENDING_SUMMARY = ("measuring HTTP/1.1, HTTP/2 and HTTP/3 on fresh connections to the same "
                   "address…")


def pending_event() -> dict[str, Any]:
    """Shown while the comparison runs (nine more requests take a moment)."""
    return {"step": STEP, "title": TITLE, "summary": PENDING_SUMMARY, "pending": True}


def _row(v: HttpCompareVersion) -> list[str]:
    return [v.version, ms(v.median_setup_ms), ms(v.median_ttfb_ms),
            ms(v.median_first_byte_ms), "?" if v.round_trips is None else str(v.round_trips)]


def _samples(v: HttpCompareVersion) -> str:
    shown = ", ".join(f"round {s.round}: " + (s.error or ms(s.first_byte_ms))
                      for s in v.samples)
    return f"{v.version} (first byte from the first packet): {shown or 'none'}"


def _summary(hc: HttpCompare) -> str:
    medians = [f"{v.version} {ms(v.median_first_byte_ms)}" for v in hc.versions
               if v.median_first_byte_ms is not None]
    if not medians:
        return "no version answered: every sample below says why"
    return (f"first byte from the first packet, median of {hc.rounds} fresh connections "
            f"each: " + ", ".join(medians))


def http_compare_event(hc: HttpCompare | None, why_not: str = "") -> dict[str, Any]:
    """The comparison as one live step; ``why_not`` when there is none (ran out of time…)."""
    base: dict[str, Any] = {
        "step": STEP, "title": TITLE, "leg": None, "actor": None, "layer": "application",
        "start_ms": None, "duration_ms": None, "took": "", "starts": "", "budget": "",
        "failed": False}
    if hc is None:
        out = {**base, "summary": why_not or "not measured: the journey ended with no https "
               "answer to ask for again", "beginner": "", "advanced": "", "measures": ""}
        shown: dict[str, Any] = visible_tree(out)
        return shown
    text = explain_http_compare(hc)
    failed = not any(v.median_first_byte_ms is not None for v in hc.versions)
    out = {**base, "failed": failed, "summary": _summary(hc),
           "target": f"fresh connections to {hc.address} for {hc.url}, {hc.rounds} rounds in "
                     "alternating order; each its own short journey, times on its own clock",
           "head": HEAD, "rows": [_row(v) for v in hc.versions],
           "samples": [_samples(v) for v in hc.versions],
           "modelled": list(hc.modelled),
           "beginner": text.beginner if text else "", "advanced": text.advanced if text else "",
           "measures": text.measures if text else ""}
    shown = visible_tree(out)
    return shown
