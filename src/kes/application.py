"""Applications and repositories: load aggregates from the store, save their events.

``Application.save(a, b)`` appends each aggregate's events in its own append, with
``expected_version`` = the version it was loaded at. Each append is atomic, but a save
of several aggregates is **not** atomic across them: aggregates live in different Kafka
partitions, which no single write spans. Coordinate multi-aggregate changes with a
process manager (see ``examples/bank/transfers.py``) and idempotent commands.

Personal fields (``kes.personal``) are encrypted here, after validation and before the
store sees them, with each data subject's key from the application's ``keys``
(``kes.shredding``); loads decrypt them. ``Application.forget(subject)`` deletes the
subject's keys: from then on its fields load as their placeholders.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import takewhile
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import msgspec

from kes.domain import Aggregate
from kes.envelope import NewEvent, RecordedEvent, now
from kes.errors import (
    AggregateNotFoundError,
    ConcurrencyError,
    InvalidInputError,
    KesError,
    StreamExistsError,
)
from kes.shredding.errors import KeyEncryptionKeyError
from kes.shredding.subject import DATA_SUBJECT, DataSubject
from kes.snapshots import Snapshot, SnapshotStore, restore, take_snapshot
from kes.store.base import NO_STREAM, AppendResult, EventStore, Expected, check_stream

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

__all__ = [
    "Application",
    "EventValidator",
    "Repository",
    "RepositoryCore",
    "idempotent_event_id",
    "retry_on_conflict",
]

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger(__name__)

#: The retry policy of conflicting commands (``Application.update``, ``retry_on_conflict``):
#: this many tries, pausing ``CONFLICT_BACKOFF_S`` before the second, doubled before each
#: further one, each pause drawn between half and all of that (jitter: contending
#: processes spread out instead of colliding again).
CONFLICT_ATTEMPTS = 5
CONFLICT_BACKOFF_S = 0.01

# Called with the events of one append before anything is written; raises to refuse them
# (e.g. kes.schemas.SchemaValidator checks payloads against their registered schemas).
EventValidator = Callable[[type[Aggregate], Sequence[NewEvent]], None]


_IDEMPOTENCY = uuid.UUID("5c1b3f44-9f6e-4b7e-8f2a-6b8c2f1d0e15")


def idempotent_event_id(aggregate_type: str, aggregate_id: str, key: str, index: int) -> str:
    """The id of the ``index``-th event a command with idempotency ``key`` records for an
    aggregate: the same command retried with the same key records the same ids, which the
    store recognises as already written (it writes nothing and answers as before)."""
    return str(uuid.uuid5(_IDEMPOTENCY, f"{aggregate_type}/{aggregate_id}/{key}/{index}"))


class RepositoryCore(Generic[A]):
    """What a repository decides, whatever does its I/O: argument checks, the cache,
    which snapshot serves a load, an append's arguments, what a save leaves behind.
    :class:`Repository` does the I/O with threads, ``kes.aio.AsyncRepository`` with
    asyncio; both are this class plus their store calls."""

    def __init__(
        self,
        aggregate_cls: type[A],
        snapshots: SnapshotStore | None = None,
        snapshot_every: int | None = None,
        cache_size: int = 1000,
        clock: Callable[[], datetime] = now,
        validator: EventValidator | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        every = snapshot_every if snapshot_every is not None else aggregate_cls.snapshot_every
        if every is not None and every < 1:
            raise InvalidInputError(f"snapshot_every must be >= 1 or None, got {every}.")
        self.keys = keys
        self._personal = aggregate_cls.personal_fields()
        if self._personal and (keys is None or keys.kek is None):
            declared = ", ".join(
                f"{name}.{field}" for name, p in self._personal.items() for field in sorted(p.names)
            )
            raise KeyEncryptionKeyError(
                f"{aggregate_cls.__name__} declares personal fields ({declared}), and "
                + (
                    "this application has no key ring: pass keys=KafkaKeyRing(...) or "
                    "MemoryKeyRing(...) to Application."
                    if keys is None
                    else "no key-encryption key is configured: set KES_KEK_FILE (a file with "
                    "32 random bytes, e.g. from `openssl rand -base64 32`) or KES_KEK."
                )
                + " kes never stores personal fields in plaintext."
            )
        self.aggregate_cls = aggregate_cls
        self.aggregate_type = aggregate_cls.aggregate_type
        self.snapshots = snapshots
        self.snapshot_every = every if snapshots is not None else None
        self.cache_size = cache_size
        self.clock = clock
        self.validator = validator
        self._cache: OrderedDict[str, A] = OrderedDict()
        self._lock = threading.Lock()

    # ---- loading ------------------------------------------------------------------

    @staticmethod
    def _check_get(version: int | None, at: datetime | None) -> None:
        if version is not None and (isinstance(version, bool) or version < 1):
            raise InvalidInputError(f"version must be an int >= 1 or None, got {version!r}.")
        if at is not None and at.tzinfo is None:
            raise InvalidInputError(f"at must be timezone-aware, got {at!r}.")

    def _cached_copy(self, agg_id: str) -> A | None:
        """A copy of the cached aggregate (not yet caught up), or None."""
        with self._lock:
            cached = self._cache.get(agg_id)
            if cached is None:
                return None
            self._cache.move_to_end(agg_id)
            return cached._kes_clone()

    def _caught_up(self, agg: A, new: list[RecordedEvent]) -> A:
        """``agg`` (a cache copy) with the events appended since it was cached."""
        if new:
            self.aggregate_cls.replay(self._reveal(new), into=agg)
            self._remember(agg._kes_clone())
        return agg

    def _start_from(
        self, snap: Snapshot | None, version: int | None, at: datetime | None
    ) -> A | None:
        """The aggregate a snapshot gives for a load of ``version`` / ``at``, if it serves."""
        if snap is not None and snap.sealed:
            snap = self._open(snap)
        if (
            snap is not None
            and (version is None or snap.version <= version)
            and (at is None or (snap.timestamp is not None and snap.timestamp <= at))
        ):
            return restore(self.aggregate_cls, snap)
        return None

    def _snapshot_failed(self, agg_id: str, exc: KesError) -> None:
        # snapshots are a cache: the events alone suffice
        log.warning("snapshot of %s %r unavailable: %s", self.aggregate_type, agg_id, exc)

    def _replayed(
        self,
        agg: A | None,
        events: Iterable[RecordedEvent],
        version: int | None,
        at: datetime | None,
    ) -> A | None:
        """``agg`` (or a new aggregate) after ``events``; None when no such state exists."""
        events = self._reveal(list(events))
        if at is not None:
            events = takewhile(lambda e: e.timestamp <= at, events)
        agg = self.aggregate_cls.replay(events, into=agg)
        if agg is None or (version is not None and agg.version < version):
            return None
        return agg

    def _reveal(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The events with their personal fields decrypted (or placeholders)."""
        revealed = events
        for i, e in enumerate(events):
            if e.envelope.personal:
                if self.keys is None:
                    raise KeyEncryptionKeyError(
                        f"{self.aggregate_type} {e.aggregate_id!r} v{e.version} has personal "
                        "fields, and this application has no key ring to decrypt them: pass "
                        "keys= to Application (from_env makes one from KES_KEK_FILE)."
                    )
                if revealed is events:
                    revealed = list(events)
                revealed[i] = RecordedEvent(self.keys.reveal(e.envelope), e.position)
        return revealed

    def _open(self, snap: Snapshot) -> Snapshot | None:
        """A sealed snapshot opened; None (and deleted) when a subject is forgotten."""
        if self.keys is None:
            return None
        try:
            opened = self.keys.open_snapshot(snap)
        except KesError as exc:  # the events say it louder, if it matters
            log.warning(
                "sealed snapshot of %s %r unusable: %s", snap.aggregate_type, snap.aggregate_id, exc
            )
            return None
        if opened is None and self.snapshots is not None:
            log.info(
                "snapshot of %s %r holds a forgotten subject: deleted",
                snap.aggregate_type,
                snap.aggregate_id,
            )
            try:
                self.snapshots.delete(snap.aggregate_type, snap.aggregate_id)
            except KesError as exc:
                log.warning(
                    "deleting the snapshot of %s %r failed: %s",
                    snap.aggregate_type,
                    snap.aggregate_id,
                    exc,
                )
        return opened

    def _not_found_message(
        self, agg_id: str, version: int | None, at: datetime | None, current: int
    ) -> str:
        what = f"{self.aggregate_type} {agg_id!r}"
        if current == 0:
            return f"{what} does not exist (no events); create it first or check the id."
        if version is not None:
            return f"{what} is at version {current}; it has no version {version}."
        return f"{what} did not exist yet at {at}; its first event is later."

    # ---- saving -------------------------------------------------------------------

    def _to_append(
        self, aggregate: A, metadata: Mapping[str, str] | None, idempotency_key: str | None = None
    ) -> tuple[list[NewEvent], Expected, int]:
        """(events to append, expected version, version loaded at); validated. With an
        ``idempotency_key`` the event ids derive from it (see :func:`idempotent_event_id`)."""
        pending = aggregate._kes_pending
        base = aggregate.version - len(pending)
        expected: Expected = NO_STREAM if base == 0 else base
        stamp = self.clock()
        extra = dict(metadata or {})
        events = [
            msgspec.structs.replace(
                e, timestamp=e.timestamp or stamp, metadata={**e.metadata, **extra}
            )
            for e in pending
        ]
        if idempotency_key is not None:
            events = [
                msgspec.structs.replace(
                    e,
                    event_id=idempotent_event_id(
                        self.aggregate_type, aggregate.id, idempotency_key, i
                    ),
                )
                for i, e in enumerate(events)
            ]
        if self.validator is not None:
            self.validator(self.aggregate_cls, events)  # raises: nothing written
        personal = self._personal
        if personal and self.keys is not None:  # encrypted after validation, before writing
            keys = self.keys
            events = [
                keys.seal(personal[e.event_type], aggregate.id, e)
                if e.event_type in personal
                else e
                for e in events
            ]
        return events, expected, base

    def _saved(
        self, aggregate: A, events: list[NewEvent], base: int, result: AppendResult
    ) -> Snapshot | None:
        """Record that ``events`` were stored; the snapshot to put now, if one is due."""
        aggregate._kes_pending = []
        if result.version != aggregate.version:
            # A retry recognised as already stored, at other versions than this object
            # counted on (it ran on a newer state): the object is not the stored state.
            self.forget(aggregate.id)
            return None
        latest = max(e.timestamp for e in events if e.timestamp is not None)
        if aggregate._kes_timestamp is None or latest > aggregate._kes_timestamp:
            aggregate._kes_timestamp = latest
        self._remember(aggregate._kes_clone())
        every = self.snapshot_every
        if (
            every is not None
            and self.snapshots is not None
            and base // every != (aggregate.version // every)
        ):
            try:
                last = result.positions[-1] if result.positions else None
                snapshot = take_snapshot(aggregate, last)
                if aggregate.data_subjects:
                    if self.keys is None:
                        raise KeyEncryptionKeyError("no key ring to seal personal data with")
                    snapshot = self.keys.seal_snapshot(snapshot, aggregate.data_subjects)
                return snapshot
            except KesError as exc:
                self._snapshot_not_saved(aggregate, exc)
        return None

    def _snapshot_not_saved(self, aggregate: A, exc: KesError) -> None:
        # the events are saved; a missing snapshot only slows loads
        log.warning("snapshot of %s %r failed: %s", self.aggregate_type, aggregate.id, exc)

    # ---- the cache ----------------------------------------------------------------

    def forget(self, aggregate_id: str) -> None:
        """Drop an aggregate from the cache."""
        with self._lock:
            self._cache.pop(aggregate_id, None)

    def evict_subject(self, subject: str) -> None:
        """Drop every cached aggregate holding personal data of ``subject``."""
        with self._lock:
            for agg_id in [k for k, a in self._cache.items() if subject in a.data_subjects]:
                del self._cache[agg_id]

    def _remember(self, aggregate: A) -> None:
        if self.cache_size <= 0:
            return
        subjects = aggregate.data_subjects
        if subjects and self.keys is not None and any(map(self.keys.is_forgotten, subjects)):
            return  # a copy loaded before its subject was forgotten: never cached again
        with self._lock:
            held = self._cache.get(aggregate.id)
            if held is not None and held.version > aggregate.version:
                return  # a newer state is cached already
            self._cache[aggregate.id] = aggregate
            self._cache.move_to_end(aggregate.id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


class Repository(RepositoryCore[A]):
    """Loads and saves aggregates of one class, with snapshots and an LRU cache.

    The cache holds current states only and hands out copies, so callers cannot
    corrupt it. A cache hit still reads any events appended since (normally none),
    so a load always returns the store's current state.
    """

    def __init__(
        self,
        store: EventStore,
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

    def get(
        self, aggregate_id: str | uuid.UUID, version: int | None = None, at: datetime | None = None
    ) -> A:
        """The aggregate now, after its first ``version`` events, or as of time ``at``.

        ``at`` selects the events up to the last one stamped at or before it.
        Raises AggregateNotFoundError when no such state exists.
        """
        agg_id = str(aggregate_id)
        self._check_get(version, at)
        if version is not None or at is not None:
            return self._load(agg_id, version, at)
        hit = self._cached(agg_id)
        if hit is not None:
            return hit
        agg = self._load(agg_id, None, None)
        self._remember(agg._kes_clone())
        return agg

    def _cached(self, agg_id: str) -> A | None:
        """A copy of the cached aggregate, caught up with events appended since."""
        agg = self._cached_copy(agg_id)
        if agg is None:
            return None
        return self._caught_up(
            agg, self.store.read_stream(self.aggregate_type, agg_id, agg.version + 1)
        )

    def __contains__(self, aggregate_id: object) -> bool:
        return isinstance(aggregate_id, str | uuid.UUID) and self.store.exists(
            self.aggregate_type, str(aggregate_id)
        )

    def _load(self, agg_id: str, version: int | None, at: datetime | None) -> A:
        agg: A | None = None
        if self.snapshots is not None:
            try:
                snap = self.snapshots.get(self.aggregate_type, agg_id)
            except KesError as exc:
                self._snapshot_failed(agg_id, exc)
                snap = None
            agg = self._start_from(snap, version, at)
        start = 1 if agg is None else agg.version + 1
        events = self.store.read_stream(self.aggregate_type, agg_id, start, version)
        found = self._replayed(agg, events, version, at)
        if found is None:
            current = self.store.stream_version(self.aggregate_type, agg_id)
            raise AggregateNotFoundError(self._not_found_message(agg_id, version, at, current))
        return found

    def save(
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
        return self.append(aggregate, metadata, idempotency_key).version

    def append(
        self,
        aggregate: A,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """:meth:`save`, returning the store's AppendResult: the new version and where each
        event landed (no positions, ``written=False``, when nothing was pending)."""
        if not aggregate._kes_pending:
            return AppendResult(aggregate.version, [], written=False)
        events, expected, base = self._to_append(aggregate, metadata, idempotency_key)
        try:
            result = self.store.append(self.aggregate_type, aggregate.id, events, expected)
        except ConcurrencyError:
            self.forget(aggregate.id)
            raise
        snapshot = self._saved(aggregate, events, base, result)
        if snapshot is not None and self.snapshots is not None:
            try:
                self.snapshots.put(snapshot)
            except KesError as exc:
                self._snapshot_not_saved(aggregate, exc)
        return result


class Application:
    """Entry point of user code: repositories per aggregate class over one event store.

    ``snapshot_every`` maps aggregate type -> N (snapshot every N events), overriding
    the class attribute ``snapshot_every``; snapshots need a ``snapshots`` store.
    ``validator`` sees every append's events first and may refuse them (see
    ``kes.schemas.SchemaValidator``). ``keys`` holds the data subjects' keys that
    personal fields are encrypted with (needed by aggregates that declare any).

    Thread-safe: one Application serves every thread of a process (``get`` hands each
    caller its own copy of an aggregate; concurrent saves of one aggregate conflict).
    """

    def __init__(
        self,
        store: EventStore,
        snapshots: SnapshotStore | None = None,
        snapshot_every: Mapping[str, int] | None = None,
        cache_size: int = 1000,
        clock: Callable[[], datetime] = now,
        validator: EventValidator | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.store = store
        self.validator = validator
        self.keys = keys
        self.snapshots = snapshots
        self.snapshot_every = dict(snapshot_every or {})
        self.cache_size = cache_size
        self.clock = clock
        self._repositories: dict[type[Aggregate], Repository[Any]] = {}
        self._lock = threading.Lock()
        if keys is not None:
            keys.on_forget(self._evict_subject)  # forgotten here or by another process

    @classmethod
    def from_env(
        cls,
        *,
        snapshots: bool = True,
        snapshot_every: Mapping[str, int] | None = None,
        cache_size: int = 1000,
        **overrides: Any,
    ) -> Application:
        """An application on Kafka configured from the environment.

        Builds ``KafkaEventStore(KafkaConfig.from_env(**overrides))`` (``KES_BOOTSTRAP_SERVERS``
        and the other ``KES_*`` variables; ``overrides`` are KafkaConfig fields, e.g.
        ``bootstrap_servers="kafka:9092"``), unless ``snapshots=False`` a
        ``KafkaSnapshotStore`` on the same cluster, and a ``KafkaKeyRing`` whose
        key-encryption key comes from ``KES_KEK_FILE`` or ``KES_KEK``. Nothing connects
        before first use, except that a configured KEK is checked at once against the
        stored data keys: a missing file or a wrong KEK fails here. Close it (or use
        ``with``) to stop its Kafka clients and threads.
        """
        from kes.store.kafka import KafkaConfig, KafkaEventStore, KafkaKeyRing, KafkaSnapshotStore

        config = KafkaConfig.from_env(**overrides)
        keys = KafkaKeyRing.from_env(config)
        return cls(
            KafkaEventStore(config),
            snapshots=KafkaSnapshotStore(config) if snapshots else None,
            snapshot_every=snapshot_every,
            cache_size=cache_size,
            keys=keys,
        )

    def close(self) -> None:
        """Close the snapshot store, the key ring and the event store."""
        try:
            if self.snapshots is not None:
                self.snapshots.close()
            if self.keys is not None:
                self.keys.close()
        finally:
            self.store.close()

    def __enter__(self) -> Application:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def repository(self, cls: type[A]) -> Repository[A]:
        """The (single) repository of aggregate class ``cls``."""
        with self._lock:
            repo = self._repositories.get(cls)
            if repo is None:
                repo = Repository(
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

    def get(
        self,
        cls: type[A],
        aggregate_id: str | uuid.UUID,
        version: int | None = None,
        at: datetime | None = None,
    ) -> A:
        """Load an aggregate; see :meth:`Repository.get`."""
        return self.repository(cls).get(aggregate_id, version=version, at=at)

    def save(
        self,
        *aggregates: Aggregate,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> list[AppendResult]:
        """Append each aggregate's pending events: atomic per aggregate, not across them.

        Returns one AppendResult per aggregate: its new version and the Kafka position
        (topic, partition, offset) of each event written. With ``idempotency_key`` the
        event ids derive from the key, so a retried command writes nothing new.
        """
        return [
            self.repository(type(agg)).append(agg, metadata, idempotency_key) for agg in aggregates
        ]

    def forget(self, subject: str) -> bool:
        """Forget a data subject (the GDPR's right to erasure): delete its data keys and
        record ``SubjectForgotten`` (stream ``DataSubject/<subject>``).

        From then on every personal field of the subject, in every event, snapshot and
        copy of a record, reads as its placeholder; all other fields, versions and event
        ids stay. Snapshots sealed with its key and cached aggregates holding its data
        are removed. Returns True when forgotten now, False when it had been (nothing is
        written). Raises UnknownSubjectError when kes never stored personal data of it.
        """
        check_stream(DATA_SUBJECT, subject)
        if self.keys is None:
            raise KeyEncryptionKeyError(
                f"cannot forget subject {subject!r}: this application has no key ring. "
                "Pass keys= to Application (from_env makes one)."
            )
        deleted = self.keys.forget(subject)
        recorded = False
        if self.store.stream_version(DATA_SUBJECT, subject) == 0:
            try:
                self.save(DataSubject(subject_id=subject, key_ids=deleted))
                recorded = True
            except StreamExistsError:
                pass  # another process recorded it at the same time
        self._evict_subject(subject)
        if self.snapshots is not None:
            try:
                self.snapshots.delete_holding(subject)
            except KesError as exc:  # sealed: unreadable anyway, deleted when met
                log.warning("deleting the snapshots of subject %r failed: %s", subject, exc)
        return bool(deleted) or recorded

    def _evict_subject(self, subject: str) -> None:
        with self._lock:
            repositories = list(self._repositories.values())
        for repo in repositories:
            repo.evict_subject(subject)

    def update(
        self,
        cls: type[A],
        aggregate_id: str | uuid.UUID,
        command: Callable[[A], T],
        attempts: int = CONFLICT_ATTEMPTS,
        metadata: Mapping[str, str] | None = None,
        backoff: float = CONFLICT_BACKOFF_S,
        idempotency_key: str | None = None,
    ) -> T:
        """Load, run ``command(aggregate)``, save; on a conflict reload and run it again,
        with :func:`retry_on_conflict`'s policy (jittered, doubling pauses).

        Gives up after ``attempts`` tries and re-raises the last ConcurrencyError.
        Returns what ``command`` returned. With ``idempotency_key``, running the same
        command again after it was saved writes nothing new (if it records the same events
        on the newer state; a command that refuses the newer state raises instead).
        """

        @retry_on_conflict(attempts, backoff)
        def once() -> T:
            agg = self.get(cls, aggregate_id)
            result = command(agg)
            self.save(agg, metadata=metadata, idempotency_key=idempotency_key)
            return result

        return once()


def retry_on_conflict(
    attempts: int = CONFLICT_ATTEMPTS, backoff: float = CONFLICT_BACKOFF_S
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Re-run the decorated load-decide-save function when it raises ConcurrencyError.

    The function must reload what it changes on each call. After ``attempts`` calls
    the last ConcurrencyError propagates. Before each new try it pauses: ``backoff``
    seconds before the second, doubled before each further one, each pause drawn
    between half and all of that, so that contending processes spread out (``0``: no
    pause). A StreamExistsError (creating an aggregate that exists) propagates at once:
    running the same creation again cannot succeed. An ``async def`` function is
    retried the same way, pausing with ``asyncio.sleep``.
    """
    if attempts < 1:
        raise InvalidInputError(f"attempts must be >= 1, got {attempts}.")
    if backoff < 0:
        raise InvalidInputError(f"backoff must be >= 0 seconds, got {backoff}.")

    def pause(fn: Callable[..., Any], attempt: int) -> float:
        log.debug("conflict in %s, attempt %d of %d", fn.__name__, attempt, attempts)
        if backoff <= 0:
            return 0.0
        return float(backoff * 2.0 ** (attempt - 1) * (0.5 + random.random() / 2))

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def retrying(*args: P.args, **kwargs: P.kwargs) -> Any:
                for attempt in range(1, attempts + 1):
                    try:
                        return await fn(*args, **kwargs)
                    except StreamExistsError:
                        raise
                    except ConcurrencyError:
                        if attempt == attempts:
                            raise
                        await asyncio.sleep(pause(fn, attempt))
                raise AssertionError("unreachable")

            return retrying  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except StreamExistsError:
                    raise
                except ConcurrencyError:
                    if attempt == attempts:
                        raise
                    seconds = pause(fn, attempt)
                    if seconds:
                        time.sleep(seconds)
            raise AssertionError("unreachable")

        return wrapper

    return decorate
