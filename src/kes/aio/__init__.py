"""kes for asyncio: the event store and the application with coroutines.

Same semantics, errors and wire format as the threaded API, because the same machinery
does the work: ``AsyncKafkaEventStore`` hands each append to the process's one writer
and is woken from its commit loop, so one event loop can hold thousands of appends in
flight. ``AsyncMemoryEventStore`` is for tests; ``AsyncEventStore(store)`` makes any
threaded backend usable from asyncio (its calls run on a bounded thread pool).

    async with AsyncApplication.from_env() as app:
        await app.save(order)
        order = await app.get(Order, order_id)

``AsyncKafkaEventStore`` loads the Kafka client on first use, as ``kes`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kes.aio.application import AsyncApplication, AsyncRepository
from kes.aio.store import AsyncEventStore, AsyncMemoryEventStore

if TYPE_CHECKING:
    from kes.aio.kafka import AsyncKafkaEventStore


def __getattr__(name: str) -> Any:
    if name == "AsyncKafkaEventStore":
        from kes.aio.kafka import AsyncKafkaEventStore

        return AsyncKafkaEventStore
    raise AttributeError(f"module 'kes.aio' has no attribute {name!r}")


__all__ = [
    "AsyncApplication",
    "AsyncEventStore",
    "AsyncKafkaEventStore",
    "AsyncMemoryEventStore",
    "AsyncRepository",
]
