"""kes: event sourcing for Python with Apache Kafka as the event store.

Everything an application needs is importable from here. The Kafka backend
(``KafkaEventStore``, ``KafkaConfig``, ``KafkaSnapshotStore``) loads on first use, so
``import kes`` alone never loads the Kafka client (nor the ciphers of personal data).
Extensions have their own doors: ``kes.aio`` (the same API for asyncio),
``kes.projections``, ``kes.streams``, ``kes.schemas``, ``kes.testing``, and
``kes.shredding`` for what a key-management integration needs.
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
from kes.personal import FORGOTTEN, personal
from kes.shredding import (
    DataSubject,
    PersonalDataError,
    SubjectForgottenError,
    UnknownSubjectError,
)
from kes.snapshots import MemorySnapshotStore, Snapshot, SnapshotStore
from kes.store import ANY, NO_STREAM, AppendResult, EventStore, ExpectedVersion, MemoryEventStore

if TYPE_CHECKING:
    from kes.kafka.config import KafkaConfig
    from kes.shredding.kek import LocalKeyEncryptionKey
    from kes.shredding.keyring import MemoryKeyRing
    from kes.store.kafka.keys import KafkaKeyRing
    from kes.store.kafka.snapshots import KafkaSnapshotStore
    from kes.store.kafka.store import KafkaEventStore

_LAZY = {
    "KafkaConfig": "kes.kafka.config",
    "KafkaEventStore": "kes.store.kafka.store",
    "KafkaKeyRing": "kes.store.kafka.keys",
    "KafkaSnapshotStore": "kes.store.kafka.snapshots",
    "LocalKeyEncryptionKey": "kes.shredding.kek",
    "MemoryKeyRing": "kes.shredding.keyring",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kes' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ANY",
    "FORGOTTEN",
    "NO_STREAM",
    "AccessDeniedError",
    "Aggregate",
    "AggregateNotFoundError",
    "AppendResult",
    "Application",
    "AuthenticationError",
    "ConcurrencyError",
    "DataSubject",
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
    "KafkaKeyRing",
    "KafkaSnapshotStore",
    "KesError",
    "LocalKeyEncryptionKey",
    "MemoryEventStore",
    "MemoryKeyRing",
    "MemorySnapshotStore",
    "NewEvent",
    "NotOwnerError",
    "PersonalDataError",
    "Position",
    "RecordedEvent",
    "Repository",
    "SerializationError",
    "Snapshot",
    "SnapshotStore",
    "StoreUnavailableError",
    "StreamExistsError",
    "SubjectForgottenError",
    "TopicConfigError",
    "TransientError",
    "UnknownEventError",
    "UnknownSubjectError",
    "Upcaster",
    "VersionGapError",
    "event",
    "personal",
    "retry_on_conflict",
]
__version__ = "0.1.0"
