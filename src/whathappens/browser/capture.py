"""One page load in headless Chromium, recorded over the DevTools protocol (CDP).

The only I/O of the browser phase: launch Chromium (``launch``), or borrow a running one
(``WarmBrowser``); then, in a fresh context, ``load_page``:

1. a CDP session on the page: ``Network.enable`` (every request, its response with Chromium's
   timing, connection and protocol, its bytes, its end) fed into ``network.NetworkLog``;
2. ``Tracing.start`` with the timeline, loading, user-timing and screenshot categories,
   streamed (``transferMode: ReturnAsStream``);
3. the live sources (``live.py``): ``Page.lifecycleEvent`` (paints, DOMContentLoaded, load)
   and a PerformanceObserver in an isolated world of ours (LCP candidates, layout shifts,
   long tasks, user timing), told to ``on_mark`` as they happen, for the live page;
4. navigate, wait for ``load``, then settle until the page is quiet: no request in flight and
   no new LCP candidate or layout shift for ``BrowserOptions.quiet`` seconds, at most
   ``settle_max`` (late shifts and LCP candidates arrive after load); how long it took and
   why it ended are recorded;
5. ``Tracing.end``, then the stream read back with ``IO.read`` in 1 MiB pieces, at most
   ``max_trace_bytes``, parsed by ``trace.parse_trace`` at most ``max_trace_events``;
6. the LCP element and moved elements described (``DOM.resolveNode``), the context closed.

Everything is bounded by one deadline (``BrowserOptions.timeout``): a page that never
finishes loading is stopped, and what was recorded until then is still read. Past the
request or byte budget the page is stopped (``Page.stopLoading``) and the capture says why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from whathappens.browser.chromium import (
    BrowserOptions,
    BrowserUnavailable,
    browser_env,
    dropped_defaults,
    launch_args,
    launch_key,
    missing_reason,
    throwaway_home,
)
from whathappens.browser.live import BINDING, LIVE_WORLD, OBSERVER_JS, LiveMark, LiveMoments
from whathappens.browser.netlog import Streams, events_in, netlog_constants, streams_from
from whathappens.browser.network import EVENTS, NetworkLog, ResourceRecord
from whathappens.browser.trace import NodeInfo, PageId, ParsedTrace, parse_trace, wanted_nodes

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from playwright.async_api import Browser, BrowserContext, CDPSession, Page, Playwright

T = TypeVar("T")
TRACE_CATEGORIES = [
    "devtools.timeline", "disabled-by-default-devtools.timeline",
    "disabled-by-default-devtools.timeline.frame", "loading", "blink.user_timing",
    "disabled-by-default-devtools.screenshot", "v8.execute", "latencyInfo",
]
IO_CHUNK = 1024 * 1024
MAX_NETLOG_BYTES = 32 * 1024 * 1024
MAX_NETLOG_HEAD = 8 * 1024 * 1024    # where a NetLog's constants are, at its start
# A warm browser's NetLog grows with every page (~0.2 MiB for the demo page): past this the
# browser is replaced by a fresh one once no page is loading in it.
WARM_NETLOG_ROTATE = 64 * 1024 * 1024
TRACE_RESERVE_S = 3.0   # of the deadline, kept for ending the trace and reading it back
SETTLE_POLL_S = 0.025   # how often the settle looks whether the page has gone quiet
DESCRIBE = """function () {
  const el = this.nodeType === 1 ? this : this.parentElement;
  if (!el) return [String(this.nodeName).toLowerCase(), null];
  let s = el.localName;
  if (el.id) s += '#' + el.id;
  for (const c of el.classList) s += '.' + c;
  let url = el.currentSrc || el.src || null;
  if (!url) {
    const m = /url\\("?(.*?)"?\\)/.exec(getComputedStyle(el).backgroundImage || '');
    if (m) url = m[1];
  }
  return [s, url ? String(url) : null];
}"""


@dataclass
class Chromium:
    """A running Chromium (Playwright's handle) and the throwaway HOME it trusts through.

    A warm one (``WarmBrowser``) keeps a spare context and page open for the next journey
    (opening a page starts a renderer process: ~200 ms on 2 cores) and closes each used
    context in the background, so neither is paid inside a journey's phase."""

    playwright: Playwright
    browser: Browser
    version: str
    key: tuple[str, str | None, tuple[str, ...]]
    _home: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    warm: bool = False
    netlog_path: Path | None = None   # a cold browser's NetLog, read when it closes
    netlog: str | None = None
    _spare: asyncio.Future[tuple[BrowserContext, Page]] | None = None
    _spare_for: tuple[str | None, tuple[int, int]] | None = None
    _closing: set[asyncio.Future[Any]] = field(default_factory=set)
    active: int = 0                   # pages loading in it now (a warm browser's)
    _constants: dict[str, Any] | None = None   # its NetLog's constants, read once

    def netlog_size(self) -> int | None:
        """How far Chromium has written its NetLog (None: it writes none)."""
        try:
            return self.netlog_path.stat().st_size if self.netlog_path is not None else None
        except OSError:
            return None

    def streams_since(self, offset: int) -> Streams | None:
        """A running browser's HTTP/2 streams from the part of its NetLog written since
        ``offset`` (at most MAX_NETLOG_BYTES of it); None when it cannot be read."""
        if self.netlog_path is None:
            return None
        try:
            with self.netlog_path.open("rb") as f:
                if not self._constants:  # written first, at launch; read once found
                    self._constants = netlog_constants(
                        f.read(MAX_NETLOG_HEAD).decode("utf-8", "replace"))
                f.seek(offset)
                piece = f.read(MAX_NETLOG_BYTES).decode("utf-8", "replace")
        except OSError:
            return None
        return streams_from(self._constants, events_in(piece)) if self._constants else None

    async def page_for(self, options: BrowserOptions) -> tuple[BrowserContext, Page]:
        """A fresh context and page: the spare one if it was made for these options."""
        spare, self._spare = self._spare, None
        if spare is not None:
            if self._spare_for == (options.proxy, options.viewport):
                with contextlib.suppress(Exception):
                    return await spare
            self._later(_close_spare(spare))
        return await open_page(self.browser, options)

    def done_with(self, context: BrowserContext, options: BrowserOptions) -> None:
        """After a warm journey: close its context and open the next spare, both in the
        background."""
        self._later(asyncio.wait_for(context.close(), 10))
        self.open_spare(options)

    def open_spare(self, options: BrowserOptions) -> None:
        """Open the next journey's context and page now, in the background."""
        if self._spare is None:
            self._spare = asyncio.ensure_future(open_page(self.browser, options))
            self._spare_for = (options.proxy, options.viewport)

    def _later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved

    async def close(self) -> None:
        try:
            if self._spare is not None:
                await _close_spare(self._spare)
            if self._closing:
                await asyncio.wait(set(self._closing), timeout=10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.browser.close(), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.playwright.stop(), 10)
            if not self.warm:  # a warm one was read as it went (streams_since)
                self.netlog = _read_bounded(self.netlog_path)
        finally:
            self._home.close()


def _read_bounded(path: Path | None) -> str | None:
    """The NetLog, unless missing or over MAX_NETLOG_BYTES (then its streams stay unknown)."""
    try:
        if path is None or path.stat().st_size > MAX_NETLOG_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


async def open_page(browser: Browser, options: BrowserOptions) -> tuple[BrowserContext, Page]:
    """A fresh context (no cache, no cookies, no service workers, no downloads) and a page."""
    width, height = options.viewport
    extra: dict[str, Any] = {}
    if options.proxy:
        extra["proxy"] = {"server": options.proxy, "bypass": "<-loopback>"}
    context = await browser.new_context(
        viewport={"width": width, "height": height}, service_workers="block",
        accept_downloads=False, **extra)
    try:
        return context, await context.new_page()
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(context.close(), 5)
        raise


async def _close_spare(spare: asyncio.Future[tuple[BrowserContext, Page]]) -> None:
    with contextlib.suppress(BaseException):
        context, _ = await asyncio.wait_for(spare, 10)
        await asyncio.wait_for(context.close(), 5)


async def launch(options: BrowserOptions, *, netlog: bool = False) -> Chromium:
    """Start Chromium with a throwaway profile trusting ``options.cafile``; raises
    BrowserUnavailable when it cannot run here. With ``netlog``, Chromium writes its NetLog
    into the profile, read back by ``close()`` (the HTTP/2 stream of each request)."""
    reason = missing_reason(options)
    if reason is not None:
        raise BrowserUnavailable(reason)
    from playwright.async_api import async_playwright

    stack = contextlib.ExitStack()
    home: Path = stack.enter_context(throwaway_home(options.cafile))
    try:
        pw = await async_playwright().start()
    except BaseException:
        stack.close()
        raise
    args = launch_args(options)
    netlog_path = home / "netlog.json" if netlog else None
    if netlog_path is not None:
        args += [f"--log-net-log={netlog_path}", "--net-log-capture-mode=Default"]
    try:
        browser = await pw.chromium.launch(
            executable_path=options.executable, args=args, headless=True,
            env=dict[str, str | float | bool](browser_env(home)),
            ignore_default_args=dropped_defaults(), timeout=options.timeout * 1000,
            handle_sigint=False)
    except BaseException:
        with contextlib.suppress(Exception):
            await pw.stop()
        stack.close()
        raise
    return Chromium(pw, browser, f"Chromium {browser.version}", launch_key(options), stack,
                    netlog_path=netlog_path)


class WarmBrowser:
    """A Chromium kept running across journeys (``serve``): each journey gets a fresh
    context and does not pay the launch. The browser lives on a thread and event loop of its
    own, so journeys on any loop or thread can use it (``serve`` runs each journey on its own
    thread). A journey whose launch arguments or CA differ gets a cold browser instead.

        warm = WarmBrowser(options)
        await warm.start()                      # or let the first journey start it
        span = await browser_phase(journey, url, options, warm=warm)
        await warm.close()
    """

    def __init__(self, options: BrowserOptions) -> None:
        self.options = options
        self.chromium: Chromium | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._rotating: asyncio.Future[None] | None = None

    @property
    def started(self) -> bool:
        return self.chromium is not None

    @property
    def version(self) -> str:
        return self.chromium.version if self.chromium is not None else "Chromium"

    async def _call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the browser's own loop and wait for it here."""
        with self._guard:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever,
                                                name="warm-chromium", daemon=True)
                self._thread.start()
            loop = self._loop
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))

    async def start(self) -> None:
        await self._call(self._start())

    async def _start(self) -> None:
        if self.chromium is None or not self.chromium.browser.is_connected():
            if self.chromium is not None:
                await self.chromium.close()
            self.chromium = None
            self.chromium = await self._launch()

    async def _launch(self) -> Chromium:
        chromium = await launch(self.options, netlog=True)
        chromium.warm = True
        chromium.open_spare(self.options)
        return chromium

    def serves(self, options: BrowserOptions) -> bool:
        """Whether a journey with these options can use this browser as it runs."""
        return (self.chromium is not None and self.chromium.browser.is_connected()
                and self.chromium.key == launch_key(options))

    async def load(self, url: str, options: BrowserOptions, origin_ns: int, deadline: float,
                   on_done: Callable[[ResourceRecord], None] | None = None,
                   on_mark: Callable[[LiveMark], None] | None = None) -> Capture:
        """``load_page`` in a fresh context of the warm browser."""
        return await self._call(self._load(url, options, origin_ns, deadline, on_done,
                                           on_mark))

    async def _load(self, url: str, options: BrowserOptions, origin_ns: int, deadline: float,
                    on_done: Callable[[ResourceRecord], None] | None,
                    on_mark: Callable[[LiveMark], None] | None) -> Capture:
        chromium = self.chromium
        if chromium is None:
            raise RuntimeError("the warm browser is not running")
        chromium.active += 1
        try:
            return await load_page(chromium, url, options, origin_ns, deadline, on_done,
                                   on_mark)
        finally:
            chromium.active -= 1
            size = chromium.netlog_size()
            if (chromium is self.chromium and size is not None and size > WARM_NETLOG_ROTATE
                    and self._rotating is None):
                self._rotating = asyncio.ensure_future(self._rotate(chromium))

    async def _rotate(self, old: Chromium) -> None:
        """A fresh browser (and NetLog) in place of ``old``, which is closed once the pages
        loading in it are done: the NetLog of a long-running ``serve`` stays bounded."""
        try:
            self.chromium = await self._launch()
        except Exception:  # keep the old one: its pages still load, their streams unknown
            self._rotating = None
            return
        try:
            while old.active:
                await asyncio.sleep(0.1)
        finally:  # also when the warm browser is closed meanwhile
            with contextlib.suppress(Exception):
                await old.close()
            self._rotating = None


    async def close(self) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            await self._call(self._close())
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            await asyncio.to_thread(thread.join, 10)
        loop.close()

    async def _close(self) -> None:
        if self._rotating is not None:
            self._rotating.cancel()
            with contextlib.suppress(BaseException):
                await self._rotating
        if self.chromium is not None:
            chromium, self.chromium = self.chromium, None
            await chromium.close()


