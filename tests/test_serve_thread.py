"""serve runs each journey on a thread of its own: results, errors and cancellation cross."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from whathappens.web.command import on_own_thread


def test_the_journey_runs_on_its_own_thread_and_its_result_comes_back() -> None:
    async def journey() -> tuple[str, float]:
        t0 = time.thread_time()
        sum(range(200_000))  # a little CPU, counted on this thread's clock
        return threading.current_thread().name, time.thread_time() - t0

    async def page() -> tuple[str, str, float]:
        name, cpu = await on_own_thread(journey())
        return threading.current_thread().name, name, cpu

    page_thread, journey_thread, cpu = asyncio.run(page())
    assert journey_thread == "journey" != page_thread
    assert cpu > 0


def test_an_error_of_the_journey_reaches_the_page() -> None:
    async def journey() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(on_own_thread(journey()))


def test_a_client_that_goes_away_cancels_the_journey_on_its_thread() -> None:
    cleaned = threading.Event()

    async def journey() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()  # e.g. the runner closing its connections

    async def page() -> None:
        task = asyncio.create_task(on_own_thread(journey()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(page())
    assert cleaned.wait(5)
