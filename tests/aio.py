"""Run the (threaded) EventStore contract against an asyncio store: every call of the
contract becomes a coroutine on an event loop of its own thread, so the async store's
own code paths do the work (appends resolved from the writer's commit loop, reads,
subscriptions as async iterators)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from kes import AppendResult, EventStore, NewEvent, RecordedEvent
from kes.aio import AsyncEventStore
from kes.store.base import Expected

T = TypeVar("T")


class EventLoopThread:
    """An asyncio event loop running on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ThroughAsyncio(EventStore):
    """The EventStore interface, served by an :class:`AsyncEventStore`."""

    def __init__(self, store: AsyncEventStore, loop: EventLoopThread | None = None) -> None:
        self.store = store
        self.loop = loop or EventLoopThread()

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        return self.loop.run(
            self.store.append(aggregate_type, aggregate_id, events, expected_version)
        )

    def read_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        return self.loop.run(
            self.store.read_stream(aggregate_type, aggregate_id, from_version, to_version)
        )

    def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        return self.loop.run(self.store.stream_version(aggregate_type, aggregate_id))

    def exists(self, aggregate_type: str, aggregate_id: str) -> bool:
        return self.loop.run(self.store.exists(aggregate_type, aggregate_id))

    def read_all(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> Iterator[RecordedEvent]:
        async def collect() -> list[RecordedEvent]:
            return [e async for e in self.store.read_all(aggregate_type, from_positions)]

        yield from self.loop.run(collect())

    def subscribe(
        self,
        aggregate_type: str,
        from_positions: Mapping[int, int] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[RecordedEvent]:
        events = self.store.subscribe(aggregate_type, from_positions)
        try:
            while stop is None or not stop.is_set():
                step = asyncio.run_coroutine_threadsafe(_next(events), self.loop.loop)
                while True:
                    try:
                        item = step.result(0.1)
                        break
                    except concurrent.futures.TimeoutError:
                        if stop is not None and stop.is_set():
                            step.cancel()
                            return
                if item is None:
                    return
                yield item
        finally:
            with contextlib.suppress(Exception):
                self.loop.run(_aclose(events), timeout=10)

    def close(self) -> None:
        try:
            self.loop.run(self.store.close())
        finally:
            self.loop.close()


async def _next(events: AsyncIterator[RecordedEvent]) -> RecordedEvent | None:
    return await anext(events, None)


async def _aclose(events: AsyncIterator[RecordedEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
