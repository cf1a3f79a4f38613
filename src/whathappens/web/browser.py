"""The browser phase as ``serve`` runs it: one warm Chromium for every journey, and for each
page a fresh context with a vetting proxy of its own.

Journeys run on threads of their own, each with its own event loop (``on_own_thread``), and a
Playwright browser belongs to the loop that launched it: so the browser lives on a thread of
its own too, with its loop, and a journey hands its page to that loop and waits for it.

Every page goes through a ``VettingProxy`` (whathappens.browser.guard), in local mode as well:
the proxy pins the journey's host to the address the journey used, so one browser serves every
target (Chromium itself resolves nothing: ``hardening_args`` without a target) and the page is
the one the journey measured. In public mode the proxy applies the journey's address policy
(``guard.public_only``, or ``guard.allowing`` with --allow-address) and the page's budget, and
what it refused becomes findings of the browser step ("the page asked for X; refused: …").
The browser is launched with the switches and a proxy that refuses everything, so a context
without its own proxy reaches nothing.

The browser phase itself (``whathappens.browser.phase``) is the capture core's; this module
only finds it (``missing_reason``) and calls it, so serve runs without it until it is there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import importlib
import importlib.util
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from whathappens.browser.guard import PageBudget, VettingProxy, hardening_args

if TYPE_CHECKING:
    from whathappens.journey import Journey

Policy = Callable[[str], str | None]
# Refusals written out one by one in the report; more are counted.
MAX_REFUSALS_SHOWN = 20


def missing_reason() -> str | None:
    """Why serve cannot run the browser phase here, or ``None`` when it can."""
    if importlib.util.find_spec("whathappens.browser.phase") is None:
        return "this build has no browser phase (whathappens.browser.phase)"
    chromium: Any = importlib.import_module("whathappens.browser.chromium")
    why: str | None = chromium.missing_reason(chromium.BrowserOptions())
    return why


def refusal_findings(journey: Journey, proxy: VettingProxy) -> None:
    """What the page asked for and the proxy refused, as findings of the browser step."""
    refused = proxy.refused
    for refusal in refused[:MAX_REFUSALS_SHOWN]:
        journey.note("warning", "browser", str(refusal))
    more = len(refused[MAX_REFUSALS_SHOWN:]) + proxy.unrecorded
    if more:
        journey.note("warning", "browser", f"… and {more} more requests of the page were "
                     "refused")


class PageRunner:
    """The warm browser on its own thread, and the page step of each journey.

    ``policy``: the addresses a page may reach (``None``: any, local mode). ``cafile``: the
    CA the journeys trust (--cacert, the demo internet's), put in the browser's profile.
    """

    def __init__(self, policy: Policy | None, *, cafile: str | None = None,
                 timeout: float = 20.0) -> None:
        self.policy = policy
        self.cafile = cafile
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="browser",
                                        daemon=True)
        self._phase: Any = None
        self._options: Any = None
        self._warm: Any = None
        self._nobody = VettingProxy(lambda address: "no page is being traced now",
                                    budget=PageBudget(max_time=10 * 365 * 86400.0))

    def start(self) -> None:
        """Start the thread, the refuse-all proxy and the warm browser (its launch is paid
        here, before the first visitor)."""
        self._phase = importlib.import_module("whathappens.browser.phase")
        chromium: Any = importlib.import_module("whathappens.browser.chromium")
        self._thread.start()
        self._call(self._nobody.start())
        self._options = chromium.BrowserOptions(
            cafile=self.cafile, timeout=self.timeout,
            extra_args=hardening_args(None, None, self._nobody.url))
        self._warm = self._phase.WarmBrowser(self._options)
        with contextlib.suppress(Exception):  # a browser that cannot start: each page says why
            self._call(self._warm.start())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout + 30)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            if self._warm is not None:
                self._call(self._warm.close())
            self._call(self._nobody.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    async def run(self, journey: Journey) -> None:
        """The browser phase of a finished journey (from the journey's own loop)."""
        future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            self._page(journey), self._loop)
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # the visitor went away: the page stops, its proxy closes
            raise

    async def _page(self, journey: Journey) -> None:
        target = self._phase.journey_target(journey)
        if target is None or journey.error is not None:
            await self._phase.after_journey(journey, self._options, warm=self._warm)
            return
        _, host, address = target
        budget = PageBudget(max_time=self.timeout, max_requests=self._options.max_requests,
                            max_bytes=self._options.max_bytes)
        proxy = VettingProxy(self.policy, pinned={host: [address]}, budget=budget)
        async with proxy:
            options = dataclasses.replace(self._options, proxy=proxy.url)
            await self._phase.after_journey(journey, options, warm=self._warm)
        if self.policy is not None:
            refusal_findings(journey, proxy)
