"""Applications and repositories for asyncio: :class:`kes.Application` with coroutines.

Every decision (argument checks, the cache, which snapshot serves a load, an append's
expected version, when to snapshot) is :class:`kes.application.RepositoryCore`'s, shared
with the threaded repository; this module only awaits the store. Snapshot stores are
threaded (``get`` is a dict lookup, ``put`` a confirmed produce): their calls run on the
event store's bounded thread pool.
"""

from __future__ import annotations

import inspect
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

from kes.aio.store import AsyncEventStore
from kes.application import EventValidator, RepositoryCore, retry_on_conflict
from kes.domain import Aggregate
from kes.envelope import now
from kes.errors import AggregateNotFoundError, ConcurrencyError, KesError
from kes.snapshots import Snapshot, SnapshotStore
from kes.store.base import AppendResult

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

__all__ = ["AsyncApplication", "AsyncRepository"]

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")


class AsyncRepository(RepositoryCore[A]):
    """Loads and saves aggregates of one class; see :class:`kes.Repository`."""

    def __init__(
        self,
        store: AsyncEventStore,
        aggregate_cls: type[A],
        snapshots: SnapshotStore | None = None,
        snapshot_every: int | None = None,
        cache_size: int = 1000,
        clock: Callable[[], datetime] = now,
        validator: EventValidator | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        super().__init__(
            aggregate_cls, snapshots, snapshot_every, cache_size, clock, validator, keys
        )
        self.store = store

    async def get(
        self, aggregate_id: str | uuid.UUID, version: int | None = None, at: datetime | None = None
    ) -> A:
        """The aggregate now, after its first ``version`` events, or as of time ``at``.

        Raises AggregateNotFoundError when no such state exists.
        """
        agg_id = str(aggregate_id)
        self._check_get(version, at)
        if version is not None or at is not None:
            return await self._load(agg_id, version, at)
        agg = self._cached_copy(agg_id)
        if agg is not None:
            new = await self.store.read_stream(self.aggregate_type, agg_id, agg.version + 1)
            return self._caught_up(agg, new)
        agg = await self._load(agg_id, None, None)
        self._remember(agg._kes_clone())
        return agg

    async def contains(self, aggregate_id: str | uuid.UUID) -> bool:
        """Whether the aggregate has events."""
        return await self.store.exists(self.aggregate_type, str(aggregate_id))

    async def _load(self, agg_id: str, version: int | None, at: datetime | None) -> A:
        agg: A | None = None
        if self.snapshots is not None:
            try:
                snap: Snapshot | None = await self.store.run_blocking(
                    self.snapshots.get, self.aggregate_type, agg_id
                )
            except KesError as exc:
                self._snapshot_failed(agg_id, exc)
                snap = None
            agg = self._start_from(snap, version, at)
        start = 1 if agg is None else agg.version + 1
        events = await self.store.read_stream(self.aggregate_type, agg_id, start, version)
        found = self._replayed(agg, events, version, at)
        if found is None:
            current = await self.store.stream_version(self.aggregate_type, agg_id)
            raise AggregateNotFoundError(self._not_found_message(agg_id, version, at, current))
        return found

    async def save(
        self,
        aggregate: A,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append the aggregate's pending events; returns its new version.

        Raises ConcurrencyError (nothing written, cache entry dropped) when the stream
        moved since the aggregate was loaded. A command retried with the same
        ``idempotency_key`` (on the state it first ran on) writes nothing new.
        """
        return (await self.append(aggregate, metadata, idempotency_key)).version

    async def append(
        self,
        aggregate: A,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """:meth:`save`, returning the store's AppendResult."""
        if not aggregate._kes_pending:
            return AppendResult(aggregate.version, [], written=False)
        events, expected, base = self._to_append(aggregate, metadata, idempotency_key)
        try:
            result = await self.store.append(self.aggregate_type, aggregate.id, events, expected)
        except ConcurrencyError:
            self.forget(aggregate.id)
            raise
        snapshot = self._saved(aggregate, events, base, result)
        if snapshot is not None and self.snapshots is not None:
            try:
                await self.store.run_blocking(self.snapshots.put, snapshot)
            except KesError as exc:
                self._snapshot_not_saved(aggregate, exc)
        return result


class AsyncApplication:
    """Entry point of asyncio user code; see :class:`kes.Application`.

    ``await app.save(order)``, ``await app.get(Order, id)``,
    ``await app.update(Order, id, lambda o: o.pay(amount))``.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        snapshots: SnapshotStore | None = None,
        snapshot_every: Mapping[str, int] | None = None,
        cache_size: int = 1000,
        clock: Callable[[], datetime] = now,
        validator: EventValidator | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.snapshots = snapshots
        self.snapshot_every = dict(snapshot_every or {})
        self.cache_size = cache_size
        self.clock = clock
        self.validator = validator
        self._repositories: dict[type[Aggregate], AsyncRepository[Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls,
        *,
        snapshots: bool = True,
        snapshot_every: Mapping[str, int] | None = None,
        cache_size: int = 1000,
        **overrides: Any,
    ) -> AsyncApplication:
        """An application on Kafka configured from the environment (``KES_*`` variables;
        ``overrides`` are KafkaConfig fields), with a ``KafkaSnapshotStore`` unless
        ``snapshots=False``. Nothing connects before first use."""
        from kes.aio.kafka import AsyncKafkaEventStore
        from kes.store.kafka import KafkaConfig, KafkaSnapshotStore

        config = KafkaConfig.from_env(**overrides)
        return cls(
            AsyncKafkaEventStore(config),
            snapshots=KafkaSnapshotStore(config) if snapshots else None,
            snapshot_every=snapshot_every,
            cache_size=cache_size,
        )

    async def close(self) -> None:
        """Close the snapshot store and the event store."""
        try:
            if self.snapshots is not None:
                await self.store.run_blocking(self.snapshots.close)
        finally:
            await self.store.close()

    async def __aenter__(self) -> AsyncApplication:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def repository(self, cls: type[A]) -> AsyncRepository[A]:
        """The (single) repository of aggregate class ``cls``."""
        with self._lock:
            repo = self._repositories.get(cls)
            if repo is None:
                repo = AsyncRepository(
                    self.store,
                    cls,
                    snapshots=self.snapshots,
                    snapshot_every=self.snapshot_every.get(cls.aggregate_type),
                    cache_size=self.cache_size,
                    clock=self.clock,
                    validator=self.validator,
                    keys=self.keys,
                )
                self._repositories[cls] = repo
            return repo

    async def get(
        self,
        cls: type[A],
        aggregate_id: str | uuid.UUID,
        version: int | None = None,
        at: datetime | None = None,
    ) -> A:
        """Load an aggregate; see :meth:`AsyncRepository.get`."""
        return await self.repository(cls).get(aggregate_id, version=version, at=at)

    async def save(
        self,
        *aggregates: Aggregate,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> list[AppendResult]:
        """Append each aggregate's pending events, one after the other: atomic per
        aggregate, not across them. See :meth:`kes.Application.save`."""
        return [
            await self.repository(type(agg)).append(agg, metadata, idempotency_key)
            for agg in aggregates
        ]

    @overload
    async def update(
        self,
        cls: type[A],
        aggregate_id: str | uuid.UUID,
        command: Callable[[A], Awaitable[T]],
        attempts: int = 5,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> T: ...
    @overload
    async def update(
        self,
        cls: type[A],
        aggregate_id: str | uuid.UUID,
        command: Callable[[A], T],
        attempts: int = 5,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> T: ...
    async def update(
        self,
        cls: type[A],
        aggregate_id: str | uuid.UUID,
        command: Callable[[A], Any],
        attempts: int = 5,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Load, run ``command(aggregate)`` (a function or a coroutine function), save; on
        a conflict reload and run it again, up to ``attempts`` tries. Returns what
        ``command`` returned. ``idempotency_key``: see :meth:`kes.Application.update`."""

        @retry_on_conflict(attempts)
        async def once() -> Any:
            agg = await self.get(cls, aggregate_id)
            result = command(agg)
            if inspect.isawaitable(result):
                result = await result
            await self.save(agg, metadata=metadata, idempotency_key=idempotency_key)
            return result

        return await once()
