"""The hand-over between kes's threads and an event loop (kes/aio/_bridge.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import cast

import pytest

from kes import ANY, NewEvent
from kes.aio._bridge import Completions, InFlight, iterate_in_thread
from kes.store.kafka._admission import AppendRequest
from kes.store.kafka._partition import OwnedPartition
from kes.store.kafka._writer import Writer


class FakeWriter:
    """Records what reaches the writer, and in how many hand-overs."""

    def __init__(self) -> None:
        self.handovers: list[list[AppendRequest]] = []

    def submit_many(self, pending: list[tuple[OwnedPartition, AppendRequest]]) -> None:
        self.handovers.append([r for _, r in pending])

    def withdraw(self, request: AppendRequest) -> bool:
        return False


def completions(loop: asyncio.AbstractEventLoop, writer: FakeWriter | None = None) -> Completions:
    return Completions(loop, cast(Writer, writer or FakeWriter()))


def request(n: int) -> AppendRequest:
    return AppendRequest("User", f"u{n}", [NewEvent(event_type="E", payload={})], ANY, 1e12)


def test_appends_finished_on_another_thread_wake_their_tasks_in_one_batch() -> None:
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        bridge = completions(loop)
        flights = [InFlight(bridge) for _ in range(500)]
        wakeups = 0
        drain = bridge._drain

        def counted() -> None:
            nonlocal wakeups
            wakeups += 1
            drain()

        bridge._drain = counted  # type: ignore[method-assign]

        def writer() -> None:  # finishes all of them, as one transaction's answers would
            for flight in flights:
                bridge.push(flight)

        threading.Thread(target=writer).start()
        await asyncio.gather(*(f.future for f in flights))
        return wakeups

    assert asyncio.run(scenario()) < 50  # not one wake-up per append


def test_appends_submitted_in_one_turn_of_the_loop_reach_the_writer_together() -> None:
    writer = FakeWriter()

    async def scenario() -> None:
        bridge = completions(asyncio.get_running_loop(), writer)
        owned = cast(OwnedPartition, None)
        requests = [request(n) for n in range(100)]
        for r in requests:
            bridge.submit(owned, r)
        assert bridge.withdraw(requests[7])  # not handed over yet: taken back
        assert writer.handovers == []
        await asyncio.sleep(0)  # the end of this turn
        assert writer.handovers == [[r for r in requests if r is not requests[7]]]
        assert not bridge.withdraw(requests[8])  # the writer has it now

    asyncio.run(scenario())


def test_an_unanswered_append_is_woken_once_overdue() -> None:
    async def scenario() -> float:
        bridge = completions(asyncio.get_running_loop())
        never = InFlight(bridge)
        answered = InFlight(bridge)
        bridge.watch(answered, 0.05)
        bridge.watch(never, 0.1)
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
