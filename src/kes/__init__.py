"""kes: event sourcing for Python with Apache Kafka as the event store."""

from kes.application import Application, Repository, retry_on_conflict
from kes.domain import Aggregate, DomainError, DomainEvent, UnknownEventError, event
from kes.envelope import Envelope, NewEvent, Position, RecordedEvent
from kes.errors import (
    AggregateNotFoundError,
    BrokerError,
    ConcurrencyError,
    EventTooLargeError,
    FencedError,
    InvalidInputError,
    KesError,
    NotOwnerError,
    SerializationError,
    StoreUnavailableError,
    TopicConfigError,
)
from kes.store import ANY, NO_STREAM, AppendResult, EventStore, ExpectedVersion, MemoryEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "Aggregate",
    "AggregateNotFoundError",
    "AppendResult",
    "Application",
    "BrokerError",
    "ConcurrencyError",
    "DomainError",
    "DomainEvent",
    "Envelope",
    "EventStore",
    "EventTooLargeError",
    "ExpectedVersion",
    "FencedError",
    "InvalidInputError",
    "KesError",
    "MemoryEventStore",
    "NewEvent",
    "NotOwnerError",
    "Position",
    "RecordedEvent",
    "Repository",
    "SerializationError",
    "StoreUnavailableError",
    "TopicConfigError",
    "UnknownEventError",
    "event",
    "retry_on_conflict",
]
__version__ = "0.1.0"
