"""The event store contract for asyncio, and its in-memory backend.

:class:`AsyncEventStore` is the asyncio face of a (thread-safe) :class:`EventStore`: same
arguments, results, errors and wire format, because the work is done by the very same
store. This base class runs every call on a small bounded thread pool, which makes any
backend usable from asyncio; the backends kes ships override the calls that matter with
native ones (:class:`AsyncMemoryEventStore` runs in the loop, ``AsyncKafkaEventStore``
hands appends to the writer's commit loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self, TypeVar

from kes.aio._bridge import iterate_in_thread
from kes.envelope import NewEvent, RecordedEvent
from kes.store.base import AppendResult, EventStore, Expected, check_type
from kes.store.memory import MemoryEventStore

__all__ = ["AsyncEventStore", "AsyncMemoryEventStore"]

T = TypeVar("T")


class AsyncEventStore:
    """Append-only event streams for asyncio code, over the thread-safe store ``sync``.

    ``threads`` bounds the pool that runs the blocking calls (for this class every call;
    for the native subclasses only reads that fetch from Kafka, and first-use set-up).
    ``read_all`` and ``subscribe`` read on a thread of their own each and hand events over
    in batches: at most ``buffer`` wait, and the reading thread waits while they do.
    Use ``async with`` or ``await close()``.
    """

    def __init__(self, store: EventStore, threads: int = 8, buffer: int = 2_000) -> None:
        self.sync = store
        self.buffer = buffer
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="kes-aio")

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the store's bounded thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- the contract ------------------------------------------------------------------

    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        """Append ``events`` atomically if the stream is at ``expected_version``.

        Raises ConcurrencyError (nothing written) when it is not. Cancelling the awaiting
        task cannot take back an append the store already started: the append is all or
        nothing either way, and a retry with the same event ids writes nothing new.
        """
        return await self.run_blocking(
            self.sync.append, aggregate_type, aggregate_id, events, expected_version
        )

    async def read_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        """One aggregate's events in version order, from ``from_version`` to ``to_version``."""
        return await self.run_blocking(
            self.sync.read_stream, aggregate_type, aggregate_id, from_version, to_version
        )

    async def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        """The stream's current version; 0 when it has no events."""
        return await self.run_blocking(self.sync.stream_version, aggregate_type, aggregate_id)

    async def exists(self, aggregate_type: str, aggregate_id: str) -> bool:
        return await self.stream_version(aggregate_type, aggregate_id) > 0

    def read_all(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> AsyncGenerator[RecordedEvent, None]:
        """Every event of a type present when called, in order per partition."""
        check_type(aggregate_type)
        return iterate_in_thread(
            lambda stop: self.sync.read_all(aggregate_type, from_positions),
            f"kes-aio-read-{aggregate_type}",
            self.buffer,
        )

    def subscribe(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> AsyncGenerator[RecordedEvent, None]:
        """Catch up from ``from_positions``, then yield new events live, until the iterator
        is closed (``async with contextlib.aclosing(store.subscribe(...)) as events``)."""
        check_type(aggregate_type)
        return iterate_in_thread(
            lambda stop: self.sync.subscribe(aggregate_type, from_positions, stop),
            f"kes-aio-subscribe-{aggregate_type}",
            self.buffer,
        )

    async def close(self) -> None:
        """Close the store underneath (its Kafka clients and threads)."""
        try:
            await self.run_blocking(self.sync.close)
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncMemoryEventStore(AsyncEventStore):
    """The in-memory store for asyncio tests: every call but ``subscribe`` runs in the loop
    (a dict operation under a lock never blocks)."""

    sync: MemoryEventStore

    def __init__(self, store: MemoryEventStore | None = None, partitions: int = 12) -> None:
        super().__init__(store or MemoryEventStore(partitions), threads=1)

    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        return self.sync.append(aggregate_type, aggregate_id, events, expected_version)

    async def read_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        return self.sync.read_stream(aggregate_type, aggregate_id, from_version, to_version)

    async def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        return self.sync.stream_version(aggregate_type, aggregate_id)

    async def read_all(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> AsyncGenerator[RecordedEvent, None]:
        check_type(aggregate_type)
        for i, event in enumerate(self.sync.read_all(aggregate_type, from_positions)):
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let other tasks run during a long read
            yield event

    async def close(self) -> None:
        self.sync.close()
        self._executor.shutdown(wait=False)