@dataclass
class Capture:
    """What one page load recorded, raw (``phase`` turns it into spans)."""

    network: NetworkLog
    page: PageId
    trace: ParsedTrace | None = None
    trace_bytes: int = 0
    nodes: dict[int, NodeInfo] = field(default_factory=dict)
    status: int | None = None
    final_url: str | None = None
    load_error: str | None = None   # Chromium's own words: net::ERR_CERT_AUTHORITY_INVALID …
    stopped: str | None = None      # why the page was stopped before it finished
    notes: list[str] = field(default_factory=list)
    netlog: str | None = None       # a cold browser's NetLog (HTTP/2 streams)
    streams: Streams | None = None  # a warm browser's: from its NetLog as it is written
    settle_ms: float | None = None  # waited after load for the page to be quiet …
    settle_ended: str | None = None  # … and why the wait ended


async def load_page(chromium: Chromium, url: str, options: BrowserOptions, origin_ns: int,
                    deadline: float,
                    on_done: Callable[[ResourceRecord], None] | None = None,
                    on_mark: Callable[[LiveMark], None] | None = None) -> Capture:
    """Load ``url`` in a fresh context of ``chromium``; ``deadline`` is ``time.monotonic()``
    by which everything, the trace's read-back included, is over. ``on_done`` hears of each
    request as it ends, ``on_mark`` of each moment seen live (``live.py``)."""
    netlog_at = chromium.netlog_size() if chromium.warm else None
    context, page = await chromium.page_for(options)
    try:
        cdp = await context.new_cdp_session(page)
        log = NetworkLog(origin_ns, options.max_requests, options.max_bytes, on_done=on_done)
        capture = Capture(log, PageId(url))
        watch = _Watch(cdp, log, LiveMoments(origin_ns))
        watch.moments.on_mark = watch.heard(on_mark)
        for method in EVENTS:
            cdp.on(method, _feeder(log, method, watch))
        if options.trace_id:
            await _trace_requests(cdp, options.trace_id, log)
        await watch.start()
        await cdp.send("Network.enable")
        await cdp.send("Tracing.start", {
            "transferMode": "ReturnAsStream", "streamFormat": "json",
            "traceConfig": {"includedCategories": TRACE_CATEGORIES,
                            "recordMode": "recordAsMuchAsPossible"}})
        await _navigate(page, cdp, url, capture, watch, deadline)
        if capture.load_error is None and capture.stopped is None:
            await _settle(cdp, capture, watch, options, deadline)
        await watch.close()
        capture.trace, capture.trace_bytes = await _read_trace(cdp, options, deadline)
        _name_the_page(capture)
        capture.nodes = await _describe(cdp, wanted_nodes(capture.trace.events), deadline)
        if netlog_at is not None:  # read after the trace: the NetLog's last batch is written
            capture.streams = chromium.streams_since(netlog_at)
        return capture
    finally:
        if chromium.warm:
            chromium.done_with(context, options)
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(context.close(), 5)


