"""The browser phase behind the vetting proxy: how a page is loaded when its addresses are
vetted (``serve --public``, and ``whathappens URL --only-public --browser``).

The page gets one way out, our proxy (``browser.guard.VettingProxy``), which pins the journey's
host to the address the journey used and applies the journey's address policy to everything
else the page asks for; Chromium resolves no name itself and sends no UDP of its own
(``hardening_args``). What the proxy refused becomes findings of the browser step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from whathappens.browser.guard import PageBudget, VettingProxy, hardening_args

if TYPE_CHECKING:
    from whathappens.browser.capture import WarmBrowser
    from whathappens.browser.chromium import BrowserOptions
    from whathappens.journey import Journey

Policy = Callable[[str], str | None]
# Refusals written out one by one in the report; more are counted.
MAX_REFUSALS_SHOWN = 20


def refusal_findings(journey: Journey, proxy: VettingProxy) -> None:
    """What the page asked for and the proxy refused, as findings of the browser step."""
    refused = proxy.refused
    for refusal in refused[:MAX_REFUSALS_SHOWN]:
        journey.note("warning", "browser", str(refusal))
    more = len(refused[MAX_REFUSALS_SHOWN:]) + proxy.unrecorded
    if more:
        journey.note("warning", "browser", f"… and {more} more requests of the page were "
                     "refused")


async def guarded_after_journey(journey: Journey, options: BrowserOptions,
                                policy: Policy | None, *,
                                warm: WarmBrowser | None = None) -> None:
    """``phase.after_journey`` with every request of the page through a vetting proxy.

    ``policy`` None: the proxy only pins and bounds (local mode). ``options.extra_args``
    should already carry ``hardening_args`` when ``warm`` is given (the warm browser was
    launched with them); a cold launch gets them here.
    """
    from whathappens.browser.phase import after_journey, journey_target

    target = journey_target(journey)
    if target is None or journey.error is not None:
        await after_journey(journey, options, warm=warm)
        return
    _, host, address = target
    budget = PageBudget(max_time=options.timeout, max_requests=options.max_requests,
                        max_bytes=options.max_bytes)
    proxy = VettingProxy(policy, pinned={host: [address]}, budget=budget)
    async with proxy:
        extra = options.extra_args if warm is not None else [
            *options.extra_args, *hardening_args(None, None, proxy.url)]
        await after_journey(journey, dataclasses.replace(options, proxy=proxy.url,
                                                         extra_args=extra), warm=warm)
    if policy is not None:
        refusal_findings(journey, proxy)
