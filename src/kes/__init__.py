"""kes: event sourcing for Python with Apache Kafka as the event store.

Everything an application needs is importable from here. The Kafka backend
(``KafkaEventStore``, ``KafkaConfig``, ``KafkaSnapshotStore``) loads on first use, so
``import kes`` alone never loads the Kafka client. Extensions have their own doors:
``kes.projections``, ``kes.streams``, ``kes.schemas``, ``kes.testing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kes.application import Application, EventValidator, Repository, retry_on_conflict
from kes.domain import (
    Aggregate,
    DomainError,
    DomainEvent,
    UnknownEventError,
    Upcaster,
    VersionGapError,
    event,
)
from kes.envelope import Envelope, NewEvent, Position, RecordedEvent
from kes.errors import (
    AccessDeniedError,
    AggregateNotFoundError,
    AuthenticationError,
    ConcurrencyError,
    EventTooLargeError,
    FencedError,
    InvalidInputError,
    KesError,
    NotOwnerError,
    SerializationError,
    StoreUnavailableError,
    StreamExistsError,
    TopicConfigError,
    TransientError,
)
from kes.snapshots import MemorySnapshotStore, Snapshot, SnapshotStore
from kes.store import ANY, NO_STREAM, AppendResult, EventStore, ExpectedVersion, MemoryEventStore

if TYPE_CHECKING:
    from kes.kafka.config import KafkaConfig
    from kes.store.kafka.snapshots import KafkaSnapshotStore
    from kes.store.kafka.store import KafkaEventStore

_LAZY = {
    "KafkaConfig": "kes.kafka.config",
    "KafkaEventStore": "kes.store.kafka.store",
    "KafkaSnapshotStore": "kes.store.kafka.snapshots",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kes' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ANY",
    "NO_STREAM",
    "AccessDeniedError",
    "Aggregate",
    "AggregateNotFoundError",
    "AppendResult",
    "Application",
    "AuthenticationError",
    "ConcurrencyError",
    "DomainError",
    "DomainEvent",
    "Envelope",
    "EventStore",
    "EventTooLargeError",
    "EventValidator",
    "ExpectedVersion",
    "FencedError",
    "InvalidInputError",
    "KafkaConfig",
    "KafkaEventStore",
    "KafkaSnapshotStore",
    "KesError",
    "MemoryEventStore",
    "MemorySnapshotStore",
    "NewEvent",
    "NotOwnerError",
    "Position",
    "RecordedEvent",
    "Repository",
    "SerializationError",
    "Snapshot",
    "SnapshotStore",
    "StoreUnavailableError",
    "StreamExistsError",
    "TopicConfigError",
    "TransientError",
    "UnknownEventError",
    "Upcaster",
    "VersionGapError",
    "event",
    "retry_on_conflict",
]
__version__ = "0.1.0"
