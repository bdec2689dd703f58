"""The one seam between the async server and the event store.

Appends, stream reads and versions go through :class:`kes.aio.AsyncKafkaEventStore` over
the server's :class:`KafkaEventStore`: an append is handed to the writer's commit loop and
awaited without holding a thread; fetching a stream's events runs on the async store's
bounded pool (``store_threads``). Every other call into Kafka (pages of a type, positions,
operator views) runs here on worker threads with bounded concurrency.

Events leave the gateway with their personal fields decrypted by ``keys`` (placeholders
once a subject is forgotten); a server without a key-encryption key returns them as
stored, encrypted.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from kes.aio.kafka import AsyncKafkaEventStore
from kes.envelope import NewEvent, RecordedEvent
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import end_offsets
from kes.kafka.topics import Topics
from kes.shredding.errors import KeyEncryptionKeyError
from kes.store.base import AppendResult, Expected, check_type
from kes.store.kafka.store import KafkaEventStore

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

__all__ = ["Gateway", "TypeSummary"]

T = TypeVar("T")


@dataclass(frozen=True)
class TypeSummary:
    """An aggregate type's event topic: its partitions and how many offsets its log spans
    (events plus transaction markers: an upper bound on the event count, read in one
    request per partition instead of a scan)."""

    aggregate_type: str
    topic: str
    partitions: int
    offsets: int


class Gateway:
    """Async access to one :class:`KafkaEventStore` (and the Kafka it uses)."""

    def __init__(
        self,
        store: KafkaEventStore,
        store_threads: int = 64,
        catch_up_threads: int = 16,
        keys: KeyRing | None = None,
    ) -> None:
        self.store = store
        self.aio = AsyncKafkaEventStore(store=store, threads=store_threads)
        self.keys = keys
        self.config: KafkaConfig = store.config
        self._topics = Topics(self.config)
        self._calls = anyio.CapacityLimiter(store_threads)
        self._catch_ups = anyio.CapacityLimiter(catch_up_threads)
        self._partitions: dict[str, int] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._calls)

    def reveal(self, event: RecordedEvent) -> RecordedEvent:
        """``event`` with its personal fields decrypted (blocking: may read the key topic)."""
        if not event.envelope.personal or self.keys is None:
            return event
        try:
            return RecordedEvent(self.keys.reveal(event.envelope), event.position)
        except KeyEncryptionKeyError:
            return event  # no KEK here: served as stored, encrypted

    def _read_stream(
        self, aggregate_type: str, aggregate_id: str, from_version: int, to_version: int | None
    ) -> list[RecordedEvent]:
        events = self.store.read_stream(aggregate_type, aggregate_id, from_version, to_version)
        return [self.reveal(e) for e in events]

    # ---- the event store -----------------------------------------------------------

    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        return await self.aio.append(aggregate_type, aggregate_id, events, expected_version)

    async def read_stream(
        self, aggregate_type: str, aggregate_id: str, from_version: int, to_version: int | None
    ) -> list[RecordedEvent]:
        events = await self.aio.read_stream(aggregate_type, aggregate_id, from_version, to_version)
        return [self.reveal(e) for e in events]

    async def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        return await self.aio.stream_version(aggregate_type, aggregate_id)

    async def read_page(
        self,
        aggregate_type: str,
        positions: Mapping[int, int],
        limit: int,
        keep: Callable[[RecordedEvent], bool] | None = None,
        max_scanned: int = 100_000,
    ) -> tuple[list[RecordedEvent], dict[int, int], bool]:
        """Up to ``limit`` events of a type from ``positions`` (next offset per partition),
        those ``keep`` accepts; returns (events, positions after them, reached the end)."""

        def page() -> tuple[list[RecordedEvent], dict[int, int], bool]:
            after = dict(positions)
            out: list[RecordedEvent] = []
            scanned = 0
            with _closing(self.store.read_all(aggregate_type, after or None)) as it:
                for raw in it:
                    event = self.reveal(raw)
                    after[event.position.partition] = event.position.offset + 1
                    scanned += 1
                    if keep is None or keep(event):
                        out.append(event)
                    if len(out) >= limit or scanned >= max_scanned:
                        return out, after, False
            return out, after, True

        return await self._run(page)

    # ---- positions and topics ------------------------------------------------------

    async def partitions(self, aggregate_type: str) -> int | None:
        """The partitions of a type's event topic; None when it does not exist."""
        known = self._partitions.get(aggregate_type)
        if known is not None:
            return known
        check_type(aggregate_type)
        info = await self._run(self._topics.describe, self.config.topic(aggregate_type))
        if info is None:
            return None
        self._partitions[aggregate_type] = info.partitions
        return info.partitions

    async def end_offsets(self, aggregate_type: str) -> dict[int, int]:
        """Next offset per partition a ``read_committed`` reader would reach now (the
        topic is created when missing, as ``subscribe`` does)."""

        def ends() -> dict[int, int]:
            info = self._topics.ensure_event_topic(aggregate_type)
            self._partitions[aggregate_type] = info.partitions
            return end_offsets(self.config, info.name, info.partitions)

        return await self._run(ends)

    async def types(self) -> list[TypeSummary]:
        """Every aggregate type of this namespace with the size of its log."""

        def summaries() -> list[TypeSummary]:
            out = []
            prefix = self.config.events_prefix
            for info in self._topics.event_topics():
                ends = end_offsets(self.config, info.name, info.partitions)
                name = info.name[len(prefix) :]
                out.append(TypeSummary(name, info.name, info.partitions, sum(ends.values())))
            return out

        return await self._run(summaries)

    async def ping(self) -> int:
        """Ask Kafka for its brokers (raises StoreUnavailableError when it does not answer)."""
        return await self._run(self._topics.broker_count)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Any other blocking call (registry, operator views) on the same bounded threads."""
        return await self._run(fn, *args)

    # ---- following a type ----------------------------------------------------------

    def follow(
        self, aggregate_type: str, positions: Mapping[int, int], stop: threading.Event
    ) -> Iterator[RecordedEvent]:
        """Blocking: events from ``positions`` on, live, until ``stop`` (for one thread
        that feeds the shared tail)."""
        return map(self.reveal, self.store.subscribe(aggregate_type, dict(positions), stop))

    async def catch_up(
        self,
        aggregate_type: str,
        positions: Mapping[int, int],
        prepare: Callable[[RecordedEvent], T],
        deliver: Callable[[list[T]], Coroutine[Any, Any, None]],
        size: Callable[[T], int] = lambda _: 0,
        batch: int = 500,
        batch_bytes: int = 256 * 1024,
    ) -> None:
        """Read a type's history from ``positions`` to the end it has now, handing
        batches of at most ``batch`` events or about ``batch_bytes`` (by ``size``; each event
        through ``prepare``, on the reading thread) to ``deliver``
        (awaited, so a slow consumer slows the read, never buffers it). Runs on its own
        bounded pool so catch-ups never starve appends."""
        stop = threading.Event()

        def read() -> None:
            pending: list[T] = []
            pending_bytes = 0
            with _closing(self.store.read_all(aggregate_type, dict(positions))) as it:
                for event in it:
                    if stop.is_set():
                        return
                    item = prepare(self.reveal(event))
                    pending.append(item)
                    pending_bytes += size(item)
                    if len(pending) >= batch or pending_bytes >= batch_bytes:
                        anyio.from_thread.run(deliver, pending)
                        pending, pending_bytes = [], 0
            if pending and not stop.is_set():
                anyio.from_thread.run(deliver, pending)

        try:
            await anyio.to_thread.run_sync(read, limiter=self._catch_ups, abandon_on_cancel=True)
        finally:
            stop.set()


@contextlib.contextmanager
def _closing(events: Iterator[RecordedEvent]) -> Iterator[Iterator[RecordedEvent]]:
    """Close a reading generator (and so its Kafka consumer) when leaving early."""
    try:
        yield events
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