async def _trace_requests(cdp: CDPSession, trace_id: str, log: NetworkLog) -> None:
    """--lab: every request of the page leaves with a W3C traceparent of its own (Trace
    Context §3.2: one trace id, a new parent id per request), added by pausing it at the
    request stage (CDP Fetch); the lab's tiers log it, so their spans can be merged under
    the request's span. Only with --lab: each pause costs a round trip to us."""
    pending: set[asyncio.Task[Any]] = set()

    def paused(params: dict[str, Any]) -> None:
        traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        network_id = params.get("networkId")
        if network_id is not None:
            log.traceparents[str(network_id)] = traceparent
        headers = [{"name": str(k), "value": str(v)}
                   for k, v in (params.get("request", {}).get("headers") or {}).items()
                   if str(k).lower() != "traceparent"]
        headers.append({"name": "traceparent", "value": traceparent})
        task = asyncio.ensure_future(_continue(cdp, params["requestId"], headers))
        pending.add(task)
        task.add_done_callback(pending.discard)

    cdp.on("Fetch.requestPaused", paused)
    await cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*",
                                                   "requestStage": "Request"}]})


async def _continue(cdp: CDPSession, request_id: str, headers: list[dict[str, str]]) -> None:
    with contextlib.suppress(Exception):  # the page or the context may be gone by now
        await cdp.send("Fetch.continueRequest", {"requestId": request_id, "headers": headers})


