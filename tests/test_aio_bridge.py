"""The hand-over between kes's threads and an event loop (kes/aio/_bridge.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from kes.aio._bridge import Completions, InFlight, iterate_in_thread


def test_appends_finished_on_another_thread_wake_their_tasks_in_one_batch() -> None:
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        completions = Completions(loop)
        flights = [InFlight(completions) for _ in range(500)]
        wakeups = 0
        drain = completions._drain

        def counted() -> None:
            nonlocal wakeups
            wakeups += 1
            drain()

        completions._drain = counted  # type: ignore[method-assign]

        def writer() -> None:  # finishes all of them, as one transaction's answers would
            for flight in flights:
                completions.push(flight)

        threading.Thread(target=writer).start()
        await asyncio.gather(*(f.future for f in flights))
        return wakeups

    assert asyncio.run(scenario()) < 50  # not one wake-up per append


def test_an_unanswered_append_is_woken_once_overdue() -> None:
    async def scenario() -> float:
        completions = Completions(asyncio.get_running_loop())
        never = InFlight(completions)
        answered = InFlight(completions)
        completions.watch(answered, 0.05)
        completions.watch(never, 0.1)
        answered.future.set_result(None)
        started = time.monotonic()
        await asyncio.wait_for(never.future, 5)
        return time.monotonic() - started

    assert 0.1 <= asyncio.run(scenario()) < 3


def test_a_closed_iteration_stops_its_reading_thread_and_bounds_the_buffer() -> None:
    produced = 0
    stopped = threading.Event()

    def endless(stop: threading.Event) -> Iterator[int]:
        nonlocal produced
        try:
            while not stop.is_set():
                produced += 1
                yield produced
        finally:
            stopped.set()

    async def scenario() -> list[int]:
        got = []
        async with contextlib.aclosing(iterate_in_thread(endless, "t", limit=100)) as items:
            async for item in items:
                got.append(item)
                if len(got) == 10:
                    await asyncio.sleep(0.2)  # a slow consumer: the reader must wait
                    assert produced <= 2 * 100 + 1, produced  # a batch taken + a full buffer
                if len(got) == 300:
                    break
        return got

    got = asyncio.run(scenario())
    assert got == list(range(1, 301))
    assert stopped.wait(5), "the reading thread kept going"


def test_an_error_in_the_reading_thread_reaches_the_consumer() -> None:
    def failing(stop: threading.Event) -> Iterator[int]:
        yield 1
        raise ValueError("broken read")

    async def scenario() -> list[int]:
        return [i async for i in iterate_in_thread(failing, "t")]

    with pytest.raises(ValueError, match="broken read"):
        asyncio.run(scenario())
