"""Words for the browser phase: what each rendering stage does, filled with this page's values,
and the notes the reports put beside the waterfall, the metrics and the chains.

A stage's text is a template: ``{took}`` (its time, all passes together), ``{times}`` (how
many trace events it merged: "once", "3 times"), ``{at}`` (when it first ran, ms after the
navigation started) and ``{what}`` (the stylesheet or script it worked on, or "the page").
Written for this project, in our own words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageText:
    label: str         # DOM, CSSOM, Style…
    does: str          # what the stage is, in a few words
    template: str      # this page's values, in a sentence


STAGES: dict[str, StageText] = {
    "dom": StageText(
        "DOM", "the HTML parser builds the document tree",
        "The parser read the HTML into the DOM {times}, {took} in all, first at "
        "{at}. It stops at a classic script until that script has run, so a slow script "
        "early in the page delays everything after it."),
    "cssom": StageText(
        "CSSOM", "stylesheets are parsed into the style rules",
        "{what} was parsed into the CSSOM in {took} at {at}. Until every stylesheet in the "
        "head is parsed nothing can be painted: that is what render-blocking means."),
    "style": StageText(
        "Style", "each element gets its computed style (the render tree)",
        "Style was recalculated {times}, {took} in all, first at {at}: every element "
        "matched against the CSS rules to get its final colours, fonts and sizes."),
    "layout": StageText(
        "Layout", "boxes get their positions and sizes",
        "Layout ran {times}, {took} in all, first at {at}. Each run after the first "
        "means something changed size or was added: a late image without dimensions, a "
        "font swap, a banner."),
    "prepaint": StageText(
        "Pre-paint", "paint properties (transforms, clips, effects) are settled",
        "Pre-paint took {took} at {at}: the transforms, clips and effects each box is "
        "painted with."),
    "paint": StageText(
        "Paint", "drawing commands are recorded",
        "Paint recorded the drawing commands {times}, {took} in all, first at {at}. "
        "Recording is not yet pixels on screen."),
    "layerize": StageText(
        "Layerize", "the painted content is split into composited layers",
        "Layerize took {took} at {at}: deciding which parts get a layer of their own."),
    "commit": StageText(
        "Commit", "the main thread hands the frame to the compositor thread",
        "Commit took {took} at {at}: the frame went from the main thread to the compositor."),
    "composite": StageText(
        "Composite", "the compositor draws the frame: pixels on screen",
        "A frame was drawn {times}, first at {at} ({took} in all); a paint metric "
        "(FCP, LCP) is the frame that first showed its content."),
    "script": StageText(
        "Script", "JavaScript is compiled and run",
        "{what} ran for {took} at {at}. While it runs, the main thread does nothing else: "
        "no parsing, no style, no paint."),
    "long_task": StageText(
        "Long task", "a main-thread task over 50 ms",
        "A task held the main thread for {took} at {at} ({what}). Over 50 ms is a long task: "
        "input and rendering wait behind it."),
}

# What the page waited on or timed itself, shown beside the rendering path. ``{what}`` is the
# font, image or measure, ``{took}`` its time, ``{at}`` when it began.
ASIDES: dict[str, StageText] = {
    "font_load": StageText(
        "Font", "a web font is fetched and made ready",
        "The web font {what} took {took} from the moment the browser asked for it ({at}) to "
        "being ready; text in it is drawn in a fallback font meanwhile (font-display: swap) "
        "or not at all (block)."),
    "image_decode": StageText(
        "Decode", "an image's compressed bytes are turned into pixels",
        "{what} was decoded in {took} at {at}: the image's bytes became pixels, often on a "
        "raster thread, before it could be drawn."),
    "user_measure": StageText(
        "Measure", "a stretch the page timed itself (performance.measure)",
        "The page's own measure {what} lasted {took}, from {at}."),
    "user_mark": StageText(
        "Mark", "a moment the page marked itself (performance.mark)",
        "The page marked {what} at {at}."),
}
LIVE_NOTE = ("While the page loads, its moments arrive live from Chromium's own events; the "
             "report's values come from the trace, read once the page is done.")
SETTLE_NOTE = ("After load the capture waits for the page to go quiet, because late layout "
               "shifts and LCP candidates still arrive after it.")

BROWSER_NOTE = ("The same URL, loaded in headless Chromium after the network journey, on the "
                "journey's own clock (Chromium's trace and CDP timestamps are the same "
                "monotonic clock). Times marked + count from the navigation's start.")
NAVIGATION_NOTE = ("Chromium opens a connection to the site as soon as the navigation starts "
                   "(a preconnect), before it asks for the document, so its own timing for "
                   "the document shows no DNS, connect or TLS: the connection was already "
                   "there. The DNS, TCP and TLS times that count are the journey's own, "
                   "measured above.")
NAVIGATION_OWN = ("Here Chromium timed a connection of its own for the document, beside the "
                  "journey's: two clients, two connections. The journey's DNS, TCP and TLS "
                  "above are the ones measured step by step.")
SKIPPED_HINT = ("To see the page load: install Debian's chromium (apt-get install chromium) "
                "and Playwright's Python package (pip install playwright; no browser "
                "download is needed), then run again with --browser.")
VITALS_CAVEAT = ("Guidance, not a measurement of real visitors: Core Web Vitals' thresholds "
                 "(FCP ≤ 1.8 s, LCP ≤ 2.5 s, CLS ≤ 0.1 are 'good') are meant for the 75th "
                 "percentile of many real visits; this is one load in a lab browser.")
LANES_NOTE = ("Requests on one HTTP/2 connection travel as streams side by side: each lane "
              "of a connection is a stream in flight at the same time as the others.")
FILMSTRIP_NOTE = "What the page looked like as it was drawn, one frame per visual change."
PHASES_NOTE = ("Each bar: queued in Chromium, then DNS, connect, TLS (none on a reused "
               "connection), sending the request, waiting for the first byte, receiving.")