class _Watch:
    """The live sources of one load (``live.py``) and when the page last did something: a
    request sent, a byte received or a request ended, an LCP candidate or a layout shift
    (``time.monotonic()`` when we heard of it)."""

    def __init__(self, cdp: CDPSession, log: NetworkLog, moments: LiveMoments) -> None:
        self.cdp, self.log, self.moments = cdp, log, moments
        self.over = asyncio.Event()
        self.last_network = self.last_visual = time.monotonic()
        self._asking: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Before the navigation: the main frame, lifecycle events, the observer's world."""
        tree = await self.cdp.send("Page.getFrameTree")
        self.moments.frame_id = str(tree["frameTree"]["frame"]["id"])
        self.cdp.on("Page.lifecycleEvent", self.moments.lifecycle)
        self.cdp.on("Runtime.bindingCalled", self.binding)
        await self.cdp.send("Page.enable")
        await self.cdp.send("Page.setLifecycleEventsEnabled", {"enabled": True})
        await self.cdp.send("Runtime.enable")
        await self.cdp.send("Runtime.addBinding", {"name": BINDING,
                                                   "executionContextName": LIVE_WORLD})
        await self.cdp.send("Page.addScriptToEvaluateOnNewDocument",
                            {"source": OBSERVER_JS, "worldName": LIVE_WORLD})

    def heard(self, on_mark: Callable[[LiveMark], None] | None) -> Callable[[LiveMark], None]:
        def tell(mark: LiveMark) -> None:
            if mark.mark in ("lcp", "layout_shift"):
                self.last_visual = time.monotonic()
            if on_mark is not None:
                on_mark(mark)
        return tell

    def network(self, method: str, params: dict[str, Any]) -> None:
        self.last_network = time.monotonic()
        if method == "Network.requestWillBeSent":
            self.moments.navigation(params)

    def binding(self, params: dict[str, Any]) -> None:
        self.moments.binding(params)
        origin = self.moments.wants_navigation_start
        if origin is not None and self._asking is None:
            self._asking = asyncio.ensure_future(self._navigation_start(origin))

    async def _navigation_start(self, origin: float) -> None:
        """The document's navigationStart on CLOCK_MONOTONIC (``Performance.getMetrics``),
        asked once a report of that document has arrived, so it is that document's."""
        try:
            await self.cdp.send("Performance.enable")
            metrics = await self.cdp.send("Performance.getMetrics")
            values = {m.get("name"): m.get("value") for m in metrics.get("metrics", [])}
            start = values.get("NavigationStart")
            self.moments.set_navigation_start(start if isinstance(start, float) else None,
                                              origin)
        except Exception:  # the page or its session is gone: the live marks stay unplaced
            return
        finally:
            self._asking = None
        again = self.moments.wants_navigation_start
        if again is not None and again != origin:
            self._asking = asyncio.ensure_future(self._navigation_start(again))

    async def close(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
            with contextlib.suppress(BaseException):
                await self._asking


def _feeder(log: NetworkLog, method: str, watch: _Watch) -> Any:
    def feed(params: dict[str, Any]) -> None:
        log.feed(method, params)
        watch.network(method, params)
        if log.over_budget is not None:
            watch.over.set()
    return feed


def _left(deadline: float, reserve: float = 0.0) -> float:
    return max(deadline - time.monotonic() - reserve, 0.05)


async def _navigate(page: Page, cdp: CDPSession, url: str, capture: Capture,
                    watch: _Watch, deadline: float) -> None:
    budget = _left(deadline, TRACE_RESERVE_S)
    nav = asyncio.ensure_future(page.goto(url, wait_until="load", timeout=budget * 1000))
    stop = asyncio.ensure_future(watch.over.wait())
    done, _ = await asyncio.wait({nav, stop}, timeout=budget + 1,
                                 return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    from playwright.async_api import TimeoutError as LoadTimeout

    timed_out = nav not in done
    if not timed_out:
        try:
            response = nav.result()
        except LoadTimeout:
            timed_out = True
        except Exception as exc:  # Playwright's Error: Chromium's net::ERR_…
            capture.load_error = _first_line(str(exc))
        else:
            if response is not None:
                capture.status = response.status
                capture.final_url = response.url
    if timed_out:
        nav.cancel()
        capture.stopped = capture.network.over_budget or (
            f"the page had not finished loading after {budget:.1f} s")
        with contextlib.suppress(Exception):
            await cdp.send("Page.stopLoading")
        with contextlib.suppress(BaseException):
            await nav


async def _settle(cdp: CDPSession, capture: Capture, watch: _Watch, options: BrowserOptions,
                  deadline: float) -> None:
    """After load, wait until the page is quiet: no request in flight, and no new LCP
    candidate or layout shift heard, for ``options.quiet`` seconds (late shifts and LCP
    candidates arrive after load). At most ``options.settle_max``, and never into the time
    kept for the trace; the page's budget running out ends it too."""
    started = time.monotonic()
    bound = min(options.settle_max, _left(deadline, TRACE_RESERVE_S))
    quiet_ms = round(options.quiet * 1000)
    while True:
        now = time.monotonic()
        calm = now - max(watch.last_network, watch.last_visual, started)
        if watch.over.is_set():
            capture.settle_ended = "the page's budget ran out"
            break
        if watch.log.in_flight == 0 and calm >= options.quiet:
            capture.settle_ended = (f"quiet: no request in flight and no new LCP candidate "
                                    f"or layout shift for {quiet_ms} ms")
            break
        if now - started >= bound:
            open_now = watch.log.in_flight
            capture.settle_ended = (
                f"its bound of {bound:.1f} s" + (f", with {open_now} request"
                                                 f"{'s' if open_now != 1 else ''} still in "
                                                 "flight" if open_now else ""))
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.over.wait(), SETTLE_POLL_S)
    capture.settle_ms = round((time.monotonic() - started) * 1000, 3)
    if capture.network.over_budget:
        capture.stopped = capture.network.over_budget
        with contextlib.suppress(Exception):
            await cdp.send("Page.stopLoading")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "failed"
    return line.removeprefix("Page.goto: ")[:300]


async def _read_trace(cdp: CDPSession, options: BrowserOptions,
                      deadline: float) -> tuple[ParsedTrace, int]:
    """End the trace and read it back, bounded in bytes, events and time."""
    complete: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_complete(params: dict[str, Any]) -> None:
        if not complete.done():
            complete.set_result(params)

    cdp.on("Tracing.tracingComplete", on_complete)
    await cdp.send("Tracing.end")
    info = await asyncio.wait_for(complete, _left(deadline))
    handle = info.get("stream")
    if not handle:
        return ParsedTrace([], 0, "Chromium returned no trace"), 0
    chunks: list[str] = []
    size, cut = 0, None
    try:
        while True:
            if size >= options.max_trace_bytes:
                cut = f"the trace was cut at {options.max_trace_bytes // (1024 * 1024)} MiB"
                break
            piece = await asyncio.wait_for(
                cdp.send("IO.read", {"handle": handle, "size": IO_CHUNK}), _left(deadline))
            data = str(piece.get("data", ""))
            if piece.get("base64Encoded"):
                data = base64.b64decode(data).decode("utf-8", "replace")
            chunks.append(data)
            size += len(data)
            if piece.get("eof"):
                break
    except TimeoutError:
        cut = "the trace's read-back ran out of time"
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(cdp.send("IO.close", {"handle": handle}), 2)
    parsed = parse_trace("".join(chunks), options.max_trace_events)
    if cut is not None:
        parsed.truncated = cut
    return parsed, size


def _name_the_page(capture: Capture) -> None:
    """The document as the trace names it: the last navigation's URL, frame and loader."""
    docs = [r for r in capture.network.records() if r.facts.navigation]
    if docs:
        last = max(docs, key=lambda r: r.start_ns)
        capture.page = PageId(last.facts.url, last.frame_id, last.loader_id)
    if capture.final_url:
        capture.page.url = capture.final_url


async def _describe(cdp: CDPSession, node_ids: set[int], deadline: float) -> dict[int, NodeInfo]:
    """A CSS-like selector (and image URL) for each node the trace named."""
    out: dict[int, NodeInfo] = {}
    for nid in sorted(node_ids)[:50]:
        try:
            obj = await asyncio.wait_for(cdp.send("DOM.resolveNode", {"backendNodeId": nid}),
                                         min(2.0, _left(deadline)))
            object_id = obj["object"]["objectId"]
            res = await asyncio.wait_for(cdp.send("Runtime.callFunctionOn", {
                "objectId": object_id, "functionDeclaration": DESCRIBE,
                "returnByValue": True}), min(2.0, _left(deadline)))
        except Exception:  # the node is gone (removed, navigated away): the debug name stays
            continue
        value = (res.get("result") or {}).get("value")
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            url = value[1] if isinstance(value[1], str) else None
            out[nid] = NodeInfo(value[0][:200], url[:2000] if url else None)
    return out
